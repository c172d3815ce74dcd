//! Validated policy → immutable matcher.
//!
//! Owns the host index that keeps [`CompiledPolicy::match_image`] independent
//! of the number of rules: exact hosts in a map keyed by lowercase
//! `host[:port]`; glob hosts grouped by (label count, port) and, inside a
//! group, keyed by the text of their right-most run of literal labels (a
//! short fallback list holds patterns made only of globs); IPv6 literals in a
//! small list. Behind each host pattern, the rules are keyed again by the
//! literal first segment of their repository globs (`team-a/**` → `team-a`),
//! so a registry shared by thousands of per-team rules stays cheap.
//! Repository globs are then checked only for candidate rules, and
//! namespace filters only when the caller asks about a rule.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use smallvec::SmallVec;

use super::glob::{NameGlob, RepoGlob};
use super::host::{
    HostPattern, Label, image_port, ipv6_host, label_count, labels_match, literal_run,
    span_from_right, split_registry,
};
use super::model::{ManagedSecret, NamespaceFilter, Policy, Rule};
use super::selector::CompiledSelector;
use super::{FastMap, PolicyErrors};

/// Rule indices, as [`CompiledPolicy::match_image`] collects them. An image
/// rarely matches more than a few rules, so up to eight are kept inline:
/// matching a pod's images then allocates nothing on the webhook's request
/// path.
pub type RuleIds = SmallVec<[usize; 8]>;

/// A policy compiled for matching: immutable, `Send + Sync`, cheap to share
/// behind an `Arc`. The default value has no rules.
#[derive(Debug, Default)]
pub struct CompiledPolicy {
    rules: Vec<CompiledRule>,
    hosts: HostIndex,
    uses_selectors: bool,
    managed: Vec<ManagedSecret>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    name: String,
    /// The host patterns as written (coverage checks read them).
    registries: Vec<String>,
    secrets: Vec<String>,
    repositories: Box<[RepoGlob]>,
    namespaces: Option<NamespaceRule>,
}

/// What is known about the namespace a Pod is created in.
#[derive(Debug, Clone, Copy)]
pub struct NamespaceFacts<'a> {
    /// The namespace name.
    pub name: &'a str,
    /// The Namespace object's labels; `None` when they could not be read.
    pub labels: Option<&'a BTreeMap<String, String>>,
}

/// Whether a rule applies in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceMatch {
    /// The rule applies.
    Yes,
    /// The rule does not apply.
    No,
    /// The name passes but the rule has a label selector and the labels are
    /// unknown: the caller treats this as no match and warns.
    Unknown,
}

#[derive(Debug)]
struct NamespaceRule {
    include: Option<Box<[NameGlob]>>,
    exclude: Box<[NameGlob]>,
    selector: Option<CompiledSelector>,
}

/// Host patterns → rule indices.
#[derive(Debug, Default)]
struct HostIndex {
    exact: FastMap<Box<str>, RuleSet>,
    groups: FastMap<(usize, Option<u16>), WildGroup>,
    /// Distinct glob patterns and the rules that list them.
    patterns: Vec<(Box<[Label]>, RuleSet)>,
    ipv6: Vec<(Ipv6Addr, Option<u16>, u32)>,
}

/// Where a rule can match repositories: anywhere, or only under these
/// literal first segments.
enum RepoKeys {
    Any,
    First(Vec<Box<str>>),
}

impl RepoKeys {
    fn of(rule: &CompiledRule) -> RepoKeys {
        let mut firsts = Vec::new();
        for glob in &rule.repositories {
            match glob.literal_first() {
                Some(first) => firsts.push(first.into()),
                None => return RepoKeys::Any,
            }
        }
        if firsts.is_empty() {
            RepoKeys::Any
        } else {
            RepoKeys::First(firsts)
        }
    }
}

/// The rules behind one host pattern, split by repository first segment.
#[derive(Debug, Default)]
struct RuleSet {
    /// Rules that may match any repository.
    any: Vec<u32>,
    /// Rules that match only repositories starting with this segment.
    by_first: FastMap<Box<str>, Vec<u32>>,
}

impl RuleSet {
    fn push(&mut self, rule: u32, keys: &RepoKeys) {
        match keys {
            RepoKeys::Any => push_rule(&mut self.any, rule),
            RepoKeys::First(firsts) => {
                for first in firsts {
                    push_rule(self.by_first.entry(first.clone()).or_default(), rule);
                }
            }
        }
    }

    /// Pushes the rules that may match a repository whose first segment is
    /// `first`.
    fn extend(&self, first: &str, out: &mut RuleIds) {
        out.extend(self.any.iter().map(|r| *r as usize));
        if let Some(rules) = self.by_first.get(first) {
            out.extend(rules.iter().map(|r| *r as usize));
        }
    }
}

/// Glob patterns with one label count and port.
#[derive(Debug, Default)]
struct WildGroup {
    levels: Vec<Level>,
    /// Patterns without any literal label.
    fallback: Vec<usize>,
}

