//! Test harness: the real webhook on a TLS socket bound to port 0, and a
//! client that behaves like kube-apiserver (trusts only the CA, offers ALPN
//! `http/1.1`, posts to `/mutate?timeout=10s`, checks the answer the way the
//! apiserver does, and applies the patch with RFC 6902 semantics).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use pull_secret_injector::cmd::args::PolicySource;
use pull_secret_injector::cmd::serve::{KubeAccess, ServeConfig, Webhook};
use pull_secret_injector::webhook::certs;
use pull_secret_injector::webhook::http::{self, AppState};
use pull_secret_injector::webhook::server::Limits;
use pull_secret_injector::webhook::tls::CertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// The policy shipped in `manifests/policy.yaml`.
pub fn shipped_policy() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/policy.yaml");
    std::fs::read_to_string(path).expect("manifests/policy.yaml")
}

/// A fixture from `tests/fixtures`.
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture json")
}

/// The server's and the router's limits, and `--report-only`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestLimits {
    pub server: Limits,
    pub metrics: Option<Limits>,
    pub http: http::HttpLimits,
    pub report_only: bool,
}

/// `serve`'s configuration for tests: both listeners on port 0, no API
/// access, a zero shutdown grace.
pub fn serve_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    policy: PolicySource,
    limits: TestLimits,
) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: "127.0.0.1:0".parse().expect("addr"),
        tls_cert: cert.to_owned(),
        tls_key: key.to_owned(),
        policy,
        dev: false,
        reload_interval: Duration::from_secs(1),
        shutdown_grace: Duration::ZERO,
        server: limits.server,
        metrics_server: limits.metrics.unwrap_or_else(Limits::metrics),
        http: limits.http,
        namespace_lookup_timeout: Duration::from_secs(2),
        pod_name: None,
        kube: KubeAccess::Disabled,
        report_only: limits.report_only,
    }
}

/// A running webhook.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub ca_pem: String,
    pub state: Arc<AppState>,
    pub certs: Arc<CertStore>,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(policy: &str) -> TestServer {
        Self::start_with(policy, TestLimits::default()).await
    }

    pub async fn start_with(policy: &str, limits: TestLimits) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = certs::CertFiles::in_dir(dir.path());
        let ca_pem = certs::write_set(&files, &certs::dev_hosts()).expect("certs");
        Self::start_on(policy, limits, dir, &files.cert, &files.key, ca_pem).await
    }

    /// Serves the pair at `cert`/`key` (which `ca_pem` signed).
    pub async fn start_on(
        policy: &str,
        limits: TestLimits,
        dir: tempfile::TempDir,
        cert: &std::path::Path,
        key: &std::path::Path,
        ca_pem: String,
    ) -> TestServer {
        // The production wiring (build → bind → run) on port 0, with the
        // policy in a file like `--policy-file`.
        let policy_path = dir.path().join("policy.yaml");
        std::fs::write(&policy_path, policy).expect("write policy");
        let config = serve_config(cert, key, PolicySource::File(policy_path), limits);
        let server = Self::start_config(config, dir, ca_pem).await;
        assert!(
            server.state.policy.is_loaded(),
            "the test policy must be valid"
        );
        server
    }

    /// Runs the production wiring (build → bind → run) for `config`, whose
    /// listeners should be on port 0.
    pub async fn start_config(
        config: ServeConfig,
        dir: tempfile::TempDir,
        ca_pem: String,
    ) -> TestServer {
        let bound = Webhook::build(config)
            .await
            .expect("build")
            .bind()
            .await
            .expect("bind");
        let addr = bound.local_addr().expect("addr");
        let metrics_addr = bound.metrics_addr().expect("addr");
        let state = bound.state();
        let certs = bound.certs();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            bound
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        TestServer {
            addr,
            metrics_addr,
            ca_pem,
            state,
            certs,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A new kube-apiserver-like client connection.
    pub async fn client(&self) -> ApiServerClient {
        ApiServerClient::connect(self.addr, &self.ca_pem, &[b"http/1.1"]).await
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server drains")
                .expect("server task");
        }
    }
}

