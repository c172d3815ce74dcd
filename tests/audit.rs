#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `audit` through the real binary, against the in-process fake API server
//! reached through a kubeconfig file, authorized as the shipped example
//! CronJob's ServiceAccount (`manifests/audit`): findings of every kind,
//! pages followed with `continue`, Secrets read once per namespace, owners
//! resolved through ReplicaSets and Jobs, RBAC denials, exit codes, and no
//! secret value anywhere in the output.

mod fake_api;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use fake_api::{FakeApi, Manifests};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pull-secret-injector");

const POLICY: &str = r#"
rules:
  - name: corp-harbor
    registries: [harbor.corp.example]
    secrets: [harbor-pull]
  - name: dockerhub
    registries: [docker.io]
    secrets: [dockerhub-creds]
  - name: quay
    registries: [quay.io]
    secrets: [quay-pull]
    namespaces: {selector: {matchLabels: {quay: "yes"}}}
"#;

/// A password that must never be printed.
const MARKER: &str = "hunter2-MARKER-7f3a9c";

/// A Pod as the apiserver stores it (with some of the noise: managedFields,
/// an env value, status).
fn pod(
    ns: &str,
    name: &str,
    owner: Option<(&str, &str, &str)>,
    containers: &[(&str, &str)],
    secrets: &[&str],
) -> Value {
    let mut pod = json!({
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {"app": name},
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}],
        },
        "spec": {
            "containers": containers.iter().map(|(c, image)| json!({
                "name": c, "image": image,
                "env": [{"name": "PASSWORD", "value": "not-a-pull-secret"}],
            })).collect::<Vec<_>>(),
            "serviceAccountName": "default",
        },
        "status": {"phase": "Running"},
    });
    if !secrets.is_empty() {
        pod["spec"]["imagePullSecrets"] =
            Value::Array(secrets.iter().map(|s| json!({"name": s})).collect());
    }
    if let Some((api_version, kind, owner)) = owner {
        pod["metadata"]["ownerReferences"] = json!([{
            "apiVersion": api_version, "kind": kind, "name": owner,
            "uid": "00000000-0000-4000-8000-00000000abcd", "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    pod
}

fn owned(ns: &str, name: &str, owner: Option<(&str, &str, &str)>) -> Value {
    let mut object = json!({"metadata": {"name": name, "namespace": ns}, "spec": {}});
    if let Some((api_version, kind, owner)) = owner {
        object["metadata"]["ownerReferences"] = json!([{
            "apiVersion": api_version, "kind": kind, "name": owner,
            "uid": "00000000-0000-4000-8000-00000000beef", "controller": true,
        }]);
    }
    object
}

fn secret(ns: &str, name: &str, secret_type: &str) -> Value {
    let config = json!({"auths": {"harbor.corp.example": {"username": "robot", "password": MARKER,
        "auth": base64::engine::general_purpose::STANDARD.encode(format!("robot:{MARKER}"))}}});
    let data = base64::engine::general_purpose::STANDARD.encode(config.to_string());
    json!({
        "metadata": {"name": name, "namespace": ns},
        "type": secret_type,
        "data": {".dockerconfigjson": data, "password": base64::engine::general_purpose::STANDARD.encode(MARKER)},
    })
}

/// The cluster of these tests: team-a (Deployment, CronJob, a bare pod),
/// team-b (labelled for the quay rule), team-c (all good).
async fn cluster(manifests: Manifests) -> FakeApi {
    let fake = FakeApi::start_with(manifests).await;
    fake.put_namespace("team-a", &[]);
    fake.put_namespace("team-b", &[("quay", "yes")]);
    fake.put_namespace("team-c", &[]);
    let ns = fake.manifests().namespace.clone();
    let cm = fake.manifests().policy_configmap.clone();
    fake.put_configmap(&ns, &cm, &[("policy.yaml", POLICY)]);
    let dockerconfigjson = "kubernetes.io/dockerconfigjson";

    // team-a
    fake.put_object("deployments", owned("team-a", "api", None));
    fake.put_object(
        "replicasets",
        owned(
            "team-a",
            "api-7d9f8b6c5d",
            Some(("apps/v1", "Deployment", "api")),
        ),
    );
    for i in 0..3 {
        fake.put_object(
            "pods",
            pod(
                "team-a",
                &format!("api-7d9f8b6c5d-{i}"),
                Some(("apps/v1", "ReplicaSet", "api-7d9f8b6c5d")),
                &[("api", "harbor.corp.example/team-a/api:1.4.2")],
                &[],
            ),
        );
    }
    fake.put_object("cronjobs", owned("team-a", "backup", None));
    fake.put_object(
        "jobs",
        owned(
            "team-a",
            "backup-29012345",
            Some(("batch/v1", "CronJob", "backup")),
        ),
    );
    fake.put_object(
        "pods",
        pod(
            "team-a",
            "backup-29012345-x7k2p",
            Some(("batch/v1", "Job", "backup-29012345")),
            &[("backup", "nginx:1.27")],
            &["dockerhub-creds", "gone"],
        ),
    );
    fake.put_object(
        "pods",
        pod("team-a", "bare", None, &[("x", "Not/A Valid:Image")], &[]),
    );
    fake.put_object(
        "pods",
        pod(
            "team-a",
            "db-0",
            Some(("apps/v1", "StatefulSet", "db")),
            &[("db", "harbor.corp.example/db:16")],
            &["harbor-pull"],
        ),
    );
    fake.put_object(
        "secrets",
        secret("team-a", "dockerhub-creds", dockerconfigjson),
    );
    fake.put_object("secrets", secret("team-a", "harbor-pull", dockerconfigjson));

    // team-b: the quay rule applies by label; one Secret of the wrong type.
    fake.put_object(
        "pods",
        pod(
            "team-b",
            "web",
            None,
            &[
                ("web", "quay.io/acme/web:2"),
                ("proxy", "harbor.corp.example/proxy:1"),
            ],
            &["harbor-pull"],
        ),
    );
    fake.put_object("secrets", secret("team-b", "harbor-pull", "Opaque"));

    // team-c: all good.
    for i in 0..2 {
        fake.put_object(
            "pods",
            pod(
                "team-c",
                &format!("ok-{i}"),
                None,
                &[("ok", "harbor.corp.example/ok:1")],
                &["harbor-pull"],
            ),
        );
    }
    fake.put_object("secrets", secret("team-c", "harbor-pull", dockerconfigjson));
    fake
}

/// A kubeconfig pointing at the fake, with `namespace` as the context's.
fn write_kubeconfig(dir: &Path, fake: &FakeApi, namespace: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\nusers:\n- name: audit\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: audit\n    namespace: {namespace}\ncurrent-context: fake\n",
            fake.addr
        ),
    )
    .unwrap();
    path
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn audit(kubeconfig: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(BIN);
    command
        .arg("audit")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    for (key, _) in std::env::vars() {
        if key.starts_with("PSI_") {
            command.env_remove(key);
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let run = Run {
        code: status.code().expect("exit code"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(MARKER),
            "a secret value was printed:\n{text}"
        );
        assert!(
            !text.contains("cm9ib3Q6"),
            "a secret's auth was printed:\n{text}"
        );
    }
    run
}

fn policy_file(dir: &Path) -> PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(&path, POLICY).unwrap();
    path
}

fn findings(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn finding(
    ns: &str,
    pod: &str,
    container: &str,
    image: &str,
    kind: &str,
    secret: Option<&str>,
) -> Value {
    json!({"namespace": ns, "pod": pod, "container": container, "image": image, "finding": kind, "secret": secret})
}

#[tokio::test(flavor = "multi_thread")]
async fn json_findings_of_every_kind_over_pages_followed_with_continue() {
    let fake = cluster(Manifests::audit()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &fake, "default");
    let policy = policy_file(dir.path());
    let run = audit(
        &kubeconfig,
        &[
            "-A",
            "-o",
            "json",
            "--chunk-size",
            "2",
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 1, "findings exit 1; stderr: {}", run.stderr);
    assert_eq!(run.stderr, "", "nothing on stderr when not a terminal");
    let lines = findings(&run.stdout);
    for line in &lines {
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 7, "{line}");
        assert!(
            line["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{line}"
        );
    }
    let without_detail: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove("detail");
            l
        })
        .collect();
    let harbor = "harbor.corp.example/team-a/api:1.4.2";
    assert_eq!(
        without_detail,
        vec![
            finding(
                "team-a",
                "api-7d9f8b6c5d-0",
                "api",
                harbor,
                "missing-secret-ref",
                Some("harbor-pull")
            ),
            finding(
                "team-a",
                "api-7d9f8b6c5d-0",
                "api",
                harbor,
                "no-credentials",
                None
            ),
            finding(
                "team-a",
                "api-7d9f8b6c5d-1",
                "api",
                harbor,
                "missing-secret-ref",
                Some("harbor-pull")
            ),
            finding(
                "team-a",
                "api-7d9f8b6c5d-1",
                "api",
                harbor,
                "no-credentials",
                None
            ),
            finding(
                "team-a",
                "api-7d9f8b6c5d-2",
                "api",
                harbor,
                "missing-secret-ref",
                Some("harbor-pull")
            ),
            finding(
                "team-a",
                "api-7d9f8b6c5d-2",
                "api",
                harbor,
                "no-credentials",
                None
            ),
            finding(
                "team-a",
                "backup-29012345-x7k2p",
                "backup",
                "nginx:1.27",
                "secret-not-found",
                Some("gone")
            ),
            finding(
                "team-a",
                "backup-29012345-x7k2p",
                "backup",
                "nginx:1.27",
                "no-credentials",
                None
            ),
            finding(
                "team-a",
                "bare",
                "x",
                "Not/A Valid:Image",
                "invalid-image",
                None
            ),
            finding(
                "team-b",
                "web",
                "web",
                "quay.io/acme/web:2",
                "missing-secret-ref",
                Some("quay-pull")
            ),
            finding(
                "team-b",
                "web",
                "web",
                "quay.io/acme/web:2",
                "no-credentials",
                None
            ),
            finding(
                "team-b",
                "web",
                "proxy",
                "harbor.corp.example/proxy:1",
                "secret-wrong-type",
                Some("harbor-pull")
            ),
            finding(
                "team-b",
                "web",
                "proxy",
                "harbor.corp.example/proxy:1",
                "no-credentials",
                None
            ),
        ]
    );
    assert!(
        lines[11]["detail"].as_str().unwrap().contains("\"Opaque\""),
        "{}",
        lines[11]
    );

    // no-credentials names the pull secrets and their keys, never values.
    assert_eq!(
        lines[7]["detail"],
        "rules dockerhub match the image, but no auths key of the pod's pull secrets is one the kubelet would use for it: dockerhub-creds [harbor.corp.example]"
    );

    // Pods were listed cluster-wide in pages of 2, each page asking for the
    // token the previous one returned, until the last.
    let pods: Vec<_> = fake
        .list_requests()
        .into_iter()
        .filter(|r| r.resource == "pods")
        .collect();
    assert_eq!(pods.len(), 5, "{pods:#?}");
    assert!(
        pods.iter()
            .all(|r| r.namespace.is_empty() && r.limit == Some(2)),
        "{pods:#?}"
    );
    assert_eq!(pods[0].continue_token, None);
    assert!(pods[1..].iter().all(|r| r.continue_token.is_some()));
    assert_eq!(pods.iter().map(|r| r.returned).sum::<usize>(), 9);
    // Secrets: once per namespace whose pods list any, in pages too.
    let secrets: Vec<_> = fake
        .list_requests()
        .into_iter()
        .filter(|r| r.resource == "secrets")
        .collect();
    assert_eq!(
        secrets
            .iter()
            .map(|r| r.namespace.as_str())
            .collect::<Vec<_>>(),
        ["team-a", "team-b", "team-c"]
    );
    assert!(secrets.iter().all(|r| r.limit == Some(2)));
    // JSON output names no owners, so none were looked up.
    assert!(fake.object_gets().is_empty(), "{:?}", fake.object_gets());
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn table_names_the_workload_to_restart_and_sums_up() {
    let fake = cluster(Manifests::audit()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &fake, "default");
    // The policy from the ConfigMap, as the example CronJob reads it.
    let configmap = format!(
        "{}/{}",
        fake.manifests().namespace,
        fake.manifests().policy_configmap
    );
    let run = audit(
        &kubeconfig,
        &["--all-namespaces", "--policy-configmap", &configmap],
    )
    .await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 15, "{}", run.stdout);
    let header = lines[0];
    for column in [
        "NAMESPACE",
        "POD",
        "WORKLOAD",
        "CONTAINER",
        "IMAGE",
        "FINDING",
        "SECRET",
        "DETAIL",
    ] {
        assert!(header.contains(column), "{header}");
    }
    // Aligned: every row's cells start where the header's columns do.
    let starts: Vec<usize> = [
        "POD",
        "WORKLOAD",
        "CONTAINER",
        "IMAGE",
        "FINDING",
        "SECRET",
        "DETAIL",
    ]
    .iter()
    .map(|c| header.find(c).unwrap())
    .collect();
    for row in &lines[1..14] {
        for &at in &starts {
            assert_eq!(&row[at - 3..at], "   ", "column at {at} in {row:?}");
            assert_ne!(&row[at..=at], " ", "column at {at} in {row:?}");
        }
    }
    let row = |pod: &str| lines.iter().find(|l| l.contains(pod)).copied().unwrap();
    assert!(row("api-7d9f8b6c5d-0").contains("Deployment/api"));
    assert!(row("backup-29012345-x7k2p").contains("CronJob/backup"));
    assert!(row("bare").contains("<none>"));
    assert!(row("web ").contains("quay-pull"));
    assert_eq!(lines[14], "13 findings in 6 of 9 pods (3 namespaces)");
    // Owners were read once each (the three api pods share a ReplicaSet).
    assert_eq!(
        fake.object_gets(),
        [
            "replicasets team-a/api-7d9f8b6c5d",
            "jobs team-a/backup-29012345"
        ]
    );
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_without_findings_exits_0_and_the_current_namespace_is_the_default() {
    let fake = cluster(Manifests::audit()).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(dir.path());
    // No -n / -A: the kubeconfig context's namespace.
    let kubeconfig = write_kubeconfig(dir.path(), &fake, "team-c");
    let run = audit(&kubeconfig, &["--policy", policy.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "0 findings in 0 of 2 pods (namespace team-c)\n");
    let pods: Vec<_> = fake
        .list_requests()
        .into_iter()
        .filter(|r| r.resource == "pods")
        .collect();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].namespace, "team-c");
    assert_eq!(pods[0].limit, Some(500), "the default page size");

    let run = audit(
        &kubeconfig,
        &[
            "-n",
            "team-b",
            "-o",
            "json",
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(findings(&run.stdout).len(), 4);
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_denials_exit_2_naming_the_permission() {
    // Without secrets in the ClusterRole.
    let mut manifests = Manifests::audit();
    for rule in &mut manifests.rbac.cluster {
        if let Some(resources) = &mut rule.resources {
            resources.retain(|r| r != "secrets");
        }
    }
    let fake = cluster(manifests).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &fake, "default");
    let policy = policy_file(dir.path());
    let run = audit(&kubeconfig, &["-A", "--policy", policy.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.starts_with(
            "error: cannot list secrets in namespace \"team-a\": forbidden: secrets is forbidden: User \"system:serviceaccount:pull-secret-injector:pull-secret-injector-audit\" cannot list resource \"secrets\""
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("pull-secret-injector-audit (manifests/audit)"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "", "no partial table");

    // Only namespaced rights: listing across namespaces is denied at once.
    let mut manifests = Manifests::audit();
    let rules = std::mem::take(&mut manifests.rbac.cluster);
    manifests.rbac.namespaced.push(("team-a".to_owned(), rules));
    let fake = cluster(manifests).await;
    let kubeconfig = write_kubeconfig(dir.path(), &fake, "default");
    let run = audit(&kubeconfig, &["-A", "--policy", policy.to_str().unwrap()]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: cannot list pods in all namespaces: forbidden: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("at the cluster scope"),
        "{}",
        run.stderr
    );
    // ...while that namespace alone can be audited.
    let run = audit(
        &kubeconfig,
        &[
            "-n",
            "team-a",
            "-o",
            "json",
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_cannot_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(dir.path());
    let nowhere = dir.path().join("no-kubeconfig");
    let run = audit(&nowhere, &["-A", "--policy", policy.to_str().unwrap()]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: cannot find a cluster to audit"),
        "{}",
        run.stderr
    );

    let fake = cluster(Manifests::audit()).await;
    let kubeconfig = write_kubeconfig(dir.path(), &fake, "default");
    for (args, message) in [
        (vec!["-A"], "--policy"),
        (
            vec!["-A", "--policy", "/nonexistent/policy.yaml"],
            "cannot read /nonexistent/policy.yaml",
        ),
        (
            vec!["-A", "--policy-configmap", "pull-secret-injector/other"],
            "configmaps \"other\" is forbidden",
        ),
        (
            vec!["-A", "--policy-configmap", "nonsense", "--chunk-size", "5"],
            "NAMESPACE/NAME",
        ),
        (
            vec!["-n", "Team_A", "--policy", policy.to_str().unwrap()],
            "not a valid namespace name",
        ),
        (
            vec!["--chunk-size", "0", "--policy", policy.to_str().unwrap()],
            "not a positive number",
        ),
    ] {
        let run = audit(&kubeconfig, &args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_configmap_without_the_policy_exits_2() {
    let fake = cluster(Manifests::audit()).await;
    let ns = fake.manifests().namespace.clone();
    let name = fake.manifests().policy_configmap.clone();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &fake, "default");
    let configmap = format!("{ns}/{name}");
    fake.put_configmap(&ns, &name, &[("other.yaml", "x")]);
    let run = audit(&kubeconfig, &["-A", "--policy-configmap", &configmap]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("does not exist or has no key \"policy.yaml\""),
        "{}",
        run.stderr
    );
    fake.put_configmap(&ns, &name, &[("policy.yaml", "rules: [{name: Bad}]\n")]);
    let run = audit(&kubeconfig, &["-A", "--policy-configmap", &configmap]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(&format!(
            "error: invalid policy in configmap {configmap}:\nconfigmap {configmap}:1:"
        )),
        "{}",
        run.stderr
    );
    fake.assert_clean();
}

#[test]
fn the_example_cronjob_runs_a_valid_audit_command() {
    use clap::Parser as _;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/audit/example/cronjob.yaml"
    ))
    .unwrap();
    let cronjob = pull_secret_injector::core::yaml::to_json(&text).unwrap();
    let args: Vec<String> = serde_json::from_value(
        cronjob
            .pointer("/spec/jobTemplate/spec/template/spec/containers/0/args")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let argv = std::iter::once("pull-secret-injector".to_owned()).chain(args);
    pull_secret_injector::cmd::Cli::try_parse_from(argv).expect("the CronJob's args parse");
}
