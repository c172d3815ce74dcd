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

use arc_swap::ArcSwap;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use super::retry::{Recovery, Retry};
use crate::runtime::namespace_labels::{Labels, NamespaceLabels};

type NamespaceMeta = PartialObjectMeta<Namespace>;

/// Namespace labels from a reflector, with a direct fetch for misses.
pub struct NamespaceCache {
    /// The reflector's store; a restarted reflector brings a new one.
    store: ArcSwap<Store<NamespaceMeta>>,
    api: Api<NamespaceMeta>,
    fetch_timeout: Duration,
}

impl NamespaceCache {
    /// An empty cache over `client`; [`NamespaceCache::run`] fills it.
    pub fn new(client: Client, fetch_timeout: Duration) -> Arc<Self> {
        let (store, _) = reflector::store();
        Arc::new(NamespaceCache {
            store: ArcSwap::from_pointee(store),
            api: Api::all(client),
            fetch_timeout,
        })
    }

    /// Lists and watches namespaces into a fresh store until `stop` turns
    /// true. API errors are retried as [`super::retry`] says (a `410 Gone`
    /// lists again at once; the store keeps its content until the new list
    /// is complete); the function returns early only if the watch stream
    /// ends.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (store, mut writer) = reflector::store();
        self.store.store(Arc::new(store));
        // Only names and labels are ever read: drop the rest before it is
        // stored, so the cache stays small in clusters with many namespaces.
        let start = || {
            watcher(self.api.clone(), watcher::Config::default())
                .modify(|ns| {
                    let meta = &mut ns.metadata;
                    meta.annotations = None;
                    meta.managed_fields = None;
                    meta.owner_references = None;
                    meta.finalizers = None;
                })
                .boxed()
        };
        let mut stream = start();
        let mut retry = Retry::default();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            match item {
                Some(Ok(event)) => {
                    retry.answered_by(&event);
                    writer.apply_watcher_event(&event);
                }
                Some(Err(err)) => match retry.after(&err) {
                    Recovery::Relist => {
                        tracing::info!(error = %err, "namespace watch expired; listing again now");
                        stream = start();
                    }
                    Recovery::Wait(wait) => {
                        tracing::warn!(error = %err, retry_in = ?wait, "namespace watch failed; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            _ = stop.wait_for(|s| *s) => return Ok(()),
                        }
                    }
                },
                None => anyhow::bail!("the namespace watch ended"),
            }
        }
    }

    /// The labels of `namespace` if the cache has seen it (no API call).
    pub fn cached(&self, namespace: &str) -> Option<Labels> {
        let ns = self.store.load().get(&ObjectRef::new(namespace))?;
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
