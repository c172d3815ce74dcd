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
//! - Writes run in a [`Pool`] of `--max-in-flight` workers fed by a queue,
//!   so a new write starts the moment one ends, never waiting for the
//!   reconciler; a queued [`Job`] names only the copy and its source, and
//!   reads both from the cache when it starts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use super::lease::Leadership;
use super::metrics::{Operation, SyncMetrics};
use super::observe::{Cache, CopyEntry, SourceEntry};
use crate::core::reconcile::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, PULL_SECRET_TYPES, SOURCE_ANNOTATION,
};

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

/// What a queued write does to its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Create the copy.
    Create,
    /// Restore the managed copy to the source's content.
    Update,
    /// Delete the managed copy and create it again (its type differs).
    Replace,
    /// Delete the managed copy.
    Delete,
}

/// A managed secret's source, as a write needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    /// `NAMESPACE/NAME`, the annotation every copy carries.
    pub text: String,
    /// (namespace, name) of the source Secret.
    pub key: (String, String),
}

/// One write to make. It carries no content: the source and the copy's
/// preconditions are read from the cache when the write starts, so a
/// write queued before a rotation writes the rotated content, and one
/// whose copy or source went away meanwhile is skipped.
#[derive(Debug, Clone)]
pub struct Job {
    /// The copy's namespace.
    pub namespace: String,
    /// The copy's name.
    pub name: String,
    /// What to do.
    pub kind: Kind,
    /// Its source (`None` for a deletion).
    pub source: Option<Arc<SourceRef>>,
}

/// How a job ended.
#[derive(Debug)]
pub enum Outcome {
    /// Written; the cache has the API server's answer.
    Written,
    /// Not written: what it needed is no longer observed (the copy is
    /// gone, the source missing or invalid); the next pass decides again.
    Skipped,
    /// Refused or failed.
    Failed(WriteError),
}

/// A finished job.
#[derive(Debug)]
pub struct Done {
    /// The copy, (namespace, name).
    pub key: (String, String),
    /// How it ended.
    pub outcome: Outcome,
}

impl Writer {
    /// Runs `job` with what the cache holds now.
    pub async fn run(&self, job: &Job) -> Outcome {
        let (namespace, name) = (job.namespace.as_str(), job.name.as_str());
        let source = job.source.as_ref().and_then(|s| {
            self.cache
                .source(&s.key)
                .filter(|e| PULL_SECRET_TYPES.contains(&e.type_.as_str()))
                .map(|e| (s.text.as_str(), e))
        });
        let copy = || self.cache.managed_copy(namespace, name);
        let result = match (job.kind, source) {
            (Kind::Create, Some((text, source))) => {
                self.create(namespace, name, text, &source).await
            }
            (Kind::Update, Some((text, source))) => match copy() {
                Some(copy) => self.update(namespace, name, &copy, text, &source).await,
                None => return Outcome::Skipped,
            },
            (Kind::Replace, Some((text, source))) => match copy() {
                Some(copy) => match self.delete(namespace, name, &copy).await {
                    Ok(()) => self.create(namespace, name, text, &source).await,
                    Err(err) => Err(err),
                },
                None => return Outcome::Skipped,
            },
            (Kind::Delete, _) => match copy() {
                Some(copy) => self.delete(namespace, name, &copy).await,
                None => return Outcome::Skipped,
            },
            (_, None) => return Outcome::Skipped,
        };
        match result {
            Ok(()) => Outcome::Written,
            Err(err) => Outcome::Failed(err),
        }
    }
}

/// Counts a write in flight until dropped (also when it is aborted).
struct Flight<'a>(&'a SyncMetrics);

impl<'a> Flight<'a> {
    fn new(metrics: &'a SyncMetrics) -> Self {
        metrics.in_flight(true);
        Flight(metrics)
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.in_flight(false);
    }
}

/// Jobs waiting for a worker: creations first (a new namespace should not
/// wait behind a rotation's updates), then the rest, each in order.
#[derive(Default)]
struct Queue {
    lanes: Mutex<(VecDeque<Job>, VecDeque<Job>)>,
    ready: Notify,
}

impl Queue {
    fn lanes(&self) -> MutexGuard<'_, (VecDeque<Job>, VecDeque<Job>)> {
        // Each change is one push or pop: a panic cannot leave it torn.
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job) {
        let mut lanes = self.lanes();
        if job.kind == Kind::Create {
            lanes.0.push_back(job);
        } else {
            lanes.1.push_back(job);
        }
        drop(lanes);
        self.ready.notify_one();
    }

    async fn pop(&self) -> Job {
        loop {
            // A push between this check and the wait leaves a permit.
            let job = {
                let mut lanes = self.lanes();
                lanes.0.pop_front().or_else(|| lanes.1.pop_front())
            };
            if let Some(job) = job {
                return job;
            }
            self.ready.notified().await;
        }
    }

    fn len(&self) -> usize {
        let lanes = self.lanes();
        lanes.0.len() + lanes.1.len()
    }
}

/// A fixed number of workers taking jobs from a queue: exactly as many
/// writes in flight as there are workers while jobs wait, each worker
/// starting the next job the moment its write ends, whatever the
/// reconciler is doing. Dropped or [`Pool::abandon`]ed, every write in
/// flight is aborted.
pub struct Pool {
    queue: Arc<Queue>,
    workers: JoinSet<()>,
    writer: Arc<Writer>,
    size: usize,
    done: mpsc::UnboundedSender<Done>,
}

impl Pool {
    /// `size` workers writing with `writer`, reporting to `done`.
    pub fn start(writer: Writer, size: usize, done: mpsc::UnboundedSender<Done>) -> Pool {
        let mut pool = Pool {
            queue: Arc::default(),
            workers: JoinSet::new(),
            writer: Arc::new(writer),
            size: size.max(1),
            done,
        };
        pool.spawn_workers();
        pool
    }

    fn spawn_workers(&mut self) {
        for _ in 0..self.size {
            let (queue, writer, done) =
                (self.queue.clone(), self.writer.clone(), self.done.clone());
            self.workers.spawn(async move {
                loop {
                    let job = queue.pop().await;
                    let flight = Flight::new(&writer.metrics);
                    let outcome = writer.run(&job).await;
                    drop(flight);
                    let key = (job.namespace, job.name);
                    if done.send(Done { key, outcome }).is_err() {
                        return;
                    }
                }
            });
        }
    }

    /// Queues `job`.
    pub fn push(&self, job: Job) {
        self.queue.push(job);
    }

    /// Jobs queued, not started.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Drops every queued job and aborts the writes in flight (leadership
    /// lost); the pool takes new jobs afterwards.
    pub fn abandon(&mut self) {
        self.workers.abort_all();
        self.workers = JoinSet::new();
        self.queue = Arc::default();
        self.spawn_workers();
    }
}
