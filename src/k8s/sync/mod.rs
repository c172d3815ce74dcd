//! The `sync` controller: copies each managed secret's source into every
//! namespace where the webhook would inject it, keeps the copies equal to
//! the source, and removes copies no longer wanted (DESIGN §8).
//!
//! ```text
//! watches (observe.rs) ──▶ Cache ──▶ reconcile pass (core::reconcile::plan)
//!   namespaces, copies,                 │ actions
//!   sources, policy                     ▼
//!                      writes (write.rs, ≤ max_in_flight at once, leader only)
//!                      events (events.rs, leader only)
//! lease.rs: leader election; losing the Lease aborts writes in flight
//! ```
//!
//! The reconcile pass is level-triggered: any change wakes it, and it
//! compares the whole wanted state with the whole observed state (cheap:
//! digests, no API call), so a missed or reordered event is corrected by
//! the next one. Every replica observes and computes (its metrics and
//! readiness are real, and a new leader starts warm); only the leader
//! writes.

pub mod events;
pub mod lease;
pub mod metrics;
pub mod observe;
pub mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::core::reconcile::{self, Action, Namespace, Plan, Uncovered};
use crate::runtime::policy_store::PolicyStore;
use crate::runtime::supervise::Supervisor;
use events::{Events, Regarding};
use lease::{Elector, Leadership, LeaseTimings};
use metrics::SyncMetrics;
use observe::{Cache, CopyEntry, SourceEntry};
use write::{WriteError, Writer};

/// Shortest time between two reconcile passes.
const MIN_PASS_GAP: Duration = Duration::from_millis(20);

/// How long a failed write waits before a pass may try it again.
const FAILED_WRITE_BACKOFF: Duration = Duration::from_secs(2);

/// What the controller is told.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The install namespace: the Lease lives here, no copies go here.
    pub namespace: String,
    /// This replica's identity in the Lease (the pod name).
    pub identity: String,
    /// The policy ConfigMap, when the policy comes from one: invalid
    /// sources are reported on it.
    pub policy_configmap: Option<(String, String)>,
    /// Most Secret writes in flight at once.
    pub max_in_flight: usize,
    /// How often a Secret that blocked a copy is looked at again.
    pub conflict_recheck: Duration,
    /// How often the source watches check the policy for new sources.
    pub source_poll: Duration,
    /// Leader election timings.
    pub lease: LeaseTimings,
}

/// The controller's shared parts.
pub struct Controller {
    client: Client,
    settings: Settings,
    policy: Arc<PolicyStore>,
    cache: Arc<Cache>,
    leadership: Arc<Leadership>,
    metrics: Arc<SyncMetrics>,
}

/// One write to make.
enum Job {
    Create(SourceEntry, String),
    Update(CopyEntry, SourceEntry, String),
    Replace(CopyEntry, SourceEntry, String),
    Delete(CopyEntry),
}

/// A finished write.
struct Done {
    key: (String, String),
    result: Result<(), WriteError>,
}

/// An Event for the events task.
struct Post {
    regarding: Regarding,
    reason: &'static str,
    note: String,
    warning: bool,
}

impl Controller {
    /// A controller over `client`, fed by `policy`.
    pub fn new(
        client: Client,
        settings: Settings,
        policy: Arc<PolicyStore>,
        metrics: Arc<SyncMetrics>,
    ) -> Arc<Self> {
        Arc::new(Controller {
            client,
            settings,
            policy,
            cache: Arc::new(Cache::default()),
            leadership: Arc::new(Leadership::default()),
            metrics,
        })
    }

    /// Leadership, as the writes see it.
    pub fn leadership(&self) -> Arc<Leadership> {
        self.leadership.clone()
    }