/// TLS client config trusting only `ca_pem`, offering `alpn`.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A bare TLS connection to `addr` (ALPN `http/1.1`), for writing HTTP by hand.
pub async fn raw_tls(addr: SocketAddr, ca_pem: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    TlsConnector::from(client_config(ca_pem, &[b"http/1.1"]))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

/// A kept-alive HTTP/1.1 connection like kube-apiserver's.
pub struct ApiServerClient {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub alpn: Option<Vec<u8>>,
}

static UID: AtomicU64 = AtomicU64::new(1);

/// A fresh uid per call, as kube-apiserver sends.
pub fn fresh_uid() -> String {
    format!(
        "00000000-0000-4000-8000-{:012x}",
        UID.fetch_add(1, Ordering::Relaxed)
    )
}

impl ApiServerClient {
    pub async fn connect(addr: SocketAddr, ca_pem: &str, alpn: &[&[u8]]) -> ApiServerClient {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let connector = TlsConnector::from(client_config(ca_pem, alpn));
        let tls = connector
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("TLS handshake against the CA");
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .expect("http handshake");
        tokio::spawn(conn);
        ApiServerClient { sender, alpn }
    }

    /// Sends a raw request; returns status and body.
    pub async fn request(&mut self, method: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("accept", "application/json, */*")
            .header("user-agent", "kube-apiserver-admission")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        self.sender.ready().await.expect("connection ready");
        let resp = self.sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body.to_vec())
    }

    /// Posts a review as kube-apiserver does (fresh uid, trailing newline).
    pub async fn review(&mut self, mut review: Value) -> Answer {
        review["request"]["uid"] = Value::String(fresh_uid());
        let mut body = serde_json::to_vec(&review).expect("json");
        body.push(b'\n');
        let (status, bytes) = self.request("POST", "/mutate?timeout=10s", body).await;
        Answer::check(&review, status, &bytes)
    }
}

/// A response that passed kube-apiserver's checks.
#[derive(Debug)]
pub struct Answer {
    pub response: Value,
    pub patch: Option<json_patch::Patch>,
    pub warnings: Vec<String>,
}

impl Answer {
    /// The checks of k8s.io/apiserver's webhook response handling.
    pub fn check(request: &Value, status: u16, body: &[u8]) -> Answer {
        assert!(
            (200..=206).contains(&status),
            "status {status}: {}",
            String::from_utf8_lossy(body)
        );
        let response: Value = serde_json::from_slice(body).expect("JSON body");
        assert_eq!(
            response["apiVersion"], request["apiVersion"],
            "apiVersion echoed"
        );
        assert_eq!(response["kind"], "AdmissionReview");
        let r = &response["response"];
        assert_eq!(r["uid"], request["request"]["uid"], "uid echoed");
        assert_eq!(r["allowed"], true);
        let patch = match (r.get("patch"), r.get("patchType")) {
            (None, None) => None,
            (Some(p), Some(t)) => {
                assert_eq!(t, "JSONPatch");
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(p.as_str().expect("patch is a base64 string"))
                    .expect("standard base64");
                Some(serde_json::from_slice(&raw).expect("JSON Patch document"))
            }
            other => panic!("patch and patchType must come together: {other:?}"),
        };
        let warnings = r
            .get("warnings")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .map(|s| s.as_str().expect("string").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        Answer {
            response,
            patch,
            warnings,
        }
    }

    /// The request's object with the patch applied (as kube-apiserver
    /// would; failure to apply is a 500 for the user, so it fails the test).
    pub fn apply_to(&self, object: &Value) -> Value {
        let mut doc = object.clone();
        if let Some(patch) = &self.patch {
            json_patch::patch(&mut doc, patch).expect("patch applies to the request's object");
        }
        doc
    }
}
