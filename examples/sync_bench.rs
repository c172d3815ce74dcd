#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Benchmark of `pull-secret-injector sync` against the in-process fake API
//! server (tests/fake_api): NOT a real kube-apiserver with etcd, so only the
//! ratios to the reference client measured in the same run mean something.
//!
//! `cargo run --release --example sync_bench -- [NAMESPACES] [--write-latency-ms MS]`
//! (default 1000 namespaces, 0 ms), after `cargo build --release` (it runs
//! target/release/pull-secret-injector, or the binary named by `PSI_BIN`).
//! `--write-latency-ms` makes the fake answer every Secret write that much
//! later, as etcd's commit does on a real cluster: the reference's 16 in
//! flight then matter, and so does whether the controller keeps as many.
//!
//! 0. Baseline: the controller's RSS with no namespace to copy to.
//! 1. Reference: a plain client creates NAMESPACES × 2 Secrets, 16 requests
//!    in flight.
//! 2. Cold start: the real binary (`sync --policy-file`, kubeconfig to the
//!    fake) creates the same number of copies; time (process start to the
//!    last copy's answer), ratio, API calls per copy, most writes in flight.
//!    1 and 2 run three times in turn (copies deleted in between); the
//!    median ratio is the figure.
//! 3. Rotation: both sources change; time until the last copy is rewritten.
//! 4. New namespace: time until it has both copies (10 samples).
//! 5. The controller's peak RSS (VmHWM), and per namespace above the
//!    baseline.
//! 6. Leader restart: the controller is killed and started again; time
//!    until ready and the API calls it makes (none should be a write).

#[path = "../tests/fake_api/mod.rs"]
mod fake_api;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Child;
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

/// Polls `check` every `every`. Bulk phases poll the fake's call count
/// (cheap) rarely, not to slow the server they measure, take their times
/// from the call log, and check the Secrets themselves once at the end.
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

/// Reference and cold start are measured this many times, in turn.
const ROUNDS: usize = 3;

/// Secret calls by verb and status since the last reset, per copy.
fn calls_summary(fake: &FakeApi, copies: usize) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for c in fake
        .calls()
        .iter()
        .filter(|c| c.resource == Resource::Secrets)
    {
        *by.entry(format!("{}:{}", c.verb, c.code)).or_default() += 1;
    }
    let writes: usize = by
        .iter()
        .filter(|(k, _)| k.starts_with("create") || k.starts_with("update"))
        .map(|(_, n)| n)
        .sum();
    format!(
        "{by:?} = {:.3} writes per copy; most writes in flight: {}",
        writes as f64 / copies.max(1) as f64,
        fake.peak_secret_writes_in_flight()
    )
}

/// When the first and the last Secret `verb` answered `code` (since the
/// last reset).
fn calls_span(fake: &FakeApi, verb: &str, code: u16) -> (Instant, Instant) {
    let at: Vec<Instant> = fake
        .calls()
        .iter()
        .filter(|c| c.resource == Resource::Secrets && c.verb == verb && c.code == code)
        .map(|c| c.at)
        .collect();
    (*at.iter().min().unwrap(), *at.iter().max().unwrap())
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A free local port for the controller's metrics listener.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `GET /readyz` answers 200.
fn ready(port: u16) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// Starts the controller (always the same identity, so a restarted one
/// renews its own Lease at once).
fn start(dir: &Path, port: u16) -> Child {
    // PSI_BIN picks another build (e.g. target/debug/pull-secret-injector).
    let bin = std::env::var("PSI_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/pull-secret-injector"
        )
        .to_owned()
    });
    std::process::Command::new(bin)
        .args(["sync", "--namespace", NS, "--pod-name", "bench-0"])
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--policy-file")
        .arg(dir.join("policy.yaml"))
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run target/release/pull-secret-injector (cargo build --release first)")
}

