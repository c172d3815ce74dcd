//! The policy from a ConfigMap, watched live through the Kubernetes API.
//!
//! One ConfigMap (`--policy-configmap NAMESPACE/NAME`, key `policy.yaml`) is
//! watched with kube's watcher, which resumes after dropped connections;
//! after `410 Gone` it lists again at once, and other errors are retried
//! within a few seconds ([`super::retry`]). A valid edit is in
//! force for the next request; an invalid edit, a missing key or a deleted
//! ConfigMap keep the last valid policy. Each outcome is logged and reported
//! as an Event on the ConfigMap (`PolicyLoaded` / `PolicyRejected`), so
//! `kubectl describe configmap` shows why an edit did not take.

use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Resource as _};
use tokio::sync::watch;

use super::retry::{Recovery, Retry};
use crate::runtime::files::Digest;
use crate::runtime::policy_store::{Applied, LoadPolicyError, PolicyStore};

/// The ConfigMap key that holds the policy.
pub const POLICY_KEY: &str = "policy.yaml";
/// The name events are reported under.
pub const REPORTER: &str = "pull-secret-injector";
/// kube-apiserver limits an Event's note to 1 kB.
const MAX_NOTE_BYTES: usize = 1024;
/// Longest the watch waits for an Event to be posted.
const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What one watched change led to, as reported on the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `PolicyLoaded` or `PolicyRejected`.
    pub reason: &'static str,
    /// Human-readable detail (the errors, for a rejection).
    pub note: String,
    /// Warning or normal.
    pub warning: bool,
}

/// The state of one watched ConfigMap.
pub struct ConfigMapWatch {
    namespace: String,
    name: String,
    store: Arc<PolicyStore>,
    seen_in_listing: bool,
    present: bool,
    /// The last report was a rejection, so a return to the text in force
    /// must be reported too (or the ConfigMap's last Event stays a
    /// rejection).
    rejected: bool,
}

impl ConfigMapWatch {
    /// Watch state for `namespace/name`, feeding `store`.
    pub fn new(namespace: &str, name: &str, store: Arc<PolicyStore>) -> Self {
        ConfigMapWatch {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            store,
            seen_in_listing: false,
            present: false,
            rejected: false,
        }
    }

    fn origin(&self) -> String {
        format!("configmap {}/{}", self.namespace, self.name)
    }

    /// Applies one watcher event to the store; returns what to report.
    pub fn handle(&mut self, event: &watcher::Event<ConfigMap>) -> Option<Report> {
        let report = self.report(event);
        if let Some(r) = &report {
            self.rejected = r.warning;
        }
        report
    }

    fn report(&mut self, event: &watcher::Event<ConfigMap>) -> Option<Report> {
        match event {
            watcher::Event::Init => {
                self.seen_in_listing = false;
                None
            }
            watcher::Event::InitApply(cm) | watcher::Event::Apply(cm) => {
                self.seen_in_listing = true;
                self.present = true;
                self.apply(cm)
            }
            watcher::Event::InitDone => {
                if self.seen_in_listing {
                    return None;
                }
                let was_present = std::mem::replace(&mut self.present, false);
                tracing::warn!(configmap = %self.origin(), loaded = self.store.is_loaded(), "policy ConfigMap not found; waiting for it");
                was_present.then(|| self.deleted())
            }
            watcher::Event::Delete(_) => {
                self.present = false;
                Some(self.deleted())
            }
        }
    }

    fn deleted(&self) -> Report {
        let kept = match self.store.current() {
            Some(current) => format!("policy generation {} stays in force", current.generation),
            None => "no policy is loaded, so the webhook is not ready".to_owned(),
        };
        self.store.source_unusable();
        tracing::error!(configmap = %self.origin(), "policy ConfigMap deleted; {kept}");
        Report {
            reason: "PolicyRejected",
            note: format!("ConfigMap deleted; {kept}"),
            warning: true,
        }
    }

