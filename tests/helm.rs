#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The Helm chart in `manifests/helm/pull-secret-injector`, with the real
//! helm v4.1 and kubectl v1.34 (`.ci/install-tools`; tests/tools/mod.rs):
//!
//! - `helm lint --strict` with the defaults and each `ci/*-values.yaml`;
//! - `helm template` of each values file: every object valid for its kind,
//!   and what each option promises (certificate modes, existing ConfigMap,
//!   inline policy, report-only, sync off, monitoring, the other values);
//! - the schema rejects unknown keys and wrong types;
//! - the defaults with `certificates.mode=certManager` are the objects of
//!   `kubectl kustomize manifests/overlays/cert-manager` but for Helm's own
//!   labels (and the Namespace, which the release's namespace must already
//!   be); the same with monitoring on against the kustomize components, and
//!   with sync off against the overlay without the sync component;
//! - the chart-generated certificate is served by the real binary to a
//!   client that trusts only the webhook's caBundle, for every Service name;
//! - every metric the alerts and the dashboard use is in the real binary's
//!   `/metrics`.

mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::Value;
use tools::kinds::{check_document, describe, differences, kind_of, name_of, namespace_of, str_at};

const BIN: &str = env!("CARGO_BIN_EXE_pull-secret-injector");
/// The release and its namespace, as the README installs it.
const RELEASE: &str = "pull-secret-injector";
const NS: &str = "pull-secret-injector";
const APP: &str = "pull-secret-injector";
const SYNC: &str = "pull-secret-injector-sync";
const TLS_SECRET: &str = "pull-secret-injector-tls";
const POLICY_CONFIGMAP: &str = "pull-secret-injector-policy";
/// The labels Helm charts add by convention, and only they: the rest of
/// every object must equal the kustomize build.
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

/// The sync controller's metrics (the contract of DESIGN.md §8 and issue
/// 12), by type. The binary does not have `sync` yet: they are checked
/// against its `/metrics` only once `pull-secret-injector sync --help` works.
const SYNC_METRICS: [(&str, &str); 5] = [
    ("pull_secret_injector_sync_copies", "gauge"),
    ("pull_secret_injector_sync_sources_invalid", "gauge"),
    ("pull_secret_injector_sync_writes", "counter"),
    ("pull_secret_injector_sync_leader", "gauge"),
    (
        "pull_secret_injector_sync_reconcile_duration_seconds",
        "histogram",
    ),
];

// ---------------------------------------------------------------------------
// The chart and the tools.

fn chart() -> PathBuf {
    tools::repo().join("manifests/helm/pull-secret-injector")
}

fn values_file(name: &str) -> PathBuf {
    chart().join("ci").join(name)
}

/// Every `ci/*-values.yaml` of the chart, sorted.
fn values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    files.sort();
    files
}

fn helm_args(values: &[&Path], sets: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "template".into(),
        RELEASE.into(),
        chart().display().to_string(),
        "--namespace".into(),
        NS.into(),
    ];
    for file in values {
        args.push("--values".into());
        args.push(file.display().to_string());
    }
    for set in sets {
        args.push("--set".into());
        args.push((*set).to_owned());
    }
    args
}

/// `helm template` with these values, as objects (each checked for its
/// kind), or `None` without helm outside CI.
fn template(values: &[&Path], sets: &[&str]) -> Option<Vec<Value>> {
    let helm = tools::helm()?;
    let args = helm_args(values, sets);
    let text = tools::run(&helm, &args);
    let origin = format!("helm {}", args.join(" "));
    let objects = tools::objects(&text, &origin);
    for object in &objects {
        check_document(object, &format!("{origin}: {}", describe(object)));
    }
    Some(objects)
}

/// `helm template` expected to fail: its stderr.
fn template_error(sets: &[&str]) -> Option<String> {
    let helm = tools::helm()?;
    let out = tools::output(&helm, &helm_args(&[], sets));
    assert!(
        !out.status.success(),
        "helm template --set {sets:?} should have failed"
    );
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind_of(o) == kind && name_of(o) == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn has(objects: &[Value], kind: &str, name: &str) -> bool {
    objects
        .iter()
        .any(|o| kind_of(o) == kind && name_of(o) == name)
}

fn container<'a>(objects: &'a [Value], deployment: &str) -> &'a Value {
    &find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
}

