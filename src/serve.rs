//! The `serve` command: wires the policy source, the certificate, the
//! listeners and the background reloaders together, and shuts them down in
//! order on SIGTERM/SIGINT (unready → grace → close listener → drain).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::sync::watch;

use crate::certs;
use crate::cli::ServeArgs;
use crate::http::{self, AppState};
use crate::namespaces::NamespaceCache;
use crate::server::{self, Limits};
use crate::sources::{Applied, FileSource, PolicyStore};
use crate::telemetry::{self, Metrics};
use crate::tls::{CertStore, Reload};

/// The development policy `serve --dev` uses unless told otherwise.
const DEV_POLICY: &str = "manifests/policy.yaml";
/// The example review the printed curl posts.
const DEV_REVIEW: &str = "tests/fixtures/create-generate-name.json";

/// Where the policy comes from.
#[derive(Debug, Clone)]
enum PolicySource {
    File(PathBuf),
    ConfigMap { namespace: String, name: String },
}

/// `serve`, validated.
#[derive(Debug)]
struct Config {
    listen: SocketAddr,
    metrics_listen: SocketAddr,
    policy: PolicySource,
    args: ServeArgs,
}

impl Config {
    fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let host = if args.dev {
            [127, 0, 0, 1]
        } else {
            [0, 0, 0, 0]
        };
        let listen = args.listen.unwrap_or(SocketAddr::from((host, 8443)));
        let metrics_listen = args
            .metrics_listen
            .unwrap_or(SocketAddr::from((host, 9090)));
        let policy = match (&args.policy_file, &args.policy_configmap) {
            (Some(path), None) => PolicySource::File(path.clone()),
            (None, Some(spec)) => {
                let Some((namespace, name)) = spec
                    .split_once('/')
                    .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
                else {
                    bail!("--policy-configmap must be NAMESPACE/NAME, got {spec:?}");
                };
                PolicySource::ConfigMap {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                }
            }
            (None, None) if args.dev => PolicySource::File(PathBuf::from(DEV_POLICY)),
            (None, None) => {
                bail!(
                    "no policy source: give --policy-file PATH or --policy-configmap NAMESPACE/NAME"
                )
            }
            (Some(_), Some(_)) => bail!("give only one of --policy-file and --policy-configmap"),
        };
        Ok(Config {
            listen,
            metrics_listen,
            policy,
            args,
        })
    }
}

/// Runs `serve` until a shutdown signal, on a multi-threaded runtime.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let _log_guard = telemetry::init_logging(args.log_format);
    let config = Config::from_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

