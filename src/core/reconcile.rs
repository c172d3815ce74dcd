//! What `sync` must do: the policy's managed secrets and what is observed in
//! the cluster in, the writes and warnings out (DESIGN §8).
//!
//! A copy `N/S` of a managed secret S is **wanted** exactly where the webhook
//! would inject S ([`secrets_wanted_in`]) and N is an ordinary, active
//! namespace: not S's source namespace, not `kube-system`, not the install
//! namespace, not labelled `pull-secret-injector.io/inject: "false"`. Then:
//!
//! | observed `N/S`                           | wanted            | not wanted |
//! |------------------------------------------|-------------------|------------|
//! | absent                                   | [`Action::Create`] | —          |
//! | managed, same content and source         | —                 | [`Action::Delete`] |
//! | managed, other content or source         | [`Action::Update`] | [`Action::Delete`] |
//! | managed, other `type` (immutable)        | [`Action::Replace`] | [`Action::Delete`] |
//! | not managed (no managed-by label)        | [`Action::Conflict`] | —        |
//!
//! A source that is missing or not a pull secret stops every write of its
//! copies (they stay as they are, pods keep pulling) and is reported as
//! [`Action::SourceInvalid`]; a source not observed yet stops them silently.
//! Copies in namespaces that are not active are left to the namespace's
//! deletion.
//!
//! For a valid source, every registry pattern of every rule that lists the
//! managed secret is checked against the source's `auths` keys
//! ([`Keyring::covers`]); a pattern no key covers is an [`Uncovered`]
//! finding in [`Plan::uncovered`]. The copies are made all the same.
//!
//! Pure: the edge observes (watches) and applies (writes); this module only
//! compares. Content is compared through digests the edge computes with
//! [`content_digest`], so the controller never keeps a copy's data.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use super::credentials::{DockerConfig, Keyring};
use super::policy::{CompiledPolicy, ManagedSecret, NamespaceFacts};
use super::query::secrets_wanted_in;

/// The label every copy carries; only Secrets with it are ever changed.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY_VALUE: &str = "pull-secret-injector";
/// The annotation naming a copy's source, `NAMESPACE/NAME`.
pub const SOURCE_ANNOTATION: &str = "pull-secret-injector.io/source";
/// The namespace label that opts a namespace out (value `"false"`).
pub const INJECT_LABEL: &str = "pull-secret-injector.io/inject";
/// The Secret types the kubelet reads pull credentials from.
pub const PULL_SECRET_TYPES: [&str; 2] =
    ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];

/// A namespace as the controller sees it.
#[derive(Debug, Clone, Copy)]
pub struct Namespace<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
    /// `Active` (not being deleted).
    pub active: bool,
}

/// A managed secret's source, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Not observed yet (its watch has not listed): nothing is decided.
    Unknown,
    /// No such Secret.
    Missing,
    /// The Secret exists.
    Present {
        /// Its `type`.
        type_: &'a str,
        /// [`content_digest`] of its type and data.
        digest: u64,
        /// Its `auths` keys, read with [`DockerConfig::parse`] in the
        /// format its type says; `None` when the content is not a docker
        /// config the kubelet can read (or the type is not a pull-secret
        /// type).
        keys: Option<&'a DockerConfig>,
    },
}

/// An existing Secret with a managed secret's name in some namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy<'a> {
    /// It carries `app.kubernetes.io/managed-by: pull-secret-injector`.
    pub managed: bool,
    /// Its `pull-secret-injector.io/source` annotation.
    pub source: Option<&'a str>,
    /// Its `type`.
    pub type_: &'a str,
    /// [`content_digest`] of its type and data.
    pub digest: u64,
}

