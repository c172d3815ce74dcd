//! `serve`: the webhook. Its flags, validated once into a [`ServeConfig`];
//! then [`Webhook::build`] (certificate, policy, state) → [`Webhook::bind`]
//! (both listeners, the bound addresses known) → [`Bound::run`] (supervised
//! reloaders and watches, the listeners, and the ordered shutdown: unready →
//! grace → close listener → drain). Tests start the server through the same
//! three steps on port 0.
//!
//! Signals: SIGTERM and SIGINT shut down as above. SIGHUP re-reads the
//! policy file and the certificate at once (a ConfigMap policy is watched
//! live anyway) and is logged; it never ends the process.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::args::{
    PolicySource, PolicySourceArgs, parse_body_limit, parse_connection_limit, parse_duration,
    parse_positive_duration,
};
use crate::k8s::configmap;
use crate::k8s::namespaces::NamespaceCache;
use crate::runtime::policy_store::{FileSource, PolicyStore};
use crate::runtime::reload::Reloader;
use crate::runtime::supervise::{Supervisor, every, wait_for_signal};
use crate::runtime::telemetry::{self, LogFormat, Metrics};
use crate::webhook::certs;
use crate::webhook::http::{self, AppState, HttpLimits};
use crate::webhook::server::{self, Limits};
use crate::webhook::tls::{CertStore, Reload};

/// The development policy `serve --dev` uses unless told otherwise.
const DEV_POLICY: &str = "manifests/policy.yaml";
/// The example review the printed curl posts.
const DEV_REVIEW: &str = "tests/fixtures/create-generate-name.json";

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTPS listener [default: 0.0.0.0:8443; 127.0.0.1:8443 with --dev].
    #[arg(long, env = "PSI_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain served on the HTTPS listener (re-read on change).
    #[arg(long, env = "PSI_TLS_CERT", default_value = "certs/tls.crt")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate (re-read on change).
    #[arg(long, env = "PSI_TLS_KEY", default_value = "certs/tls.key")]
    pub tls_key: PathBuf,
    #[command(flatten)]
    pub policy: PolicySourceArgs,
    /// Address of the plain-HTTP metrics listener [default: 0.0.0.0:9090; 127.0.0.1:9090 with --dev].
    #[arg(long, env = "PSI_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Local development: make a localhost certificate in certs/ if none is
    /// there, use manifests/policy.yaml unless a policy is given, bind
    /// 127.0.0.1, and print a curl command to try it.
    #[arg(long, env = "PSI_DEV")]
    pub dev: bool,
    /// Log line format.
    #[arg(long, env = "PSI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// How often the policy file and the certificate files are re-read.
    #[arg(long, env = "PSI_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_positive_duration)]
    pub reload_interval: Duration,
    /// After SIGTERM: how long to keep serving while unready, so endpoints
    /// stop routing to this pod before the listener closes.
    #[arg(long, env = "PSI_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// After the grace: how long in-flight requests may take to finish.
    #[arg(long, env = "PSI_DRAIN_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Longest a client may take for the TLS handshake.
    #[arg(long, env = "PSI_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub handshake_timeout: Duration,
    /// Largest request body accepted, in bytes. Reviews being received may
    /// hold four times this much between them; more wait for none and get 503.
    #[arg(long, env = "PSI_MAX_BODY_BYTES", default_value_t = http::DEFAULT_MAX_BODY_BYTES, value_parser = parse_body_limit)]
    pub max_body_bytes: usize,
    /// Most TLS connections open at once. When all are taken, the one quiet
    /// the longest that is not being answered is closed to make room.
    #[arg(long, env = "PSI_MAX_CONNECTIONS", default_value_t = server::DEFAULT_MAX_CONNECTIONS, value_parser = parse_connection_limit)]
    pub max_connections: usize,
    /// Most connections to the metrics listener open at once (same rule).
    #[arg(long, env = "PSI_METRICS_MAX_CONNECTIONS", default_value_t = server::DEFAULT_METRICS_MAX_CONNECTIONS, value_parser = parse_connection_limit)]
    pub metrics_max_connections: usize,
    /// A connection with no request open for this long is closed; for
    /// HTTP/1.1 also the deadline for a request's headers.
    #[arg(long, env = "PSI_IDLE_TIMEOUT", default_value = "120s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,
    /// Namespace labels for selectors: how long to wait when fetching a
    /// namespace the cache has not seen yet.
    #[arg(long, env = "PSI_NAMESPACE_LOOKUP_TIMEOUT", default_value = "2s", value_parser = parse_positive_duration)]
    pub namespace_lookup_timeout: Duration,
    /// This replica's pod name, reported as the instance in Events.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Report only: allow every Pod unchanged, but warn, log, count and
    /// annotate (`would-inject-secrets`) as if patching. For rolling out.
    #[arg(long, env = "PSI_REPORT_ONLY")]
    pub report_only: bool,
}