/// Patterns whose right-most literal run sits at the same place.
#[derive(Debug)]
struct Level {
    from_right: usize,
    len: usize,
    by_text: FastMap<Box<str>, Vec<usize>>,
}

fn push_rule(rules: &mut Vec<u32>, rule: u32) {
    if rules.last() != Some(&rule) {
        rules.push(rule);
    }
}

impl HostIndex {
    /// Indexes a pattern's text for a rule. `seen` maps glob pattern texts
    /// already indexed to their pattern id, so that rules sharing a pattern
    /// share one check.
    fn add<'p>(
        &mut self,
        text: &'p str,
        rule: u32,
        keys: &RepoKeys,
        seen: &mut FastMap<&'p str, usize>,
    ) {
        if let Some((_, rules)) = seen.get(text).and_then(|&id| self.patterns.get_mut(id)) {
            rules.push(rule, keys);
            return;
        }
        // Validated patterns always parse; anything else matches nothing.
        let Ok(pattern) = HostPattern::parse(text) else {
            return;
        };
        match pattern {
            HostPattern::Exact(host) => self.exact.entry(host.into()).or_default().push(rule, keys),
            HostPattern::Ipv6 { addr, port } => self.ipv6.push((addr, port, rule)),
            HostPattern::Wild { labels, port } => {
                let id = self.patterns.len();
                seen.insert(text, id);
                let group = self.groups.entry((labels.len(), port)).or_default();
                match literal_run(&labels) {
                    None => group.fallback.push(id),
                    Some((from_right, len, text)) => {
                        let same = |l: &Level| l.from_right == from_right && l.len == len;
                        let at = match group.levels.iter().position(same) {
                            Some(at) => at,
                            None => {
                                group.levels.push(Level {
                                    from_right,
                                    len,
                                    by_text: FastMap::default(),
                                });
                                group.levels.len() - 1
                            }
                        };
                        let level = &mut group.levels[at];
                        level.by_text.entry(text.into()).or_default().push(id);
                    }
                }
                let mut rules = RuleSet::default();
                rules.push(rule, keys);
                self.patterns.push((labels, rules));
            }
        }
    }

    /// Pushes (unsorted, possibly repeated) the rules with a pattern matching
    /// a lowercase registry that may match a repository starting with the
    /// segment `first`.
    fn candidates(&self, registry: &str, first: &str, out: &mut RuleIds) {
        if let Some(rules) = self.exact.get(registry) {
            rules.extend(first, out);
        }
        let (host, port) = split_registry(registry);
        let Some(port) = image_port(port) else {
            return;
        };
        if host.starts_with('[') {
            if let Some(addr) = ipv6_host(host) {
                let hits = self
                    .ipv6
                    .iter()
                    .filter(|(a, p, _)| *a == addr && *p == port);
                out.extend(hits.map(|(_, _, r)| *r as usize));
            }
            return;
        }
        let Some(group) = self.groups.get(&(label_count(host), port)) else {
            return;
        };
        let mut check = |id: &usize| {
            if let Some((labels, rules)) = self.patterns.get(*id)
                && labels_match(labels, host)
            {
                rules.extend(first, out);
            }
        };
        for level in &group.levels {
            if let Some(ids) = span_from_right(host, level.from_right, level.len)
                .and_then(|text| level.by_text.get(text))
            {
                ids.iter().for_each(&mut check);
            }
        }
        group.fallback.iter().for_each(check);
    }
}

impl CompiledPolicy {
    /// Compiles a validated policy. Infallible: a [`Policy`] is valid by
    /// construction (a pattern that somehow fails to parse matches nothing).
    pub fn compile(policy: Policy) -> CompiledPolicy {
        let Policy {
            rules: source_rules,
            secrets: managed,
        } = policy;
        let mut rules = Vec::with_capacity(source_rules.len());
        for rule in source_rules {
            let Rule {
                name,
                registries: patterns,
                repositories,
                secrets,
                namespaces,
            } = rule;
            rules.push(CompiledRule::new(
                name,
                patterns,
                secrets,
                &repositories,
                namespaces.as_ref(),
            ));
        }
        let mut hosts = HostIndex::default();
        let mut seen = FastMap::default();
        for (i, rule) in rules.iter().enumerate() {
            let Ok(id) = u32::try_from(i) else { break };
            let keys = RepoKeys::of(rule);
            for pattern in &rule.registries {
                hosts.add(pattern, id, &keys, &mut seen);
            }
        }
        drop(seen);
        let uses_selectors = rules.iter().any(CompiledRule::has_selector);
        CompiledPolicy {
            rules,
            hosts,
            uses_selectors,
            managed,
        }
    }

    /// The managed secrets (`secrets:`), in document order.
    pub fn managed_secrets(&self) -> &[ManagedSecret] {
        &self.managed
    }

