#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sync` end to end: the real controller wiring (build → bind → run, as
//! `pull-secret-injector sync` runs it) against the fake API server, which
//! authorizes as the sync ServiceAccount's RBAC. Each replica runs on its
//! own runtime and thread, so killing one is abrupt (no Lease release).

mod fake_api;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fake_api::{FakeApi, Manifests, Resource};
use pull_secret_injector::cmd::args::PolicySource;
use pull_secret_injector::cmd::sync::{Sync, SyncConfig};
use pull_secret_injector::k8s::sync::Settings;
use pull_secret_injector::k8s::sync::lease::LeaseTimings;
use serde_json::{Value, json};

const NS: &str = "pull-secret-injector";
const POLICY_CM: &str = "pull-secret-injector-policy";
const JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The password in the source: it must never show in a log, an Event or
/// a metric.
const MARKER: &str = "s3cret-marker-7f3a";

const POLICY: &str = "secrets:\n- {name: hub, from: pull-secret-injector/hub-source}\nrules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n  namespaces: {exclude: [sandbox]}\n";

fn dockerconfig(user: &str) -> Vec<u8> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{MARKER}"));
    format!(
        r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}","password":"{MARKER}"}}}}}}"#
    )
    .into_bytes()
}

/// Everything logged by any test of this binary, to look for the marker.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,tower=info,kube_client=info")
            .with_writer(move || Capture(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running replica.
struct Replica {
    metrics: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    fn start(fake: &FakeApi, identity: &str) -> Replica {
        let _ = logs();
        let addr = fake.addr;
        let identity = identity.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<bool>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let graceful = runtime.block_on(async move {
                let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
                let client = kube::Client::try_from(config).unwrap();
                let config = SyncConfig {
                    policy: PolicySource::ConfigMap {
                        namespace: NS.into(),
                        name: POLICY_CM.into(),
                    },
                    metrics_listen: "127.0.0.1:0".parse().unwrap(),
                    reload_interval: Duration::from_secs(1),
                    settings: Settings {
                        namespace: NS.into(),
                        identity,
                        policy_configmap: Some((NS.into(), POLICY_CM.into())),
                        max_in_flight: 16,
                        conflict_recheck: Duration::from_millis(500),
                        source_poll: Duration::from_millis(100),
                        lease: LeaseTimings {
                            duration: Duration::from_secs(3),
                            renew_deadline: Duration::from_secs(2),
                            retry_period: Duration::from_millis(300),
                        },
                    },
                    client: Some(client),
                };
                let bound = Sync::build(config).await.unwrap().bind().await.unwrap();
                ready_tx.send(bound.local_addr().unwrap()).unwrap();
                let (graceful_tx, graceful_rx) = tokio::sync::oneshot::channel();
                let run = bound.run(async move {
                    let graceful = stop_rx.await.unwrap_or(false);
                    let _ = graceful_tx.send(graceful);
                    if !graceful {
                        std::future::pending::<()>().await;
                    }
                });
                let killed = async move {
                    if graceful_rx.await != Ok(false) {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    result = run => { result.unwrap(); true }
                    // Killed: the runtime is dropped with every task.
                    () = killed => false,
                }
            });
            if !graceful {
                runtime.shutdown_background();
            }
        });
        let metrics = ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Replica {
            metrics,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Stops gracefully (the Lease is released).
    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(true);
        self.thread.take().unwrap().join().unwrap();
    }

    /// Dies: tasks dropped, connections cut, Lease left to expire.
    fn kill(mut self) {
        let _ = self.stop.take().unwrap().send(false);
        self.thread.take().unwrap().join().unwrap();
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(self.metrics).await.unwrap();
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        let code = out[9..12].parse().unwrap();
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (code, body)
    }

    async fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(false);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `check` until it holds, or fails after `within`.
async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WAIT: Duration = Duration::from_secs(15);

/// Polls a replica's metric until it has `value`, or fails after [`WAIT`].
async fn metric_reaches(replica: &Replica, series: &str, value: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = replica.metric(series).await;
        if now == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {series}= {value}; last {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cluster(namespaces: &[&str]) -> FakeApi {
    let fake = FakeApi::start_with(Manifests::sync()).await;
    fake.use_writable_secrets();
    fake.put_namespace(NS, &[]);
    fake.put_namespace("kube-system", &[]);
    for ns in namespaces {
        fake.put_namespace(ns, &[]);
    }
    fake.put_configmap(NS, POLICY_CM, &[("policy.yaml", POLICY)]);
    fake
}

fn data_of(secret: &Value) -> Value {
    secret["data"].clone()
}

/// A copy equal to the source: same type and data, the label and the
/// source annotation, nothing else of the source.
fn is_copy_of(copy: &Option<Value>, source: &Value) -> bool {
    let Some(copy) = copy else { return false };
    copy["type"] == source["type"]
        && data_of(copy) == data_of(source)
        && copy["metadata"]["labels"]
            == json!({"app.kubernetes.io/managed-by": "pull-secret-injector"})
        && copy["metadata"]["annotations"]
            == json!({"pull-secret-injector.io/source": "pull-secret-injector/hub-source"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_are_created_restored_and_pruned() {
    let fake = cluster(&["default", "team-a", "sandbox"]).await;
    let source = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot"))],
        &[("team", "ops")],
    );
    let replica = Replica::start(&fake, "sync-0");

    // Created where the rule applies; not in sandbox (excluded), the
    // install namespace (the source's too) or kube-system.
    eventually("copies in default and team-a", WAIT, || {
        is_copy_of(&fake.secret("default", "hub"), &source)
            && is_copy_of(&fake.secret("team-a", "hub"), &source)
    })
    .await;
    for ns in ["sandbox", NS, "kube-system"] {
        assert!(fake.secret(ns, "hub").is_none(), "no copy in {ns}");
    }
    assert_eq!(replica.get("/readyz").await.0, 200);
    assert_eq!(replica.get("/healthz").await.0, 200);
    assert_eq!(
        replica.metric("pull_secret_injector_sync_leader ").await,
        Some(1.0)
    );

    // Someone edits a copy's data: restored.
    fake.edit_secret("default", "hub", |s| {
        s["data"][".dockerconfigjson"] = json!("e30=")
    });
    eventually("edited copy restored", WAIT, || {
        is_copy_of(&fake.secret("default", "hub"), &source)
    })
    .await;
    // Someone removes the source annotation: restored.
    fake.edit_secret("team-a", "hub", |s| {
        s["metadata"]["annotations"] = json!({})
    });
    eventually("annotation restored", WAIT, || {
        is_copy_of(&fake.secret("team-a", "hub"), &source)
    })
    .await;
    // Someone deletes a copy: created again.
    assert!(fake.delete_secret("team-a", "hub"));
    eventually("deleted copy recreated", WAIT, || {
        is_copy_of(&fake.secret("team-a", "hub"), &source)
    })
    .await;

    // A new namespace gets its copy.
    fake.put_namespace("team-b", &[]);
    eventually("copy in the new namespace", WAIT, || {
        is_copy_of(&fake.secret("team-b", "hub"), &source)
    })
    .await;

    // Rotation: every copy follows, and a Normal event says so.
    let rotated = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot2"))],
        &[],
    );
    eventually("rotation reached every copy", WAIT, || {
        ["default", "team-a", "team-b"]
            .iter()
            .all(|ns| is_copy_of(&fake.secret(ns, "hub"), &rotated))
    })
    .await;
    eventually("propagation event", WAIT, || {
        fake.events().iter().any(|e| {
            e["reason"] == "SourceSecretPropagated" && e["regarding"]["name"] == "hub-source"
        })
    })
    .await;

    // Opting out prunes; so does a policy that no longer wants it.
    fake.put_namespace("team-b", &[("pull-secret-injector.io/inject", "false")]);
    eventually("opted-out namespace pruned", WAIT, || {
        fake.secret("team-b", "hub").is_none()
    })
    .await;
    fake.put_configmap(
        NS,
        POLICY_CM,
        &[(
            "policy.yaml",
            "rules:\n- {name: hub, registries: [docker.io], secrets: [hub]}\n",
        )],
    );
    eventually("every copy pruned", WAIT, || {
        fake.secrets()
            .iter()
            .all(|s| s["metadata"]["name"] != "hub")
    })
    .await;
    assert!(fake.secret(NS, "hub-source").is_some(), "the source stays");

    // Only the label-selected copies and the named source were ever listed
    // or watched: never every Secret of the cluster.
    for call in fake.calls() {
        if call.resource == Resource::Secrets && matches!(call.verb, "list" | "watch") {
            assert!(
                !call.namespace.is_empty() || call.name.is_empty(),
                "{call:?}"
            );
        }
    }
    let (_, metrics) = replica.get("/metrics").await;
    assert!(!metrics.contains(MARKER));
    replica.stop();
    fake.assert_clean();
    assert_no_marker(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmanaged_secret_is_never_touched_and_reported() {
    let fake = cluster(&["default", "team-a"]).await;
    let source = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot"))],
        &[],
    );
    let theirs = fake.put_secret(
        "default",
        "hub",
        "Opaque",
        &[("token", b"theirs")],
        &[("owner", "team")],
    );
    let replica = Replica::start(&fake, "sync-0");
    eventually("copy in team-a", WAIT, || {
        is_copy_of(&fake.secret("team-a", "hub"), &source)
    })
    .await;
    eventually("SecretConflict event", WAIT, || {
        fake.events().iter().any(|e| {
            e["reason"] == "SecretConflict"
                && e["type"] == "Warning"
                && e["metadata"]["namespace"] == "default"
                && e["regarding"]["name"] == "hub"
                && e["regarding"]["uid"] == theirs["metadata"]["uid"]
        })
    })
    .await;
    assert_eq!(
        fake.secret("default", "hub"),
        Some(theirs.clone()),
        "untouched"
    );
    let conflicts = fake
        .events()
        .iter()
        .filter(|e| e["reason"] == "SecretConflict")
        .count();
    // Rechecked every 500 ms here, but reported once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fake.secret("default", "hub"),
        Some(theirs),
        "still untouched"
    );
    assert_eq!(
        fake.events()
            .iter()
            .filter(|e| e["reason"] == "SecretConflict")
            .count(),
        conflicts
    );
    assert_eq!(
        replica
            .metric("pull_secret_injector_sync_copies{state=\"conflict\"} ")
            .await,
        Some(1.0)
    );
    // Its owner deletes it: the copy takes its place.
    fake.delete_secret("default", "hub");
    eventually("copy after the conflict went", WAIT, || {
        is_copy_of(&fake.secret("default", "hub"), &source)
    })
    .await;
    replica.stop();
    fake.assert_clean();
    assert_no_marker(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_source_leaves_copies_alone() {
    let fake = cluster(&["default"]).await;
    let replica = Replica::start(&fake, "sync-0");
    // No source yet: nothing created, a Warning on the policy ConfigMap.
    eventually("SourceSecretInvalid event", WAIT, || {
        fake.events().iter().any(|e| {
            e["reason"] == "SourceSecretInvalid"
                && e["regarding"]["kind"] == "ConfigMap"
                && e["regarding"]["name"] == POLICY_CM
                && e["note"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("pull-secret-injector/hub-source")
        })
    })
    .await;
    assert_eq!(
        replica
            .metric("pull_secret_injector_sync_sources_invalid ")
            .await,
        Some(1.0)
    );
    assert!(fake.secret("default", "hub").is_none());
    let source = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot"))],
        &[],
    );
    eventually("copy once the source exists", WAIT, || {
        is_copy_of(&fake.secret("default", "hub"), &source)
    })
    .await;
    // The source is replaced by one of the wrong type, then deleted: the
    // copy stays as it is.
    let copy = fake.secret("default", "hub");
    fake.delete_secret(NS, "hub-source");
    fake.put_secret(NS, "hub-source", "Opaque", &[("x", b"y")], &[]);
    eventually("wrong type reported", WAIT, || {
        fake.events().iter().any(|e| {
            e["reason"] == "SourceSecretInvalid"
                && e["note"].as_str().unwrap_or_default().contains("Opaque")
        })
    })
    .await;
    fake.delete_secret(NS, "hub-source");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.secret("default", "hub"), copy, "copy left alone");
    replica.stop();
    fake.assert_clean();
    assert_no_marker(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_the_source_has_no_key_for_is_reported_once() {
    let fake = cluster(&["default"]).await;
    // hub is also injected for quay.io, which its source has no key for.
    let policy = "secrets:\n- {name: hub, from: pull-secret-injector/hub-source}\nrules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n- name: quay-mirror\n  registries: [quay.io]\n  secrets: [hub]\n";
    fake.put_configmap(NS, POLICY_CM, &[("policy.yaml", policy)]);
    let source = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot"))],
        &[],
    );
    let replica = Replica::start(&fake, "sync-0");
    let uncovered = || -> Vec<Value> {
        fake.events()
            .into_iter()
            .filter(|e| e["reason"] == "CredentialsDoNotCover")
            .collect()
    };
    eventually("CredentialsDoNotCover event", WAIT, || {
        !uncovered().is_empty()
    })
    .await;
    // The copy is made all the same.
    eventually("copy in default", WAIT, || {
        is_copy_of(&fake.secret("default", "hub"), &source)
    })
    .await;
    let events = uncovered();
    assert_eq!(events.len(), 1, "only quay.io is uncovered: {events:?}");
    let event = &events[0];
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["metadata"]["namespace"], NS);
    assert_eq!(event["regarding"]["kind"], "Secret");
    assert_eq!(event["regarding"]["name"], "hub-source");
    assert_eq!(event["regarding"]["uid"], source["metadata"]["uid"]);
    let note = event["note"].as_str().unwrap();
    for part in [
        "\"quay-mirror\"",
        "\"hub\"",
        "\"quay.io\"",
        "pull-secret-injector/hub-source",
    ] {
        assert!(note.contains(part), "{part} in {note}");
    }
    assert!(!note.contains("docker.io"), "docker.io is covered: {note}");
    // Passes go on (conflict rechecks every 500 ms): not posted again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(uncovered().len(), 1);
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(
        logs.lines().any(|l| l.contains("not covered")
            && l.contains("quay.io")
            && l.contains("quay-mirror")),
        "the finding is logged"
    );
    replica.stop();
    fake.assert_clean();
    assert_no_marker(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_replica_takes_over_when_the_leader_dies() {
    let fake = cluster(&["default"]).await;
    let source = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot"))],
        &[],
    );
    let a = Replica::start(&fake, "sync-a");
    eventually("a leads", WAIT, || {
        fake.lease(NS, "pull-secret-injector-sync")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "sync-a")
    })
    .await;
    let b = Replica::start(&fake, "sync-b");
    eventually("copy", WAIT, || {
        is_copy_of(&fake.secret("default", "hub"), &source)
    })
    .await;
    // b is ready as a standby and does not lead.
    let deadline = Instant::now() + WAIT;
    while b.get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "b never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        b.metric("pull_secret_injector_sync_leader ").await,
        Some(0.0)
    );

    let killed_at = Instant::now();
    a.kill();
    eventually("b takes over", WAIT, || {
        fake.lease(NS, "pull-secret-injector-sync")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "sync-b")
    })
    .await;
    let takeover = killed_at.elapsed();
    // Lease duration 3 s here (15 s by default): taken within about that.
    assert!(takeover < Duration::from_secs(6), "{takeover:?}");
    fake.put_namespace("team-c", &[]);
    eventually("b writes", WAIT, || {
        is_copy_of(&fake.secret("team-c", "hub"), &source)
    })
    .await;
    let lease = fake.lease(NS, "pull-secret-injector-sync").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // A graceful stop releases the Lease at once.
    b.stop();
    let lease = fake.lease(NS, "pull-secret-injector-sync").unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null(), "{lease}");
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_outages_heal_by_themselves() {
    let fake = cluster(&["default", "team-a"]).await;
    let source = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot"))],
        &[],
    );
    // The first writes fail with 500 and 429.
    fake.fail_next(Resource::Secrets, 3, 500);
    let replica = Replica::start(&fake, "sync-0");
    eventually("copies despite 500s", WAIT, || {
        is_copy_of(&fake.secret("default", "hub"), &source)
            && is_copy_of(&fake.secret("team-a", "hub"), &source)
    })
    .await;
    fake.fail_next(Resource::Secrets, 2, 429);
    fake.put_namespace("team-b", &[]);
    eventually("copy despite 429s", WAIT, || {
        is_copy_of(&fake.secret("team-b", "hub"), &source)
    })
    .await;

    // The watches expire (410): they re-list, and changes still arrive.
    fake.expire_secret_watches();
    let rotated = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot2"))],
        &[],
    );
    eventually("rotation after 410", WAIT, || {
        is_copy_of(&fake.secret("team-a", "hub"), &rotated)
    })
    .await;

    // The API server goes away (connection refused) and comes back; what
    // changed meanwhile is caught up.
    fake.stop_api();
    tokio::time::sleep(Duration::from_millis(800)).await;
    fake.delete_secret("default", "hub");
    fake.put_namespace("team-d", &[]);
    fake.restart_api().await;
    eventually(
        "caught up after the outage",
        Duration::from_secs(30),
        || {
            is_copy_of(&fake.secret("default", "hub"), &rotated)
                && is_copy_of(&fake.secret("team-d", "hub"), &rotated)
        },
    )
    .await;
    // Retries were spaced: nowhere near a hot loop.
    let writes = fake
        .calls()
        .iter()
        .filter(|c| c.resource == Resource::Secrets && matches!(c.verb, "create" | "update"))
        .count();
    assert!(writes < 40, "{writes} writes");
    replica.stop();
    assert_no_marker(&fake);
}

/// The marker password and its base64 appear in no Event, log line or
/// metric.
/// Writes run in parallel, exactly `--max-in-flight` (16) at once while
/// more wait; a write the API server does not answer blocks neither
/// observing and deciding nor the other writes; a write queued before a
/// rotation writes the rotated content. The fake holds writes unanswered
/// to show this without timing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_run_in_parallel_and_a_stuck_write_blocks_nothing_else() {
    let names: Vec<String> = (0..40).map(|i| format!("ns-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fake = cluster(&refs).await;
    let source = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot"))],
        &[],
    );
    fake.hold_secret_writes(None);
    let replica = Replica::start(&fake, "sync-0");

    // 40 creates decided: 16 sent and unanswered, 24 waiting.
    eventually("16 writes in flight", WAIT, || {
        fake.secret_writes_in_flight() == 16
    })
    .await;
    metric_reaches(&replica, "pull_secret_injector_sync_writes_queued ", 24.0).await;
    assert_eq!(
        replica
            .metric("pull_secret_injector_sync_writes_in_flight ")
            .await,
        Some(16.0)
    );
    // Observing and deciding go on: a new namespace is seen and counted.
    fake.put_namespace("late", &[]);
    metric_reaches(
        &replica,
        "pull_secret_injector_sync_copies{state=\"pending\"} ",
        41.0,
    )
    .await;

    // Only ns-00's write stays stuck: every other copy is made.
    fake.hold_secret_writes(Some("ns-00"));
    eventually("every other copy made", WAIT, || {
        names[1..]
            .iter()
            .chain(std::iter::once(&"late".to_owned()))
            .all(|ns| is_copy_of(&fake.secret(ns, "hub"), &source))
    })
    .await;
    assert!(fake.secret("ns-00", "hub").is_none());
    assert_eq!(fake.secret_writes_in_flight(), 1);
    fake.release_secret_writes();
    eventually("the stuck copy made", WAIT, || {
        is_copy_of(&fake.secret("ns-00", "hub"), &source)
    })
    .await;
    assert_eq!(
        fake.peak_secret_writes_in_flight(),
        16,
        "never more than the limit"
    );

    // Two rotations while the writes are stuck: the 16 writes in flight
    // carry the first, the queued ones write the second when they start.
    fake.reset_calls();
    fake.hold_secret_writes(None);
    fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot2"))],
        &[],
    );
    eventually("16 updates in flight", WAIT, || {
        fake.secret_writes_in_flight() == 16
    })
    .await;
    // The second has no key for docker.io: the Warning it brings shows
    // the controller has seen it before the writes are let through.
    let rotated = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(
            ".dockerconfigjson",
            br#"{"auths":{"quay.io":{"auth":"Ym90Mzp4"}}}"#,
        )],
        &[],
    );
    eventually("the second rotation seen", WAIT, || {
        fake.events()
            .iter()
            .any(|e| e["reason"] == "CredentialsDoNotCover")
    })
    .await;
    fake.release_secret_writes();
    eventually("the second rotation everywhere", WAIT, || {
        names
            .iter()
            .chain(std::iter::once(&"late".to_owned()))
            .all(|ns| is_copy_of(&fake.secret(ns, "hub"), &rotated))
    })
    .await;
    let updates: Vec<(String, u16)> = fake
        .calls()
        .iter()
        .filter(|c| c.resource == Resource::Secrets && c.verb == "update")
        .map(|c| (c.namespace.clone(), c.code))
        .collect();
    assert!(
        (41..=41 + 16).contains(&updates.len()),
        "41 copies, 16 of them written twice at most: {updates:?}"
    );
    replica.stop();
    fake.assert_clean();
}

