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

/// Compares what the policy wants with what is observed.
pub fn plan(
    policy: &CompiledPolicy,
    namespaces: &[Namespace<'_>],
    install_namespace: &str,
    observed: &dyn Observed,
) -> Plan {
    let managed = policy.managed_secrets();
    // Per managed secret: its source when present and valid.
    let mut valid: Vec<Option<(&str, u64)>> = Vec::with_capacity(managed.len());
    let mut plan = Plan::default();
    let mut actions_by_secret: Vec<Vec<Action>> = vec![Vec::new(); managed.len()];
    for (i, m) in managed.iter().enumerate() {
        let mut status = SecretStatus::default();
        let source = observed.source(&m.from_namespace, &m.from_name);
        let ok = match source {
            Source::Unknown => None,
            Source::Missing => {
                status.source_invalid = true;
                actions_by_secret[i].push(Action::SourceInvalid {
                    secret: m.name.clone(),
                    source: m.source(),
                    problem: SourceProblem::Missing,
                });
                None
            }
            Source::Present {
                type_,
                digest,
                keys,
            } if PULL_SECRET_TYPES.contains(&type_) => {
                status.digest = Some(digest);
                plan.uncovered.extend(uncovered(policy, m, keys));
                Some((type_, digest))
            }
            Source::Present { type_, .. } => {
                status.source_invalid = true;
                actions_by_secret[i].push(Action::SourceInvalid {
                    secret: m.name.clone(),
                    source: m.source(),
                    problem: SourceProblem::WrongType(type_.to_owned()),
                });
                None
            }
        };
        valid.push(ok);
        plan.status.insert(m.name.clone(), status);
    }
    let index = |name: &str| managed.iter().position(|m| m.name == name);
    let sources: Vec<String> = managed.iter().map(ManagedSecret::source).collect();

    // Wanted copies: create, restore, or report the conflict.
    let mut wanted: HashSet<(&str, usize)> = HashSet::new();
    for ns in namespaces {
        for m in wanted_in(policy, ns, install_namespace) {
            let Some(i) = index(&m.name) else { continue };
            wanted.insert((ns.name, i));
            let Some((type_, digest)) = valid[i] else {
                continue;
            };
            let Some(status) = plan.status.get_mut(&m.name) else {
                continue;
            };
            status.wanted += 1;
            let (namespace, secret) = (ns.name.to_owned(), m.name.clone());
            let action = match observed.copy(ns.name, &m.name) {
                None => Some(Action::Create { namespace, secret }),
                Some(copy) if !copy.managed => {
                    status.conflicts += 1;
                    Some(Action::Conflict { namespace, secret })
                }
                Some(copy) if copy.type_ != type_ => Some(Action::Replace { namespace, secret }),
                Some(copy) if copy.digest != digest || copy.source != Some(sources[i].as_str()) => {
                    Some(Action::Update { namespace, secret })
                }
                Some(_) => {
                    status.synced += 1;
                    None
                }
            };
            actions_by_secret[i].extend(action);
        }
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
        let delete = || Action::Delete {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        match index(name) {
            None => orphans.push(delete()),
            Some(i) if valid[i].is_some() && !wanted.contains(&(namespace, i)) => {
                actions_by_secret[i].push(delete());
            }
            Some(_) => {}
        }
    });
    plan.actions = actions_by_secret.into_iter().flatten().collect();
    plan.actions.extend(orphans);
    plan
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
