//! Logs and metrics: the `tracing` subscriber (text or JSON lines) and the
//! Prometheus series served on `--metrics-listen`.
//!
//! Label values are bounded: operation, outcome, result and rule names (a
//! rule set is small and operator-controlled). No pod names, no images.

use std::sync::OnceLock;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::log_format::{Digits, JsonFormat, TextFormat, with_buffer};
use super::log_writer;
use crate::core::decide::Outcome;
use crate::core::json::all_bytes;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global `tracing` subscriber writing to stderr. The filter
/// comes from `RUST_LOG` (default `info`).
///
/// Lines are formatted on the calling thread and written by a background
/// thread in batches (see `runtime::log_writer`): one `write` and at most
/// one thread wake-up per burst instead of per admission decision. Nothing
/// is dropped: a full buffer makes the caller wait. Keep the returned guard
/// alive until exit; dropping it writes what is left.
pub fn init_logging(format: LogFormat) -> log_writer::LogGuard {
    let (writer, guard) = log_writer::stderr();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    // A second call (tests) keeps the first subscriber. The event
    // formatters write the stock formats' lines with less work per line
    // (see `log_format`).
    let _ = match format {
        LogFormat::Text => builder
            .fmt_fields(TextFields)
            .event_format(TextFormat::default())
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JsonFormat::default())
            .try_init(),
    };
    guard
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
        if self.ansi {
            self.separate();
            self.result = self.name(name);
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.separate();
            self.line.push_str(name);
            self.line.push('=');
        }
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

