//! The questions every command asks of a compiled policy, answered once:
//! the webhook's plan, `explain`, `sync` and `audit` all go through here.
//!
//! - Which rules, and so which secrets, do these images get in this
//!   namespace? [`Matches`] collects the rules over one or more images;
//!   [`Matches::grant`] turns them into the secrets, as the union in rule
//!   order then secret order, without duplicates. [`secrets_for`] is the
//!   one-image shorthand.
//! - Which secrets does a namespace want, whatever its pods' images?
//!   [`secrets_wanted_in`].

use smallvec::SmallVec;

use super::image::Reference;
use super::policy::{CompiledPolicy, NamespaceFacts, NamespaceMatch, RuleIds};

/// Names of rules or of secrets. A pod's images seldom bring more than four
/// of either, and those are kept inline: on the webhook's request path a
/// decision then allocates no list of its own.
pub type Names<'p> = SmallVec<[&'p str; 4]>;

/// The namespace a question is asked in.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Ignore the rules' namespace conditions (`explain` without
    /// `--namespace`).
    AnyNamespace,
    /// Apply them for this namespace.
    Namespace(&'a NamespaceFacts<'a>),
}

/// What a set of rules grants: their names and their secrets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Grant<'p> {
    /// The rules, in policy order.
    pub rules: Names<'p>,
    /// Their secrets: rule order, then secret order, without duplicates.
    pub secrets: Names<'p>,
    /// For each entry of `secrets`, the first rule that gives it.
    pub secret_rules: Names<'p>,
}

/// Rules collected over the images of a pod (or a single image).
#[derive(Debug, Default)]
pub struct Matches {
    rules: RuleIds,
    unknown: RuleIds,
    scratch: RuleIds,
}

impl Matches {
    /// Adds the rules that give `reference` its secrets in `scope`. Rules
    /// whose namespace selector cannot be evaluated (labels unknown) do not
    /// apply and are remembered for [`Matches::unknown_selectors`].
    /// Returns whether any rule applies.
    pub fn add(
        &mut self,
        policy: &CompiledPolicy,
        reference: &Reference<'_>,
        scope: Scope<'_>,
    ) -> bool {
        self.scratch.clear();
        policy.match_image(
            reference.registry(),
            reference.repository(),
            &mut self.scratch,
        );
        let mut any = false;
        for &rule in &self.scratch {
            let applies = match scope {
                Scope::AnyNamespace => NamespaceMatch::Yes,
                Scope::Namespace(ns) => policy.rules()[rule].namespace_match(ns),
            };
            match applies {
                NamespaceMatch::Yes => {
                    any = true;
                    self.rules.push(rule);
                }
                NamespaceMatch::No => {}
                NamespaceMatch::Unknown => self.unknown.push(rule),
            }
        }
        any
    }

    /// The names of the rules that were skipped because the namespace's
    /// labels are unknown, in policy order.
    pub fn unknown_selectors<'p>(&mut self, policy: &'p CompiledPolicy) -> Names<'p> {
        self.unknown.sort_unstable();
        self.unknown.dedup();
        self.unknown
            .iter()
            .map(|&i| policy.rules()[i].name())
            .collect()
    }

    /// The rules collected so far and the secrets they give.
    pub fn grant<'p>(&mut self, policy: &'p CompiledPolicy) -> Grant<'p> {
        self.rules.sort_unstable();
        self.rules.dedup();
        grant(policy, self.rules.iter().copied())
    }
}

/// The rules that give `reference` its secrets in `scope`, and the secrets.
pub fn secrets_for<'p>(
    policy: &'p CompiledPolicy,
    reference: &Reference<'_>,
    scope: Scope<'_>,
) -> Grant<'p> {
    let mut matches = Matches::default();
    matches.add(policy, reference, scope);
    matches.grant(policy)
}

