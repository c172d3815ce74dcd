//! Adapters to the Kubernetes API: the policy ConfigMap watch
//! ([`configmap`]), the namespace label cache ([`namespaces`]), what
//! `audit` reads ([`inventory`]) and the `sync` controller's watches,
//! writes and leader election ([`sync`]). Each turns API objects into core
//! values; the decisions stay in the core.

pub mod configmap;
pub mod inventory;
pub mod namespaces;
pub mod retry;
pub mod sync;