impl tracing::field::Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
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
            self.plain_field(field.name(), value);
        } else {
            self.field(field.name(), format_args!("{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        let mut digits = Digits::new();
        self.plain_field(field.name(), digits.u64(value));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        let mut digits = Digits::new();
        self.plain_field(field.name(), digits.i64(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.plain_field(field.name(), if value { "true" } else { "false" });
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

thread_local! {
    /// The name lists of the line being logged (see [`with_joined`]).
    static JOINED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Calls `f` with each list of names joined by commas
/// (`corp-harbor,dockerhub`, which reads the same in text and JSON logs),
/// written into one of this thread's reusable buffers. For speed: a log
/// line then records each list as a plain `&str`, neither formatted
/// through `core::fmt` nor allocated.
pub fn with_joined<const N: usize, R>(lists: [&[&str]; N], f: impl FnOnce([&str; N]) -> R) -> R {
    with_buffer(&JOINED, |text| {
        let mut ends = [0; N];
        for (list, end) in lists.iter().zip(&mut ends) {
            for (i, name) in list.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(name);
            }
            *end = text.len();
        }
        let text = &*text;
        f(std::array::from_fn(|i| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &text[start..ends[i]]
        }))
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The outcome label used for bodies that were not readable reviews.
pub const OUTCOME_ERROR: &str = "error";

/// The operation label values.
const OPERATIONS: [&str; 5] = ["CREATE", "UPDATE", "DELETE", "CONNECT", "other"];
/// The outcome label values a review is counted with (`Outcome::as_str`
/// and [`OUTCOME_ERROR`]).
const OUTCOMES: [&str; 5] = ["patched", "unchanged", "skipped", "reported", OUTCOME_ERROR];

/// Handles of the per-rule counters for the rules of the policy in force,
/// rebuilt when a policy is loaded. For speed: asking the family for a
/// rule's counter allocates a `String` label and SipHashes it under a lock,
/// per rule and review; a handle is the family's own counter (the family
/// never drops a series), taken from it on the rule's first count, so the
/// exposition is the same — a series appears once it was counted.
#[derive(Default)]
struct RuleCounters {
    by_name: std::collections::HashMap<Box<str>, RuleSlots, foldhash::fast::RandomState>,
}

#[derive(Default)]
struct RuleSlots {
    injected: OnceLock<Counter>,
    would_inject: OnceLock<Counter>,
}

/// Every series the webhook exports.
pub struct Metrics {
    registry: Registry,
    reviews: Family<ReviewLabels, Counter>,
    /// Handles into `reviews` by operation and outcome (indices into
    /// [`OPERATIONS`] and [`OUTCOMES`]), taken on first use: for speed, as
    /// for [`RuleCounters`].
    review_counters: [[OnceLock<Counter>; OUTCOMES.len()]; OPERATIONS.len()],
    rule_counters: ArcSwap<RuleCounters>,
    secrets_injected: Family<RuleLabels, Counter>,
    secrets_would_inject: Family<RuleLabels, Counter>,
    images_unmatched: Counter,
    duration: Histogram,
    in_flight: Gauge,
    policy_generation: Gauge,
    policy_rules: Gauge,
    policy_source_rejected: Gauge,
    policy_reloads: Family<ResultLabels, Counter>,
    cert_expiry: Gauge<i64, AtomicI64>,
    cert_reloads: Family<ResultLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency buckets from 50 µs to about 1.6 s: the interesting part of a
/// webhook's latency is well under a millisecond.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16)
}

impl Metrics {
    /// Creates and registers every series.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pull_secret_injector");
        let reviews = Family::<ReviewLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "AdmissionReviews answered, by operation and outcome (patched, unchanged, skipped, reported, error)",
            reviews.clone(),
        );
        let secrets_injected = Family::<RuleLabels, Counter>::default();
        registry.register(
            "secrets_injected",
            "Pull secrets added to pods, by the policy rule that asked for them",
            secrets_injected.clone(),
        );
        let secrets_would_inject = Family::<RuleLabels, Counter>::default();
        registry.register(
            "secrets_would_inject",
            "Report-only mode: pull secrets a patch would have added to pods, by the policy rule that asks for them",
            secrets_would_inject.clone(),
        );
        let images_unmatched = Counter::default();
        registry.register(
            "images_unmatched",
            "Container images of mutated pods that no policy rule matched",
            images_unmatched.clone(),
        );
        let duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "admission_review_duration",
            "Time to answer one AdmissionReview, from body received to response written",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_requests",
            "AdmissionReviews being answered right now",
            in_flight.clone(),
        );
        let policy_generation = Gauge::default();
        registry.register(
            "policy_generation",
            "Generation of the policy in force (increments on every accepted change)",
            policy_generation.clone(),
        );
        let policy_rules = Gauge::default();
        let policy_source_rejected = Gauge::default();
        registry.register(
            "policy_source_rejected",
            "1 while the policy source's current content is rejected (invalid, unreadable, deleted, no policy.yaml key) and the last valid policy, or none, stays in force; 0 once it loads or returns to the policy in force",
            policy_source_rejected.clone(),
        );
        registry.register(
            "policy_rules",
            "Number of rules in the policy in force",
            policy_rules.clone(),
        );
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy loads, by result (loaded, rejected)",
            policy_reloads.clone(),
        );
        let cert_expiry = Gauge::<i64, AtomicI64>::default();
        registry.register_with_unit(
            "certificate_expiry_timestamp",
            "Unix time at which the served TLS certificate expires",
            prometheus_client::registry::Unit::Seconds,
            cert_expiry.clone(),
        );
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "certificate_reloads",
            "Serving certificate reloads that changed something, by result (loaded, rejected)",
            cert_reloads.clone(),
        );
        Metrics {
            registry,
            reviews,
            review_counters: Default::default(),
            rule_counters: ArcSwap::from_pointee(RuleCounters::default()),
            secrets_injected,
            secrets_would_inject,
            images_unmatched,
            duration,
            in_flight,
            policy_generation,
            policy_rules,
            policy_source_rejected,
            policy_reloads,
            cert_expiry,
            cert_reloads,
        }
    }

    /// Counts one answered review.
    pub fn review(&self, operation: &str, outcome: &'static str, elapsed: Duration) {
        // Only the four admission operations become label values.
        // Indices into OPERATIONS (the last, `other`, for anything else)
        // and OUTCOMES.
        let last = OPERATIONS.len() - 1;
        let op = OPERATIONS[..last]
            .iter()
            .position(|o| *o == operation)
            .unwrap_or(last);
        let out = OUTCOMES.iter().position(|o| *o == outcome);
        match out {
            Some(out) => self.review_counters[op][out]
                .get_or_init(|| {
                    self.reviews.get_or_create_owned(&ReviewLabels {
                        operation: OPERATIONS[op],
                        outcome: OUTCOMES[out],
                    })
                })
                .inc(),
            None => self
                .reviews
                .get_or_create(&ReviewLabels {
                    operation: OPERATIONS[op],
                    outcome,
                })
                .inc(),
        };
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts what a decision did (or, reported, would have done).
    pub fn decision(&self, outcome: Outcome, rules_added: &[(&str, usize)], unmatched: usize) {
        let (family, slot): (_, fn(&RuleSlots) -> &OnceLock<Counter>) = match outcome {
            Outcome::Patched => (&self.secrets_injected, |s| &s.injected),
            Outcome::Reported => (&self.secrets_would_inject, |s| &s.would_inject),
            Outcome::Unchanged | Outcome::Skipped => {
                self.unmatched(unmatched);
                return;
            }
        };
        if !rules_added.is_empty() {
            let table = self.rule_counters.load();
            let labels = |rule: &str| RuleLabels {
                rule: rule.to_owned(),
            };
            for (rule, count) in rules_added {
                let count = *count as u64;
                match table.by_name.get(*rule) {
                    Some(slots) => slot(slots)
                        .get_or_init(|| family.get_or_create_owned(&labels(rule)))
                        .inc_by(count),
                    // A decision of a policy replaced meanwhile.
                    None => family.get_or_create(&labels(rule)).inc_by(count),
                };
            }
        }
        self.unmatched(unmatched);
    }

    fn unmatched(&self, images: usize) {
        if images > 0 {
            self.images_unmatched.inc_by(images as u64);
        }
    }

    /// Tracks a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Records an accepted policy with these rule names (call it before the
    /// policy answers reviews, so that their counts find their rules).
    pub fn policy_loaded<'r>(
        &self,
        generation: u64,
        rules: impl ExactSizeIterator<Item = &'r str>,
    ) {
        self.policy_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.policy_rules
            .set(i64::try_from(rules.len()).unwrap_or(i64::MAX));
        let by_name = rules
            .map(|name| (Box::from(name), RuleSlots::default()))
            .collect();
        self.rule_counters
            .store(std::sync::Arc::new(RuleCounters { by_name }));
        self.policy_reloads
            .get_or_create(&ResultLabels { result: "loaded" })
            .inc();
    }

    /// Records whether the policy source's current content is rejected.
    pub fn policy_source_rejected(&self, rejected: bool) {
        self.policy_source_rejected.set(i64::from(rejected));
    }

    /// Records a rejected policy.
    pub fn policy_rejected(&self) {
        self.policy_reloads
            .get_or_create(&ResultLabels { result: "rejected" })
            .inc();
    }

    /// Records the served certificate's expiry.
    pub fn certificate(&self, not_after_unix: Option<i64>) {
        if let Some(t) = not_after_unix {
            self.cert_expiry.set(t);
        }
    }

    /// Records a certificate reload attempt that saw new files.
    pub fn certificate_reload(&self, ok: bool) {
        let result = if ok { "loaded" } else { "rejected" };
        self.cert_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The Prometheus text exposition of every series.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight<'a>(&'a Gauge<i64, AtomicI64>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn series_move_when_reviews_are_counted() {
        let m = Metrics::new();
        m.review(
            "CREATE",
            Outcome::Patched.as_str(),
            Duration::from_micros(120),
        );
        m.review("PATCH-ME", OUTCOME_ERROR, Duration::from_micros(10));
        m.decision(Outcome::Patched, &[("hub", 2)], 1);
        m.decision(Outcome::Reported, &[("quay", 1)], 0);
        m.policy_loaded(3, ["hub", "quay", "ghcr"].into_iter());
        m.policy_rejected();
        m.certificate(Some(1_900_000_000));
        let text = m.encode();
        for needle in [
            r#"pull_secret_injector_admission_reviews_total{operation="CREATE",outcome="patched"} 1"#,
            r#"pull_secret_injector_admission_reviews_total{operation="other",outcome="error"} 1"#,
            r#"pull_secret_injector_secrets_injected_total{rule="hub"} 2"#,
            r#"pull_secret_injector_secrets_would_inject_total{rule="quay"} 1"#,
            "pull_secret_injector_images_unmatched_total 1",
            "pull_secret_injector_admission_review_duration_seconds_count 2",
            "pull_secret_injector_policy_generation 3",
            "pull_secret_injector_policy_rules 3",
            r#"pull_secret_injector_policy_reloads_total{result="rejected"} 1"#,
            "pull_secret_injector_certificate_expiry_timestamp_seconds 1900000000",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(
            !text.contains(r#"secrets_injected_total{rule="quay"}"#),
            "a report is not an injection:\n{text}"
        );
        {
            let _guard = m.in_flight();
            assert!(
                m.encode()
                    .contains("pull_secret_injector_in_flight_requests 1")
            );
        }
        assert!(
            m.encode()
                .contains("pull_secret_injector_in_flight_requests 0")
        );
    }

    #[test]
    fn every_operation_and_outcome_is_its_own_series() {
        let m = Metrics::new();
        let operations = ["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH"];
        for (i, operation) in operations.iter().enumerate() {
            for (j, outcome) in OUTCOMES.iter().enumerate() {
                for _ in 0..=(i * OUTCOMES.len() + j) {
                    m.review(operation, outcome, Duration::from_micros(5));
                }
            }
        }
        let text = m.encode();
        for (i, operation) in OPERATIONS.iter().enumerate() {
            for (j, outcome) in OUTCOMES.iter().enumerate() {
                let needle = format!(
                    "pull_secret_injector_admission_reviews_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {}\n",
                    i * OUTCOMES.len() + j + 1
                );
                assert!(text.contains(&needle), "missing {needle} in\n{text}");
            }
        }
        // An outcome outside the list still gets its series.
        m.review("CREATE", "odd", Duration::ZERO);
        assert!(m.encode().contains(
            r#"pull_secret_injector_admission_reviews_total{operation="CREATE",outcome="odd"} 1"#
        ));
    }

    #[test]
    fn rule_counts_carry_over_policy_reloads_and_unknown_rules() {
        let m = Metrics::new();
        let count = |m: &Metrics, series: &str| {
            m.encode().lines().find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .parse::<u64>()
                    .ok()
            })
        };
        let hub = r#"pull_secret_injector_secrets_injected_total{rule="hub"}"#;
        let quay = r#"pull_secret_injector_secrets_injected_total{rule="quay"}"#;
        let hub_report = r#"pull_secret_injector_secrets_would_inject_total{rule="hub"}"#;
        // Before any policy (no handle table), with a policy, after a
        // reload that drops the rule, and after one that brings it back:
        // one series, counting on.
        m.decision(Outcome::Patched, &[("hub", 1)], 0);
        m.policy_loaded(1, ["hub", "quay"].into_iter());
        assert_eq!(count(&m, quay), None, "no series before its first count");
        m.decision(Outcome::Patched, &[("hub", 2), ("quay", 1)], 0);
        m.decision(Outcome::Patched, &[("hub", 3)], 0);
        m.policy_loaded(2, ["quay"].into_iter());
        m.decision(Outcome::Patched, &[("hub", 4), ("quay", 1)], 0);
        m.policy_loaded(3, ["quay", "hub"].into_iter());
        m.decision(Outcome::Patched, &[("hub", 5)], 0);
        m.decision(Outcome::Reported, &[("hub", 7)], 0);
        m.decision(Outcome::Unchanged, &[], 2);
        assert_eq!(count(&m, hub), Some(15));
        assert_eq!(count(&m, quay), Some(2));
        assert_eq!(count(&m, hub_report), Some(7));
        assert_eq!(
            count(&m, "pull_secret_injector_images_unmatched_total"),
            Some(2)
        );
    }

    use crate::runtime::log_format::tests::Sink;

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

    #[test]
    fn joined_lists_are_comma_separated_and_independent() {
        let (a, b, c) = with_joined(
            [&["corp-harbor", "dockerhub"][..], &[], &["ghcr"]],
            |[a, b, c]| (a.to_owned(), b.to_owned(), c.to_owned()),
        );
        assert_eq!(
            (a.as_str(), b.as_str(), c.as_str()),
            ("corp-harbor,dockerhub", "", "ghcr")
        );
    }
}
