//! What `sync` observes, kept current by watches: Namespaces (metadata
//! only), the managed copies (by the managed-by label, cluster-wide — never
//! every Secret), and each source Secret (by name, in its namespace).
//!
//! The [`Cache`] keeps of a copy only what the reconcile compares (labels
//! that matter, type, a digest of the content, uid and resourceVersion), so
//! its size does not grow with the size of the credentials. Each change
//! marks the namespace it touched (or, for a source or a re-list,
//! everything) as dirty, so the reconciler compares only what changed; it
//! compares on a snapshot, outside the lock. Sources are
//! kept whole: there are few, and their content is what gets written; their
//! `auths` keys (never the credentials) are read once per change, for the
//! coverage check.
//!
//! Each watch is kube's watcher, retried as [`crate::k8s::retry`] says: a
//! `410 Gone` lists again at once, other errors wait at most a few seconds. A re-list replaces what it covers in one step at
//! `InitDone`, so objects deleted while the watch was down disappear too.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::{StreamExt as _, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::core::credentials::{ConfigFormat, DockerConfig};
use crate::core::policy::CompiledPolicy;
use crate::core::reconcile::{
    self, Copy, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Observed, SOURCE_ANNOTATION, Source,
};
use crate::k8s::retry::{Recovery, Retry};
use crate::runtime::policy_store::PolicyStore;

/// The label selector of the copies watch.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
}

/// A namespace: labels and whether it is active.
#[derive(Debug, Clone)]
pub struct NamespaceEntry {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Not being deleted.
    pub active: bool,
}

/// What is kept of an existing Secret named like a managed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyEntry {
    /// Carries the managed-by label.
    pub managed: bool,
    /// Its source annotation.
    pub source: Option<String>,
    /// Its type.
    pub type_: String,
    /// Digest of type and data.
    pub digest: u64,
    /// Its uid (a delete precondition).
    pub uid: String,
    /// Its resourceVersion (update and delete precondition).
    pub resource_version: String,
}

/// A source Secret, whole, with its digest.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Its type.
    pub type_: String,
    /// Its data (never logged).
    pub data: Arc<BTreeMap<String, ByteString>>,
    /// Digest of type and data.
    pub digest: u64,
    /// Its uid, for Events about it.
    pub uid: Option<String>,
    /// Its `auths` keys as the kubelet reads them (only keys are kept);
    /// `None` when its content is unreadable or its type not a pull
    /// secret's.
    pub keys: Option<Arc<DockerConfig>>,
}

/// The `auths` keys of a Secret of type `type_` with `data`, read as the
/// kubelet reads a pull secret: by its type, from the type's data key (an
/// absent or empty one gives no keys).
pub fn source_keys(type_: &str, data: &BTreeMap<String, ByteString>) -> Option<DockerConfig> {
    let format = ConfigFormat::from_secret_type(type_)?;
    let content = data.get(format.data_key()).map_or(&[][..], |v| &v.0[..]);
    DockerConfig::parse(format, content).ok()
}

/// The observed state, shared by the watches, the writers and the
/// reconciler. Every change is a few map operations under the lock and
/// marks what it touched as [`Dirty`]; the reconciler takes a [`State`]
/// snapshot (a constant-time clone of persistent maps) with the dirty
/// marks in one step and compares outside the lock, so watches and
/// writers never wait for a comparison.
#[derive(Debug)]
pub struct Cache {
    inner: Mutex<Inner>,
    digests: RandomState,
    /// Woken on every change.
    pub changed: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    state: State,
    dirty: Dirty,
}

/// What changed since the last [`Cache::snapshot`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Something every namespace depends on changed: a source, a re-list.
    pub all: bool,
    /// Namespaces whose entry, copies or unmanaged Secrets changed.
    pub namespaces: BTreeSet<String>,
}

/// A namespace's Secrets named like managed secrets, by name.
pub type InNamespace<T> = Arc<BTreeMap<String, T>>;

