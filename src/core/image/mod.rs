//! Container image references, normalized exactly as the container runtime
//! normalizes them.
//!
//! This module owns one job: turning the `image:` string of a pod's container
//! into the registry, repository, tag and digest that containerd, Docker and
//! the kubelet would derive from it. It reproduces, byte for byte, Go's
//! `github.com/distribution/reference` v0.6 `ParseNormalizedNamed` (with the
//! digest checks of `github.com/opencontainers/go-digest` v1.0.0, sha256,
//! sha384 and sha512 being the available algorithms), including its odd
//! corners and its error messages:
//!
//! * `nginx` becomes `docker.io/library/nginx`; `index.docker.io` becomes
//!   `docker.io`; no `latest` tag is added.
//! * The first path segment is a registry only if it is `localhost`, holds a
//!   `.` or a `:`, or has an upper-case letter (`Foo/bar` is on host `Foo`).
//! * A first segment picked as a registry that the domain grammar rejects but
//!   the path grammar accepts ends up in the path, with an empty registry:
//!   `foo_bar.com/x` has registry `""` and repository `foo_bar.com/x`.
//!
//! Go's case checks are Unicode-wide and use Go's Unicode 15.0 tables; the
//! few letters that became capitals in later Unicode versions are not treated
//! as upper case.
//!
//! The parser is a hand-written scanner over bytes: no regular expressions,
//! no panics on any input, and no allocation unless Docker Hub's `library/`
//! namespace has to be prepended, the registry-less case above occurs, or an
//! error is returned.

use std::borrow::Cow;
use std::fmt;

/// The registry of Docker Hub, as references spell it once normalized.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy name of Docker Hub, rewritten to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The one registry name recognised without a `.` or a `:`.
const LOCALHOST: &str = "localhost";
/// Namespace of Docker Hub's official images, prepended to one-segment names.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Longest repository path accepted, in bytes; the registry is not counted.
pub const MAX_PATH_LEN: usize = 255;
/// Longest tag accepted, in bytes.
const MAX_TAG_LEN: usize = 128;
/// Fewest hex digits the reference grammar accepts after a digest algorithm.
const MIN_DIGEST_HEX_LEN: usize = 32;

/// Why a string is not an image reference. The `Display` text of each variant
/// is the exact error string Go's `ParseNormalizedNamed` returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseImageRefError {
    /// The string does not match the reference grammar (Go's
    /// `ErrReferenceInvalidFormat`); this includes the empty string.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The repository part, up to the first `:` and with any `library/`
    /// prefix, has an upper-case letter.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    RepositoryNotLowercase(String),
    /// The reference only matches the grammar once lower-cased, the upper-case
    /// letters being somewhere the previous check does not look (Go's
    /// `ErrNameContainsUppercase`), e.g. `Foo_bar/x`.
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// The whole string is 64 lower-case hex digits, i.e. an image ID.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexadecimalName(String),
    /// The repository path is longer than [`MAX_PATH_LEN`] bytes.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// Go's `ErrNameEmpty`. Kept for parity with Go's error set, but [`parse`]
    /// never returns it: normalization always hands Go's `Parse` a non-empty
    /// `domain/...` string, so an empty input is [`Self::InvalidFormat`].
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// The digest is malformed, e.g. upper-case hex or an upper-case algorithm.
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    /// A sha256, sha384 or sha512 digest with the wrong number of hex digits.
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// A well-formed digest whose algorithm is not sha256, sha384 or sha512.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// A normalized image reference, borrowing from the string it was parsed from.
///
/// Its [`Display`](fmt::Display) is Go's `String()`:
/// `registry/repository[:tag][@digest]`, or `repository[:tag][@digest]` when
/// the registry is empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference<'a> {
    domain: &'a str,
    path: Cow<'a, str>,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl Reference<'_> {
    /// The registry, as Go's `reference.Domain`: `docker.io` for Docker Hub,
    /// otherwise as written (case kept, port included), e.g. `[::1]:5000`.
    /// Empty in the rare case described in the module doc (`foo_bar.com/x`).
    pub fn registry(&self) -> &str {
        self.domain
    }

    /// The repository path, as Go's `reference.Path`, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.path
    }

    /// The tag, if one was written; `latest` is never filled in.
    pub fn tag(&self) -> Option<&str> {
        self.tag
    }

    /// The digest, such as `sha256:<64 hex digits>`, if one was written.
    pub fn digest(&self) -> Option<&str> {
        self.digest
    }
}

