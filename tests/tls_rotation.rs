#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Certificate rotation and graceful shutdown over a real socket. Reloads
//! are triggered by calling `reload()` directly: no sleeping.

mod common;

use std::path::Path;

use common::{ApiServerClient, TestServer, shipped_policy};
use pull_secret_injector::webhook::certs::{self, CertFiles};
use pull_secret_injector::webhook::tls::Reload;
use rustls::pki_types::ServerName;

/// True when a TLS handshake trusting only `ca_pem` succeeds.
async fn handshake_ok(server: &TestServer, ca_pem: &str) -> bool {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(common::client_config(ca_pem, &[b"http/1.1"]));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .is_ok()
}

#[tokio::test]
async fn new_handshakes_see_a_rotated_certificate() {
    let server = TestServer::start(&shipped_policy()).await;
    let old_ca = server.ca_pem.clone();
    let mut kept = server.client().await;

    let files = CertFiles::in_dir(server.dir.path());
    let new_ca = certs::write_set(&files, &certs::dev_hosts()).unwrap();
    assert_eq!(server.certs.reload().unwrap(), Reload::Replaced);

    assert!(
        handshake_ok(&server, &new_ca).await,
        "new CA verifies after reload"
    );
    assert!(
        !handshake_ok(&server, &old_ca).await,
        "old certificate no longer served"
    );
    // A connection made before the rotation keeps working.
    assert_eq!(kept.request("GET", "/healthz", Vec::new()).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_bad_pair_leaves_the_old_certificate_served() {
    let server = TestServer::start(&shipped_policy()).await;
    let files = CertFiles::in_dir(server.dir.path());
    let other = certs::Authority::generate("other")
        .unwrap()
        .issue(&certs::dev_hosts())
        .unwrap();
    // A new certificate with the old key: a half-finished rotation.
    std::fs::write(&files.cert, other.cert_pem).unwrap();
    assert!(server.certs.reload().is_err());
    std::fs::write(&files.key, "not a key").unwrap();
    assert!(server.certs.reload().is_err());
    std::fs::remove_file(&files.cert).unwrap();
    assert!(server.certs.reload().is_err());
    assert!(handshake_ok(&server, &server.ca_pem).await);
    server.stop().await;
}

#[tokio::test]
async fn an_expired_or_future_certificate_never_replaces_the_served_one() {
    let server = TestServer::start(&shipped_policy()).await;
    let files = CertFiles::in_dir(server.dir.path());
    let other = certs::Authority::generate("other").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let hosts = certs::dev_hosts();
    for (issued, says) in [
        (
            other.issue_for(&hosts, now - 30 * day, now - day),
            "expired since",
        ),
        (
            other.issue_for(&hosts, now + day, now + 30 * day),
            "not valid before",
        ),
    ] {
        let issued = issued.unwrap();
        std::fs::write(&files.cert, &issued.cert_pem).unwrap();
        std::fs::write(&files.key, &issued.key_pem).unwrap();
        let err = server.certs.reload().unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        // The old pair is still what new handshakes get.
        assert!(handshake_ok(&server, &server.ca_pem).await);
        assert!(!handshake_ok(&server, other.cert_pem()).await);
    }
    server.stop().await;
}

/// Lays out a Secret volume the way the kubelet does: files in a
/// timestamped directory, `..data` pointing at it, and top-level symlinks
/// through `..data`.
fn secret_volume(dir: &Path, version: &str) -> String {
    let target = dir.join(version);
    std::fs::create_dir_all(&target).unwrap();
    let ca = certs::write_set(&CertFiles::in_dir(&target), &certs::dev_hosts()).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    ca
}

#[tokio::test]
async fn a_kubelet_symlink_swap_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = secret_volume(dir.path(), "..2026_11_22_10_00_00.1");
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let server = TestServer::start_on(
        &shipped_policy(),
        common::TestLimits::default(),
        dir,
        &cert,
        &key,
        ca1.clone(),
    )
    .await;
    assert!(handshake_ok(&server, &ca1).await);

    let ca2 = secret_volume(server.dir.path(), "..2026_11_22_11_00_00.2");
    assert_eq!(server.certs.reload().unwrap(), Reload::Replaced);
    assert!(handshake_ok(&server, &ca2).await);
    assert!(!handshake_ok(&server, &ca1).await);
    assert_eq!(server.certs.reload().unwrap(), Reload::Unchanged);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = TestServer::start(&shipped_policy()).await;
    let review = serde_json::to_vec(&common::fixture("create-generate-name.json")).unwrap();

    // Send the headers and half the body, then ask the server to stop.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(common::client_config(&server.ca_pem, &[b"http/1.1"]));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        review.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = review.split_at(review.len() / 2);
    tls.write_all(first).await.unwrap();
    tls.flush().await.unwrap();
    // Make sure the server is reading the request before shutdown starts.
    let mut idle = ApiServerClient::connect(server.addr, &server.ca_pem, &[b"http/1.1"]).await;
    assert_eq!(idle.request("GET", "/healthz", Vec::new()).await.0, 200);

    let stopping = tokio::spawn(server.stop());
    tls.write_all(rest).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"patchType\":\"JSONPatch\""),
        "{response}"
    );
    stopping.await.unwrap();
}
