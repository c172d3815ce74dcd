//! pull-secret-injector: a Kubernetes mutating admission webhook that adds
//! the right `spec.imagePullSecrets` to every new Pod.
//!
//! # Architecture
//!
//! One request path, from socket to answer:
//!
//! ```text
//! kube-apiserver ─HTTPS POST /mutate─▶ server (TLS, per-connection task)
//!   ▶ http (axum router, body limit)
//!   ▶ admission (decode the review, borrowing; pick out the Pod)
//!   ▶ mutate (images × policy × namespace ─▶ Plan)
//!   ▶ patch (Plan ─▶ JSON Patch)
//!   ▶ admission (response review: same apiVersion and uid, base64 patch)
//! ```
//!
//! The **core** — [`image`], [`policy`], [`mutate`], [`patch`] and
//! [`admission`] — is synchronous code over plain data: no async runtime,
//! no files or sockets, no logging, no Kubernetes client. The **edges** —
//! [`http`], [`server`], [`tls`], [`sources`], [`configmap`],
//! [`namespaces`], [`serve`], [`cli`], [`certs`], [`telemetry`], [`yaml`]
//! — do I/O and depend on the core. The core never depends on an edge.
//!
//! The policy in force is an immutable compiled snapshot behind an atomic
//! pointer ([`sources::PolicyStore`]); a source swaps in a new snapshot only
//! after it validated, so requests never see a half-applied or invalid
//! policy and never take a lock.

pub mod admission;
pub mod image;
pub mod mutate;
pub mod patch;
pub mod policy;

pub mod certs;
pub mod cli;
pub mod configmap;
pub mod http;
pub mod namespaces;
pub mod serve;
pub mod server;
pub mod sources;
pub mod telemetry;
pub mod tls;
pub mod yaml;
