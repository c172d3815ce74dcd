#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hardening seen from the real binary: text logs that requests cannot
//! forge lines into, debug logs without secrets, and the file-descriptor
//! budget split between the two listeners.

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ApiServerClient, fixture, fresh_uid};
use pull_secret_injector::webhook::certs;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BIN: &str = env!("CARGO_BIN_EXE_pull-secret-injector");

/// A running `serve` in text log format and its stderr lines.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    listen: SocketAddr,
    metrics: SocketAddr,
    ca: String,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts `serve` through `sh` (so `ulimit` may be set first).
    fn start(rust_log: &str, shell_prefix: &str, extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let ca =
            certs::write_set(&certs::CertFiles::in_dir(dir.path()), &certs::dev_hosts()).unwrap();
        let mut command = format!(
            "{shell_prefix} exec '{BIN}' serve --log-format text --shutdown-grace 0s \
             --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
             --policy-file '{}/manifests/policy.yaml' --tls-cert '{}' --tls-key '{}'",
            env!("CARGO_MANIFEST_DIR"),
            dir.path().join("tls.crt").display(),
            dir.path().join("tls.key").display(),
        );
        for arg in extra {
            command.push_str(&format!(" '{arg}'"));
        }
        let mut child = Command::new("sh")
            .args(["-c", &command])
            .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Served {
            child,
            lines,
            seen: Vec::new(),
            listen: ([0, 0, 0, 0], 0).into(),
            metrics: ([0, 0, 0, 0], 0).into(),
            ca,
            _dir: dir,
        };
        let serving = served.find(|l| l.contains(" serving listen="));
        let field = |name: &str| -> SocketAddr {
            serving
                .split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} in {serving}"))
                .parse()
                .unwrap()
        };
        served.listen = field("listen");
        served.metrics = field("metrics");
        served
    }

    /// The next line that passes `keep` (every line is kept in `seen`),
    /// failing after 20 s.
    fn find(&mut self, keep: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no such log line within 20 s; seen:\n{}",
                    self.seen.join("\n")
                )
            });
            self.seen.push(line.clone());
            if keep(&line) {
                return line;
            }
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Defect 5: request fields cannot forge log lines or fields in text logs.
#[tokio::test]
async fn text_logs_escape_every_request_field() {
    let mut served = Served::start("info", "", &[]);
    let mut client = ApiServerClient::connect(served.listen, &served.ca, &[b"http/1.1"]).await;
    let mut review = fixture("create-generate-name.json");
    let forged = "x\nINFO fake: admission decision uid=evil";
    review["request"]["object"]["metadata"]["generateName"] = json!(forged);
    review["request"]["namespace"] = json!("team-a\r\nWARN forged namespace");
    let uid = format!("{}\nERROR forged uid line", fresh_uid());
    review["request"]["uid"] = json!(uid);
    let body = serde_json::to_vec(&review).unwrap();
    let (status, answer) = client.request("POST", "/mutate?timeout=10s", body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));

    let line = served.find(|l| l.contains("admission decision"));
    assert!(
        line.contains(r#"pod="x\nINFO fake: admission decision uid=evil""#),
        "{line}"
    );
    assert!(
        line.contains(r#"uid=""#) && line.contains(r#"\nERROR forged uid line""#),
        "{line}"
    );
    assert!(
        line.contains(r#"namespace="team-a\r\nWARN forged namespace""#),
        "{line}"
    );
    // Ordinary values are written as they are.
    assert!(line.contains(" outcome=patched "), "{line}");
    assert!(line.contains(" kind=Pod operation=CREATE "), "{line}");
    assert!(line.contains("rules=corp-harbor,dockerhub,ghcr"), "{line}");
    // A second review, then: no line on the way starts with a forged level.
    let mut usual = fixture("create-generate-name.json");
    usual["request"]["uid"] = json!(fresh_uid());
    client.review(usual).await;
    served.find(|l| l.contains("admission decision"));
    for line in &served.seen {
        assert!(
            !line.starts_with("INFO fake")
                && !line.starts_with("ERROR forged")
                && !line.starts_with("WARN forged"),
            "forged line: {line}"
        );
    }
    served.stop();
}

/// The review printed at debug level carries no env values, annotation
/// values, userInfo.extra or image credentials.
#[tokio::test]
async fn debug_logs_redact_secrets_in_reviews() {
    let mut served = Served::start("debug", "", &[]);
    let mut client = ApiServerClient::connect(served.listen, &served.ca, &[b"http/1.1"]).await;
    let mut review = fixture("create-generate-name.json");
    let request = &mut review["request"];
    request["userInfo"]["extra"] =
        json!({"authentication.kubernetes.io/credential-id": ["s3cret-extra"]});
    request["object"]["metadata"]["annotations"] = json!({"vault/token": "s3cret-annotation"});
    request["object"]["spec"]["containers"][0]["env"] =
        json!([{"name": "DB_PASSWORD", "value": "s3cret-env"}]);
    request["object"]["spec"]["containers"][1]["image"] =
        json!("ci:s3cret-pw@registry.example.com/app:1");
    let answer = client.review(review).await;
    assert_eq!(answer.response["response"]["allowed"], true);
    let line = served.find(|l| l.contains("admission review received"));
    assert!(
        line.contains("DB_PASSWORD"),
        "the review is printed: {line}"
    );
    served.find(|l| l.contains("admission decision"));
    for line in &served.seen {
        assert!(!line.contains("s3cret"), "a secret in the log: {line}");
    }
    served.stop();
}

/// The README's way to keep every log line but the per-review one: a
/// `RUST_LOG` directive for the handler's target. The review is answered,
/// other info lines still come, and no `admission decision` line is
/// written, not even when the log is flushed at exit.
#[tokio::test]
async fn rust_log_can_drop_only_the_per_review_line() {
    let mut served = Served::start("info,pull_secret_injector::webhook::http=warn", "", &[]);
    let mut client = ApiServerClient::connect(served.listen, &served.ca, &[b"http/1.1"]).await;
    let answer = client.review(fixture("create-generate-name.json")).await;
    assert_eq!(answer.response["response"]["allowed"], true);
    assert!(answer.response["response"]["patch"].is_string(), "patched");
    let _ = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status();
    // Every line up to the end of stderr (the reader thread then hangs up).
    while let Ok(line) = served.lines.recv_timeout(Duration::from_secs(20)) {
        served.seen.push(line);
    }
    let _ = served.child.wait();
    assert!(
        served
            .seen
            .iter()
            .any(|l| l.contains(" INFO ") && l.contains(": stopped")),
        "info lines still come: {:#?}",
        served.seen
    );
    assert!(
        !served.seen.iter().any(|l| l.contains("admission decision")),
        "{:#?}",
        served.seen
    );
}

/// Defect 3: with a low file-descriptor limit, the connection caps are
/// lowered to fit it, and a flood of idle connections to the metrics port
/// leaves `/readyz` and `/mutate` answering.
#[tokio::test]
async fn a_metrics_flood_under_a_low_fd_limit_does_not_starve_the_webhook() {
    let mut served = Served::start("info", "ulimit -n 256 &&", &[]);
    let warning = served
        .seen
        .iter()
        .find(|l| l.contains("file-descriptor limit"))
        .cloned()
        .unwrap_or_else(|| served.find(|l| l.contains("file-descriptor limit")));
    assert!(warning.contains("fd_limit=256"), "{warning}");
    let mut flood = Vec::new();
    for _ in 0..300 {
        match tokio::net::TcpStream::connect(served.metrics).await {
            Ok(conn) => flood.push(conn),
            Err(err) => panic!("connecting to metrics: {err}"),
        }
    }
    let served_promptly = async {
        let mut client = ApiServerClient::connect(served.listen, &served.ca, &[b"http/1.1"]).await;
        assert_eq!(client.request("GET", "/readyz", Vec::new()).await.0, 200);
        let answer = client.review(fixture("create-generate-name.json")).await;
        assert!(answer.patch.is_some());
        let mut metrics = tokio::net::TcpStream::connect(served.metrics)
            .await
            .unwrap();
        metrics
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        metrics.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    };
    tokio::time::timeout(Duration::from_secs(10), served_promptly)
        .await
        .expect("the webhook answers during the flood");
    drop(flood);
    served.stop();
}