/// How `serve` reaches the Kubernetes API.
#[derive(Clone, Default)]
pub enum KubeAccess {
    /// The usual kubeconfig or in-cluster configuration; without one, a
    /// file-policy webhook runs without namespace labels.
    #[default]
    Discover,
    /// No API access (`--dev`, tests).
    Disabled,
    /// This client (tests against a fake API server).
    Client(kube::Client),
}

/// `serve`, validated.
pub struct ServeConfig {
    /// HTTPS listener.
    pub listen: SocketAddr,
    /// Plain-HTTP metrics listener.
    pub metrics_listen: SocketAddr,
    /// Serving certificate chain (PEM).
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    pub tls_key: PathBuf,
    /// Where the policy comes from.
    pub policy: PolicySource,
    /// `--dev`: generate a certificate, print a curl to try it.
    pub dev: bool,
    /// How often the policy file and the certificate are re-read.
    pub reload_interval: Duration,
    /// After a shutdown signal: serving while unready.
    pub shutdown_grace: Duration,
    /// TLS listener limits.
    pub server: Limits,
    /// Metrics listener limits.
    pub metrics_server: Limits,
    /// Router limits.
    pub http: HttpLimits,
    /// Wait for a namespace the cache has not seen yet.
    pub namespace_lookup_timeout: Duration,
    /// This replica's name, for Events.
    pub pod_name: Option<String>,
    /// How to reach the Kubernetes API.
    pub kube: KubeAccess,
    /// `--report-only`: never patch; report what a patch would add.
    pub report_only: bool,
}

impl ServeConfig {
    /// Validates the flags. Every field of [`ServeArgs`] is taken here, so a
    /// flag that is declared but not wired is a compile error.
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let ServeArgs {
            listen,
            tls_cert,
            tls_key,
            policy,
            metrics_listen,
            dev,
            log_format: _,
            reload_interval,
            shutdown_grace,
            drain_timeout,
            handshake_timeout,
            max_body_bytes,
            max_connections,
            metrics_max_connections,
            idle_timeout,
            namespace_lookup_timeout,
            pod_name,
            report_only,
        } = args;
        let host = if dev { [127, 0, 0, 1] } else { [0, 0, 0, 0] };
        Ok(ServeConfig {
            listen: listen.unwrap_or(SocketAddr::from((host, 8443))),
            metrics_listen: metrics_listen.unwrap_or(SocketAddr::from((host, 9090))),
            tls_cert,
            tls_key,
            policy: policy.into_source(dev.then_some(Path::new(DEV_POLICY)))?,
            dev,
            reload_interval,
            shutdown_grace,
            server: Limits {
                handshake: handshake_timeout,
                idle: idle_timeout,
                drain: drain_timeout,
                max_connections,
            },
            metrics_server: Limits {
                handshake: handshake_timeout,
                idle: idle_timeout,
                drain: drain_timeout,
                max_connections: metrics_max_connections,
            },
            http: HttpLimits {
                max_body_bytes,
                ..HttpLimits::default()
            },
            namespace_lookup_timeout,
            pod_name,
            kube: if dev {
                KubeAccess::Disabled
            } else {
                KubeAccess::Discover
            },
            report_only,
        })
    }
}