/// Every secret that some rule applying to `ns` lists, whatever the images
/// of its pods: the secrets the webhook may inject there. A rule whose
/// selector cannot be evaluated does not apply.
pub fn secrets_wanted_in<'p>(policy: &'p CompiledPolicy, ns: &NamespaceFacts<'_>) -> Grant<'p> {
    grant(
        policy,
        policy
            .rules()
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.namespace_match(ns) == NamespaceMatch::Yes)
            .map(|(i, _)| i),
    )
}

/// The union of the secrets of `rules` (policy indices, ascending).
fn grant(policy: &CompiledPolicy, rules: impl Iterator<Item = usize>) -> Grant<'_> {
    let mut out = Grant::default();
    for i in rules {
        let rule = &policy.rules()[i];
        out.rules.push(rule.name());
        for secret in rule.secrets() {
            if !out.secrets.contains(&secret.as_str()) {
                out.secrets.push(secret);
                out.secret_rules.push(rule.name());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::image;
    use std::collections::BTreeMap;

    const POLICY: &str = r#"
rules:
  - name: hub
    registries: [docker.io]
    secrets: [hub, shared]
  - name: team-a
    registries: [docker.io, ghcr.io]
    repositories: ["team-a/**"]
    secrets: [shared, team-a]
    namespaces: {include: ["team-a-*"]}
  - name: labelled
    registries: [quay.io]
    secrets: [quay]
    namespaces: {selector: {matchLabels: {quay: "yes"}}}
"#;

    fn policy() -> CompiledPolicy {
        CompiledPolicy::from_text(POLICY).expect("valid")
    }

    #[test]
    fn secrets_are_the_union_in_rule_then_secret_order() {
        let policy = policy();
        let facts = NamespaceFacts {
            name: "team-a-dev",
            labels: None,
        };
        let reference = image::parse("team-a/api:1").expect("parses");
        let grant = secrets_for(&policy, &reference, Scope::Namespace(&facts));
        assert_eq!(grant.rules[..], ["hub", "team-a"]);
        assert_eq!(grant.secrets[..], ["hub", "shared", "team-a"]);
        assert_eq!(grant.secret_rules[..], ["hub", "hub", "team-a"]);
    }

    #[test]
    fn namespace_conditions_apply_only_when_a_namespace_is_given() {
        let policy = policy();
        let reference = image::parse("ghcr.io/team-a/x").expect("parses");
        let other = NamespaceFacts {
            name: "prod",
            labels: None,
        };
        assert!(
            secrets_for(&policy, &reference, Scope::Namespace(&other))
                .secrets
                .is_empty()
        );
        assert_eq!(
            secrets_for(&policy, &reference, Scope::AnyNamespace).secrets[..],
            ["shared", "team-a"]
        );
    }

    #[test]
    fn unknown_labels_are_reported_not_matched() {
        let policy = policy();
        let facts = NamespaceFacts {
            name: "x",
            labels: None,
        };
        let mut matches = Matches::default();
        let reference = image::parse("quay.io/a/b").expect("parses");
        assert!(!matches.add(&policy, &reference, Scope::Namespace(&facts)));
        assert_eq!(matches.unknown_selectors(&policy)[..], ["labelled"]);
        assert!(matches.grant(&policy).secrets.is_empty());
    }

    #[test]
    fn a_namespace_wants_the_secrets_of_every_rule_that_applies_to_it() {
        let policy = policy();
        let labels = BTreeMap::from([("quay".to_owned(), "yes".to_owned())]);
        let facts = NamespaceFacts {
            name: "team-a-x",
            labels: Some(&labels),
        };
        assert_eq!(
            secrets_wanted_in(&policy, &facts).secrets[..],
            ["hub", "shared", "team-a", "quay"]
        );
        let plain = NamespaceFacts {
            name: "prod",
            labels: None,
        };
        assert_eq!(
            secrets_wanted_in(&policy, &plain).secrets[..],
            ["hub", "shared"]
        );
    }
}
