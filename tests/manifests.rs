#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The Kubernetes manifests in `manifests/`, checked three ways:
//!
//! - every YAML document parses into the k8s-openapi type its `kind` claims,
//!   and serializes back to the same document (so a misspelled field, which
//!   the types would silently ignore, fails the test);
//! - the objects agree with the code: the Deployment's args parse with the
//!   real command line, ports, probe paths, the webhook path, ConfigMap name
//!   and key, TLS paths, RBAC and the webhook's selectors line up;
//! - the real `kubectl kustomize` (v1.34, from `.ci/install-tools`; see
//!   tests/tools/mod.rs) builds the base and both overlays into exactly the
//!   expected objects, and every check runs on what it built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use clap::Parser as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt as _};
use pull_secret_injector::cmd::Cli;
use pull_secret_injector::cmd::serve::ServeArgs;
use pull_secret_injector::core::policy::CompiledPolicy;
use pull_secret_injector::k8s::configmap::POLICY_KEY;
use pull_secret_injector::runtime::telemetry::LogFormat;
use pull_secret_injector::webhook::certs;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod tools;

use tools::kinds::{check_document, describe, kind_of, name_of, namespace_of, str_at, typed};

// ---------------------------------------------------------------------------
// What the manifests are expected to contain.

/// The namespace everything lives in.
const NS: &str = "pull-secret-injector";
/// The name of most objects.
const APP: &str = "pull-secret-injector";
/// The policy ConfigMap (watched by name, so never hash-suffixed).
const POLICY_CONFIGMAP: &str = "pull-secret-injector-policy";
/// The Secret holding the serving certificate.
const TLS_SECRET: &str = "pull-secret-injector-tls";
/// The label that opts a namespace or a pod out.
const OPT_OUT: &str = "pull-secret-injector.io/inject";
/// The label every namespace carries with its own name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The image, without the tag (the tag is the crate version).
const IMAGE: &str = "ghcr.io/example/pull-secret-injector";
/// The user the image runs as (distroless `nonroot`).
const NONROOT: i64 = 65532;
/// Defaults of `serve` (DESIGN.md §5–6): HTTPS and metrics listeners.
const DEFAULT_HTTPS_PORT: u16 = 8443;
const DEFAULT_METRICS_PORT: u16 = 9090;
/// The JSON pointer the manual-certs overlay patches.
const CA_BUNDLE_PATH: &str = "/webhooks/0/clientConfig/caBundle";

/// Every object the base builds into: (kind, name, namespace).
const BASE_OBJECTS: [(&str, &str, Option<&str>); 11] = [
    ("Namespace", NS, None),
    ("ServiceAccount", APP, Some(NS)),
    ("ClusterRole", APP, None),
    ("ClusterRoleBinding", APP, None),
    ("Role", APP, Some(NS)),
    ("RoleBinding", APP, Some(NS)),
    ("ConfigMap", POLICY_CONFIGMAP, Some(NS)),
    ("Service", APP, Some(NS)),
    ("Deployment", APP, Some(NS)),
    ("PodDisruptionBudget", APP, Some(NS)),
    ("MutatingWebhookConfiguration", APP, None),
];

/// The sync controller (components/sync, in every shipped build).
const SYNC: &str = "pull-secret-injector-sync";
const SYNC_OBJECTS: [(&str, &str, Option<&str>); 8] = [
    ("ServiceAccount", SYNC, Some(NS)),
    ("ClusterRole", SYNC, None),
    ("ClusterRoleBinding", SYNC, None),
    ("Role", SYNC, Some(NS)),
    ("RoleBinding", SYNC, Some(NS)),
    ("Service", SYNC, Some(NS)),
    ("Deployment", SYNC, Some(NS)),
    ("PodDisruptionBudget", SYNC, Some(NS)),
];

/// What the cert-manager overlay adds.
const CERT_MANAGER_OBJECTS: [(&str, &str, Option<&str>); 4] = [
    ("Issuer", "pull-secret-injector-selfsigned", Some(NS)),
    ("Certificate", "pull-secret-injector-ca", Some(NS)),
    ("Issuer", "pull-secret-injector-ca", Some(NS)),
    ("Certificate", "pull-secret-injector-serving", Some(NS)),
];

// ---------------------------------------------------------------------------
// Files and documents.

fn repo() -> PathBuf {
    tools::repo()
}

fn manifests() -> PathBuf {
    repo().join("manifests")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `*.yaml` / `*.yml` file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path == manifests().join("helm") {
                // The Helm chart: templates, not YAML (tests/helm.rs).
                continue;
            } else if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn file_documents(path: &Path) -> Vec<Value> {
    tools::objects(&read(path), &path.display().to_string())
}

#[test]
fn every_document_parses_as_the_kind_it_claims() {
    let mut seen = BTreeSet::new();
    for path in yaml_files(&manifests()) {
        let origin = path.strip_prefix(repo()).unwrap().display().to_string();
        if path.file_name().is_some_and(|n| n == "policy.yaml") {
            let policy = CompiledPolicy::from_text(&read(&path))
                .unwrap_or_else(|e| panic!("{origin}: invalid policy:\n{e}"));
            assert!(!policy.rules().is_empty(), "{origin}: no rules");
            continue;
        }
        let docs = file_documents(&path);
        assert!(!docs.is_empty(), "{origin}: no document");
        for (i, doc) in docs.iter().enumerate() {
            check_document(doc, &format!("{origin}, document {i}"));
            seen.insert(kind_of(doc).to_owned());
        }
    }
    for kind in BASE_OBJECTS
        .iter()
        .map(|o| o.0)
        .filter(|k| *k != "ConfigMap")
    {
        assert!(seen.contains(kind), "no {kind} under manifests/");
    }
}

#[test]
fn the_packed_policy_is_the_shipped_example() {
    // kustomize only reads files inside a kustomization's directory, and
    // manifests/policy.yaml stays where `serve --dev` and the docs find it:
    // it is a symlink to the ConfigMap's source, so there is one file.
    let shipped = manifests().join("policy.yaml");
    assert!(
        std::fs::symlink_metadata(&shipped)
            .unwrap()
            .file_type()
            .is_symlink(),
        "manifests/policy.yaml must be a symlink to base/policy.yaml"
    );
    assert_eq!(
        shipped.canonicalize().unwrap(),
        manifests().join("base/policy.yaml").canonicalize().unwrap()
    );
}

#[test]
fn every_file_is_used_by_a_kustomization() {
    let mut used = BTreeSet::from([manifests().join("policy.yaml")]);
    for path in yaml_files(&manifests()) {
        if path.file_name().is_none_or(|n| n != "kustomization.yaml") {
            continue;
        }
        used.insert(path.clone());
        let dir = path.parent().unwrap();
        let k = &file_documents(&path)[0];
        let mut refs: Vec<&str> = Vec::new();
        for item in k["resources"].as_array().into_iter().flatten() {
            refs.push(item.as_str().unwrap());
        }
        for item in k["components"].as_array().into_iter().flatten() {
            refs.push(item.as_str().unwrap());
        }
        for item in k["patches"].as_array().into_iter().flatten() {
            refs.push(str_at(item, "/path").expect("patch path"));
        }
        for generator in k["configMapGenerator"].as_array().into_iter().flatten() {
            for file in generator["files"].as_array().into_iter().flatten() {
                let file = file.as_str().unwrap();
                refs.push(file.split_once('=').map_or(file, |(_, f)| f));
            }
        }
        for r in refs {
            let target = dir.join(r);
            assert!(target.exists(), "{}: {r} does not exist", path.display());
            used.insert(target.canonicalize().unwrap());
        }
    }
    let used: BTreeSet<PathBuf> = used.iter().map(|p| p.canonicalize().unwrap()).collect();
    for path in yaml_files(&manifests()) {
        assert!(
            used.contains(&path.canonicalize().unwrap()),
            "{} is not referenced by any kustomization.yaml",
            path.display()
        );
    }
}

#[test]
fn failure_policy_is_one_commented_line() {
    let path = manifests().join("base/mutatingwebhookconfiguration.yaml");
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    let at: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("failurePolicy:"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "one failurePolicy line");
    let comment: String = lines[..at[0]]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with('#'))
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    for word in ["Ignore", "Fail", "ImagePullBackOff"] {
        assert!(
            comment.contains(word),
            "the comment above failurePolicy should explain {word}:\n{comment}"
        );
    }
}

