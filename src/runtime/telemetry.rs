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

pub use super::log_format::LogFormat;
use super::log_format::{self, JsonFormat, TextFields, TextFormat, Value, with_buffer};
use super::log_writer;
use crate::core::decide::Outcome;

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
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer.clone());
    // A second call (tests) keeps the first subscriber. The event
    // formatters write the stock formats' lines with less work per line
    // (see `log_format`).
    let installed = match format {
        LogFormat::Text => builder
            .fmt_fields(TextFields)
            .event_format(TextFormat::default())
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JsonFormat::default())
            .try_init(),
    };
    if installed.is_ok() && !ansi {
        let _ = DIRECT.set(Direct { format, writer });
    }
    guard
}

/// The subscribers `init_logging` installs.
type TextSubscriber = tracing_subscriber::fmt::Subscriber<
    TextFields,
    TextFormat,
    tracing_subscriber::EnvFilter,
    log_writer::BatchedStderr,
>;
type JsonSubscriber = tracing_subscriber::fmt::Subscriber<
    tracing_subscriber::fmt::format::JsonFields,
    JsonFormat,
    tracing_subscriber::EnvFilter,
    log_writer::BatchedStderr,
>;

/// What [`write_info_line`] needs to write a line as the installed
/// subscriber would: its format and its writer.
struct Direct {
    format: LogFormat,
    writer: log_writer::BatchedStderr,
}

/// Set by `init_logging` when its subscriber is installed and writes
/// without colours.
static DIRECT: OnceLock<Direct> = OnceLock::new();

