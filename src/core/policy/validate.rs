//! Located tree → validated [`Policy`].
//!
//! Owns the shape of policy format v1: which fields exist where, which are
//! required, their types, non-empty lists, unique rule names, and the syntax
//! of every value (delegated to `host`, `glob` and `names`). It never stops
//! at the first problem: every error is collected with its position and path.

use std::collections::BTreeMap;
use std::fmt::Display;

use super::FastMap;
use super::error::{PathSeg, PolicyError, Pos, render_path, suggest};
use super::glob::{NameGlob, RepoGlob};
use super::host::HostPattern;
use super::model::{
    LabelSelector, LabelSelectorRequirement, ManagedSecret, NamespaceFilter, Policy, Rule,
    SelectorOperator,
};
use super::names::{check_dns_label, check_dns_subdomain, check_label_key, check_label_value};
use super::yaml::{Entry, Kind, Node};

/// Rule names seen so far, with where each was first defined.
type Seen<'t> = FastMap<&'t str, Pos>;

const TOP_FIELDS: [&str; 2] = ["rules", "secrets"];
const MANAGED_FIELDS: [&str; 2] = ["name", "from"];
const RULE_FIELDS: [&str; 5] = [
    "name",
    "registries",
    "repositories",
    "secrets",
    "namespaces",
];
const NAMESPACE_FIELDS: [&str; 3] = ["include", "exclude", "selector"];
const SELECTOR_FIELDS: [&str; 2] = ["matchLabels", "matchExpressions"];
const EXPRESSION_FIELDS: [&str; 3] = ["key", "operator", "values"];

/// How a list item is named in messages.
struct Item {
    one: &'static str,
    a_one: &'static str,
    many: &'static str,
}

const HOST: Item = Item {
    one: "host pattern",
    a_one: "a host pattern",
    many: "host patterns",
};
const REPOSITORY: Item = Item {
    one: "repository glob",
    a_one: "a repository glob",
    many: "repository globs",
};
const SECRET: Item = Item {
    one: "secret name",
    a_one: "a secret name",
    many: "secret names",
};
const NAMESPACE: Item = Item {
    one: "namespace glob",
    a_one: "a namespace glob",
    many: "namespace globs",
};

/// Validates a document tree; the policy is returned only when no error was found.
pub(crate) fn validate(root: &Node) -> (Option<Policy>, Vec<PolicyError>) {
    let mut v = Validator {
        errors: Vec::new(),
        path: Vec::new(),
    };
    let policy = v.policy(root);
    let policy = if v.errors.is_empty() { policy } else { None };
    (policy, v.errors)
}

/// What kind of value the operator wrote, for "found ..." messages.
fn found(node: &Node) -> String {
    match &node.kind {
        Kind::Scalar { null: true, .. } => "null".into(),
        Kind::Scalar { text, .. } if text.chars().count() > 40 => {
            let short: String = text.chars().take(40).collect();
            format!("{short:?}...")
        }
        Kind::Scalar { text, .. } => format!("{text:?}"),
        Kind::Seq(_) => "a list".into(),
        Kind::Map(_) => "a mapping".into(),
        Kind::Invalid => "an invalid value".into(),
    }
}

struct Validator<'t> {
    errors: Vec<PolicyError>,
    path: Vec<PathSeg<'t>>,
}