/// Runs `serve` until a shutdown signal, on a multi-threaded runtime.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let _log_guard = telemetry::init_logging(args.log_format);
    let config = ServeConfig::from_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Installed first, so that a SIGHUP during start-up is not fatal.
        let hangups = hangup_signals();
        let grace = config.shutdown_grace;
        let bound = Webhook::build(config).await?.bind().await?;
        let state = bound.state();
        if let Some(hangups) = hangups {
            tokio::spawn(reload_on_hangup(hangups, bound.reload_trigger()));
        }
        bound
            .run(async move {
                wait_for_signal().await;
                tracing::info!(grace = ?grace, "shutdown requested: unready, serving through the grace period");
                state.start_draining();
                tokio::time::sleep(grace).await;
            })
            .await
    })
}

/// The webhook, built: certificate loaded, policy source ready, state made.
pub struct Webhook {
    config: ServeConfig,
    state: Arc<AppState>,
    certs: Arc<CertStore>,
    metrics: Arc<Metrics>,
    policy: Arc<PolicyStore>,
    client: Option<kube::Client>,
    namespaces: Option<Arc<NamespaceCache>>,
    supervisor: Supervisor,
    /// Bumped to make the file reloaders run now (SIGHUP).
    reload_now: Arc<watch::Sender<u64>>,
    /// What the first read of the policy file found.
    policy_reloader: Reloader,
}

impl Webhook {
    /// Loads the certificate, reads the policy file once (a ConfigMap is
    /// read by its watch once running), and connects to the API server.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Webhook> {
        if config.dev {
            ensure_dev_certs(&config.tls_cert, &config.tls_key)?;
        }
        let metrics = Arc::new(Metrics::new());
        let certs = Arc::new(
            CertStore::load(&config.tls_cert, &config.tls_key)
                .context("cannot load the serving certificate")?,
        );
        log_certificate(&certs, &metrics);
        let policy = Arc::new(PolicyStore::with_metrics(metrics.clone()));
        let client = match (&config.kube, &config.policy) {
            (KubeAccess::Client(client), _) => Some(client.clone()),
            (KubeAccess::Disabled, PolicySource::ConfigMap { .. }) => {
                anyhow::bail!("--policy-configmap needs access to the Kubernetes API")
            }
            (KubeAccess::Disabled, PolicySource::File(_)) => None,
            (KubeAccess::Discover, PolicySource::ConfigMap { .. }) => Some(
                kube::Client::try_default()
                    .await
                    .context("cannot reach the Kubernetes API for --policy-configmap")?,
            ),
            (KubeAccess::Discover, PolicySource::File(_)) => optional_client().await,
        };
        // The reloader that runs later carries on from this first read, so
        // a file that is broken from the start is reported once.
        let mut policy_reloader = Reloader::default();
        if let PolicySource::File(path) = &config.policy {
            // The first read, like every later one, runs on the blocking
            // pool: the file may be slow (a network volume) or large.
            let (source, store, m) = (FileSource::new(path), policy.clone(), metrics.clone());
            policy_reloader = tokio::task::spawn_blocking(move || {
                policy_reloader.policy_file(&source, &store, &m);
                policy_reloader
            })
            .await
            .context("the first policy read failed")?;
        }
        let supervisor = Supervisor::new();
        let mut state = AppState::new(policy.clone(), metrics.clone());
        state.certs = Some(certs.clone());
        state.health = supervisor.health();
        state.report_only = config.report_only;
        let namespaces = client
            .clone()
            .map(|client| NamespaceCache::new(client, config.namespace_lookup_timeout));
        if let Some(cache) = &namespaces {
            state.namespaces = Some(cache.clone());
        }
        Ok(Webhook {
            config,
            state: Arc::new(state),
            certs,
            metrics,
            policy,
            client,
            namespaces,
            supervisor,
            reload_now: Arc::new(watch::channel(0).0),
            policy_reloader,
        })
    }

    /// Binds the HTTPS and the metrics listeners.
    pub async fn bind(self) -> anyhow::Result<Bound> {
        let listen = self.config.listen;
        let metrics_listen = self.config.metrics_listen;
        let listener = server::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let metrics_listener = server::bind(metrics_listen)
            .await
            .with_context(|| format!("cannot listen on {metrics_listen} for metrics"))?;
        Ok(Bound {
            webhook: self,
            listener,
            metrics_listener,
        })
    }
}

