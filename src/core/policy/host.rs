//! Registry host patterns, matched like the kubelet's credential-provider
//! `matchImages`: host and port are split; ports must be equal (absent ==
//! absent); the host must have as many dot-separated labels as the pattern,
//! and each pattern label is a glob (`*` any run within the label, `?` one
//! character) compared case-insensitively. IPv6 literals in brackets match
//! exactly (as addresses). `index.docker.io` means `docker.io`.
//!
//! Owns pattern validation and the allocation-free pieces of matching an
//! image's registry; the index over many patterns lives in `compile`.

use std::net::Ipv6Addr;

use super::glob::wildcard;

/// Why a host pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostPatternError {
    #[error("must not be empty")]
    Empty,
    #[error("must not contain whitespace")]
    Whitespace,
    #[error("remove the scheme {0:?}; a registry pattern is a host[:port]")]
    Scheme(String),
    #[error("a registry pattern is a host[:port]; put repository paths in \"repositories\"")]
    Path,
    #[error(
        "character {0:?} is not allowed; a host has letters, digits, '-' and '.', with '*' or '?' as wildcards"
    )]
    BadChar(char),
    #[error("has an empty label (check for a leading, trailing or doubled '.')")]
    EmptyLabel,
    #[error("label {0:?} must start and end with a letter or digit")]
    LabelEdge(String),
    #[error("label {0:?} is longer than 63 characters")]
    LabelTooLong(String),
    #[error("host is longer than 253 characters")]
    TooLong,
    #[error("has an empty port after ':'")]
    EmptyPort,
    #[error("port {0:?} is not a number")]
    PortNotNumber(String),
    #[error("port {0:?} must be written without leading zeros")]
    PortLeadingZero(String),
    #[error("port {0} is out of range 1-65535")]
    PortRange(String),
    #[error("IPv6 addresses must be in brackets, as in \"[::1]:5000\"")]
    UnbracketedIpv6,
    #[error("{0:?} is not an IPv6 address")]
    BadIpv6(String),
    #[error("only \":port\" may follow the ']' of an IPv6 address")]
    AfterBracket,
}

/// One label of a host pattern, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Label {
    Literal(Box<str>),
    Glob(Box<str>),
}

impl Label {
    /// Whether an (already lowercase) host label matches.
    pub(crate) fn matches(&self, label: &str) -> bool {
        match self {
            Label::Literal(l) => **l == *label,
            Label::Glob(g) => wildcard(g.as_bytes(), label.as_bytes()),
        }
    }
}

/// A validated host pattern, normalized (lowercase; `index.docker.io` → `docker.io`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// No wildcard: matched as the lowercase text `host[:port]`.
    Exact(String),
    /// Some label is a glob.
    Wild {
        labels: Box<[Label]>,
        port: Option<u16>,
    },
    /// A bracketed IPv6 literal.
    Ipv6 { addr: Ipv6Addr, port: Option<u16> },
}

/// A validated pattern's parts, borrowed from the text.
enum Shape<'a> {
    Ipv6(Ipv6Addr, Option<u16>),
    Host {
        host: &'a str,
        port: Option<u16>,
        glob: bool,
    },
}

/// Validates a pattern without allocating.
fn scan(s: &str) -> Result<Shape<'_>, HostPatternError> {
    use HostPatternError as E;
    if s.is_empty() {
        return Err(E::Empty);
    }
    if s.chars().any(char::is_whitespace) {
        return Err(E::Whitespace);
    }
    if let Some(i) = s.find("://") {
        return Err(E::Scheme(s[..i + 3].to_owned()));
    }
    if s.contains('/') {
        return Err(E::Path);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or_else(|| E::BadIpv6(rest.into()))?;
        let addr = inner.parse().map_err(|_| E::BadIpv6(inner.into()))?;
        let port = match after {
            "" => None,
            _ => Some(parse_port(after.strip_prefix(':').ok_or(E::AfterBracket)?)?),
        };
        return Ok(Shape::Ipv6(addr, port));
    }
    let (host, port) = match s.split_once(':') {
        None => (s, None),
        Some((_, p)) if p.contains(':') => return Err(E::UnbracketedIpv6),
        Some((h, p)) => (h, Some(parse_port(p)?)),
    };
    if let Some(c) = host
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '?')))
    {
        return Err(E::BadChar(c));
    }
    if host.len() > 253 {
        return Err(E::TooLong);
    }
    let mut glob = false;
    for label in host.split('.') {
        if label.is_empty() {
            return Err(E::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(E::LabelTooLong(label.into()));
        }
        if label.contains(['*', '?']) {
            glob = true;
        } else if label.starts_with('-') || label.ends_with('-') {
            return Err(E::LabelEdge(label.into()));
        }
    }
    Ok(Shape::Host { host, port, glob })
}