/// The maps behind the [`Cache`] lock. The big ones are persistent
/// (`imbl`), keyed by namespace with shared (`Arc`) values, so a clone is
/// cheap and a change after a clone copies only a path of small nodes.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// Namespaces by name.
    pub namespaces: imbl::OrdMap<Arc<str>, Arc<NamespaceEntry>>,
    /// Managed copies by namespace, then name.
    pub copies: imbl::OrdMap<Arc<str>, InNamespace<CopyEntry>>,
    /// Secrets without the managed-by label found in a copy's place (on a
    /// 409), with when that was seen, by namespace, then name.
    pub unmanaged: imbl::OrdMap<Arc<str>, InNamespace<(CopyEntry, Instant)>>,
    /// Sources by (namespace, name): `None` when listed and absent; not
    /// present until listed.
    pub sources: BTreeMap<(String, String), Option<SourceEntry>>,
    /// The namespace and copies watches have listed once.
    pub namespaces_synced: bool,
    /// See `namespaces_synced`.
    pub copies_synced: bool,
}

/// `map[namespace][name] = value` (`None`: removed), copying only that
/// namespace's small map. Whether something changed.
fn set_in<T: Clone>(
    map: &mut imbl::OrdMap<Arc<str>, InNamespace<T>>,
    namespace: &str,
    name: &str,
    value: Option<T>,
) -> bool {
    let mut names = map
        .get(namespace)
        .map(|names| names.as_ref().clone())
        .unwrap_or_default();
    let changed = match value {
        Some(value) => {
            names.insert(name.to_owned(), value);
            true
        }
        None => names.remove(name).is_some(),
    };
    if changed {
        if names.is_empty() {
            map.remove(namespace);
        } else {
            map.insert(Arc::from(namespace), Arc::new(names));
        }
    }
    changed
}

/// Groups `(namespace, name) → value` by namespace.
fn by_namespace<T: Clone>(
    flat: BTreeMap<(String, String), T>,
) -> imbl::OrdMap<Arc<str>, InNamespace<T>> {
    let mut grouped: BTreeMap<String, BTreeMap<String, T>> = BTreeMap::new();
    for ((namespace, name), value) in flat {
        grouped.entry(namespace).or_default().insert(name, value);
    }
    grouped
        .into_iter()
        .map(|(namespace, names)| (Arc::from(namespace), Arc::new(names)))
        .collect()
}

impl State {
    /// The managed copy `namespace/name`.
    pub fn managed_copy(&self, namespace: &str, name: &str) -> Option<&CopyEntry> {
        self.copies.get(namespace)?.get(name)
    }

    /// Every managed copy, with its namespace and name.
    pub fn all_copies(&self) -> impl Iterator<Item = (&str, &str, &CopyEntry)> {
        self.copies.iter().flat_map(|(namespace, names)| {
            names
                .iter()
                .map(move |(name, copy)| (namespace.as_ref(), name.as_str(), copy))
        })
    }

    /// The namespace and copies watches have listed, and so has the watch
    /// of every source `policy` names.
    pub fn synced(&self, policy: &CompiledPolicy) -> bool {
        self.namespaces_synced
            && self.copies_synced
            && policy.managed_secrets().iter().all(|m| {
                self.sources
                    .contains_key(&(m.from_namespace.clone(), m.from_name.clone()))
            })
    }
}

impl Observed for State {
    fn source(&self, namespace: &str, name: &str) -> Source<'_> {
        match self.sources.get(&(namespace.to_owned(), name.to_owned())) {
            None => Source::Unknown,
            Some(None) => Source::Missing,
            Some(Some(s)) => Source::Present {
                type_: &s.type_,
                digest: s.digest,
                keys: s.keys.as_deref(),
            },
        }
    }

    fn copy(&self, namespace: &str, name: &str) -> Option<Copy<'_>> {
        let entry = self.managed_copy(namespace, name).or_else(|| {
            self.unmanaged
                .get(namespace)
                .and_then(|names| names.get(name))
                .map(|(e, _)| e)
        })?;
        Some(Copy {
            managed: entry.managed,
            source: entry.source.as_deref(),
            type_: &entry.type_,
            digest: entry.digest,
        })
    }

    fn for_each_managed(&self, f: &mut dyn FnMut(&str, &str)) {
        for (namespace, name, _) in self.all_copies() {
            f(namespace, name);
        }
    }

    fn for_each_managed_in(&self, namespace: &str, f: &mut dyn FnMut(&str)) {
        for name in self.copies.get(namespace).iter().flat_map(|n| n.keys()) {
            f(name);
        }
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            inner: Mutex::new(Inner::default()),
            digests: RandomState::new(),
            changed: Notify::new(),
        }
    }
}