impl fmt::Display for Reference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.domain.is_empty() {
            write!(f, "{}/", self.domain)?;
        }
        f.write_str(&self.path)?;
        if let Some(tag) = self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Parses and normalizes an image reference exactly as Go's
/// `reference.ParseNormalizedNamed` does, returning the same error text.
pub fn parse(input: &str) -> Result<Reference<'_>, ParseImageRefError> {
    match parse_common(input) {
        Some(reference) => Ok(reference),
        None => parse_full(input),
    }
}

/// The usual reference — lower-case ASCII, a host name (if any) without
/// brackets, a tag and/or a sha256 digest — parsed in one pass over the
/// bytes and a second over the path; `None` for anything else, valid or
/// not, which [`parse_full`] then reads with the full grammar.
///
/// Hand-written for speed: every pod's every image goes through [`parse`],
/// and the full reading visits each byte six or seven times (domain guess,
/// case checks, digest split, tag split, path and domain grammars). What
/// this returns is exactly what [`parse_full`] returns for the same input
/// (a test and the `image` fuzz target compare them).
fn parse_common(input: &str) -> Option<Reference<'_>> {
    let bytes = input.as_bytes();
    let mut first_slash = None;
    let mut last_slash = 0;
    let mut colons_before_slash = 0u32;
    let mut colons_after_slash = 0u32;
    let mut last_colon = 0;
    let mut first_upper = usize::MAX;
    let mut name_end = bytes.len();
    for (at, &b) in bytes.iter().enumerate() {
        let class = COMMON_CLASS[usize::from(b)];
        if class == PLAIN {
            continue;
        }
        match b {
            b'/' => {
                if first_slash.is_none() {
                    first_slash = Some(at);
                }
                last_slash = at;
            }
            b':' => {
                if first_slash.is_none() {
                    colons_before_slash += 1;
                } else {
                    colons_after_slash += 1;
                }
                last_colon = at;
            }
            b'A'..=b'Z' => first_upper = first_upper.min(at),
            b'@' => {
                name_end = at;
                break;
            }
            _ => return None,
        }
    }
    if is_identifier(input) {
        return None;
    }
    let digest = match input.get(name_end..) {
        Some("") => None,
        Some(at_digest) => {
            let digest = at_digest.get(1..)?;
            let hex = digest.strip_prefix("sha256:")?;
            if hex.len() != 64 || !hex.bytes().all(is_lower_hex) {
                return None;
            }
            Some(digest)
        }
        None => return None,
    };
    let name = input.get(..name_end)?;

    // The registry guess (`split_docker_domain`) on the first segment.
    let (domain, prefix, remainder, colons) = match first_slash {
        None => (
            DEFAULT_DOMAIN,
            OFFICIAL_REPO_PREFIX,
            name,
            colons_before_slash,
        ),
        Some(slash) => {
            let first = name.get(..slash)?;
            let rest = name.get(slash + 1..)?;
            if first == LOCALHOST || first.bytes().any(|b| b == b'.' || b == b':') {
                if colons_before_slash > 1 || first_upper < slash || !is_domain_and_port(first) {
                    return None;
                }
                let domain = if first == LEGACY_DEFAULT_DOMAIN {
                    DEFAULT_DOMAIN
                } else {
                    first
                };
                let prefix = if domain == DEFAULT_DOMAIN && slash == last_slash {
                    OFFICIAL_REPO_PREFIX
                } else {
                    ""
                };
                (domain, prefix, rest, colons_after_slash)
            } else {
                // No `.` or `:` in the first segment: Docker Hub, and the
                // whole name is the path (it has a `/`, so no prefix).
                (DEFAULT_DOMAIN, "", name, colons_after_slash)
            }
        }
    };
    // The tag: after the one `:` of the remainder, in its last segment.
    let (path, tag) = match colons {
        0 => (remainder, None),
        1 if first_slash.is_none() || last_colon > last_slash => {
            let colon = last_colon - (name.len() - remainder.len());
            (remainder.get(..colon)?, Some(remainder.get(colon + 1..)?))
        }
        _ => return None,
    };
    // Capitals are fine in a tag only.
    if first_upper < name.len() - remainder.len() + path.len()
        || prefix.len() + path.len() > MAX_PATH_LEN
        || tag.is_some_and(|tag| !is_tag(tag))
        || !is_path(path.as_bytes())
    {
        return None;
    }
    let path = if prefix.is_empty() {
        Cow::Borrowed(path)
    } else {
        Cow::Owned([prefix, path].concat())
    };
    Some(Reference {
        domain,
        path,
        tag,
        digest,
    })
}