// ---------------------------------------------------------------------------
// kubectl, when there is one.

fn object_keys(objects: &[Value]) -> Vec<(String, String, Option<String>)> {
    let mut keys: Vec<_> = objects
        .iter()
        .map(|o| {
            (
                kind_of(o).to_owned(),
                name_of(o).to_owned(),
                namespace_of(o).map(str::to_owned),
            )
        })
        .collect();
    keys.sort();
    keys
}

fn expected_keys(lists: &[&[(&str, &str, Option<&str>)]]) -> Vec<(String, String, Option<String>)> {
    let mut keys: Vec<_> = lists
        .iter()
        .flat_map(|l| l.iter())
        .map(|(k, n, ns)| (k.to_string(), n.to_string(), ns.map(str::to_owned)))
        .collect();
    keys.sort();
    keys
}

/// Sorted by kind, namespace and name, for comparing builds.
fn sorted(mut objects: Vec<Value>) -> Vec<Value> {
    objects.sort_by_key(|o| {
        (
            kind_of(o).to_owned(),
            namespace_of(o).map(str::to_owned),
            name_of(o).to_owned(),
        )
    });
    objects
}

/// `kubectl kustomize dir`, sorted, or `None` (with a note) without kubectl
/// outside CI.
fn build(dir: &Path) -> Option<Vec<Value>> {
    tools::kustomize(dir).map(sorted)
}

// ---------------------------------------------------------------------------
// Cross-checks on a built set of objects.

struct Bundle {
    objects: Vec<Value>,
    origin: String,
}

impl Bundle {
    fn new(objects: Vec<Value>, origin: &str) -> Self {
        Bundle {
            objects,
            origin: origin.to_owned(),
        }
    }

    fn all<T: k8s_openapi::Resource + DeserializeOwned + Serialize>(&self) -> Vec<T> {
        self.objects
            .iter()
            .filter(|o| str_at(o, "/apiVersion") == Some(T::API_VERSION) && kind_of(o) == T::KIND)
            .map(|o| typed(o, &format!("{}: {}", self.origin, describe(o))))
            .collect()
    }

    fn one<T: k8s_openapi::Resource + DeserializeOwned + Serialize>(&self) -> T {
        let mut all = self.all::<T>();
        assert_eq!(all.len(), 1, "{}: one {}", self.origin, T::KIND);
        all.remove(0)
    }

    fn named<T: k8s_openapi::Resource + DeserializeOwned + Serialize>(&self, name: &str) -> T {
        let mut all: Vec<T> = self
            .objects
            .iter()
            .filter(|o| {
                str_at(o, "/apiVersion") == Some(T::API_VERSION)
                    && kind_of(o) == T::KIND
                    && name_of(o) == name
            })
            .map(|o| typed(o, &format!("{}: {}", self.origin, describe(o))))
            .collect();
        assert_eq!(all.len(), 1, "{}: one {} {name}", self.origin, T::KIND);
        all.remove(0)
    }

    fn raw(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| kind_of(o) == kind && name_of(o) == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.origin))
    }
}

/// Whether `selector` selects an object with `labels`, evaluated by kube's
/// `Selector` (the label-selector semantics of the Kubernetes API).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::try_from(selector.clone())
        .unwrap_or_else(|e| panic!("invalid label selector {selector:?}: {e}"))
        .matches(labels)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A namespace's labels as the webhook's namespaceSelector sees them.
fn namespace_labels(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = labels(extra);
    l.insert(NAME_LABEL.to_owned(), name.to_owned());
    l
}

/// `serve`'s flags, parsed by the real definition.
#[derive(clap::Parser, Debug)]
#[command(name = "serve")]
struct Serve {
    #[command(flatten)]
    args: ServeArgs,
}

fn container_port(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
    }
}

fn rule_is(rule: &PolicyRule, group: &str, resource: &str) -> bool {
    rule.api_groups.as_deref() == Some(&[group.to_owned()][..])
        && rule.resources.as_deref() == Some(&[resource.to_owned()][..])
}

fn verbs(rule: &PolicyRule) -> BTreeSet<&str> {
    rule.verbs.iter().map(String::as_str).collect()
}