impl Cache {
    /// The state, locked. Every change is a few map operations, so a panic
    /// elsewhere cannot leave it half-written: poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state with `change`, which marks what it touched and
    /// returns whether it changed anything; wakes the reconciler if so.
    fn update(&self, change: impl FnOnce(&mut State, &mut Dirty) -> bool) {
        let changed = {
            let mut inner = self.lock();
            let Inner { state, dirty } = &mut *inner;
            change(state, dirty)
        };
        if changed {
            self.changed.notify_one();
        }
    }

    /// A copy of the state (cheap: persistent maps) and what changed since
    /// the last call, taken in one step.
    pub fn snapshot(&self) -> (State, Dirty) {
        let mut inner = self.lock();
        let dirty = std::mem::take(&mut inner.dirty);
        (inner.state.clone(), dirty)
    }

    /// The managed copy `namespace/name` as observed now.
    pub fn managed_copy(&self, namespace: &str, name: &str) -> Option<CopyEntry> {
        self.lock().state.managed_copy(namespace, name).cloned()
    }

    /// The source `key` as observed now, if present.
    pub fn source(&self, key: &(String, String)) -> Option<SourceEntry> {
        self.lock().state.sources.get(key).cloned().flatten()
    }

    /// The digest of a Secret's type and data.
    pub fn digest(&self, secret: &Secret) -> u64 {
        let data = secret.data.iter().flatten();
        reconcile::content_digest(
            &self.digests,
            secret.type_.as_deref().unwrap_or("Opaque"),
            data.map(|(k, v)| (k.as_str(), v.0.as_slice())),
        )
    }

    /// What is kept of a Secret in a copy's place.
    pub fn entry(&self, secret: &Secret) -> CopyEntry {
        let meta = &secret.metadata;
        CopyEntry {
            managed: is_managed(meta),
            source: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(SOURCE_ANNOTATION))
                .cloned(),
            type_: secret.type_.clone().unwrap_or_else(|| "Opaque".to_owned()),
            digest: self.digest(secret),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
        }
    }

    /// Records what a read of `namespace/name` found (after a write was
    /// refused): a managed copy, someone else's Secret, or nothing.
    pub fn observe_read(&self, namespace: &str, name: &str, secret: Option<&Secret>) {
        let entry = secret.map(|s| self.entry(s));
        self.update(|state, dirty| {
            match entry {
                Some(entry) if entry.managed => {
                    set_in(&mut state.unmanaged, namespace, name, None);
                    set_in(&mut state.copies, namespace, name, Some(entry));
                }
                Some(entry) => {
                    set_in(&mut state.copies, namespace, name, None);
                    let seen = Some((entry, Instant::now()));
                    set_in(&mut state.unmanaged, namespace, name, seen);
                }
                None => {
                    set_in(&mut state.copies, namespace, name, None);
                    set_in(&mut state.unmanaged, namespace, name, None);
                }
            }
            dirty.namespaces.insert(namespace.to_owned());
            true
        });
    }

    /// Records a write's result: the copy as the API server returned it,
    /// or gone.
    pub fn observe_write(&self, namespace: &str, name: &str, secret: Option<&Secret>) {
        self.observe_read(namespace, name, secret);
    }

    /// Forgets unmanaged Secrets seen longer ago than `after`, so the next
    /// pass tries again (the owner may have deleted theirs).
    pub fn expire_unmanaged(&self, after: Duration) {
        self.update(|state, dirty| {
            let expired: Vec<(String, String)> = state
                .unmanaged
                .iter()
                .flat_map(|(namespace, names)| {
                    names
                        .iter()
                        .filter(|(_, (_, seen))| seen.elapsed() >= after)
                        .map(move |(name, _)| (namespace.to_string(), name.clone()))
                })
                .collect();
            for (namespace, name) in &expired {
                set_in(&mut state.unmanaged, namespace, name, None);
                dirty.namespaces.insert(namespace.clone());
            }
            !expired.is_empty()
        });
    }

    /// All watches have listed: namespaces, copies, and every source of
    /// the policy in force.
    pub fn synced(&self, policy: &PolicyStore) -> bool {
        let Some(policy) = policy.current() else {
            return false;
        };
        self.lock().state.synced(&policy.policy)
    }
}

