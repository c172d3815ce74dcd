#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The kube edges against an in-process fake API server: the policy
//! ConfigMap watch (edits, an invalid edit, a delete, 410 Gone, a dropped
//! stream, Events, readiness) and namespace labels for selectors.

mod fake_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use fake_api::FakeApi;
use http_body_util::BodyExt as _;
use pull_secret_injector::http::{self, AppState, NamespaceLabels as _};
use pull_secret_injector::namespaces::NamespaceCache;
use pull_secret_injector::sources::PolicyStore;
use pull_secret_injector::telemetry::Metrics;
use pull_secret_injector::{certs, configmap, tls};
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt as _;

const V1: &str = "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n";
const V2: &str = "rules:\n- name: ghcr\n  registries: [ghcr.io]\n  secrets: [ghcr]\n";
const V3: &str = "rules:\n- name: quay\n  registries: [quay.io]\n  secrets: [quay]\n";
const V4: &str =
    "rules:\n- name: ecr\n  registries: [\"*.dkr.ecr.*.amazonaws.com\"]\n  secrets: [ecr]\n";
const BAD: &str = "rules:\n- name: hub\n  registries: [\"https://docker.io\"]\n  secrets: []\n";

/// Waits for a condition the watch will make true, failing after 20 s.
/// (Polling with a deadline, not a fixed sleep: it returns as soon as the
/// condition holds.)
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn generation(store: &PolicyStore) -> Option<u64> {
    store.current().map(|c| c.generation)
}

fn events_with(fake: &FakeApi, reason: &str) -> Vec<Value> {
    fake.events()
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

fn state_with_certs(store: Arc<PolicyStore>) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = certs::CertFiles::in_dir(dir.path());
    certs::write_set(&files, &certs::dev_hosts()).unwrap();
    let mut state = AppState::new(store, Arc::new(Metrics::new()));
    state.certs = Some(Arc::new(
        tls::CertStore::load(&files.cert, &files.key).unwrap(),
    ));
    (state, dir)
}

async fn get_status(router: &axum::Router, path: &str) -> u16 {
    let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
    router.clone().oneshot(req).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn configmap_policy_follows_edits_and_keeps_the_last_good_one() {
    let fake = FakeApi::start().await;
    let store = Arc::new(PolicyStore::default());
    let (state, _dir) = state_with_certs(store.clone());
    let router = http::router(Arc::new(state), http::HttpLimits::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(configmap::watch(
        fake.client(),
        "ops".into(),
        "policy".into(),
        store.clone(),
        stop_rx,
    ));

    // No ConfigMap yet: not ready.
    eventually("the watcher lists", || fake.counts().0 >= 1).await;
    assert_eq!(get_status(&router, "/readyz").await, 503);

    // Created: loaded, ready, and an Event says so.
    fake.put_configmap("ops", "policy", &[("policy.yaml", V1)]);
    eventually("generation 1", || generation(&store) == Some(1)).await;
    assert_eq!(get_status(&router, "/readyz").await, 200);
    eventually("PolicyLoaded event", || {
        events_with(&fake, "PolicyLoaded").len() == 1
    })
    .await;
    let loaded = &events_with(&fake, "PolicyLoaded")[0];
    assert_eq!(loaded["type"], "Normal");
    assert_eq!(loaded["regarding"]["kind"], "ConfigMap");
    assert_eq!(loaded["regarding"]["name"], "policy");
    assert_eq!(loaded["regarding"]["namespace"], "ops");

    // A valid edit is in force right away.
    fake.put_configmap("ops", "policy", &[("policy.yaml", V2)]);
    eventually("generation 2", || generation(&store) == Some(2)).await;
    assert_eq!(store.current().unwrap().policy.rules()[0].name(), "ghcr");

    // An invalid edit changes nothing and is reported with every error.
    fake.put_configmap("ops", "policy", &[("policy.yaml", BAD)]);
    eventually("PolicyRejected event", || {
        !events_with(&fake, "PolicyRejected").is_empty()
    })
    .await;
    let rejected = &events_with(&fake, "PolicyRejected")[0];
    assert_eq!(rejected["type"], "Warning");
    let note = rejected["note"].as_str().unwrap();
    assert!(
        note.contains("3:") && note.contains("rules[0].registries[0]"),
        "{note}"
    );
    assert!(note.contains("rules[0].secrets"), "{note}");
    assert_eq!(generation(&store), Some(2));
    assert_eq!(get_status(&router, "/readyz").await, 200);

    // A dropped watch stream: the watcher resumes and sees the next edit.
    let watches = fake.counts().1;
    fake.drop_watches();
    eventually("a new watch", || fake.counts().1 > watches).await;
    fake.put_configmap("ops", "policy", &[("policy.yaml", V3)]);
    eventually("generation 3", || generation(&store) == Some(3)).await;

    // 410 Gone: the watcher re-lists and carries on.
    let lists = fake.counts().0;
    fake.expire_configmap_watch();
    eventually("a re-list after 410", || fake.counts().0 > lists).await;
    fake.put_configmap("ops", "policy", &[("policy.yaml", V4)]);
    eventually("generation 4", || generation(&store) == Some(4)).await;

    // Deleted: the last policy stays in force and readiness holds.
    fake.delete_configmap("policy");
    eventually("delete reported", || {
        events_with(&fake, "PolicyRejected").iter().any(|e| {
            e["note"]
                .as_str()
                .unwrap_or("")
                .contains("ConfigMap deleted")
        })
    })
    .await;
    assert_eq!(generation(&store), Some(4));
    assert_eq!(get_status(&router, "/readyz").await, 200);

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

fn pod_review(namespace: &str, image: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "11111111-2222-3333-4444-555555555555",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": {"metadata": {"generateName": "x-"}, "spec": {"containers": [{"name": "a", "image": image}]}}
        }
    }))
    .unwrap()
}

