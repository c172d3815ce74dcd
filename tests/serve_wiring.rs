#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `serve` as production wires it — build → bind → run, with the policy
//! ConfigMap watch and the namespace cache under supervision — against the
//! in-process fake API server, answering kube-apiserver-like clients over a
//! real TLS socket on port 0.

mod common;
mod fake_api;

use std::time::{Duration, Instant};

use common::{TestLimits, TestServer};
use fake_api::FakeApi;
use pull_secret_injector::cmd::args::PolicySource;
use pull_secret_injector::cmd::serve::KubeAccess;
use pull_secret_injector::webhook::certs;
use serde_json::{Value, json};

const SELECTOR_POLICY: &str = "rules:\n- name: sel\n  registries: [ghcr.io]\n  secrets: [ghcr-pull]\n  namespaces:\n    selector:\n      matchLabels: {registry-access: ghcr}\n";
const HUB_POLICY: &str = "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n";

fn pod_review(namespace: &str, image: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "x",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"generateName": "app-", "namespace": namespace},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

async fn eventually(fake: &FakeApi, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        fake.assert_clean();
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start(fake: &FakeApi) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let files = certs::CertFiles::in_dir(dir.path());
    let ca_pem = certs::write_set(&files, &certs::dev_hosts()).unwrap();
    let mut config = common::serve_config(
        &files.cert,
        &files.key,
        PolicySource::ConfigMap {
            namespace: fake.manifests().namespace.clone(),
            name: fake.manifests().policy_configmap.clone(),
        },
        TestLimits::default(),
    );
    config.pod_name = Some("webhook-0".to_owned());
    config.kube = KubeAccess::Client(fake.client());
    TestServer::start_config(config, dir, ca_pem).await
}

#[tokio::test]
async fn serve_follows_the_configmap_and_namespace_labels_over_tls() {
    let fake = FakeApi::start().await;
    let ns = fake.manifests().namespace.clone();
    let name = fake.manifests().policy_configmap.clone();
    fake.put_namespace("team-a", &[("registry-access", "ghcr")]);
    fake.put_namespace("team-b", &[]);
    let server = start(&fake).await;
    let mut client = server.client().await;

    // No ConfigMap yet: alive, not ready.
    assert_eq!(client.request("GET", "/healthz", vec![]).await.0, 200);
    assert_eq!(client.request("GET", "/readyz", vec![]).await.0, 503);

    // The ConfigMap appears: the supervised watch loads it, readiness follows.
    fake.put_configmap(&ns, &name, &[("policy.yaml", SELECTOR_POLICY)]);
    eventually(&fake, "ready", async || {
        client.request("GET", "/readyz", vec![]).await.0 == 200
    })
    .await;

    // The supervised namespace cache feeds the selector.
    let labelled = client
        .review(pod_review("team-a", "ghcr.io/acme/app:1"))
        .await;
    assert!(labelled.patch.is_some(), "{:?}", labelled.response);
    let unlabelled = client
        .review(pod_review("team-b", "ghcr.io/acme/app:1"))
        .await;
    assert!(unlabelled.patch.is_none(), "{:?}", unlabelled.response);

    // A relabel through the watch is seen by the next review.
    fake.put_namespace("team-b", &[("registry-access", "ghcr")]);
    eventually(&fake, "relabel applied", async || {
        client
            .review(pod_review("team-b", "ghcr.io/acme/app:1"))
            .await
            .patch
            .is_some()
    })
    .await;

    // A policy edit is in force without a restart.
    fake.put_configmap(&ns, &name, &[("policy.yaml", HUB_POLICY)]);
    eventually(&fake, "edit applied", async || {
        client
            .review(pod_review("team-b", "nginx"))
            .await
            .patch
            .is_some()
    })
    .await;

    // The metrics listener of the same wiring answers.
    let metrics = reqwest_like_get(server.metrics_addr, "/metrics").await;
    assert!(
        metrics.contains("pull_secret_injector_policy_generation 2"),
        "{metrics}"
    );

    // A background task that keeps failing turns the replica unready and
    // /readyz says which and why.
    server
        .state
        .health
        .fail("policy-configmap-watch", "the watch ended".to_owned());
    let (status, body) = client.request("GET", "/readyz", vec![]).await;
    assert_eq!(status, 503);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "policy-configmap-watch keeps failing: the watch ended\n"
    );
    server.state.health.recover("policy-configmap-watch");
    assert_eq!(client.request("GET", "/readyz", vec![]).await.0, 200);

    fake.assert_clean();
    server.stop().await;
}

/// A plain HTTP/1.1 GET over TCP; the metrics listener has no TLS.
async fn reqwest_like_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}