/// What the controller has observed.
pub trait Observed {
    /// The source Secret `namespace/name`.
    fn source(&self, namespace: &str, name: &str) -> Source<'_>;
    /// The Secret `namespace/name`, when it exists (or is known to).
    fn copy(&self, namespace: &str, name: &str) -> Option<Copy<'_>>;
    /// Calls `f(namespace, name)` for every Secret with the managed-by label.
    fn for_each_managed(&self, f: &mut dyn FnMut(&str, &str));
    /// Calls `f(name)` for every Secret with the managed-by label in
    /// `namespace` (an observer that indexes by namespace answers this
    /// without looking at the others).
    fn for_each_managed_in(&self, namespace: &str, f: &mut dyn FnMut(&str)) {
        self.for_each_managed(&mut |ns, name| {
            if ns == namespace {
                f(name);
            }
        });
    }
}

/// Why a source cannot be copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceProblem {
    /// The Secret does not exist.
    Missing,
    /// Its type is not a pull-secret type.
    WrongType(String),
}

impl std::fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceProblem::Missing => f.write_str("the source Secret does not exist"),
            SourceProblem::WrongType(t) => write!(
                f,
                "the source Secret has type {t:?}; expected {} or {}",
                PULL_SECRET_TYPES[0], PULL_SECRET_TYPES[1]
            ),
        }
    }
}

/// One thing to do. Namespaces and names are owned: actions are few (only
/// differences), observations are many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the copy `namespace/secret` from the source.
    Create {
        /// Where.
        namespace: String,
        /// The managed secret's name.
        secret: String,
    },
    /// Bring the managed copy back to the source's content.
    Update {
        /// Where.
        namespace: String,
        /// The managed secret's name.
        secret: String,
    },
    /// The copy's type differs and types are immutable: delete it (only if
    /// it is still the managed copy observed) and create it again.
    Replace {
        /// Where.
        namespace: String,
        /// The managed secret's name.
        secret: String,
    },
    /// Delete a managed copy that is no longer wanted.
    Delete {
        /// Where.
        namespace: String,
        /// The copy's name.
        name: String,
    },
    /// A Secret without the managed-by label is in the way: leave it, warn.
    Conflict {
        /// Where.
        namespace: String,
        /// The managed secret's name.
        secret: String,
    },
    /// The source cannot be copied: no copy of it is written.
    SourceInvalid {
        /// The managed secret's name.
        secret: String,
        /// Its source, `NAMESPACE/NAME`.
        source: String,
        /// What is wrong.
        problem: SourceProblem,
    },
}

/// A registry pattern of a rule that the rule's managed secret has no
/// credentials for: pods pulling from there get none from this secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Uncovered {
    /// The managed secret's name.
    pub secret: String,
    /// Its source, `NAMESPACE/NAME`.
    pub source: String,
    /// The rule listing the secret.
    pub rule: String,
    /// The rule's registry pattern, as written.
    pub host: String,
    /// The source's content is not a docker config the kubelet can read
    /// (so no pattern is covered).
    pub unreadable: bool,
}

/// The copies of one managed secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretStatus {
    /// Namespaces where a copy is wanted.
    pub wanted: usize,
    /// Of those, copies equal to the source.
    pub synced: usize,
    /// Of those, blocked by an unmanaged Secret.
    pub conflicts: usize,
    /// The source cannot be copied (missing or wrong type).
    pub source_invalid: bool,
    /// The source's digest the synced copies carry, when it is present.
    pub digest: Option<u64>,
}

impl SecretStatus {
    /// Wanted copies neither synced nor in conflict: to be written.
    pub fn pending(&self) -> usize {
        self.wanted - self.synced - self.conflicts
    }
}

/// The outcome of one comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do, grouped by managed secret in policy order, then the
    /// deletions of copies of secrets the policy no longer manages.
    pub actions: Vec<Action>,
    /// Per managed secret (by name), how its copies stand.
    pub status: BTreeMap<String, SecretStatus>,
    /// Registry patterns whose managed secret's valid source has no key
    /// for them, by managed secret in policy order, then rule and pattern
    /// in policy order.
    pub uncovered: Vec<Uncovered>,
}

