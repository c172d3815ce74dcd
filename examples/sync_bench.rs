#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Benchmark of `pull-secret-injector sync` against the in-process fake API
//! server (tests/fake_api): NOT a real kube-apiserver with etcd, so only the
//! ratios to the reference client measured in the same run mean something.
//!
//! `cargo run --release --example sync_bench [NAMESPACES]` (default 1000),
//! after `cargo build --release` (it runs target/release/pull-secret-injector,
//! or the binary named by `PSI_BIN`).
//!
//! 1. Reference: a plain client creates NAMESPACES × 2 Secrets, 16 requests
//!    in flight.
//! 2. Cold start: the real binary (`sync --policy-file`, kubeconfig to the
//!    fake) creates the same number of copies; time, ratio, API calls.
//! 3. Rotation: both sources change; time until every copy has the new data.
//! 4. New namespace: time until it has both copies (10 samples).
//! 5. The controller's peak RSS (VmHWM).

#[path = "../tests/fake_api/mod.rs"]
mod fake_api;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fake_api::{FakeApi, Manifests, Resource};
use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

const NS: &str = "pull-secret-injector";
const TYPE: &str = "kubernetes.io/dockerconfigjson";
const POLICY: &str = "secrets:\n- {name: hub, from: pull-secret-injector/hub-source}\n- {name: quay, from: pull-secret-injector/quay-source}\nrules:\n- {name: hub, registries: [docker.io], secrets: [hub]}\n- {name: quay, registries: [quay.io], secrets: [quay]}\n";

fn config(version: u32) -> Vec<u8> {
    format!(r#"{{"auths":{{"docker.io":{{"auth":"dXNlcjpwYXNzd29yZA==","v":{version}}}}}}}"#)
        .into_bytes()
}

/// Polls `check` every `every` (a scan of every Secret holds the fake's
/// lock, so bulk phases poll rarely, not to slow the server they measure).
async fn wait_until(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out: {what}");
        tokio::time::sleep(every).await;
    }
    started.elapsed()
}

const BULK_POLL: Duration = Duration::from_millis(100);

fn calls_summary(fake: &FakeApi) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for c in fake
        .calls()
        .iter()
        .filter(|c| c.resource == Resource::Secrets)
    {
        *by.entry(format!("{}:{}", c.verb, c.code)).or_default() += 1;
    }
    format!("{by:?}")
}

fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let fake = FakeApi::start_with(Manifests::sync()).await;
    fake.use_writable_secrets();
    fake.put_namespace(NS, &[]);
    for i in 0..n {
        fake.put_namespace(&format!("ns-{i:05}"), &[]);
    }
    let client = fake.client();

    // 1. Reference client: 2n creates, 16 in flight.
    let started = Instant::now();
    futures::stream::iter(0..2 * n)
        .map(|i| {
            let api: Api<Secret> = Api::namespaced(client.clone(), &format!("ns-{:05}", i / 2));
            async move {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("reference-{}", i % 2)),
                        ..ObjectMeta::default()
                    },
                    type_: Some(TYPE.into()),
                    data: Some(BTreeMap::from([(
                        ".dockerconfigjson".into(),
                        ByteString(config(0)),
                    )])),
                    ..Secret::default()
                };
                api.create(&PostParams::default(), &secret).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let reference = started.elapsed();
    println!(
        "reference client, {} creates, 16 in flight: {reference:?}",
        2 * n
    );

    // 2. Cold start of the real binary.
    fake.put_secret(
        NS,
        "hub-source",
        TYPE,
        &[(".dockerconfigjson", &config(1))],
        &[],
    );
    fake.put_secret(
        NS,
        "quay-source",
        TYPE,
        &[(".dockerconfigjson", &config(1))],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{}\"}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n", fake.addr),
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    fake.reset_calls();
    // PSI_BIN picks another build (e.g. target/debug/pull-secret-injector).
    let bin = std::env::var("PSI_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/pull-secret-injector"
        )
        .to_owned()
    });
    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args([
            "sync",
            "--namespace",
            NS,
            "--pod-name",
            "bench-0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--policy-file")
        .arg(&policy)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run target/release/pull-secret-injector (cargo build --release first)");
    let managed = |fake: &FakeApi, version: u32| {
        let want = fake_api::b64(&config(version));
        fake.count_secrets(|s| {
            s["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pull-secret-injector"
                && s["data"][".dockerconfigjson"] == want.as_str()
        })
    };
    let cold = wait_until("cold start", Duration::from_secs(300), BULK_POLL, || {
        managed(&fake, 1) == 2 * n
    })
    .await;
    let cold = cold.max(started.elapsed());
    println!(
        "cold start, {} copies: {cold:?} = {:.2}x the reference; Secret calls {}",
        2 * n,
        cold.as_secs_f64() / reference.as_secs_f64(),
        calls_summary(&fake)
    );

    // 3. Rotation of both sources.
    tokio::time::sleep(Duration::from_secs(1)).await;
    fake.reset_calls();
    fake.put_secret(
        NS,
        "hub-source",
        TYPE,
        &[(".dockerconfigjson", &config(2))],
        &[],
    );
    fake.put_secret(
        NS,
        "quay-source",
        TYPE,
        &[(".dockerconfigjson", &config(2))],
        &[],
    );
    let rotation = wait_until("rotation", Duration::from_secs(120), BULK_POLL, || {
        managed(&fake, 2) == 2 * n
    })
    .await;
    println!(
        "rotation of 2 sources reached {} copies in {rotation:?}; Secret calls {}",
        2 * n,
        calls_summary(&fake)
    );

    // 4. New namespaces.
    let mut samples = Vec::new();
    for i in 0..10 {
        let name = format!("new-{i}");
        fake.put_namespace(&name, &[]);
        let t = wait_until(
            "new namespace",
            Duration::from_secs(30),
            Duration::from_millis(2),
            || fake.secret(&name, "hub").is_some() && fake.secret(&name, "quay").is_some(),
        )
        .await;
        samples.push(t);
    }
    samples.sort();
    println!(
        "new namespace gets both copies: median {:?}, max {:?}",
        samples[5], samples[9]
    );

    let rss = peak_rss_kb(child.id());
    println!(
        "controller peak RSS: {:.1} MiB ({:.1} KiB per namespace incl. baseline)",
        rss as f64 / 1024.0,
        rss as f64 / n as f64
    );
    let _ = child.kill();
    let _ = child.wait();
}
