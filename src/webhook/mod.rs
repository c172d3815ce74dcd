//! The HTTPS admission webhook: TLS with a hot-reloaded certificate
//! ([`tls`]), the accept loop with its limits and drain ([`server`]) over a table of
//! open connections (`conns`), the
//! axum routers ([`http`]), and certificate generation for `certs` and
//! `serve --dev` ([`certs`]).

pub mod certs;
mod conns;
pub mod http;
pub mod server;
pub mod tls;
