//! The `sync` controller's Prometheus series, in their own registry (the
//! webhook's live in [`crate::runtime::telemetry`]). Label values are fixed
//! words: no namespace, secret or rule names, never a secret value.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    operation: &'static str,
    result: &'static str,
}

/// A Secret write, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// POST.
    Create,
    /// PUT.
    Update,
    /// DELETE.
    Delete,
}

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// Every series `sync` exports.
pub struct SyncMetrics {
    registry: Registry,
    copies: Family<StateLabels, Gauge>,
    sources_invalid: Gauge,
    writes: Family<WriteLabels, Counter>,
    leader: Gauge,
    reconcile: Histogram,
    in_flight: Gauge,
    queued: Gauge,
}

impl std::fmt::Debug for SyncMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncMetrics").finish_non_exhaustive()
    }
}

impl Default for SyncMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncMetrics {
    /// Creates and registers every series, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pull_secret_injector_sync");
        let copies = Family::<StateLabels, Gauge>::default();
        registry.register(
            "copies",
            "Wanted copies of managed secrets by state (synced, conflict, pending)",
            copies.clone(),
        );
        for state in ["synced", "conflict", "pending"] {
            copies.get_or_create(&StateLabels { state }).set(0);
        }
        let sources_invalid = Gauge::default();
        registry.register(
            "sources_invalid",
            "Managed secrets whose source Secret is missing or not a pull secret",
            sources_invalid.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "writes",
            "Secret writes by operation (create, update, delete) and result (ok, error)",
            writes.clone(),
        );
        for operation in ["create", "update", "delete"] {
            for result in ["ok", "error"] {
                let _ = writes.get_or_create(&WriteLabels { operation, result });
            }
        }
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the sync Lease, else 0",
            leader.clone(),
        );
        let reconcile = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]);
        registry.register_with_unit(
            "reconcile_duration",
            "Time to compare the wanted copies with the observed ones",
            prometheus_client::registry::Unit::Seconds,
            reconcile.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "writes_in_flight",
            "Secret writes sent and not answered yet (at most --max-in-flight)",
            in_flight.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "writes_queued",
            "Secret writes decided and waiting for a free slot",
            queued.clone(),
        );
        SyncMetrics {
            registry,
            copies,
            sources_invalid,
            writes,
            leader,
            reconcile,
            in_flight,
            queued,
        }
    }

    /// Sets the copy gauges.
    pub fn copies(&self, synced: usize, conflict: usize, pending: usize, sources_invalid: usize) {
        let set = |state, n: usize| {
            self.copies
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("synced", synced);
        set("conflict", conflict);
        set("pending", pending);
        self.sources_invalid
            .set(i64::try_from(sources_invalid).unwrap_or(i64::MAX));
    }

    /// Counts one write.
    pub fn write(&self, operation: Operation, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.writes
            .get_or_create(&WriteLabels {
                operation: operation.label(),
                result,
            })
            .inc();
    }

    /// A write starts (`true`) or ends (`false`).
    pub fn in_flight(&self, starts: bool) {
        if starts {
            self.in_flight.inc();
        } else {
            self.in_flight.dec();
        }
    }

    /// Sets how many writes wait for a slot.
    pub fn queued(&self, n: usize) {
        self.queued.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Records whether this replica leads.
    pub fn leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records one reconcile pass.
    pub fn reconciled(&self, elapsed: Duration) {
        self.reconcile.observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_have_the_documented_names() {
        let m = SyncMetrics::new();
        m.copies(3, 1, 2, 1);
        m.write(Operation::Create, true);
        m.write(Operation::Delete, false);
        m.leader(true);
        m.reconciled(Duration::from_millis(3));
        m.in_flight(true);
        m.in_flight(true);
        m.in_flight(false);
        m.queued(7);
        let text = m.encode();
        for line in [
            r#"pull_secret_injector_sync_copies{state="synced"} 3"#,
            r#"pull_secret_injector_sync_copies{state="conflict"} 1"#,
            r#"pull_secret_injector_sync_copies{state="pending"} 2"#,
            "pull_secret_injector_sync_sources_invalid 1",
            r#"pull_secret_injector_sync_writes_total{operation="create",result="ok"} 1"#,
            r#"pull_secret_injector_sync_writes_total{operation="delete",result="error"} 1"#,
            r#"pull_secret_injector_sync_writes_total{operation="update",result="ok"} 0"#,
            "pull_secret_injector_sync_leader 1",
            "pull_secret_injector_sync_reconcile_duration_seconds_count 1",
            "pull_secret_injector_sync_writes_in_flight 1",
            "pull_secret_injector_sync_writes_queued 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
