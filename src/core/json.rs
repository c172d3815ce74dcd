//! A validating JSON reader over a byte slice, for the webhook's request
//! path, and the string writer of its responses.
//!
//! Hand-written for speed: an AdmissionReview is ~6 KB of JSON of which the
//! decision needs perhaps 300 bytes, and serde_json spends most of a
//! review's CPU walking the rest through its generic visitor machinery
//! (~130 instructions per token). This reader walks it in a plain loop.
//! It accepts exactly RFC 8259 JSON, as serde_json does; like serde_json's
//! skipping, it neither limits the nesting of skipped values (it keeps one
//! bit per level, not a stack frame) nor checks UTF-8 inside skipped
//! strings. Strings the caller reads are UTF-8 checked, and those with
//! escapes are unescaped by serde_json itself, so their meaning (surrogate
//! pairs included) is serde_json's.
//!
//! `core::review` checks its readers against serde's derived ones over the
//! same types, in unit tests and in the `review` fuzz target.

use std::borrow::Cow;

/// Whether `s` is written in JSON as itself between quotes, as serde_json
/// writes it: nothing below U+0020, no `"` and no `\` (names, uids, most
/// text).
pub fn is_plain_string(s: &str) -> bool {
    all_bytes(s.as_bytes(), |b| (b >= 0x20) & (b != b'"') & (b != b'\\'))
}

/// Appends `s` as a JSON string, byte for byte as serde_json writes it: a
/// plain string ([`is_plain_string`]) is copied between quotes, for speed
/// (serde_json's writer costs ~0.5 k instructions a string, several per
/// review and log line); anything else is escaped by serde_json.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    if is_plain_string(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into memory cannot fail.
        let _ = serde_json::to_writer(out, s);
    }
}

/// [`write_string`] for text being built as a `String`.
pub fn push_string(out: &mut String, s: &str) {
    if is_plain_string(s) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // A `String` always serializes.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// Whether every byte passes `ok`, which must pass `b'a'`. For speed: the
/// bytes are checked 16 at a time without an early exit, which the
/// compiler turns into a few vector instructions; a shorter text is padded
/// with `a`, a longer one's tail is checked as its last 16 bytes.
#[inline(always)]
pub fn all_bytes(bytes: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    let block = |block: &[u8; 16]| block.iter().fold(true, |all, &b| all & ok(b));
    if let Some(tail) = bytes.last_chunk::<16>() {
        let (blocks, _) = bytes.as_chunks::<16>();
        blocks.iter().fold(block(tail), |all, b| all & block(b))
    } else {
        let mut padded = [b'a'; 16];
        padded[..bytes.len()].copy_from_slice(bytes);
        block(&padded)
    }
}

/// Why the input is not what the reader expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The input ends inside a value.
    #[error("unexpected EOF at byte {at}")]
    Eof {
        /// Offset in the input.
        at: usize,
    },
    /// Not JSON: `expected` says what could have come at `at`.
    #[error("invalid JSON at byte {at}: expected {expected}")]
    Syntax {
        /// Offset in the input.
        at: usize,
        /// What the grammar allows here.
        expected: &'static str,
    },
    /// Valid JSON of the wrong type for the field being read.
    #[error("invalid type at byte {at}: expected {expected}")]
    Type {
        /// Offset in the input.
        at: usize,
        /// What the field must be.
        expected: &'static str,
        /// The input has an array where an object was expected (serde's
        /// derived readers accept a struct written as an array of its
        /// fields in order; Kubernetes never writes one, so this reader
        /// does not).
        array: bool,
    },
    /// A string the caller reads is not UTF-8.
    #[error("invalid UTF-8 in a string at byte {at}")]
    Utf8 {
        /// Offset in the input.
        at: usize,
    },
    /// A string with escapes that serde_json refuses (a lone surrogate).
    #[error("invalid string at byte {at}: {message}")]
    Escape {
        /// Offset in the input.
        at: usize,
        /// serde_json's message.
        message: String,
    },
    /// The same field twice in one object.
    #[error("duplicate field `{0}`")]
    Duplicate(&'static str),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
}

/// Marks `bit` in `seen`, or fails with a duplicate-field error when it is
/// already marked: the readers refuse a field given twice, as serde's
/// derived readers do (a `null` counts as given).
pub fn first_time(seen: &mut u32, bit: u32, name: &'static str) -> Result<(), JsonError> {
    let mask = 1u32 << bit;
    if *seen & mask != 0 {
        return Err(JsonError::Duplicate(name));
    }
    *seen |= mask;
    Ok(())
}

/// A cursor over one JSON document.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The container was just opened: its first entry takes no comma.
    fresh: bool,
}

