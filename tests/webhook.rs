#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The webhook over a real TLS socket, driven like kube-apiserver drives it.

mod common;

use common::{ApiServerClient, TestServer, fixture, shipped_policy};
use serde_json::{Value, json};

/// The pod of a review with `spec.imagePullSecrets` set to `names`.
fn expected_pod(review: &Value, names: &[&str]) -> Value {
    let mut pod = review["request"]["object"].clone();
    pod["spec"]["imagePullSecrets"] =
        Value::Array(names.iter().map(|n| json!({"name": n})).collect());
    pod
}

/// Posts a CREATE review, checks the patched pod, then posts the patched
/// pod again (as reinvocation does) and checks that nothing changes.
async fn create_gives(client: &mut ApiServerClient, name: &str, expected: &[&str]) -> Value {
    let review = fixture(name);
    let answer = client.review(review.clone()).await;
    let patched = answer.apply_to(&review["request"]["object"]);
    assert_eq!(patched, expected_pod(&review, expected), "{name}");

    let mut again = review.clone();
    again["request"]["object"] = patched;
    let second = client.review(again).await;
    assert!(
        second.patch.is_none(),
        "{name}: reinvocation must be a no-op"
    );
    answer.response
}

/// The generateName fixture gets the shipped policy's three secrets.
async fn patches_the_usual_pod(client: &mut ApiServerClient) -> Value {
    create_gives(
        client,
        "create-generate-name.json",
        &["harbor-pull", "dockerhub-creds", "ghcr-acme"],
    )
    .await
}

#[tokio::test]
async fn create_with_generate_name_gets_secrets_in_rule_order() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;
    assert_eq!(client.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let response = patches_the_usual_pod(&mut client).await;
    assert_eq!(
        response["response"]["auditAnnotations"]["injected-secrets"],
        "harbor-pull,dockerhub-creds,ghcr-acme"
    );
    server.stop().await;
}

#[tokio::test]
async fn secret_copied_from_service_account_is_kept_first() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;
    create_gives(
        &mut client,
        "create-named-sa-secret.json",
        &["dockerhub-creds", "harbor-pull", "ghcr-acme"],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn nothing_missing_means_no_patch_and_duplicates_stay() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;
    let review = fixture("create-duplicates.json");
    let answer = client.review(review).await;
    assert!(answer.patch.is_none());
    assert!(
        answer.response["response"]
            .get("auditAnnotations")
            .is_none()
    );
    server.stop().await;
}

#[tokio::test]
async fn init_and_ephemeral_container_images_count() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;
    create_gives(
        &mut client,
        "create-init-ephemeral.json",
        &["harbor-pull", "ghcr-acme"],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn dry_run_and_v1beta1_are_answered_alike() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;
    let expected = ["harbor-pull", "dockerhub-creds", "ghcr-acme"];
    create_gives(&mut client, "create-dry-run.json", &expected).await;
    let response = create_gives(&mut client, "create-v1beta1.json", &expected).await;
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1beta1");
    server.stop().await;
}

#[tokio::test]
async fn everything_but_pod_create_is_allowed_unpatched() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;

    let answer = client.review(fixture("update.json")).await;
    assert!(answer.patch.is_none());
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    assert!(
        answer.warnings[0].contains("harbor-pull"),
        "{:?}",
        answer.warnings
    );

    let answer = client.review(fixture("ephemeral-containers.json")).await;
    assert!(answer.patch.is_none());
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    assert!(
        answer.warnings[0].contains("ghcr-acme"),
        "{:?}",
        answer.warnings
    );
    assert!(
        answer.warnings[0].contains("ephemeral"),
        "{:?}",
        answer.warnings
    );

    for name in ["delete.json", "non-pod.json"] {
        let answer = client.review(fixture(name)).await;
        assert!(answer.patch.is_none(), "{name}");
        assert!(answer.warnings.is_empty(), "{name}: {:?}", answer.warnings);
    }
    server.stop().await;
}

