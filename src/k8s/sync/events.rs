//! Events `sync` posts (events.k8s.io/v1, through kube's Recorder): each
//! names secrets, namespaces, rules and hosts, never a secret's content.
//! Only the leader posts. Repeats of the same warning about the same
//! object are posted once, until it changes.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::k8s::configmap::REPORTER;

/// Longest an Event post may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// kube-apiserver's limit on a note.
const MAX_NOTE_BYTES: usize = 1024;

/// What an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Regarding {
    /// API version of the object (`v1`).
    pub api_version: &'static str,
    /// Kind (`Secret`, `ConfigMap`).
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid when known.
    pub uid: Option<String>,
}

impl Regarding {
    fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.api_version.into()),
            kind: Some(self.kind.into()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.name.clone()),
            uid: self.uid.clone(),
            ..ObjectReference::default()
        }
    }
}

/// Posts Events, once per distinct (object, reason, note).
pub struct Events {
    recorder: Recorder,
    posted: BTreeSet<(Regarding, &'static str, String)>,
}

impl Events {
    /// Events reported as `pull-secret-injector`, instance `instance`.
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Events {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: REPORTER.into(),
                    instance,
                },
            ),
            posted: BTreeSet::new(),
        }
    }

    /// Posts a Warning, unless the same one was posted already.
    pub async fn warn(&mut self, regarding: &Regarding, reason: &'static str, note: String) {
        self.post(regarding, reason, note, EventType::Warning).await;
    }

    /// Posts a Normal event, unless the same one was posted already.
    pub async fn normal(&mut self, regarding: &Regarding, reason: &'static str, note: String) {
        self.post(regarding, reason, note, EventType::Normal).await;
    }

    async fn post(
        &mut self,
        regarding: &Regarding,
        reason: &'static str,
        note: String,
        type_: EventType,
    ) {
        let key = (regarding.clone(), reason, note);
        if self.posted.contains(&key) {
            return;
        }
        let note = truncate(&key.2);
        // kube's Recorder folds Events with the same reason and action into
        // a series that keeps the first note; a different note (another
        // source problem) must show, so the action carries its digest.
        let digest = {
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&note, &mut h);
            std::hash::Hasher::finish(&h) as u32
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: format!("{reason}-{digest:08x}"),
            secondary: None,
        };
        let reference = regarding.reference();
        match tokio::time::timeout(EVENT_TIMEOUT, self.recorder.publish(&event, &reference)).await {
            Ok(Ok(())) => {
                self.posted.insert(key);
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, reason, "cannot post an Event");
            }
            Err(_) => {
                tracing::warn!(timeout = ?EVENT_TIMEOUT, reason, "posting an Event timed out");
            }
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