/// Whether copies may go to `ns` at all, whatever the rules say.
pub fn namespace_takes_copies(ns: &Namespace<'_>, install_namespace: &str) -> bool {
    ns.active
        && ns.name != "kube-system"
        && ns.name != install_namespace
        && ns.labels.get(INJECT_LABEL).map(String::as_str) != Some("false")
}

/// The managed secrets wanted in `ns`, in policy order.
pub fn wanted_in<'p>(
    policy: &'p CompiledPolicy,
    ns: &Namespace<'_>,
    install_namespace: &str,
) -> Vec<&'p ManagedSecret> {
    if policy.managed_secrets().is_empty() || !namespace_takes_copies(ns, install_namespace) {
        return Vec::new();
    }
    let facts = NamespaceFacts {
        name: ns.name,
        labels: Some(ns.labels),
    };
    secrets_wanted_in(policy, &facts)
        .secrets
        .into_iter()
        .filter_map(|s| policy.managed(s))
        .filter(|m| m.from_namespace != ns.name)
        .collect()
}

/// The sources of the policy's managed secrets, judged once per pass:
/// which may be copied (type and digest), which are invalid, what their
/// keys do not cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// Per managed secret, in policy order: its name.
    names: Vec<String>,
    /// Per managed secret: its source, `NAMESPACE/NAME` (the annotation
    /// every copy carries).
    refs: Vec<String>,
    /// Per managed secret: the type and digest of a valid source.
    valid: Vec<Option<(String, u64)>>,
    /// Per managed secret: how its copies stand before any is counted
    /// (`source_invalid`, `digest`).
    status: Vec<SecretStatus>,
    /// A [`Action::SourceInvalid`] per managed secret whose source cannot
    /// be copied, in policy order.
    pub invalid: Vec<Action>,
    /// Coverage findings of the valid sources, as [`Plan::uncovered`].
    pub uncovered: Vec<Uncovered>,
}

impl Sources {
    /// The managed secrets' names, in policy order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The index of the managed secret `name`.
    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Per managed secret (by name): its status with the namespaces'
    /// `counts` (per managed secret, in policy order) added.
    pub fn status(&self, counts: &[Counts]) -> BTreeMap<String, SecretStatus> {
        self.names
            .iter()
            .zip(&self.status)
            .enumerate()
            .map(|(i, (name, status))| {
                let c = counts.get(i).copied().unwrap_or_default();
                let status = SecretStatus {
                    wanted: c.wanted,
                    synced: c.synced,
                    conflicts: c.conflicts,
                    ..status.clone()
                };
                (name.clone(), status)
            })
            .collect()
    }
}

/// Judges the source of every managed secret of `policy`.
pub fn judge_sources(policy: &CompiledPolicy, observed: &dyn Observed) -> Sources {
    let managed = policy.managed_secrets();
    let mut sources = Sources::default();
    for m in managed {
        let mut status = SecretStatus::default();
        let source = observed.source(&m.from_namespace, &m.from_name);
        let (valid, problem) = match source {
            Source::Unknown => (None, None),
            Source::Missing => (None, Some(SourceProblem::Missing)),
            Source::Present {
                type_,
                digest,
                keys,
            } if PULL_SECRET_TYPES.contains(&type_) => {
                status.digest = Some(digest);
                sources.uncovered.extend(uncovered(policy, m, keys));
                (Some((type_.to_owned(), digest)), None)
            }
            Source::Present { type_, .. } => {
                (None, Some(SourceProblem::WrongType(type_.to_owned())))
            }
        };
        sources.valid.push(valid);
        if let Some(problem) = problem {
            status.source_invalid = true;
            sources.invalid.push(Action::SourceInvalid {
                secret: m.name.clone(),
                source: m.source(),
                problem,
            });
        }
        sources.names.push(m.name.clone());
        sources.refs.push(m.source());
        sources.status.push(status);
    }
    sources
}

/// How the copies of one managed secret stand in some namespaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Copies wanted (of a valid source).
    pub wanted: usize,
    /// Of those, equal to the source.
    pub synced: usize,
    /// Of those, blocked by an unmanaged Secret.
    pub conflicts: usize,
}

