//! Secret writes: create, update and delete of copies, each guarded.
//!
//! - A copy is written with the source's `type` and `data` only, the
//!   managed-by label and the source annotation; nothing else of the
//!   source (its `last-applied-configuration` holds the credentials).
//! - Updates carry the observed resourceVersion and deletes a uid +
//!   resourceVersion precondition: a Secret someone changed or replaced
//!   since it was observed is never overwritten or deleted. Such a refusal
//!   (409) re-reads the Secret into the cache; the next reconcile pass
//!   decides again on what is there now.
//! - Transient failures (429, 5xx, timeouts, connection errors) are retried
//!   here with a capped exponential backoff; every attempt first checks
//!   that this replica still leads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};

use super::lease::Leadership;
use super::metrics::{Operation, SyncMetrics};
use super::observe::{Cache, CopyEntry, SourceEntry};
use crate::core::reconcile::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, SOURCE_ANNOTATION};

/// First wait before retrying a transient failure.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest wait between retries.
const MAX_RETRY: Duration = Duration::from_secs(3);
/// Attempts of one write before it is left to a later pass.
const ATTEMPTS: u32 = 6;

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This replica does not lead (any more).
    #[error("not the leader")]
    NotLeader,
    /// The Secret changed or was replaced since it was observed; re-read.
    #[error("the Secret changed since it was observed")]
    Conflict,
    /// The API server refused or failed, after retries for transient causes.
    #[error("{0}")]
    Api(#[source] kube::Error),
}

/// What a write needs to reach the API server.
pub struct Writer {
    /// The client.
    pub client: kube::Client,
    /// Leadership, checked before every request.
    pub leadership: Arc<Leadership>,
    /// Write counters.
    pub metrics: Arc<SyncMetrics>,
    /// Fed with the results.
    pub cache: Arc<Cache>,
}

/// Whether a failure may go away by itself.
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500 || s.reason == "Timeout",
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

impl Writer {
    fn api(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Runs `op` until it succeeds, fails for good, or leadership ends.
    async fn attempt<T, F, Fut>(&self, operation: Operation, mut op: F) -> Result<T, WriteError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let mut wait = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            if !self.leadership.is_leader() {
                return Err(WriteError::NotLeader);
            }
            match op().await {
                Ok(value) => {
                    self.metrics.write(operation, true);
                    return Ok(value);
                }
                Err(err) => {
                    self.metrics.write(operation, false);
                    if let kube::Error::Api(s) = &err
                        && (s.is_conflict() || s.is_already_exists() || s.is_not_found())
                    {
                        return Err(WriteError::Conflict);
                    }
                    if !is_transient(&err) || attempt >= ATTEMPTS {
                        return Err(WriteError::Api(err));
                    }
                    tracing::debug!(error = %err, attempt, retry_in = ?wait, "transient write failure; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY);
                    attempt += 1;
                }
            }
        }
    }

    /// The copy `namespace/name` of `source` (`source_ref` is its
    /// `NAMESPACE/NAME`), with `resource_version` for an update.
    fn copy_of(
        namespace: &str,
        name: &str,
        source_ref: &str,
        source: &SourceEntry,
        resource_version: Option<String>,
    ) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                resource_version,
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.to_owned(),
                    MANAGED_BY_VALUE.to_owned(),
                )])),
                annotations: Some(BTreeMap::from([(
                    SOURCE_ANNOTATION.to_owned(),
                    source_ref.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some(source.type_.clone()),
            data: Some(source.data.as_ref().clone()),
            ..Secret::default()
        }
    }

    /// Creates the copy. A 409 means a Secret of that name exists after
    /// all: it is read, so the next pass sees whether it is a managed copy
    /// or someone else's.
    pub async fn create(
        &self,
        namespace: &str,
        name: &str,
        source_ref: &str,
        source: &SourceEntry,
    ) -> Result<(), WriteError> {
        let api = self.api(namespace);
        let secret = Self::copy_of(namespace, name, source_ref, source, None);
        let params = PostParams::default();
        let result = self
            .attempt(Operation::Create, || api.create(&params, &secret))
            .await;
        self.settle(namespace, name, result).await
    }

    /// Restores a managed copy to the source's content, if it is still the
    /// version observed.
    pub async fn update(
        &self,
        namespace: &str,
        name: &str,
        observed: &CopyEntry,
        source_ref: &str,
        source: &SourceEntry,
    ) -> Result<(), WriteError> {
        let api = self.api(namespace);
        let secret = Self::copy_of(
            namespace,
            name,
            source_ref,
            source,
            Some(observed.resource_version.clone()),
        );
        let params = PostParams::default();
        let result = self
            .attempt(Operation::Update, || api.replace(name, &params, &secret))
            .await;
        self.settle(namespace, name, result).await
    }

    /// Deletes a managed copy, only if it is still the one observed (same
    /// uid and resourceVersion).
    pub async fn delete(
        &self,
        namespace: &str,
        name: &str,
        observed: &CopyEntry,
    ) -> Result<(), WriteError> {
        let api = self.api(namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(observed.uid.clone()),
                resource_version: Some(observed.resource_version.clone()),
            }),
            ..DeleteParams::default()
        };
        let result = self
            .attempt(Operation::Delete, || api.delete(name, &params))
            .await;
        match result {
            Ok(_) => {
                self.cache.observe_write(namespace, name, None);
                Ok(())
            }
            Err(err) => self.settle::<Secret>(namespace, name, Err(err)).await,
        }
    }

    /// Feeds a write's result into the cache; after a conflict, re-reads
    /// the Secret.
    async fn settle<T: AsSecret>(
        &self,
        namespace: &str,
        name: &str,
        result: Result<T, WriteError>,
    ) -> Result<(), WriteError> {
        match result {
            Ok(written) => {
                self.cache
                    .observe_write(namespace, name, written.as_secret());
                Ok(())
            }
            Err(WriteError::Conflict) => {
                match self.api(namespace).get_opt(name).await {
                    Ok(current) => self.cache.observe_read(namespace, name, current.as_ref()),
                    Err(err) => {
                        tracing::warn!(namespace, secret = name, error = %err, "cannot re-read a Secret after a conflict");
                    }
                }
                Err(WriteError::Conflict)
            }
            Err(err) => Err(err),
        }
    }
}

/// A write's answer, as far as the cache cares.
trait AsSecret {
    fn as_secret(&self) -> Option<&Secret>;
}

impl AsSecret for Secret {
    fn as_secret(&self) -> Option<&Secret> {
        Some(self)
    }
}
