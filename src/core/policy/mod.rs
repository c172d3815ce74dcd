//! Pull-secret policy (format v1): parse the operator's YAML or JSON with
//! line/column locations, validate all of it at once, and compile it into an
//! immutable matcher.
//!
//! ```text
//! text ──yaml──▶ located tree ──validate──▶ Policy ──compile──▶ CompiledPolicy
//! ```
//!
//! Pure code: no async, no I/O, no logging, no clock. Every problem in a
//! document is reported in one pass as a [`PolicyError`] with a 1-based
//! line and column and a path such as `rules[1].registries[0]`.
//!
//! A rule applies to an image in a namespace when the image's registry
//! matches one of its host patterns, its repository matches one of its
//! repository globs (or it has none), and the namespace passes its
//! include/exclude name globs and label selector (or it has none).
//!
//! Finer points of the format:
//! - host patterns match like the kubelet's `matchImages` (same label
//!   count, each label a `*`/`?` glob, case-insensitive, ports compared as
//!   written and absent only equals absent); IPv6 literals are matched only
//!   by IPv6 patterns, as addresses; `index.docker.io` means `docker.io`;
//! - in repository globs `**` matches zero or more segments, so `team-a/**`
//!   also matches `team-a` itself;
//! - an empty selector (or `namespaces: {}`) lets every namespace through;
//! - scalars that look like numbers or booleans are taken as their text
//!   where a string is expected; null, `~` and empty values are errors;
//! - YAML anchors, aliases, tags other than `!!str`/`!!seq`/`!!map`,
//!   duplicate keys and multiple documents are refused.

mod compile;
mod error;
mod glob;
mod host;
mod model;
mod names;
mod selector;
mod validate;
mod yaml;

#[cfg(test)]
mod tests;

pub use compile::{CompiledPolicy, CompiledRule, NamespaceFacts, NamespaceMatch, RuleIds};
pub use error::{PolicyError, PolicyErrors};
pub use model::{
    LabelSelector, LabelSelectorRequirement, ManagedSecret, NamespaceFilter, Policy, Rule,
    SelectorOperator,
};

/// The hash maps of parsing and of the compiled index. foldhash is several
/// times faster than SipHash on short keys such as rule names and registry
/// hosts, and is seeded per process; the keys come from the operator's
/// policy.
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Largest policy text accepted, in bytes: the ConfigMap size limit (1 MiB).
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// Parses and validates a policy document (YAML, or JSON).
///
/// Returns every problem found, in document order, when the document is
/// not a valid policy. A leading byte-order mark is ignored.
pub fn parse(text: &str) -> Result<Policy, PolicyErrors> {
    if text.len() > MAX_POLICY_BYTES {
        let message = format!(
            "policy is {} bytes; the limit is {MAX_POLICY_BYTES} bytes (1 MiB)",
            text.len()
        );
        return Err(PolicyErrors(vec![PolicyError::new(
            error::Pos::START,
            String::new(),
            message,
        )]));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc = yaml::parse(text);
    let mut errors = doc.errors;
    let mut policy = None;
    if let Some(root) = &doc.root {
        let (p, more) = validate::validate(root);
        errors.extend(more);
        policy = p;
    }
    match policy {
        Some(policy) if errors.is_empty() => Ok(policy),
        _ => {
            if errors.is_empty() {
                // Unreachable in practice: no policy always comes with a reason.
                errors.push(PolicyError::new(
                    error::Pos::START,
                    String::new(),
                    "invalid policy",
                ));
            }
            errors.sort_by_key(|e| (e.line, e.column));
            Err(PolicyErrors(errors))
        }
    }
}