fn args(objects: &[Value], deployment: &str) -> Vec<String> {
    container(objects, deployment)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn flag(args: &[String], name: &str) -> Option<String> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

/// Removes Helm's labels (checking every object has them all).
fn without_helm_labels(mut objects: Vec<Value>) -> Vec<Value> {
    for object in &mut objects {
        let what = describe(object);
        let labels = object["metadata"]["labels"]
            .as_object_mut()
            .unwrap_or_else(|| panic!("{what}: no labels"));
        for key in HELM_LABELS {
            assert!(labels.remove(key).is_some(), "{what}: no label {key}");
        }
    }
    objects
}

fn key(o: &Value) -> (String, Option<String>, String) {
    (
        kind_of(o).to_owned(),
        namespace_of(o).map(str::to_owned),
        name_of(o).to_owned(),
    )
}

/// The chart's objects equal the kustomize build's, Namespace aside.
fn assert_same_objects(helm: Vec<Value>, kustomize: Vec<Value>, what: &str) {
    let mut helm = without_helm_labels(helm);
    let mut kustomize: Vec<Value> = kustomize
        .into_iter()
        .filter(|o| kind_of(o) != "Namespace")
        .collect();
    helm.sort_by_key(key);
    kustomize.sort_by_key(key);
    assert_eq!(
        helm.iter().map(key).collect::<Vec<_>>(),
        kustomize.iter().map(key).collect::<Vec<_>>(),
        "{what}: helm and kustomize render different objects"
    );
    for (h, k) in helm.iter().zip(&kustomize) {
        let mut diffs = Vec::new();
        differences(k, h, "", &mut diffs);
        let diffs: Vec<String> = diffs
            .into_iter()
            .map(|d| {
                d.replace("(not a field of the type)", "(only in kustomize)")
                    .replace("(added by the type)", "(only in helm)")
            })
            .collect();
        assert!(
            diffs.is_empty(),
            "{what}: {} differs from kustomize:\n  {}",
            describe(h),
            diffs.join("\n  ")
        );
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `kubectl kustomize` of an overlay written into a copy of manifests/ (as
/// manifests/overlays/test), or `None` without kubectl.
fn kustomize_overlay(kustomization: &str) -> Option<Vec<Value>> {
    kustomize_copy(|copy| {
        let dir = copy.join("overlays/test");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kustomization.yaml"), kustomization).unwrap();
        dir
    })
}

/// `kubectl kustomize` of the directory `edit` returns, after `edit` has
/// changed a copy of manifests/.
fn kustomize_copy(edit: impl FnOnce(&Path) -> PathBuf) -> Option<Vec<Value>> {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("manifests");
    copy_tree(&tools::repo().join("manifests"), &copy);
    let dir = edit(&copy);
    tools::kustomize(&dir)
}

// ---------------------------------------------------------------------------
// Lint, schema, notes.

#[test]
fn lint_passes_with_every_values_file() {
    let Some(helm) = tools::helm() else { return };
    let chart = chart().display().to_string();
    tools::run(&helm, &["lint", "--strict", chart.as_str()]);
    for file in values_files() {
        let file = file.display().to_string();
        tools::run(
            &helm,
            &["lint", "--strict", chart.as_str(), "--values", &file],
        );
    }
}

#[test]
fn chart_metadata_matches_the_crate() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).unwrap();
    let meta = pull_secret_injector::core::yaml::to_json(&text).unwrap();
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["name"], APP);
    assert_eq!(
        meta["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "appVersion = crate version (the image tag by default)"
    );
    // The values files the README and the outside dry run use.
    let names: BTreeSet<String> = values_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "cert-manager-values.yaml",
        "existing-secret-values.yaml",
        "existing-configmap-values.yaml",
        "inline-policy-values.yaml",
        "report-only-values.yaml",
        "no-sync-values.yaml",
        "monitoring-values.yaml",
        "tuned-values.yaml",
    ] {
        assert!(names.contains(expected), "ci/{expected}");
    }
}

#[test]
fn schema_rejects_unknown_keys_and_wrong_types() {
    for (sets, needle) in [
        (&["colour=blue"][..], "colour"),
        (&["replicas=3"][..], "replicas"),
        (&["image.colour=blue"][..], "colour"),
        (&["sync.colour=blue"][..], "colour"),
        (&["certificates.colour=blue"][..], "colour"),
        (&["replicaCount=two"][..], "replicaCount"),
        (&["timeoutSeconds=45"][..], "timeoutSeconds"),
        (&["failurePolicy=Maybe"][..], "failurePolicy"),
        (&["reportOnly=sometimes"][..], "reportOnly"),
        (&["sync.enabled=yes"][..], "enabled"),
        (&["logFormat=xml"][..], "logFormat"),
        (&["certificates.mode=acme"][..], "mode"),
        (&["metrics.port=70000"][..], "port"),
        (&["image.pullSecrets=regcred"][..], "pullSecrets"),
        (&["serviceMonitor.enabled=1"][..], "enabled"),
    ] {
        let Some(stderr) = template_error(sets) else {
            return;
        };
        assert!(
            stderr.contains("schema") && stderr.contains(needle),
            "--set {sets:?}: expected a schema error naming {needle}, got:\n{stderr}"
        );
    }
    // existingSecret without a name, and without a caBundle in `helm template`.
    let Some(stderr) = template_error(&["certificates.mode=existingSecret"]) else {
        return;
    };
    assert!(
        stderr.contains("certificates.existingSecret.name"),
        "{stderr}"
    );
    let stderr = template_error(&[
        "certificates.mode=existingSecret",
        "certificates.existingSecret.name=tls",
    ])
    .unwrap();
    assert!(
        stderr.contains("certificates.existingSecret.caBundle"),
        "{stderr}"
    );
}

#[test]
fn notes_say_how_to_check_it_works() {
    let Some(helm) = tools::helm() else { return };
    let chart = chart().display().to_string();
    for sets in [&[][..], &["reportOnly=true", "sync.enabled=false"][..]] {
        let mut args = vec![
            "install",
            RELEASE,
            chart.as_str(),
            "--namespace",
            NS,
            "--dry-run=client",
        ];
        for set in sets {
            args.extend(["--set", set]);
        }
        let out = tools::run(&helm, &args);
        let notes = out.split_once("NOTES:").map(|(_, n)| n).expect("NOTES");
        for needle in [
            "rollout status deploy/pull-secret-injector",
            "--dry-run=server",
            "imagePullSecrets",
            "pull-secret-injector explain --policy",
            "/metrics",
            "kubectl delete mutatingwebhookconfiguration pull-secret-injector",
        ] {
            assert!(notes.contains(needle), "NOTES lack {needle:?}:\n{notes}");
        }
        assert_eq!(
            notes.contains("deploy/pull-secret-injector-sync"),
            sets.is_empty()
        );
        assert_eq!(notes.contains("REPORT-ONLY"), !sets.is_empty());
    }
}

// ---------------------------------------------------------------------------
// Equivalence with kustomize.

#[test]
fn cert_manager_defaults_are_the_kustomize_overlay() {
    let Some(helm) = template(&[&values_file("cert-manager-values.yaml")], &[]) else {
        return;
    };
    let Some(kustomize) = tools::kustomize(&tools::repo().join("manifests/overlays/cert-manager"))
    else {
        return;
    };
    assert_same_objects(helm, kustomize, "cert-manager");
}

#[test]
fn monitoring_is_the_kustomize_components() {
    let Some(helm) = template(
        &[&values_file("cert-manager-values.yaml")],
        &[
            "serviceMonitor.enabled=true",
            "prometheusRule.enabled=true",
            "dashboard.enabled=true",
        ],
    ) else {
        return;
    };
    let Some(kustomize) = kustomize_overlay(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: pull-secret-injector
resources:
  - ../cert-manager
components:
  - ../../components/monitoring
  - ../../components/monitoring-sync
",
    ) else {
        return;
    };
    assert_same_objects(helm, kustomize, "monitoring");
}

#[test]
fn sync_disabled_is_the_overlay_without_the_component() {
    let Some(helm) = template(
        &[
            &values_file("cert-manager-values.yaml"),
            &values_file("no-sync-values.yaml"),
        ],
        &[],
    ) else {
        return;
    };
    // As the overlay's comment says: delete the two `components:` lines.
    let Some(kustomize) = kustomize_copy(|copy| {
        let dir = copy.join("overlays/cert-manager");
        let path = dir.join("kustomization.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| *l != "components:" && !l.ends_with("components/sync"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(text.lines().count(), kept.lines().count() + 2);
        std::fs::write(&path, kept).unwrap();
        dir
    }) else {
        return;
    };
    assert_same_objects(helm, kustomize, "sync disabled");
}

// ---------------------------------------------------------------------------
// Each option.

/// What holds for every rendering.
fn check_common(objects: &[Value], what: &str) {
    for object in objects {
        let cluster_scoped = matches!(
            kind_of(object),
            "ClusterRole" | "ClusterRoleBinding" | "MutatingWebhookConfiguration"
        );
        assert_eq!(
            namespace_of(object).is_none(),
            cluster_scoped,
            "{what}: {} namespace",
            describe(object)
        );
        assert_ne!(
            kind_of(object),
            "Namespace",
            "{what}: Helm keeps its release in the namespace"
        );
    }
    // The webhook is never granted anything on Secrets.
    for kind in ["ClusterRole", "Role"] {
        let role = find(objects, kind, APP);
        for rule in role["rules"].as_array().unwrap() {
            let resources = rule["resources"].as_array().unwrap();
            assert!(
                !resources.iter().any(|r| r == "secrets" || r == "*"),
                "{what}: webhook {kind} grants {rule}"
            );
        }
    }
    let webhook_args = args(objects, APP);
    assert_eq!(webhook_args[0], "serve");
    let mwc = find(objects, "MutatingWebhookConfiguration", APP);
    let excluded = mwc
        .pointer("/webhooks/0/namespaceSelector/matchExpressions/0/values")
        .unwrap();
    assert!(
        excluded.as_array().unwrap().contains(&Value::from(NS)),
        "{what}: the release namespace is excluded"
    );
}

fn pem_of(secret: &Value, key: &str) -> Vec<u8> {
    let b64 = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("Secret lacks {key}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

#[test]
fn generated_certificates_are_consistent() {
    let Some(objects) = template(&[], &[]) else {
        return;
    };
    check_common(&objects, "defaults");
    assert!(
        !objects
            .iter()
            .any(|o| str_at(o, "/apiVersion") == Some("cert-manager.io/v1"))
    );
    let secret = find(&objects, "Secret", TLS_SECRET);
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let ca = pem_of(secret, "ca.crt");
    let mwc = find(&objects, "MutatingWebhookConfiguration", APP);
    assert!(mwc.pointer("/metadata/annotations").is_none());
    let bundle = str_at(mwc, "/webhooks/0/clientConfig/caBundle").expect("caBundle");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .unwrap(),
        ca,
        "caBundle = the Secret's ca.crt"
    );
    // The certificate chains to the CA for every name of the Service, and
    // for nothing else.
    let cert = pem_of(secret, "tls.crt");
    let key = pem_of(secret, "tls.key");
    assert!(
        String::from_utf8_lossy(&key).contains("BEGIN EC PRIVATE KEY"),
        "an ECDSA key"
    );
    let verifier = verifier_for(&ca);
    let leaf = CertificateDer::from_pem_slice(&cert).unwrap();
    for host in service_hosts(NS) {
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(host.clone()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("the generated certificate is not valid for {host}: {e}"));
    }
    assert!(
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from("pull-secret-injector.other.svc").unwrap(),
                &[],
                UnixTime::now()
            )
            .is_err()
    );
    PrivateKeyDer::from_pem_slice(&key).expect("a PEM private key");
    // Mounted by the Deployment.
    let volume = &find(&objects, "Deployment", APP)["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["secret"]["secretName"], TLS_SECRET);
}

fn service_hosts(ns: &str) -> Vec<String> {
    vec![
        APP.to_owned(),
        format!("{APP}.{ns}"),
        format!("{APP}.{ns}.svc"),
        format!("{APP}.{ns}.svc.cluster.local"),
    ]
}

fn verifier_for(ca_pem: &[u8]) -> Arc<rustls::client::WebPkiServerVerifier> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
        .unwrap();
    rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap()
}

#[test]
fn cert_manager_mode_injects_the_ca() {
    let Some(objects) = template(&[&values_file("cert-manager-values.yaml")], &[]) else {
        return;
    };
    check_common(&objects, "cert-manager");
    assert!(
        !has(&objects, "Secret", TLS_SECRET),
        "cert-manager writes the Secret"
    );
    let mwc = find(&objects, "MutatingWebhookConfiguration", APP);
    assert!(mwc.pointer("/webhooks/0/clientConfig/caBundle").is_none());
    assert_eq!(
        str_at(mwc, "/metadata/annotations/cert-manager.io~1inject-ca-from"),
        Some(format!("{NS}/pull-secret-injector-serving").as_str())
    );
    let serving = find(&objects, "Certificate", "pull-secret-injector-serving");
    assert_eq!(serving["spec"]["secretName"], TLS_SECRET);
    assert_eq!(
        serving["spec"]["dnsNames"],
        serde_json::json!(service_hosts(NS))
    );
    // Durations are values.
    let objects = template(
        &[&values_file("cert-manager-values.yaml")],
        &[
            "certificates.certManager.duration=720h",
            "certificates.certManager.renewBefore=240h",
        ],
    )
    .unwrap();
    let serving = find(&objects, "Certificate", "pull-secret-injector-serving");
    assert_eq!(serving["spec"]["duration"], "720h");
    assert_eq!(serving["spec"]["renewBefore"], "240h");
}

#[test]
fn existing_secret_mode_mounts_it_and_trusts_the_given_ca() {
    let file = values_file("existing-secret-values.yaml");
    let Some(objects) = template(&[&file], &[]) else {
        return;
    };
    check_common(&objects, "existing Secret");
    let values =
        pull_secret_injector::core::yaml::to_json(&std::fs::read_to_string(&file).unwrap())
            .unwrap();
    let name = values["certificates"]["existingSecret"]["name"]
        .as_str()
        .unwrap();
    let bundle = values["certificates"]["existingSecret"]["caBundle"]
        .as_str()
        .unwrap();
    assert!(
        !objects
            .iter()
            .any(|o| kind_of(o) == "Secret" || kind_of(o) == "Certificate")
    );
    let volume = &find(&objects, "Deployment", APP)["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["secret"]["secretName"], name);
    let mwc = find(&objects, "MutatingWebhookConfiguration", APP);
    assert_eq!(
        str_at(mwc, "/webhooks/0/clientConfig/caBundle"),
        Some(bundle)
    );
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .unwrap();
    CertificateDer::from_pem_slice(&pem).expect("the example caBundle is a PEM certificate");
}

#[test]
fn an_existing_configmap_is_read_by_both_and_not_created() {
    let Some(objects) = template(&[&values_file("existing-configmap-values.yaml")], &[]) else {
        return;
    };
    check_common(&objects, "existing ConfigMap");
    let name = "registry-policy";
    assert!(!objects.iter().any(|o| kind_of(o) == "ConfigMap"));
    assert_eq!(
        flag(&args(&objects, APP), "--policy-configmap").as_deref(),
        Some(format!("{NS}/{name}").as_str())
    );
    assert_eq!(
        flag(&args(&objects, SYNC), "--policy-configmap").as_deref(),
        Some(format!("$(POD_NAMESPACE)/{name}").as_str())
    );
    for role in [APP, SYNC] {
        let rules = &find(&objects, "Role", role)["rules"];
        assert_eq!(rules[0]["resources"][0], "configmaps");
        assert_eq!(
            rules[0]["resourceNames"],
            serde_json::json!([name]),
            "Role {role}"
        );
    }
}

/// `check-policy` of the real binary on `text`.
fn check_policy(text: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-policy")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-policy rejects the rendered policy:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn inline_policy_lands_in_the_configmap_verbatim() {
    let file = values_file("inline-policy-values.yaml");
    let Some(objects) = template(&[&file], &[]) else {
        return;
    };
    check_common(&objects, "inline policy");
    let values =
        pull_secret_injector::core::yaml::to_json(&std::fs::read_to_string(&file).unwrap())
            .unwrap();
    let inline = values["policy"]["inline"].as_str().unwrap();
    let cm = find(&objects, "ConfigMap", POLICY_CONFIGMAP);
    assert_eq!(cm["data"]["policy.yaml"], inline, "comments and all");
    check_policy(inline);

    // A map is written as YAML.
    let objects = template(
        &[],
        &[
            "policy.inline.rules[0].name=hub",
            "policy.inline.rules[0].registries[0]=docker.io",
            "policy.inline.rules[0].secrets[0]=hub-pull",
        ],
    )
    .unwrap();
    let text = find(&objects, "ConfigMap", POLICY_CONFIGMAP)["data"]["policy.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    check_policy(&text);
    assert!(text.contains("hub-pull"));

    // The default is the repository's example, byte for byte.
    let objects = template(&[], &[]).unwrap();
    assert_eq!(
        find(&objects, "ConfigMap", POLICY_CONFIGMAP)["data"]["policy.yaml"],
        std::fs::read_to_string(tools::repo().join("manifests/base/policy.yaml")).unwrap()
    );
}

#[test]
fn report_only_adds_the_flag_to_serve() {
    let Some(objects) = template(&[&values_file("report-only-values.yaml")], &[]) else {
        return;
    };
    check_common(&objects, "report-only");
    let serve = args(&objects, APP);
    assert_eq!(serve.iter().filter(|a| *a == "--report-only").count(), 1);
    assert!(!args(&objects, SYNC).iter().any(|a| a == "--report-only"));
    let defaults = template(&[], &[]).unwrap();
    assert!(!args(&defaults, APP).iter().any(|a| a == "--report-only"));
}

#[test]
fn sync_disabled_leaves_no_secret_access_at_all() {
    let Some(objects) = template(
        &[&values_file("no-sync-values.yaml")],
        &["prometheusRule.enabled=true"],
    ) else {
        return;
    };
    check_common(&objects, "no sync");
    assert!(
        !objects.iter().any(|o| name_of(o) == SYNC),
        "no sync object"
    );
    let text = serde_json::to_string(&objects).unwrap();
    assert!(!text.contains("\"secrets\""), "nothing may touch Secrets");
    assert!(
        !text.contains("pull_secret_injector_sync_"),
        "no sync alerts"
    );
    // With sync on, its Deployment, identity and rules are there.
    let objects = template(&[], &[]).unwrap();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    ] {
        assert!(has(&objects, kind, SYNC), "sync {kind}");
    }
    let env = container(&objects, SYNC)["env"].as_array().unwrap();
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert!(
            env.iter()
                .any(|e| e["name"] == name && e["valueFrom"]["fieldRef"]["fieldPath"] == path)
        );
    }
}

#[test]
fn monitoring_objects_and_dashboard() {
    let Some(objects) = template(&[&values_file("monitoring-values.yaml")], &[]) else {
        return;
    };
    check_common(&objects, "monitoring");
    let sm = find(&objects, "ServiceMonitor", APP);
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
    // It selects both Services, on their metrics port.
    for service in [APP, SYNC] {
        let svc = find(&objects, "Service", service);
        for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(
                &svc["metadata"]["labels"][k], v,
                "ServiceMonitor → Service {service}"
            );
        }
        assert!(
            svc["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "metrics")
        );
    }
    let rules: Vec<&Value> = objects
        .iter()
        .filter(|o| kind_of(o) == "PrometheusRule")
        .collect();
    assert_eq!(rules.len(), 2, "webhook and sync rules");
    let alerts: BTreeSet<&str> = rules
        .iter()
        .flat_map(|r| r["spec"]["groups"].as_array().unwrap())
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    for alert in [
        "PullSecretInjectorReviewErrors",
        "PullSecretInjectorSlowReviews",
        "PullSecretInjectorCertificateExpiresSoon",
        "PullSecretInjectorPolicyRejected",
        "PullSecretInjectorNoReadyReplica",
        "PullSecretInjectorDown",
        "PullSecretInjectorSyncConflicts",
        "PullSecretInjectorSyncSourceInvalid",
        "PullSecretInjectorSyncWriteErrors",
        "PullSecretInjectorSyncNoLeader",
    ] {
        assert!(alerts.contains(alert), "alert {alert}");
    }
    let cm = find(&objects, "ConfigMap", "pull-secret-injector-dashboard");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["pull-secret-injector.json"].as_str().unwrap()).unwrap();
    check_dashboard(&dashboard);

    // The dashboard may go to Grafana's namespace.
    let objects = template(
        &[&values_file("monitoring-values.yaml")],
        &["dashboard.namespace=grafana"],
    )
    .unwrap();
    assert_eq!(
        namespace_of(find(
            &objects,
            "ConfigMap",
            "pull-secret-injector-dashboard"
        )),
        Some("grafana")
    );
}

/// The panels issue 12 asks for, each with Prometheus queries.
fn check_dashboard(dashboard: &Value) {
    assert_eq!(dashboard["uid"], APP);
    let panels = dashboard["panels"].as_array().unwrap();
    let titles: BTreeSet<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for title in [
        "Reviews by outcome",
        "Review latency",
        "Secrets injected by rule",
        "Images no rule matched",
        "Policy generation",
        "Policy reloads",
        "Certificate days left",
        "Managed copies by state",
        "Secret writes",
        "Leader",
    ] {
        assert!(titles.contains(title), "dashboard panel {title:?}");
    }
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "unique panel ids"
        );
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}: queries", panel["title"]);
        for t in targets {
            assert!(
                t["expr"]
                    .as_str()
                    .unwrap()
                    .contains("pull_secret_injector_")
            );
        }
    }
}