impl<'t> Validator<'t> {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        let path = render_path(self.path.iter().copied());
        self.errors.push(PolicyError::new(pos, path, message));
    }

    fn nest<R>(&mut self, seg: PathSeg<'t>, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(seg);
        let out = f(self);
        self.path.pop();
        out
    }

    /// Runs `f` on an entry's value with the entry's key on the path.
    fn field<R>(&mut self, e: &'t Entry, f: impl FnOnce(&mut Self, &'t Node) -> R) -> R {
        self.nest(PathSeg::Key(&e.key), |v| f(v, &e.value))
    }

    /// Checks that `node` is a mapping with only `known` fields; returns its
    /// position and the entries of the known fields, in `known` order.
    fn mapping<const N: usize>(
        &mut self,
        node: &'t Node,
        what: &str,
        known: [&str; N],
    ) -> Option<(Pos, [Option<&'t Entry>; N])> {
        let entries = match &node.kind {
            Kind::Map(entries) => entries,
            Kind::Invalid => return None,
            _ => {
                self.err(node.pos, format!("expected {what}, found {}", found(node)));
                return None;
            }
        };
        let mut out = [None; N];
        for e in entries {
            match known.iter().position(|k| *k == e.key) {
                Some(i) => out[i] = Some(e),
                None => {
                    let mut msg = format!("unknown field {:?}", e.key);
                    if let Some(s) = suggest(&e.key, &known) {
                        msg.push_str(&format!(" (did you mean {s:?}?)"));
                    }
                    msg.push_str("; known fields: ");
                    msg.push_str(&known.join(", "));
                    self.err(e.key_pos, msg);
                }
            }
        }
        Some((node.pos, out))
    }

    fn required(&mut self, at: Pos, e: Option<&'t Entry>, name: &str) -> Option<&'t Entry> {
        if e.is_none() {
            self.err(at, format!("missing required field {name:?}"));
        }
        e
    }

    /// A string value (numbers and booleans count as their text; null does not).
    fn string(&mut self, node: &'t Node, what: &str) -> Option<&'t str> {
        match &node.kind {
            Kind::Scalar { text, null: false } => Some(text),
            Kind::Invalid => None,
            _ => {
                self.err(node.pos, format!("expected {what}, found {}", found(node)));
                None
            }
        }
    }

    /// A list (possibly empty).
    fn list(&mut self, node: &'t Node, plural: &str) -> Option<&'t [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            Kind::Invalid => None,
            _ => {
                self.err(
                    node.pos,
                    format!("expected a list of {plural}, found {}", found(node)),
                );
                None
            }
        }
    }

    /// A non-empty list of strings, each checked by `check`.
    fn strings<E: Display>(
        &mut self,
        node: &'t Node,
        item: &Item,
        check: impl Fn(&str) -> Result<(), E>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if let Kind::Scalar { text, null: false } = &node.kind {
            let msg = format!(
                "expected a list of {}, found {} (write it as a list: [{text:?}])",
                item.many,
                found(node)
            );
            self.err(node.pos, msg);
            return out;
        }
        let Some(items) = self.list(node, item.many) else {
            return out;
        };
        if items.is_empty() {
            self.err(
                node.pos,
                format!("must not be empty; list at least one {}", item.one),
            );
            return out;
        }
        out.reserve(items.len());
        for (i, node) in items.iter().enumerate() {
            self.nest(PathSeg::Index(i), |v| {
                let s = v.string(node, item.a_one)?;
                match check(s) {
                    Ok(()) => out.push(s.to_owned()),
                    Err(e) => v.err(node.pos, format!("invalid {} {s:?}: {e}", item.one)),
                }
                Some(())
            });
        }
        out
    }

    fn policy(&mut self, root: &'t Node) -> Option<Policy> {
        if matches!(root.kind, Kind::Scalar { null: true, .. }) {
            self.err(
                Pos::START,
                "policy is empty; expected a mapping with a \"rules\" list",
            );
            return None;
        }
        let what = "a mapping with a \"rules\" list";
        let (pos, [rules, secrets]) = self.mapping(root, what, TOP_FIELDS)?;
        let managed = match secrets {
            Some(e) => self.field(e, |v, n| v.managed_secrets(n)),
            None => Some(Vec::new()),
        };
        let rules = self.required(pos, rules, "rules")?;
        let rules = self.field(rules, |v, node| {
            if let Kind::Scalar { null: true, .. } = node.kind {
                let msg = "expected a list of rules, found null (write \"rules: []\" for an empty policy)";
                v.err(node.pos, msg);
                return None;
            }
            let items = v.list(node, "rules")?;
            let mut seen = Seen::default();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if let Some(rule) = v.nest(PathSeg::Index(i), |v| v.rule(item, &mut seen)) {
                    out.push(rule);
                }
            }
            Some(out)
        })?;
        Some(Policy {
            rules,
            secrets: managed?,
        })
    }

    /// The top-level `secrets:` list (may be empty: nothing is managed).
    fn managed_secrets(&mut self, node: &'t Node) -> Option<Vec<ManagedSecret>> {
        let items = self.list(node, "managed secrets (name and from)")?;
        let mut seen = Seen::default();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.extend(self.nest(PathSeg::Index(i), |v| v.managed_secret(item, &mut seen)));
        }
        Some(out)
    }

    fn managed_secret(&mut self, node: &'t Node, seen: &mut Seen<'t>) -> Option<ManagedSecret> {
        let what = "a managed secret (a mapping with name and from)";
        let (pos, [name, from]) = self.mapping(node, what, MANAGED_FIELDS)?;
        let name = self.required(pos, name, "name").and_then(|e| {
            self.field(e, |v, n| {
                let name = v.string(n, "a secret name")?;
                if let Err(err) = check_dns_subdomain(name) {
                    v.err(n.pos, format!("invalid secret name {name:?}: {err}"));
                    return None;
                }
                if let Some(first) = seen.get(name) {
                    let msg = format!(
                        "duplicate managed secret {name:?} (first defined at line {})",
                        first.line
                    );
                    v.err(n.pos, msg);
                    return None;
                }
                seen.insert(name, n.pos);
                Some(name.to_owned())
            })
        });
        let from = self.required(pos, from, "from").and_then(|e| {
            self.field(e, |v, n| {
                let text = v.string(n, "a source Secret as NAMESPACE/NAME")?;
                let Some((namespace, secret)) = text.split_once('/') else {
                    v.err(
                        n.pos,
                        format!("invalid source {text:?}: expected NAMESPACE/NAME"),
                    );
                    return None;
                };
                let mut ok = true;
                if let Err(err) = check_dns_label(namespace) {
                    v.err(
                        n.pos,
                        format!("invalid source {text:?}: namespace {namespace:?}: {err}"),
                    );
                    ok = false;
                }
                if let Err(err) = check_dns_subdomain(secret) {
                    v.err(
                        n.pos,
                        format!("invalid source {text:?}: secret name {secret:?}: {err}"),
                    );
                    ok = false;
                }
                ok.then(|| (namespace.to_owned(), secret.to_owned()))
            })
        });
        let (from_namespace, from_name) = from?;
        Some(ManagedSecret {
            name: name?,
            from_namespace,
            from_name,
        })
    }

    fn rule(&mut self, node: &'t Node, seen: &mut Seen<'t>) -> Option<Rule> {
        let (pos, [name, registries, repositories, secrets, namespaces]) = self.mapping(
            node,
            "a rule (a mapping with name, registries and secrets)",
            RULE_FIELDS,
        )?;
        let mut rule = Rule {
            name: String::new(),
            registries: Vec::new(),
            repositories: Vec::new(),
            secrets: Vec::new(),
            namespaces: None,
        };
        if let Some(e) = self.required(pos, name, "name") {
            rule.name = self
                .field(e, |v, n| v.rule_name(n, seen))
                .unwrap_or_default();
        }
        if let Some(e) = self.required(pos, registries, "registries") {
            rule.registries = self.field(e, |v, n| v.strings(n, &HOST, HostPattern::check));
        }
        if let Some(e) = repositories {
            rule.repositories = self.field(e, |v, n| {
                v.strings(n, &REPOSITORY, |s| RepoGlob::parse(s).map(drop))
            });
        }
        if let Some(e) = self.required(pos, secrets, "secrets") {
            rule.secrets = self.field(e, |v, n| v.strings(n, &SECRET, check_dns_subdomain));
        }
        if let Some(e) = namespaces {
            rule.namespaces = self.field(e, |v, n| v.namespaces(n));
        }
        Some(rule)
    }

    fn rule_name(&mut self, node: &'t Node, seen: &mut Seen<'t>) -> Option<String> {
        let name = self.string(node, "a rule name")?;
        if let Err(e) = check_dns_label(name) {
            self.err(node.pos, format!("invalid rule name {name:?}: {e}"));
            return None;
        }
        if let Some(first) = seen.get(name) {
            let msg = format!(
                "duplicate rule name {name:?} (first defined at line {})",
                first.line
            );
            self.err(node.pos, msg);
            return None;
        }
        seen.insert(name, node.pos);
        Some(name.to_owned())
    }

    fn namespaces(&mut self, node: &'t Node) -> Option<NamespaceFilter> {
        let what = "a mapping with include, exclude or selector";
        let (_, [include, exclude, selector]) = self.mapping(node, what, NAMESPACE_FIELDS)?;
        let globs = |v: &mut Self, n| v.strings(n, &NAMESPACE, |s| NameGlob::parse(s).map(drop));
        Some(NamespaceFilter {
            include: include.map(|e| self.field(e, globs)),
            exclude: exclude.map(|e| self.field(e, globs)).unwrap_or_default(),
            selector: selector.and_then(|e| self.field(e, |v, n| v.selector(n))),
        })
    }

    fn selector(&mut self, node: &'t Node) -> Option<LabelSelector> {
        let what = "a label selector (a mapping with matchLabels or matchExpressions)";
        let (_, [labels, expressions]) = self.mapping(node, what, SELECTOR_FIELDS)?;
        let mut out = LabelSelector::default();
        if let Some(e) = labels {
            out.match_labels = self.field(e, |v, n| v.match_labels(n));
        }
        if let Some(e) = expressions {
            out.match_expressions = self.field(e, |v, n| {
                let items = v.list(n, "label selector requirements").unwrap_or_default();
                let mut reqs = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    reqs.extend(v.nest(PathSeg::Index(i), |v| v.requirement(item)));
                }
                reqs
            });
        }
        Some(out)
    }

    fn match_labels(&mut self, node: &'t Node) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let entries = match &node.kind {
            Kind::Map(entries) => entries,
            Kind::Invalid => return out,
            _ => {
                let msg = format!(
                    "expected a mapping of label keys to values, found {}",
                    found(node)
                );
                self.err(node.pos, msg);
                return out;
            }
        };
        for e in entries {
            if let Err(err) = check_label_key(&e.key) {
                self.err(e.key_pos, format!("invalid label key {:?}: {err}", e.key));
            }
            self.field(e, |v, n| {
                let value = v.label_value(n)?;
                out.insert(e.key.clone(), value.to_owned());
                Some(())
            });
        }
        out
    }

    fn label_value(&mut self, node: &'t Node) -> Option<&'t str> {
        let value = self.string(node, "a label value (write \"\" for an empty one)")?;
        match check_label_value(value) {
            Ok(()) => Some(value),
            Err(e) => {
                self.err(node.pos, format!("invalid label value {value:?}: {e}"));
                None
            }
        }
    }

    fn requirement(&mut self, node: &'t Node) -> Option<LabelSelectorRequirement> {
        let what = "a requirement (a mapping with key, operator and values)";
        let (pos, [key, operator, values]) = self.mapping(node, what, EXPRESSION_FIELDS)?;
        let key = self.required(pos, key, "key").and_then(|e| {
            self.field(e, |v, n| {
                let key = v.string(n, "a label key")?;
                match check_label_key(key) {
                    Ok(()) => Some(key.to_owned()),
                    Err(err) => {
                        v.err(n.pos, format!("invalid label key {key:?}: {err}"));
                        None
                    }
                }
            })
        });
        let operator = self.required(pos, operator, "operator").and_then(|e| {
            self.field(e, |v, n| {
                let name = v.string(n, "an operator")?;
                let op = SelectorOperator::from_name(name);
                if op.is_none() {
                    let names = SelectorOperator::NAMES.join(", ");
                    v.err(
                        n.pos,
                        format!("invalid operator {name:?}; expected one of {names}"),
                    );
                }
                op
            })
        });
        // Outer option: "values" present; inner: it is a list.
        let list = values.map(|e| {
            self.field(e, |v, n| {
                let items = v.list(n, "label values")?;
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    out.extend(
                        v.nest(PathSeg::Index(i), |v| v.label_value(item))
                            .map(str::to_owned),
                    );
                }
                Some((n.pos, items.len(), out))
            })
        });
        let operator = operator?;
        let name = operator.name();
        match (&list, operator.takes_values()) {
            (None, true) => self.err(
                pos,
                format!("operator {name} requires \"values\" with at least one value"),
            ),
            (Some(Some((at, 0, _))), true) => self.nest(PathSeg::Key("values"), |v| {
                v.err(*at, format!("operator {name} requires at least one value"))
            }),
            (Some(Some((at, n, _))), false) if *n > 0 => self.nest(PathSeg::Key("values"), |v| {
                v.err(*at, format!("operator {name} takes no values"))
            }),
            _ => {}
        }
        Some(LabelSelectorRequirement {
            key: key?,
            operator,
            values: list.flatten().map(|(_, _, out)| out).unwrap_or_default(),
        })
    }
}