    /// The managed secret named `name`, if the policy manages it.
    pub fn managed(&self, name: &str) -> Option<&ManagedSecret> {
        self.managed.iter().find(|m| m.name == name)
    }

    /// Parses, validates and compiles policy text.
    pub fn from_text(text: &str) -> Result<CompiledPolicy, PolicyErrors> {
        super::parse(text).map(CompiledPolicy::compile)
    }

    /// The rules, in document order (indices match [`match_image`](Self::match_image)).
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// Appends to `out` the indices of the rules whose registry and repository
    /// patterns match the image (namespaces not considered): ascending, no
    /// duplicates. `registry` is the normalized host (`docker.io`,
    /// `Harbor.Example:5000`, `[::1]:5000`) and `repository` the path
    /// (`library/nginx`). Apart from growing `out`, allocates only when
    /// `registry` has uppercase letters.
    pub fn match_image(&self, registry: &str, repository: &str, out: &mut RuleIds) {
        let start = out.len();
        let lowered;
        let mut registry = registry;
        if registry.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = registry.to_ascii_lowercase();
            registry = &lowered;
        }
        if registry == "index.docker.io" {
            registry = "docker.io";
        }
        let first = repository
            .bytes()
            .position(|b| b == b'/')
            .and_then(|slash| repository.get(..slash))
            .unwrap_or(repository);
        self.hosts.candidates(registry, first, out);
        out[start..].sort_unstable();
        let mut kept = start;
        let mut prev = None;
        for i in start..out.len() {
            let id = out[i];
            if prev == Some(id) {
                continue;
            }
            prev = Some(id);
            if self
                .rules
                .get(id)
                .is_some_and(|r| r.repository_matches(repository))
            {
                out[kept] = id;
                kept += 1;
            }
        }
        out.truncate(kept);
    }

    /// Whether any rule has a label selector (so namespace labels are needed).
    pub fn uses_selectors(&self) -> bool {
        self.uses_selectors
    }
}

impl From<Policy> for CompiledPolicy {
    fn from(policy: Policy) -> Self {
        CompiledPolicy::compile(policy)
    }
}

impl CompiledRule {
    fn new(
        name: String,
        registries: Vec<String>,
        secrets: Vec<String>,
        repositories: &[String],
        namespaces: Option<&NamespaceFilter>,
    ) -> CompiledRule {
        let mut unique: Vec<String> = Vec::with_capacity(secrets.len());
        for s in secrets {
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        let repositories = repositories
            .iter()
            .filter_map(|r| RepoGlob::parse(r).ok())
            .collect();
        CompiledRule {
            name,
            registries,
            secrets: unique,
            repositories,
            namespaces: namespaces.and_then(NamespaceRule::new),
        }
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rule's registry host patterns, as written.
    pub fn registries(&self) -> &[String] {
        &self.registries
    }

    /// The secrets the rule adds, in policy order, without duplicates.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Whether the rule has a (non-empty) namespace label selector.
    pub fn has_selector(&self) -> bool {
        self.namespaces
            .as_ref()
            .is_some_and(|n| n.selector.is_some())
    }

    /// Whether a repository path passes the rule's repository globs (any
    /// repository when it has none).
    pub fn repository_matches(&self, repository: &str) -> bool {
        self.repositories.is_empty() || self.repositories.iter().any(|g| g.matches(repository))
    }

    /// Whether the rule applies in a namespace. Name filters are decided
    /// first, so a namespace they rule out is [`NamespaceMatch::No`] even when
    /// its labels are unknown.
    pub fn namespace_match(&self, ns: &NamespaceFacts<'_>) -> NamespaceMatch {
        let Some(filter) = &self.namespaces else {
            return NamespaceMatch::Yes;
        };
        if let Some(include) = &filter.include
            && !include.iter().any(|g| g.matches(ns.name))
        {
            return NamespaceMatch::No;
        }
        if filter.exclude.iter().any(|g| g.matches(ns.name)) {
            return NamespaceMatch::No;
        }
        match (&filter.selector, ns.labels) {
            (None, _) => NamespaceMatch::Yes,
            (Some(_), None) => NamespaceMatch::Unknown,
            (Some(s), Some(labels)) if s.matches(labels) => NamespaceMatch::Yes,
            (Some(_), Some(_)) => NamespaceMatch::No,
        }
    }
}

impl NamespaceRule {
    /// `None` when the filter lets every namespace through.
    fn new(f: &NamespaceFilter) -> Option<NamespaceRule> {
        let globs = |v: &[String]| -> Box<[NameGlob]> {
            v.iter().filter_map(|g| NameGlob::parse(g).ok()).collect()
        };
        let rule = NamespaceRule {
            include: f.include.as_deref().map(globs),
            exclude: globs(&f.exclude),
            selector: f.selector.as_ref().and_then(CompiledSelector::new),
        };
        let open = rule.include.is_none() && rule.exclude.is_empty() && rule.selector.is_none();
        (!open).then_some(rule)
    }
}