/// The restricted Pod Security Standard and the image's user (container
/// settings override the pod's).
fn check_restricted(origin: &str, pod: &PodSpec, container: &Container) {
    let psc = pod.security_context.clone().unwrap_or_default();
    let csc = container.security_context.clone().unwrap_or_default();
    assert_eq!(csc.run_as_non_root.or(psc.run_as_non_root), Some(true));
    assert_eq!(csc.run_as_user.or(psc.run_as_user), Some(NONROOT));
    assert_eq!(csc.run_as_group.or(psc.run_as_group), Some(NONROOT));
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    assert_ne!(csc.privileged, Some(true));
    let caps = csc.capabilities.clone().unwrap_or_default();
    assert_eq!(
        caps.drop.as_deref(),
        Some(&["ALL".to_owned()][..]),
        "{origin}: drop ALL"
    );
    assert!(
        caps.add.unwrap_or_default().is_empty(),
        "{origin}: no capabilities added"
    );
    let seccomp = csc
        .seccomp_profile
        .or(psc.seccomp_profile)
        .expect("seccompProfile");
    assert_eq!(seccomp.type_, "RuntimeDefault");
    assert_ne!(pod.host_network, Some(true));
    assert_ne!(pod.host_pid, Some(true));
    assert_ne!(pod.host_ipc, Some(true));
}