async fn mutate(router: &axum::Router, body: Vec<u8>) -> Value {
    let req = axum::http::Request::post("/mutate")
        .body(Body::from(body))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn namespace_selectors_use_the_cache_then_a_direct_read() {
    let fake = FakeApi::start().await;
    fake.put_namespace("team-a", &[("registry-access", "ghcr")]);
    fake.put_namespace("team-b", &[]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (cache, task) = NamespaceCache::start(fake.client(), Duration::from_secs(2), stop_rx);
    let task = tokio::spawn(task);

    eventually("the reflector lists namespaces", || {
        cache.cached("team-a").is_some()
    })
    .await;
    assert_eq!(
        cache
            .cached("team-a")
            .unwrap()
            .get("registry-access")
            .unwrap(),
        "ghcr"
    );
    // A relabel arrives through the watch.
    fake.put_namespace("team-b", &[("registry-access", "ghcr")]);
    eventually("relabel seen", || {
        cache
            .cached("team-b")
            .is_some_and(|l| l.contains_key("registry-access"))
    })
    .await;
    assert!(
        fake.namespace_gets().is_empty(),
        "cache hits need no API call"
    );

    // A namespace the watch has not delivered yet is read directly.
    fake.put_namespace_silently("brand-new", &[("registry-access", "ghcr")]);
    let labels = cache.labels("brand-new").await.unwrap();
    assert_eq!(labels.get("registry-access").unwrap(), "ghcr");
    assert!(cache.labels("missing").await.is_none());
    assert_eq!(fake.namespace_gets(), ["brand-new", "missing"]);

    // End to end through the router.
    let store = Arc::new(PolicyStore::default());
    store
        .apply(
            "rules:\n- name: sel\n  registries: [ghcr.io]\n  secrets: [ghcr-pull]\n  namespaces:\n    selector:\n      matchLabels: {registry-access: ghcr}\n",
            "test",
        )
        .unwrap();
    let (mut state, _dir) = state_with_certs(store);
    state.namespaces = Some(cache.clone());
    let router = http::router(Arc::new(state), http::HttpLimits::default());
    for (namespace, patched) in [("team-a", true), ("brand-new", true), ("missing", false)] {
        let answer = mutate(&router, pod_review(namespace, "ghcr.io/acme/app:1")).await;
        assert_eq!(
            answer["response"]["patchType"] == "JSONPatch",
            patched,
            "{namespace}: {answer}"
        );
        if !patched {
            let warning = answer["response"]["warnings"][0].as_str().unwrap();
            assert!(
                warning.contains("labels of namespace \"missing\" are unknown"),
                "{warning}"
            );
        }
    }

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