/// Creates a localhost certificate set next to `cert` when none is there.
fn ensure_dev_certs(cert: &Path, key: &Path) -> anyhow::Result<()> {
    if cert.exists() && key.exists() {
        return Ok(());
    }
    let dir = cert.parent().unwrap_or(Path::new("."));
    let files = certs::CertFiles {
        ca: dir.join("ca.crt"),
        cert: cert.to_owned(),
        key: key.to_owned(),
    };
    certs::write_set(&files, &certs::dev_hosts())?;
    tracing::info!(ca = %files.ca.display(), cert = %cert.display(), "generated a development certificate for localhost");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let args = &config.args;
    if args.dev {
        ensure_dev_certs(&args.tls_cert, &args.tls_key)?;
    }
    let metrics = Arc::new(Metrics::new());
    let certs = Arc::new(
        CertStore::load(&args.tls_cert, &args.tls_key)
            .context("cannot load the serving certificate")?,
    );
    log_certificate(&certs, &metrics);
    let tls_config = certs
        .server_config()
        .context("cannot build the TLS configuration")?;
    let policy = Arc::new(PolicyStore::with_metrics(metrics.clone()));

    let mut state = AppState::new(policy.clone(), metrics.clone());
    state.certs = Some(certs.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let client = match &config.policy {
        PolicySource::File(path) => {
            let mut reloader = Reloader::default();
            let source = FileSource::new(path);
            reloader.policy_file(&source, &policy);
            tasks.spawn(every(args.reload_interval, stop_rx.clone(), {
                let policy = policy.clone();
                move || reloader.policy_file(&source, &policy)
            }));
            optional_client(args.dev).await
        }
        PolicySource::ConfigMap { namespace, name } => {
            let client = kube::Client::try_default()
                .await
                .context("cannot reach the Kubernetes API for --policy-configmap")?;
            tasks.spawn(crate::configmap::watch(
                client.clone(),
                namespace.clone(),
                name.clone(),
                policy.clone(),
                stop_rx.clone(),
            ));
            Some(client)
        }
    };
    if let Some(client) = client {
        let (cache, task) =
            NamespaceCache::start(client, args.namespace_lookup_timeout, stop_rx.clone());
        tasks.spawn(task);
        state.namespaces = Some(cache);
    }
    tasks.spawn(every(args.reload_interval, stop_rx.clone(), {
        let certs = certs.clone();
        let metrics = metrics.clone();
        let mut reloader = Reloader::default();
        move || reloader.certificate(&certs, &metrics)
    }));

    let state = Arc::new(state);
    let router = http::router(
        state.clone(),
        http::HttpLimits {
            max_body_bytes: args.max_body_bytes,
            ..http::HttpLimits::default()
        },
    );
    let listener = server::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let metrics_listener = server::bind(config.metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {} for metrics", config.metrics_listen))?;
    let local = listener.local_addr()?;
    tracing::info!(listen = %local, metrics = %metrics_listener.local_addr()?, "serving");
    if args.dev {
        print_dev_hint(local, &args.tls_cert);
    }

    tasks.spawn({
        let mut stop = stop_rx.clone();
        let router = http::metrics_router(metrics.clone());
        async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(err) = server::serve_plain(metrics_listener, router, shutdown).await {
                tracing::error!(error = %err, "metrics listener failed");
            }
        }
    });

    let limits = Limits {
        handshake: args.handshake_timeout,
        drain: args.drain_timeout,
        max_connections: args.max_connections,
        ..Limits::default()
    };
    let grace = args.shutdown_grace;
    let shutdown = {
        let state = state.clone();
        async move {
            wait_for_signal().await;
            tracing::info!(grace = ?grace, "shutdown requested: unready, serving through the grace period");
            state.start_draining();
            tokio::time::sleep(grace).await;
        }
    };
    server::serve_tls(listener, tls_config, router, limits, shutdown).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// A Kubernetes client for namespace labels when serving from a file: none
/// in `--dev`, and none (with a note) where no kubeconfig or in-cluster
/// configuration exists.
async fn optional_client(dev: bool) -> Option<kube::Client> {
    if dev {
        return None;
    }
    match kube::Client::try_default().await {
        Ok(client) => Some(client),
        Err(err) => {
            tracing::info!(error = %err, "no Kubernetes API access: rules with a namespace selector will not match");
            None
        }
    }
}

/// Runs `f` every `interval` until `stop` turns true.
async fn every(interval: Duration, mut stop: watch::Receiver<bool>, mut f: impl FnMut() + Send) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => f(),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One periodic reload: remembers the last failure, so that files that stay
/// broken are reported once (and again when the failure changes), not at
/// every interval, and says when they are good again.
#[derive(Default)]
struct Reloader {
    failing: Option<String>,
}

impl Reloader {
    /// Whether `err` is news (and remembers it).
    fn new_failure(&mut self, err: &dyn std::fmt::Display) -> bool {
        let text = err.to_string();
        let news = self.failing.as_deref() != Some(text.as_str());
        self.failing = Some(text);
        news
    }

    fn policy_file(&mut self, source: &FileSource, policy: &PolicyStore) {
        match source.reload(policy) {
            Ok(Applied::Unchanged) => {
                if self.failing.take().is_some() {
                    tracing::info!(path = %source.path().display(), "policy file is back to the policy in force");
                }
            }
            Ok(Applied::Loaded(generation)) => {
                self.failing = None;
                tracing::info!(path = %source.path().display(), generation, "policy loaded");
            }
            Err(err) => {
                if self.new_failure(&err) {
                    tracing::error!(error = %err, "policy not loaded; the last valid policy stays in force");
                }
            }
        }
    }

    fn certificate(&mut self, certs: &CertStore, metrics: &Metrics) {
        match certs.reload() {
            Ok(Reload::Unchanged) => {
                if self.failing.take().is_some() {
                    tracing::info!(cert = %certs.cert_path().display(), "certificate files are back to the pair in service");
                }
            }
            Ok(Reload::Replaced) => {
                self.failing = None;
                metrics.certificate_reload(true);
                log_certificate(certs, metrics);
            }
            Err(err) => {
                if self.new_failure(&err) {
                    metrics.certificate_reload(false);
                    tracing::error!(error = %err, "certificate not reloaded; the previous one stays in service");
                }
            }
        }
    }
}

fn log_certificate(certs: &CertStore, metrics: &Metrics) {
    metrics.certificate(certs.not_after_unix());
    match certs.not_after_unix() {
        Some(t) => {
            let days_left = certs
                .not_after()
                .and_then(|at| at.duration_since(std::time::SystemTime::now()).ok())
                .map_or(0, |left| left.as_secs() / 86_400);
            if days_left < 14 {
                tracing::warn!(cert = %certs.cert_path().display(), not_after_unix = t, days_left, "serving certificate loaded (expires within two weeks: renew it)");
            } else {
                tracing::info!(cert = %certs.cert_path().display(), not_after_unix = t, days_left, "serving certificate loaded");
            }
        }
        None => {
            tracing::warn!(cert = %certs.cert_path().display(), "serving certificate loaded; its expiry could not be read")
        }
    }
}

fn print_dev_hint(addr: SocketAddr, cert: &Path) {
    let ca = cert.parent().unwrap_or(Path::new(".")).join("ca.crt");
    println!(
        "\npull-secret-injector is serving on https://{addr}. Try it:\n\n  curl --cacert {} -H 'Content-Type: application/json' --data-binary @{DEV_REVIEW} 'https://localhost:{}/mutate?timeout=10s'\n\nThe response's .response.patch is base64 of the JSON Patch (decode with `base64 -d`).\n",
        ca.display(),
        addr.port()
    );
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(metrics: &Metrics, series: &str) -> String {
        metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with(series) && l.contains("rejected"))
            .collect()
    }

    #[test]
    fn a_certificate_that_stays_broken_is_counted_once_per_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = certs::CertFiles::in_dir(dir.path());
        certs::write_set(&files, &certs::dev_hosts()).expect("certs");
        let store = CertStore::load(&files.cert, &files.key).expect("loads");
        let metrics = Metrics::new();
        let mut reloader = Reloader::default();
        let series = "pull_secret_injector_certificate_reloads_total";

        // A key that does not match the certificate, seen at every interval.
        let other = tempfile::tempdir().expect("tempdir");
        let other_files = certs::CertFiles::in_dir(other.path());
        certs::write_set(&other_files, &certs::dev_hosts()).expect("certs");
        let good_key = std::fs::read(&files.key).expect("read");
        std::fs::copy(&other_files.key, &files.key).expect("copy");
        for _ in 0..3 {
            reloader.certificate(&store, &metrics);
        }
        assert!(
            rejected(&metrics, series).ends_with(" 1"),
            "{}",
            metrics.encode()
        );

        // Fixed, then broken again: a new failure, counted again.
        std::fs::write(&files.key, &good_key).expect("write");
        reloader.certificate(&store, &metrics);
        assert!(reloader.failing.is_none());
        std::fs::remove_file(&files.key).expect("rm");
        reloader.certificate(&store, &metrics);
        reloader.certificate(&store, &metrics);
        assert!(
            rejected(&metrics, series).ends_with(" 2"),
            "{}",
            metrics.encode()
        );
    }

    #[test]
    fn a_policy_file_that_stays_invalid_is_counted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.yaml");
        std::fs::write(
            &path,
            "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n",
        )
        .expect("write");
        let metrics = Arc::new(Metrics::new());
        let store = PolicyStore::with_metrics(metrics.clone());
        let source = FileSource::new(&path);
        let mut reloader = Reloader::default();
        reloader.policy_file(&source, &store);
        std::fs::write(&path, "rules: [{name: Bad}]\n").expect("write");
        for _ in 0..3 {
            reloader.policy_file(&source, &store);
        }
        let series = "pull_secret_injector_policy_reloads_total";
        assert!(
            rejected(&metrics, series).ends_with(" 1"),
            "{}",
            metrics.encode()
        );
        assert!(reloader.failing.is_some());
        assert_eq!(store.current().expect("kept").generation, 1);
    }
}
