//! Adapters to the Kubernetes API: the policy ConfigMap watch
//! ([`configmap`]), the namespace label cache ([`namespaces`]) and what
//! `audit` reads ([`inventory`]). Each turns API objects into core values;
//! the decisions stay in the core.

pub mod configmap;
pub mod inventory;
pub mod namespaces;
pub mod retry;
