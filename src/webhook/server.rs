//! Sockets: bind, accept, TLS handshake, HTTP serving, graceful drain.
//!
//! Each accepted connection gets its own task, and the TLS handshake runs
//! inside it under a timeout, so a client that stalls mid-handshake holds
//! only its own task. HTTP/1.1 or HTTP/2 is chosen from ALPN. When the
//! shutdown future resolves the listener closes, in-flight requests finish
//! (up to a drain limit), and idle kept-alive connections are closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Timeouts of the TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a client may take to finish the TLS handshake.
    pub handshake: Duration,
    /// Longest a client may take to send a request's headers. hyper also
    /// applies it to idle kept-alive connections, so it is longer than the
    /// 90 s idle timeout of kube-apiserver's HTTP client: the client, not
    /// the server, closes idle connections, and a request is never written
    /// into a connection the server is closing.
    pub header_read: Duration,
    /// Longest to wait for in-flight requests on shutdown.
    pub drain: Duration,
    /// Most connections open at once; more are closed as soon as they are
    /// accepted. Each open connection holds TLS and HTTP buffers, so this
    /// bounds memory against a client that opens connections and idles.
    pub max_connections: usize,
}

/// Default of [`Limits::max_connections`]: far above what kube-apiserver
/// instances keep pooled, far below what the memory limit could hold.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// HTTP/2 streams one connection may have open at once.
const MAX_H2_STREAMS: u32 = 64;
/// An idle HTTP/2 connection is pinged this often, and closed when the
/// ping is not answered within as long again (a vanished peer).
const H2_KEEPALIVE: Duration = Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(120),
            drain: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
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
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused: u64 = 0;
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closing at once costs the client a reconnect, not the server
            // its memory; log the first refusal and then every thousandth.
            if refused.is_multiple_of(1000) {
                tracing::warn!(%peer, max_connections = limits.max_connections, refused = refused + 1, "too many open connections; closing a new one");
            }
            refused += 1;
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .keep_alive(true);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_H2_STREAMS)
                .keep_alive_interval(H2_KEEPALIVE)
                .keep_alive_timeout(H2_KEEPALIVE);
            // HTTP/2 only when negotiated; without ALPN, HTTP/1.1 (the TLS
            // default), so the header-read timeout applies from the start.
            let builder = match alpn.as_deref() {
                Some(b"h2") => builder.http2_only(),
                _ => builder.http1_only(),
            };
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(err) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "listener closed; draining connections"
    );
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain limit reached; closing remaining connections");
    }
}

/// Serves a plain-HTTP router (metrics) until `shutdown` resolves.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
