//! HTTP ⇄ AdmissionReview: the axum router behind the TLS listener, and the
//! plain one for metrics.
//!
//! `POST /mutate` answers every readable review with HTTP 200 (allowed, with
//! or without a patch; never with one in report-only mode) and an unreadable body with HTTP 400 and a message, so
//! kube-apiserver applies the configured `failurePolicy`. `GET /healthz` says
//! the process is alive; `GET /readyz` is 200 only with a valid policy and a
//! certificate loaded, and turns 503 while the server drains on shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::decide::{Action, action, decide};
use crate::core::redact;
use crate::core::review::Review;
use crate::runtime::namespace_labels::NamespaceLabels;
use crate::runtime::policy_store::PolicyStore;
use crate::runtime::supervise::Health;
use crate::runtime::telemetry::{self, Metrics};
use crate::webhook::tls::CertStore;

/// Default limit on a request body: kube-apiserver objects are at most
/// ~3 MiB and an UPDATE carries two of them.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What the handlers share.
pub struct AppState {
    /// The policy in force.
    pub policy: Arc<PolicyStore>,
    /// The served certificate, when the router sits behind TLS.
    pub certs: Option<Arc<CertStore>>,
    /// Namespace labels, when a cluster is reachable.
    pub namespaces: Option<Arc<dyn NamespaceLabels>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set on shutdown: readiness fails so endpoints drain.
    pub draining: AtomicBool,
    /// Background tasks that keep failing make the replica unready.
    pub health: Arc<Health>,
    /// `serve --report-only`: answer every review without a patch, saying
    /// what a patch would have added.
    pub report_only: bool,
}

impl AppState {
    /// State with a policy store and metrics, no certificate, no cluster.
    pub fn new(policy: Arc<PolicyStore>, metrics: Arc<Metrics>) -> Self {
        AppState {
            policy,
            certs: None,
            namespaces: None,
            metrics,
            draining: AtomicBool::new(false),
            health: Arc::new(Health::default()),
            report_only: false,
        }
    }

