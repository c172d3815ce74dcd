//! The fake's process lifecycle, for restart tests: it serves its own
//! connections so that it can [`FakeApi::stop_api`] (listener closed, every
//! connection dropped: connection refused), [`FakeApi::stall_api`] (accepts,
//! but neither answers nor streams: a hung apiserver) and
//! [`FakeApi::restart_api`] (same port, a new watch cache: watches from an
//! old resourceVersion get `410 Gone`, as from a real restarted apiserver).

use std::net::SocketAddr;
use std::sync::Mutex;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::FakeApi;

/// What a running fake's connections obey.
pub struct Server {
    /// Bumped to drop every open connection.
    kill: watch::Sender<u64>,
    /// True while the fake hangs.
    stalled: watch::Sender<bool>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            kill: watch::channel(0).0,
            stalled: watch::channel(false).0,
            accept: Mutex::new(None),
        }
    }
}

/// Serves `app` on `listener` until stopped.
pub fn serve(server: &Server, listener: TcpListener, app: Router) {
    let kill = server.kill.clone();
    let stalled = server.stalled.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (mut killed, mut stall) = (kill.subscribe(), stalled.subscribe());
            killed.mark_unchanged();
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let hung = async move {
                    let _ = stall.wait_for(|s| *s).await.is_ok();
                };
                // Biased, hang first: once stalled, the connection is not
                // polled again, so nothing more is read or written on it.
                tokio::select! {
                    biased;
                    () = hung => {
                        let _ = killed.changed().await;
                    }
                    _ = killed.changed() => {}
                    _ = conn => {}
                }
            });
        }
    });
    *server.accept.lock().unwrap() = Some(task);
}

impl FakeApi {
    /// Closes the listener and drops every connection: the apiserver is
    /// down (connection refused) until [`FakeApi::restart_api`].
    pub fn stop_api(&self) {
        if let Some(task) = self.server.accept.lock().unwrap().take() {
            task.abort();
        }
        self.server.kill.send_modify(|n| *n += 1);
    }

    /// Keeps accepting connections but answers nothing and streams nothing
    /// (open ones included) until [`FakeApi::restart_api`].
    pub fn stall_api(&self) {
        self.server.stalled.send_replace(true);
    }

    /// Starts again on the same address with a new watch cache: the next
    /// watch of each kind from an old resourceVersion gets `410 Gone`.
    pub async fn restart_api(&self) {
        self.stop_api();
        self.server.stalled.send_replace(false);
        {
            let mut inner = self.inner.lock().unwrap();
            inner.configmaps.gone_next = true;
            inner.namespaces.gone_next = true;
        }
        let listener = bind_again(self.addr).await;
        serve(&self.server, listener, self.router());
    }
}

/// Binds `addr` again, retrying briefly while the old socket is released.
async fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "cannot bind {addr} again: {err}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
