//! Sockets: bind, accept, TLS handshake, HTTP serving, idle timeouts,
//! the connection table, graceful drain.
//!
//! Each accepted connection gets its own task, and the TLS handshake runs
//! inside it under a timeout, so a client that stalls mid-handshake holds
//! only its own task. HTTP/1.1 or HTTP/2 is chosen from ALPN. Every
//! connection has a place in the listener's table ([`conns`]): when it is
//! full, the connection that has been quiet longest and is not being
//! answered makes room for the newcomer. A connection with no request open
//! for the idle timeout is closed, whatever bytes trickle in. When the
//! shutdown future resolves the listener closes, in-flight requests finish
//! (up to a drain limit), and idle kept-alive connections are closed. The
//! plain metrics listener is served the same way, without TLS.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::future::RouteFuture;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::Service as _;

use super::conns::{Activity, Admission, Slot, Table};

/// Limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a client may take to finish the TLS handshake.
    pub handshake: Duration,
    /// A connection with no request open for this long is closed
    /// (HTTP/2: GOAWAY). For HTTP/1.1 it is also the deadline for a
    /// request's headers, counted from when the server starts waiting for
    /// them, so trickling header bytes does not extend it. It is longer
    /// than the 90 s idle timeout of kube-apiserver's HTTP client: the
    /// client, not the server, closes idle pooled connections, and a
    /// request is never written into a connection the server is closing.
    pub idle: Duration,
    /// Longest to wait for in-flight requests on shutdown.
    pub drain: Duration,
    /// Most connections open at once. Each holds a file descriptor and
    /// TLS and HTTP buffers. When all are taken, the connection quiet the
    /// longest among those not being answered (idle, handshaking, sending
    /// headers or trickling a body) is closed to make room; only when
    /// every connection is being answered is the newcomer closed.
    pub max_connections: usize,
}

/// Default of [`Limits::max_connections`]: far above what kube-apiserver
/// instances keep pooled, far below what the memory limit could hold.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap of the metrics listener: a few Prometheus servers and
/// people with curl.
pub const DEFAULT_METRICS_MAX_CONNECTIONS: usize = 64;
/// Default of [`Limits::idle`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// HTTP/2 streams one connection may have open at once.
const MAX_H2_STREAMS: u32 = 64;
/// An idle HTTP/2 connection is pinged this often, and closed when the
/// ping is not answered within as long again (a vanished peer).
const H2_KEEPALIVE: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake: Duration::from_secs(10),
            idle: DEFAULT_IDLE_TIMEOUT,
            drain: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl Limits {
    /// The limits of the metrics listener.
    pub fn metrics() -> Self {
        Limits {
            max_connections: DEFAULT_METRICS_MAX_CONNECTIONS,
            ..Limits::default()
        }
    }
}

/// Binds a TCP listener (port 0 picks a free port; see `local_addr`).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then
/// drains. Accept errors (such as running out of file descriptors) are
/// logged and retried after a short pause; they never stop the server.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    serve(
        listener,
        Some(TlsAcceptor::from(tls)),
        router,
        limits,
        shutdown,
    )
    .await;
}

/// Serves a plain-HTTP router (metrics) until `shutdown` resolves, with the
/// same connection cap, eviction and idle timeout as the TLS listener.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    serve(listener, None, router, limits, shutdown).await;
}

