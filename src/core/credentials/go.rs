//! The pieces of Go's standard library the kubelet's matching depends on,
//! re-implemented over bytes (Go strings are bytes, and decoded
//! `%`-escapes need not be UTF-8).
//!
//! Hand-written rather than taken from the `url` crate on purpose: that
//! crate follows the WHATWG URL standard, which lowercases and IDNA-maps
//! hosts, rejects or accepts different characters, treats `\` as `/`, and
//! normalizes paths — every one of which would change which keys the
//! kubelet keeps and matches. Only what `url.Parse` does to `https://…`
//! strings is mirrored here (host and path; userinfo, query and fragment
//! are checked, then dropped).

use std::borrow::Cow;

/// The host and path of a parsed URL, `%`-escapes decoded.
pub(super) struct Url {
    pub(super) host: Vec<u8>,
    pub(super) path: Vec<u8>,
}

/// Go's `url.Parse("https://" + s)`, reduced to host and path; `None`
/// where Go returns an error.
pub(super) fn parse_schemeless(s: &[u8]) -> Option<Url> {
    // Parse cuts the fragment off first and checks its escapes last.
    let (u, fragment) = match s.iter().position(|&b| b == b'#') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[][..]),
    };
    if u.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    // The query goes, whether it is `?` alone or more.
    let rest = match u.iter().position(|&b| b == b'?') {
        Some(i) => &u[..i],
        None => u,
    };
    let (authority, path) = match rest.iter().position(|&b| b == b'/') {
        Some(i) => rest.split_at(i),
        None => (rest, &[][..]),
    };
    let host = parse_authority(authority)?;
    let path = unescape(path, Mode::Path)?.into_owned();
    if !fragment.is_empty() {
        unescape(fragment, Mode::Fragment)?;
    }
    Some(Url { host, path })
}

fn parse_authority(authority: &[u8]) -> Option<Vec<u8>> {
    let (userinfo, host) = match authority.iter().rposition(|&b| b == b'@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let host = parse_host(host)?;
    if let Some(userinfo) = userinfo {
        let valid = userinfo.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b':'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b'%'
                        | b'@'
                )
        });
        // Go unescapes user and password apart; a valid escape never
        // holds the `:` between them, so checking the whole is the same.
        if !valid || unescape(userinfo, Mode::UserPassword).is_none() {
            return None;
        }
    }
    Some(host)
}

fn parse_host(host: &[u8]) -> Option<Vec<u8>> {
    if host.first() == Some(&b'[') {
        let end = host.iter().rposition(|&b| b == b']')?;
        if !valid_optional_port(&host[end + 1..]) {
            return None;
        }
        if let Some(zone) = find(&host[..end], b"%25") {
            let mut out = unescape(&host[..zone], Mode::Host)?.into_owned();
            out.extend_from_slice(&unescape(&host[zone..end], Mode::Zone)?);
            out.extend_from_slice(&unescape(&host[end..], Mode::Host)?);
            return Some(out);
        }
    } else if let Some(colon) = host.iter().rposition(|&b| b == b':')
        && !valid_optional_port(&host[colon..])
    {
        return None;
    }
    Some(unescape(host, Mode::Host)?.into_owned())
}

fn valid_optional_port(port: &[u8]) -> bool {
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Host,
    Zone,
    Path,
    UserPassword,
    Fragment,
}

