//! Globs: the wildcard matcher shared by every pattern kind, repository path
//! globs (`team-a/**`, `*/app-*`) and namespace name globs (`team-a-*`).
//!
//! Parsing validates and compiles in one step; matching never allocates.

/// Why a glob is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GlobError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters, found {len}")]
    TooLong { max: usize, len: usize },
    #[error("uppercase letter {0:?} is not allowed; {1} are lowercase")]
    Uppercase(char, &'static str),
    #[error("character {0:?} is not allowed; use {1}")]
    BadChar(char, &'static str),
    #[error("must not start or end with '/'")]
    EdgeSlash,
    #[error("has an empty segment ('//')")]
    EmptySegment,
    #[error("'**' must be a whole segment, as in \"team-a/**\"")]
    PartialDoubleStar,
}

/// Matches `text` against `pattern` byte-wise: `*` matches any run of bytes,
/// `?` exactly one, anything else itself. Linear-time in the common cases,
/// O(n·m) worst case, no allocation.
pub(crate) fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last '*' was, and the text position it is retried from.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// One segment of a repository glob.
#[derive(Debug, Clone)]
enum Segment {
    /// `**`: zero or more whole segments.
    AnyDepth,
    /// A segment without wildcards.
    Literal(Box<str>),
    /// A segment with `*`.
    Wild(Box<str>),
}

impl Segment {
    fn matches(&self, seg: &str) -> bool {
        match self {
            Segment::AnyDepth => true,
            Segment::Literal(l) => **l == *seg,
            Segment::Wild(w) => wildcard(w.as_bytes(), seg.as_bytes()),
        }
    }
}

/// A compiled repository path glob.
#[derive(Debug, Clone)]
pub(crate) struct RepoGlob {
    segments: Box<[Segment]>,
}

const REPO_CHARS: &str = "lowercase letters, digits, '.', '_', '-', '/' and '*'";

impl RepoGlob {
    /// Validates and compiles a repository glob.
    pub(crate) fn parse(s: &str) -> Result<RepoGlob, GlobError> {
        if s.is_empty() {
            return Err(GlobError::Empty);
        }
        if s.len() > 255 {
            return Err(GlobError::TooLong {
                max: 255,
                len: s.len(),
            });
        }
        for c in s.chars() {
            if c.is_ascii_uppercase() {
                return Err(GlobError::Uppercase(c, "repository paths"));
            }
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*".contains(c)) {
                return Err(GlobError::BadChar(c, REPO_CHARS));
            }
        }
        if s.starts_with('/') || s.ends_with('/') {
            return Err(GlobError::EdgeSlash);
        }
        let mut segments = Vec::new();
        for seg in s.split('/') {
            segments.push(match seg {
                "" => return Err(GlobError::EmptySegment),
                "**" => Segment::AnyDepth,
                _ if seg.contains("**") => return Err(GlobError::PartialDoubleStar),
                _ if seg.contains('*') => Segment::Wild(seg.into()),
                _ => Segment::Literal(seg.into()),
            });
        }
        Ok(RepoGlob {
            segments: segments.into(),
        })
    }

    /// The first segment when it is literal: every path the glob matches
    /// starts with it.
    pub(crate) fn literal_first(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(l)) => Some(l),
            _ => None,
        }
    }

    /// Whether `path` (segments separated by '/') matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        // Segment-level version of `wildcard`, with `**` as the star. Text
        // positions are byte offsets of segment starts; `done` = consumed all.
        let done = path.len() + 1;
        let segment_at = |start: usize| -> (&str, usize) {
            let rest = path.get(start..).unwrap_or("");
            let end = rest.find('/').unwrap_or(rest.len());
            (&rest[..end], start + end + 1)
        };
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        loop {
            match self.segments.get(p) {
                Some(Segment::AnyDepth) => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Some(pat) if t < done => {
                    let (seg, next) = segment_at(t);
                    if pat.matches(seg) {
                        p += 1;
                        t = next;
                        continue;
                    }
                }
                Some(_) => {}
                None if t == done => return true,
                None => {}
            }
            match star {
                Some((sp, st)) if st < done => {
                    let (_, next) = segment_at(st);
                    star = Some((sp, next));
                    p = sp;
                    t = next;
                }
                _ => return false,
            }
        }
    }
}

/// A compiled namespace name glob.
#[derive(Debug, Clone)]
pub(crate) struct NameGlob {
    pattern: Box<str>,
    wild: bool,
}

impl NameGlob {
    /// Validates and compiles a namespace name glob (`[a-z0-9-*]`, ≤63).
    pub(crate) fn parse(s: &str) -> Result<NameGlob, GlobError> {
        if s.is_empty() {
            return Err(GlobError::Empty);
        }
        if s.len() > 63 {
            return Err(GlobError::TooLong {
                max: 63,
                len: s.len(),
            });
        }
        for c in s.chars() {
            if c.is_ascii_uppercase() {
                return Err(GlobError::Uppercase(c, "namespace names"));
            }
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*') {
                return Err(GlobError::BadChar(
                    c,
                    "lowercase letters, digits, '-' and '*'",
                ));
            }
        }
        Ok(NameGlob {
            pattern: s.into(),
            wild: s.contains('*'),
        })
    }

    /// Whether the namespace `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.wild {
            wildcard(self.pattern.as_bytes(), name.as_bytes())
        } else {
            *self.pattern == *name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "abc", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "abxc", true),
            ("a*c", "abcd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*", "xaxxbx", true),
            ("*a*b*", "xbxxax", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("", "", true),
            ("", "a", false),
            ("**", "a", true),
            (
                "a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for &(p, t, want) in cases {
            assert_eq!(wildcard(p.as_bytes(), t.as_bytes()), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn repo_glob_errors() {
        let cases: &[(&str, GlobError)] = &[
            ("", GlobError::Empty),
            ("/a", GlobError::EdgeSlash),
            ("a/", GlobError::EdgeSlash),
            ("a//b", GlobError::EmptySegment),
            ("Team/x", GlobError::Uppercase('T', "repository paths")),
            ("a b", GlobError::BadChar(' ', REPO_CHARS)),
            ("a?", GlobError::BadChar('?', REPO_CHARS)),
            ("a/b**", GlobError::PartialDoubleStar),
            ("***", GlobError::PartialDoubleStar),
        ];
        for (s, want) in cases {
            assert_eq!(RepoGlob::parse(s).err().as_ref(), Some(want), "{s:?}");
        }
        assert!(RepoGlob::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn name_glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("prod", "prod", true),
            ("prod", "prod-1", false),
            ("team-a-*", "team-a-dev", true),
            ("team-a-*", "team-a-", true),
            ("team-a-*", "team-b-dev", false),
            ("*-prod", "shop-prod", true),
            ("*", "anything", true),
        ];
        for &(p, n, want) in cases {
            assert_eq!(
                NameGlob::parse(p).map(|g| g.matches(n)),
                Ok(want),
                "{p:?} {n:?}"
            );
        }
        assert!(NameGlob::parse("Prod").is_err());
        assert!(NameGlob::parse("a.b").is_err());
        assert!(NameGlob::parse("").is_err());
        assert!(NameGlob::parse(&"a".repeat(64)).is_err());
    }
}
