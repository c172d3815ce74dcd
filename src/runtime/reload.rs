//! Periodic re-reading of files, reported once per change of state: a file
//! that stays broken is logged (and counted) once, again when the failure
//! changes, and once more when it is good again. `serve` and `sync` reload
//! their policy file through it; `serve` adds the certificate.

use crate::runtime::policy_store::{Applied, FileSource, LoadPolicyError, PolicyStore};
use crate::runtime::telemetry::Metrics;

/// One periodic reload: remembers the last failure, so that files that stay
/// broken are reported once (and again when the failure changes), not at
/// every interval, and says when they are good again.
#[derive(Default)]
pub struct Reloader {
    /// The last failure reported, if the files are failing now.
    pub(crate) failing: Option<String>,
}

impl Reloader {
    /// Whether `err` is news (and remembers it).
    pub(crate) fn new_failure(&mut self, err: &dyn std::fmt::Display) -> bool {
        let text = err.to_string();
        let news = self.failing.as_deref() != Some(text.as_str());
        self.failing = Some(text);
        news
    }

    /// Re-reads the policy file into `policy`, reporting a new failure
    /// once and a recovery once.
    pub fn policy_file(&mut self, source: &FileSource, policy: &PolicyStore, metrics: &Metrics) {
        match source.reload(policy) {
            Ok(Applied::Unchanged) => {
                if self.failing.take().is_some() {
                    tracing::info!(path = %source.path().display(), "policy file is back to the policy in force");
                }
            }
            Ok(Applied::Loaded(generation)) => {
                self.failing = None;
                tracing::info!(path = %source.path().display(), generation, "policy loaded");
            }
            Err(err) => {
                if self.new_failure(&err) {
                    // An invalid text is counted by the store (once per
                    // text); a file that cannot be read is counted here,
                    // once per failure.
                    if matches!(err, LoadPolicyError::Read(_)) {
                        metrics.policy_rejected();
                    }
                    tracing::error!(error = %err, "policy not loaded; the last valid policy stays in force");
                }
            }
        }
    }
}