fn is_managed(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

fn key_of(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Runs the watch `start` builds until `stop`, handing every event to
/// `apply`; errors are retried as [`crate::k8s::retry`] says (a `410 Gone`
/// lists again at once).
async fn drive<K, S>(
    what: &str,
    start: impl Fn() -> S,
    mut stop: watch::Receiver<bool>,
    mut apply: impl FnMut(watcher::Event<K>),
) -> anyhow::Result<()>
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
{
    let mut events = start();
    let mut retry = Retry::default();
    loop {
        let item = tokio::select! {
            item = events.next() => item,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match item {
            Some(Ok(event)) => {
                retry.answered_by(&event);
                apply(event);
            }
            Some(Err(err)) => match retry.after(&err) {
                Recovery::Relist => {
                    tracing::info!(watch = what, error = %err, "watch expired; listing again now");
                    events = start();
                }
                Recovery::Wait(wait) => {
                    tracing::warn!(watch = what, error = %err, retry_in = ?wait, "watch failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
            },
            None => anyhow::bail!("the {what} watch ended"),
        }
    }
}

/// Watches Namespaces (metadata only) into the cache until `stop`.
pub async fn watch_namespaces(
    client: Client,
    cache: Arc<Cache>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let start = || watcher(api.clone(), watcher::Config::default()).boxed();
    let mut listing: Option<BTreeMap<String, NamespaceEntry>> = None;
    let entry = |ns: &PartialObjectMeta<Namespace>| {
        (
            ns.metadata.name.clone().unwrap_or_default(),
            NamespaceEntry {
                labels: ns.metadata.labels.clone().unwrap_or_default(),
                active: ns.metadata.deletion_timestamp.is_none(),
            },
        )
    };
    drive("namespace", start, stop, |event| match event {
        watcher::Event::Init => listing = Some(BTreeMap::new()),
        watcher::Event::InitApply(ns) => {
            let (name, e) = entry(&ns);
            listing.get_or_insert_default().insert(name, e);
        }
        watcher::Event::InitDone => {
            let listed: imbl::OrdMap<Arc<str>, Arc<NamespaceEntry>> = listing
                .take()
                .unwrap_or_default()
                .into_iter()
                .map(|(name, e)| (Arc::from(name), Arc::new(e)))
                .collect();
            cache.update(|state, dirty| {
                state.namespaces = listed;
                state.namespaces_synced = true;
                dirty.all = true;
                true
            });
        }
        watcher::Event::Apply(ns) => {
            let (name, e) = entry(&ns);
            cache.update(|state, dirty| {
                state
                    .namespaces
                    .insert(Arc::from(name.as_str()), Arc::new(e));
                dirty.namespaces.insert(name);
                true
            });
        }
        watcher::Event::Delete(ns) => {
            let (name, _) = entry(&ns);
            cache.update(|state, dirty| {
                state.namespaces.remove(name.as_str());
                dirty.namespaces.insert(name);
                true
            });
        }
    })
    .await
}

/// Watches the managed copies (by label, in every namespace) until `stop`.
pub async fn watch_copies(
    client: Client,
    cache: Arc<Cache>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::all(client);
    let config = watcher::Config::default().labels(&managed_selector());
    let start = || watcher(api.clone(), config.clone()).boxed();
    let mut listing: Option<BTreeMap<(String, String), CopyEntry>> = None;
    drive("managed Secret", start, stop, |event| {
        match event {
            watcher::Event::Init => listing = Some(BTreeMap::new()),
            watcher::Event::InitApply(secret) => {
                let entry = cache.entry(&secret);
                listing
                    .get_or_insert_default()
                    .insert(key_of(&secret.metadata), entry);
            }
            watcher::Event::InitDone => {
                let listed = by_namespace(listing.take().unwrap_or_default());
                cache.update(|state, dirty| {
                    state.copies = listed;
                    state.copies_synced = true;
                    dirty.all = true;
                    true
                });
            }
            watcher::Event::Apply(secret) => {
                let entry = cache.entry(&secret);
                let (namespace, name) = key_of(&secret.metadata);
                cache.update(|state, dirty| {
                    // Our own write echoing back is known already.
                    if state.managed_copy(&namespace, &name) == Some(&entry)
                        || newer_known(state, &namespace, &name, &entry.resource_version)
                    {
                        return false;
                    }
                    set_in(&mut state.unmanaged, &namespace, &name, None);
                    set_in(&mut state.copies, &namespace, &name, Some(entry));
                    dirty.namespaces.insert(namespace);
                    true
                });
            }
            watcher::Event::Delete(secret) => {
                let (namespace, name) = key_of(&secret.metadata);
                let rv = secret.metadata.resource_version.clone().unwrap_or_default();
                cache.update(|state, dirty| {
                    if newer_known(state, &namespace, &name, &rv)
                        || !set_in(&mut state.copies, &namespace, &name, None)
                    {
                        return false;
                    }
                    dirty.namespaces.insert(namespace);
                    true
                });
            }
        }
    })
    .await
}

/// Whether the cache already holds a later version of `key` than `rv`
/// (written by this controller, whose answer came before the watch
/// caught up). resourceVersions are compared only when both are numbers,
/// as etcd's are; otherwise the event is applied.
fn newer_known(state: &State, namespace: &str, name: &str, rv: &str) -> bool {
    let Some(cached) = state.managed_copy(namespace, name) else {
        return false;
    };
    match (cached.resource_version.parse::<u64>(), rv.parse::<u64>()) {
        (Ok(cached), Ok(event)) => cached > event,
        _ => false,
    }
}

/// The sources the policy in force names.
fn wanted_sources(policy: &PolicyStore) -> BTreeSet<(String, String)> {
    policy
        .current()
        .map(|p| {
            p.policy
                .managed_secrets()
                .iter()
                .map(|m| (m.from_namespace.clone(), m.from_name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Watches each source Secret the policy names (one watch per source, by
/// `metadata.name` in its namespace) until `stop`; when the policy's set of
/// sources changes, the watches are set up again.
pub async fn watch_sources(
    client: Client,
    cache: Arc<Cache>,
    policy: Arc<PolicyStore>,
    mut stop: watch::Receiver<bool>,
    poll: Duration,
) -> anyhow::Result<()> {
    loop {
        let sources = wanted_sources(&policy);
        cache.update(|state, dirty| {
            let before = state.sources.len();
            state.sources.retain(|key, _| sources.contains(key));
            dirty.all |= state.sources.len() != before;
            dirty.all
        });
        let streams = sources.iter().map(|(namespace, name)| {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let key = (namespace.clone(), name.clone());
            watcher(api, config)
                .map(move |event| (key.clone(), event))
                .boxed()
        });
        let mut events = stream::select_all(streams);
        let mut seen: BTreeMap<(String, String), bool> = BTreeMap::new();
        let mut retry = Retry::default();
        let mut recheck = tokio::time::interval(poll);
        recheck.tick().await;
        loop {
            let item = tokio::select! {
                item = events.next(), if !sources.is_empty() => item,
                _ = recheck.tick() => {
                    if wanted_sources(&policy) != sources {
                        break;
                    }
                    continue;
                }
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            let Some((key, event)) = item else {
                anyhow::bail!("the source Secret watches ended");
            };
            let event = match event {
                Ok(event) => {
                    retry.answered_by(&event);
                    event
                }
                Err(err) => match retry.after(&err) {
                    // Every source watch is set up again (there are few).
                    Recovery::Relist => break,
                    Recovery::Wait(wait) => {
                        tracing::warn!(source = %format!("{}/{}", key.0, key.1), error = %err, retry_in = ?wait, "source Secret watch failed; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            _ = stop.wait_for(|s| *s) => return Ok(()),
                        }
                        continue;
                    }
                },
            };
            let entry = |secret: &Secret| {
                let type_ = secret.type_.clone().unwrap_or_else(|| "Opaque".to_owned());
                let data = secret.data.clone().unwrap_or_default();
                SourceEntry {
                    keys: source_keys(&type_, &data).map(Arc::new),
                    type_,
                    data: Arc::new(data),
                    digest: cache.digest(secret),
                    uid: secret.metadata.uid.clone(),
                }
            };
            let observed = match event {
                watcher::Event::Init => {
                    seen.insert(key, false);
                    continue;
                }
                watcher::Event::InitApply(secret) | watcher::Event::Apply(secret) => {
                    seen.insert(key.clone(), true);
                    Some(entry(&secret))
                }
                watcher::Event::InitDone if seen.get(&key) == Some(&false) => None,
                // Listed and found: already recorded.
                watcher::Event::InitDone => continue,
                watcher::Event::Delete(_) => None,
            };
            // Every copy depends on its source: the next pass looks at all.
            cache.update(|state, dirty| {
                state.sources.insert(key, observed);
                dirty.all = true;
                true
            });
        }
    }
}
