#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every subcommand, run as the real binary.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{ApiServerClient, fixture};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pull-secret-injector");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_policy_accepts_the_shipped_policy() {
    let out = run(
        &[
            "check-policy",
            repo("manifests/policy.yaml").to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("valid policy with 6 rule(s)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_policy_lists_every_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "rules:\n  - name: Bad_Name\n    registries: [\"harbor.io/team\"]\n    secrets: []\n    colour: blue\n",
    )
    .unwrap();
    let out = run(&["check-policy", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let file = path.display().to_string();
    for needle in [
        format!("{file}:2:"),
        format!("{file}:3:"),
        format!("{file}:4:"),
        format!("{file}:5:"),
        "rules[0].name".to_owned(),
        "rules[0].registries[0]".to_owned(),
        "rules[0].secrets".to_owned(),
        "colour".to_owned(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn check_policy_notes_selectors_need_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sel.yaml");
    std::fs::write(
        &path,
        "rules:\n- name: sel\n  registries: [ghcr.io]\n  secrets: [s]\n  namespaces:\n    selector:\n      matchLabels: {team: a}\n",
    )
    .unwrap();
    let out = run(&["check-policy", path.to_str().unwrap()], None);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("only when the webhook runs in a cluster"));
}

#[test]
fn explain_prints_one_json_object_per_image() {
    let policy = repo("manifests/policy.yaml");
    let out = run(
        &[
            "explain",
            "--policy",
            policy.to_str().unwrap(),
            "nginx",
            "harbor.corp.example/team-a/api:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Harbor.Corp.Example/team-b/x",
            "NGINX",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The documented field order, byte for byte.
    let first = text(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        first,
        r#"{"image":"nginx","registry":"docker.io","repository":"library/nginx","tag":null,"digest":null,"rules":["dockerhub"],"secrets":["dockerhub-creds"],"managed":{"dockerhub-creds":"pull-secret-injector/dockerhub-creds"}}"#
    );
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(
        lines[0],
        json!({"image": "nginx", "registry": "docker.io", "repository": "library/nginx",
               "tag": null, "digest": null, "rules": ["dockerhub"], "secrets": ["dockerhub-creds"],
               "managed": {"dockerhub-creds": "pull-secret-injector/dockerhub-creds"}})
    );
    assert_eq!(lines[1]["tag"], "1.2");
    assert_eq!(lines[1]["rules"], json!(["corp-harbor"]));
    assert_eq!(
        lines[2]["registry"], "Harbor.Corp.Example",
        "host case is kept"
    );
    assert_eq!(lines[2]["rules"], json!([]), "team-b is outside team-a/**");
    assert_eq!(
        lines[3],
        json!({"image": "NGINX", "error": "invalid reference format: repository name (library/NGINX) must be lowercase"})
    );
}

#[test]
fn explain_says_which_secrets_are_managed_and_from_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "secrets:\n- {name: hub, from: pull-secret-injector/hub-source}\nrules:\n- {name: hub, registries: [docker.io], secrets: [hub, own]}\n",
    )
    .unwrap();
    let out = run(
        &["explain", "--policy", path.to_str().unwrap(), "nginx"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(line["secrets"], json!(["hub", "own"]));
    assert_eq!(
        line["managed"],
        json!({"hub": "pull-secret-injector/hub-source", "own": null})
    );
    let out = run(&["check-policy", path.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn explain_reads_stdin_verbatim_and_applies_namespaces() {
    let policy = repo("manifests/policy.yaml");
    let out = run(
        &[
            "explain",
            "--policy",
            policy.to_str().unwrap(),
            "--namespace",
            "prod-eu",
        ],
        Some("myacr.azurecr.io/app:1\n nginx\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["secrets"], json!(["acr-pull"]));
    assert_eq!(lines[1]["image"], " nginx");
    assert!(lines[1]["error"].is_string());

    let out = run(
        &[
            "explain",
            "--policy",
            policy.to_str().unwrap(),
            "--namespace",
            "dev",
            "myacr.azurecr.io/app:1",
        ],
        None,
    );
    let line: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(line["rules"], json!([]), "acr is limited to prod-*");
}

#[test]
fn mutate_answers_a_review_and_patches_a_pod() {
    let policy = repo("manifests/policy.yaml");
    let review = repo("tests/fixtures/create-generate-name.json");
    let out = run(
        &[
            "mutate",
            "--policy",
            policy.to_str().unwrap(),
            review.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let response: Value = serde_json::from_slice(&out.stdout).unwrap();
    let request = fixture("create-generate-name.json");
    let answer = common::Answer::check(&request, 200, &serde_json::to_vec(&response).unwrap());
    let pod = answer.apply_to(&request["request"]["object"]);
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "harbor-pull"}, {"name": "dockerhub-creds"}, {"name": "ghcr-acme"}])
    );

    let pod_yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  imagePullSecrets:\n  - name: mine\n  containers:\n  - name: web\n    image: nginx:1.27\n  - name: bad\n    image: UPPER\n";
    let out = run(
        &["mutate", "--policy", policy.to_str().unwrap(), "-"],
        Some(pod_yaml),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pod = pull_secret_injector::core::yaml::to_json(&text(&out.stdout)).unwrap();
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "mine"}, {"name": "dockerhub-creds"}])
    );
    assert!(
        text(&out.stderr).contains("warning: "),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("UPPER"));

    // The Pod's own namespace wins over --namespace: acr applies in prod-*.
    let acr_pod = |ns: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"w"{ns}}},"spec":{{"containers":[{{"name":"a","image":"acme.azurecr.io/app"}}]}}}}"#
        )
    };
    for (pod, flag, patched) in [
        (acr_pod(r#","namespace":"prod-eu""#), "dev", true),
        (acr_pod(r#","namespace":"dev""#), "prod-eu", false),
        (acr_pod(""), "prod-eu", true),
    ] {
        let out = run(
            &[
                "mutate",
                "--policy",
                policy.to_str().unwrap(),
                "--namespace",
                flag,
            ],
            Some(&pod),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let pod: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            pod["spec"]["imagePullSecrets"].is_array(),
            patched,
            "{pod} with --namespace {flag}"
        );
    }

    // A review whose request is not an object is an error, not a crash.
    let out = run(
        &[
            "mutate",
            "--policy",
            policy.to_str().unwrap(),
            "--namespace",
            "x",
        ],
        Some(
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":"nonsense"}"#,
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not an AdmissionReview"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &["mutate", "--policy", policy.to_str().unwrap()],
        Some(r#"{"kind":"Deployment","spec":{}}"#),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("mutate takes a Pod or an AdmissionReview"));
}

#[test]
fn certs_writes_a_service_certificate_and_prints_the_ca_bundle() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "certs",
            "--service",
            "psi",
            "--namespace",
            "ops",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(text(&out.stdout).trim())
        .unwrap();
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    assert_eq!(bundle, ca);
    pull_secret_injector::webhook::tls::CertStore::load(
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
    )
    .unwrap();
    assert!(text(&out.stderr).contains("psi.ops.svc.cluster.local"));
}

#[test]
fn serve_without_a_policy_source_is_a_clear_error() {
    let out = run(&["serve"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("give --policy-file PATH or --policy-configmap"));
    let out = run(&["serve", "--policy-configmap", "just-a-name"], None);
    assert!(
        text(&out.stderr).contains("NAMESPACE/NAME"),
        "{}",
        text(&out.stderr)
    );
    // A zero interval is refused up front (it would otherwise spin or stop
    // the reloader), with the flag named.
    let out = run(
        &[
            "serve",
            "--policy-file",
            "x.yaml",
            "--reload-interval",
            "0s",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--reload-interval") && err.contains("positive duration"),
        "{err}"
    );
}

/// `serve --dev` on a fresh checkout: makes its certificate, serves, prints
/// a curl line whose request gets the expected patch, and exits 0 on SIGTERM.
#[tokio::test]
async fn serve_dev_works_from_a_fresh_checkout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::create_dir_all(dir.path().join("tests/fixtures")).unwrap();
    std::fs::copy(
        repo("manifests/policy.yaml"),
        dir.path().join("manifests/policy.yaml"),
    )
    .unwrap();
    std::fs::copy(
        repo("tests/fixtures/create-generate-name.json"),
        dir.path().join("tests/fixtures/create-generate-name.json"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "0s",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let curl = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.trim_start().starts_with("curl "))
    })
    .await
    .unwrap()
    .expect("serve --dev prints a curl line");
    assert!(curl.contains("--cacert certs/ca.crt"), "{curl}");
    assert!(
        curl.contains("@tests/fixtures/create-generate-name.json"),
        "{curl}"
    );
    let port: u16 = curl
        .split("https://localhost:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port in the curl line");

    let ca = std::fs::read_to_string(dir.path().join("certs/ca.crt")).unwrap();
    let mut client =
        ApiServerClient::connect(([127, 0, 0, 1], port).into(), &ca, &[b"http/1.1"]).await;
    let body = std::fs::read(dir.path().join("tests/fixtures/create-generate-name.json")).unwrap();
    let (status, answer) = client.request("POST", "/mutate?timeout=10s", body).await;
    let request = fixture("create-generate-name.json");
    let answer = common::Answer::check(&request, status, &answer);
    let pod = answer.apply_to(&request["request"]["object"]);
    assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], "harbor-pull");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .expect("exits after SIGTERM")
    .unwrap()
    .unwrap();
    assert!(status.success(), "{status:?}");
}
