//! pull-secret-injector: a Kubernetes mutating admission webhook that adds
//! the right `spec.imagePullSecrets` to every new Pod.
//!
//! # Architecture
//!
//! ```text
//! cmd ───────────▶ webhook ──┐
//!  │  (one module   k8s ─────┼──▶ runtime ──▶ core
//!  │   per command)          │
//!  └─────────────────────────┴──────────────▶ core
//! ```
//!
//! - [`core`] is pure: image references, the policy, the questions asked of
//!   it, the admission decision and the patch. Plain data in, values and
//!   errors out; no async, I/O, logging or Kubernetes client.
//! - [`runtime`] holds what every long-running command shares: the policy
//!   store and its file source, supervision of background tasks, logging and
//!   metrics.
//! - [`webhook`] is the HTTPS admission server (TLS, HTTP, certificates);
//!   [`k8s`] the adapters to the Kubernetes API (the policy ConfigMap, the
//!   namespace cache). Each edge does one kind of I/O.
//! - [`cmd`] parses the command line and holds one module per subcommand;
//!   each owns its flags and wires the edges it needs.
//!
//! Arrows only point right: the core imports nothing of the crate outside
//! itself, edges never import `cmd` or each other except through
//! `runtime`. `tests/architecture.rs` fails the build when an import breaks
//! this.
//!
//! The policy in force is an immutable compiled snapshot behind an atomic
//! pointer ([`runtime::policy_store::PolicyStore`]); a source swaps in a new
//! snapshot only after it validated, so requests never see a half-applied or
//! invalid policy and never take a lock.

pub mod cmd;
pub mod core;
pub mod k8s;
pub mod runtime;
pub mod webhook;
