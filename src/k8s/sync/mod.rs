//! The `sync` controller: copies each managed secret's source into every
//! namespace where the webhook would inject it, keeps the copies equal to
//! the source, and removes copies no longer wanted (DESIGN §8).
//!
//! ```text
//! watches (observe.rs) ──▶ Cache ──snapshot + dirty marks──▶ reconciler
//!   namespaces, copies,     ▲                     (core::reconcile)
//!   sources                 │                           │ jobs
//!                           │ results                   ▼
//!                           └────────── write pool (write.rs: max_in_flight
//!                                       workers, leader only)
//!                      events (events.rs, leader only)
//! lease.rs: leader election; losing the Lease aborts writes in flight
//! ```
//!
//! Passes are incremental and level-triggered: every change marks the
//! namespace it touched, and a pass compares only the marked namespaces
//! ([`reconcile::plan_namespace`]), so a cold start's thousands of write
//! results cost one small comparison each. A change every namespace
//! depends on (a source, a policy edit, a re-list, leadership won, and
//! every `--conflict-recheck` as a safety net) makes a full pass
//! ([`reconcile::plan`]) on the blocking pool. Either compares a snapshot
//! of the cache taken in constant time, outside its lock: the watches and
//! the writers never wait for a pass, and the write pool keeps
//! `max_in_flight` writes going whatever the reconciler is doing. The
//! copy counts (metrics, the propagation Event) follow each partial pass
//! by the difference between the marked namespaces' counts in the previous
//! snapshot and in this one. Every replica observes and computes (its
//! metrics and readiness are real, and a new leader starts warm); only
//! the leader writes.

pub mod events;
pub mod lease;
pub mod metrics;
pub mod observe;
pub mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::core::policy::CompiledPolicy;
use crate::core::reconcile::{
    self, Action, Counts, Namespace, NamespacePlan, Plan, Sources, Uncovered,
};
use crate::runtime::policy_store::PolicyStore;
use crate::runtime::supervise::Supervisor;
use events::{Events, Regarding};
use lease::{Elector, Leadership, LeaseTimings};
use metrics::SyncMetrics;
use observe::{Cache, State};
use write::{Done, Job, Kind, Outcome, Pool, SourceRef, WriteError, Writer};

/// Shortest time between two reconcile passes: a burst of changes (a cold
/// start's writes echoing back) is compared in a few passes, not one each.
const MIN_PASS_GAP: Duration = Duration::from_millis(10);

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
    /// How often a Secret that blocked a copy is looked at again (and a
    /// full pass is made, as a safety net).
    pub conflict_recheck: Duration,
    /// How often the policy in force is checked for changes: new sources
    /// (the source watches) and edited rules (the reconciler).
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

/// An Event for the events task.
struct Post {
    regarding: Regarding,
    reason: &'static str,
    note: String,
    warning: bool,
}

/// What the reconciler knows between passes.
struct View {
    /// The snapshot the counts are of.
    snapshot: State,
    /// The policy generation of the last full pass.
    generation: u64,
    /// The sources as the last full pass judged them.
    sources: Sources,
    /// Per managed secret, in policy order: its copies over every
    /// namespace.
    counts: Vec<Counts>,
    /// A full pass is due.
    full: bool,
    /// Namespaces to compare again in the next pass: changed, or with a
    /// write that ended without the copy written.
    again: BTreeSet<String>,
}

impl Default for View {
    fn default() -> Self {
        View {
            snapshot: State::default(),
            generation: 0,
            sources: Sources::default(),
            counts: Vec::new(),
            full: true,
            again: BTreeSet::new(),
        }
    }
}

/// What a pass decided.
struct Pass {
    actions: Vec<Action>,
    /// It was a full pass: the sources were judged again.
    full: bool,
}

/// The plan of namespace `name` in `state`, if `state` has it.
fn plan_in(
    policy: &CompiledPolicy,
    sources: &Sources,
    state: &State,
    name: &str,
    install_namespace: &str,
) -> Option<NamespacePlan> {
    let entry = state.namespaces.get(name)?;
    let ns = Namespace {
        name,
        labels: &entry.labels,
        active: entry.active,
    };
    Some(reconcile::plan_namespace(
        policy,
        sources,
        &ns,
        install_namespace,
        state,
    ))
}