impl std::ops::Add for Counts {
    type Output = Counts;

    fn add(self, other: Counts) -> Counts {
        Counts {
            wanted: self.wanted + other.wanted,
            synced: self.synced + other.synced,
            conflicts: self.conflicts + other.conflicts,
        }
    }
}

/// Saturating: `self` is meant to include `other`.
impl std::ops::Sub for Counts {
    type Output = Counts;

    fn sub(self, other: Counts) -> Counts {
        Counts {
            wanted: self.wanted.saturating_sub(other.wanted),
            synced: self.synced.saturating_sub(other.synced),
            conflicts: self.conflicts.saturating_sub(other.conflicts),
        }
    }
}

/// Calls `found(i, action, counts)` for every managed secret `i` wanted in
/// `ns`, with what its copy there needs (if anything) and how it counts.
fn wanted_copies(
    policy: &CompiledPolicy,
    sources: &Sources,
    ns: &Namespace<'_>,
    install_namespace: &str,
    observed: &dyn Observed,
    found: &mut dyn FnMut(usize, Option<Action>, Counts),
) {
    for m in wanted_in(policy, ns, install_namespace) {
        let Some(i) = sources.index(&m.name) else {
            continue;
        };
        let Some(Some((type_, digest))) = sources.valid.get(i) else {
            found(i, None, Counts::default());
            continue;
        };
        let mut counts = Counts {
            wanted: 1,
            ..Counts::default()
        };
        let (namespace, secret) = (ns.name.to_owned(), m.name.clone());
        let action = match observed.copy(ns.name, &m.name) {
            None => Some(Action::Create { namespace, secret }),
            Some(copy) if !copy.managed => {
                counts.conflicts = 1;
                Some(Action::Conflict { namespace, secret })
            }
            Some(copy) if copy.type_ != type_ => Some(Action::Replace { namespace, secret }),
            Some(copy)
                if copy.digest != *digest || copy.source != Some(sources.refs[i].as_str()) =>
            {
                Some(Action::Update { namespace, secret })
            }
            Some(_) => {
                counts.synced = 1;
                None
            }
        };
        found(i, action, counts);
    }
}

/// What a managed copy `name` that is not wanted needs: deleted when it
/// is a copy of no managed secret (`None`) or of one whose source is
/// valid; left alone when its source is invalid or unknown.
fn unwanted_copy(
    sources: &Sources,
    namespace: &str,
    name: &str,
) -> Option<(Option<usize>, Action)> {
    let delete = Action::Delete {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    match sources.index(name) {
        None => Some((None, delete)),
        Some(i) if matches!(sources.valid.get(i), Some(Some(_))) => Some((Some(i), delete)),
        Some(_) => None,
    }
}

/// The outcome of comparing one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespacePlan {
    /// What to do in the namespace: its wanted copies' actions by managed
    /// secret in policy order, then the deletions.
    pub actions: Vec<Action>,
    /// Per managed secret, in policy order: how its copy here counts.
    pub counts: Vec<Counts>,
}

/// Compares what the policy wants in one namespace with what is observed
/// there (the incremental form of [`plan`]: `plan` over every namespace
/// is the union of these, with the sources' own actions). A namespace no
/// longer observed needs nothing: its copies go with it.
pub fn plan_namespace(
    policy: &CompiledPolicy,
    sources: &Sources,
    ns: &Namespace<'_>,
    install_namespace: &str,
    observed: &dyn Observed,
) -> NamespacePlan {
    let mut plan = NamespacePlan {
        actions: Vec::new(),
        counts: vec![Counts::default(); sources.names.len()],
    };
    let mut wanted = vec![false; sources.names.len()];
    wanted_copies(
        policy,
        sources,
        ns,
        install_namespace,
        observed,
        &mut |i, action, counts| {
            wanted[i] = true;
            plan.counts[i] = plan.counts[i] + counts;
            plan.actions.extend(action);
        },
    );
    if ns.active {
        observed.for_each_managed_in(ns.name, &mut |name| {
            if let Some((i, delete)) = unwanted_copy(sources, ns.name, name)
                && i.is_none_or(|i| !wanted[i])
            {
                plan.actions.push(delete);
            }
        });
    }
    plan
}