    fn apply(&self, cm: &ConfigMap) -> Option<Report> {
        let Some(text) = cm.data.as_ref().and_then(|d| d.get(POLICY_KEY)) else {
            let keys: Vec<&str> = cm
                .data
                .iter()
                .flat_map(|d| d.keys())
                .map(String::as_str)
                .collect();
            let note = format!(
                "ConfigMap has no key {POLICY_KEY:?} (keys: [{}]); the last valid policy stays in force",
                keys.join(", ")
            );
            self.store.source_unusable();
            tracing::error!(configmap = %self.origin(), "{note}");
            return Some(Report {
                reason: "PolicyRejected",
                note,
                warning: true,
            });
        };
        match self.store.apply(text, &self.origin()) {
            Ok(Applied::Unchanged) if self.rejected => {
                let generation = self.store.current().map_or(0, |c| c.generation);
                tracing::info!(configmap = %self.origin(), generation, "policy ConfigMap is back to the policy in force");
                Some(Report {
                    reason: "PolicyLoaded",
                    note: format!(
                        "ConfigMap holds the policy in force again (generation {generation})"
                    ),
                    warning: false,
                })
            }
            Ok(Applied::Unchanged) => None,
            Ok(Applied::Loaded(generation)) => {
                let rules = self
                    .store
                    .current()
                    .map(|c| c.policy.rules().len())
                    .unwrap_or(0);
                tracing::info!(configmap = %self.origin(), generation, rules, "policy loaded");
                Some(Report {
                    reason: "PolicyLoaded",
                    note: format!("policy generation {generation} loaded with {rules} rule(s)"),
                    warning: false,
                })
            }
            Err(err) => {
                tracing::error!(error = %err, "policy edit rejected; the last valid policy stays in force");
                let errors = match &err {
                    LoadPolicyError::Invalid { errors, .. } => errors.to_string(),
                    other => other.to_string(),
                };
                Some(Report {
                    reason: "PolicyRejected",
                    note: truncate(&format!(
                        "invalid {POLICY_KEY}; the last valid policy stays in force:\n{errors}"
                    )),
                    warning: true,
                })
            }
        }
    }

    /// A reference to the ConfigMap for events (`uid` is kept when known).
    fn reference(&self, cm: Option<&ConfigMap>) -> ObjectReference {
        match cm {
            Some(cm) => cm.object_ref(&()),
            None => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
                namespace: Some(self.namespace.clone()),
                name: Some(self.name.clone()),
                ..ObjectReference::default()
            },
        }
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_NOTE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_NOTE_BYTES - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The watch of one policy ConfigMap: what [`Watch::run`] needs.
#[derive(Clone)]
pub struct Watch {
    /// The API client.
    pub client: Client,
    /// The ConfigMap's namespace.
    pub namespace: String,
    /// The ConfigMap's name.
    pub name: String,
    /// Where accepted policies go.
    pub store: Arc<PolicyStore>,
    /// This replica's name, reported as the Events' instance.
    pub instance: Option<String>,
}

impl Watch {
    /// Watches the ConfigMap until `stop` turns true, feeding the store and
    /// posting an Event on the ConfigMap for every accepted or rejected
    /// change. API errors are retried as [`super::retry`] says; parsing
    /// and compiling run on the blocking pool. Returns early (an error, for
    /// the supervisor to restart it) only if the watch stream ends or a
    /// compile panics.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let Watch {
            client,
            namespace,
            name,
            store,
            instance,
        } = self;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: REPORTER.into(),
                instance,
            },
        );
        let mut state = ConfigMapWatch::new(&namespace, &name, store);
        let start = || watcher(api.clone(), config.clone()).boxed();
        let mut events = start();
        let mut retry = Retry::default();
        let mut last_object: Option<ConfigMap> = None;
        loop {
            let item = tokio::select! {
                item = events.next() => item,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            let event = match item {
                Some(Ok(event)) => event,
                Some(Err(err)) => {
                    match retry.after(&err) {
                        Recovery::Relist => {
                            tracing::info!(configmap = %state.origin(), error = %err, "policy ConfigMap watch expired; listing again now");
                            events = start();
                        }
                        Recovery::Wait(wait) => {
                            tracing::warn!(configmap = %state.origin(), error = %err, retry_in = ?wait, "policy ConfigMap watch failed; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(wait) => {}
                                _ = stop.wait_for(|s| *s) => return Ok(()),
                            }
                        }
                    }
                    continue;
                }
                None => anyhow::bail!("the policy ConfigMap watch ended"),
            };
            retry.answered_by(&event);
            if let watcher::Event::Apply(cm)
            | watcher::Event::InitApply(cm)
            | watcher::Event::Delete(cm) = &event
            {
                last_object = Some(cm.clone());
            }
            let (returned, report) = tokio::task::spawn_blocking(move || {
                let report = state.handle(&event);
                (state, report)
            })
            .await?;
            state = returned;
            if let Some(report) = report {
                let reference = state.reference(last_object.as_ref());
                publish(&recorder, &report, &reference).await;
            }
        }
    }
}