/// The whole comparison, and the sources as judged for it.
fn full_pass(policy: &CompiledPolicy, state: &State, install_namespace: &str) -> (Plan, Sources) {
    let namespaces: Vec<Namespace<'_>> = state
        .namespaces
        .iter()
        .map(|(name, ns)| Namespace {
            name,
            labels: &ns.labels,
            active: ns.active,
        })
        .collect();
    let plan = reconcile::plan(policy, &namespaces, install_namespace, state);
    (plan, reconcile::judge_sources(policy, state))
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

    /// The reconcile loop: a pass after every change (at most one per
    /// [`MIN_PASS_GAP`]), its writes queued to the pool.
    async fn reconcile(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let writer = Writer {
            client: self.client.clone(),
            leadership: self.leadership.clone(),
            metrics: self.metrics.clone(),
            cache: self.cache.clone(),
        };
        let mut pool = Pool::start(writer, self.settings.max_in_flight, done_tx);
        // Keys with a write queued or in flight (None) or failed recently
        // (retry after).
        let mut busy: HashMap<(String, String), Option<Instant>> = HashMap::new();
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
        // Policy edits that name no new source change nothing the watches
        // see: the generation is checked at least this often.
        let mut policy_poll =
            tokio::time::interval(self.settings.source_poll.max(Duration::from_millis(10)));
        let mut memory = Memory::default();
        let mut view = View::default();
        let mut retry_at: Option<Instant> = None;
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
                Some(done) = done_rx.recv() => finished(done, &mut busy, &mut memory, &mut view.again),
                _ = leading.changed() => {
                    if *leading.borrow_and_update() {
                        // What was decided while following was not acted on.
                        view.full = true;
                    } else {
                        // Lost the Lease: abandon every write at once.
                        pool.abandon();
                        // No pass queues while following: say so now.
                        self.metrics.queued(pool.queued());
                        busy.clear();
                        memory = Memory::default();
                    }
                }
                _ = recheck.tick() => {
                    self.cache.expire_unmanaged(self.settings.conflict_recheck);
                    view.full = true;
                }
                _ = policy_poll.tick() => {}
                () = retry => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            if let Some(wait) = MIN_PASS_GAP.checked_sub(last_pass_at.elapsed()) {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            }
            while let Ok(done) = done_rx.try_recv() {
                finished(done, &mut busy, &mut memory, &mut view.again);
            }
            let now = Instant::now();
            busy.retain(|key, until| match until {
                Some(at) if *at <= now => {
                    view.again.insert(key.0.clone());
                    false
                }
                _ => true,
            });
            retry_at = busy.values().flatten().min().copied();
            let pass = self.pass(&mut view).await;
            last_pass_at = Instant::now();
            let Some(pass) = pass else { continue };
            if !self.leadership.is_leader() {
                continue;
            }
            self.act(pass, &view, &mut busy, &mut memory, &pool, &post_tx);
            self.metrics.queued(pool.queued());
        }
    }

    /// Compares wanted and observed where something changed (everywhere
    /// when a full pass is due), on a snapshot; updates the copy metrics.
    /// `None` until the policy is loaded and every watch has listed.
    async fn pass(&self, view: &mut View) -> Option<Pass> {
        let policy = self.policy.current()?;
        let (snapshot, dirty) = self.cache.snapshot();
        view.full |= dirty.all || policy.generation != view.generation;
        view.again.extend(dirty.namespaces);
        if !snapshot.synced(&policy.policy) {
            // What changed meanwhile is not counted: count it all then.
            view.full = true;
            return None;
        }
        let started = std::time::Instant::now();
        let install = &self.settings.namespace;
        let pass = if view.full {
            let (shared, state, install) = (policy.clone(), snapshot.clone(), install.clone());
            // Proportional to the cluster: off the async workers.
            let compared =
                tokio::task::spawn_blocking(move || full_pass(&shared.policy, &state, &install))
                    .await;
            let (plan, sources) = match compared {
                Ok(compared) => compared,
                Err(err) => {
                    tracing::error!(error = %err, "a reconcile pass failed; trying again at the next change");
                    return None;
                }
            };
            view.counts = sources
                .names()
                .iter()
                .map(|name| {
                    plan.status
                        .get(name)
                        .map_or_else(Counts::default, |s| Counts {
                            wanted: s.wanted,
                            synced: s.synced,
                            conflicts: s.conflicts,
                        })
                })
                .collect();
            view.sources = sources;
            view.generation = policy.generation;
            view.full = false;
            view.again.clear();
            Pass {
                actions: plan.actions,
                full: true,
            }
        } else {
            let mut actions = Vec::new();
            for name in std::mem::take(&mut view.again) {
                let plan =
                    |state: &State| plan_in(&policy.policy, &view.sources, state, &name, install);
                let before = plan(&view.snapshot);
                let after = plan(&snapshot);
                let counts = view.counts.iter_mut().enumerate();
                for (i, total) in counts {
                    let count = |p: &Option<NamespacePlan>| {
                        p.as_ref()
                            .and_then(|p| p.counts.get(i).copied())
                            .unwrap_or_default()
                    };
                    *total = *total - count(&before) + count(&after);
                }
                actions.extend(after.into_iter().flat_map(|p| p.actions));
            }
            Pass {
                actions,
                full: false,
            }
        };
        view.snapshot = snapshot;
        self.metrics.reconciled(started.elapsed());
        let (mut synced, mut conflict, mut pending, mut invalid) = (0, 0, 0, 0);
        for status in view.sources.status(&view.counts).values() {
            synced += status.synced;
            conflict += status.conflicts;
            pending += status.pending();
            invalid += usize::from(status.source_invalid);
        }
        self.metrics.copies(synced, conflict, pending, invalid);
        Some(pass)
    }

    /// Queues a pass's writes and posts its events.
    fn act(
        &self,
        pass: Pass,
        view: &View,
        busy: &mut HashMap<(String, String), Option<Instant>>,
        memory: &mut Memory,
        pool: &Pool,
        post_tx: &mpsc::UnboundedSender<Post>,
    ) {
        let Some(snapshot) = self.policy.current() else {
            return;
        };
        let source_ref = |secret: &str| {
            snapshot.policy.managed(secret).map(|m| SourceRef {
                text: m.source(),
                key: (m.from_namespace.clone(), m.from_name.clone()),
            })
        };
        let source_uid = |key: &(String, String)| {
            view.snapshot
                .sources
                .get(key)
                .and_then(|s| s.as_ref())
                .and_then(|s| s.uid.clone())
        };
        let mut refs: HashMap<String, Option<Arc<SourceRef>>> = HashMap::new();
        let mut invalid_now: BTreeMap<String, String> = BTreeMap::new();
        for action in pass.actions {
            let (key, kind) = match action {
                Action::Create { namespace, secret } => ((namespace, secret), Kind::Create),
                Action::Update { namespace, secret } => ((namespace, secret), Kind::Update),
                Action::Replace { namespace, secret } => ((namespace, secret), Kind::Replace),
                Action::Delete { namespace, name } => ((namespace, name), Kind::Delete),
                Action::Conflict { namespace, secret } => {
                    let uid = view
                        .snapshot
                        .unmanaged
                        .get(namespace.as_str())
                        .and_then(|names| names.get(&secret))
                        .map(|(e, _)| e.uid.clone())
                        .filter(|u| !u.is_empty());
                    let source = source_ref(&secret).map(|s| s.text).unwrap_or_default();
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
            let source = if kind == Kind::Delete {
                None
            } else {
                let found = refs
                    .entry(key.1.clone())
                    .or_insert_with(|| source_ref(&key.1).map(Arc::new));
                let Some(found) = found.clone() else {
                    continue;
                };
                Some(found)
            };
            busy.insert(key.clone(), None);
            pool.push(Job {
                namespace: key.0,
                name: key.1,
                kind,
                source,
            });
        }
        if pass.full {
            self.report_sources(view, invalid_now, memory, post_tx);
        }
        // Propagations done: every wanted copy of a secret in sync after
        // writes, with a source not announced yet.
        for (secret, status) in &view.sources.status(&view.counts) {
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
            let Some(SourceRef { text, key }) = source_ref(secret) else {
                continue;
            };
            let uid = source_uid(&key);
            tracing::info!(managed_secret = %secret, source = %text, copies = status.synced, "source propagated to every copy");
            let _ = post_tx.send(Post {
                regarding: Regarding {
                    api_version: "v1",
                    kind: "Secret",
                    namespace: key.0,
                    name: key.1,
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

    /// Reports source problems and coverage findings that are new (after a
    /// full pass, which judges the sources).
    fn report_sources(
        &self,
        view: &View,
        invalid_now: BTreeMap<String, String>,
        memory: &mut Memory,
        post_tx: &mpsc::UnboundedSender<Post>,
    ) {
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
        let Some(snapshot) = self.policy.current() else {
            return;
        };
        let uncovered_now: BTreeSet<Uncovered> = view.sources.uncovered.iter().cloned().collect();
        for found in uncovered_now.difference(&memory.uncovered) {
            let Some(m) = snapshot.policy.managed(&found.secret) else {
                continue;
            };
            let key = (m.from_namespace.clone(), m.from_name.clone());
            let uid = view
                .snapshot
                .sources
                .get(&key)
                .and_then(|s| s.as_ref())
                .and_then(|s| s.uid.clone());
            tracing::warn!(rule = %found.rule, managed_secret = %found.secret, source = %found.source, host = %found.host, unreadable = found.unreadable, "a rule's registry is not covered by its managed secret's credentials; copies are made all the same");
            let _ = post_tx.send(Post {
                regarding: Regarding {
                    api_version: "v1",
                    kind: "Secret",
                    namespace: key.0,
                    name: key.1,
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
    }
}

/// Bookkeeping of a finished write: a copy not written is compared again
/// at once (the cache has what the API server said), a failure after a
/// backoff.
fn finished(
    done: Done,
    busy: &mut HashMap<(String, String), Option<Instant>>,
    memory: &mut Memory,
    again: &mut BTreeSet<String>,
) {
    match done.outcome {
        Outcome::Written => {
            busy.remove(&done.key);
            *memory.written.entry(done.key.1).or_default() += 1;
            // A pass may have skipped it while the write was out (a
            // rotation meanwhile): look again.
            again.insert(done.key.0);
        }
        Outcome::Skipped | Outcome::Failed(WriteError::Conflict | WriteError::NotLeader) => {
            busy.remove(&done.key);
            again.insert(done.key.0);
        }
        Outcome::Failed(WriteError::Api(err)) => {
            tracing::warn!(namespace = %done.key.0, secret = %done.key.1, error = %err, "Secret write failed; retrying later");
            busy.insert(done.key, Some(Instant::now() + FAILED_WRITE_BACKOFF));
        }
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