/// A byte of [`COMMON_CLASS`]: a lower-case letter, digit, `.`, `-` or `_`.
const PLAIN: u8 = 0;

/// The bytes [`parse_common`] passes over without a second look.
const COMMON_CLASS: [u8; 256] = {
    let mut table = [1; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_') {
            table[b] = PLAIN;
        }
        b += 1;
    }
    table
};

/// [`parse`] with the full grammar for every input: what the one-pass
/// reading of the usual reference is checked against (tests, the `image`
/// fuzz target). Callers want [`parse`].
pub fn parse_full(input: &str) -> Result<Reference<'_>, ParseImageRefError> {
    if is_identifier(input) {
        return Err(ParseImageRefError::HexadecimalName(input.to_owned()));
    }
    let split = split_docker_domain(input);
    let remote = split
        .remainder
        .get(..find_byte(split.remainder, b':').unwrap_or(split.remainder.len()))
        .unwrap_or_default();
    if has_uppercase(remote) {
        let remote = format!("{}{remote}", split.prefix);
        return Err(ParseImageRefError::RepositoryNotLowercase(remote));
    }

    // From here on Go parses `domain/prefix+remainder` with its grammar.
    let Some(found) = match_reference(split.domain, split.remainder) else {
        return Err(uppercase_or_invalid(split.domain, split.remainder));
    };
    let (domain, path_len) = if found.has_domain {
        (split.domain, split.prefix.len() + found.path.len())
    } else {
        // The first segment failed the domain grammar, so it stays in the path.
        (
            "",
            split.domain.len() + 1 + split.prefix.len() + found.path.len(),
        )
    };
    if path_len > MAX_PATH_LEN {
        return Err(ParseImageRefError::NameTooLong);
    }
    if let Some(digest) = found.digest {
        validate_digest(digest)?;
    }
    let path = match (found.has_domain, split.prefix.is_empty()) {
        (true, true) => Cow::Borrowed(found.path),
        (true, false) => Cow::Owned([split.prefix, found.path].concat()),
        (false, _) => Cow::Owned([split.domain, "/", split.prefix, found.path].concat()),
    };
    Ok(Reference {
        domain,
        path,
        tag: found.tag,
        digest: found.digest,
    })
}

/// The registry guess of Go's `splitDockerDomain`: the input reads as
/// `domain/prefix+remainder`.
struct DomainSplit<'a> {
    /// `docker.io`, or the input's first segment (which holds no `/`).
    domain: &'a str,
    /// `library/` for one-segment names on Docker Hub, otherwise empty.
    prefix: &'static str,
    /// The rest of the input: repository, tag and digest.
    remainder: &'a str,
}

fn split_docker_domain(name: &str) -> DomainSplit<'_> {
    let Some((first, rest)) = split_once_byte(name, b'/') else {
        return DomainSplit {
            domain: DEFAULT_DOMAIN,
            prefix: OFFICIAL_REPO_PREFIX,
            remainder: name,
        };
    };
    let (domain, remainder) = if first == LOCALHOST {
        (first, rest)
    } else if first == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest)
    } else if first.bytes().any(|b| b == b'.' || b == b':') || has_uppercase(first) {
        (first, rest)
    } else {
        (DEFAULT_DOMAIN, name)
    };
    let prefix = if domain == DEFAULT_DOMAIN && find_byte(remainder, b'/').is_none() {
        OFFICIAL_REPO_PREFIX
    } else {
        ""
    };
    DomainSplit {
        domain,
        prefix,
        remainder,
    }
}

/// What the reference grammar captured from `head/body`.
struct Match<'s> {
    /// Whether `head` matched as the domain; if not, it is the path's first
    /// component.
    has_domain: bool,
    /// The path within `body`.
    path: &'s str,
    tag: Option<&'s str>,
    digest: Option<&'s str>,
}

