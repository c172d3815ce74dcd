//! An open-loop load client with a precise schedule, to cross-check oha's
//! fixed-rate latencies in `bench/load.sh`.
//!
//! oha releases fixed-rate requests from tokio's timer, which fires in 1 ms
//! steps, and shares its core with its own worker threads; at 5,000/s its
//! tail says as much about the client as about the server. This client runs
//! the schedule and every connection on one thread (a single-threaded
//! runtime) and, between sends less than 2 ms apart, yields in a loop rather
//! than sleeping on the timer, so each request leaves within microseconds
//! of its due time. It keeps its core busy; give it one of its own.
//!
//! * request `i` is due at `start + i / rate`, whether or not earlier ones
//!   have been answered (open loop); a due request waits for a free
//!   connection, and that wait counts;
//! * latency is measured from the due time ("corrected", no coordinated
//!   omission) and from the actual write ("from send");
//! * how late the scheduler itself was is reported too, so the client's own
//!   share of the numbers is visible.
//!
//! Like kube-apiserver: kept-alive HTTP/1.1 over TLS (ALPN `http/1.1`, the
//! server verified against `--cacert`), `POST` with `Content-Type:
//! application/json`; the body is posted unchanged every time (one uid for
//! all, which the server does not care about). Prints one JSON object.
//!
//! ```text
//! cargo run --release --example rate_client -- --addr 127.0.0.1:8443 \
//!     --cacert certs/ca.crt --body review.json --rate 5000 --connections 8 --duration 15
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::{Mutex, mpsc};

/// Fixed-rate open-loop client (see the file's documentation).
#[derive(Debug, Parser)]
struct Args {
    /// Server address.
    #[arg(long)]
    addr: SocketAddr,
    /// CA certificate that signed the server's certificate.
    #[arg(long)]
    cacert: PathBuf,
    /// Request body (an AdmissionReview).
    #[arg(long)]
    body: PathBuf,
    /// Request path.
    #[arg(long, default_value = "/mutate?timeout=10s")]
    path: String,
    /// Name the server's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Requests per second.
    #[arg(long)]
    rate: u32,
    /// Kept-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Seconds of unmeasured warm-up at the same rate first.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
}

/// One answered request: (due → done, sent → done, due → sent) in ns.
type Sample = (u64, u64, u64);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let body = Bytes::from(std::fs::read(&args.body).context("reading --body")?);
    let tls = client_config(&std::fs::read(&args.cacert).context("reading --cacert")?)?;
    let name = ServerName::try_from(args.server_name.clone())?;
    let mut senders = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        senders.push(connect(args.addr, tls.clone(), name.clone()).await?);
    }

    // The schedule: due times, released by a task that sleeps on tokio's
    // (1 ms) timer only while the next send is far off, and otherwise
    // yields in a loop, so it releases each request within microseconds of
    // its due time while the connections keep being served on this thread.
    let (due_tx, due_rx) = mpsc::unbounded_channel::<(Instant, bool)>();
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let warmup = u64::from(args.rate) * args.warmup;
    let total = warmup + u64::from(args.rate) * args.duration;
    let scheduler = tokio::task::spawn(async move {
        let start = Instant::now() + Duration::from_millis(10);
        for i in 0..total {
            let due = start + period.mul_f64(i as f64);
            loop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                if due - now > Duration::from_millis(2) {
                    tokio::time::sleep(due - now - Duration::from_millis(1)).await;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            if due_tx.send((due, i >= warmup)).is_err() {
                return;
            }
        }
    });

    let due_rx = Arc::new(Mutex::new(due_rx));
    let mut workers = tokio::task::JoinSet::new();
    for mut sender in senders {
        let due_rx = due_rx.clone();
        let body = body.clone();
        let path = args.path.clone();
        workers.spawn(async move {
            let mut samples: Vec<Sample> = Vec::new();
            let mut errors = 0u64;
            loop {
                let Some((due, measured)) = due_rx.lock().await.recv().await else {
                    return (samples, errors);
                };
                let request = hyper::Request::post(path.as_str())
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .header("accept", "application/json, */*")
                    .body(Full::new(body.clone()))
                    .expect("request");
                let sent = Instant::now();
                let ok = match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status();
                        response.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                let done = Instant::now();
                if !measured {
                    continue;
                }
                if ok {
                    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                    samples.push((ns(done - due), ns(done - sent), ns(sent - due)));
                } else {
                    errors += 1;
                }
                if sender.ready().await.is_err() {
                    return (samples, errors + 1);
                }
            }
        });
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut errors = 0;
    while let Some(done) = workers.join_next().await {
        let (s, e) = done?;
        samples.extend(s);
        errors += e;
    }
    scheduler.await?;
    let elapsed = started.elapsed().as_secs_f64() - args.warmup as f64;

    let report = |pick: fn(&Sample) -> u64| {
        let mut v: Vec<u64> = samples.iter().map(pick).collect();
        v.sort_unstable();
        let q = |p: f64| {
            v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .map_or(0.0, |ns| *ns as f64 / 1e6)
        };
        serde_json::json!({
            "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "p99.9": q(0.999),
            "max": v.last().map_or(0.0, |ns| *ns as f64 / 1e6),
        })
    };
    let out = serde_json::json!({
        "rate": args.rate,
        "connections": args.connections,
        "answered": samples.len(),
        "errors": errors,
        "achieved_per_sec": samples.len() as f64 / elapsed.max(f64::EPSILON),
        "latency_ms": report(|s| s.0),
        "latency_from_send_ms": report(|s| s.1),
        "client_lag_ms": report(|s| s.2),
    });
    println!("{out}");
    Ok(())
}

fn client_config(ca_pem: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn connect(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::task::spawn(conn);
    Ok(sender)
}
