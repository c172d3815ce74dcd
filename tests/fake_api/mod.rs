//! An in-process fake kube-apiserver for the kube edges: list + watch of
//! one ConfigMap and of Namespaces (metadata), direct GET of a namespace,
//! and events.k8s.io Event creation. The test scripts it: edits, deletes,
//! a `410 Gone` on the next watch, dropped watch streams.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

/// A watch event line as the apiserver streams it.
#[derive(Clone, Debug)]
struct Line {
    resource_version: u64,
    text: String,
}

#[derive(Default)]
struct Kind {
    /// Objects by name.
    objects: BTreeMap<String, Value>,
    /// Every event so far, for replay from a resourceVersion.
    history: Vec<Line>,
    /// Answer the next watch with 410 Gone.
    gone_next: bool,
}

struct Inner {
    resource_version: u64,
    configmaps: Kind,
    namespaces: Kind,
    events: Vec<Value>,
    namespace_gets: Vec<String>,
    lists: usize,
    watches: usize,
}

/// The fake, shared between the server task and the test.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
    configmap_tx: broadcast::Sender<Line>,
    namespace_tx: broadcast::Sender<Line>,
    drop_tx: Arc<watch::Sender<u64>>,
    pub addr: SocketAddr,
}

#[derive(serde::Deserialize)]
struct Params {
    watch: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeApi {
            inner: Arc::new(Mutex::new(Inner {
                resource_version: 100,
                configmaps: Kind::default(),
                namespaces: Kind::default(),
                events: Vec::new(),
                namespace_gets: Vec::new(),
                lists: 0,
                watches: 0,
            })),
            configmap_tx: broadcast::channel(64).0,
            namespace_tx: broadcast::channel(64).0,
            drop_tx: Arc::new(watch::channel(0).0),
            addr,
        };
        let app = Router::new()
            .route("/api/v1/namespaces/{ns}/configmaps", get(configmaps))
            .route("/api/v1/namespaces", get(namespaces))
            .route("/api/v1/namespaces/{name}", get(namespace))
            .route(
                "/apis/events.k8s.io/v1/namespaces/{ns}/events",
                post(create_event),
            )
            .route(
                "/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}",
                patch(patch_event),
            )
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    /// A kube client talking to this fake.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn record(
        &self,
        which: fn(&mut Inner) -> &mut Kind,
        tx: &broadcast::Sender<Line>,
        kind: &str,
        name: &str,
        object: Option<Value>,
    ) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        let rv = inner.resource_version;
        let store = which(&mut inner);
        let (event_type, mut object) = match object {
            Some(object) => {
                let t = if store.objects.contains_key(name) {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                (t, object)
            }
            None => (
                "DELETED",
                store
                    .objects
                    .remove(name)
                    .expect("deleting an existing object"),
            ),
        };
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if event_type != "DELETED" {
            store.objects.insert(name.to_owned(), object.clone());
        }
        let _ = kind;
        let line = Line {
            resource_version: rv,
            text: json!({"type": event_type, "object": object}).to_string(),
        };
        store.history.push(line.clone());
        let _ = tx.send(line);
    }

    /// Creates or replaces the ConfigMap `name` in `namespace`.
    pub fn put_configmap(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let data: BTreeMap<&str, &str> = data.iter().copied().collect();
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
            "data": data,
        });
        self.record(
            |i| &mut i.configmaps,
            &self.configmap_tx,
            "ConfigMap",
            name,
            Some(object),
        );
    }

    pub fn delete_configmap(&self, name: &str) {
        self.record(
            |i| &mut i.configmaps,
            &self.configmap_tx,
            "ConfigMap",
            name,
            None,
        );
    }

    /// Creates or relabels a namespace.
    pub fn put_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let object = json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels},
        });
        self.record(
            |i| &mut i.namespaces,
            &self.namespace_tx,
            "Namespace",
            name,
            Some(object),
        );
    }

    /// Adds a namespace without any watch event (so only a direct GET sees it).
    pub fn put_namespace_silently(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        inner.namespaces.objects.insert(
            name.to_owned(),
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": name, "labels": labels, "resourceVersion": rv}}),
        );
    }

    /// The next ConfigMap watch request is answered with 410 Gone, and the
    /// current streams end so the watcher has to come back.
    pub fn expire_configmap_watch(&self) {
        self.inner.lock().unwrap().configmaps.gone_next = true;
        // Also forget history, as a compacted etcd would.
        self.drop_watches();
    }

    /// Ends every open watch stream (a dropped connection).
    pub fn drop_watches(&self) {
        self.drop_tx.send_modify(|n| *n += 1);
    }

    pub fn events(&self) -> Vec<Value> {
        self.inner.lock().unwrap().events.clone()
    }

    pub fn namespace_gets(&self) -> Vec<String> {
        self.inner.lock().unwrap().namespace_gets.clone()
    }

    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        (inner.lists, inner.watches)
    }
}