/// Bytes that end the plain run of a string: `"`, `\` and the control
/// characters JSON forbids raw.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            fresh: false,
        }
    }

    /// The offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(&c) = self.bytes.get(self.pos) {
            // Every JSON whitespace byte is at most a space.
            if c > b' ' || !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace. Kubernetes writes compact
    /// JSON, so the first byte looked at almost always is it.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        match self.bytes.get(self.pos) {
            Some(&c) if c > b' ' => Some(c),
            _ => {
                self.skip_whitespace();
                self.bytes.get(self.pos).copied()
            }
        }
    }

    fn syntax(&self, expected: &'static str) -> JsonError {
        if self.pos >= self.bytes.len() {
            JsonError::Eof { at: self.pos }
        } else {
            JsonError::Syntax {
                at: self.pos,
                expected,
            }
        }
    }

    /// A type error for a value that starts at the cursor, or a syntax
    /// error when no value starts there.
    fn wrong_type(&self, expected: &'static str) -> JsonError {
        match self.bytes.get(self.pos) {
            Some(b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => JsonError::Type {
                at: self.pos,
                expected,
                array: self.bytes.get(self.pos) == Some(&b'['),
            },
            _ => self.syntax("a value"),
        }
    }

    /// Opens the container at the cursor. The readers of the review nest
    /// six levels at most, so serde_json's limit of 128 typed levels needs
    /// no check here.
    fn open(&mut self) {
        self.pos += 1;
        self.fresh = true;
    }

    fn close(&mut self) {
        self.pos += 1;
        self.fresh = false;
    }

    /// The whole input is one value followed by nothing but whitespace.
    pub fn end(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(JsonError::Syntax {
                at: self.pos,
                expected: "the end of the input",
            }),
        }
    }

    /// Reads `null` if it comes next.
    pub fn null(&mut self) -> Result<bool, JsonError> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Opens an object (`what` names it in a type error).
    pub fn begin_object(&mut self, what: &'static str) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'{') => {
                self.open();
                Ok(())
            }
            _ => Err(self.wrong_type(what)),
        }
    }

    /// Opens an array (`what` names it in a type error).
    pub fn begin_array(&mut self, what: &'static str) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'[') => {
                self.open();
                Ok(())
            }
            _ => Err(self.wrong_type(what)),
        }
    }

    /// The next key of the open object, or `None` after its `}`. The key
    /// is UTF-8 checked and unescaped; its value must be read or skipped
    /// before the next call. Keys come as bytes, to be compared with field
    /// names without making a `str` of each (std's UTF-8 check costs ~100
    /// instructions a call; an ASCII key needs none).
    pub fn next_key(&mut self) -> Result<Option<Cow<'a, [u8]>>, JsonError> {
        match self.peek() {
            Some(b'}') => {
                self.close();
                return Ok(None);
            }
            Some(b',') if !self.fresh => {
                self.pos += 1;
                self.skip_whitespace();
            }
            _ if self.fresh => {}
            _ => return Err(self.syntax("`,` or `}`")),
        }
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(self.syntax("a string key"));
        }
        let key = self.key_bytes()?;
        if self.peek() != Some(b':') {
            return Err(self.syntax("`:`"));
        }
        self.pos += 1;
        self.fresh = false;
        Ok(Some(key))
    }

    /// Whether the open array has another element (then read or skip it),
    /// or `false` after its `]`.
    pub fn next_element(&mut self) -> Result<bool, JsonError> {
        match self.peek() {
            Some(b']') => {
                self.close();
                Ok(false)
            }
            Some(b',') if !self.fresh => {
                self.pos += 1;
                Ok(true)
            }
            _ if self.fresh => {
                self.fresh = false;
                Ok(true)
            }
            _ => Err(self.syntax("`,` or `]`")),
        }
    }

    /// A string value, UTF-8 checked and unescaped (borrowed when it has
    /// no escapes).
    pub fn string(&mut self, what: &'static str) -> Result<Cow<'a, str>, JsonError> {
        match self.peek() {
            Some(b'"') => self.string_here(),
            _ => Err(self.wrong_type(what)),
        }
    }

    /// A string value or `null`.
    pub fn optional_string(
        &mut self,
        what: &'static str,
    ) -> Result<Option<Cow<'a, str>>, JsonError> {
        if self.null()? {
            return Ok(None);
        }
        self.string(what).map(Some)
    }

    /// `true` or `false`, or `null`.
    pub fn optional_bool(&mut self, what: &'static str) -> Result<Option<bool>, JsonError> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| Some(true)),
            Some(b'f') => self.literal(b"false").map(|()| Some(false)),
            Some(b'n') => self.literal(b"null").map(|()| None),
            _ => Err(self.wrong_type(what)),
        }
    }

    /// The next value as raw JSON text (validated, UTF-8 checked).
    pub fn raw(&mut self) -> Result<&'a str, JsonError> {
        self.skip_whitespace();
        let start = self.pos;
        self.skip()?;
        std::str::from_utf8(&self.bytes[start..self.pos]).map_err(|e| JsonError::Utf8 {
            at: start + e.valid_up_to(),
        })
    }

    /// The key that starts at the cursor (on its opening quote), unescaped
    /// and UTF-8 checked.
    fn key_bytes(&mut self) -> Result<Cow<'a, [u8]>, JsonError> {
        let start = self.pos;
        let mut high = 0;
        if self.skip_string(&mut high)? {
            return self
                .unescape(start)
                .map(|s| Cow::Owned(s.into_owned().into_bytes()));
        }
        let inner = &self.bytes[start + 1..self.pos - 1];
        if high != 0 {
            std::str::from_utf8(inner).map_err(|e| JsonError::Utf8 {
                at: start + 1 + e.valid_up_to(),
            })?;
        }
        Ok(Cow::Borrowed(inner))
    }

    /// The string from `start` (its opening quote) to the cursor, with
    /// escapes: serde_json unescapes it, so surrogate pairs mean exactly
    /// what they mean there.
    #[cold]
    fn unescape(&self, start: usize) -> Result<Cow<'a, str>, JsonError> {
        serde_json::from_slice::<String>(&self.bytes[start..self.pos])
            .map(Cow::Owned)
            .map_err(|e| JsonError::Escape {
                at: start,
                message: e.to_string(),
            })
    }

    /// The string that starts at the cursor (on its opening quote).
    fn string_here(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let start = self.pos;
        let escaped = self.skip_string(&mut 0)?;
        let inner = &self.bytes[start + 1..self.pos - 1];
        if !escaped {
            return std::str::from_utf8(inner)
                .map(Cow::Borrowed)
                .map_err(|e| JsonError::Utf8 {
                    at: start + 1 + e.valid_up_to(),
                });
        }
        self.unescape(start)
    }

    /// Moves past the string whose opening quote is at the cursor,
    /// checking its escapes; says whether it had any. The usual string
    /// (short, no escape) takes the inlined scan; the rest goes to
    /// [`Reader::string_tail`].
    /// Bytes at or above 0x80 before the first escape set `high`.
    #[inline(always)]
    fn skip_string(&mut self, high: &mut u64) -> Result<bool, JsonError> {
        let pos = plain_run(self.bytes, self.pos + 1, high);
        if self.bytes.get(pos) == Some(&b'"') {
            self.pos = pos + 1;
            return Ok(false);
        }
        self.pos = pos;
        self.string_tail()
    }

    /// The rest of a string from an escape, a control byte or the end of
    /// the input at the cursor.
    #[cold]
    #[inline(never)]
    fn string_tail(&mut self) -> Result<bool, JsonError> {
        let bytes = self.bytes;
        let mut pos = self.pos;
        loop {
            match bytes.get(pos) {
                Some(b'"') => {
                    self.pos = pos + 1;
                    return Ok(true);
                }
                Some(b'\\') => {
                    pos += 1;
                    match bytes.get(pos) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 1,
                        Some(b'u') => {
                            let hex = bytes.get(pos + 1..pos + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                self.pos = pos;
                                return Err(self.syntax("four hex digits after `\\u`"));
                            }
                            pos += 5;
                        }
                        _ => {
                            self.pos = pos;
                            return Err(self.syntax("an escape character"));
                        }
                    }
                }
                Some(_) => {
                    self.pos = pos;
                    return Err(JsonError::Syntax {
                        at: pos,
                        expected: "no control character in a string",
                    });
                }
                None => {
                    self.pos = pos;
                    return Err(JsonError::Eof { at: pos });
                }
            }
            pos = plain_run(bytes, pos, &mut 0);
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), JsonError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            return Ok(());
        }
        Err(self.syntax(match word {
            b"true" => "`true`",
            b"false" => "`false`",
            _ => "`null`",
        }))
    }

    fn digits(&mut self) -> Result<(), JsonError> {
        if !matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
            return Err(self.syntax("a digit"));
        }
        while matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            _ => self.digits()?,
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        // `01` and `1x` are caught by whoever reads what follows.
        Ok(())
    }

    /// Moves past the next value, checking that it is JSON. Iterative, and
    /// without a depth limit (like serde_json's skipping): each open
    /// container is one bit in `kinds` (set for an object), 128 per word,
    /// further words spilling into a vector.
    pub fn skip(&mut self) -> Result<(), JsonError> {
        let mut level: usize = 0;
        let mut kinds: u128 = 0;
        let mut spill: Vec<u128> = Vec::new();
        'value: loop {
            match self.peek() {
                Some(b'"') => {
                    self.skip_string(&mut 0)?;
                }
                Some(open @ (b'{' | b'[')) => {
                    self.pos += 1;
                    let object = open == b'{';
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        if level > 0 && level.is_multiple_of(128) {
                            spill.push(kinds);
                            kinds = 0;
                        }
                        kinds = (kinds << 1) | u128::from(object);
                        level += 1;
                        if object {
                            self.key_here()?;
                        }
                        continue 'value;
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.syntax("a value")),
            }
            // After a value: close what ends here, or go on to the next.
            while level > 0 {
                let object = kinds & 1 == 1;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.skip_whitespace();
                            self.key_here()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ => {
                        return Err(self.syntax(if object { "`,` or `}`" } else { "`,` or `]`" }));
                    }
                }
                self.pos += 1;
                kinds >>= 1;
                level -= 1;
                if level > 0 && level.is_multiple_of(128) {
                    kinds = spill.pop().unwrap_or_default();
                }
            }
            self.fresh = false;
            return Ok(());
        }
    }

    /// A key being skipped: a string and a colon.
    #[inline(always)]
    fn key_here(&mut self) -> Result<(), JsonError> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(self.syntax("a string key"));
        }
        self.skip_string(&mut 0)?;
        if self.peek() != Some(b':') {
            return Err(self.syntax("`:`"));
        }
        self.pos += 1;
        Ok(())
    }
}

