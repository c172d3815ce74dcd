#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What an operator sees, from the real binary: one JSON log line per
//! admission decision with the documented fields, and Prometheus series on
//! the plain metrics listener that move as reviews arrive.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{ApiServerClient, fixture, fresh_uid};
use pull_secret_injector::webhook::certs;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pull-secret-injector");

/// The server's stderr, one parsed JSON log line at a time.
struct Logs(mpsc::Receiver<String>);

impl Logs {
    /// The next line whose `message` is `message` (and that passes `keep`),
    /// failing after 20 s. Every line on the way must be JSON.
    fn find(&self, message: &str, keep: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .0
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line {message:?} within 20 s"));
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("--log-format json wrote a non-JSON line ({e}): {line}")
            });
            if value["message"] == message && keep(&value) {
                return value;
            }
        }
    }
}

/// `GET /metrics` over plain HTTP/1.1.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text")
    );
    body.to_owned()
}

/// The value of the series `name` (labels included, as written) or `None`.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn start(dir: &std::path::Path) -> (Child, Logs) {
    start_with(dir, &[])
}

fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, Logs) {
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--shutdown-grace", "0s"])
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--policy-file")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/manifests/policy.yaml"
        ))
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        // No cluster: the webhook must run without one.
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, Logs(rx))
}

#[tokio::test]
async fn decisions_are_logged_as_json_and_counted_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs::write_set(&certs::CertFiles::in_dir(dir.path()), &certs::dev_hosts()).unwrap();
    let (mut child, logs) = start(dir.path());

    let serving = logs.find("serving", |_| true);
    let listen: SocketAddr = serving["listen"].as_str().unwrap().parse().unwrap();
    let metrics: SocketAddr = serving["metrics"].as_str().unwrap().parse().unwrap();

    let before = scrape(metrics);
    assert_eq!(
        series(&before, "pull_secret_injector_policy_generation"),
        Some(1.0)
    );
    assert_eq!(
        series(&before, "pull_secret_injector_policy_rules"),
        Some(6.0)
    );
    assert_eq!(
        series(
            &before,
            "pull_secret_injector_admission_review_duration_seconds_count"
        ),
        Some(0.0)
    );
    let expiry = series(
        &before,
        "pull_secret_injector_certificate_expiry_timestamp_seconds",
    )
    .expect("certificate expiry exported");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now + 300.0 * 86_400.0,
        "the dev certificate lasts a year: {expiry}"
    );

    let mut client = ApiServerClient::connect(listen, &ca, &[b"http/1.1"]).await;
    // A patched CREATE: 3 secrets from 3 rules.
    let mut create = fixture("create-generate-name.json");
    let uid = fresh_uid();
    create["request"]["uid"] = Value::String(uid.clone());
    let body = serde_json::to_vec(&create).unwrap();
    let (status, answer) = client.request("POST", "/mutate?timeout=10s", body).await;
    let answer = common::Answer::check(&create, status, &answer);
    assert!(answer.patch.is_some());
    // A DELETE: skipped. A body that is no review: an error.
    let mut delete = fixture("delete.json");
    delete["request"]["uid"] = Value::String(fresh_uid());
    client.review(delete).await;
    let (status, _) = client
        .request("POST", "/mutate?timeout=10s", b"{not json".to_vec())
        .await;
    assert_eq!(status, 400);

    let line = logs.find("admission decision", |l| l["uid"] == uid.as_str());
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["namespace"], "team-a");
    assert_eq!(
        line["pod"], "api-7d9f8b6c5d-",
        "generateName stands in for the name"
    );
    assert_eq!(line["operation"], "CREATE");
    assert_eq!(line["outcome"], "patched");
    assert_eq!(line["policy_generation"], 1);
    assert_eq!(line["rules"], "corp-harbor,dockerhub,ghcr");
    assert_eq!(line["secrets"], "harbor-pull,dockerhub-creds,ghcr-acme");
    assert!(
        !line.to_string().contains("harbor.corp.example/team-a/api"),
        "the review itself is logged only at debug: {line}"
    );
    logs.find(
        "rejected a request body that is not an AdmissionReview",
        |l| l["level"] == "WARN",
    );

    let after = scrape(metrics);
    for (name, value) in [
        (
            r#"pull_secret_injector_admission_reviews_total{operation="CREATE",outcome="patched"}"#,
            1.0,
        ),
        (
            r#"pull_secret_injector_admission_reviews_total{operation="DELETE",outcome="skipped"}"#,
            1.0,
        ),
        (
            r#"pull_secret_injector_admission_reviews_total{operation="other",outcome="error"}"#,
            1.0,
        ),
        (
            r#"pull_secret_injector_secrets_injected_total{rule="corp-harbor"}"#,
            1.0,
        ),
        (
            r#"pull_secret_injector_secrets_injected_total{rule="dockerhub"}"#,
            1.0,
        ),
        (
            r#"pull_secret_injector_secrets_injected_total{rule="ghcr"}"#,
            1.0,
        ),
        (
            "pull_secret_injector_admission_review_duration_seconds_count",
            3.0,
        ),
        ("pull_secret_injector_in_flight_requests", 0.0),
        (
            r#"pull_secret_injector_policy_reloads_total{result="loaded"}"#,
            1.0,
        ),
    ] {
        assert_eq!(series(&after, name), Some(value), "{name} in\n{after}");
    }
    // Labels carry no pod or image names.
    assert!(
        !after.contains("api-7d9f8b6c5d") && !after.contains("nginx"),
        "{after}"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    logs.find("stopped", |_| true);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn report_only_logs_and_counts_what_it_would_have_done() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs::write_set(&certs::CertFiles::in_dir(dir.path()), &certs::dev_hosts()).unwrap();
    // Set through its environment variable, as a Deployment would.
    let (mut child, logs) = start_with(dir.path(), &[("PSI_REPORT_ONLY", "true")]);
    let serving = logs.find("serving", |_| true);
    assert_eq!(serving["report_only"], true);
    let listen: SocketAddr = serving["listen"].as_str().unwrap().parse().unwrap();
    let metrics: SocketAddr = serving["metrics"].as_str().unwrap().parse().unwrap();

    let mut client = ApiServerClient::connect(listen, &ca, &[b"http/1.1"]).await;
    let mut create = fixture("create-generate-name.json");
    let uid = fresh_uid();
    create["request"]["uid"] = Value::String(uid.clone());
    let body = serde_json::to_vec(&create).unwrap();
    let (status, answer) = client.request("POST", "/mutate?timeout=10s", body).await;
    let answer = common::Answer::check(&create, status, &answer);
    assert!(answer.patch.is_none());

    let line = logs.find("admission decision", |l| l["uid"] == uid.as_str());
    assert_eq!(line["outcome"], "reported");
    assert_eq!(line["rules"], "corp-harbor,dockerhub,ghcr");
    assert_eq!(line["secrets"], "harbor-pull,dockerhub-creds,ghcr-acme");

    let after = scrape(metrics);
    for (name, value) in [
        (
            r#"pull_secret_injector_admission_reviews_total{operation="CREATE",outcome="reported"}"#,
            Some(1.0),
        ),
        (
            r#"pull_secret_injector_admission_reviews_total{operation="CREATE",outcome="patched"}"#,
            None,
        ),
        (
            r#"pull_secret_injector_secrets_would_inject_total{rule="corp-harbor"}"#,
            Some(1.0),
        ),
        (
            r#"pull_secret_injector_secrets_injected_total{rule="corp-harbor"}"#,
            None,
        ),
    ] {
        assert_eq!(series(&after, name), value, "{name} in\n{after}");
    }

    child.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}