#[tokio::test]
async fn report_only_allows_unpatched_with_the_same_warnings_and_says_what_it_would_add() {
    let limits = common::TestLimits {
        report_only: true,
        ..Default::default()
    };
    let reporting = TestServer::start_with(&shipped_policy(), limits).await;
    let enforcing = TestServer::start(&shipped_policy()).await;
    let mut client = reporting.client().await;
    let mut reference = enforcing.client().await;

    let answer = client.review(fixture("create-generate-name.json")).await;
    assert!(answer.patch.is_none(), "{:?}", answer.response);
    assert_eq!(
        answer.response["response"]["auditAnnotations"],
        json!({"would-inject-secrets": "harbor-pull,dockerhub-creds,ghcr-acme"})
    );

    // A pod with a broken image and one secret already there: the warnings
    // are the enforcing server's, and only the missing secrets are named.
    let mut review = fixture("create-named-sa-secret.json");
    review["request"]["object"]["spec"]["containers"][0]["image"] = json!("Bad Image");
    let reported = client.review(review.clone()).await;
    let enforced = reference.review(review).await;
    assert!(reported.patch.is_none() && enforced.patch.is_some());
    assert!(!reported.warnings.is_empty());
    assert_eq!(reported.warnings, enforced.warnings);
    assert_eq!(
        reported.response["response"]["auditAnnotations"]["would-inject-secrets"],
        enforced.response["response"]["auditAnnotations"]["injected-secrets"]
    );
    assert!(
        reported.response["response"]["auditAnnotations"]
            .get("injected-secrets")
            .is_none()
    );

    // Nothing missing: no annotation at all; non-creates as usual.
    let answer = client.review(fixture("create-duplicates.json")).await;
    assert!(answer.patch.is_none());
    assert!(
        answer.response["response"]
            .get("auditAnnotations")
            .is_none()
    );
    let answer = client.review(fixture("update.json")).await;
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);

    let metrics = reporting.state.metrics.encode();
    for needle in [
        r#"pull_secret_injector_admission_reviews_total{operation="CREATE",outcome="reported"} 2"#,
        r#"pull_secret_injector_admission_reviews_total{operation="CREATE",outcome="unchanged"} 1"#,
        r#"pull_secret_injector_secrets_would_inject_total{rule="ghcr"} 2"#,
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    assert!(
        !metrics.contains("outcome=\"patched\"") && !metrics.contains("secrets_injected_total{"),
        "{metrics}"
    );
    reporting.stop().await;
    enforcing.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_400_and_the_server_keeps_answering() {
    let server = TestServer::start(&shipped_policy()).await;
    let good = fixture("create-generate-name.json");
    let good_text = serde_json::to_vec(&good).expect("json");
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"kind":"Pod"}},"operation":"CREATE","object":{}}}}}"#,
        nest(100_000)
    )
    .into_bytes();
    let deep_in_pod = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"kind":"Pod"}},"operation":"CREATE","object":{{"spec":{{"x":{}}}}}}}}}"#,
        nest(100_000)
    )
    .into_bytes();
    let deep_ignored = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","extra":{},"request":{{"uid":"u"}}}}"#,
        nest(100_000)
    )
    .into_bytes();
    let wrong_kind =
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}))
            .expect("json");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty", Vec::new(), 400, "not an AdmissionReview"),
        ("not json", b"hello".to_vec(), 400, "not an AdmissionReview"),
        (
            "truncated",
            good_text[..good_text.len() / 2].to_vec(),
            400,
            "EOF",
        ),
        ("wrong kind", wrong_kind, 400, "unsupported apiVersion"),
        (
            "json array",
            b"[1,2,3]".to_vec(),
            400,
            "not an AdmissionReview",
        ),
        ("deeply nested object", deep, 400, "not an AdmissionReview"),
        (
            "deeply nested pod field",
            deep_in_pod,
            200,
            r#""allowed":true"#,
        ),
        (
            "deeply nested unknown field",
            deep_ignored,
            200,
            r#""allowed":true"#,
        ),
        ("huge", vec![b' '; 9 * 1024 * 1024], 413, ""),
    ];
    for (what, body, status, message) in cases {
        let mut client = server.client().await;
        let (got, text) = client.request("POST", "/mutate", body).await;
        let text = String::from_utf8_lossy(&text);
        assert_eq!(got, status, "{what}: {text}");
        assert!(text.contains(message), "{what}: {text}");
        // The same connection, when the server kept it, and a new one both
        // still get correct answers.
        if status != 413 {
            create_gives(
                &mut client,
                "create-generate-name.json",
                &["harbor-pull", "dockerhub-creds", "ghcr-acme"],
            )
            .await;
        }
        let mut fresh = server.client().await;
        create_gives(
            &mut fresh,
            "create-generate-name.json",
            &["harbor-pull", "dockerhub-creds", "ghcr-acme"],
        )
        .await;
    }
    let mut client = server.client().await;
    assert_eq!(client.request("GET", "/mutate", Vec::new()).await.0, 405);
    assert_eq!(client.request("GET", "/nope", Vec::new()).await.0, 404);
    server.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut client = server.client().await;
    assert_eq!(client.request("GET", "/healthz", Vec::new()).await.0, 200);
    assert_eq!(client.request("GET", "/readyz", Vec::new()).await.0, 200);
    server.state.start_draining();
    let (status, body) = client.request("GET", "/readyz", Vec::new()).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    // Draining closes each connection after its answer; a new one still
    // gets served until the listener closes.
    let mut client = server.client().await;
    assert_eq!(client.request("GET", "/healthz", Vec::new()).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn http2_is_offered_and_works() {
    let server = TestServer::start(&shipped_policy()).await;
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let connector = tokio_rustls::TlsConnector::from(common::client_config(
        &server.ca_pem,
        &[b"h2", b"http/1.1"],
    ));
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("GET")
        .uri(format!("https://localhost:{}/healthz", server.addr.port()))
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_blocks_nobody_and_is_dropped() {
    use tokio::io::AsyncReadExt as _;
    let limits = common::TestLimits {
        server: pull_secret_injector::webhook::server::Limits {
            handshake: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = TestServer::start_with(&shipped_policy(), limits).await;
    let mut stalled = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut client = server.client().await;
    patches_the_usual_pod(&mut client).await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stalled.read(&mut buf))
        .await
        .expect("the server closes a stalled handshake");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_untrusted_client_view_fails_and_the_right_ca_succeeds() {
    let server = TestServer::start(&shipped_policy()).await;
    let other_ca = pull_secret_injector::webhook::certs::Authority::generate("other").expect("ca");
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let connector = tokio_rustls::TlsConnector::from(common::client_config(
        other_ca.cert_pem(),
        &[b"http/1.1"],
    ));
    let result = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await;
    assert!(
        result.is_err(),
        "a certificate from another CA must not verify"
    );
    let mut client = server.client().await;
    assert_eq!(client.request("GET", "/healthz", Vec::new()).await.0, 200);
    server.stop().await;
}

/// A client that sends its headers and then trickles (or stalls) its body
/// gets 408 once the request timeout passes, and holds nobody else up.
#[tokio::test]
async fn a_stalled_body_times_out_with_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let limits = common::TestLimits {
        http: pull_secret_injector::webhook::http::HttpLimits {
            request_timeout: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    };
    let server = TestServer::start_with(&shipped_policy(), limits).await;
    let body = serde_json::to_vec(&fixture("create-generate-name.json")).expect("json");
    let mut slow = common::raw_tls(server.addr, &server.ca_pem).await;
    let head = format!(
        "POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    slow.write_all(&body[..body.len() / 2])
        .await
        .expect("write");
    slow.flush().await.expect("flush");

    // Meanwhile a well-behaved client is answered.
    let mut client = server.client().await;
    patches_the_usual_pod(&mut client).await;

    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut response),
    )
    .await
    .expect("the server gives up on the stalled body");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{read:?}: {response}");
    server.stop().await;
}

/// Once draining, HTTP/1.1 answers say `Connection: close` and the server
/// closes the kept-alive connection after answering, so a pooling client
/// moves to another replica before the listener goes away.
#[tokio::test]
async fn draining_closes_kept_alive_connections_after_the_answer() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = TestServer::start(&shipped_policy()).await;
    let mut conn = common::raw_tls(server.addr, &server.ca_pem).await;
    server.state.start_draining();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    conn.flush().await.expect("flush");
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut response),
    )
    .await
    .expect("the server closes the connection after the answer")
    .ok();
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    server.stop().await;
}

/// A client that negotiates no ALPN gets HTTP/1.1 (with its timeouts).
/// (The connection cap and its eviction are proven in tests/hardening.rs.)
#[tokio::test]
async fn no_alpn_means_http1() {
    let server = TestServer::start(&shipped_policy()).await;
    let mut plain = ApiServerClient::connect(server.addr, &server.ca_pem, &[]).await;
    assert_eq!(plain.alpn, None);
    patches_the_usual_pod(&mut plain).await;
    server.stop().await;
}