/// Matches `head/body` against Go's anchored reference grammar, where `head`
/// holds no `/`. A `library/` prefix in front of `body` never changes the
/// outcome, so callers leave it out.
///
/// Go's regexp picks the first alternative a backtracking engine would, so
/// `head` is the domain whenever it fits the domain grammar; otherwise the
/// whole name must fit the path grammar. Neither the path nor the tag may hold
/// `:` or `@`, so the tag and digest boundaries are unique.
fn match_reference<'s>(head: &str, body: &'s str) -> Option<Match<'s>> {
    let (rest, digest) = match split_once_byte(body, b'@') {
        Some((rest, digest)) if is_reference_digest(digest) => (rest, Some(digest)),
        Some(_) => return None,
        None => (body, None),
    };
    let last_segment = rest
        .bytes()
        .rposition(|b| b == b'/')
        .map_or(0, |slash| slash + 1);
    let (path, tag) = match find_byte(&rest[last_segment..], b':') {
        Some(colon) => {
            let colon = last_segment + colon;
            (&rest[..colon], Some(&rest[colon + 1..]))
        }
        None => (rest, None),
    };
    if tag.is_some_and(|tag| !is_tag(tag))
        || !path.as_bytes().split(|b| *b == b'/').all(is_path_component)
    {
        return None;
    }
    let has_domain = is_domain_and_port(head);
    if !has_domain && !is_path_component(head.as_bytes()) {
        return None;
    }
    Some(Match {
        has_domain,
        path,
        tag,
        digest,
    })
}

/// Go's fallback when the grammar fails: if the lower-cased string would
/// match, the complaint is about case, otherwise about format.
fn uppercase_or_invalid(head: &str, body: &str) -> ParseImageRefError {
    // An unchanged string fails again, so `lowered != original` needs no test.
    match (lower_as_go(head), lower_as_go(body)) {
        (Some(head), Some(body)) if match_reference(&head, &body).is_some() => {
            ParseImageRefError::NameContainsUppercase
        }
        _ => ParseImageRefError::InvalidFormat,
    }
}

/// Go's `strings.ToLower(s)` when the result is ASCII, and `None` when it
/// would keep a non-ASCII character (and so could never match the grammar).
/// Besides `A`-`Z`, Go's simple case mapping takes `İ` (U+0130) to `i` and
/// the Kelvin sign (U+212A) to `k`.
fn lower_as_go(s: &str) -> Option<Cow<'_, str>> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return Some(Cow::Borrowed(s));
    }
    s.chars()
        .map(|c| match c {
            '\u{130}' => Some('i'),
            '\u{212A}' => Some('k'),
            _ if c.is_ascii() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect::<Option<String>>()
        .map(Cow::Owned)
}

/// Whether Go's `strings.ToLower(s) != s`: some character has a different
/// lower-case form (Unicode-wide, as in Go).
fn has_uppercase(s: &str) -> bool {
    s.chars().any(|c| {
        if c.is_ascii() {
            c.is_ascii_uppercase()
        } else {
            c.to_lowercase().ne([c]) && !cased_after_unicode_15(c)
        }
    })
}

/// Capital letters that gained a lower-case mapping after Unicode 15.0, the
/// version of Go's `unicode` tables; Rust's tables are newer, so Go does not
/// lower these and neither may we.
const CASED_AFTER_UNICODE_15: &[(char, char)] = &[
    ('\u{1C89}', '\u{1C89}'),
    ('\u{A7CB}', '\u{A7CC}'),
    ('\u{A7CE}', '\u{A7CE}'),
    ('\u{A7D2}', '\u{A7D2}'),
    ('\u{A7D4}', '\u{A7D4}'),
    ('\u{A7DA}', '\u{A7DA}'),
    ('\u{A7DC}', '\u{A7DC}'),
    ('\u{10D50}', '\u{10D65}'),
    ('\u{16EA0}', '\u{16EB8}'),
];

fn cased_after_unicode_15(c: char) -> bool {
    CASED_AFTER_UNICODE_15
        .iter()
        .any(|(first, last)| (*first..=*last).contains(&c))
}

/// `^[a-f0-9]{64}$`: an image ID, refused as a repository name.
fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(is_lower_hex)
}

/// `(?:domainName|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`, where domainName is
/// `component(?:\.component)*`.
fn is_domain_and_port(s: &str) -> bool {
    let Some(bracketed) = s.strip_prefix('[') else {
        return is_domain_name_and_port(s.as_bytes());
    };
    let Some((ipv6, port)) = split_once_byte(bracketed, b']') else {
        return false;
    };
    !ipv6.is_empty()
        && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
        && (port.is_empty()
            || port.strip_prefix(':').is_some_and(|digits| {
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            }))
}