/// Compares what the policy wants with what is observed.
pub fn plan(
    policy: &CompiledPolicy,
    namespaces: &[Namespace<'_>],
    install_namespace: &str,
    observed: &dyn Observed,
) -> Plan {
    let sources = judge_sources(policy, observed);
    let n = sources.names.len();
    let mut actions_by_secret: Vec<Vec<Action>> = vec![Vec::new(); n];
    for action in &sources.invalid {
        if let Action::SourceInvalid { secret, .. } = action
            && let Some(i) = sources.index(secret)
        {
            actions_by_secret[i].push(action.clone());
        }
    }
    let mut counts = vec![Counts::default(); n];

    // Wanted copies: create, restore, or report the conflict.
    let mut wanted: HashSet<(&str, usize)> = HashSet::new();
    for ns in namespaces {
        wanted_copies(
            policy,
            &sources,
            ns,
            install_namespace,
            observed,
            &mut |i, action, c| {
                wanted.insert((ns.name, i));
                counts[i] = counts[i] + c;
                actions_by_secret[i].extend(action);
            },
        );
    }

    // Managed copies no longer wanted: delete, unless their source is
    // invalid or unknown (then nothing of that secret is touched) or their
    // namespace is not active (its deletion takes them).
    let active: HashSet<&str> = namespaces
        .iter()
        .filter(|n| n.active)
        .map(|n| n.name)
        .collect();
    let mut orphans = Vec::new();
    observed.for_each_managed(&mut |namespace, name| {
        if !active.contains(namespace) {
            return;
        }
        match unwanted_copy(&sources, namespace, name) {
            Some((None, delete)) => orphans.push(delete),
            Some((Some(i), delete)) if !wanted.contains(&(namespace, i)) => {
                actions_by_secret[i].push(delete);
            }
            _ => {}
        }
    });
    let mut actions: Vec<Action> = actions_by_secret.into_iter().flatten().collect();
    actions.extend(orphans);
    Plan {
        actions,
        status: sources.status(&counts),
        uncovered: sources.uncovered,
    }
}

/// The registry patterns of the rules listing `secret` that a source with
/// `keys` (`None`: unreadable content) does not cover, in policy order.
pub fn uncovered(
    policy: &CompiledPolicy,
    secret: &ManagedSecret,
    keys: Option<&DockerConfig>,
) -> Vec<Uncovered> {
    let keyring = keys.map(|k| Keyring::new([k])).unwrap_or_default();
    let mut found = Vec::new();
    for rule in policy.rules() {
        if !rule.secrets().contains(&secret.name) {
            continue;
        }
        for host in rule.registries() {
            if !keyring.covers(host) {
                found.push(Uncovered {
                    secret: secret.name.clone(),
                    source: secret.source(),
                    rule: rule.name().to_owned(),
                    host: host.clone(),
                    unreadable: keys.is_none(),
                });
            }
        }
    }
    found
}

/// A digest of a Secret's type and data, to compare a copy with its source
/// without keeping the copy's data. `hasher` should be seeded at random
/// once per process (e.g. `std::collections::hash_map::RandomState`), so
/// nobody can craft a copy that collides with its source.
pub fn content_digest<'d>(
    hasher: &impl BuildHasher,
    type_: &str,
    data: impl IntoIterator<Item = (&'d str, &'d [u8])>,
) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_usize(type_.len());
    h.write(type_.as_bytes());
    for (key, value) in data {
        h.write_usize(key.len());
        h.write(key.as_bytes());
        h.write_usize(value.len());
        h.write(value);
    }
    h.finish()
}

#[cfg(test)]
mod tests;
