#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The kube edges against an in-process fake API server: the policy
//! ConfigMap watch (edits, an invalid edit, a delete, 410 Gone, a dropped
//! stream, Events, readiness) and namespace labels for selectors.

mod fake_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use fake_api::{EventVerb, FakeApi};
use http_body_util::BodyExt as _;
use pull_secret_injector::k8s::configmap;
use pull_secret_injector::k8s::namespaces::NamespaceCache;
use pull_secret_injector::runtime::namespace_labels::NamespaceLabels as _;
use pull_secret_injector::runtime::policy_store::PolicyStore;
use pull_secret_injector::runtime::telemetry::Metrics;
use pull_secret_injector::webhook::http::{self, AppState};
use pull_secret_injector::webhook::{certs, tls};
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
/// condition holds.) Fails at once when the fake API has refused a request
/// (an RBAC denial, a full-object Namespace request, an invalid Event): the
/// webhook would be stuck against a real cluster, so waiting is pointless.
async fn eventually(fake: &FakeApi, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        fake.assert_clean();
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fake.assert_clean();
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
    // The real names from the manifests: the fake authorizes with the
    // shipped Role, which allows the one ConfigMap by name.
    let ns = fake.manifests().namespace.clone();
    let name = fake.manifests().policy_configmap.clone();
    assert_eq!(
        (ns.as_str(), name.as_str()),
        ("pull-secret-injector", "pull-secret-injector-policy")
    );
    // Another ConfigMap in the namespace, and one of the same name in
    // another namespace: the watch must see neither.
    fake.put_configmap(&ns, "unrelated", &[("policy.yaml", BAD)]);
    fake.put_configmap("default", &name, &[("policy.yaml", BAD)]);

    let store = Arc::new(PolicyStore::default());
    let (state, _dir) = state_with_certs(store.clone());
    let router = http::router(Arc::new(state), http::HttpLimits::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let watch = configmap::Watch {
        client: fake.client(),
        namespace: ns.clone(),
        name: name.clone(),
        store: store.clone(),
        instance: None,
    };
    let task = tokio::spawn(watch.run(stop_rx));

    // No ConfigMap yet: not ready.
    eventually(&fake, "the watcher lists", || fake.counts().0 >= 1).await;
    assert_eq!(get_status(&router, "/readyz").await, 503);

    // Created: loaded, ready, and an Event says so.
    fake.put_configmap(&ns, &name, &[("policy.yaml", V1)]);
    eventually(&fake, "generation 1", || generation(&store) == Some(1)).await;
    assert_eq!(get_status(&router, "/readyz").await, 200);
    eventually(&fake, "PolicyLoaded event", || {
        events_with(&fake, "PolicyLoaded").len() == 1
    })
    .await;
    let loaded = &events_with(&fake, "PolicyLoaded")[0];
    assert_eq!(loaded["type"], "Normal");
    assert_eq!(loaded["reportingController"], "pull-secret-injector");
    assert_eq!(loaded["metadata"]["namespace"], ns.as_str());
    assert_eq!(loaded["regarding"]["kind"], "ConfigMap");
    assert_eq!(loaded["regarding"]["name"], name.as_str());
    assert_eq!(loaded["regarding"]["namespace"], ns.as_str());

    // A valid edit is in force right away.
    fake.put_configmap(&ns, &name, &[("policy.yaml", V2)]);
    eventually(&fake, "generation 2", || generation(&store) == Some(2)).await;
    assert_eq!(store.current().unwrap().policy.rules()[0].name(), "ghcr");

    // An invalid edit changes nothing and is reported with every error.
    fake.put_configmap(&ns, &name, &[("policy.yaml", BAD)]);
    eventually(&fake, "PolicyRejected event", || {
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

    // 410 Gone: the re-list delivers the same invalid text, which is
    // validated and reported again; the Recorder folds the identical report
    // into a series, a merge patch of the first Event.
    let rejected_name = rejected["metadata"]["name"].as_str().unwrap().to_owned();
    let lists = fake.counts().0;
    fake.expire_configmap_watch();
    eventually(&fake, "a re-list after 410", || fake.counts().0 > lists).await;
    eventually(&fake, "the repeated rejection patched", || {
        fake.event_writes()
            .iter()
            .any(|w| w.verb == EventVerb::Patch)
    })
    .await;
    let writes: Vec<(EventVerb, String)> = fake
        .event_writes()
        .into_iter()
        .filter(|w| w.name == rejected_name)
        .map(|w| (w.verb, w.namespace))
        .collect();
    assert_eq!(
        writes,
        [
            (EventVerb::Create, ns.clone()),
            (EventVerb::Patch, ns.clone())
        ]
    );
    let rejections = events_with(&fake, "PolicyRejected");
    assert_eq!(rejections.len(), 1, "{rejections:#?}");
    assert_eq!(rejections[0]["series"]["count"], 2);
    assert_eq!(rejections[0]["note"], note);
    assert_eq!(generation(&store), Some(2));

    // A dropped watch stream: the watcher resumes and sees the next edit.
    let watches = fake.counts().1;
    fake.drop_watches();
    eventually(&fake, "a new watch", || fake.counts().1 > watches).await;
    fake.put_configmap(&ns, &name, &[("policy.yaml", V3)]);
    eventually(&fake, "generation 3", || generation(&store) == Some(3)).await;

    // 410 Gone again, with a valid policy: the watcher re-lists (quietly:
    // the text is unchanged) and carries on.
    let lists = fake.counts().0;
    fake.expire_configmap_watch();
    eventually(&fake, "a re-list after 410", || fake.counts().0 > lists).await;
    fake.put_configmap(&ns, &name, &[("policy.yaml", V4)]);
    eventually(&fake, "generation 4", || generation(&store) == Some(4)).await;

    // Deleted: the last policy stays in force and readiness holds.
    fake.delete_configmap(&ns, &name);
    eventually(&fake, "delete reported", || {
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

    // The other ConfigMaps were never loaded, nor reported on.
    assert!(
        fake.events()
            .iter()
            .all(|e| e["regarding"]["name"] == name.as_str()
                && e["regarding"]["namespace"] == ns.as_str()),
        "{:#?}",
        fake.events()
    );

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    fake.assert_clean();
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
    let cache = NamespaceCache::new(fake.client(), Duration::from_secs(2));
    let task = tokio::spawn(cache.clone().run(stop_rx));

    eventually(&fake, "the reflector lists namespaces", || {
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
    eventually(&fake, "relabel seen", || {
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
        .unwrap()
        .unwrap();
    fake.assert_clean();
}

/// The message of a 403 Forbidden answer.
fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {
            assert_eq!(status.reason, "Forbidden");
            status.message
        }
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

/// The HTTP code of an API error.
fn error_code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The fake itself: it refuses what a cluster with the shipped RBAC would,
/// answers metadata only when asked to, and checks Events.
#[tokio::test]
async fn the_fake_api_refuses_what_a_cluster_would() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use k8s_openapi::api::events::v1::Event;
    use kube::Api;
    use kube::api::{ListParams, Patch, PatchParams, PostParams};
    use kube::core::PartialObjectMeta;

    let fake = FakeApi::start().await;
    let ns = fake.manifests().namespace.clone();
    let name = fake.manifests().policy_configmap.clone();
    let user = format!("system:serviceaccount:{ns}:pull-secret-injector");
    assert_eq!(fake.manifests().rbac.user, user);
    fake.put_configmap(&ns, &name, &[("policy.yaml", V1)]);
    fake.put_configmap(&ns, "other", &[("policy.yaml", V2)]);
    fake.put_configmap("default", &name, &[("policy.yaml", V3)]);
    fake.put_namespace("team-a", &[("registry-access", "ghcr")]);
    let client = fake.client();

    // ConfigMaps: the policy ConfigMap only, selected by name, in its
    // namespace, and the selector filters the answer.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
    let listed = configmaps.list(&by_name).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data.as_ref().unwrap()["policy.yaml"], V1);
    fake.assert_clean();

    assert_eq!(
        forbidden(configmaps.list(&ListParams::default()).await),
        format!(
            "configmaps is forbidden: User \"{user}\" cannot list resource \"configmaps\" \
             in API group \"\" in the namespace \"{ns}\""
        )
    );
    let other = ListParams::default().fields("metadata.name=other");
    assert!(
        forbidden(configmaps.list(&other).await).starts_with("configmaps \"other\" is forbidden")
    );
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert!(forbidden(elsewhere.list(&by_name).await).ends_with("in the namespace \"default\""));
    assert_eq!(fake.denials().len(), 3);

    // Namespaces: full objects unless metadata is asked for, and then
    // recorded.
    let full: Api<Namespace> = Api::all(client.clone());
    let listed = full.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.types.kind, "NamespaceList");
    let status = listed.items[0].status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Active"));
    assert!(listed.items[0].metadata.managed_fields.is_some());
    assert_eq!(fake.non_metadata_requests().len(), 1);
    let meta: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let listed = meta.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.types.kind, "PartialObjectMetadataList");
    let one = meta.get("team-a").await.unwrap();
    assert_eq!(one.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(one.metadata.labels.unwrap()["registry-access"], "ghcr");
    assert_eq!(fake.non_metadata_requests().len(), 1);

    // Events: valid ones only, in the namespace the Role covers; a patch
    // needs an Event to patch.
    let event = |controller: &str, namespace: &str| -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": "policy.1", "namespace": namespace},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "action": "LoadPolicy", "reason": "PolicyLoaded", "type": "Normal",
            "reportingController": controller, "reportingInstance": "pod-1",
            "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "namespace": namespace},
        }))
        .unwrap()
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    let invalid = events.create(&pp, &event("someone-else", &ns)).await;
    assert_eq!(error_code(invalid), 422);
    let (patch, patch_params) = (Patch::Merge(json!({})), PatchParams::default());
    let missing = events.patch("nope", &patch_params, &patch).await;
    assert_eq!(error_code(missing), 404);
    assert_eq!(fake.problems().len(), 2, "{:#?}", fake.problems());
    let elsewhere: Api<Event> = Api::namespaced(client.clone(), "default");
    forbidden(
        elsewhere
            .create(&pp, &event("pull-secret-injector", "default"))
            .await,
    );
    assert_eq!(fake.denials().len(), 4);
    events
        .create(&pp, &event("pull-secret-injector", &ns))
        .await
        .unwrap();
    let writes = fake.event_writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].verb, EventVerb::Create);
}