/// A leader that loses its Lease stops writing at once (DESIGN §8): with
/// 16 writes held unanswered by the API server and 8 more queued, another
/// replica takes the Lease over. The old leader's writes in flight are
/// abandoned (the API server sees the requests go away unanswered), its
/// queue is dropped, its leadership metric goes to 0, and not one Secret
/// write reaches the API server afterwards, even with writes let through,
/// over several of its Lease rounds. When the other replica stops renewing
/// and its Lease expires, the old leader takes it back and makes every copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_abandons_its_writes_and_sends_no_more() {
    const LEASE: &str = "pull-secret-injector-sync";
    const LEADER: &str = "pull_secret_injector_sync_leader ";
    const IN_FLIGHT: &str = "pull_secret_injector_sync_writes_in_flight ";
    const QUEUED: &str = "pull_secret_injector_sync_writes_queued ";
    let names: Vec<String> = (0..24).map(|i| format!("ns-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fake = cluster(&refs).await;
    let source = fake.put_secret(
        NS,
        "hub-source",
        JSON_TYPE,
        &[(".dockerconfigjson", &dockerconfig("bot"))],
        &[],
    );
    fake.hold_secret_writes(None);
    let a = Replica::start(&fake, "sync-a");
    eventually("16 writes in flight", WAIT, || {
        fake.secret_writes_in_flight() == 16
    })
    .await;
    metric_reaches(&a, QUEUED, 8.0).await;
    metric_reaches(&a, LEADER, 1.0).await;
    assert_eq!(fake.secret_writes_received(), 16);

    // sync-b takes the Lease over as client-go's elector would (its own
    // identity, fresh times, one more transition) and renews it while it
    // lives: each renewal is a new resourceVersion, so sync-a never sees
    // it expire.
    let renew_as_b = |takeover: bool| {
        fake.edit_lease(NS, LEASE, |lease| {
            let now =
                serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    k8s_openapi::jiff::Timestamp::now(),
                ))
                .unwrap();
            let spec = &mut lease["spec"];
            if takeover {
                spec["holderIdentity"] = json!("sync-b");
                spec["acquireTime"] = now.clone();
                spec["leaseTransitions"] =
                    json!(spec["leaseTransitions"].as_i64().unwrap_or(0) + 1);
            }
            assert_eq!(spec["holderIdentity"], "sync-b");
            spec["renewTime"] = now;
            spec["leaseDurationSeconds"] = json!(3);
        });
    };
    renew_as_b(true);
    metric_reaches(&a, LEADER, 0.0).await;
    // The 16 requests in flight are given up, unanswered: the API server
    // sees them go away while it still holds them.
    eventually("the writes in flight abandoned", WAIT, || {
        renew_as_b(false);
        fake.secret_writes_in_flight() == 0
    })
    .await;
    metric_reaches(&a, IN_FLIGHT, 0.0).await;
    metric_reaches(&a, QUEUED, 0.0).await;

    // Writes go through again. While sync-b holds the Lease, sync-a keeps
    // checking it, and over four of its rounds sends no Secret write: the
    // 8 queued writes were dropped, and nothing it decides is sent.
    fake.release_secret_writes();
    let rounds = fake.count_calls(Resource::Leases, "get", 200);
    eventually("four Lease rounds of sync-a as a follower", WAIT, || {
        renew_as_b(false);
        fake.count_calls(Resource::Leases, "get", 200) >= rounds + 4
    })
    .await;
    assert_eq!(a.metric(LEADER).await, Some(0.0));
    assert_eq!(
        fake.secret_writes_received(),
        16,
        "a Secret write was sent after the Lease was lost"
    );
    let answered: Vec<(&'static str, String, u16)> = fake
        .calls()
        .iter()
        .filter(|c| c.resource == Resource::Secrets)
        .filter(|c| matches!(c.verb, "create" | "update" | "delete"))
        .map(|c| (c.verb, c.namespace.clone(), c.code))
        .collect();
    assert!(answered.is_empty(), "writes answered: {answered:?}");
    assert!(names.iter().all(|ns| fake.secret(ns, "hub").is_none()));

    // sync-b dies: its Lease expires, sync-a takes it back and completes
    // every copy, each with one create.
    eventually("sync-a leads again", WAIT, || {
        fake.lease(NS, LEASE)
            .is_some_and(|l| l["spec"]["holderIdentity"] == "sync-a")
    })
    .await;
    metric_reaches(&a, LEADER, 1.0).await;
    eventually("every copy made", WAIT, || {
        names
            .iter()
            .all(|ns| is_copy_of(&fake.secret(ns, "hub"), &source))
    })
    .await;
    let creates: Vec<(String, u16)> = fake
        .calls()
        .iter()
        .filter(|c| c.resource == Resource::Secrets && c.verb == "create")
        .map(|c| (c.namespace.clone(), c.code))
        .collect();
    assert_eq!(creates.len(), 24, "{creates:?}");
    assert!(creates.iter().all(|(_, code)| *code == 201), "{creates:?}");
    assert_eq!(fake.secret_writes_received(), 16 + 24);
    let lease = fake.lease(NS, LEASE).unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 2, "{lease}");
    a.stop();
    fake.assert_clean();
    assert_no_marker(&fake);
}

fn assert_no_marker(fake: &FakeApi) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("bot:{MARKER}"));
    let events = serde_json::to_string(&fake.events()).unwrap();
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    for (what, text) in [("events", &events), ("logs", &logs)] {
        assert!(!text.contains(MARKER), "the marker is in the {what}");
        assert!(!text.contains(&b64), "the marker's base64 is in the {what}");
    }
}
