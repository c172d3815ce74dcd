#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Hostile clients over the real sockets: idle and trickling connections,
//! bodies that are declared but never sent, over-limit bodies, the metrics
//! port, and reviews written to confuse the decoder or leak credentials.

mod common;

use std::time::{Duration, Instant};

use common::{TestLimits, TestServer, fixture, shipped_policy};
use hyper::body::{Bytes, Frame};
use pull_secret_injector::webhook::http::HttpLimits;
use pull_secret_injector::webhook::server::Limits;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const USUAL: [&str; 3] = ["harbor-pull", "dockerhub-creds", "ghcr-acme"];

/// Waits (at most 10 s) for the server to close `conn`; true if it did.
async fn closed_by_server(conn: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
    closed_within(conn, Duration::from_secs(10)).await
}

/// Waits (at most `wait`) for the server to close `conn`; true if it did.
async fn closed_within(conn: &mut (impl tokio::io::AsyncRead + Unpin), wait: Duration) -> bool {
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A review of the usual pod is patched, within 5 s, on a new connection
/// (returned, still open).
async fn a_new_client_is_served_promptly(server: &TestServer) -> common::ApiServerClient {
    let served = async {
        let mut client = server.client().await;
        assert_eq!(client.request("GET", "/readyz", Vec::new()).await.0, 200);
        assert_eq!(client.request("GET", "/healthz", Vec::new()).await.0, 200);
        let review = fixture("create-generate-name.json");
        let answer = client.review(review.clone()).await;
        let pod = answer.apply_to(&review["request"]["object"]);
        let names: Vec<&str> = pod["spec"]["imagePullSecrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, USUAL);
        client
    };
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("a new client is served promptly")
}

/// Defect 1: a table full of idle, header-trickling and body-trickling TLS
/// connections makes room for kube-apiserver and the probes.
#[tokio::test]
async fn a_full_table_of_idle_connections_does_not_lock_out_new_clients() {
    let max = 8;
    let limits = TestLimits {
        server: Limits {
            max_connections: max,
            ..Limits::default()
        },
        ..TestLimits::default()
    };
    let server = TestServer::start_with(&shipped_policy(), limits).await;
    let mut hogs = Vec::new();
    for i in 0..max {
        let mut conn = common::raw_tls(server.addr, &server.ca_pem).await;
        match i % 3 {
            // Handshake done, nothing sent.
            0 => {}
            // Half a request head.
            1 => conn
                .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
                .await
                .unwrap(),
            // A head and a byte of a body.
            _ => conn
                .write_all(
                    b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n{",
                )
                .await
                .unwrap(),
        }
        conn.flush().await.unwrap();
        hogs.push(conn);
    }
    // Let the server see every hog's bytes before the newcomers arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut newcomers = Vec::new();
    for _ in 0..3 {
        newcomers.push(a_new_client_is_served_promptly(&server).await);
    }
    // Three hogs were closed to make room (the ones quiet the longest:
    // accepted first, or whose request started first).
    let mut closed = 0;
    for hog in &mut hogs {
        closed += usize::from(closed_within(hog, Duration::from_millis(500)).await);
    }
    assert_eq!(closed, 3, "three hogs were evicted");
    drop((hogs, newcomers));
    server.stop().await;
}

/// Defect 1: the idle timeout is counted from the last request, so bytes
/// trickled into a request head do not keep a connection open; an idle
/// HTTP/2 connection is closed as well.
#[tokio::test]
async fn trickling_does_not_renew_the_idle_timeout_and_idle_http2_is_closed() {
    let limits = TestLimits {
        server: Limits {
            idle: Duration::from_millis(500),
            ..Limits::default()
        },
        ..TestLimits::default()
    };
    let server = TestServer::start_with(&shipped_policy(), limits).await;
    let mut trickler = common::raw_tls(server.addr, &server.ca_pem).await;
    let started = Instant::now();
    let mut closed = false;
    for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if trickler.write_all(&[*byte]).await.is_err() || trickler.flush().await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    closed = closed || closed_by_server(&mut trickler).await;
    assert!(closed, "a trickled head is cut off");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off at the idle timeout, not after the trickle: {:?}",
        started.elapsed()
    );

    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(common::client_config(&server.ca_pem, &[b"h2"]))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://localhost:{}/healthz", server.addr.port()))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the idle HTTP/2 connection is closed by the server")
        .unwrap()
        .ok();
    server.stop().await;
}

/// A body that yields `first` and then never ends.
fn stalled_body(
    first: &'static [u8],
) -> http_body_util::StreamBody<
    impl futures::Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>> + Send + Unpin,
> {
    use futures::StreamExt as _;
    http_body_util::StreamBody::new(
        futures::stream::iter([Ok(Frame::data(Bytes::from_static(first)))])
            .chain(futures::stream::pending()),
    )
}

/// Defect 2: bodies are charged as they arrive. Requests that declare the
/// maximum and send a byte — Content-Length, chunked, or HTTP/2 streams on
/// one connection — hold a byte each, and every other review is answered.
#[tokio::test]
async fn declared_but_unsent_bodies_do_not_spend_the_budget() {
    let server = TestServer::start(&shipped_policy()).await;
    let max = pull_secret_injector::webhook::http::DEFAULT_MAX_BODY_BYTES;
    let mut hogs = Vec::new();
    for i in 0..8 {
        let mut conn = common::raw_tls(server.addr, &server.ca_pem).await;
        let head = if i % 2 == 0 {
            format!(
                "POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {max}\r\n\r\n{{"
            )
        } else {
            "POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n".to_owned()
        };
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        hogs.push(conn);
    }
    // Four streams on one HTTP/2 connection, each declaring the maximum.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(common::client_config(&server.ca_pem, &[b"h2"]))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut sender = sender.clone();
        let req = hyper::Request::post(format!(
            "https://localhost:{}/mutate?timeout=10s",
            server.addr.port()
        ))
        .header("content-type", "application/json")
        .header("content-length", max.to_string())
        .body(stalled_body(b"{"))
        .unwrap();
        streams.push(tokio::spawn(async move { sender.send_request(req).await }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = server.client().await;
    for _ in 0..5 {
        let review = fixture("create-generate-name.json");
        client.review(review).await;
    }
    drop(hogs);
    for stream in streams {
        stream.abort();
    }
    server.stop().await;
}

/// Defect 2, the other side: bodies that really arrive do spend the
/// budget (four maximal bodies); past it reviews get 503 at once, and the
/// budget comes back when the stalled uploads time out.
#[tokio::test]
async fn bodies_held_in_memory_spend_the_budget_and_it_recovers() {
    let max = 64 * 1024;
    let limits = TestLimits {
        http: HttpLimits {
            max_body_bytes: max,
            request_timeout: Duration::from_secs(2),
        },
        ..TestLimits::default()
    };
    let server = TestServer::start_with(&shipped_policy(), limits).await;
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut conn = common::raw_tls(server.addr, &server.ca_pem).await;
        let head = format!(
            "POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {max}\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&vec![b' '; max - 1]).await.unwrap();
        conn.flush().await.unwrap();
        hogs.push(conn);
    }
    let mut client = server.client().await;
    let body = serde_json::to_vec(&fixture("create-generate-name.json")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = client
            .request("POST", "/mutate?timeout=10s", body.clone())
            .await;
        if status == 503 {
            assert!(
                String::from_utf8_lossy(&answer).contains("too many large requests"),
                "{}",
                String::from_utf8_lossy(&answer)
            );
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "the stalled uploads never filled the budget"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for mut hog in hogs {
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), hog.read_to_end(&mut response))
            .await
            .expect("the stalled upload is timed out")
            .ok();
        assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 408"));
    }
    drop(a_new_client_is_served_promptly(&server).await);
    server.stop().await;
}

/// Defect 9: a Content-Length over the limit is refused before any of the
/// body is read — at once, and without `100 Continue` when the client asks.
#[tokio::test]
async fn over_limit_bodies_are_refused_up_front() {
    let limits = TestLimits {
        http: HttpLimits {
            request_timeout: Duration::from_secs(60),
            ..HttpLimits::default()
        },
        ..TestLimits::default()
    };
    let server = TestServer::start_with(&shipped_policy(), limits).await;
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut conn = common::raw_tls(server.addr, &server.ca_pem).await;
        let head = format!(
            "POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{expect}Content-Length: 99000000\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        let mut response = Vec::new();
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            while !String::from_utf8_lossy(&response).contains("\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                response.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        let text = String::from_utf8_lossy(&response);
        assert!(read.is_ok(), "no answer within 5 s: {text:?}");
        assert!(text.starts_with("HTTP/1.1 413"), "{expect:?}: {text}");
        assert!(!text.contains("100 Continue"), "{text}");
    }
    // Chunked bodies are cut off at the limit as they arrive.
    let mut client = server.client().await;
    let (status, _) = client
        .request("POST", "/mutate", vec![b' '; 9 * 1024 * 1024])
        .await;
    assert_eq!(status, 413);
    drop(a_new_client_is_served_promptly(&server).await);
    server.stop().await;
}

/// `GET /metrics` over plain HTTP/1.1 on `addr`, within 5 s.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let scraped = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    tokio::time::timeout(Duration::from_secs(5), scraped)
        .await
        .expect("metrics answered promptly")
}

/// Defect 3: the metrics listener has its own cap with eviction and an
/// idle timeout, so idle connections to it neither lock out Prometheus nor
/// pile up.
#[tokio::test]
async fn the_metrics_listener_is_capped_and_times_out_idle_connections() {
    let limits = TestLimits {
        metrics: Some(Limits {
            max_connections: 4,
            idle: Duration::from_millis(500),
            ..Limits::metrics()
        }),
        ..TestLimits::default()
    };
    let server = TestServer::start_with(&shipped_policy(), limits).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            tokio::net::TcpStream::connect(server.metrics_addr)
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = scrape(server.metrics_addr).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("pull_secret_injector_policy_generation 1"));
    // The idle ones are closed: one to make room, the rest at the timeout.
    for conn in &mut idle {
        assert!(
            closed_by_server(conn).await,
            "idle metrics connection closed"
        );
    }
    drop(a_new_client_is_served_promptly(&server).await);
    server.stop().await;
}

/// The usual review with `edit` applied to its request.
fn usual_review(edit: impl FnOnce(&mut Value)) -> Value {
    let mut review = fixture("create-generate-name.json");
    edit(&mut review["request"]);
    review
}

/// Notes of the review: duplicate keys are refused the same way wherever
/// they are; a kind Pod under another resource is not patched.
#[tokio::test]
async fn duplicate_keys_are_refused_and_only_the_pods_resource_is_patched() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;
    let review = fixture("create-generate-name.json");
    let text = serde_json::to_string(&review).unwrap();
    let request = serde_json::to_string(&review["request"]).unwrap();
    let uid_twice = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"first",{}}}"#,
        &request[1..]
    );
    let containers_at = text.find(r#""containers":"#).unwrap();
    let containers_twice = format!(
        "{}\"containers\":[],{}",
        &text[..containers_at],
        &text[containers_at..]
    );
    let request_twice = text.replacen(r#""request":"#, r#""request":{"uid":"x"},"request":"#, 1);
    for (what, body) in [
        ("uid", uid_twice),
        ("containers", containers_twice),
        ("request", request_twice),
    ] {
        assert_ne!(body, text, "{what}: the duplicate was written");
        let (status, answer) = client.request("POST", "/mutate", body.into_bytes()).await;
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(answer.contains("duplicate field"), "{what}: {answer}");
    }

    let other = usual_review(|r| r["resource"]["resource"] = json!("pods-elsewhere"));
    let answer = client.review(other).await;
    assert!(answer.patch.is_none(), "{:?}", answer.response);
    // The same review through `pods` is patched.
    let answer = client.review(usual_review(|_| {})).await;
    assert!(answer.patch.is_some());
    server.stop().await;
}

/// Notes of the review: a warning that echoes an image never carries the
/// credentials written into it.
#[tokio::test]
async fn warnings_never_echo_credentials_in_images() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;
    let review = usual_review(|r| {
        r["object"]["spec"]["containers"][0]["image"] =
            json!("deployer:s3cret-pw@registry.example.com/app:1");
    });
    let answer = client.review(review).await;
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    let warning = &answer.warnings[0];
    assert!(!warning.contains("s3cret"), "{warning}");
    assert!(
        warning.contains("<redacted>@registry.example.com/app:1"),
        "{warning}"
    );
    server.stop().await;
}