/// Everything the base promises, on a build of the base or of an overlay.
fn check_base(bundle: &Bundle) {
    let origin = &bundle.origin;

    // Namespace.
    let namespace = bundle.one::<Namespace>();
    let ns = namespace.metadata.name.clone().unwrap();
    assert_eq!(ns, NS, "{origin}: namespace");
    let ns_labels = namespace.metadata.labels.clone().unwrap_or_default();

    // Deployment and its one container.
    let deployment = bundle.named::<Deployment>(APP);
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(NS));
    let spec = deployment.spec.as_ref().unwrap();
    assert!(
        spec.replicas.unwrap_or(1) >= 2,
        "{origin}: at least 2 replicas"
    );
    let template = &spec.template;
    let pod_labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(
        selects(&spec.selector, &pod_labels),
        "{origin}: the Deployment's selector must select its pods"
    );
    let pod: &PodSpec = template.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1, "{origin}: one container");
    let container = &pod.containers[0];

    // Image: the placeholder registry, tagged with the crate version.
    assert_eq!(
        container.image.as_deref(),
        Some(format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION")).as_str()),
        "{origin}: image tag = crate version (kustomization images: newTag)"
    );
    assert!(
        container.command.is_none(),
        "{origin}: the image's entrypoint runs"
    );

    // Args: the real command line accepts them.
    let args = container.args.clone().unwrap_or_default();
    let argv = std::iter::once("pull-secret-injector".to_owned()).chain(args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!("{origin}: the container args do not parse: {e}\nargs: {args:?}");
    }
    assert_eq!(args.first().map(String::as_str), Some("serve"));
    let serve = Serve::try_parse_from(args.iter())
        .unwrap_or_else(|e| panic!("{origin}: serve args: {e}"))
        .args;
    assert!(!serve.dev, "{origin}: no --dev in a cluster");
    assert!(
        serve.policy.policy_file.is_none(),
        "{origin}: the policy comes from the ConfigMap"
    );
    assert_eq!(serve.log_format, LogFormat::Json, "{origin}: JSON logs");
    let https_port = serve.listen.map_or(DEFAULT_HTTPS_PORT, |a| a.port());
    let metrics_port = serve
        .metrics_listen
        .map_or(DEFAULT_METRICS_PORT, |a| a.port());
    if let Some(listen) = serve.listen {
        assert!(
            listen.ip().is_unspecified(),
            "{origin}: listen on all addresses"
        );
    }

    // The policy ConfigMap: named in the args, generated, readable.
    let spec_cm = serve
        .policy
        .policy_configmap
        .clone()
        .unwrap_or_else(|| panic!("{origin}: --policy-configmap"));
    let (cm_ns, cm_name) = spec_cm.split_once('/').unwrap();
    assert_eq!(
        (cm_ns, cm_name),
        (NS, POLICY_CONFIGMAP),
        "{origin}: --policy-configmap"
    );
    let configmaps = bundle.all::<ConfigMap>();
    let cm = configmaps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(cm_name))
        .unwrap_or_else(|| panic!("{origin}: no ConfigMap {cm_name}"));
    assert_eq!(cm.metadata.namespace.as_deref(), Some(cm_ns));
    let data = cm.data.clone().unwrap_or_default();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        [POLICY_KEY],
        "{origin}: the ConfigMap holds exactly the key {POLICY_KEY}"
    );
    assert_eq!(
        data[POLICY_KEY],
        read(&manifests().join("policy.yaml")),
        "{origin}: the ConfigMap holds manifests/policy.yaml"
    );
    CompiledPolicy::from_text(&data[POLICY_KEY]).unwrap();

    // POD_NAME for the Events' reporter instance.
    let env = container.env.clone().unwrap_or_default();
    let pod_name = env
        .iter()
        .find(|e| e.name == "POD_NAME")
        .unwrap_or_else(|| panic!("{origin}: env POD_NAME"));
    assert_eq!(
        pod_name
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str()),
        Some("metadata.name")
    );

    // TLS files: inside a read-only mount of the TLS Secret, under the keys a
    // kubernetes.io/tls Secret (and cert-manager) uses.
    let mounts = container.volume_mounts.clone().unwrap_or_default();
    let mount = mounts
        .iter()
        .find(|m| serve.tls_cert.starts_with(&m.mount_path))
        .unwrap_or_else(|| {
            panic!(
                "{origin}: {} is in no volume mount",
                serve.tls_cert.display()
            )
        });
    assert_eq!(mount.read_only, Some(true), "{origin}: TLS mount read-only");
    assert_eq!(
        serve.tls_cert.strip_prefix(&mount.mount_path).unwrap(),
        Path::new("tls.crt")
    );
    assert_eq!(
        serve.tls_key.strip_prefix(&mount.mount_path).unwrap(),
        Path::new("tls.key")
    );
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap_or_else(|| panic!("{origin}: no volume {}", mount.name));
    let secret = volume.secret.as_ref().expect("the TLS volume is a Secret");
    assert_eq!(secret.secret_name.as_deref(), Some(TLS_SECRET));
    assert!(
        secret.items.is_none(),
        "{origin}: the Secret's keys are not remapped"
    );
    if let Some(mode) = secret.default_mode {
        assert!(
            mode & 0o440 == 0o440 || mode & 0o404 == 0o404,
            "{origin}: the key must be readable"
        );
        assert!(
            mode & 0o004 != 0
                || pod.security_context.as_ref().and_then(|s| s.fs_group) == Some(NONROOT),
            "{origin}: a mode without world read needs fsGroup {NONROOT}"
        );
    }

    // Ports and probes.
    let https = container_port(container, &IntOrString::String("https".into()));
    let metrics = container_port(container, &IntOrString::String("metrics".into()));
    assert_eq!(
        https,
        i32::from(https_port),
        "{origin}: container port https = --listen"
    );
    assert_eq!(
        metrics,
        i32::from(metrics_port),
        "{origin}: container port metrics = --metrics-listen"
    );
    for (probe, path) in [
        (container.readiness_probe.as_ref(), "/readyz"),
        (container.liveness_probe.as_ref(), "/healthz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{origin}: an httpGet probe on {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(
            get.scheme.as_deref(),
            Some("HTTPS"),
            "{origin}: {path} over HTTPS"
        );
        assert_eq!(
            container_port(container, &get.port),
            https,
            "{origin}: {path} port"
        );
    }
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        annotations.get("prometheus.io/port"),
        Some(&metrics.to_string()),
        "{origin}: scrape port"
    );

    // Resources: requests, a memory limit, no CPU limit (throttling a
    // webhook on the request path is worse than sharing a core).
    let resources = container.resources.as_ref().expect("resources");
    let requests = resources.requests.clone().unwrap_or_default();
    let limits = resources.limits.clone().unwrap_or_default();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    assert!(limits.contains_key("memory"), "{origin}: memory limit");
    assert!(!limits.contains_key("cpu"), "{origin}: no CPU limit");

    // Shutdown: terminationGracePeriodSeconds covers grace + drain.
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    let needed = serve.shutdown_grace + serve.drain_timeout + Duration::from_secs(5);
    assert!(
        Duration::from_secs(u64::try_from(grace).unwrap()) >= needed,
        "{origin}: terminationGracePeriodSeconds {grace} < shutdown grace + drain + 5s ({needed:?})"
    );

    check_restricted(origin, pod, container);
    assert_eq!(
        ns_labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted"),
        "{origin}: the namespace enforces the restricted Pod Security Standard"
    );

    // Spread over nodes.
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("preferred pod anti-affinity");
    assert!(anti.iter().any(|t| {
        t.pod_affinity_term.topology_key == "kubernetes.io/hostname"
            && t.pod_affinity_term
                .label_selector
                .as_ref()
                .is_some_and(|s| selects(s, &pod_labels))
    }));
    let spread = pod.topology_spread_constraints.clone().unwrap_or_default();
    assert!(!spread.is_empty(), "{origin}: topologySpreadConstraints");
    for c in &spread {
        assert!(
            c.label_selector
                .as_ref()
                .is_some_and(|s| selects(s, &pod_labels)),
            "{origin}: spread constraint on {} selects the pods",
            c.topology_key
        );
    }

    // PodDisruptionBudget.
    let pdb = bundle.named::<PodDisruptionBudget>(APP);
    let pdb_spec = pdb.spec.as_ref().unwrap();
    assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));
    let pdb_selector = pdb_spec.selector.clone().expect("PDB selector");
    assert_eq!(
        pdb_selector, spec.selector,
        "{origin}: PDB selects like the Deployment"
    );
    assert!(selects(&pdb_selector, &pod_labels));

    // Service → container ports.
    let service = bundle.named::<Service>(APP);
    assert_eq!(service.metadata.namespace.as_deref(), Some(NS));
    let service_spec = service.spec.as_ref().unwrap();
    let service_selector = service_spec.selector.clone().unwrap_or_default();
    assert!(!service_selector.is_empty());
    assert!(
        service_selector
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{origin}: the Service selects the pods"
    );
    let service_ports = service_spec.ports.clone().unwrap_or_default();
    let port_named = |name: &str| {
        service_ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{origin}: Service port {name}"))
            .clone()
    };
    let service_https = port_named("https");
    assert_eq!(
        container_port(container, service_https.target_port.as_ref().unwrap()),
        https,
        "{origin}: Service https → the HTTPS listener"
    );
    let service_metrics = port_named("metrics");
    assert_eq!(service_metrics.port, metrics);
    assert_eq!(
        container_port(container, service_metrics.target_port.as_ref().unwrap()),
        metrics
    );

    // ServiceAccount and RBAC.
    let sa = bundle.named::<ServiceAccount>(APP);
    let sa_name = sa.metadata.name.clone().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(sa_name.as_str()));
    assert_eq!(
        pod.automount_service_account_token,
        Some(true),
        "{origin}: needs the API"
    );
    assert_ne!(sa.automount_service_account_token, Some(false));
    let is_our_sa = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == sa_name && s.namespace.as_deref() == Some(NS)
        })
    };

    let cluster_role = bundle.named::<ClusterRole>(APP);
    let rules = cluster_role.rules.clone().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{origin}: ClusterRole: namespaces only");
    assert!(rule_is(&rules[0], "", "namespaces"));
    assert_eq!(verbs(&rules[0]), BTreeSet::from(["get", "list", "watch"]));
    assert!(rules[0].resource_names.is_none());
    let crb = bundle.named::<ClusterRoleBinding>(APP);
    assert_eq!(crb.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(&crb.role_ref.name),
        cluster_role.metadata.name.as_ref()
    );
    assert!(
        is_our_sa(&crb.subjects),
        "{origin}: ClusterRoleBinding → ServiceAccount"
    );

    let role = bundle.named::<Role>(APP);
    // Events are posted in the ConfigMap's namespace.
    assert_eq!(role.metadata.namespace.as_deref(), Some(cm_ns));
    let rules = role.rules.clone().unwrap_or_default();
    assert_eq!(rules.len(), 2, "{origin}: Role: the ConfigMap and events");
    let cm_rule = rules
        .iter()
        .find(|r| rule_is(r, "", "configmaps"))
        .expect("configmaps rule");
    assert_eq!(
        cm_rule.resource_names.as_deref(),
        Some(&[cm_name.to_owned()][..])
    );
    assert_eq!(verbs(cm_rule), BTreeSet::from(["list", "watch"]));
    let events_rule = rules
        .iter()
        .find(|r| rule_is(r, "events.k8s.io", "events"))
        .expect("events.k8s.io events rule");
    assert_eq!(verbs(events_rule), BTreeSet::from(["create", "patch"]));
    let rb = bundle.named::<RoleBinding>(APP);
    assert_eq!(rb.metadata.namespace, role.metadata.namespace);
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(Some(&rb.role_ref.name), role.metadata.name.as_ref());
    assert!(
        is_our_sa(&rb.subjects),
        "{origin}: RoleBinding → ServiceAccount"
    );
    for rule in bundle
        .all::<ClusterRole>()
        .iter()
        .flat_map(|r| r.rules.clone().unwrap_or_default())
        .chain(rules.iter().cloned())
    {
        let all = [
            &rule.verbs,
            rule.resources.as_ref().unwrap(),
            rule.api_groups.as_ref().unwrap(),
        ];
        assert!(
            all.iter().all(|list| !list.iter().any(|s| s.contains('*'))),
            "{origin}: no wildcards in RBAC"
        );
    }

    // The webhook.
    let mwc = bundle.one::<MutatingWebhookConfiguration>();
    let webhooks = mwc.webhooks.clone().unwrap_or_default();
    assert_eq!(webhooks.len(), 1, "{origin}: one webhook");
    let webhook = &webhooks[0];
    assert_eq!(webhook.name, "pull-secrets.pull-secret-injector.io");
    assert!(webhook.client_config.url.is_none());
    let target = webhook
        .client_config
        .service
        .as_ref()
        .expect("clientConfig.service");
    assert_eq!(Some(&target.name), service.metadata.name.as_ref());
    assert_eq!(Some(&target.namespace), service.metadata.namespace.as_ref());
    assert_eq!(target.path.as_deref(), Some("/mutate"));
    assert_eq!(
        target.port.unwrap_or(443),
        service_https.port,
        "{origin}: webhook → Service https"
    );
    assert_eq!(webhook.admission_review_versions, ["v1"]);
    assert_eq!(webhook.side_effects, "None");
    let timeout = webhook.timeout_seconds.unwrap_or(10);
    assert!(
        (1..=10).contains(&timeout),
        "{origin}: timeoutSeconds {timeout}"
    );
    assert_eq!(webhook.reinvocation_policy.as_deref(), Some("IfNeeded"));
    assert_eq!(webhook.match_policy.as_deref(), Some("Equivalent"));
    assert!(
        matches!(webhook.failure_policy.as_deref(), Some("Ignore" | "Fail")),
        "{origin}: failurePolicy set explicitly"
    );
    let rules = webhook.rules.clone().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{origin}: one rule");
    let rule = &rules[0];
    assert_eq!(
        rule.operations.as_deref(),
        Some(&["CREATE".to_owned()][..]),
        "CREATE only"
    );
    assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
    assert_eq!(rule.api_versions.as_deref(), Some(&["v1".to_owned()][..]));
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["pods".to_owned()][..]),
        "pods, no subresources"
    );
    assert_eq!(rule.scope.as_deref(), Some("Namespaced"));

    // Which namespaces and pods it is called for.
    let ns_selector = webhook
        .namespace_selector
        .clone()
        .expect("namespaceSelector");
    let names_excluded = ns_selector
        .match_expressions
        .iter()
        .flatten()
        .find(|e| e.key == NAME_LABEL && e.operator == "NotIn")
        .unwrap_or_else(|| panic!("{origin}: {NAME_LABEL} NotIn"));
    let excluded = names_excluded.values.clone().unwrap_or_default();
    assert!(
        excluded.contains(&"kube-system".to_owned()),
        "{origin}: excludes kube-system"
    );
    assert!(
        excluded.contains(&ns),
        "{origin}: excludes its own namespace {ns}"
    );
    let own: Vec<(&str, &str)> = ns_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (labels, called) in [
        (namespace_labels(&ns, &own), false),
        (namespace_labels(&ns, &[]), false),
        (namespace_labels("kube-system", &[]), false),
        (namespace_labels("default", &[]), true),
        (namespace_labels("team-a", &[(OPT_OUT, "true")]), true),
        (namespace_labels("team-a", &[(OPT_OUT, "false")]), false),
    ] {
        assert_eq!(
            selects(&ns_selector, &labels),
            called,
            "{origin}: namespace {labels:?}"
        );
    }
    let object_selector = webhook.object_selector.clone().expect("objectSelector");
    assert!(
        selects(&object_selector, &BTreeMap::new()),
        "{origin}: pods without labels"
    );
    assert!(selects(&object_selector, &labels(&[("app", "x")])));
    assert!(
        !selects(&object_selector, &labels(&[(OPT_OUT, "false")])),
        "{origin}: pod opt-out"
    );

    check_webhook_has_no_secret_access(bundle);
}

