//! Located policy errors: what failed, where (1-based line and column), and
//! the document path of the offending node (`rules[1].registries[0]`).
//!
//! Also owns the pieces of messages shared by the YAML reader and the
//! validator: document paths and "did you mean" suggestions.

use std::fmt;

/// One problem in a policy document.
///
/// Displays as `line:col: path: message`, or `line:col: message` when the
/// problem concerns the document as a whole (empty `path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line of the offending node.
    pub line: usize,
    /// 1-based column (in characters) of the offending node.
    pub column: usize,
    /// Path of the offending node, e.g. `rules[0].registries[1]`; empty for
    /// the document itself.
    pub path: String,
    /// What is wrong, in lowercase, with the fix when there is an obvious one.
    pub message: String,
}

impl PolicyError {
    /// An error at `pos` for the node at `path`.
    pub(crate) fn new(pos: Pos, path: String, message: impl Into<String>) -> Self {
        PolicyError {
            line: pos.line,
            column: pos.column,
            path,
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

impl std::error::Error for PolicyError {}

/// Every problem found in a policy document, in document order; never empty
/// when returned by [`parse`](super::parse).
///
/// Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl PolicyErrors {
    /// The errors, in document order.
    pub fn errors(&self) -> &[PolicyError] {
        &self.0
    }
}

/// A 1-based position in the policy text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// Line 1, column 1: where whole-document errors point.
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// One step of a document path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathSeg<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

/// Renders a path: `rules[0].namespaces.selector.matchLabels["example.com/tier"]`.
///
/// Keys made of `[A-Za-z0-9_-]` are written after a dot; any other key is
/// written quoted in brackets so that the path stays unambiguous.
pub(crate) fn render_path<'a>(segs: impl IntoIterator<Item = PathSeg<'a>>) -> String {
    use fmt::Write as _;
    let mut out = String::new();
    for seg in segs {
        match seg {
            PathSeg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            PathSeg::Key(k) => {
                let plain = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !plain {
                    let _ = write!(out, "[{k:?}]");
                } else {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
            }
        }
    }
    out
}

/// A known field that is probably what an unknown one meant: the closest
/// within two edits, or else the one sharing the longest prefix (≥ 6).
pub(crate) fn suggest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = unknown.to_ascii_lowercase();
    known
        .iter()
        .filter_map(|k| {
            let k_lower = k.to_ascii_lowercase();
            let distance = edit_distance(&k_lower, &lower);
            let prefix = k_lower
                .bytes()
                .zip(lower.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            (distance <= 2 || prefix >= 6).then_some((distance, usize::MAX - prefix, *k))
        })
        .min()
        .map(|(_, _, k)| k)
}

/// Levenshtein distance, capped work: only used on short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 || a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_keys_indices_and_odd_keys() {
        let p = render_path([
            PathSeg::Key("rules"),
            PathSeg::Index(2),
            PathSeg::Key("namespaces"),
            PathSeg::Key("example.com/tier"),
        ]);
        assert_eq!(p, r#"rules[2].namespaces["example.com/tier"]"#);
        assert_eq!(render_path([]), "");
        assert_eq!(render_path([PathSeg::Key("")]), r#"[""]"#);
    }

    #[test]
    fn display_omits_empty_path_and_joins_lines() {
        let a = PolicyError::new(Pos::START, String::new(), "policy is empty");
        let b = PolicyError::new(Pos { line: 3, column: 9 }, "rules[0]".into(), "bad");
        assert_eq!(a.to_string(), "1:1: policy is empty");
        assert_eq!(b.to_string(), "3:9: rules[0]: bad");
        assert_eq!(
            PolicyErrors(vec![a, b]).to_string(),
            "1:1: policy is empty\n3:9: rules[0]: bad"
        );
    }

    const RULE: [&str; 5] = [
        "name",
        "registries",
        "repositories",
        "secrets",
        "namespaces",
    ];
    const SELECTOR: [&str; 2] = ["matchLabels", "matchExpressions"];

    #[test]
    fn suggestions_for_near_misses() {
        assert_eq!(suggest("secret", &RULE), Some("secrets"));
        assert_eq!(suggest("registry", &RULE), Some("registries"));
        assert_eq!(suggest("matchlabels", &SELECTOR), Some("matchLabels"));
        assert_eq!(suggest("images", &RULE), None);
        assert_eq!(
            suggest("matchExpression", &SELECTOR),
            Some("matchExpressions")
        );
        assert_eq!(suggest("Name", &RULE), Some("name"));
        assert_eq!(suggest("repository", &RULE), Some("repositories"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("a", "abcd"), usize::MAX);
        assert_eq!(edit_distance("name", "nmae"), 2);
    }
}
