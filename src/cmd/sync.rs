//! `sync`: the controller that puts managed secrets where pods need them.
//! Its flags, validated once into a [`SyncConfig`]; then [`Sync::build`]
//! (client, policy, controller) → [`Sync::bind`] (the metrics/health
//! listener, its address known) → [`Bound::run`] (supervised policy source,
//! watches, election and reconciler, until shutdown; the Lease is released
//! on the way out). Tests start it through the same three steps.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use tokio::net::TcpListener;

use super::args::{PolicySource, PolicySourceArgs, parse_positive_duration};
use crate::k8s::configmap;
use crate::k8s::sync::lease::LeaseTimings;
use crate::k8s::sync::metrics::SyncMetrics;
use crate::k8s::sync::{Controller, Settings};
use crate::runtime::policy_store::{FileSource, PolicyStore};
use crate::runtime::reload::Reloader;
use crate::runtime::supervise::wait_for_signal;
use crate::runtime::supervise::{Health, Supervisor, every};
use crate::runtime::telemetry::{self, LogFormat, Metrics};
use crate::webhook::server;

/// Flags of `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub policy: PolicySourceArgs,
    /// The install namespace: the leader Lease lives there, and it never
    /// gets copies.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// This replica's name: its identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Address of the plain-HTTP listener for /metrics, /healthz, /readyz.
    #[arg(long, env = "PSI_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,
    /// Log line format.
    #[arg(long, env = "PSI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// How often a policy file is re-read.
    #[arg(long, env = "PSI_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_positive_duration)]
    pub reload_interval: Duration,
    /// Most Secret writes in flight at once.
    #[arg(long, env = "PSI_SYNC_MAX_IN_FLIGHT", default_value_t = 16, value_parser = parse_in_flight)]
    pub max_in_flight: usize,
    /// How often a Secret that blocks a copy (no managed-by label) is looked
    /// at again.
    #[arg(long, env = "PSI_SYNC_CONFLICT_RECHECK", default_value = "60s", value_parser = parse_positive_duration)]
    pub conflict_recheck: Duration,
    /// How long the leader Lease holds without renewal.
    #[arg(long, env = "PSI_SYNC_LEASE_DURATION", default_value = "15s", value_parser = parse_positive_duration)]
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops writing (shorter
    /// than the lease duration).
    #[arg(long, env = "PSI_SYNC_RENEW_DEADLINE", default_value = "10s", value_parser = parse_positive_duration)]
    pub renew_deadline: Duration,
    /// How often the Lease is renewed, or checked by the other replicas.
    #[arg(long, env = "PSI_SYNC_RETRY_PERIOD", default_value = "2s", value_parser = parse_positive_duration)]
    pub retry_period: Duration,
}

fn parse_in_flight(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a number of writes from 1 to 1024")),
    }
}

/// `sync`, validated.
pub struct SyncConfig {
    /// Where the policy comes from.
    pub policy: PolicySource,
    /// The metrics/health listener.
    pub metrics_listen: SocketAddr,
    /// How often a policy file is re-read.
    pub reload_interval: Duration,
    /// What the controller is told.
    pub settings: Settings,
    /// A client to use (tests); `None` discovers one (kubeconfig or
    /// in-cluster).
    pub client: Option<kube::Client>,
}

impl SyncConfig {
    /// Validates the flags; every field of [`SyncArgs`] is taken here.
    pub fn from_args(args: SyncArgs) -> anyhow::Result<Self> {
        let SyncArgs {
            policy,
            namespace,
            pod_name,
            metrics_listen,
            log_format: _,
            reload_interval,
            max_in_flight,
            conflict_recheck,
            lease_duration,
            renew_deadline,
            retry_period,
        } = args;
        let policy = policy.into_source(None)?;
        let namespace = namespace.filter(|n| !n.is_empty()).context(
            "no install namespace: give --namespace or set POD_NAMESPACE (the Lease lives there)",
        )?;
        let identity = pod_name.filter(|n| !n.is_empty()).context(
            "no replica name: give --pod-name or set POD_NAME (the Lease holder's identity)",
        )?;
        if renew_deadline >= lease_duration {
            anyhow::bail!(
                "--renew-deadline ({renew_deadline:?}) must be shorter than --lease-duration ({lease_duration:?}), so a leader stops writing before another may take over"
            );
        }
        if retry_period >= renew_deadline {
            anyhow::bail!(
                "--retry-period ({retry_period:?}) must be shorter than --renew-deadline ({renew_deadline:?})"
            );
        }
        let policy_configmap = match &policy {
            PolicySource::ConfigMap { namespace, name } => Some((namespace.clone(), name.clone())),
            PolicySource::File(_) => None,
        };
        Ok(SyncConfig {
            policy,
            metrics_listen,
            reload_interval,
            settings: Settings {
                namespace,
                identity,
                policy_configmap,
                max_in_flight,
                conflict_recheck,
                source_poll: Duration::from_millis(500),
                lease: LeaseTimings {
                    duration: lease_duration,
                    renew_deadline,
                    retry_period,
                },
            },
            client: None,
        })
    }
}