/// Every RBAC rule granted to the ServiceAccount `sa` of namespace NS, by
/// any binding of the build, as (apiGroup, resource, resourceNames, verb).
fn granted(bundle: &Bundle, sa: &str) -> BTreeSet<(String, String, Vec<String>, String)> {
    let is_sa = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(NS)
        })
    };
    let mut rules: Vec<PolicyRule> = Vec::new();
    let cluster_role_rules = |name: &str| -> Vec<PolicyRule> {
        bundle
            .all::<ClusterRole>()
            .into_iter()
            .filter(|r| r.metadata.name.as_deref() == Some(name))
            .flat_map(|r| r.rules.unwrap_or_default())
            .collect()
    };
    for crb in bundle.all::<ClusterRoleBinding>() {
        if is_sa(&crb.subjects) {
            rules.extend(cluster_role_rules(&crb.role_ref.name));
        }
    }
    for rb in bundle.all::<RoleBinding>() {
        if !is_sa(&rb.subjects) {
            continue;
        }
        if rb.role_ref.kind == "ClusterRole" {
            rules.extend(cluster_role_rules(&rb.role_ref.name));
        } else {
            rules.extend(
                bundle
                    .all::<Role>()
                    .into_iter()
                    .filter(|r| {
                        r.metadata.name.as_deref() == Some(rb.role_ref.name.as_str())
                            && r.metadata.namespace == rb.metadata.namespace
                    })
                    .flat_map(|r| r.rules.unwrap_or_default()),
            );
        }
    }
    flatten_rules(&rules)
}

fn flatten_rules(rules: &[PolicyRule]) -> BTreeSet<(String, String, Vec<String>, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let mut names = rule.resource_names.clone().unwrap_or_default();
        names.sort();
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), names.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

/// `(group, resource, names, verbs)` rows as the flattened set.
fn rule_rows(
    rows: &[(&str, &str, &[&str], &[&str])],
) -> BTreeSet<(String, String, Vec<String>, String)> {
    let rules: Vec<PolicyRule> = rows
        .iter()
        .map(|(group, resource, names, verbs)| PolicyRule {
            api_groups: Some(vec![(*group).to_owned()]),
            resources: Some(vec![(*resource).to_owned()]),
            resource_names: (!names.is_empty())
                .then(|| names.iter().map(|n| (*n).to_owned()).collect()),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            non_resource_urls: None,
        })
        .collect();
    flatten_rules(&rules)
}

