//! A fake cluster for `bench/audit.sh`: the in-process fake API server of
//! the tests (`tests/fake_api`, authorizing as the shipped audit
//! ServiceAccount) filled with NAMESPACES × PODS Pods, served over HTTP to
//! a kubeconfig written at `--kubeconfig`.
//!
//! Each namespace holds Deployments of 10 Pods (with their ReplicaSets),
//! two pull secrets and a few large Opaque Secrets (Helm release records
//! are like that), and every Pod carries what the apiserver stores
//! (managedFields, env, volumes, status) so pages weigh what real ones do.
//! One Deployment in ten predates the webhook (its Pods list no secret), so
//! the audit has findings to print.
//!
//! Before serving it measures the reference the benchmark compares with:
//! listing every Pod in pages of `--chunk-size` through a kube client, doing
//! nothing with them. Then it prints `ready` and serves until stdin closes.
//!
//! ```text
//! cargo run --release --example audit_cluster -- --namespaces 100 --pods 100 \
//!     --kubeconfig /tmp/kubeconfig --policy /tmp/policy.yaml --chunk-size 500
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/fake_api/mod.rs"]
mod fake_api;

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use base64::Engine as _;
use fake_api::{FakeApi, Manifests};
use serde_json::{Value, json};

const POLICY: &str = "rules:
  - name: corp-harbor
    registries: [harbor.corp.example]
    secrets: [harbor-pull]
  - name: dockerhub
    registries: [docker.io]
    secrets: [dockerhub-creds]
";

struct Args {
    namespaces: usize,
    pods: usize,
    kubeconfig: PathBuf,
    policy: PathBuf,
    chunk_size: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        namespaces: 100,
        pods: 100,
        kubeconfig: PathBuf::from("kubeconfig"),
        policy: PathBuf::from("policy.yaml"),
        chunk_size: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--namespaces" => out.namespaces = value.parse()?,
            "--pods" => out.pods = value.parse()?,
            "--kubeconfig" => out.kubeconfig = value.into(),
            "--policy" => out.policy = value.into(),
            "--chunk-size" => out.chunk_size = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(out)
}

fn pod(ns: &str, deployment: &str, rs: &str, i: usize, with_secrets: bool) -> Value {
    let name = format!("{rs}-{i:05}");
    let mut pod = json!({
        "metadata": {
            "name": name, "namespace": ns, "generateName": format!("{rs}-"),
            "labels": {"app": deployment, "pod-template-hash": "7d9f8b6c5d"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-30T10:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                "uid": "00000000-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                 "time": "2026-11-30T10:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}}},
                              "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "subresource": "status",
                 "time": "2026-11-30T10:00:05Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:phase": {}, "f:podIP": {}}}},
            ],
        },
        "spec": {
            "containers": [
                {"name": "app", "image": format!("harbor.corp.example/{ns}/{deployment}:1.4.2"),
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                 "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10},
                 "imagePullPolicy": "IfNotPresent"},
                {"name": "proxy", "image": "nginx:1.27",
                 "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                 "imagePullPolicy": "IfNotPresent"},
            ],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}],
            "serviceAccountName": "default", "nodeName": format!("node-{}", i % 7),
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
        },
        "status": {
            "phase": "Running", "podIP": format!("10.0.{}.{}", i / 250, i % 250),
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "harbor.corp.example/app:1.4.2"}],
        },
    });
    if with_secrets {
        pod["spec"]["imagePullSecrets"] =
            json!([{"name": "harbor-pull"}, {"name": "dockerhub-creds"}]);
    }
    pod
}

fn secret(ns: &str, name: &str, secret_type: &str, data: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns},
        "type": secret_type,
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(data)},
    })
}

fn fill(fake: &FakeApi, namespaces: usize, pods: usize) {
    let pull = "kubernetes.io/dockerconfigjson";
    let config = r#"{"auths":{"harbor.corp.example":{"auth":"cm9ib3Q6cGFzc3dvcmQ="},"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}"#;
    let release = "x".repeat(64 * 1024);
    for n in 0..namespaces {
        let ns = format!("team-{n:03}");
        fake.put_namespace(&ns, &[]);
        fake.put_object("secrets", secret(&ns, "harbor-pull", pull, config));
        fake.put_object("secrets", secret(&ns, "dockerhub-creds", pull, config));
        for r in 0..3 {
            fake.put_object(
                "secrets",
                secret(
                    &ns,
                    &format!("sh.helm.release.v1.app.v{r}"),
                    "helm.sh/release.v1",
                    &release,
                ),
            );
        }
        for d in 0..pods.div_ceil(10) {
            let deployment = format!("app-{d:03}");
            let rs = format!("{deployment}-7d9f8b6c5d");
            fake.put_object(
                "deployments",
                json!({"metadata": {"name": deployment, "namespace": ns}, "spec": {}}),
            );
            fake.put_object("replicasets", json!({"metadata": {"name": rs, "namespace": ns,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                    "uid": "00000000-0000-4000-8000-000000000002", "controller": true}]}, "spec": {}}));
            for i in 0..10.min(pods - d * 10) {
                fake.put_object("pods", pod(&ns, &deployment, &rs, i, d % 10 != 9));
            }
        }
    }
}

/// The reference: every Pod listed in pages, nothing else done.
async fn list_only(client: kube::Client, chunk: usize) -> anyhow::Result<(usize, usize)> {
    let mut token: Option<String> = None;
    let (mut pods, mut bytes) = (0, 0);
    loop {
        let params = kube::api::ListParams {
            limit: Some(u32::try_from(chunk)?),
            continue_token: token.clone(),
            ..Default::default()
        };
        let request = kube::core::Request::new("/api/v1/pods").list(&params)?;
        let text = client.request_text(request).await?;
        bytes += text.len();
        let page: Value = serde_json::from_str(&text)?;
        pods += page["items"].as_array().map_or(0, Vec::len);
        match page["metadata"]["continue"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            Some(next) => token = Some(next.to_owned()),
            None => return Ok((pods, bytes)),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let fake = FakeApi::start_with(Manifests::audit()).await;
    fill(&fake, args.namespaces, args.pods);
    std::fs::write(&args.policy, POLICY)?;
    std::fs::write(
        &args.kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\nusers:\n- name: audit\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: audit\n    namespace: default\ncurrent-context: fake\n",
            fake.addr
        ),
    )?;
    let started = Instant::now();
    let (pods, bytes) = list_only(fake.client(), args.chunk_size).await?;
    println!(
        "reference {:.3} s listing {pods} pods ({:.1} MB) in pages of {}",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        args.chunk_size
    );
    println!("ready");
    // Serve until the script closes stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    Ok(())
}