thread_local! {
    /// The line [`write_info_line`] is writing, reused.
    static DIRECT_LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Writes an info line from `target` straight to the log, byte for byte as
/// the subscriber `init_logging` installed would write the event (see
/// `log_format::write_line`), without `tracing`'s per-event work: the
/// dispatch, the filter's second look, the field visitors behind dynamic
/// calls. For the one line per admission review, where that work was half
/// the line's cost. Use it through [`info_line!`], which checks the level
/// first and falls back to `tracing::info!`.
///
/// Returns `false`, writing nothing, unless the subscriber in force for
/// this thread is that one (before `init_logging`, under a test's own
/// subscriber, or with colours for a terminal).
pub fn write_info_line(target: &str, message: &str, fields: &[(&str, Value<'_>)]) -> bool {
    let Some(direct) = DIRECT.get() else {
        return false;
    };
    let ours = tracing::dispatcher::get_default(|dispatch| match direct.format {
        LogFormat::Text => dispatch.is::<TextSubscriber>(),
        LogFormat::Json => dispatch.is::<JsonSubscriber>(),
    });
    if !ours {
        return false;
    }
    with_buffer(&DIRECT_LINE, |line| {
        let written = log_format::write_line(
            line,
            direct.format,
            &tracing::Level::INFO,
            target,
            message,
            fields,
        );
        // A formatting error writes nothing, as the subscriber would.
        if written.is_ok() {
            direct.writer.append(line.as_bytes());
        }
    });
    true
}

/// `tracing::info!(message = $message, name = value, …)` for the request
/// path, with `&str`, `u64`, `usize` and `bool` values: the same line,
/// written by [`write_info_line`] when it can, through `tracing` when not.
/// Each value is evaluated once.
macro_rules! info_line {
    ($message:literal, $($name:ident = $value:expr),+ $(,)?) => {
        if tracing::enabled!(tracing::Level::INFO) {
            // Evaluated once, for either path (`rules = rules` is fine).
            $(#[allow(clippy::redundant_locals)] let $name = $value;)+
            if !$crate::runtime::telemetry::write_info_line(
                module_path!(),
                $message,
                &[$((stringify!($name), $crate::runtime::log_format::Value::from($name))),+],
            ) {
                tracing::info!(message = $message, $($name),+);
            }
        }
    };
}
pub(crate) use info_line;

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

/// Latency buckets from 50 µs to about 26 s, doubling: the interesting part
/// of a webhook's latency is well under a millisecond, but a review that
/// waits on the namespace lookup or a starved CPU must still be told apart
/// from one near kube-apiserver's timeout (at most 30 s), so that the
/// latency alert can follow any `timeoutSeconds`.
const LATENCY_BUCKETS: u16 = 20;

fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, LATENCY_BUCKETS)
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
    use crate::runtime::log_format::tests::{Sink, subscriber_lines, untimed};
    use crate::runtime::log_format::write_line;
    use tracing::Level;

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

    #[test]
    fn latency_buckets_reach_past_the_slow_review_alert_for_any_timeout() {
        let buckets: Vec<f64> = latency_buckets().collect();
        // The chart's alert fires at 80 % of timeoutSeconds, which
        // kube-apiserver caps at 30 s; histogram_quantile cannot report
        // past the largest finite bucket.
        assert!(buckets[buckets.len() - 1] >= 0.8 * 30.0, "{buckets:?}");
        assert!(buckets[0] <= 0.000_1, "{buckets:?}");
    }

    #[test]
    fn direct_lines_read_as_the_subscriber_writes_the_same_event() {
        // uid, namespace, pod, dry run, warnings, generation: plain values,
        // empty ones, values to quote or escape, forged lines, non-ASCII.
        let cases: [(&str, &str, &str, bool, usize, u64); 6] = [
            ("b1f0c3a2-6a55", "team-a", "api-7d9f8b6c5d-", false, 0, 1),
            ("", "", "", true, 3, u64::MAX),
            (
                "u\nERROR forged",
                "team-a\r\nWARN x",
                "x\nINFO fake: uid=evil",
                false,
                12,
                7,
            ),
            ("say \"hi\"", "two words", r"back\slash", true, 1, 0),
            ("café", "\u{2028}", "bell\u{7}\u{7f}", false, 99, 10),
            ("a=b", "=", "\"quoted\"", false, 0, 42),
        ];
        for format in [LogFormat::Text, LogFormat::Json] {
            for &(uid, namespace, pod, dry_run, warnings, generation) in &cases {
                // Through `tracing` (no direct writer is installed in tests,
                // so the macro logs the event).
                let logged = subscriber_lines(format, || {
                    info_line!(
                        "admission decision",
                        uid = uid,
                        namespace = namespace,
                        pod = pod,
                        dry_run = dry_run,
                        warnings = warnings,
                        policy_generation = generation,
                    );
                });
                let direct = direct_line(
                    format,
                    "admission decision",
                    &[
                        ("uid", Value::from(uid)),
                        ("namespace", Value::from(namespace)),
                        ("pod", Value::from(pod)),
                        ("dry_run", Value::from(dry_run)),
                        ("warnings", Value::from(warnings)),
                        ("policy_generation", Value::from(generation)),
                    ],
                );
                let json = format == LogFormat::Json;
                assert_eq!(untimed(direct, json), untimed(logged, json), "{format:?}");
            }
        }
    }

    #[test]
    fn a_direct_message_is_escaped_as_the_subscriber_escapes_it() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let logged = subscriber_lines(format, || {
                info_line!("tab\t, line\nbreak and café", n = 1_u64);
            });
            let direct = direct_line(
                format,
                "tab\t, line\nbreak and café",
                &[("n", Value::U64(1))],
            );
            let json = format == LogFormat::Json;
            assert_eq!(untimed(direct, json), untimed(logged, json), "{format:?}");
        }
    }

    /// The one line `write_line` writes for an info event from this module.
    fn direct_line(format: LogFormat, message: &str, fields: &[(&str, Value<'_>)]) -> Vec<String> {
        let mut line = String::new();
        write_line(
            &mut line,
            format,
            &Level::INFO,
            module_path!(),
            message,
            fields,
        )
        .unwrap();
        let line = line.strip_suffix('\n').expect("a line ends with a newline");
        assert!(!line.contains('\n'), "one line: {line:?}");
        vec![line.to_owned()]
    }

    #[test]
    fn lines_are_written_directly_only_under_the_subscriber_installed() {
        let fields = [("n", Value::U64(1))];
        // Before `init_logging`: nothing.
        assert!(!write_info_line("t", "before", &fields));
        let sink = Sink::default();
        let (writer, guard) = log_writer::stderr_to(Box::new(sink.clone()));
        // What `init_logging` records and installs, here for this thread
        // only (the direct writer is set once per process: only this test
        // sets it).
        assert!(
            DIRECT
                .set(Direct {
                    format: LogFormat::Text,
                    writer: writer.clone(),
                })
                .is_ok()
        );
        let installed: TextSubscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(writer)
            .fmt_fields(TextFields)
            .event_format(TextFormat::default())
            .finish();
        let other = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish();
        assert!(tracing::subscriber::with_default(installed, || {
            write_info_line("t", "under it", &fields)
        }));
        assert!(!tracing::subscriber::with_default(other, || {
            write_info_line("t", "under another", &fields)
        }));
        assert!(!write_info_line("t", "under none", &fields));
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let line = text.strip_suffix('\n').expect("one line");
        assert!(line.ends_with("  INFO t: under it n=1"), "{text:?}");
        assert_eq!(
            line.len(),
            "2026-01-02T03:04:05.678901Z".len() + 22,
            "{text:?}"
        );
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