async fn publish(recorder: &Recorder, report: &Report, reference: &ObjectReference) {
    // kube's Recorder folds events with the same reason and action into a
    // series and keeps the first note. A different note (new errors, a
    // delete) must show up in `kubectl describe`, so the action carries a
    // digest of the note: repeats still fold, changes do not.
    let digest = Digest::of(&[report.note.as_bytes()]).short();
    let event = Event {
        type_: if report.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: report.reason.into(),
        note: Some(report.note.clone()),
        action: format!("LoadPolicy-{digest:08x}"),
        secondary: None,
    };
    // The policy is already in force (or rejected) by now; a slow API
    // server must not hold up the next edit for kube's long read timeout.
    match tokio::time::timeout(EVENT_TIMEOUT, recorder.publish(&event, reference)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %err, reason = report.reason, "cannot post an Event on the policy ConfigMap");
        }
        Err(_) => {
            tracing::warn!(timeout = ?EVENT_TIMEOUT, reason = report.reason, "posting an Event on the policy ConfigMap timed out");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cm(text: &str) -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([(POLICY_KEY.to_owned(), text.to_owned())])),
            ..ConfigMap::default()
        }
    }

    const GOOD: &str = "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n";

    #[test]
    fn edits_deletes_and_relists_are_reported() {
        let store = Arc::new(PolicyStore::default());
        let mut w = ConfigMapWatch::new("ops", "policy", store.clone());
        assert_eq!(w.handle(&watcher::Event::Init), None);
        let r = w
            .handle(&watcher::Event::InitApply(cm(GOOD)))
            .expect("report");
        assert_eq!(r.reason, "PolicyLoaded");
        assert_eq!(w.handle(&watcher::Event::InitDone), None);
        // The same content again (a relist) is quiet.
        assert_eq!(w.handle(&watcher::Event::Apply(cm(GOOD))), None);

        let r = w
            .handle(&watcher::Event::Apply(cm("rules:\n- name: Bad\n")))
            .expect("report");
        assert_eq!(r.reason, "PolicyRejected");
        assert!(r.warning);
        assert!(r.note.contains("rules[0]"), "{}", r.note);
        assert_eq!(store.current().expect("kept").generation, 1);

        let r = w
            .handle(&watcher::Event::Apply(ConfigMap::default()))
            .expect("report");
        assert!(r.note.contains("no key \"policy.yaml\""), "{}", r.note);

        // Back to the text in force after a rejection: said so, once.
        let r = w.handle(&watcher::Event::Apply(cm(GOOD))).expect("report");
        assert_eq!(r.reason, "PolicyLoaded");
        assert!(
            r.note.contains("in force again (generation 1)"),
            "{}",
            r.note
        );
        assert_eq!(w.handle(&watcher::Event::Apply(cm(GOOD))), None);

        let r = w.handle(&watcher::Event::Delete(cm(GOOD))).expect("report");
        assert!(r.note.contains("generation 1 stays in force"), "{}", r.note);
        assert!(store.is_loaded());

        // Gone across a relist counts as a delete too, but only once.
        w.handle(&watcher::Event::Apply(cm(GOOD)));
        w.handle(&watcher::Event::Init);
        let r = w.handle(&watcher::Event::InitDone).expect("report");
        assert!(r.note.starts_with("ConfigMap deleted"));
        w.handle(&watcher::Event::Init);
        assert_eq!(w.handle(&watcher::Event::InitDone), None);
    }

    #[test]
    fn long_notes_are_cut_at_a_char_boundary() {
        let text = "é".repeat(2000);
        let cut = truncate(&text);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with("..."));
    }
}