#[test]
fn tuned_values_reach_both_deployments() {
    let Some(objects) = template(
        &[&values_file("tuned-values.yaml")],
        &["priorityClassName=psi-critical"],
    ) else {
        return;
    };
    check_common(&objects, "tuned");
    let image = "registry.example/platform/pull-secret-injector@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for (deployment, replicas) in [(APP, 3), (SYNC, 3)] {
        let d = find(&objects, "Deployment", deployment);
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(d["spec"]["replicas"], replicas, "{deployment}");
        assert_eq!(c["image"], image);
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(
            pod["imagePullSecrets"],
            serde_json::json!([{"name": "platform-pull"}])
        );
        assert_eq!(
            pod["nodeSelector"],
            serde_json::json!({"kubernetes.io/os": "linux"})
        );
        assert_eq!(
            pod["tolerations"][0]["key"],
            "node-role.kubernetes.io/control-plane"
        );
        assert_eq!(pod["priorityClassName"], "psi-critical");
        let a: Vec<String> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(flag(&a, "--log-format").as_deref(), Some("text"));
        let listen = flag(&a, "--metrics-listen").expect("--metrics-listen");
        assert_eq!(listen.parse::<SocketAddr>().unwrap().port(), 9100);
        let port = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "metrics")
            .unwrap();
        assert_eq!(port["containerPort"], 9100);
        assert_eq!(
            d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
            "9100"
        );
    }
    let webhook_pod = &find(&objects, "Deployment", APP)["spec"]["template"]["spec"];
    assert!(webhook_pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"].is_array());
    assert!(
        webhook_pod.get("topologySpreadConstraints").is_none(),
        "[] removes them"
    );
    let sync_pod = &find(&objects, "Deployment", SYNC)["spec"]["template"]["spec"];
    assert_eq!(
        sync_pod["topologySpreadConstraints"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        sync_pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "sync"
    );
    for service in [APP, SYNC] {
        let ports = find(&objects, "Service", service)["spec"]["ports"]
            .as_array()
            .unwrap()
            .clone();
        let metrics = ports.iter().find(|p| p["name"] == "metrics").unwrap();
        assert_eq!(metrics["port"], 9100, "{service}");
    }
    let webhook = &find(&objects, "MutatingWebhookConfiguration", APP)["webhooks"][0];
    assert_eq!(webhook["failurePolicy"], "Fail");
    assert_eq!(webhook["timeoutSeconds"], 10);
    assert_eq!(
        webhook["namespaceSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["kube-system", "kube-public", "monitoring", NS])
    );
    // The latency alert follows timeoutSeconds (80 %), up to
    // kube-apiserver's largest, which the histogram's buckets cover.
    for (timeout, threshold) in [("1", "0.8"), ("2", "1.6"), ("10", "8"), ("30", "24")] {
        let objects = template(
            &[],
            &[
                "prometheusRule.enabled=true",
                &format!("timeoutSeconds={timeout}"),
            ],
        )
        .unwrap();
        let expr = find(&objects, "PrometheusRule", APP)["spec"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alert"] == "PullSecretInjectorSlowReviews")
            .unwrap()["expr"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            expr.ends_with(&format!("> {threshold}")),
            "timeout {timeout}: {expr}"
        );
    }
}

#[test]
fn every_values_file_renders_valid_objects() {
    for file in values_files() {
        let Some(objects) = template(&[&file], &[]) else {
            return;
        };
        check_common(&objects, &file.display().to_string());
    }
}

// ---------------------------------------------------------------------------
// The real binary with the chart's certificate, and the metric names.

/// The server's stderr, one JSON log line at a time.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(cmd: &mut Command) -> Server {
        let mut child = cmd
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, lines }
    }

    fn find(&self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line {message:?} within 20 s"));
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && value["message"] == message
            {
                return value;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over `stream`; the status and body.
fn http<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: psi\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    let mut response = Vec::new();
    // A TLS peer may close without close_notify once the answer is sent.
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// An HTTPS request to `addr` as kube-apiserver makes it: trusting only
/// `ca_pem`, for the name `host`, offering only http/1.1.
fn https(
    addr: SocketAddr,
    ca_pem: &[u8],
    host: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connection = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from(host.to_owned()).unwrap(),
    )
    .unwrap();
    let mut stream = rustls::StreamOwned::new(connection, TcpStream::connect(addr).unwrap());
    http(&mut stream, method, path, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(&mut TcpStream::connect(addr).unwrap(), "GET", path, b"")
}

/// The series names a Prometheus text exposition offers: every sample's
/// name, and for each `# TYPE` the names its type implies.
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (name, kind) = (words.next().unwrap(), words.next().unwrap_or(""));
            names.extend(names_of(name, kind));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

fn names_of(name: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!("{name}_total")],
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{name}{s}"))
            .collect(),
        _ => vec![name.to_owned()],
    }
}

/// Every `pull_secret_injector_*` name in a PromQL text.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"pull_secret_injector_[a-z0-9_]+").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_owned()).collect()
}

