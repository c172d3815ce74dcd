//! The formatters of the two log formats: the same lines as
//! `tracing-subscriber`'s `Full` text format and flattened JSON format,
//! written with less work per line, and the text format's field
//! formatter, safe against log injection ([`TextFields`]).
//!
//! Every admission review logs one line, so the formatter is on the hot
//! path: the stock formatters rebuild the calendar date for every line and
//! go through `core::fmt` (and, for JSON, serde) for each piece. These
//! write the common line — no span open, no ANSI colours, not a `log`
//! crate record — directly, with the timestamp's date and time of day
//! cached per second; any other line is handed to the stock formatter, so
//! every line reads exactly as before.
//!
//! [`write_line`] writes such a line from plain values, with the same
//! field writers, for `telemetry::write_info_line`: the per-review line
//! without `tracing`'s per-event work.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};

use crate::core::json::{self, all_bytes};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::{self, Format, Full, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime as StockTimer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The text format: `2026-01-02T03:04:05.678901Z  INFO target: message
/// field=value …`, fields written by the subscriber's field formatter.
#[derive(Debug, Default)]
pub struct TextFormat {
    stock: Format<Full>,
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if writer.has_ansi_escapes()
            || event.normalized_metadata().is_some()
            || ctx.event_scope().is_some()
        {
            return self.stock.format_event(ctx, writer, event);
        }
        let meta = event.metadata();
        text_head(&mut writer, meta.level(), meta.target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// `<timestamp> <level> <target>: `, the start of a text line.
fn text_head(out: &mut impl fmt::Write, level: &Level, target: &str) -> fmt::Result {
    match timestamp() {
        Some(stamp) => {
            // `<timestamp> <level> ` in one write.
            let mut head = [b' '; STAMP_LEN + 7];
            head[..STAMP_LEN].copy_from_slice(&stamp);
            head[STAMP_LEN + 1..STAMP_LEN + 6].copy_from_slice(level_padded(level).as_bytes());
            out.write_str(std::str::from_utf8(&head).map_err(|_| fmt::Error)?)?;
        }
        None => {
            StockTimer.format_time(&mut Writer::new(out))?;
            out.write_char(' ')?;
            out.write_str(level_padded(level))?;
            out.write_char(' ')?;
        }
    }
    out.write_str(target)?;
    out.write_str(": ")
}

/// The JSON format: one object per line, the event's fields flattened
/// between `timestamp`, `level` and `target`, as
/// `tracing_subscriber::fmt().json().flatten_event(true)
/// .with_current_span(false)` writes it.
#[derive(Debug)]
pub struct JsonFormat {
    stock: Format<Json>,
}

impl Default for JsonFormat {
    fn default() -> Self {
        JsonFormat {
            stock: format::format()
                .json()
                .flatten_event(true)
                .with_current_span(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The stock formatter lists the spans of the event's parent, or of
        // the current span; such lines (and `log` records) are its own.
        let in_span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current())
            .is_some();
        if in_span || event.normalized_metadata().is_some() {
            return self.stock.format_event(ctx, writer, event);
        }
        let meta = event.metadata();
        with_buffer(&JSON_LINE, |line| {
            json_line(line, meta.level(), meta.target(), |visitor| {
                event.record(visitor);
            })?;
            writer.write_str(line)
        })
    }
}

/// A whole JSON line, its fields written by `record`.
fn json_line(
    line: &mut String,
    level: &Level,
    target: &str,
    record: impl FnOnce(&mut JsonVisitor<'_>),
) -> fmt::Result {
    line.push_str("{\"timestamp\":\"");
    match timestamp() {
        Some(stamp) => line.push_str(std::str::from_utf8(&stamp).map_err(|_| fmt::Error)?),
        None => StockTimer.format_time(&mut Writer::new(line))?,
    }
    line.push_str("\",\"level\":\"");
    line.push_str(level.as_str());
    line.push('"');
    let mut visitor = JsonVisitor {
        line: &mut *line,
        result: Ok(()),
    };
    record(&mut visitor);
    visitor.result?;
    line.push_str(",\"target\":");
    json::push_string(line, target);
    line.push_str("}\n");
    Ok(())
}

/// A field value of a line written by [`write_line`]: what the request
/// path records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a str),
    U64(u64),
    Bool(bool),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Str(value)
    }
}

impl From<u64> for Value<'_> {
    fn from(value: u64) -> Self {
        Value::U64(value)
    }
}

impl From<usize> for Value<'_> {
    fn from(value: usize) -> Self {
        // `tracing` records a `usize` as a `u64` too.
        Value::U64(value as u64)
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

/// Writes into `line` the line, without ANSI colours, that the subscriber
/// `telemetry::init_logging` sets up writes for an event at `level` from
/// `target` with these fields, `message` first (as the message field of a
/// `tracing` macro): the same bytes, through the same field writers, with
/// none of `tracing`'s per-event work (see `telemetry::info_line!`).
pub fn write_line(
    line: &mut String,
    format: LogFormat,
    level: &Level,
    target: &str,
    message: &str,
    fields: &[(&str, Value<'_>)],
) -> fmt::Result {
    match format {
        LogFormat::Text => {
            text_head(line, level, target)?;
            let mut visitor = TextVisitor {
                line: &mut *line,
                ansi: false,
                first: true,
                result: Ok(()),
            };
            record_values(&mut visitor, message, fields);
            visitor.result?;
            line.push('\n');
            Ok(())
        }
        LogFormat::Json => json_line(line, level, target, |visitor| {
            record_values(visitor, message, fields);
        }),
    }
}

/// The value writers of both formats' visitors, which their `Visit`
/// implementations and [`write_line`] share.
trait WriteValue {
    fn str_value(&mut self, name: &str, value: &str);
    fn u64_value(&mut self, name: &str, value: u64);
    fn bool_value(&mut self, name: &str, value: bool);
}

fn record_values(visitor: &mut impl WriteValue, message: &str, fields: &[(&str, Value<'_>)]) {
    visitor.str_value("message", message);
    for &(name, value) in fields {
        match value {
            Value::Str(text) => visitor.str_value(name, text),
            Value::U64(number) => visitor.u64_value(name, number),
            Value::Bool(flag) => visitor.bool_value(name, flag),
        }
    }
}

/// A line buffer that grew past this (a huge error message) is not kept.
const MAX_KEPT_LINE: usize = 64 * 1024;

/// Runs `f` with one of this thread's reusable buffers, cleared, so that
/// formatting a line does not allocate. A line formatted while the same
/// buffer is in use (a `Debug` or `Display` that logs) gets a fresh buffer
/// instead of a panic; a buffer grown past [`MAX_KEPT_LINE`] is let go.
pub fn with_buffer<R>(
    buffer: &'static std::thread::LocalKey<std::cell::RefCell<String>>,
    f: impl FnOnce(&mut String) -> R,
) -> R {
    buffer.with(|cell| {
        let mut own = String::new();
        let mut borrowed = cell.try_borrow_mut();
        let text = match &mut borrowed {
            Ok(text) => &mut **text,
            Err(_) => &mut own,
        };
        text.clear();
        let result = f(text);
        if text.capacity() > MAX_KEPT_LINE {
            *text = String::new();
        }
        result
    })
}

thread_local! {
    /// The JSON line being formatted, reused so that formatting a line does
    /// not allocate.
    static JSON_LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The level as the text format pads it (`" INFO"`, `"DEBUG"`).
fn level_padded(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

thread_local! {
    /// The second last formatted on this thread and its
    /// `YYYY-MM-DDTHH:MM:SS` text.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Length of a timestamp: `2026-01-02T03:04:05.678901Z`.
const STAMP_LEN: usize = 27;

/// The current time as the stock timer writes it
/// (`2026-01-02T03:04:05.678901Z`, UTC, microseconds), the calendar part
/// computed once per second per thread; `None` before 1970 or after 9999,
/// which the stock timer spells its own way.
fn timestamp() -> Option<[u8; STAMP_LEN]> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .filter(|d| d.as_secs() < YEAR_10000)?;
    let secs = since_epoch.as_secs();
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        text = calendar(secs);
        SECOND.set((secs, text));
    }
    let mut stamp = [0; STAMP_LEN];
    stamp[..19].copy_from_slice(&text);
    stamp[19] = b'.';
    let mut micros = since_epoch.subsec_micros();
    for at in (20..26).rev() {
        // A digit: below 10.
        stamp[at] = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    stamp[26] = b'Z';
    Some(stamp)
}

/// Seconds from 1970 to the year 10000.
const YEAR_10000: u64 = 253_402_300_800;

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a time between 1970 and 9999.
fn calendar(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00";
    let put = |out: &mut [u8; 19], at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            // A digit: below 10.
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(&mut out, 0, 4, year);
    put(&mut out, 5, 2, month);
    put(&mut out, 8, 2, day);
    put(&mut out, 11, 2, of_day / 3600);
    put(&mut out, 14, 2, of_day % 3600 / 60);
    put(&mut out, 17, 2, of_day % 60);
    out
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The event's fields as JSON members, each preceded by a comma, valued as
/// `tracing-serde` values them (numbers and booleans as such, everything
/// else as a string of its `Debug` text).
struct JsonVisitor<'l> {
    line: &'l mut String,
    result: fmt::Result,
}

thread_local! {
    /// Scratch space for a `Debug` value, reused across lines.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl JsonVisitor<'_> {
    /// `,"name":` before a value.
    fn name(&mut self, name: &str) {
        self.line.push(',');
        json::push_string(self.line, name);
        self.line.push(':');
    }
}

impl WriteValue for JsonVisitor<'_> {
    fn str_value(&mut self, name: &str, value: &str) {
        self.name(name);
        json::push_string(self.line, value);
    }

    fn u64_value(&mut self, name: &str, value: u64) {
        self.name(name);
        self.line.push_str(Digits::new().u64(value));
    }

    fn bool_value(&mut self, name: &str, value: bool) {
        self.name(name);
        self.line.push_str(if value { "true" } else { "false" });
    }
}

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.str_value(field.name(), value);
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.u64_value(field.name(), value);
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.name(field.name());
        self.line.push_str(Digits::new().i64(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.bool_value(field.name(), value);
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.name(field.name());
        // serde_json's spelling of floats (`null` for NaN and infinities).
        match serde_json::to_string(&value) {
            Ok(text) => self.line.push_str(&text),
            Err(_) => self.result = Err(fmt::Error),
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        self.name(field.name());
        self.result = with_buffer(&SCRATCH, |text| {
            write!(text, "{value:?}")?;
            json::push_string(self.line, text);
            Ok(())
        });
    }
}

/// Field formatting of the text log format, safe against log injection.
///
/// Field values come from requests (uid, namespace, pod name, rule and
/// secret names, errors quoting input), so a value must never be able to
/// end the line or forge another field. Every field follows one rule: a
/// plain value — printable ASCII without space, quote or backslash — is
/// written as is (`uid=3f2a…`, `outcome=patched`); any other value is
/// written as a quoted string with Rust's escapes (`pod="x\nINFO fake"`,
/// `pod="café"`, a line separator as `\u{2028}`). A `%` or `?` value whose
/// text already is a quoted, escaped string (the `Debug` of a string) is
/// kept as it is, so values that must read exactly are recorded as `&str`.
/// The message keeps its spaces and gets only its control characters
/// escaped. JSON lines are escaped by the JSON writer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for TextFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let ansi = writer.has_ansi_escapes();
        with_buffer(&LINE, |line| {
            let mut visitor = TextVisitor {
                line: &mut *line,
                ansi,
                first: true,
                result: Ok(()),
            };
            fields.record(&mut visitor);
            visitor.result.and_then(|()| writer.write_str(line))
        })
    }
}

/// The fields of a line are written into a buffer (one write to the
/// subscriber's writer per line instead of several per field).
struct TextVisitor<'l> {
    line: &'l mut String,
    ansi: bool,
    first: bool,
    result: std::fmt::Result,
}

thread_local! {
    /// The fields of the line being formatted, reused so that formatting a
    /// log line does not allocate.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl TextVisitor<'_> {
    fn separate(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.line.push(' ');
        }
    }

    fn name(&mut self, name: &str) -> std::fmt::Result {
        use std::fmt::Write as _;
        let name = name.strip_prefix("r#").unwrap_or(name);
        if self.ansi {
            write!(self.line, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")
        } else {
            self.line.push_str(name);
            self.line.push('=');
            Ok(())
        }
    }

    /// A value that needs no formatting, quoting or escaping (numbers,
    /// booleans, plain strings), written as is.
    fn plain_field(&mut self, name: &str, value: &str) {
        if self.result.is_err() {
            return;
        }
        self.separate();
        self.result = self.name(name);
        self.line.push_str(value);
    }

    fn field(&mut self, name: &str, value: std::fmt::Arguments<'_>) {
        use std::fmt::Write as _;
        if self.result.is_err() {
            return;
        }
        self.separate();
        self.result = (|| {
            if name == "message" {
                let start = self.line.len();
                self.line.write_fmt(value)?;
                let text = &self.line[start..];
                if !text.bytes().all(|b| b.is_ascii() && !b.is_ascii_control()) {
                    let text = text.to_owned();
                    self.line.truncate(start);
                    write_escaped_controls(self.line, &text)?;
                }
                return Ok(());
            }
            self.name(name)?;
            let start = self.line.len();
            self.line.write_fmt(value)?;
            let text = &self.line[start..];
            if !(is_plain(text) || is_quoted(text)) {
                let text = text.to_owned();
                self.line.truncate(start);
                write!(self.line, "{text:?}")?;
            }
            Ok(())
        })();
    }
}

impl WriteValue for TextVisitor<'_> {
    /// A `&str` value (`message` is the message: written without a name).
    fn str_value(&mut self, name: &str, value: &str) {
        if name == "message" {
            if all_bytes(value.as_bytes(), |b| (0x20..0x7f).contains(&b)) {
                // For speed, the usual message as is, without `core::fmt`.
                if self.result.is_ok() {
                    self.separate();
                    self.line.push_str(value);
                }
            } else {
                self.field("message", format_args!("{value}"));
            }
        } else if is_plain(value) {
            // The usual value, copied without `core::fmt` (for speed: a
            // review's uid, names and outcome are recorded as `&str`).
            self.plain_field(name, value);
        } else {
            self.field(name, format_args!("{value:?}"));
        }
    }

    fn u64_value(&mut self, name: &str, value: u64) {
        let mut digits = Digits::new();
        self.plain_field(name, digits.u64(value));
    }

    fn bool_value(&mut self, name: &str, value: bool) {
        self.plain_field(name, if value { "true" } else { "false" });
    }
}

impl tracing::field::Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.str_value(field.name(), value);
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.u64_value(field.name(), value);
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        let mut digits = Digits::new();
        self.plain_field(field.name(), digits.i64(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.bool_value(field.name(), value);
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.field(field.name(), format_args!("{value}"));
        if let Some(source) = value.source() {
            let sources: Vec<String> = std::iter::successors(Some(source), |e| e.source())
                .map(|e| format!("{:?}", e.to_string()))
                .collect();
            let name = format!("{}.sources", field.name());
            self.field(&name, format_args!("[{}]", sources.join(", ")));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.field(field.name(), format_args!("{value:?}"));
    }
}

/// Safe and unambiguous to write unquoted: printable ASCII without space,
/// quote or backslash cannot end the line, start another field or pass
/// for a quoted string. Any non-ASCII text is quoted, so that line
/// separators, bidirectional overrides and invisible characters are shown
/// escaped. `=` is plain: a value runs to the next space.
#[inline]
fn is_plain(text: &str) -> bool {
    all_bytes(text.as_bytes(), |b| {
        (b.wrapping_sub(b'!') < 94) & (b != b'"') & (b != b'\\')
    })
}

/// A complete double-quoted string whose inner quotes are escaped and that
/// holds no raw control character or line break (what `{:?}` of a string
/// writes).
fn is_quoted(text: &str) -> bool {
    let Some(inner) = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return false;
    };
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' || c.is_control() || (c.is_whitespace() && c != ' ') {
            return false;
        }
    }
    !escaped
}

/// The text with control characters and line separators escaped.
fn write_escaped_controls(out: &mut impl std::fmt::Write, text: &str) -> std::fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
        out.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().unwrap_or_default();
        write!(out, "{}", c.escape_default())?;
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// Decimal digits of an integer, formatted on the stack.
struct Digits {
    buf: [u8; 20],
}

impl Digits {
    fn new() -> Self {
        Digits { buf: [0; 20] }
    }

    /// `value` in decimal, as `{}` writes it.
    fn u64(&mut self, value: u64) -> &str {
        // For speed, the usual small count without a UTF-8 check.
        const ONE_DIGIT: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
        if let Some(digit) = usize::try_from(value).ok().and_then(|v| ONE_DIGIT.get(v)) {
            return digit;
        }
        let at = self.write(value);
        std::str::from_utf8(&self.buf[at..]).unwrap_or_default()
    }

    /// `value` in decimal, as `{}` writes it (a 20-byte buffer holds
    /// `-9223372036854775808`).
    fn i64(&mut self, value: i64) -> &str {
        let mut at = self.write(value.unsigned_abs());
        if value < 0 {
            at -= 1;
            self.buf[at] = b'-';
        }
        std::str::from_utf8(&self.buf[at..]).unwrap_or_default()
    }

    /// Writes the digits of `value` at the end of the buffer; returns
    /// where they start (at least 1: 20 digits at most).
    fn write(&mut self, mut value: u64) -> usize {
        let mut at = self.buf.len();
        loop {
            at -= 1;
            // `value % 10` is below 10, so the cast keeps it whole.
            self.buf[at] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                return at;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