/// `shouldEscape(c, encodeHost)` for ASCII `c`: what a host may not
/// hold unescaped.
fn host_rejects(c: u8) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
                | b'-'
                | b'_'
                | b'.'
                | b'~'
        ))
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Go's `unescape`: checks every `%` escape (and, in hosts, every
/// character), then decodes the escapes.
fn unescape(s: &[u8], mode: Mode) -> Option<Cow<'_, [u8]>> {
    let mut i = 0;
    let mut escapes = false;
    while i < s.len() {
        if s[i] == b'%' {
            if i + 2 >= s.len() || !s[i + 1].is_ascii_hexdigit() || !s[i + 2].is_ascii_hexdigit() {
                return None;
            }
            let is_25 = &s[i..i + 3] == b"%25";
            if mode == Mode::Host && unhex(s[i + 1]) < 8 && !is_25 {
                return None;
            }
            let v = unhex(s[i + 1]) << 4 | unhex(s[i + 2]);
            if mode == Mode::Zone && !is_25 && v != b' ' && (v >= 0x80 || host_rejects(v)) {
                return None;
            }
            escapes = true;
            i += 3;
        } else {
            if matches!(mode, Mode::Host | Mode::Zone) && s[i] < 0x80 && host_rejects(s[i]) {
                return None;
            }
            i += 1;
        }
    }
    if !escapes {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            out.push(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(Cow::Owned(out))
}

/// A URL as `URLsMatch` compares it: `SplitURL`'s host and port, and
/// the path.
#[derive(Debug, Clone)]
pub(super) struct SplitUrl {
    host: Vec<u8>,
    port: Vec<u8>,
    pub(super) path: Vec<u8>,
    label_count: usize,
}

impl SplitUrl {
    pub(super) fn new(url: Url) -> Self {
        let (host, port) = match split_host_port(&url.host) {
            Some(((start, end), port)) => {
                (url.host[start..end].to_vec(), url.host[port..].to_vec())
            }
            None => (url.host, Vec::new()),
        };
        Self {
            label_count: host.split(|&b| b == b'.').count(),
            host,
            port,
            path: url.path,
        }
    }

    pub(super) fn port(&self) -> &[u8] {
        &self.port
    }

    pub(super) fn label_count(&self) -> usize {
        self.label_count
    }

    pub(super) fn labels(&self) -> impl Iterator<Item = &[u8]> {
        self.host.split(|&b| b == b'.')
    }

    /// `URLsMatch(self, target)` without its error: a malformed label
    /// glob does not match.
    pub(super) fn matches(&self, target: &SplitUrl) -> bool {
        self.label_count == target.label_count
            && same_bytes(&self.port, &target.port)
            && target.path.starts_with(&self.path)
            && self
                .labels()
                .zip(target.labels())
                .all(|(glob, label)| glob_match(glob, label) == Ok(true))
    }
}

/// Byte equality for the short strings compared here (ports), inline:
/// measured much faster than a `memcmp` call per key.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Go's `net.SplitHostPort`: the host's byte range (brackets removed)
/// and where the port starts, or `None` on error (`SplitURL` then uses
/// the whole text as host and an empty port).
fn split_host_port(hp: &[u8]) -> Option<((usize, usize), usize)> {
    let colon = hp.iter().rposition(|&b| b == b':')?;
    let (host, j, k) = if hp.first() == Some(&b'[') {
        let end = hp.iter().position(|&b| b == b']')?;
        if end + 1 != colon {
            return None;
        }
        ((1, end), 1, end + 1)
    } else {
        if hp[..colon].contains(&b':') {
            return None;
        }
        ((0, colon), 0, 0)
    };
    if hp[j..].contains(&b'[') || hp[k..].contains(&b']') {
        return None;
    }
    Some((host, colon + 1))
}

/// A malformed glob (Go's `filepath.ErrBadPattern`).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadPattern;

const RUNE_ERROR: u32 = 0xFFFD;

/// Go's `utf8.DecodeRune`: an invalid or short sequence is
/// `(RuneError, 1)`; an empty one `(RuneError, 0)`.
fn decode_rune(s: &[u8]) -> (u32, usize) {
    let Some(&b0) = s.first() else {
        return (RUNE_ERROR, 0);
    };
    if b0 < 0x80 {
        return (b0.into(), 1);
    }
    let n = match b0 {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (RUNE_ERROR, 1),
    };
    match s.get(..n).map(std::str::from_utf8) {
        Some(Ok(text)) => (text.chars().next().map_or(RUNE_ERROR, u32::from), n),
        _ => (RUNE_ERROR, 1),
    }
}

/// Go's `filepath.Match` on Unix (separator `/`, `\` escapes).
pub(super) fn glob_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest unless it has a `/`.
            return Ok(!name.contains(&b'/'));
        }
        if let Some(t) = match_chunk(chunk, name)? {
            // The last chunk must use up the name.
            if t.is_empty() || !pattern.is_empty() {
                name = t;
                continue;
            }
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                i += 1;
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off leading `*`s and the chunk up to the next `*` outside a
/// `[...]`.
fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut p = pattern;
    let mut star = false;
    while let Some((b'*', rest)) = p.split_first() {
        p = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' if i + 1 < p.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &p[..i], &p[i..])
}

/// Matches one chunk at the start of `s`: `Some(rest)`, `None` for no
/// match. The whole chunk is always read, so a malformed one is an
/// error whatever `s` is.
fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> Result<Option<&'s [u8]>, BadPattern> {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                let mut r = 0;
                if !failed {
                    let (rune, n) = decode_rune(s);
                    r = rune;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let (negated, ranges, rest) = class(chunk)?;
                chunk = rest;
                let hit = ranges.iter().any(|&(lo, hi)| lo <= r && r <= hi);
                if hit == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(BadPattern);
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

type Ranges = Vec<(u32, u32)>;

/// Reads a class after its `[`: negation, ranges, and the rest after `]`.
fn class(mut chunk: &[u8]) -> Result<(bool, Ranges, &[u8]), BadPattern> {
    let mut negated = false;
    if let Some((b'^', rest)) = chunk.split_first() {
        negated = true;
        chunk = rest;
    }
    let mut ranges = Vec::new();
    loop {
        if let Some((b']', rest)) = chunk.split_first()
            && !ranges.is_empty()
        {
            return Ok((negated, ranges, rest));
        }
        let (lo, rest) = get_esc(chunk)?;
        chunk = rest;
        let mut hi = lo;
        if let Some((b'-', rest)) = chunk.split_first() {
            let (h, rest) = get_esc(rest)?;
            hi = h;
            chunk = rest;
        }
        ranges.push((lo, hi));
    }
}

/// One possibly escaped character of a class; the class must go on.
fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    let mut c = match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(BadPattern),
        Some(_) => chunk,
    };
    if c[0] == b'\\' {
        c = &c[1..];
        if c.is_empty() {
            return Err(BadPattern);
        }
    }
    let (r, n) = decode_rune(c);
    if r == RUNE_ERROR && n == 1 {
        return Err(BadPattern);
    }
    let rest = &c[n..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

/// A label glob as steps for the coverage search, `None` if Go would
/// call it malformed. Go's `Match` matches exactly the language of
/// these steps on names without `/`.
pub(super) fn glob_steps(mut pattern: &[u8]) -> Option<Vec<super::Step>> {
    use super::Step;
    let mut steps = Vec::new();
    while !pattern.is_empty() {
        let (star, mut chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star {
            steps.push(Step::Star);
        }
        while let Some(&c) = chunk.first() {
            match c {
                b'[' => {
                    let (negated, ranges, rest) = class(&chunk[1..]).ok()?;
                    steps.push(Step::Class { negated, ranges });
                    chunk = rest;
                }
                b'?' => {
                    steps.push(Step::Any);
                    chunk = &chunk[1..];
                }
                b'\\' => {
                    let &b = chunk.get(1)?;
                    steps.push(Step::Byte(b));
                    chunk = &chunk[2..];
                }
                b => {
                    steps.push(Step::Byte(b));
                    chunk = &chunk[1..];
                }
            }
        }
    }
    Some(steps)
}

/// Text Go's `encoding/json` would see: each byte of an invalid UTF-8
/// sequence becomes one U+FFFD (as `utf8.DecodeRune` steps one byte).
pub(super) fn lossy_utf8(bytes: &[u8]) -> Cow<'_, str> {
    let mut rest = bytes;
    let mut out = String::new();
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                if out.is_empty() && rest.len() == bytes.len() {
                    return Cow::Borrowed(valid);
                }
                out.push_str(valid);
                return Cow::Owned(out);
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(after.len());
                out.extend(std::iter::repeat_n('\u{FFFD}', bad));
                rest = &after[bad..];
            }
        }
    }
}

