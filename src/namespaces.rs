//! Namespace labels for `namespaces.selector` rules, from the Kubernetes API.
//!
//! A reflector keeps the metadata of every Namespace in memory (labels only
//! matter, so only metadata is listed and watched). A pod in a namespace the
//! cache has not seen yet — created a moment ago — is still decided
//! correctly: the namespace is fetched directly, under a short timeout. When
//! that fails too the labels are unknown: the selector does not match and
//! the response carries a warning saying so.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::http::{Labels, NamespaceLabels};

type NamespaceMeta = PartialObjectMeta<Namespace>;

/// Namespace labels from a reflector, with a direct fetch for misses.
pub struct NamespaceCache {
    store: Store<NamespaceMeta>,
    api: Api<NamespaceMeta>,
    fetch_timeout: Duration,
}

impl NamespaceCache {
    /// Starts the reflector on `client`; it runs until `stop` turns true.
    pub fn start(
        client: Client,
        fetch_timeout: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let api: Api<NamespaceMeta> = Api::all(client);
        let (store, writer) = reflector::store();
        // Only names and labels are ever read: drop the rest before it is
        // stored, so the cache stays small in clusters with many namespaces.
        let stream = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .modify(|ns| {
                let meta = &mut ns.metadata;
                meta.annotations = None;
                meta.managed_fields = None;
                meta.owner_references = None;
                meta.finalizers = None;
            })
            .reflect(writer);
        let task = async move {
            let mut stream = stream.boxed();
            loop {
                let item = tokio::select! {
                    item = stream.next() => item,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match item {
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "namespace watch failed; retrying with backoff");
                    }
                    None => return,
                }
            }
        };
        let cache = Arc::new(NamespaceCache {
            store,
            api,
            fetch_timeout,
        });
        (cache, task)
    }

    /// The labels of `namespace` if the cache has seen it (no API call).
    pub fn cached(&self, namespace: &str) -> Option<Labels> {
        let ns = self.store.get(&ObjectRef::new(namespace))?;
        Some(Arc::new(ns.metadata.labels.clone().unwrap_or_default()))
    }

    async fn fetch(&self, namespace: &str) -> Option<Labels> {
        match tokio::time::timeout(self.fetch_timeout, self.api.get_opt(namespace)).await {
            Ok(Ok(Some(ns))) => Some(Arc::new(ns.metadata.labels.unwrap_or_default())),
            Ok(Ok(None)) => {
                tracing::warn!(
                    namespace,
                    "namespace not found; its selector rules do not match"
                );
                None
            }
            Ok(Err(err)) => {
                tracing::warn!(namespace, error = %err, "cannot fetch namespace labels; its selector rules do not match");
                None
            }
            Err(_) => {
                tracing::warn!(namespace, timeout = ?self.fetch_timeout, "namespace fetch timed out; its selector rules do not match");
                None
            }
        }
    }
}

impl NamespaceLabels for NamespaceCache {
    fn labels<'a>(
        &'a self,
        namespace: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<Labels>> + Send + 'a>> {
        Box::pin(async move {
            match self.cached(namespace) {
                Some(labels) => Some(labels),
                None => self.fetch(namespace).await,
            }
        })
    }
}