    /// Marks the server as draining: `/readyz` turns 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// Limits of the webhook router.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body accepted (larger ones get 413).
    pub max_body_bytes: usize,
    /// Longest a request may take, body upload included (then 408).
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// kube-apiserver never waits longer than 30 s for a webhook, so a request
/// still running after that has no one waiting for it — typically a client
/// trickling its body to hold memory.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The webhook router: `/mutate`, `/healthz`, `/readyz`.
pub fn router(state: Arc<AppState>, limits: HttpLimits) -> Router {
    let budget = Arc::new(BodyBudget::new(
        limits.max_body_bytes,
        state.metrics.clone(),
    ));
    Router::new()
        .route(
            "/mutate",
            post(
                move |State(state): State<Arc<AppState>>, request: Request| {
                    let budget = budget.clone();
                    async move { mutate(state, &budget, request).await }
                },
            ),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // One layer of three: axum boxes and clones each route's service
        // once per `layer` call and request, so stacking them in one
        // ServiceBuilder costs a third of three separate `layer` calls.
        .layer(
            tower::ServiceBuilder::new()
                // Outermost, so that every answer while draining says close.
                .layer(tower::layer::layer_fn({
                    let state = state.clone();
                    move |inner| CloseWhileDraining {
                        inner,
                        state: state.clone(),
                    }
                }))
                .layer(tower_http::catch_panic::CatchPanicLayer::new())
                .layer(tower::layer::layer_fn(move |inner| Deadline {
                    inner,
                    timeout: limits.request_timeout,
                })),
        )
        .with_state(state)
}

/// Request bodies being received or answered may hold, together, at most
/// this many times the body limit in memory. Pod reviews are 5–20 KB, so
/// this never holds back real traffic; it stops a handful of clients that
/// send maximal bodies at once from taking the process past its memory
/// limit.
const BODY_BUDGET_FACTOR: usize = 4;

/// The memory that request bodies may hold at once, in byte permits, taken
/// as bytes arrive (never by a size a client merely declares) and given
/// back when the answer is written.
struct BodyBudget {
    permits: Arc<Semaphore>,
    max_body_bytes: usize,
    metrics: Arc<Metrics>,
}

impl BodyBudget {
    fn new(max_body_bytes: usize, metrics: Arc<Metrics>) -> Self {
        let bytes = max_body_bytes.saturating_mul(BODY_BUDGET_FACTOR);
        BodyBudget {
            permits: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            max_body_bytes,
            metrics,
        }
    }
}

/// Why a body was not read.
enum BodyError {
    /// Over `--max-body-bytes`, declared or received.
    TooLarge,
    /// The bodies in memory together hold the whole budget.
    OverBudget,
    /// The connection failed mid-body.
    Read(axum::Error),
}

/// A received body and the budget it holds until dropped.
struct Received {
    bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// Takes `bytes` more from the budget into `held`.
    fn charge(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(bytes) else {
            return false;
        };
        match self.permits.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                match held {
                    Some(h) => h.merge(permit),
                    None => *held = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Reads a request body, refusing at once one that declares more than
    /// the limit (so `Expect: 100-continue` gets no `100 Continue`), and
    /// charging the budget for the memory the body takes as it arrives.
    async fn read(&self, request: Request) -> Result<Received, BodyError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(BodyError::TooLarge);
        }
        let mut held = None;
        let mut stream = request.into_body().into_data_stream();
        // The usual review arrives in one piece: kept as is, without a copy.
        let mut first: Option<Bytes> = None;
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BodyError::Read)?;
            let len = first.as_ref().map_or(buf.len(), Bytes::len) + chunk.len();
            if len > self.max_body_bytes {
                return Err(BodyError::TooLarge);
            }
            if first.is_none() && buf.is_empty() {
                if !self.charge(&mut held, chunk.len()) {
                    return Err(BodyError::OverBudget);
                }
                first = Some(chunk);
                continue;
            }
            if let Some(first) = first.take() {
                // From here on the body is copied into one buffer; the
                // first piece's charge moves to the buffer's.
                let target = (first.len() + chunk.len()).max(first.len() * 2);
                let target = target.min(self.max_body_bytes);
                if !self.charge(&mut held, target) {
                    return Err(BodyError::OverBudget);
                }
                buf.reserve_exact(target);
                buf.extend_from_slice(&first);
                if let Some(h) = &mut held {
                    // Give back what the first piece held.
                    drop(h.split(first.len()));
                }
            } else if len > buf.capacity() {
                let target = len.max(buf.capacity() * 2).min(self.max_body_bytes);
                if !self.charge(&mut held, target - buf.capacity()) {
                    return Err(BodyError::OverBudget);
                }
                buf.reserve_exact(target - buf.len());
            }
            buf.extend_from_slice(&chunk);
        }
        let bytes = match first {
            Some(first) => first,
            None => Bytes::from(buf),
        };
        Ok(Received { bytes, _held: held })
    }
}

/// While draining, HTTP/1.1 answers carry `Connection: close`, so clients
/// that keep pooled connections (kube-apiserver does) drop them during the
/// grace period instead of writing a request into a connection the server
/// is about to close. (A plain tower service rather than axum's `from_fn`,
/// which boxes a future and clones the inner service per request.)
#[derive(Clone)]
struct CloseWhileDraining<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S, B> tower::Service<Request> for CloseWhileDraining<S>
where
    S: tower::Service<Request, Response = axum::http::Response<B>>,
{
    type Response = axum::http::Response<B>;
    type Error = S::Error;
    type Future = Closing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let http1 = request.version() == Version::HTTP_11;
        Closing {
            inner: self.inner.call(request),
            state: http1.then(|| self.state.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`CloseWhileDraining`]: the inner one, with
    /// `Connection: close` added when the server drains.
    struct Closing<F> {
        #[pin]
        inner: F,
        // Set for HTTP/1.1 requests only (HTTP/2 has no such header).
        state: Option<Arc<AppState>>,
    }
}

impl<F, B, E> Future for Closing<F>
where
    F: Future<Output = Result<axum::http::Response<B>, E>>,
{
    type Output = Result<axum::http::Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if this
            .state
            .as_ref()
            .is_some_and(|state| state.draining.load(Ordering::SeqCst))
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

/// Answers 408 when a request is not answered within `timeout` (typically
/// a client trickling its body). Unlike tower-http's `TimeoutLayer` it
/// starts no timer for a request answered on its first poll — the usual
/// review, whose body arrived with its headers — which saves a timer-wheel
/// insertion and removal per review.
#[derive(Clone)]
struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S> tower::Service<Request> for Deadline<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        DeadlineFuture {
            inner: self.inner.call(request),
            sleep: None,
            timeout: self.timeout,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`Deadline`].
    struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        // Started when the inner answer first is not ready.
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        timeout: Duration,
    }
}