    /// Why the controller is not ready, if it is not: no policy, or a watch
    /// that has not listed yet.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.policy.is_loaded() {
            return Some("no valid policy loaded");
        }
        if !self.cache.synced(&self.policy) {
            return Some("watches have not listed yet");
        }
        None
    }

    /// Starts the watches, the election and the reconciler under
    /// `supervisor`.
    pub fn spawn(self: &Arc<Self>, supervisor: &mut Supervisor) {
        let (client, cache) = (self.client.clone(), self.cache.clone());
        supervisor.spawn("namespace-watch", move |stop| {
            observe::watch_namespaces(client.clone(), cache.clone(), stop)
        });
        let (client, cache) = (self.client.clone(), self.cache.clone());
        supervisor.spawn("managed-secret-watch", move |stop| {
            observe::watch_copies(client.clone(), cache.clone(), stop)
        });
        let (client, cache, policy) =
            (self.client.clone(), self.cache.clone(), self.policy.clone());
        let poll = self.settings.source_poll;
        supervisor.spawn("source-secret-watch", move |stop| {
            observe::watch_sources(client.clone(), cache.clone(), policy.clone(), stop, poll)
        });
        let this = self.clone();
        supervisor.spawn("leader-election", move |stop| {
            let this = this.clone();
            async move {
                let elector = Elector::new(
                    this.client.clone(),
                    &this.settings.namespace,
                    &this.settings.identity,
                    this.settings.lease,
                );
                elector.run(&this.leadership, &this.metrics, stop).await
            }
        });
        let this = self.clone();
        supervisor.spawn("reconciler", move |stop| this.clone().reconcile(stop));
    }

    /// The reconcile loop: a pass after every change, writes dispatched to
    /// at most `max_in_flight` tasks.
    async fn reconcile(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut writes = JoinSet::new();
        let slots = Arc::new(Semaphore::new(self.settings.max_in_flight.max(1)));
        // Keys with a write in flight (None) or failed recently (retry after).
        let mut busy: HashMap<(String, String), Option<Instant>> = HashMap::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let (post_tx, post_rx) = mpsc::unbounded_channel::<Post>();
        let events = tokio::spawn(post_events(
            Events::new(self.client.clone(), Some(self.settings.identity.clone())),
            self.leadership.clone(),
            post_rx,
        ));
        let _events = AbortOnDrop(events);
        let mut leading = self.leadership.subscribe();
        let mut recheck = tokio::time::interval(
            self.settings
                .conflict_recheck
                .max(Duration::from_millis(100)),
        );
        let mut memory = Memory::default();
        let mut retry_at: Option<Instant> = None;
        let mut last_pass = Duration::ZERO;
        let mut last_pass_at = Instant::now();
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.cache.changed.notified() => {}
                Some(done) = done_rx.recv() => self.finished(done, &mut busy, &mut memory),
                _ = leading.changed() => {
                    if !*leading.borrow_and_update() {
                        // Lost the Lease: abandon every write at once.
                        writes.abort_all();
                        busy.clear();
                        memory = Memory::default();
                    }
                }
                _ = recheck.tick() => self.cache.expire_unmanaged(self.settings.conflict_recheck),
                () = retry => {}
                _ = stop.wait_for(|s| *s) => {
                    writes.abort_all();
                    return Ok(());
                }
            }
            // Passes are spaced (at least MIN_PASS_GAP, and 4× the last
            // pass's time): a burst of changes — a cold start's thousands
            // of writes echoing back — is one pass, and the writers, which
            // need the cache lock a pass holds, keep most of the time.
            let gap = MIN_PASS_GAP.max(last_pass * 4);
            if let Some(wait) = gap.checked_sub(last_pass_at.elapsed()) {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => {
                        writes.abort_all();
                        return Ok(());
                    }
                }
            }
            while let Ok(done) = done_rx.try_recv() {
                self.finished(done, &mut busy, &mut memory);
            }
            while writes.try_join_next().is_some() {}
            let now = Instant::now();
            busy.retain(|_, until| until.is_none_or(|t| t > now));
            retry_at = busy.values().flatten().min().copied();
            let started = Instant::now();
            let plan = self.pass();
            last_pass_at = Instant::now();
            last_pass = last_pass_at - started;
            let Some(plan) = plan else { continue };
            if !self.leadership.is_leader() {
                continue;
            }
            self.act(
                plan,
                &mut busy,
                &mut memory,
                &mut writes,
                &slots,
                &done_tx,
                &post_tx,
            );
        }
    }

    /// Bookkeeping of a finished write.
    fn finished(
        &self,
        done: Done,
        busy: &mut HashMap<(String, String), Option<Instant>>,
        memory: &mut Memory,
    ) {
        match &done.result {
            Ok(()) => {
                busy.remove(&done.key);
                *memory.written.entry(done.key.1.clone()).or_default() += 1;
            }
            // Re-read already; the next pass decides on what is there now.
            Err(WriteError::Conflict | WriteError::NotLeader) => {
                busy.remove(&done.key);
            }
            Err(WriteError::Api(err)) => {
                tracing::warn!(namespace = %done.key.0, secret = %done.key.1, error = %err, "Secret write failed; retrying later");
                busy.insert(done.key, Some(Instant::now() + FAILED_WRITE_BACKOFF));
            }
        }
    }

    /// Compares wanted and observed; updates the copy metrics. `None`
    /// until the policy is loaded and every watch has listed.
    fn pass(&self) -> Option<Plan> {
        let snapshot = self.policy.current()?;
        if !self.cache.synced(&self.policy) {
            return None;
        }
        let started = std::time::Instant::now();
        let state = self.cache.lock();
        let namespaces: Vec<Namespace<'_>> = state
            .namespaces
            .iter()
            .map(|(name, ns)| Namespace {
                name,
                labels: &ns.labels,
                active: ns.active,
            })
            .collect();
        let plan = reconcile::plan(
            &snapshot.policy,
            &namespaces,
            &self.settings.namespace,
            &*state,
        );
        drop(namespaces);
        drop(state);
        self.metrics.reconciled(started.elapsed());
        let (mut synced, mut conflict, mut pending, mut invalid) = (0, 0, 0, 0);
        for status in plan.status.values() {
            synced += status.synced;
            conflict += status.conflicts;
            pending += status.pending();
            invalid += usize::from(status.source_invalid);
        }
        self.metrics.copies(synced, conflict, pending, invalid);
        Some(plan)
    }

    /// Dispatches a plan's writes and events.
    #[allow(clippy::too_many_arguments)]
    fn act(
        &self,
        plan: Plan,
        busy: &mut HashMap<(String, String), Option<Instant>>,
        memory: &mut Memory,
        writes: &mut JoinSet<()>,
        slots: &Arc<Semaphore>,
        done_tx: &mpsc::UnboundedSender<Done>,
        post_tx: &mpsc::UnboundedSender<Post>,
    ) {
        let Some(snapshot) = self.policy.current() else {
            return;
        };
        let source_ref = |secret: &str| {
            snapshot
                .policy
                .managed(secret)
                .map(|m| (m.source(), (m.from_namespace.clone(), m.from_name.clone())))
        };
        let mut invalid_now: BTreeMap<String, String> = BTreeMap::new();
        let state = self.cache.lock();
        let source_of = |key: &(String, String)| state.sources.get(key).cloned().flatten();
        for action in plan.actions {
            let (key, job) = match action {
                Action::Create { namespace, secret } => {
                    let Some((text, skey)) = source_ref(&secret) else {
                        continue;
                    };
                    let Some(source) = source_of(&skey) else {
                        continue;
                    };
                    ((namespace, secret), Job::Create(source, text))
                }
                Action::Update { namespace, secret } => {
                    let Some((text, skey)) = source_ref(&secret) else {
                        continue;
                    };
                    let Some(source) = source_of(&skey) else {
                        continue;
                    };
                    let key = (namespace, secret);
                    let Some(copy) = state.copies.get(&key).cloned() else {
                        continue;
                    };
                    (key, Job::Update(copy, source, text))
                }
                Action::Replace { namespace, secret } => {
                    let Some((text, skey)) = source_ref(&secret) else {
                        continue;
                    };
                    let Some(source) = source_of(&skey) else {
                        continue;
                    };
                    let key = (namespace, secret);
                    let Some(copy) = state.copies.get(&key).cloned() else {
                        continue;
                    };
                    (key, Job::Replace(copy, source, text))
                }
                Action::Delete { namespace, name } => {
                    let key = (namespace, name);
                    let Some(copy) = state.copies.get(&key).cloned() else {
                        continue;
                    };
                    (key, Job::Delete(copy))
                }
                Action::Conflict { namespace, secret } => {
                    let key = (namespace.clone(), secret.clone());
                    let uid = state
                        .unmanaged
                        .get(&key)
                        .map(|(e, _)| e.uid.clone())
                        .filter(|u| !u.is_empty());
                    let source = source_ref(&secret).map(|s| s.0).unwrap_or_default();
                    let _ = post_tx.send(Post {
                        regarding: Regarding {
                            api_version: "v1",
                            kind: "Secret",
                            namespace: namespace.clone(),
                            name: secret.clone(),
                            uid,
                        },
                        reason: "SecretConflict",
                        note: format!(
                            "Secret {namespace}/{secret} has no label {}={}, so sync leaves it as it is and does not copy {source} here; delete it (or give it that label) to let sync manage it",
                            reconcile::MANAGED_BY_LABEL,
                            reconcile::MANAGED_BY_VALUE
                        ),
                        warning: true,
                    });
                    continue;
                }
                Action::SourceInvalid {
                    secret,
                    source,
                    problem,
                } => {
                    invalid_now.insert(secret, format!("{source}: {problem}"));
                    continue;
                }
            };
            if busy.contains_key(&key) {
                continue;
            }
            busy.insert(key.clone(), None);
            self.spawn_write(key, job, writes, slots, done_tx);
        }
        // Sources: report problems that are new, and propagations done.
        for (secret, problem) in &invalid_now {
            if memory.invalid.get(secret) != Some(problem) {
                tracing::warn!(managed_secret = %secret, problem = %problem, "source of a managed secret cannot be copied; its copies are left as they are");
                if let Some((namespace, name)) = &self.settings.policy_configmap {
                    let _ = post_tx.send(Post {
                        regarding: Regarding {
                            api_version: "v1",
                            kind: "ConfigMap",
                            namespace: namespace.clone(),
                            name: name.clone(),
                            uid: None,
                        },
                        reason: "SourceSecretInvalid",
                        note: format!(
                            "managed secret {secret:?}: source {problem}; no copy is created or changed until it is fixed"
                        ),
                        warning: true,
                    });
                }
            }
        }
        for secret in memory.invalid.keys() {
            if !invalid_now.contains_key(secret) {
                tracing::info!(managed_secret = %secret, "source of a managed secret is valid again");
            }
        }
        memory.invalid = invalid_now;
        // Coverage: report findings that are new, on the source Secret.
        let uncovered_now: BTreeSet<Uncovered> = plan.uncovered.into_iter().collect();
        for found in uncovered_now.difference(&memory.uncovered) {
            let Some((_, skey)) = source_ref(&found.secret) else {
                continue;
            };
            let uid = state
                .sources
                .get(&skey)
                .and_then(|s| s.as_ref())
                .and_then(|s| s.uid.clone());
            tracing::warn!(rule = %found.rule, managed_secret = %found.secret, source = %found.source, host = %found.host, unreadable = found.unreadable, "a rule's registry is not covered by its managed secret's credentials; copies are made all the same");
            let _ = post_tx.send(Post {
                regarding: Regarding {
                    api_version: "v1",
                    kind: "Secret",
                    namespace: skey.0,
                    name: skey.1,
                    uid,
                },
                reason: "CredentialsDoNotCover",
                note: uncovered_note(found),
                warning: true,
            });
        }
        for found in memory.uncovered.difference(&uncovered_now) {
            tracing::info!(rule = %found.rule, managed_secret = %found.secret, host = %found.host, "a rule's registry is covered by its managed secret's credentials again (or no longer checked)");
        }
        memory.uncovered = uncovered_now;
        for (secret, status) in &plan.status {
            let Some(digest) = status.digest else {
                continue;
            };
            let written = memory.written.get(secret).copied().unwrap_or(0);
            if status.wanted == 0 || status.pending() > 0 || written == 0 {
                continue;
            }
            if memory.announced.get(secret) == Some(&digest) {
                continue;
            }
            memory.announced.insert(secret.clone(), digest);
            memory.written.remove(secret);
            let Some((text, skey)) = source_ref(secret) else {
                continue;
            };
            let uid = state
                .sources
                .get(&skey)
                .and_then(|s| s.as_ref())
                .and_then(|s| s.uid.clone());
            tracing::info!(managed_secret = %secret, source = %text, copies = status.synced, "source propagated to every copy");
            let _ = post_tx.send(Post {
                regarding: Regarding {
                    api_version: "v1",
                    kind: "Secret",
                    namespace: skey.0.clone(),
                    name: skey.1.clone(),
                    uid,
                },
                reason: "SourceSecretPropagated",
                note: format!(
                    "managed secret {secret:?}: {} cop{} in sync with this Secret ({written} written)",
                    status.synced,
                    if status.synced == 1 { "y" } else { "ies" }
                ),
                warning: false,
            });
        }
    }

    fn spawn_write(
        &self,
        key: (String, String),
        job: Job,
        writes: &mut JoinSet<()>,
        slots: &Arc<Semaphore>,
        done_tx: &mpsc::UnboundedSender<Done>,
    ) {
        let writer = Writer {
            client: self.client.clone(),
            leadership: self.leadership.clone(),
            metrics: self.metrics.clone(),
            cache: self.cache.clone(),
        };
        let (slots, done_tx) = (slots.clone(), done_tx.clone());
        writes.spawn(async move {
            let Ok(_permit) = slots.acquire_owned().await else {
                return;
            };
            let (namespace, name) = (&key.0, &key.1);
            let result = match &job {
                Job::Create(source, text) => writer.create(namespace, name, text, source).await,
                Job::Update(copy, source, text) => {
                    writer.update(namespace, name, copy, text, source).await
                }
                Job::Replace(copy, source, text) => {
                    match writer.delete(namespace, name, copy).await {
                        Ok(()) => writer.create(namespace, name, text, source).await,
                        Err(err) => Err(err),
                    }
                }
                Job::Delete(copy) => writer.delete(namespace, name, copy).await,
            };
            let _ = done_tx.send(Done { key, result });
        });
    }
}