/// The webhook with its listeners bound, not serving yet.
pub struct Bound {
    webhook: Webhook,
    listener: TcpListener,
    metrics_listener: TcpListener,
}

impl Bound {
    /// The HTTPS listener's address (the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics_listener.local_addr()
    }

    /// What the handlers share (policy, certificate, readiness).
    pub fn state(&self) -> Arc<AppState> {
        self.webhook.state.clone()
    }

    /// The served certificate.
    pub fn certs(&self) -> Arc<CertStore> {
        self.webhook.certs.clone()
    }

    /// What makes the policy file and certificate reloaders run at once
    /// (bump it, as SIGHUP does).
    pub fn reload_trigger(&self) -> Arc<watch::Sender<u64>> {
        self.webhook.reload_now.clone()
    }

    /// Serves until `shutdown` completes, then closes the listener, drains
    /// connections and stops the background tasks.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Bound {
            webhook,
            listener,
            metrics_listener,
        } = self;
        let Webhook {
            config,
            state,
            certs,
            metrics,
            policy,
            client,
            namespaces,
            mut supervisor,
            reload_now,
            policy_reloader,
        } = webhook;
        let tls_config = certs
            .server_config()
            .context("cannot build the TLS configuration")?;
        let interval = config.reload_interval;
        match &config.policy {
            PolicySource::File(path) => {
                let source = FileSource::new(path);
                let (policy, metrics) = (policy.clone(), metrics.clone());
                let wake = reload_now.subscribe();
                let mut first = Some(policy_reloader);
                supervisor.spawn("policy-file-reloader", move |stop| {
                    let (source, policy, metrics) =
                        (source.clone(), policy.clone(), metrics.clone());
                    let mut reloader = first.take().unwrap_or_default();
                    every(interval, wake.clone(), stop, move || {
                        reloader.policy_file(&source, &policy, &metrics)
                    })
                });
            }
            PolicySource::ConfigMap { namespace, name } => {
                let client = client.clone().context("no Kubernetes client")?;
                let watch = configmap::Watch {
                    client,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    store: policy.clone(),
                    instance: config.pod_name.clone(),
                };
                supervisor.spawn("policy-configmap-watch", move |stop| {
                    watch.clone().run(stop)
                });
            }
        }
        if let Some(cache) = namespaces {
            supervisor.spawn("namespace-cache", move |stop| cache.clone().run(stop));
        }
        supervisor.spawn("certificate-reloader", {
            let (certs, metrics) = (certs.clone(), metrics.clone());
            let wake = reload_now.subscribe();
            move |stop| {
                let (certs, metrics) = (certs.clone(), metrics.clone());
                let mut reloader = Reloader::default();
                every(interval, wake.clone(), stop, move || {
                    reloader.certificate(&certs, &metrics)
                })
            }
        });

        let local = listener.local_addr()?;
        tracing::info!(listen = %local, metrics = %metrics_listener.local_addr()?, report_only = config.report_only, "serving");
        if config.report_only {
            tracing::warn!(
                "report-only mode: pods are never patched; decisions are logged and counted with outcome \"reported\" and annotated would-inject-secrets"
            );
        }
        if config.dev {
            print_dev_hint(local, &config.tls_cert);
        }
        let (tls_limits, metrics_limits) = fd_budget(config.server, config.metrics_server);
        let metrics_router = http::metrics_router(metrics.clone());
        let mut metrics_stop = supervisor.stop_signal();
        let metrics_server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = metrics_stop.wait_for(|s| *s).await;
            };
            server::serve_plain(metrics_listener, metrics_router, metrics_limits, shutdown).await;
        });
        let router = http::router(state.clone(), config.http);
        server::serve_tls(listener, tls_config, router, tls_limits, shutdown).await;
        supervisor.shutdown().await;
        let _ = metrics_server.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// File descriptors kept for everything but client connections: the
/// listeners, the policy and certificate files, the API client, logs.
const RESERVED_FDS: u64 = 64;

