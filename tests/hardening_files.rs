#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Files and signals that must not take the process down, through the real
//! binary: alias bombs, endless and oversized inputs, a FIFO or `/dev/zero`
//! as the policy, an expired certificate, SIGHUP, and unreadable policy
//! files counted as rejected reloads. Every wait has a deadline.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ApiServerClient;
use pull_secret_injector::webhook::certs::{self, CertFiles};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pull-secret-injector");
const DEADLINE: Duration = Duration::from_secs(20);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Waits for `child` to exit, killing it and failing after [`DEADLINE`].
fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary with `stdin` as its standard input, under a deadline.
fn run_with(args: &[&str], stdin: Stdio, what: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes while waiting so that a chatty child cannot block.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let status = wait_exit(&mut child, what);
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dev_zero() -> Stdio {
    Stdio::from(std::fs::File::open("/dev/zero").unwrap())
}

#[test]
fn mutate_refuses_an_alias_bomb_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n");
    bomb.push_str(&format!("a0: &a0 [{}]\n", ["\"lol\""; 9].join(", ")));
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    bomb.push_str("spec: {containers: [{name: a, image: nginx}]}\n");
    let path = dir.path().join("bomb.yaml");
    std::fs::write(&path, &bomb).unwrap();
    let policy = repo("manifests/policy.yaml");
    let policy = policy.to_str().unwrap();

    let out = run_with(
        &["mutate", "--policy", policy, path.to_str().unwrap()],
        Stdio::null(),
        "mutate with an alias bomb",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("YAML aliases expand to more than 100000 nodes"),
        "{err}"
    );
    // The same bomb as a policy: refused by the policy loader, which never
    // expands aliases.
    let out = run_with(
        &["check-policy", path.to_str().unwrap()],
        Stdio::null(),
        "check-policy with an alias bomb",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("YAML aliases are not supported"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn endless_and_oversized_inputs_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let policy = repo("manifests/policy.yaml");
    let policy = policy.to_str().unwrap();
    let big = dir.path().join("big.yaml");
    let mut file = std::fs::File::create(&big).unwrap();
    let line = format!("# {}\n", "x".repeat(1023));
    for _ in 0..3 * 1024 {
        file.write_all(line.as_bytes()).unwrap();
    }
    drop(file);
    let big = big.to_str().unwrap();

    let cases: [(&[&str], Stdio, &str); 6] = [
        (
            &["check-policy", "/dev/zero"],
            Stdio::null(),
            "/dev/zero is larger than the limit of 1048576 bytes",
        ),
        (
            &["check-policy", big],
            Stdio::null(),
            "is larger than the limit of 1048576 bytes",
        ),
        (
            &["check-policy", "-"],
            dev_zero(),
            "stdin is larger than the limit of 1048576 bytes",
        ),
        (
            &["explain", "--policy", "/dev/zero", "nginx"],
            Stdio::null(),
            "/dev/zero is larger than the limit of 1048576 bytes",
        ),
        (
            &["mutate", "--policy", policy, "-"],
            dev_zero(),
            "stdin is larger than the limit of 8388608 bytes",
        ),
        (
            &["explain", "--policy", policy],
            dev_zero(),
            "stdin is larger than the limit of 8388608 bytes",
        ),
    ];
    for (args, stdin, needle) in cases {
        let out = run_with(args, stdin, &args.join(" "));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(needle),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    // A pipe is still fine for the offline commands (`<(kubectl ...)`).
    let text = std::fs::read(repo("manifests/policy.yaml")).unwrap();
    let mut child = Command::new(BIN)
        .args(["check-policy", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let status = wait_exit(&mut child, "check-policy from a pipe");
    assert!(status.success());
}

/// The server's stderr, one parsed JSON log line at a time.
struct Logs(mpsc::Receiver<String>);

impl Logs {
    /// The next line whose `message` starts with `message` (all of it, for
    /// `serving`) and that passes `keep`, failing after [`DEADLINE`].
    fn find(&self, message: &str, keep: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .0
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line {message:?} within {DEADLINE:?}"));
            let value: Value = serde_json::from_str(&line).unwrap();
            let text = value["message"].as_str().unwrap_or("");
            let hit = if message == "serving" {
                text == message
            } else {
                text.starts_with(message)
            };
            if hit && keep(&value) {
                return value;
            }
        }
    }

    /// The first line for each of `messages`, in whatever order they come.
    fn find_each(&self, messages: &[&str]) -> Vec<Value> {
        let mut found: Vec<Option<Value>> = vec![None; messages.len()];
        while found.iter().any(Option::is_none) {
            let line = self.find("", |l| {
                let text = l["message"].as_str().unwrap_or("");
                messages.iter().any(|m| text.starts_with(m))
            });
            let text = line["message"].as_str().unwrap_or("").to_owned();
            for (i, m) in messages.iter().enumerate() {
                if text.starts_with(m) && found[i].is_none() {
                    found[i] = Some(line.clone());
                }
            }
        }
        found.into_iter().map(Option::unwrap).collect()
    }
}

struct Served {
    child: Child,
    logs: Logs,
    /// The log lines before `serving`.
    startup: Vec<Value>,
    listen: SocketAddr,
    metrics: SocketAddr,
}

/// `serve` on loopback with JSON logs, no cluster, and the given policy
/// path and certificate files.
fn serve(policy: &Path, files: &CertFiles, extra: &[&str]) -> Served {
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--shutdown-grace", "0s"])
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--policy-file")
        .arg(policy)
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .args(extra)
        .env("KUBECONFIG", policy.with_extension("no-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info")
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
    let logs = Logs(rx);
    let startup = std::cell::RefCell::new(Vec::new());
    let serving = logs.find("", |l| {
        startup.borrow_mut().push(l.clone());
        l["message"] == "serving"
    });
    let listen = serving["listen"].as_str().unwrap().parse().unwrap();
    let metrics = serving["metrics"].as_str().unwrap().parse().unwrap();
    Served {
        child,
        logs,
        startup: startup.into_inner(),
        listen,
        metrics,
    }
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// `GET /metrics` over plain HTTP/1.1: the value of one series.
fn series(addr: SocketAddr, name: &str) -> Option<f64> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn stop(mut served: Served) {
    signal(&served.child, "TERM");
    let status = wait_exit(&mut served.child, "serve after SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// A FIFO or a symlink to `/dev/zero` as the policy: refused without
/// blocking (not ready, said in the log), and SIGTERM still stops it.
#[test]
fn a_fifo_or_a_device_as_the_policy_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let files = CertFiles::in_dir(dir.path());
    certs::write_set(&files, &certs::dev_hosts()).unwrap();
    let fifo = dir.path().join("policy.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let zero = dir.path().join("policy.zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();

    for (policy, says) in [(&fifo, "a FIFO"), (&zero, "a character device")] {
        let served = serve(policy, &files, &["--reload-interval", "100ms"]);
        let line = served
            .startup
            .iter()
            .find(|l| {
                l["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("policy not loaded")
            })
            .expect("the policy file is reported at startup");
        assert!(line["error"].as_str().unwrap().contains(says), "{line}");
        // Reloads keep running (and failing) without a busy core or a
        // second report; the rejection is counted once.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            series(
                served.metrics,
                r#"pull_secret_injector_policy_reloads_total{result="rejected"}"#
            ),
            Some(1.0)
        );
        stop(served);
    }
}

/// SIGHUP re-reads the policy file and the certificate at once and leaves
/// the process serving; an expired certificate never replaces the served
/// one, and a deleted policy file is counted as a rejected reload.
#[tokio::test]
async fn sighup_reloads_now_and_bad_files_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let files = CertFiles::in_dir(dir.path());
    let ca = certs::write_set(&files, &certs::dev_hosts()).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::copy(repo("manifests/policy.yaml"), &policy).unwrap();
    let served = serve(&policy, &files, &["--reload-interval", "1h"]);
    let mut client = ApiServerClient::connect(served.listen, &ca, &[b"http/1.1"]).await;
    assert_eq!(client.request("GET", "/readyz", Vec::new()).await.0, 200);

    // A policy edit: applied on SIGHUP, not an hour later.
    std::fs::write(
        &policy,
        "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n",
    )
    .unwrap();
    signal(&served.child, "HUP");
    served.logs.find("SIGHUP", |_| true);
    served.logs.find("policy loaded", |l| l["generation"] == 2);

    // An expired pair copied over the files: refused, said once, counted.
    let now = time::OffsetDateTime::now_utc();
    let expired = certs::Authority::generate("expired")
        .unwrap()
        .issue_for(
            &certs::dev_hosts(),
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap();
    std::fs::write(&files.cert, &expired.cert_pem).unwrap();
    std::fs::write(&files.key, &expired.key_pem).unwrap();
    // A deleted policy file at the same time.
    std::fs::remove_file(&policy).unwrap();
    signal(&served.child, "HUP");
    let lines = served
        .logs
        .find_each(&["certificate not reloaded", "policy not loaded"]);
    let error = |i: usize| lines[i]["error"].as_str().unwrap().to_owned();
    assert!(error(0).contains("expired since"), "{}", error(0));
    assert!(error(1).contains("No such file"), "{}", error(1));
    for name in [
        r#"pull_secret_injector_policy_reloads_total{result="rejected"}"#,
        r#"pull_secret_injector_certificate_reloads_total{result="rejected"}"#,
    ] {
        assert_eq!(series(served.metrics, name), Some(1.0), "{name}");
    }
    // Still serving, with the old certificate (a client trusting only the
    // old CA completes the handshake), and still ready.
    let mut fresh = ApiServerClient::connect(served.listen, &ca, &[b"http/1.1"]).await;
    assert_eq!(fresh.request("GET", "/readyz", Vec::new()).await.0, 200);
    assert_eq!(client.request("GET", "/healthz", Vec::new()).await.0, 200);
    stop(served);
}

#[test]
fn an_expired_certificate_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let files = CertFiles::in_dir(dir.path());
    let now = time::OffsetDateTime::now_utc();
    let expired = certs::Authority::generate("expired")
        .unwrap()
        .issue_for(
            &certs::dev_hosts(),
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap();
    std::fs::write(&files.cert, &expired.cert_pem).unwrap();
    std::fs::write(&files.key, &expired.key_pem).unwrap();
    let policy = repo("manifests/policy.yaml");
    let out = run_with(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--policy-file",
            policy.to_str().unwrap(),
            "--tls-cert",
            files.cert.to_str().unwrap(),
            "--tls-key",
            files.key.to_str().unwrap(),
        ],
        Stdio::null(),
        "serve with an expired certificate",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("cannot load the serving certificate") && err.contains("expired since"),
        "{err}"
    );
}