/// Stops the controller as Kubernetes does: SIGTERM, then SIGKILL if it
/// has not stopped within 5 s.
fn stop(mut child: Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The controller's CPU time (user + system) so far, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with the last ')').
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn put_sources(fake: &FakeApi, version: u32) {
    for name in ["hub-source", "quay-source"] {
        fake.put_secret(
            NS,
            name,
            TYPE,
            &[(".dockerconfigjson", &config(version))],
            &[],
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut n = 1000;
    let mut latency = Duration::ZERO;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--write-latency-ms" => {
                let ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap();
                latency = Duration::from_millis(ms);
            }
            other => n = other.parse().expect("NAMESPACES is a number"),
        }
    }
    let fake = FakeApi::start_with(Manifests::sync()).await;
    fake.use_writable_secrets();
    fake.set_secret_write_latency(latency);
    fake.put_namespace(NS, &[]);
    put_sources(&fake, 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kubeconfig"),
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{}\"}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n", fake.addr),
    )
    .unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    println!(
        "sync_bench: {n} namespaces x 2 managed secrets, fake API (not a real apiserver), Secret write latency {latency:?}"
    );

    // 0. Baseline: ready with nothing to copy.
    let port = free_port();
    let child = start(dir.path(), port);
    wait_until(
        "baseline ready",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || ready(port),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline_kb = proc_status_kb(child.id(), "VmHWM:");
    stop(child);

    for i in 0..n {
        fake.put_namespace(&format!("ns-{i:05}"), &[]);
    }
    let client = fake.client();
    let managed = |fake: &FakeApi, version: u32| {
        let want = fake_api::b64(&config(version));
        fake.count_secrets(|s| {
            s["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pull-secret-injector"
                && s["data"][".dockerconfigjson"] == want.as_str()
        })
    };

    // 1 and 2, ROUNDS times in turn (the machine is shared: one pair can
    // be slowed by a neighbour; the median ratio is the figure).
    let mut ratios = Vec::new();
    let mut child = None;
    for round in 0..ROUNDS {
        // No controller runs (nor watches) while the reference writes.
        if let Some(previous) = child.take() {
            stop(previous);
            for i in 0..n {
                for name in ["hub", "quay"] {
                    fake.delete_secret(&format!("ns-{i:05}"), name);
                }
            }
        }

        // 1. Reference client: 2n creates, 16 in flight.
        fake.reset_calls();
        let started = Instant::now();
        futures::stream::iter(0..2 * n)
            .map(|i| {
                let api: Api<Secret> = Api::namespaced(client.clone(), &format!("ns-{:05}", i / 2));
                async move {
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(format!("reference-{round}-{}", i % 2)),
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
            "round {round}: reference client, {} creates, 16 in flight: {reference:?}; most writes in flight: {}",
            2 * n,
            fake.peak_secret_writes_in_flight()
        );

        // 2. Cold start of the real binary: no copy exists.
        fake.reset_calls();
        let port = free_port();
        let started = Instant::now();
        let started_child = start(dir.path(), port);
        wait_until("cold start", Duration::from_secs(300), BULK_POLL, || {
            fake.count_calls(Resource::Secrets, "create", 201) >= 2 * n
        })
        .await;
        assert_eq!(managed(&fake, 1), 2 * n, "every copy made, once");
        let (first, last) = calls_span(&fake, "create", 201);
        let cold = last - started;
        let cold_cpu = cpu_time(started_child.id());
        let ratio = cold.as_secs_f64() / reference.as_secs_f64();
        ratios.push(ratio);
        println!(
            "round {round}: cold start, {} copies: {cold:?} = {ratio:.2}x the reference (first copy after {:?}, the rest in {:?} = {:.2}x); controller CPU {cold_cpu:?} ({:.0} us per copy, start-up included); Secret calls {}",
            2 * n,
            first - started,
            last - first,
            (last - first).as_secs_f64() / reference.as_secs_f64(),
            cold_cpu.as_secs_f64() * 1e6 / (2 * n) as f64,
            calls_summary(&fake, 2 * n)
        );
        child = Some(started_child);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "cold start / reference: median {:.2}x over {ROUNDS} rounds (all: {ratios:.2?})",
        ratios[ROUNDS / 2]
    );
    let child = child.unwrap();

    // 3. Rotation of both sources.
    tokio::time::sleep(Duration::from_secs(1)).await;
    fake.reset_calls();
    let cpu_before = cpu_time(child.id());
    let started = Instant::now();
    put_sources(&fake, 2);
    wait_until("rotation", Duration::from_secs(120), BULK_POLL, || {
        fake.count_calls(Resource::Secrets, "update", 200) >= 2 * n
    })
    .await;
    assert_eq!(managed(&fake, 2), 2 * n, "every copy rotated");
    let rotation = calls_span(&fake, "update", 200).1 - started;
    let rotation_cpu = cpu_time(child.id()) - cpu_before;
    println!(
        "rotation of 2 sources reached {} copies in {rotation:?}; controller CPU {rotation_cpu:?} ({:.0} us per copy); Secret calls {}",
        2 * n,
        rotation_cpu.as_secs_f64() * 1e6 / (2 * n) as f64,
        calls_summary(&fake, 2 * n)
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

    // 5. Memory.
    let rss_kb = proc_status_kb(child.id(), "VmHWM:");
    println!(
        "controller peak RSS: {:.1} MiB; baseline with no namespace {:.1} MiB; {:.2} KiB per namespace (x 2 copies) above it",
        rss_kb as f64 / 1024.0,
        baseline_kb as f64 / 1024.0,
        rss_kb.saturating_sub(baseline_kb) as f64 / n as f64
    );
    stop(child);

    // 6. Leader restart with everything in place.
    fake.reset_calls();
    let port = free_port();
    let child = start(dir.path(), port);
    let restart = wait_until(
        "restart ready",
        Duration::from_secs(60),
        Duration::from_millis(5),
        || ready(port),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "leader restart: ready after {restart:?}; Secret calls in its first second {}",
        calls_summary(&fake, 2 * n)
    );
    stop(child);
}