/// Splits the process's file descriptors between the two listeners: raises
/// the soft limit to the hard one, and when the connection caps together
/// still do not fit beside [`RESERVED_FDS`], lowers them (the metrics
/// listener keeps at most an eighth) and says so. Without this, idle
/// connections to one port could use up the descriptors and make the other
/// port and file reloads fail with "Too many open files".
fn fd_budget(tls: Limits, metrics: Limits) -> (Limits, Limits) {
    let limit = server::raise_fd_limit();
    let wanted = (tls.max_connections + metrics.max_connections) as u64 + RESERVED_FDS;
    if wanted <= limit {
        return (tls, metrics);
    }
    let usable = usize::try_from(limit.saturating_sub(RESERVED_FDS))
        .unwrap_or(usize::MAX)
        .max(2);
    let metrics_max = metrics.max_connections.min(usable / 8).max(1);
    let tls_max = tls.max_connections.min(usable - metrics_max).max(1);
    tracing::warn!(
        fd_limit = limit,
        max_connections = tls_max,
        metrics_max_connections = metrics_max,
        "the file-descriptor limit cannot hold the connection caps; serving with lower caps"
    );
    (
        Limits {
            max_connections: tls_max,
            ..tls
        },
        Limits {
            max_connections: metrics_max,
            ..metrics
        },
    )
}

/// Creates a localhost certificate set next to `cert` when none is there.
fn ensure_dev_certs(cert: &Path, key: &Path) -> anyhow::Result<()> {
    if let Some(files) = certs::ensure_dev_set(cert, key)? {
        tracing::info!(ca = %files.ca.display(), cert = %cert.display(), "generated a development certificate for localhost");
    }
    Ok(())
}

/// A Kubernetes client for namespace labels when serving from a file; none
/// (with a note) where no kubeconfig or in-cluster configuration exists.
async fn optional_client() -> Option<kube::Client> {
    match kube::Client::try_default().await {
        Ok(client) => Some(client),
        Err(err) => {
            tracing::info!(error = %err, "no Kubernetes API access: rules with a namespace selector will not match");
            None
        }
    }
}

/// The certificate's periodic reload (the policy file's is in
/// [`crate::runtime::reload`]).
impl Reloader {
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

/// SIGHUP as a stream; `None` (with a log line) where it cannot be caught.
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signals) => Some(signals),
        Err(err) => {
            tracing::warn!(error = %err, "cannot handle SIGHUP");
            None
        }
    }
}

/// On every SIGHUP: log it and make the file reloaders run now.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    trigger: Arc<watch::Sender<u64>>,
) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: re-reading the policy file and the certificate now");
        trigger.send_modify(|n| *n += 1);
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
        reloader.policy_file(&source, &store, &metrics);
        std::fs::write(&path, "rules: [{name: Bad}]\n").expect("write");
        for _ in 0..3 {
            reloader.policy_file(&source, &store, &metrics);
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

    #[test]
    fn an_unreadable_policy_file_is_counted_once_per_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.yaml");
        let good = "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n";
        std::fs::write(&path, good).expect("write");
        let metrics = Arc::new(Metrics::new());
        let store = PolicyStore::with_metrics(metrics.clone());
        let source = FileSource::new(&path);
        let mut reloader = Reloader::default();
        reloader.policy_file(&source, &store, &metrics);
        let series = "pull_secret_injector_policy_reloads_total";
        let count = |metrics: &Metrics| rejected(metrics, series);

        // Deleted, seen at every interval: one rejection.
        std::fs::remove_file(&path).expect("rm");
        for _ in 0..3 {
            reloader.policy_file(&source, &store, &metrics);
        }
        assert!(count(&metrics).ends_with(" 1"), "{}", metrics.encode());
        // Back, then replaced by a FIFO: a new failure, counted again.
        std::fs::write(&path, good).expect("write");
        reloader.policy_file(&source, &store, &metrics);
        assert!(reloader.failing.is_none());
        std::fs::remove_file(&path).expect("rm");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        reloader.policy_file(&source, &store, &metrics);
        reloader.policy_file(&source, &store, &metrics);
        assert!(count(&metrics).ends_with(" 2"), "{}", metrics.encode());
        assert_eq!(store.current().expect("kept").generation, 1);
    }
}
