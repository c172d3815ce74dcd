//! Supervised background work.
//!
//! Every long-running helper of a command (a reloader, a watch, a cache) runs
//! under a [`Supervisor`]: when it panics or ends while the process is not
//! stopping, it is started again after a backoff that doubles up to
//! [`MAX_BACKOFF`]. A task that keeps failing turns the replica unready:
//! [`Health::problems`] names it and says why, and `/readyz` reports that
//! text. Once a restarted task has run for [`HEALTHY_AFTER`] without failing,
//! it counts as recovered and the problem is cleared.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// First wait before a restart.
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A restarted task that has run this long is considered recovered.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// Failures in a row (each before [`HEALTHY_AFTER`]) that make the replica
/// unready.
pub const FAILURES_BEFORE_UNREADY: u32 = 3;

/// What the supervised tasks say about the process: the tasks that keep
/// failing, and why.
#[derive(Debug, Default)]
pub struct Health {
    problems: Mutex<BTreeMap<&'static str, String>>,
}

impl Health {
    /// The failing tasks and their last error; empty when all are well.
    pub fn problems(&self) -> BTreeMap<&'static str, String> {
        self.lock().clone()
    }

    /// True when no task keeps failing.
    pub fn is_healthy(&self) -> bool {
        self.lock().is_empty()
    }

    /// Records that `task` keeps failing with `reason`.
    pub fn fail(&self, task: &'static str, reason: String) {
        self.lock().insert(task, reason);
    }

    /// Records that `task` recovered.
    pub fn recover(&self, task: &'static str) {
        self.lock().remove(task);
    }

    // A panic while the map was held cannot leave it half-written (every
    // change is one insert or remove), so poisoning is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        self.problems.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs named background tasks until stopped, restarting those that fail.
pub struct Supervisor {
    tasks: JoinSet<()>,
    health: Arc<Health>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with no tasks.
    pub fn new() -> Self {
        let (stop_tx, stop_rx) = watch::channel(false);
        Supervisor {
            tasks: JoinSet::new(),
            health: Arc::new(Health::default()),
            stop_tx,
            stop_rx,
        }
    }

