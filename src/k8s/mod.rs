//! Adapters to the Kubernetes API: the policy ConfigMap watch
//! ([`configmap`]) and the namespace label cache ([`namespaces`]). Each
//! turns API objects into core values; the decisions stay in the core.

pub mod configmap;
pub mod namespaces;