/// `domainName(?::[0-9]+)?`, domainName being components
/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]` joined by `.`: one
/// loop over the bytes, as every image with a registry is checked with it.
fn is_domain_name_and_port(bytes: &[u8]) -> bool {
    let mut at = 0;
    loop {
        if !bytes.get(at).is_some_and(u8::is_ascii_alphanumeric) {
            return false;
        }
        at += 1;
        while bytes
            .get(at)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-')
        {
            at += 1;
        }
        if bytes[at - 1] == b'-' {
            return false;
        }
        match bytes.get(at) {
            None => return true,
            Some(b'.') => at += 1,
            Some(b':') => {
                let port = &bytes[at + 1..];
                return !port.is_empty() && port.iter().all(u8::is_ascii_digit);
            }
            Some(_) => return false,
        }
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`: lower-case alphanumeric runs
/// joined by `.`, `_`, `__` or any number of `-`.
fn is_path_component(bytes: &[u8]) -> bool {
    let mut at = 0;
    loop {
        let run = bytes[at..]
            .iter()
            .take_while(|b| is_lower_alnum(**b))
            .count();
        if run == 0 {
            return false;
        }
        at += run;
        if at == bytes.len() {
            return true;
        }
        let sep = bytes[at..]
            .iter()
            .take_while(|b| matches!(b, b'.' | b'_' | b'-'))
            .count();
        let ok = match &bytes[at..at + sep] {
            b"." | b"_" | b"__" => true,
            dashes => !dashes.is_empty() && dashes.iter().all(|b| *b == b'-'),
        };
        if !ok {
            return false;
        }
        at += sep;
    }
}

/// Path components joined by `/`, each as [`is_path_component`]: one
/// loop over the bytes (the common parse's path check).
fn is_path(bytes: &[u8]) -> bool {
    let mut at = 0;
    loop {
        // An alphanumeric run starts every component and follows every
        // separator.
        if !bytes.get(at).copied().is_some_and(is_lower_alnum) {
            return false;
        }
        at += 1;
        while bytes.get(at).copied().is_some_and(is_lower_alnum) {
            at += 1;
        }
        match bytes.get(at) {
            None => return true,
            Some(b'/' | b'.') => at += 1,
            Some(b'_') => {
                at += 1;
                if bytes.get(at) == Some(&b'_') {
                    at += 1;
                }
            }
            Some(b'-') => {
                while bytes.get(at) == Some(&b'-') {
                    at += 1;
                }
            }
            Some(_) => return false,
        }
    }
}

/// `[\w][\w.-]{0,127}`, with `\w` being ASCII `[0-9A-Za-z_]`.
fn is_tag(s: &str) -> bool {
    let bytes = s.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= MAX_TAG_LEN
                && is_word(*first)
                && rest.iter().all(|b| is_word(*b) || matches!(b, b'.' | b'-'))
        }
        None => false,
    }
}

/// The reference grammar's digest:
/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`.
fn is_reference_digest(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let component_ok = |c: &str| {
        c.as_bytes().split_first().is_some_and(|(first, rest)| {
            first.is_ascii_alphabetic() && rest.iter().all(u8::is_ascii_alphanumeric)
        })
    };
    algorithm.split(['-', '_', '+', '.']).all(component_ok)
        && hex.len() >= MIN_DIGEST_HEX_LEN
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest's `Digest.Validate`, for a digest that already matched the
/// reference grammar (so it has a non-empty algorithm and hex part).
fn validate_digest(digest: &str) -> Result<(), ParseImageRefError> {
    let Some((algorithm, encoded)) = digest
        .split_once(':')
        .filter(|(algorithm, encoded)| !algorithm.is_empty() && !encoded.is_empty())
    else {
        return Err(ParseImageRefError::DigestInvalidFormat);
    };
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ if is_go_digest(algorithm, encoded) => return Err(ParseImageRefError::DigestUnsupported),
        _ => return Err(ParseImageRefError::DigestInvalidFormat),
    };
    if encoded.len() != hex_len {
        return Err(ParseImageRefError::DigestInvalidLength);
    }
    if !encoded.bytes().all(is_lower_hex) {
        return Err(ParseImageRefError::DigestInvalidFormat);
    }
    Ok(())
}

/// go-digest's `^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`, given the
/// digest split at its first `:`.
fn is_go_digest(algorithm: &str, encoded: &str) -> bool {
    algorithm
        .split(['.', '+', '_', '-'])
        .all(|c| !c.is_empty() && c.bytes().all(is_lower_alnum))
        && !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// Where `b` (ASCII) first occurs in `s`. A byte loop: the names searched
/// are short, and `str::find` with a `char` costs more to set up than
/// scanning them does.
fn find_byte(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// `s.split_once(b)` for an ASCII `b` (a character boundary either side).
fn split_once_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let at = find_byte(s, b)?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests;
