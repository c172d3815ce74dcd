//! The event formatters of the two log formats: the same lines as
//! `tracing-subscriber`'s `Full` text format and flattened JSON format,
//! written with less work per line.
//!
//! Every admission review logs one line, so the formatter is on the hot
//! path: the stock formatters rebuild the calendar date for every line and
//! go through `core::fmt` (and, for JSON, serde) for each piece. These
//! write the common line — no span open, no ANSI colours, not a `log`
//! crate record — directly, with the timestamp's date and time of day
//! cached per second; any other line is handed to the stock formatter, so
//! every line reads exactly as before.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};

use crate::core::json;
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::{self, Format, Full, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime as StockTimer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
        match timestamp() {
            Some(stamp) => {
                // `<timestamp> <level> ` in one write.
                let mut head = [b' '; STAMP_LEN + 7];
                head[..STAMP_LEN].copy_from_slice(&stamp);
                head[STAMP_LEN + 1..STAMP_LEN + 6]
                    .copy_from_slice(level_padded(meta.level()).as_bytes());
                writer.write_str(std::str::from_utf8(&head).map_err(|_| fmt::Error)?)?;
            }
            None => {
                StockTimer.format_time(&mut writer)?;
                writer.write_char(' ')?;
                writer.write_str(level_padded(meta.level()))?;
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
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
            line.push_str("{\"timestamp\":\"");
            match timestamp() {
                Some(stamp) => line.push_str(std::str::from_utf8(&stamp).map_err(|_| fmt::Error)?),
                None => StockTimer.format_time(&mut Writer::new(line))?,
            }
            line.push_str("\",\"level\":\"");
            line.push_str(meta.level().as_str());
            line.push('"');
            let mut visitor = JsonVisitor {
                line: &mut *line,
                result: Ok(()),
            };
            event.record(&mut visitor);
            visitor.result?;
            line.push_str(",\"target\":");
            json::push_string(line, meta.target());
            line.push_str("}\n");
            writer.write_str(line)
        })
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

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.name(field.name());
        json::push_string(self.line, value);
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.name(field.name());
        self.line.push_str(Digits::new().u64(value));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.name(field.name());
        self.line.push_str(Digits::new().i64(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.name(field.name());
        self.line.push_str(if value { "true" } else { "false" });
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

/// Decimal digits of an integer, formatted on the stack.
pub(crate) struct Digits {
    buf: [u8; 20],
}

impl Digits {
    pub(crate) fn new() -> Self {
        Digits { buf: [0; 20] }
    }

    /// `value` in decimal, as `{}` writes it.
    pub(crate) fn u64(&mut self, value: u64) -> &str {
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
    pub(crate) fn i64(&mut self, value: i64) -> &str {
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
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::runtime::telemetry::TextFields;

    /// Collects what a subscriber writes (also for `telemetry`'s tests).
    #[derive(Clone, Default)]
    pub(crate) struct Sink(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer \"failure\"")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner\ncause")]
    struct Inner;

    /// Logs a range of lines: every kind of field value, values that need
    /// quoting or escaping, a span, and a `log` record.
    fn emit() {
        tracing::info!(
            uid = %"3f2a-77",
            namespace = "team-a",
            pod = %"x\nINFO fake: admission decision uid=evil",
            kind = %"Pod",
            dry_run = false,
            yes = true,
            outcome = "patched",
            rules = %"a,b",
            secrets = %"",
            warnings = 3_usize,
            generation = u64::MAX,
            delta = -42_i64,
            min = i64::MIN,
            ratio = 0.5_f64,
            nan = f64::NAN,
            "admission decision"
        );
        tracing::warn!(
            quoted = "say \"hi\"\t\\ end",
            unicode = "café ☕ \u{2028} \u{85}",
            debug = ?vec!["a b", "c"],
            debug_str = ?"q\"x",
            spaced = %"two words",
            ctl = %"bell\u{7}\u{1f}\u{7f}",
            r#type = "raw",
            "message with \"quotes\", tab\t and\nnewline"
        );
        tracing::error!(
            error = &Outer(Inner) as &(dyn std::error::Error + 'static),
            "failed"
        );
        // The admission decision's form: the message as a field, every
        // value a `&str` or a number.
        tracing::info!(
            message = "admission decision",
            uid = "3f2a-77",
            namespace = "",
            pod = "x\nINFO fake: admission decision uid=evil",
            kind = "Pod",
            eq = "a=b",
            para = "p\u{2029}q",
            rules = "a,b",
            warnings = 0_usize,
        );
        tracing::info!("line separator \u{2028} and café");
        tracing::debug!(n = 1, "debug level");
        let span = tracing::info_span!("request", id = 7);
        span.in_scope(|| tracing::info!(inside = true, "in a span"));
        tracing::info!(parent: &span, "with a parent");
        tracing::info!(parent: None, "a root event");
    }

    /// Lines without their timestamp (the first space-separated word in
    /// text, the `timestamp` value in JSON).
    fn untimed(lines: Vec<String>, json: bool) -> Vec<String> {
        lines
            .into_iter()
            .map(|line| {
                if json {
                    let (head, rest) = line.split_at(line.find("\",\"level\"").unwrap());
                    assert!(head.starts_with("{\"timestamp\":\""), "{line}");
                    rest.to_owned()
                } else {
                    line.split_once(' ').unwrap().1.to_owned()
                }
            })
            .collect()
    }

    fn text_lines(fast: bool) -> Vec<String> {
        let sink = Sink::default();
        let writer = {
            let sink = sink.clone();
            move || sink.clone()
        };
        let builder = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(writer)
            .fmt_fields(TextFields);
        if fast {
            let subscriber = builder.event_format(TextFormat::default()).finish();
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        sink.lines()
    }

    fn json_lines(fast: bool) -> Vec<String> {
        let sink = Sink::default();
        let writer = {
            let sink = sink.clone();
            move || sink.clone()
        };
        let builder = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_writer(writer)
            .json()
            .flatten_event(true)
            .with_current_span(false);
        if fast {
            let subscriber = builder.event_format(JsonFormat::default()).finish();
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        sink.lines()
    }

    #[test]
    fn text_lines_read_as_the_stock_formatter_writes_them() {
        let fast = text_lines(true);
        let stock = text_lines(false);
        assert_eq!(fast.len(), 9, "{fast:#?}");
        assert_eq!(untimed(fast, false), untimed(stock, false));
    }

    #[test]
    fn json_lines_read_as_the_stock_formatter_writes_them() {
        let fast = json_lines(true);
        let stock = json_lines(false);
        assert_eq!(fast.len(), 9, "{fast:#?}");
        for line in &fast {
            serde_json::from_str::<serde_json::Value>(line).expect(line);
        }
        assert_eq!(untimed(fast, true), untimed(stock, true));
    }

    #[test]
    fn timestamps_read_as_the_stock_timer_writes_them() {
        for _ in 0..100 {
            let ours = String::from_utf8(timestamp().unwrap().to_vec()).unwrap();
            let mut stock = String::new();
            StockTimer
                .format_time(&mut Writer::new(&mut stock))
                .unwrap();
            assert_eq!(ours.len(), stock.len(), "{ours} vs {stock}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            // Taken one after the other: the same second, unless one just
            // ended.
            if ours[..19] == stock[..19] {
                return;
            }
        }
        panic!("timestamps never agreed to the second");
    }

    #[test]
    fn calendar_dates_match_the_time_crate() {
        for secs in [
            0,
            59,
            86_399,
            86_400,
            951_782_400,   // 2000-02-29
            1_709_164_800, // 2024-02-29
            1_798_675_199, // 2026-12-31T23:59:59
            4_107_542_400, // 2100-03-01
            YEAR_10000 - 1,
        ] {
            let t =
                time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap()).unwrap();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            assert_eq!(
                std::str::from_utf8(&calendar(secs)).unwrap(),
                expected,
                "{secs}"
            );
        }
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        let every_byte: String = (0u8..0x80).map(char::from).collect();
        for text in [
            "plain",
            "",
            "\"quoted\" \\ back",
            &every_byte,
            "café ☕ \u{2028}\u{85}\u{7f}",
        ] {
            let mut ours = String::new();
            json::push_string(&mut ours, text);
            assert_eq!(ours, serde_json::to_string(text).unwrap());
        }
    }

    #[test]
    fn digits_read_as_display_writes_them() {
        for v in [0, 1, 9, 10, 42, 99, 100, 12_345, u64::MAX] {
            assert_eq!(Digits::new().u64(v), v.to_string());
        }
        for v in [0, 1, -1, 9, -9, 10, -10, -42, i64::MAX, i64::MIN] {
            assert_eq!(Digits::new().i64(v), v.to_string());
        }
    }

    #[test]
    fn json_strings_are_escaped_wherever_the_byte_to_escape_is() {
        // Every ASCII byte at every position of short and long strings
        // (the check for nothing to escape goes 16 bytes at a time).
        for len in 1..40 {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            for at in 0..len {
                for b in 0..0x80_u8 {
                    let mut bytes = base.clone();
                    bytes[at] = b;
                    let text = std::str::from_utf8(&bytes).unwrap();
                    let mut ours = String::new();
                    json::push_string(&mut ours, text);
                    assert_eq!(ours, serde_json::to_string(text).unwrap());
                }
            }
        }
    }
}