/// The metric names the rendered alerts and dashboard use.
fn used_metric_names() -> Option<BTreeMap<String, String>> {
    let objects = template(&[&values_file("monitoring-values.yaml")], &[])?;
    let mut used = BTreeMap::new();
    for rule in objects.iter().filter(|o| kind_of(o) == "PrometheusRule") {
        for group in rule["spec"]["groups"].as_array().unwrap() {
            for r in group["rules"].as_array().unwrap() {
                for name in metric_names(r["expr"].as_str().unwrap()) {
                    used.insert(name, format!("alert {}", r["alert"]));
                }
            }
        }
    }
    let cm = find(&objects, "ConfigMap", "pull-secret-injector-dashboard");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["pull-secret-injector.json"].as_str().unwrap()).unwrap();
    let mut exprs: Vec<(String, String)> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push((
                format!("panel {}", panel["title"]),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["definition"].as_str() {
            exprs.push((format!("variable {}", var["name"]), q.to_owned()));
        }
    }
    for (origin, expr) in exprs {
        for name in metric_names(&expr) {
            used.entry(name).or_insert(origin.clone());
        }
    }
    Some(used)
}

fn binary_has_sync() -> bool {
    Command::new(BIN)
        .args(["sync", "--help"])
        .output()
        .unwrap()
        .status
        .success()
}