/// What the reconciler remembers between passes.
#[derive(Default)]
struct Memory {
    /// Managed secret → its source problem, as last reported.
    invalid: BTreeMap<String, String>,
    /// Managed secret → copies written since its last propagation Event.
    written: BTreeMap<String, usize>,
    /// Managed secret → the source digest last announced as propagated.
    announced: BTreeMap<String, u64>,
    /// Coverage findings, as last reported.
    uncovered: BTreeSet<Uncovered>,
}

/// The note of a `CredentialsDoNotCover` Event: names rule, secret, source
/// and host, never a credential.
fn uncovered_note(found: &Uncovered) -> String {
    let Uncovered {
        secret,
        source,
        rule,
        host,
        unreadable,
    } = found;
    let why = if *unreadable {
        format!("its source {source} holds no docker config the kubelet can read")
    } else {
        format!(
            "its source {source} has no auths key the kubelet would use for it (an exact host is checked as an image on that host, a wildcard needs a whole-host key matching one of its hosts; keys with a path do not count)"
        )
    };
    format!(
        "rule {rule:?} injects managed secret {secret:?} for registry {host:?}, but {why}; the copies are made all the same, and pulls from {host} get no credentials from them"
    )
}

/// Posts Events from a channel, while this replica leads.
async fn post_events(
    mut events: Events,
    leadership: Arc<Leadership>,
    mut rx: mpsc::UnboundedReceiver<Post>,
) {
    while let Some(post) = rx.recv().await {
        if !leadership.is_leader() {
            continue;
        }
        if post.warning {
            events.warn(&post.regarding, post.reason, post.note).await;
        } else {
            events.normal(&post.regarding, post.reason, post.note).await;
        }
    }
}

/// Aborts a task when dropped (the reconciler's Event poster).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