impl<F, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(answer) = this.inner.poll(cx) {
            return Poll::Ready(answer);
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep(*this.timeout)));
        }
        match this.sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ok(StatusCode::REQUEST_TIMEOUT.into_response())),
            _ => Poll::Pending,
        }
    }
}

/// The metrics router: `/metrics`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }),
        )
        .with_state(metrics)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if !state.policy.is_loaded() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no valid policy loaded\n").into_response();
    }
    if state.certs.is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no certificate loaded\n").into_response();
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

async fn mutate(state: Arc<AppState>, budget: &BodyBudget, request: Request) -> Response {
    let received = match budget.read(request).await {
        Ok(received) => received,
        Err(BodyError::TooLarge) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body over the limit of {} bytes\n",
                    budget.max_body_bytes
                ),
            )
                .into_response();
        }
        Err(BodyError::OverBudget) => {
            tracing::warn!("request bodies in memory are over budget; answering 503");
            budget
                .metrics
                .review("", telemetry::OUTCOME_ERROR, Duration::ZERO);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many large requests in flight; retry\n",
            )
                .into_response();
        }
        Err(BodyError::Read(err)) => {
            tracing::debug!(error = %err, "request body not received");
            return (
                StatusCode::BAD_REQUEST,
                format!("request body not received: {err}\n"),
            )
                .into_response();
        }
    };
    let body = &received.bytes;
    let started = Instant::now();
    let metrics = &state.metrics;
    let _in_flight = metrics.in_flight();

    let review = match Review::decode(body) {
        Ok(review) => review,
        Err(err) => {
            tracing::warn!(error = %err, bytes = body.len(), "rejected a request body that is not an AdmissionReview");
            metrics.review("", telemetry::OUTCOME_ERROR, started.elapsed());
            return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response();
        }
    };
    // Env values, annotation values, userInfo.extra and credentials in
    // images are redacted even here.
    tracing::debug!(review = %redact::review(body), "admission review received");
    let request = &review.request;

    let Some(snapshot) = state.policy.current() else {
        tracing::warn!(
            uid = &*request.uid,
            "no valid policy loaded yet; answering 503"
        );
        metrics.review(
            &request.operation,
            telemetry::OUTCOME_ERROR,
            started.elapsed(),
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid policy loaded yet\n",
        )
            .into_response();
    };
    let policy = &snapshot.policy;

    let labels = match (
        &state.namespaces,
        action(request),
        request.namespace.as_deref(),
    ) {
        (Some(lookup), Action::Mutate | Action::Warn(_), Some(ns))
            if policy.uses_selectors() && !ns.is_empty() =>
        {
            lookup.labels(ns).await
        }
        _ => None,
    };

    let mut decision = decide(request, policy, labels.as_deref());
    if state.report_only {
        decision = decision.into_report();
    }
    let response = decision.encode(&review);
    metrics.decision(
        decision.outcome,
        &decision.added_by_rule,
        decision.unmatched_images,
    );
    metrics.review(
        &request.operation,
        decision.outcome.as_str(),
        started.elapsed(),
    );
    // For speed, every value is a `&str`, a number or a boolean, and the
    // line is written by `telemetry::write_info_line` rather than through
    // `tracing`'s event path; the name lists are joined into a reused
    // buffer, only when the line is logged.
    if tracing::enabled!(tracing::Level::INFO) {
        telemetry::with_joined([&decision.rules, &decision.added], |[rules, secrets]| {
            telemetry::info_line!(
                "admission decision",
                uid = &*request.uid,
                namespace = request.namespace.as_deref().unwrap_or(""),
                pod = &*decision.pod,
                kind = &*request.kind.kind,
                operation = &*request.operation,
                dry_run = request.dry_run.unwrap_or(false),
                outcome = decision.outcome.as_str(),
                rules = rules,
                secrets = secrets,
                warnings = decision.warnings.len(),
                policy_generation = snapshot.generation,
            );
        });
    }
    ([(header::CONTENT_TYPE, "application/json")], response).into_response()
}