/// Whether a non-empty `auth` passes `decodeDockerConfigFieldAuth`:
/// padded base64 if it ends in `=` (ignoring surrounding white space),
/// unpadded otherwise, and the decoded bytes hold a `:`.
pub(super) fn auth_is_valid(auth: &str) -> bool {
    let padded = auth.trim().ends_with('=');
    base64_decode(auth.as_bytes(), padded).is_some_and(|decoded| decoded.contains(&b':'))
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn skip_newlines(src: &[u8], mut i: usize) -> usize {
    while i < src.len() && matches!(src[i], b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Go's `base64.StdEncoding` (`padded`) or `RawStdEncoding`
/// `DecodeString`: not strict (non-zero trailing bits pass), `\r` and
/// `\n` skipped anywhere.
fn base64_decode(src: &[u8], padded: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len() / 4 * 3 + 2);
    let mut si = 0;
    while si < src.len() {
        let mut quantum = [0u8; 4];
        let mut len = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Some(out);
                }
                if j == 1 || padded {
                    return None;
                }
                len = j;
                break;
            }
            let c = src[si];
            si += 1;
            if let Some(v) = base64_value(c) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if !padded || c != b'=' || j < 2 {
                return None;
            }
            if j == 2 {
                si = skip_newlines(src, si);
                if src.get(si) != Some(&b'=') {
                    return None;
                }
                si += 1;
            }
            if skip_newlines(src, si) < src.len() {
                return None;
            }
            si = src.len();
            len = j;
            break;
        }
        let v = u32::from(quantum[0]) << 18
            | u32::from(quantum[1]) << 12
            | u32::from(quantum[2]) << 6
            | u32::from(quantum[3]);
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..len - 1]);
    }
    Some(out)
}
