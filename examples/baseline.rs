//! The load test's yardstick: the cost every webhook pays, and nothing more.
//!
//! Serves the same TLS stack as the real webhook
//! (`pull_secret_injector::webhook::server::serve_tls` with the certificate loaded by
//! `tls::CertStore`, so the same rustls/ring configuration and ALPN), behind
//! a router whose `POST /mutate` only parses the body into a
//! `serde_json::Value` and answers a fixed allowed response echoing the uid:
//!
//! ```text
//! {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":<uid>,"allowed":true}}
//! ```
//!
//! No policy, no patch, no metrics, no logging per request. `bench/load.sh`
//! runs it next to the real server and reports real/baseline.
//!
//! ```text
//! cargo run --release --example baseline -- --listen 127.0.0.1:18443 \
//!     --tls-cert /tmp/certs/tls.crt --tls-key /tmp/certs/tls.key
//! ```
//!
//! When the certificate files do not exist, a localhost set (`ca.crt`,
//! `tls.crt`, `tls.key`) is written next to `--tls-cert` with
//! `certs::write_set`, as `serve --dev` does.

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
use clap::Parser;
use pull_secret_injector::webhook::certs;
use pull_secret_injector::webhook::http::DEFAULT_MAX_BODY_BYTES;
use pull_secret_injector::webhook::server::{self, Limits};
use pull_secret_injector::webhook::tls::CertStore;
use serde_json::{Value, json};

/// Minimal webhook for load-test comparison (see the file's documentation).
#[derive(Debug, Parser)]
struct Args {
    /// Address of the TLS listener.
    #[arg(long, default_value = "127.0.0.1:18443")]
    listen: SocketAddr,
    /// PEM certificate (chain); generated with its key when missing.
    #[arg(long, default_value = "certs/tls.crt")]
    tls_cert: PathBuf,
    /// PEM private key.
    #[arg(long, default_value = "certs/tls.key")]
    tls_key: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Same runtime flavour as `serve`: multi-threaded, sized by
    // TOKIO_WORKER_THREADS or the CPUs this process may run on.
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
    // The same body limit as the real router, so both refuse the same bodies.
    let router = Router::new()
        .route("/mutate", post(mutate))
        .layer(DefaultBodyLimit::max(DEFAULT_MAX_BODY_BYTES));
    let listener = server::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("baseline listening on {}", listener.local_addr()?);
    server::serve_tls(listener, tls, router, Limits::default(), shutdown()).await;
    Ok(())
}

/// The whole per-request work of the baseline: parse, pick the uid, answer.
async fn mutate(body: Bytes) -> Response {
    let review: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    let uid = review
        .get("request")
        .and_then(|r| r.get("uid"))
        .cloned()
        .unwrap_or(Value::Null);
    let answer = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": true},
    });
    // Serializing a Value into memory cannot fail; an empty body would be
    // rejected by the client, which is the right outcome if it ever did.
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Resolves on SIGINT or SIGTERM (what `bench/load.sh` sends on exit).
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still stops the server.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
