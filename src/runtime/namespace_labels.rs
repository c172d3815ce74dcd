//! The port through which the webhook asks for a namespace's labels; the
//! Kubernetes namespace cache ([`crate::k8s::namespaces`]) implements it, and
//! tests can give a fixed map.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A namespace's labels, shared.
pub type Labels = Arc<BTreeMap<String, String>>;

/// Looks up a namespace's labels for `namespaces.selector` rules.
pub trait NamespaceLabels: Send + Sync {
    /// The labels of `namespace`, or `None` when they cannot be known.
    fn labels<'a>(
        &'a self,
        namespace: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<Labels>> + Send + 'a>>;
}