/// `/metrics` of the real `sync` command, which needs no cluster to serve it.
fn sync_metrics(policy: &Path) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _server = Server::start(
        Command::new(BIN)
            .args([
                "sync",
                "--log-format",
                "json",
                "--namespace",
                NS,
                "--pod-name",
                "psi-test-0",
            ])
            .args(["--metrics-listen", &addr.to_string()])
            .arg("--policy-file")
            .arg(policy),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let (status, body) = http(&mut stream, "GET", "/metrics", b"");
            if status == 200 {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "sync serves no /metrics on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_binary_serves_the_chart_certificate_and_every_metric_the_alerts_use() {
    let Some(objects) = template(&[], &[]) else {
        return;
    };
    let Some(used) = used_metric_names() else {
        return;
    };

    // The chart-generated certificate, as the Deployment mounts it.
    let tmp = tempfile::tempdir().unwrap();
    let secret = find(&objects, "Secret", TLS_SECRET);
    for key in ["tls.crt", "tls.key"] {
        std::fs::write(tmp.path().join(key), pem_of(secret, key)).unwrap();
    }
    let ca = base64::engine::general_purpose::STANDARD
        .decode(
            str_at(
                find(&objects, "MutatingWebhookConfiguration", APP),
                "/webhooks/0/clientConfig/caBundle",
            )
            .unwrap(),
        )
        .unwrap();
    let policy = tools::repo().join("manifests/policy.yaml");
    let server = Server::start(
        Command::new(BIN)
            .args([
                "serve",
                "--log-format",
                "json",
                "--shutdown-grace",
                "0s",
                "--reload-interval",
                "200ms",
            ])
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--policy-file")
            .arg(&policy)
            .arg("--tls-cert")
            .arg(tmp.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(tmp.path().join("tls.key")),
    );
    let serving = server.find("serving");
    let listen: SocketAddr = serving["listen"].as_str().unwrap().parse().unwrap();
    let metrics: SocketAddr = serving["metrics"].as_str().unwrap().parse().unwrap();

    // kube-apiserver's view: every Service name verifies against caBundle.
    for host in service_hosts(NS) {
        let (status, _) = https(listen, &ca, &host, "GET", "/readyz", b"");
        assert_eq!(status, 200, "GET /readyz as {host}");
    }
    // A review, so the per-outcome and per-rule series exist.
    let review =
        std::fs::read(tools::repo().join("tests/fixtures/create-generate-name.json")).unwrap();
    let (status, answer) = https(
        listen,
        &ca,
        &format!("{APP}.{NS}.svc"),
        "POST",
        "/mutate?timeout=10s",
        &review,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"patch\""), "{answer}");
    // A certificate rotation (new files, same chart CA), so the reload series exists.
    let rotated = template(&[], &[]).unwrap();
    let rotated = find(&rotated, "Secret", TLS_SECRET);
    for key in ["tls.key", "tls.crt"] {
        std::fs::write(tmp.path().join(key), pem_of(rotated, key)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (status, text) = get(metrics, "/metrics");
        assert_eq!(status, 200);
        if text.contains("pull_secret_injector_certificate_reloads_total") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate reload counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let exposed = exposed_names(&text);
    let expiry = text
        .lines()
        .find_map(|l| l.strip_prefix("pull_secret_injector_certificate_expiry_timestamp_seconds "))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .expect("certificate expiry");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now + 3000.0 * 86_400.0,
        "the chart's certificate lasts validityDays (3650)"
    );

    let sync_names: BTreeSet<String> = SYNC_METRICS
        .iter()
        .flat_map(|(n, k)| names_of(n, k))
        .collect();
    let mut missing = Vec::new();
    let mut sync_used = BTreeSet::new();
    for (name, origin) in &used {
        if name.starts_with("pull_secret_injector_sync_") {
            assert!(
                sync_names.contains(name),
                "{origin} uses {name}, which is not a sync metric of the contract: {sync_names:?}"
            );
            sync_used.insert(name.clone());
        } else if !exposed.contains(name) {
            missing.push(format!("{name} ({origin})"));
        }
    }
    assert!(
        missing.is_empty(),
        "metrics used by alerts or the dashboard that the binary does not export:\n  {}\nexported: {exposed:?}",
        missing.join("\n  ")
    );
    assert!(!sync_used.is_empty(), "the alerts and dashboard cover sync");
    if binary_has_sync() {
        let exposed = exposed_names(&sync_metrics(&policy));
        let missing: Vec<&String> = sync_names
            .iter()
            .filter(|n| !exposed.contains(*n))
            .collect();
        assert!(
            missing.is_empty(),
            "`sync` does not export {missing:?}; it exports {exposed:?}"
        );
    } else {
        eprintln!(
            "\n*** NOTE: the binary has no `sync` command yet: the sync metrics the alerts and the \
             dashboard use ({sync_used:?}) are checked against the contract list only, not against \
             /metrics. ***\n"
        );
    }
}