/// The webhook never reads Secrets (DESIGN.md §8): nothing bound to its
/// ServiceAccount grants any access to them, nor any wildcard.
fn check_webhook_has_no_secret_access(bundle: &Bundle) {
    let granted = granted(bundle, APP);
    assert!(
        !granted.is_empty(),
        "{}: no rules for the webhook",
        bundle.origin
    );
    for (group, resource, _, verb) in &granted {
        assert!(
            !(resource == "secrets" || resource.starts_with("secrets/")),
            "{}: the webhook may {verb} secrets",
            bundle.origin
        );
        assert!(
            group != "*" && resource != "*" && verb != "*",
            "{}: wildcard in the webhook's RBAC",
            bundle.origin
        );
    }
}

/// Whether this build of the binary has the `sync` command yet.
fn binary_has_sync() -> bool {
    match Cli::try_parse_from(["pull-secret-injector", "sync", "--help"]) {
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => true,
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            eprintln!(
                "\n*** NOTE: the binary has no `sync` command yet: the sync Deployment's \
                 args are checked as text only. ***\n"
            );
            false
        }
        other => panic!("`sync --help`: unexpected {other:?}"),
    }
}

/// The sync controller (components/sync): its Deployment, identity, RBAC,
/// PDB and metrics Service, and that it stays apart from the webhook's.
fn check_sync(bundle: &Bundle) {
    let origin = &bundle.origin;
    let webhook = bundle.named::<Deployment>(APP);
    let webhook_spec = webhook.spec.as_ref().unwrap();
    let webhook_pod_labels = webhook_spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let webhook_container = &webhook_spec.template.spec.as_ref().unwrap().containers[0];

    let deployment = bundle.named::<Deployment>(SYNC);
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(NS));
    let spec = deployment.spec.as_ref().unwrap();
    assert!(
        spec.replicas.unwrap_or(1) >= 2,
        "{origin}: sync: 2 replicas"
    );
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(selects(&spec.selector, &pod_labels));
    // Neither Deployment, Service nor PDB of one picks the other's pods.
    assert!(!selects(&spec.selector, &webhook_pod_labels));
    assert!(!selects(&webhook_spec.selector, &pod_labels));
    let webhook_service = bundle.named::<Service>(APP);
    let webhook_service_selector = webhook_service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    assert!(
        !webhook_service_selector
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{origin}: the webhook Service must not send reviews to sync pods"
    );

    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1, "{origin}: sync: one container");
    let container = &pod.containers[0];
    assert_eq!(
        container.image, webhook_container.image,
        "{origin}: sync runs the webhook's image"
    );
    assert!(container.command.is_none(), "{origin}: the entrypoint runs");

    // Args, with the env the kubelet expands in them.
    let env = container.env.clone().unwrap_or_default();
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = env
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{origin}: sync env {name}"));
        assert_eq!(
            var.value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str()),
            Some(path),
            "{origin}: {name} from the downward API"
        );
    }
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("sync"));
    let flag = |name: &str| {
        let at = args
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("{origin}: sync {name}"));
        args[at + 1].clone()
    };
    let policy = flag("--policy-configmap").replace("$(POD_NAMESPACE)", NS);
    assert_eq!(policy, format!("{NS}/{POLICY_CONFIGMAP}"));
    assert_eq!(flag("--log-format"), "json");
    assert!(
        !args.iter().any(|a| a == "--policy-file"),
        "{origin}: sync reads the ConfigMap"
    );
    if binary_has_sync() {
        let expanded = args.iter().map(|a| a.replace("$(POD_NAMESPACE)", NS));
        let argv = std::iter::once("pull-secret-injector".to_owned()).chain(expanded);
        if let Err(e) = Cli::try_parse_from(argv) {
            panic!("{origin}: the sync args do not parse: {e}\nargs: {args:?}");
        }
    }

    // Metrics listener (default 0.0.0.0:9090, plain HTTP) and probes on it.
    let metrics = container_port(container, &IntOrString::String("metrics".into()));
    assert_eq!(metrics, i32::from(DEFAULT_METRICS_PORT));
    assert!(
        !args.iter().any(|a| a == "--metrics-listen"),
        "{origin}: sync metrics on the default port"
    );
    for (probe, path) in [
        (container.readiness_probe.as_ref(), "/readyz"),
        (container.liveness_probe.as_ref(), "/healthz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{origin}: sync httpGet probe on {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.scheme.as_deref().unwrap_or("HTTP"), "HTTP");
        assert_eq!(container_port(container, &get.port), metrics);
    }
    let resources = container.resources.as_ref().expect("sync resources");
    let requests = resources.requests.clone().unwrap_or_default();
    let limits = resources.limits.clone().unwrap_or_default();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    assert!(limits.contains_key("memory") && !limits.contains_key("cpu"));
    check_restricted(origin, pod, container);
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("sync: preferred pod anti-affinity");
    assert!(anti.iter().any(|t| {
        t.pod_affinity_term.topology_key == "kubernetes.io/hostname"
            && t.pod_affinity_term
                .label_selector
                .as_ref()
                .is_some_and(|s| selects(s, &pod_labels))
    }));
    for c in pod.topology_spread_constraints.iter().flatten() {
        assert!(
            c.label_selector
                .as_ref()
                .is_some_and(|s| selects(s, &pod_labels))
        );
    }

    // Its own ServiceAccount.
    let sa = bundle.named::<ServiceAccount>(SYNC);
    assert_eq!(sa.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(pod.service_account_name.as_deref(), Some(SYNC));
    assert_eq!(pod.automount_service_account_token, Some(true));

    // PDB and the metrics Service.
    let pdb = bundle.named::<PodDisruptionBudget>(SYNC);
    let pdb_spec = pdb.spec.unwrap();
    assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(pdb_spec.selector.as_ref(), Some(&spec.selector));
    let service = bundle.named::<Service>(SYNC);
    let service_spec = service.spec.unwrap();
    let selector = service_spec.selector.unwrap_or_default();
    assert!(!selector.is_empty());
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    assert!(
        !selector
            .iter()
            .all(|(k, v)| webhook_pod_labels.get(k) == Some(v))
    );
    let ports = service_spec.ports.unwrap_or_default();
    assert_eq!(ports.len(), 1, "{origin}: sync Service: metrics only");
    assert_eq!(ports[0].name.as_deref(), Some("metrics"));
    assert_eq!(
        container_port(container, ports[0].target_port.as_ref().unwrap()),
        metrics
    );

    // Least privilege: exactly these rules, cluster-wide and in NS.
    let all_verbs: &[&str] = &[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let cluster_expected = rule_rows(&[
        ("", "namespaces", &[], &["list", "watch"]),
        ("", "secrets", &[], all_verbs),
        ("events.k8s.io", "events", &[], &["create", "patch"]),
        ("", "events", &[], &["create", "patch"]),
    ]);
    let cluster_role = bundle.named::<ClusterRole>(SYNC);
    assert_eq!(
        flatten_rules(&cluster_role.rules.clone().unwrap_or_default()),
        cluster_expected,
        "{origin}: sync ClusterRole"
    );
    let role = bundle.named::<Role>(SYNC);
    assert_eq!(role.metadata.namespace.as_deref(), Some(NS));
    let role_expected = rule_rows(&[
        (
            "",
            "configmaps",
            &[POLICY_CONFIGMAP],
            &["get", "list", "watch"],
        ),
        ("coordination.k8s.io", "leases", &[], &["create"]),
        ("coordination.k8s.io", "leases", &[SYNC], &["get", "update"]),
    ]);
    assert_eq!(
        flatten_rules(&role.rules.clone().unwrap_or_default()),
        role_expected,
        "{origin}: sync Role"
    );
    let granted = granted(bundle, SYNC);
    let everything: BTreeSet<_> = cluster_expected.union(&role_expected).cloned().collect();
    assert_eq!(
        granted, everything,
        "{origin}: sync is bound to exactly these"
    );
}

/// The checks of the cert-manager overlay's objects.
fn check_cert_manager(bundle: &Bundle) {
    let origin = &bundle.origin;
    let mwc = bundle.raw("MutatingWebhookConfiguration", APP);
    let from = str_at(mwc, "/metadata/annotations/cert-manager.io~1inject-ca-from")
        .unwrap_or_else(|| panic!("{origin}: cert-manager.io/inject-ca-from"));
    let (cert_ns, cert_name) = from.split_once('/').unwrap();
    let serving = bundle.raw("Certificate", cert_name);
    assert_eq!(
        namespace_of(serving),
        Some(cert_ns),
        "{origin}: inject-ca-from namespace"
    );
    let service = bundle.named::<Service>(APP);
    let hosts = certs::service_hosts(
        service.metadata.name.as_deref().unwrap(),
        service.metadata.namespace.as_deref().unwrap(),
    );
    let dns_names: Vec<&str> = serving["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(dns_names, hosts, "{origin}: the names `certs` would use");
    assert_eq!(str_at(serving, "/spec/secretName"), Some(TLS_SECRET));
    assert_ne!(serving["spec"]["isCA"], Value::Bool(true));
    let usages = &serving["spec"]["usages"];
    assert!(
        usages
            .as_array()
            .is_some_and(|u| u.contains(&Value::from("server auth"))),
        "{origin}: server auth usage"
    );

    // serving ← CA Issuer ← CA Certificate ← self-signed Issuer.
    let ca_issuer = bundle.raw("Issuer", str_at(serving, "/spec/issuerRef/name").unwrap());
    let ca_secret = str_at(ca_issuer, "/spec/ca/secretName").expect("a CA Issuer");
    let ca_cert = bundle
        .objects
        .iter()
        .find(|o| kind_of(o) == "Certificate" && str_at(o, "/spec/secretName") == Some(ca_secret))
        .unwrap_or_else(|| panic!("{origin}: no Certificate makes {ca_secret}"));
    assert_eq!(ca_cert["spec"]["isCA"], Value::Bool(true));
    let root = bundle.raw("Issuer", str_at(ca_cert, "/spec/issuerRef/name").unwrap());
    assert!(
        root["spec"].get("selfSigned").is_some(),
        "{origin}: self-signed root"
    );
    for object in [serving, ca_issuer, ca_cert, root] {
        assert_eq!(
            namespace_of(object),
            Some(NS),
            "{origin}: {}",
            describe(object)
        );
    }
}

// ---------------------------------------------------------------------------
// The builds.

#[test]
fn base_builds_into_the_expected_objects() {
    let Some(objects) = build(&manifests()) else {
        return;
    };
    assert_eq!(
        object_keys(&objects),
        expected_keys(&[&BASE_OBJECTS, &SYNC_OBJECTS])
    );
    for object in &objects {
        check_document(object, &format!("built base: {}", describe(object)));
    }
    let bundle = Bundle::new(objects, "base");
    check_base(&bundle);
    check_sync(&bundle);
    let mwc = bundle.one::<MutatingWebhookConfiguration>();
    assert!(
        mwc.webhooks.unwrap()[0].client_config.ca_bundle.is_none(),
        "the base leaves caBundle to the overlays"
    );
    assert!(mwc.metadata.annotations.is_none());
}

#[test]
fn cert_manager_overlay_builds() {
    let Some(objects) = build(&manifests().join("overlays/cert-manager")) else {
        return;
    };
    assert_eq!(
        object_keys(&objects),
        expected_keys(&[&BASE_OBJECTS, &SYNC_OBJECTS, &CERT_MANAGER_OBJECTS])
    );
    for object in &objects {
        check_document(
            object,
            &format!("built cert-manager overlay: {}", describe(object)),
        );
    }
    let bundle = Bundle::new(objects, "cert-manager overlay");
    check_base(&bundle);
    check_sync(&bundle);
    check_cert_manager(&bundle);
}

/// Injection only, as the overlays' comment says: without the two
/// `components:` lines the build has the webhook and no sync objects.
#[test]
fn overlays_build_without_the_sync_component() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("manifests");
    copy_tree(&manifests(), &copy);
    for (overlay, extra) in [
        ("overlays/cert-manager", &CERT_MANAGER_OBJECTS[..]),
        ("overlays/manual-certs", &[][..]),
        (".", &[][..]),
    ] {
        let path = copy.join(overlay).join("kustomization.yaml");
        let text = read(&path);
        let kept: String = text
            .lines()
            .filter(|l| *l != "components:" && !l.ends_with("components/sync"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            text.lines().count(),
            kept.lines().count() + 2,
            "{overlay}: two lines name the sync component"
        );
        std::fs::write(&path, kept).unwrap();
        let Some(objects) = build(&copy.join(overlay)) else {
            return;
        };
        assert_eq!(
            object_keys(&objects),
            expected_keys(&[&BASE_OBJECTS, extra]),
            "{overlay} without components/sync"
        );
        let bundle = Bundle::new(objects, overlay);
        check_webhook_has_no_secret_access(&bundle);
    }
}

/// The placeholder line of the manual-certs patch, and the README's steps.
fn manual_certs_steps() -> (String, String) {
    let dir = manifests().join("overlays/manual-certs");
    let patch_text = read(&dir.join("webhook-cabundle.yaml"));
    let patch = &file_documents(&dir.join("webhook-cabundle.yaml"))[0];
    assert_eq!(str_at(patch, "/0/op"), Some("add"));
    assert_eq!(str_at(patch, "/0/path"), Some(CA_BUNDLE_PATH));
    let placeholder = str_at(patch, "/0/value").unwrap().to_owned();
    let value_lines = patch_text
        .lines()
        .filter(|l| l.starts_with("  value: "))
        .count();
    assert_eq!(
        value_lines, 1,
        "the README's sed replaces the one `  value: ` line"
    );
    (placeholder, read(&dir.join("README.md")))
}

#[test]
fn manual_certs_readme_matches_the_code_and_the_manifests() {
    let (placeholder, readme) = manual_certs_steps();
    // The `certs` command, as written, parses and names the Service.
    let line = readme
        .lines()
        .find(|l| l.contains("pull-secret-injector certs "))
        .expect("the certs command");
    let command = line
        .split_once("$(")
        .map_or(line, |(_, c)| c)
        .trim_end_matches(')');
    let words: Vec<&str> = command.split_whitespace().collect();
    Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("README: {command}: {e}"));
    let flag = |name: &str| {
        let i = words.iter().position(|w| *w == name).unwrap();
        words[i + 1]
    };
    assert_eq!((flag("--service"), flag("--namespace")), (APP, NS));
    let out_dir = flag("--out-dir");
    for needle in [
        "sed -i.bak \"s|^  value: .*|  value: ${CA_BUNDLE}|\"".to_owned(),
        format!(
            "kubectl create secret tls {TLS_SECRET} --cert {out_dir}/tls.crt --key {out_dir}/tls.key -n {NS}"
        ),
        format!("kubectl patch mutatingwebhookconfiguration {APP} --type=json"),
        format!("\\\"path\\\":\\\"{CA_BUNDLE_PATH}\\\""),
        "kubectl apply -k manifests/overlays/manual-certs".to_owned(),
        placeholder.clone(),
    ] {
        assert!(
            readme.contains(&needle),
            "README.md should contain {needle:?}"
        );
    }
    // The placeholder is not base64, so it cannot be applied by mistake.
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(&placeholder)
            .is_err()
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn manual_certs_overlay_builds_with_a_real_ca_bundle() {
    let (placeholder, _) = manual_certs_steps();
    let dir = manifests().join("overlays/manual-certs");

    // As shipped: builds, with the placeholder where the caBundle goes.
    let Some(shipped) = build(&dir) else {
        return;
    };
    assert_eq!(
        object_keys(&shipped),
        expected_keys(&[&BASE_OBJECTS, &SYNC_OBJECTS])
    );
    let mwc = shipped
        .iter()
        .find(|o| kind_of(o) == "MutatingWebhookConfiguration")
        .unwrap();
    assert_eq!(
        mwc.pointer(CA_BUNDLE_PATH),
        Some(&Value::from(placeholder.as_str()))
    );

    // The README's steps on a copy: `certs`, then the sed.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("manifests");
    copy_tree(&manifests(), &copy);
    let files = certs::CertFiles::in_dir(&tmp.path().join("certs"));
    let ca_pem = certs::write_set(&files, &certs::service_hosts(APP, NS)).unwrap();
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&ca_pem);
    let patch_path = copy.join("overlays/manual-certs/webhook-cabundle.yaml");
    let patched: String = read(&patch_path)
        .lines()
        .map(|l| {
            if l.starts_with("  value: ") {
                format!("  value: {ca_bundle}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&patch_path, patched).unwrap();
    pull_secret_injector::webhook::tls::CertStore::load(&files.cert, &files.key).unwrap();

    let objects = build(&copy.join("overlays/manual-certs")).unwrap();
    assert_eq!(
        object_keys(&objects),
        expected_keys(&[&BASE_OBJECTS, &SYNC_OBJECTS])
    );
    for object in &objects {
        check_document(
            object,
            &format!("built manual-certs overlay: {}", describe(object)),
        );
    }
    let bundle = Bundle::new(objects, "manual-certs overlay");
    check_base(&bundle);
    check_sync(&bundle);
    let mwc = bundle.one::<MutatingWebhookConfiguration>();
    let ca = mwc.webhooks.unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .expect("caBundle");
    assert_eq!(ca.0, ca_pem.as_bytes(), "caBundle = the CA `certs` wrote");
}

// ---------------------------------------------------------------------------
// The image.

#[test]
fn dockerfile_builds_the_binary_the_deployment_runs() {
    let dockerfile = read(&repo().join("Dockerfile"));
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        has(&format!(
            "ARG RUST_VERSION={}",
            env!("CARGO_PKG_RUST_VERSION")
        )),
        "the builder uses the crate's rust-version"
    );
    assert!(has("cargo build --release --locked --target"));
    assert!(has("ARG TARGET=x86_64-unknown-linux-musl"));
    assert!(has("rustup target add"));
    let last_from = lines.iter().rev().find(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        last_from.contains("distroless/static") && last_from.ends_with(":nonroot"),
        "final stage: {last_from}"
    );
    assert!(
        has(&format!("USER {NONROOT}:{NONROOT}")),
        "the image runs as the Deployment's user"
    );
    let bin = env!("CARGO_PKG_NAME");
    assert!(has(&format!("ENTRYPOINT [\"/{bin}\"]")));
    assert!(
        has(&format!("/{bin} /{bin}")),
        "the binary is copied to /{bin}"
    );

    let ignore = read(&repo().join(".dockerignore"));
    let entries: Vec<&str> = ignore
        .lines()
        .map(|l| l.trim().trim_end_matches('/'))
        .collect();
    for dir in ["target", "certs"] {
        assert!(
            entries.contains(&dir),
            ".dockerignore should exclude {dir}/"
        );
    }
}