impl HostPattern {
    /// Validates a pattern as written in a policy, without building it.
    pub(crate) fn check(s: &str) -> Result<(), HostPatternError> {
        scan(s).map(drop)
    }

    /// Validates and normalizes a pattern as written in a policy.
    pub(crate) fn parse(s: &str) -> Result<HostPattern, HostPatternError> {
        let (host, port, glob) = match scan(s)? {
            Shape::Ipv6(addr, port) => return Ok(HostPattern::Ipv6 { addr, port }),
            Shape::Host { host, port, glob } => (host, port, glob),
        };
        let host = host.to_ascii_lowercase();
        if glob {
            let labels = host
                .split('.')
                .map(|l| {
                    if l.contains(['*', '?']) {
                        Label::Glob(l.into())
                    } else {
                        Label::Literal(l.into())
                    }
                })
                .collect();
            return Ok(HostPattern::Wild { labels, port });
        }
        let host = if host == "index.docker.io" && port.is_none() {
            "docker.io".to_owned()
        } else {
            host
        };
        Ok(HostPattern::Exact(match port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }))
    }
}

fn parse_port(p: &str) -> Result<u16, HostPatternError> {
    use HostPatternError as E;
    if p.is_empty() {
        return Err(E::EmptyPort);
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(E::PortNotNumber(p.into()));
    }
    if p.len() > 1 && p.starts_with('0') {
        return Err(E::PortLeadingZero(p.into()));
    }
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(E::PortRange(p.into())),
    }
}

/// An image port in the form patterns use: `Some(None)` when absent,
/// `Some(Some(n))` for a canonical decimal port, `None` when the text can
/// never equal a valid pattern's port (so nothing matches).
pub(crate) fn image_port(p: Option<&str>) -> Option<Option<u16>> {
    match p {
        None => Some(None),
        Some(p) => parse_port(p).ok().map(Some),
    }
}

/// Splits an image registry into host and port text. Bracketed IPv6 hosts
/// keep their brackets.
pub(crate) fn split_registry(registry: &str) -> (&str, Option<&str>) {
    let search_from = if registry.starts_with('[') {
        registry.find(']').unwrap_or(registry.len())
    } else {
        0
    };
    match registry[search_from..].rfind(':') {
        Some(i) => (
            &registry[..search_from + i],
            Some(&registry[search_from + i + 1..]),
        ),
        None => (registry, None),
    }
}

