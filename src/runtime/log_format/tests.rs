#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use super::*;

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
pub(crate) fn untimed(lines: Vec<String>, json: bool) -> Vec<String> {
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

/// The lines a subscriber set up as `init_logging` sets it up writes
/// for what `emit` logs.
pub(crate) fn subscriber_lines(format: LogFormat, emit: impl FnOnce()) -> Vec<String> {
    let sink = Sink::default();
    let writer = {
        let sink = sink.clone();
        move || sink.clone()
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_ansi(false)
        .with_writer(writer);
    match format {
        LogFormat::Text => {
            let subscriber = builder
                .fmt_fields(TextFields)
                .event_format(TextFormat::default())
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
        }
        LogFormat::Json => {
            let subscriber = builder
                .fmt_fields(format::JsonFields::new())
                .event_format(JsonFormat::default())
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
        }
    }
    sink.lines()
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
        let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap()).unwrap();
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

/// The message and fields of the one text line `emit` logs, as the
/// text format writes them.
fn text_fields(emit: impl FnOnce()) -> String {
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer({
            let sink = sink.clone();
            move || sink.clone()
        })
        .fmt_fields(TextFields)
        .event_format(TextFormat::default())
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let line = text.strip_suffix('\n').expect("one line");
    assert!(!line.contains('\n'), "one line: {line:?}");
    line.split_once(": ").expect("a target").1.to_owned()
}

#[test]
fn a_value_is_written_as_is_only_when_plain_and_quoted_otherwise() {
    let long = "b1f0c3a2-6a55-4d1e-9f43-2f8e2e7c9a10-and-more";
    for (value, written) in [
        ("3f2a-77", "3f2a-77"),
        ("team-a", "team-a"),
        (long, long),
        // A value runs to the next space, so `=` cannot start a field.
        ("a=b", "a=b"),
        ("x=y z=w", r#""x=y z=w""#),
        ("", ""),
        (
            "x\nINFO fake: admission decision uid=evil",
            r#""x\nINFO fake: admission decision uid=evil""#,
        ),
        ("team-a\r\nWARN forged", r#""team-a\r\nWARN forged""#),
        ("two words", r#""two words""#),
        ("say \"hi\"", r#""say \"hi\"""#),
        ("\"quoted\"", r#""\"quoted\"""#),
        (r"back\slash", r#""back\\slash""#),
        ("tab\tend", r#""tab\tend""#),
        ("bell\u{7}del\u{7f}", r#""bell\u{7}del\u{7f}""#),
        // Not ASCII: quoted, printable text kept, invisible and
        // line-breaking characters escaped.
        ("café", r#""café""#),
        ("line\u{2028}separator", r#""line\u{2028}separator""#),
        (
            "paragraph\u{2029}separator",
            r#""paragraph\u{2029}separator""#,
        ),
        ("next\u{85}line", r#""next\u{85}line""#),
        ("no\u{a0}break", r#""no\u{a0}break""#),
        ("right\u{202e}left", r#""right\u{202e}left""#),
        ("zero\u{200b}width", r#""zero\u{200b}width""#),
    ] {
        let expected = format!("m value={written}");
        assert_eq!(text_fields(|| tracing::info!(value, "m")), expected);
        // A `%` value reads the same as a `&str`, unless its text is
        // a quoted string already (kept as such).
        if !(value.starts_with('"') && value.ends_with('"')) {
            assert_eq!(
                text_fields(|| tracing::info!(value = %value, "m")),
                expected
            );
        }
        // So does a `?` value, already a quoted string unless plain.
        let debug = format!("{value:?}");
        if written.starts_with('"') || value.is_empty() {
            assert_eq!(
                text_fields(|| tracing::info!(value = ?value, "m")),
                format!("m value={debug}")
            );
        }
    }
}

#[test]
fn no_value_keeps_a_raw_line_break_space_or_control_character() {
    let breaking = (0..=0x10_ffff_u32)
        .filter_map(char::from_u32)
        .filter(|c| c.is_whitespace() || c.is_control());
    for c in breaking {
        let value = format!("a{c}b");
        let fields = text_fields(|| tracing::info!(value = value.as_str(), "m"));
        let quoted = fields
            .strip_prefix("m value=\"")
            .and_then(|v| v.strip_suffix('"'));
        assert!(quoted.is_some(), "{c:?} not quoted: {fields:?}");
        assert!(
            fields
                .chars()
                .all(|d| d == ' ' || !(d.is_whitespace() || d.is_control())),
            "{c:?} written raw: {fields:?}"
        );
    }
}

#[test]
fn the_plain_check_is_exact_at_every_length_and_position() {
    let plain = |t: &str| {
        t.bytes()
            .all(|b| (b'!'..=b'~').contains(&b) && b != b'"' && b != b'\\')
    };
    for len in 0..50 {
        let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        assert!(is_plain(std::str::from_utf8(&base).unwrap()), "{len}");
        for at in 0..len {
            for b in 0..=0x7f_u8 {
                let mut bytes = base.clone();
                bytes[at] = b;
                let text = std::str::from_utf8(&bytes).unwrap();
                assert_eq!(is_plain(text), plain(text), "{text:?}");
            }
            let mut text = String::from_utf8(base.clone()).unwrap();
            text.replace_range(at..=at, "é");
            assert!(!is_plain(&text), "{text:?}");
        }
    }
}
