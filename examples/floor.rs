//! The load test's floor: what any webhook on this stack pays per review.
//!
//! Serves the same TLS 1.3 + hyper stack as the real webhook
//! (`pull_secret_injector::webhook::server::serve_tls`, the certificate
//! loaded by `tls::CertStore`, an axum router), behind a `POST /mutate` that
//! only borrows `request.uid` out of the body (the rest is scanned, as any
//! JSON reader must, but not kept) and answers a fixed patch, the one the
//! real webhook returns for the benchmark's review:
//!
//! ```text
//! {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":<uid>,"allowed":true,"patchType":"JSONPatch","patch":<fixed>}}
//! ```
//!
//! No policy, no decision, no metrics, no logging per request: a webhook can
//! only get close to it, and `bench/load.sh` reports real/floor.
//!
//! ```text
//! cargo run --release --example floor -- --listen 127.0.0.1:18444 \
//!     --tls-cert /tmp/certs/tls.crt --tls-key /tmp/certs/tls.key
//! ```
//!
//! When the certificate files do not exist, a localhost set (`ca.crt`,
//! `tls.crt`, `tls.key`) is written next to `--tls-cert`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use clap::Parser;
use pull_secret_injector::webhook::certs;
use pull_secret_injector::webhook::http::DEFAULT_MAX_BODY_BYTES;
use pull_secret_injector::webhook::server::{self, Limits};
use pull_secret_injector::webhook::tls::CertStore;
use serde::Deserialize;

/// Minimal webhook for the load test's floor (see the file's documentation).
#[derive(Debug, Parser)]
struct Args {
    /// Address of the TLS listener.
    #[arg(long, default_value = "127.0.0.1:18444")]
    listen: SocketAddr,
    /// PEM certificate (chain); generated with its key when missing.
    #[arg(long, default_value = "certs/tls.crt")]
    tls_cert: PathBuf,
    /// PEM private key.
    #[arg(long, default_value = "certs/tls.key")]
    tls_key: PathBuf,
}

/// The patch the real webhook answers for the benchmark's review.
const PATCH: &str = r#"[{"op":"add","path":"/spec/imagePullSecrets","value":[{"name":"harbor-pull"},{"name":"dockerhub-creds"},{"name":"ghcr-acme"}]}]"#;

#[derive(Deserialize)]
struct Review<'a> {
    #[serde(borrow)]
    request: Request<'a>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    uid: &'a str,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    certs::ensure_dev_set(&args.tls_cert, &args.tls_key).context("cannot write certificates")?;
    let store = Arc::new(
        CertStore::load(&args.tls_cert, &args.tls_key)
            .context("cannot load the serving certificate")?,
    );
    let tls = store
        .server_config()
        .context("cannot build the TLS configuration")?;
    let head: Arc<str> = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"allowed":true,"patchType":"JSONPatch","patch":"{}","uid":"#,
        base64::engine::general_purpose::STANDARD.encode(PATCH)
    )
    .into();
    let router = Router::new()
        .route(
            "/mutate",
            post(move |body: Bytes| {
                let head = head.clone();
                async move { mutate(&head, &body) }
            }),
        )
        .layer(DefaultBodyLimit::max(DEFAULT_MAX_BODY_BYTES));
    let listener = server::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("floor listening on {}", listener.local_addr()?);
    server::serve_tls(listener, tls, router, Limits::default(), shutdown()).await;
    Ok(())
}

/// The whole per-request work of the floor: borrow the uid, answer.
fn mutate(head: &str, body: &[u8]) -> Response {
    let review: Review<'_> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    let mut answer = Vec::with_capacity(head.len() + review.request.uid.len() + 8);
    answer.extend_from_slice(head.as_bytes());
    // (A uid with escapes cannot be borrowed and gets 400 above;
    // kube-apiserver's UUIDs have none.) Writing a str into a Vec cannot fail.
    serde_json::to_writer(&mut answer, review.request.uid).unwrap_or_default();
    answer.extend_from_slice(b"}}");
    ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
}

/// Resolves on SIGINT or SIGTERM (what `bench/load.sh` sends on exit).
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