/// Runs `sync` until a shutdown signal.
pub fn run(args: SyncArgs) -> anyhow::Result<()> {
    let _log_guard = telemetry::init_logging(args.log_format);
    let config = SyncConfig::from_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        Sync::build(config)
            .await?
            .bind()
            .await?
            .run(wait_for_signal())
            .await
    })
}

/// The controller, built: client made, policy file read once.
pub struct Sync {
    config: SyncConfig,
    /// The client, or why there is none: then the replica serves its
    /// metrics and stays unready, saying why.
    client: Result<kube::Client, String>,
    policy: Arc<PolicyStore>,
    metrics: Arc<SyncMetrics>,
    controller: Option<Arc<Controller>>,
}

impl Sync {
    /// Connects to the API server and reads a policy file once (a
    /// ConfigMap is read by its watch once running).
    pub async fn build(config: SyncConfig) -> anyhow::Result<Sync> {
        let client = match &config.client {
            Some(client) => Ok(client.clone()),
            None => kube::Client::try_default().await.map_err(|err| {
                tracing::error!(error = %err, "no Kubernetes API access; serving metrics, unready");
                format!("no Kubernetes API access: {err}")
            }),
        };
        let policy = Arc::new(PolicyStore::default());
        if let PolicySource::File(path) = &config.policy {
            let (source, store) = (FileSource::new(path), policy.clone());
            tokio::task::spawn_blocking(move || {
                Reloader::default().policy_file(&source, &store, &Metrics::new());
            })
            .await
            .context("the first policy read failed")?;
        }
        let metrics = Arc::new(SyncMetrics::new());
        let controller = client.as_ref().ok().map(|client| {
            Controller::new(
                client.clone(),
                config.settings.clone(),
                policy.clone(),
                metrics.clone(),
            )
        });
        Ok(Sync {
            config,
            client,
            policy,
            metrics,
            controller,
        })
    }

    /// Binds the metrics/health listener.
    pub async fn bind(self) -> anyhow::Result<Bound> {
        let addr = self.config.metrics_listen;
        let listener = server::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        Ok(Bound {
            sync: self,
            listener,
        })
    }
}

/// The controller with its listener bound, not running yet.
pub struct Bound {
    sync: Sync,
    listener: TcpListener,
}

/// What the HTTP handlers read.
struct HttpState {
    metrics: Arc<SyncMetrics>,
    controller: Result<Arc<Controller>, String>,
    health: Arc<Health>,
}

impl Bound {
    /// The listener's address (the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until `shutdown` completes, then stops every task (a leader
    /// releases its Lease).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Bound { sync, listener } = self;
        let Sync {
            config,
            client,
            policy,
            metrics,
            controller,
        } = sync;
        let mut supervisor = Supervisor::new();
        let interval = config.reload_interval;
        match &config.policy {
            PolicySource::File(path) => {
                let source = FileSource::new(path);
                let policy = policy.clone();
                // The reloader reports into the webhook's policy counters,
                // which sync does not export: the log says what happened.
                let counters = Arc::new(Metrics::new());
                supervisor.spawn("policy-file-reloader", move |stop| {
                    let (source, policy, counters) =
                        (source.clone(), policy.clone(), counters.clone());
                    let mut reloader = Reloader::default();
                    // No SIGHUP trigger here: the file is re-read every interval.
                    let wake = tokio::sync::watch::channel(0).1;
                    every(interval, wake, stop, move || {
                        reloader.policy_file(&source, &policy, &counters)
                    })
                });
            }
            PolicySource::ConfigMap { .. } if client.is_err() => {}
            PolicySource::ConfigMap { namespace, name } => {
                let Ok(client) = &client else {
                    anyhow::bail!("no Kubernetes client");
                };
                let watch = configmap::Watch {
                    client: client.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    store: policy.clone(),
                    instance: Some(config.settings.identity.clone()),
                };
                supervisor.spawn("policy-configmap-watch", move |stop| {
                    watch.clone().run(stop)
                });
            }
        }
        if let Some(controller) = &controller {
            controller.spawn(&mut supervisor);
        }
        let state = Arc::new(HttpState {
            metrics,
            controller: controller.ok_or_else(|| client.err().unwrap_or_default()),
            health: supervisor.health(),
        });
        let router = Router::new()
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(state);
        tracing::info!(listen = %listener.local_addr()?, identity = %config.settings.identity, namespace = %config.settings.namespace, "sync controller running");
        let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
        let http = tokio::spawn(server::serve_plain(
            listener,
            router,
            server::Limits::metrics(),
            async move {
                let _ = stopped.await;
            },
        ));
        shutdown.await;
        tracing::info!("shutdown requested");
        supervisor.shutdown().await;
        let _ = stop_http.send(());
        if let Err(err) = http.await {
            tracing::error!(error = %err, "metrics listener failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn metrics_text(State(state): State<Arc<HttpState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Ready: a policy loaded, every watch listed, no task failing. Leadership
/// is not needed: a follower is a ready standby.
async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    let why = match &state.controller {
        Ok(controller) => controller.not_ready().map(str::to_owned),
        Err(why) => Some(why.clone()),
    };
    if let Some(why) = why {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
    }
    let problems = state.health.problems();
    if !problems.is_empty() {
        let text: String = problems
            .iter()
            .map(|(task, reason)| format!("{task} keeps failing: {reason}\n"))
            .collect();
        return (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
    }
    "ok\n".into_response()
}
