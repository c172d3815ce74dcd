#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `explain --dockerconfig` through the real binary: the `auths` keys the
//! kubelet would try for each image, in its order, over several files
//! merged like a Pod's pull secrets; never a credential in the output.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pull-secret-injector");
const MARKER: &str = "hunter2-MARKER-51c0de";

fn entry() -> Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("robot:{MARKER}"));
    json!({"username": "robot", "password": MARKER, "auth": auth})
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn explain(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("explain")
        .args(args)
        .env_remove("PSI_DOCKERCONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    for text in [&stdout, &stderr] {
        assert!(!text.contains(MARKER), "a credential was printed:\n{text}");
        assert!(!text.contains("cm9ib3Q6"), "an auth was printed:\n{text}");
    }
    (out.status.code().unwrap(), stdout, stderr)
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn credentials_follow_the_kubelets_keyring_over_merged_files() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.json",
        &json!({"rules": [{"name": "harbor", "registries": ["harbor.corp.example"], "secrets": ["harbor-pull"]}]}),
    );
    // A .dockerconfigjson and a legacy .dockercfg (no `auths` wrapper).
    let json_config = write(
        dir.path(),
        "config.json",
        &json!({"auths": {
            "https://index.docker.io/v1/": entry(),
            "harbor.corp.example": entry(),
            "*.corp.example": entry(),
            "quay.io:443": entry(),
        }}),
    );
    let legacy = write(
        dir.path(),
        "dockercfg",
        &json!({"https://harbor.corp.example/v2/team-a": entry()}),
    );
    let (code, stdout, stderr) = explain(&[
        "--policy",
        &policy,
        "--dockerconfig",
        &json_config,
        "--dockerconfig",
        &legacy,
        "nginx",
        "harbor.corp.example/team-a/api:1",
        "harbor.corp.example/team-b/api:1",
        "registry.corp.example/x",
        "localhost/x",
        "quay.io/x",
        "Bad Image",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let credentials: Vec<Value> = lines(&stdout)
        .iter()
        .map(|l| l.get("credentials").cloned().unwrap_or(json!("<none>")))
        .collect();
    assert_eq!(
        credentials,
        [
            json!(["https://index.docker.io/v1/"]),
            // Most specific first: the path key of the second file, then
            // the host, then the glob.
            json!([
                "https://harbor.corp.example/v2/team-a",
                "harbor.corp.example",
                "*.corp.example"
            ]),
            json!(["harbor.corp.example", "*.corp.example"]),
            json!(["*.corp.example"]),
            // The kubelet sends localhost/x to Docker Hub's keys.
            json!(["https://index.docker.io/v1/"]),
            // quay.io:443 has a port the image does not.
            json!([]),
            json!("<none>"),
        ]
    );
    // Documented order: credentials come last.
    let raw = stdout.lines().nth(1).unwrap();
    assert!(
        raw.contains(r#""managed":{"harbor-pull":null},"credentials":["#) && raw.ends_with("]}"),
        "{raw}"
    );
    let second = &lines(&stdout)[1];
    assert_eq!(second["secrets"], json!(["harbor-pull"]));

    // Without --dockerconfig, no credentials field.
    let (code, stdout, _) = explain(&["--policy", &policy, "nginx"]);
    assert_eq!(code, 0);
    assert!(lines(&stdout)[0].get("credentials").is_none(), "{stdout}");
}

#[test]
fn an_unreadable_docker_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.json",
        &json!({"rules": [{"name": "hub", "registries": ["docker.io"], "secrets": ["hub"]}]}),
    );
    let bad = write(
        dir.path(),
        "bad.json",
        &json!({"auths": {"docker.io": {"password": 7, "username": MARKER}}}),
    );
    let (code, stdout, stderr) = explain(&["--policy", &policy, "--dockerconfig", &bad, "nginx"]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("bad.json: not a docker config the kubelet accepts"),
        "{stderr}"
    );

    let missing = dir.path().join("missing.json");
    let (code, _, stderr) = explain(&[
        "--policy",
        &policy,
        "--dockerconfig",
        missing.to_str().unwrap(),
        "nginx",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read --dockerconfig"), "{stderr}");
}