async fn serve(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let table = Table::new(limits.max_connections);
    let (stop, stopped) = watch::channel(false);
    let mut refused: u64 = 0;
    let mut evicted: u64 = 0;
    let local = listener.local_addr().ok();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match table.admit() {
            Admission::Admitted(slot) => slot,
            Admission::Evicted(slot) => {
                // Under a flood this happens for every connection; log
                // the first eviction and then every thousandth.
                if evicted.is_multiple_of(1000) {
                    tracing::warn!(listen = ?local, %peer, max_connections = limits.max_connections, evicted = evicted + 1, "connection table full; closed the connection quiet the longest to make room");
                }
                evicted += 1;
                slot
            }
            Admission::Full => {
                // Every connection is being answered: closing the new one
                // costs the client a reconnect, not the server its memory.
                if refused.is_multiple_of(1000) {
                    tracing::warn!(listen = ?local, %peer, max_connections = limits.max_connections, refused = refused + 1, "every connection is busy; closing a new one");
                }
                refused += 1;
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            acceptor.clone(),
            router.clone(),
            limits,
            slot,
            stopped.clone(),
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    let open = table.len();
    if acceptor.is_some() {
        tracing::info!(connections = open, "listener closed; draining connections");
    }
    if tokio::time::timeout(limits.drain, table.emptied())
        .await
        .is_err()
    {
        tracing::warn!("drain limit reached; closing remaining connections");
    }
}

/// One connection, from the handshake to its end.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    slot: Slot,
    mut stopped: watch::Receiver<bool>,
) {
    let activity = slot.activity().clone();
    let Some(acceptor) = acceptor else {
        serve_http(stream, false, router, limits, &activity, stopped, peer).await;
        return;
    };
    let handshake = tokio::time::timeout(limits.handshake, acceptor.accept(stream));
    let tls = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = activity.evicted() => return,
        _ = stopped.wait_for(|s| *s) => return,
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_http(tls, h2, router, limits, &activity, stopped, peer).await;
    drop(slot);
}

/// HTTP on an established connection until it ends, is evicted, idles
/// out, or the server shuts down.
async fn serve_http<I>(
    io: I,
    h2: bool,
    router: Router,
    limits: Limits,
    activity: &Arc<Activity>,
    mut stopped: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE);
    // HTTP/2 only when negotiated; otherwise HTTP/1.1 (the TLS default, and
    // plain metrics), so the header-read timeout applies from the start.
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let service = ConnService {
        router,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = tokio::time::sleep(limits.idle);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = activity.evicted() => {
                tracing::debug!(%peer, "connection evicted to make room");
                return;
            }
            _ = stopped.wait_for(|s| *s), if !closing => {
                // Shutting down: a connection with no request open owes
                // nobody an answer (it may be halfway through a head that
                // never completes); one with requests finishes them.
                if activity.quiet_for().is_some() {
                    return;
                }
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = &mut idle, if !closing => match activity.quiet_for() {
                Some(quiet) if quiet >= limits.idle => {
                    tracing::debug!(%peer, "idle connection closed");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                quiet => {
                    let left = limits.idle - quiet.unwrap_or_default();
                    idle.as_mut().reset(tokio::time::Instant::now() + left);
                }
            },
        }
    }
}

/// The router behind one connection, telling the connection's [`Activity`]
/// when requests start, finish receiving and are answered.
struct ConnService {
    router: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let receiving = !hyper::body::Body::is_end_stream(request.body());
        self.activity.request_started(receiving);
        let activity = self.activity.clone();
        let request = request.map(|body| {
            Body::new(Receiving {
                body,
                activity: receiving.then(|| activity.clone()),
            })
        });
        Answering {
            future: self.router.clone().call(request),
            activity: Some(activity),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body that tells the connection when it has been received.
    struct Receiving {
        #[pin]
        body: Incoming,
        activity: Option<Arc<Activity>>,
    }

    impl PinnedDrop for Receiving {
        fn drop(this: Pin<&mut Self>) {
            if let Some(activity) = this.project().activity.take() {
                activity.body_done();
            }
        }
    }
}

impl hyper::body::Body for Receiving {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = this.body.as_mut().poll_frame(cx);
        let ended = match &frame {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => this.body.is_end_stream(),
            Poll::Pending => false,
        };
        if ended && let Some(activity) = this.activity.take() {
            activity.body_done();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The router's answer; the request counts as open until it resolves
    /// or is dropped.
    struct Answering {
        #[pin]
        future: RouteFuture<Infallible>,
        activity: Option<Arc<Activity>>,
    }

    impl PinnedDrop for Answering {
        fn drop(this: Pin<&mut Self>) {
            if let Some(activity) = this.project().activity.take() {
                activity.request_done();
            }
        }
    }
}

impl Future for Answering {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.future.poll(cx));
        if let Some(activity) = this.activity.take() {
            activity.request_done();
        }
        Poll::Ready(output)
    }
}

/// File descriptors: raises the soft limit to the hard one (as Go programs
/// do at start) and returns the limit now in force (`u64::MAX` when
/// unlimited).
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(max)) = (limit.current, limit.maximum)
        && current < max
    {
        let raised = rustix::process::Rlimit {
            current: Some(max),
            maximum: Some(max),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    limit.current.unwrap_or(u64::MAX)
}