/// The end of the run of plain string bytes (not `"`, `\\` or control)
/// that starts at `pos`: eight bytes at a time, then one by one. The high
/// bits of the bytes passed are ORed into `high` (zero: all ASCII).
#[inline(always)]
fn plain_run(bytes: &[u8], mut pos: usize, high: &mut u64) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let stop = stop_bytes(word);
        if stop != 0 {
            let plain = stop.trailing_zeros() / 8;
            // The bytes before the stop (a shift by 64 would overflow).
            *high |= word & HIGH & (1u64 << (plain * 8)).wrapping_sub(1);
            return pos + plain as usize;
        }
        *high |= word & HIGH;
        pos += 8;
    }
    while let Some(&c) = bytes.get(pos) {
        if STRING_STOP[usize::from(c)] {
            break;
        }
        *high |= u64::from(c & 0x80);
        pos += 1;
    }
    pos
}

/// The high bit of each byte of `word` that is `"`, `\` or below 0x20
/// (the classic has-zero-byte test, three times).
#[inline(always)]
fn stop_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    // `word - 0x20…` borrows into the high bit of every byte below 0x20
    // (and may flag a byte next to one; the first flag is always right).
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (zero(quote) | zero(backslash) | control) & HIGH
}

#[cfg(test)]
mod tests;