/// The address of a bracketed IPv6 host (`[::1]`), if it is one.
pub(crate) fn ipv6_host(host: &str) -> Option<Ipv6Addr> {
    host.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Whether a lowercase host matches glob labels (same label count required).
pub(crate) fn labels_match(labels: &[Label], host: &str) -> bool {
    let mut parts = host.split('.');
    labels
        .iter()
        .all(|l| parts.next().is_some_and(|part| l.matches(part)))
        && parts.next().is_none()
}

/// Number of dot-separated labels of a host.
pub(crate) fn label_count(host: &str) -> usize {
    host.bytes().filter(|&b| b == b'.').count() + 1
}

/// The text of `len` consecutive labels of `host`, the right-most of which
/// is `from_right` labels from the end (0 = the last label).
pub(crate) fn span_from_right(host: &str, from_right: usize, len: usize) -> Option<&str> {
    let mut dots = host
        .bytes()
        .enumerate()
        .rev()
        .filter(|&(_, b)| b == b'.')
        .map(|(i, _)| i);
    let mut end = host.len();
    for _ in 0..from_right {
        end = dots.next()?;
    }
    let mut start = 0;
    for i in 0..len {
        match dots.next() {
            Some(d) => start = d + 1,
            None if i + 1 == len => start = 0,
            None => return None,
        }
    }
    host.get(start..end)
}

/// The right-most run of literal labels of a glob pattern, as the
/// `(from_right, len, text)` used to index it; `None` when every label is a glob.
pub(crate) fn literal_run(labels: &[Label]) -> Option<(usize, usize, String)> {
    let last = labels
        .iter()
        .rposition(|l| matches!(l, Label::Literal(_)))?;
    let first = labels[..last]
        .iter()
        .rposition(|l| matches!(l, Label::Glob(_)))
        .map_or(0, |g| g + 1);
    let text: Vec<&str> = labels[first..=last]
        .iter()
        .map(|l| match l {
            Label::Literal(s) | Label::Glob(s) => &**s,
        })
        .collect();
    Some((labels.len() - 1 - last, last - first + 1, text.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pattern: &str) -> Box<[Label]> {
        match HostPattern::parse(pattern) {
            Ok(HostPattern::Wild { labels, .. }) => labels,
            other => panic!("{pattern}: {other:?}"),
        }
    }

    #[test]
    fn registries_split_into_host_and_port() {
        assert_eq!(split_registry("docker.io"), ("docker.io", None));
        assert_eq!(split_registry("h.io:5000"), ("h.io", Some("5000")));
        assert_eq!(split_registry("[::1]:5000"), ("[::1]", Some("5000")));
        assert_eq!(split_registry("[::1]"), ("[::1]", None));
        assert_eq!(split_registry("[::1"), ("[::1", None));
        assert_eq!(image_port(Some("05000")), None);
        assert_eq!(image_port(Some("5000")), Some(Some(5000)));
        assert_eq!(image_port(None), Some(None));
        assert_eq!(ipv6_host("[::1]"), Some(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn literal_runs_index_the_rightmost_literal_labels() {
        let run = |p: &str| literal_run(&labels(p));
        assert_eq!(run("*.corp.example"), Some((0, 2, "corp.example".into())));
        assert_eq!(
            run("*.dkr.ecr.*.amazonaws.com"),
            Some((0, 2, "amazonaws.com".into()))
        );
        assert_eq!(run("registry.*"), Some((1, 1, "registry".into())));
        assert_eq!(run("a.b.*.*"), Some((2, 2, "a.b".into())));
        assert_eq!(run("*.*"), None);
        assert_eq!(run("ecr-*.x"), Some((0, 1, "x".into())));
    }

    #[test]
    fn spans_are_cut_from_the_right() {
        let host = "123.dkr.ecr.us-east-1.amazonaws.com";
        assert_eq!(span_from_right(host, 0, 2), Some("amazonaws.com"));
        assert_eq!(span_from_right(host, 1, 3), Some("ecr.us-east-1.amazonaws"));
        assert_eq!(span_from_right(host, 4, 2), Some("123.dkr"));
        assert_eq!(span_from_right(host, 5, 1), Some("123"));
        assert_eq!(span_from_right(host, 5, 2), None);
        assert_eq!(span_from_right(host, 6, 1), None);
        assert_eq!(span_from_right("a", 0, 1), Some("a"));
    }

    #[test]
    fn patterns_are_normalized() {
        let exact = |p: &str| HostPattern::parse(p).ok();
        assert_eq!(
            exact("Harbor.IO:5000"),
            Some(HostPattern::Exact("harbor.io:5000".into()))
        );
        assert_eq!(
            exact("index.docker.io"),
            Some(HostPattern::Exact("docker.io".into()))
        );
        assert_eq!(
            exact("index.docker.io:443"),
            Some(HostPattern::Exact("index.docker.io:443".into()))
        );
        assert_eq!(
            exact("[::1]:5000"),
            Some(HostPattern::Ipv6 {
                addr: Ipv6Addr::LOCALHOST,
                port: Some(5000)
            })
        );
        assert!(labels_match(&labels("*.CORP.example"), "x.corp.example"));
        assert!(!labels_match(&labels("*.corp.example"), "corp.example"));
        assert_eq!(label_count("a.b.c"), 3);
    }
}
