//! The pure core: plain data in, values and errors out.
//!
//! Nothing here is async, reads a file or a socket, logs, looks at the clock
//! or talks to Kubernetes: every edge of the program calls into this module,
//! and it calls into none of them (`tests/architecture.rs` checks that).
//!
//! - [`image`]: image references, normalized as the container runtime does.
//! - [`policy`]: the policy text → validated, compiled rules.
//! - [`query`]: the questions every command asks of a policy — which rules
//!   and secrets an image gets in a namespace, which secrets a namespace
//!   wants.
//! - [`pod`], [`review`]: the AdmissionReview wire format and the Pod's
//!   fields, read borrowing from the request body; [`json`]: the fast
//!   validating JSON reader they use on the request path.
//! - [`decide`]: what to answer for one review; [`patch`]: the JSON Patch.
//! - [`reconcile`]: what `sync` writes: wanted copies of managed secrets
//!   against observed ones.
//! - [`audit`]: what `audit` finds wrong with a Pod's images and secrets.
//! - [`credentials`]: the kubelet's credential keyring over `auths` keys:
//!   which keys it would try for an image, and whether keys cover a
//!   policy registry pattern.
//! - [`redact`]: what logs and warnings must never show (credentials in
//!   image references, values in a review printed at debug).
//! - [`yaml`]: YAML ⇄ JSON for the offline commands.

pub mod audit;
pub mod credentials;
pub mod decide;
pub mod image;
pub mod json;
pub mod patch;
pub mod pod;
pub mod policy;
pub mod query;
pub mod reconcile;
pub mod redact;
pub mod review;
pub mod yaml;