fn list_body(kind: &Kind, list_kind: &str, api_version: &str, rv: u64) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": list_kind,
        "metadata": {"resourceVersion": rv.to_string()},
        "items": kind.objects.values().collect::<Vec<_>>(),
    })
}

fn watch_response(
    fake: &FakeApi,
    which: fn(&mut Inner) -> &mut Kind,
    tx: &broadcast::Sender<Line>,
    from: u64,
) -> Response {
    let mut inner = fake.inner.lock().unwrap();
    inner.watches += 1;
    let kind = which(&mut inner);
    if std::mem::take(&mut kind.gone_next) {
        let status = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {from}"), "reason": "Expired", "code": 410}});
        return Response::new(Body::from(format!("{status}\n")));
    }
    let replay: Vec<Line> = kind
        .history
        .iter()
        .filter(|l| l.resource_version > from)
        .cloned()
        .collect();
    let live = tx.subscribe();
    drop(inner);
    let mut dropped = fake.drop_tx.subscribe();
    dropped.mark_unchanged();
    let replay = futures::stream::iter(replay.into_iter().map(|l| l.text));
    let live = futures::stream::unfold(live, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((line.text, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = replay
        .chain(live)
        .map(|text| Ok::<_, Infallible>(format!("{text}\n")))
        .take_until(async move {
            let _ = dropped.changed().await;
        });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn is_watch(params: &Params) -> bool {
    matches!(params.watch.as_deref(), Some("true" | "1"))
}

fn from_rv(params: &Params) -> u64 {
    params
        .resource_version
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn configmaps(
    State(fake): State<FakeApi>,
    Path(_ns): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    if is_watch(&params) {
        return watch_response(
            &fake,
            |i| &mut i.configmaps,
            &fake.configmap_tx,
            from_rv(&params),
        );
    }
    let mut inner = fake.inner.lock().unwrap();
    inner.lists += 1;
    let rv = inner.resource_version;
    axum::Json(list_body(&inner.configmaps, "ConfigMapList", "v1", rv)).into_response()
}

async fn namespaces(State(fake): State<FakeApi>, Query(params): Query<Params>) -> Response {
    if is_watch(&params) {
        return watch_response(
            &fake,
            |i| &mut i.namespaces,
            &fake.namespace_tx,
            from_rv(&params),
        );
    }
    let inner = fake.inner.lock().unwrap();
    let rv = inner.resource_version;
    axum::Json(list_body(
        &inner.namespaces,
        "PartialObjectMetadataList",
        "meta.k8s.io/v1",
        rv,
    ))
    .into_response()
}

async fn namespace(State(fake): State<FakeApi>, Path(name): Path<String>) -> Response {
    let mut inner = fake.inner.lock().unwrap();
    inner.namespace_gets.push(name.clone());
    match inner.namespaces.objects.get(&name) {
        Some(ns) => axum::Json(ns.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("namespaces \"{name}\" not found"), "reason": "NotFound", "code": 404})),
        )
            .into_response(),
    }
}

async fn create_event(
    State(fake): State<FakeApi>,
    Path(_ns): Path<String>,
    axum::Json(event): axum::Json<Value>,
) -> Response {
    fake.inner.lock().unwrap().events.push(event.clone());
    (StatusCode::CREATED, axum::Json(event)).into_response()
}

async fn patch_event(
    State(fake): State<FakeApi>,
    Path((_ns, _name)): Path<(String, String)>,
    axum::Json(event): axum::Json<Value>,
) -> Response {
    fake.inner.lock().unwrap().events.push(event.clone());
    axum::Json(event).into_response()
}