    /// The health the tasks report into.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// A receiver that turns true when [`Supervisor::shutdown`] is called;
    /// tasks return when it does.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop_rx.clone()
    }

    /// Runs `make()` as the task `name`, and again after a backoff whenever
    /// it panics, fails or returns before the supervisor stops. `make` gets
    /// the stop signal; the task must return soon after it turns true.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, mut make: F)
    where
        F: FnMut(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let health = self.health.clone();
        let mut stop = self.stop_rx.clone();
        self.tasks.spawn(async move {
            let mut failures: u32 = 0;
            let mut backoff = MIN_BACKOFF;
            loop {
                let mut run = tokio::spawn(make(stop.clone()));
                let healthy = tokio::time::sleep(HEALTHY_AFTER);
                tokio::pin!(healthy);
                let mut recovered = false;
                let outcome = loop {
                    tokio::select! {
                        outcome = &mut run => break outcome,
                        () = &mut healthy, if !recovered => {
                            recovered = true;
                            if failures > 0 {
                                tracing::info!(task = name, "background task recovered");
                            }
                            failures = 0;
                            backoff = MIN_BACKOFF;
                            health.recover(name);
                        }
                    }
                };
                if *stop.borrow() {
                    return;
                }
                let reason = match outcome {
                    Ok(Ok(())) => "it ended unexpectedly".to_owned(),
                    Ok(Err(err)) => format!("{err:#}"),
                    Err(join) if join.is_panic() => "it panicked".to_owned(),
                    Err(_) => "it was cancelled".to_owned(),
                };
                failures += 1;
                tracing::error!(task = name, failures, error = %reason, retry_in = ?backoff, "background task failed; restarting it");
                if failures >= FAILURES_BEFORE_UNREADY {
                    health.fail(name, reason);
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// Tells every task to stop and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop_tx.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Runs `job` on the blocking pool every `interval`, and at once whenever
/// `wake` changes (`serve` bumps it on SIGHUP), until `stop` turns true.
/// File reads and policy compiles happen there, never on the async workers.
/// A panic in `job` ends this task with an error, for its supervisor to
/// restart it.
pub async fn every<J>(
    interval: Duration,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
    job: J,
) -> anyhow::Result<()>
where
    J: FnMut() + Send + 'static,
{
    let mut job = Some(job);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    // Changes made before this task (re)started are not a request to it.
    wake.mark_unchanged();
    let mut wake_open = true;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = wake.changed(), if wake_open => {
                if changed.is_err() {
                    // The sender is gone: only the interval is left.
                    wake_open = false;
                    continue;
                }
                ticker.reset();
            }
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        let Some(mut current) = job.take() else {
            return Ok(());
        };
        let done = tokio::task::spawn_blocking(move || {
            current();
            current
        })
        .await;
        match done {
            Ok(current) => job = Some(current),
            Err(err) => anyhow::bail!("periodic job failed: {err}"),
        }
    }
}

/// Waits for SIGTERM or Ctrl-C, the signals that start a graceful stop.
pub async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_failing_task_is_restarted_and_reported_then_recovers() {
        let mut supervisor = Supervisor::new();
        let health = supervisor.health();
        let starts = Arc::new(AtomicU32::new(0));
        supervisor.spawn("flaky", {
            let starts = starts.clone();
            move |mut stop| {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 4 {
                        anyhow::bail!("broken #{n}");
                    }
                    let _ = stop.wait_for(|s| *s).await;
                    Ok(())
                }
            }
        });
        // Three quick failures: unready, with the reason.
        tokio::time::sleep(MIN_BACKOFF * 8).await;
        assert!(starts.load(Ordering::SeqCst) >= 3);
        let problems = health.problems();
        assert!(
            problems.get("flaky").is_some_and(|r| r.contains("broken")),
            "{problems:?}"
        );
        // The fifth start stays up; after HEALTHY_AFTER it counts as
        // recovered.
        tokio::time::sleep(MAX_BACKOFF + HEALTHY_AFTER + Duration::from_secs(1)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 5);
        assert!(health.is_healthy(), "{:?}", health.problems());
        supervisor.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted() {
        let mut supervisor = Supervisor::new();
        let starts = Arc::new(AtomicU32::new(0));
        supervisor.spawn("panics", {
            let starts = starts.clone();
            move |mut stop| {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(n > 0, "first run panics");
                    let _ = stop.wait_for(|s| *s).await;
                    Ok(())
                }
            }
        });
        tokio::time::sleep(MIN_BACKOFF * 2).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        supervisor.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_jobs_run_until_stopped() {
        let mut supervisor = Supervisor::new();
        let runs = Arc::new(AtomicU32::new(0));
        supervisor.spawn("tick", {
            let runs = runs.clone();
            move |stop| {
                let runs = runs.clone();
                every(
                    Duration::from_secs(1),
                    watch::channel(0).1,
                    stop,
                    move || {
                        runs.fetch_add(1, Ordering::SeqCst);
                    },
                )
            }
        });
        tokio::time::sleep(Duration::from_millis(3500)).await;
        supervisor.shutdown().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_runs_the_job_at_once() {
        let mut supervisor = Supervisor::new();
        let runs = Arc::new(AtomicU32::new(0));
        let (wake_tx, wake_rx) = watch::channel(0u64);
        supervisor.spawn("tick", {
            let runs = runs.clone();
            move |stop| {
                let runs = runs.clone();
                every(
                    Duration::from_secs(3600),
                    wake_rx.clone(),
                    stop,
                    move || {
                        runs.fetch_add(1, Ordering::SeqCst);
                    },
                )
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        wake_tx.send_modify(|n| *n += 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // With the sender gone the interval still runs it.
        drop(wake_tx);
        tokio::time::sleep(Duration::from_secs(3601)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        supervisor.shutdown().await;
    }
}
