//! Table tests of the findings: one Pod, its namespace's Secrets, the
//! expected findings as `(container, finding, secret)`.

use super::*;
use crate::core::pod::PodSpecView;

const POLICY: &str = r#"
rules:
  - name: hub
    registries: [docker.io]
    secrets: [hub]
  - name: harbor
    registries: [harbor.corp.example]
    secrets: [harbor, shared]
  - name: team-a-only
    registries: [ghcr.io]
    secrets: [ghcr]
    namespaces: {include: ["team-a"]}
  - name: labelled
    registries: [quay.io]
    secrets: [quay]
    namespaces: {selector: {matchLabels: {quay: "yes"}}}
"#;

fn policy() -> CompiledPolicy {
    CompiledPolicy::from_text(POLICY).expect("valid")
}

/// Secrets of these types; pull secrets hold keys for every registry of
/// the policy unless `keys` says otherwise (`name=key1,key2`, or
/// `name=!` for content the kubelet cannot read).
fn secrets(list: &[(&str, &str)]) -> Secrets {
    list.iter()
        .map(|(name, t)| {
            let (name, keys) = name
                .split_once('=')
                .unwrap_or((name, "docker.io,harbor.corp.example,ghcr.io,quay.io"));
            let config = PULL_SECRET_TYPES.contains(t).then(|| {
                if keys == "!" {
                    return Err("invalid JSON".to_owned());
                }
                let auths: serde_json::Map<String, serde_json::Value> = keys
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(|k| (k.to_owned(), serde_json::json!({})))
                    .collect();
                let text = serde_json::json!({"auths": auths}).to_string();
                Ok(DockerConfig::parse(
                    crate::core::credentials::ConfigFormat::DockerConfigJson,
                    text.as_bytes(),
                )
                .expect("config"))
            });
            (
                name.to_owned(),
                SecretFacts {
                    secret_type: (*t).to_owned(),
                    config,
                },
            )
        })
        .collect()
}

const PULL: &str = "kubernetes.io/dockerconfigjson";

fn run(
    ns: &str,
    spec: &str,
    present: &[(&str, &str)],
) -> Vec<(String, &'static str, Option<String>)> {
    let policy = policy();
    let spec: PodSpecView<'_> = serde_json::from_str(spec).expect("spec");
    let labels = BTreeMap::from([("quay".to_owned(), "yes".to_owned())]);
    let facts = NamespaceFacts {
        name: ns,
        labels: Some(&labels),
    };
    let pod = AuditedPod {
        mirror: false,
        spec: &spec,
    };
    findings(&policy, &facts, &pod, &secrets(present))
        .into_iter()
        .map(|f| (f.container, f.kind.as_str(), f.secret))
        .collect()
}

fn expect(
    list: &[(&str, &'static str, Option<&str>)],
) -> Vec<(String, &'static str, Option<String>)> {
    list.iter()
        .map(|(c, k, s)| ((*c).to_owned(), *k, s.map(str::to_owned)))
        .collect()
}

/// What, namespace, pod spec, the namespace's Secrets, expected findings.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str, Option<&'static str>)],
);

#[test]
fn findings_per_container_image() {
    let cases: &[Case] = &[
        (
            "a pod with every secret it needs has no findings",
            "default",
            r#"{"containers":[{"name":"a","image":"nginx"}],"imagePullSecrets":[{"name":"hub"}]}"#,
            &[("hub", PULL)],
            &[],
        ),
        (
            "dockercfg is a pull secret type too",
            "default",
            r#"{"containers":[{"name":"a","image":"nginx"}],"imagePullSecrets":[{"name":"hub"}]}"#,
            &[("hub", "kubernetes.io/dockercfg")],
            &[],
        ),
        (
            "created before the webhook: every secret the policy gives is missing",
            "default",
            r#"{"containers":[{"name":"a","image":"harbor.corp.example/x/y:1"},{"name":"b","image":"nginx"}]}"#,
            &[("hub", PULL), ("harbor", PULL), ("shared", PULL)],
            &[
                ("a", "missing-secret-ref", Some("harbor")),
                ("a", "missing-secret-ref", Some("shared")),
                ("a", "no-credentials", None),
                ("b", "missing-secret-ref", Some("hub")),
                ("b", "no-credentials", None),
            ],
        ),
        (
            "listed but absent, or of the wrong type, for the images it is given to",
            "default",
            r#"{"containers":[{"name":"a","image":"harbor.corp.example/x/y:1"},{"name":"b","image":"nginx"}],
                "imagePullSecrets":[{"name":"harbor"},{"name":"shared"},{"name":"hub"}]}"#,
            &[("hub", "Opaque")],
            &[
                ("a", "secret-not-found", Some("harbor")),
                ("a", "secret-not-found", Some("shared")),
                ("a", "no-credentials", None),
                ("b", "secret-wrong-type", Some("hub")),
                ("b", "no-credentials", None),
            ],
        ),
        (
            "a listed secret no rule gives concerns every image",
            "default",
            r#"{"containers":[{"name":"a","image":"nginx"}],"initContainers":[{"name":"i","image":"registry.k8s.io/pause:3.9"}],
                "imagePullSecrets":[{"name":"hub"},{"name":"by-hand"}]}"#,
            &[("hub", PULL)],
            &[
                ("a", "secret-not-found", Some("by-hand")),
                ("i", "secret-not-found", Some("by-hand")),
            ],
        ),
        (
            "invalid images say so and nothing else; init and ephemeral containers count",
            "default",
            r#"{"containers":[{"name":"a","image":"Bad Image"}],"initContainers":[{"name":"i","image":"nginx"}],
                "ephemeralContainers":[{"name":"debug","image":"busybox@sha256:abc"}]}"#,
            &[],
            &[
                ("a", "invalid-image", None),
                ("i", "missing-secret-ref", Some("hub")),
                ("i", "no-credentials", None),
                ("debug", "invalid-image", None),
            ],
        ),
        (
            "namespace conditions are the policy's",
            "prod",
            r#"{"containers":[{"name":"a","image":"ghcr.io/acme/x"},{"name":"q","image":"quay.io/acme/y"}]}"#,
            &[],
            &[
                ("q", "missing-secret-ref", Some("quay")),
                ("q", "no-credentials", None),
            ],
        ),
        (
            "in team-a the ghcr rule applies",
            "team-a",
            r#"{"containers":[{"name":"a","image":"ghcr.io/acme/x"}],"imagePullSecrets":[{"name":"ghcr"},{"name":"ghcr"},{"name":""},{}]}"#,
            &[("ghcr", PULL)],
            &[],
        ),
        (
            "keys for other hosts give no credentials (every pull secret serves every image)",
            "default",
            r#"{"containers":[{"name":"a","image":"nginx"},{"name":"h","image":"harbor.corp.example/x"}],
                "imagePullSecrets":[{"name":"hub"},{"name":"harbor"},{"name":"shared"}]}"#,
            &[
                ("hub=harbor.corp.example", PULL),
                ("harbor=", PULL),
                ("shared=harbor.corp.example:5000", PULL),
            ],
            &[("a", "no-credentials", None)],
        ),
        (
            "Docker Hub's legacy key serves Docker Hub images; another secret's key serves harbor",
            "default",
            r#"{"containers":[{"name":"a","image":"nginx"},{"name":"h","image":"harbor.corp.example/x"}],
                "imagePullSecrets":[{"name":"hub"},{"name":"harbor"},{"name":"shared"}]}"#,
            &[
                ("hub=https://index.docker.io/v1/", PULL),
                ("harbor=", PULL),
                ("shared=https://harbor.corp.example", PULL),
            ],
            &[],
        ),
        (
            "content the kubelet cannot read",
            "default",
            r#"{"containers":[{"name":"a","image":"nginx"}],"imagePullSecrets":[{"name":"hub"}]}"#,
            &[("hub=!", PULL)],
            &[
                ("a", "secret-wrong-type", Some("hub")),
                ("a", "no-credentials", None),
            ],
        ),
        (
            "containers without an image and null lists are skipped",
            "default",
            r#"{"containers":[{"name":"a"}],"initContainers":null,"imagePullSecrets":null}"#,
            &[],
            &[],
        ),
    ];
    for (what, ns, spec, present, expected) in cases {
        assert_eq!(run(ns, spec, present), expect(expected), "{what}");
    }
}

#[test]
fn details_name_rules_namespaces_and_types() {
    let policy = policy();
    let spec: PodSpecView<'_> = serde_json::from_str(
        r#"{"containers":[{"name":"a","image":"harbor.corp.example/x/y:1"},{"name":"b","image":"a b"}],
            "imagePullSecrets":[{"name":"harbor"}]}"#,
    )
    .expect("spec");
    let facts = NamespaceFacts {
        name: "team-b",
        labels: None,
    };
    let pod = AuditedPod {
        mirror: false,
        spec: &spec,
    };
    let found = findings(&policy, &facts, &pod, &secrets(&[("harbor", "Opaque")]));
    let details: Vec<&str> = found.iter().map(|f| f.detail.as_str()).collect();
    assert!(details[0].contains(r#"rule "harbor""#), "{details:?}");
    assert_eq!(found[0].secret.as_deref(), Some("shared"));
    assert!(
        details[1].contains(r#""Opaque""#) && details[1].contains(PULL),
        "{details:?}"
    );
    assert!(details[2].contains("rules harbor match"), "{details:?}");
    assert!(
        details[3].starts_with("not a valid image reference: "),
        "{details:?}"
    );
    assert_eq!(found[3].image, "a b");
    assert_eq!(found.len(), 4);

    let missing = findings(&policy, &facts, &pod, &Secrets::new());
    assert!(
        missing[1].detail.contains(r#"namespace "team-b""#),
        "{missing:?}"
    );
}

#[test]
fn mirror_pods_have_no_findings() {
    let policy = policy();
    let spec: PodSpecView<'_> =
        serde_json::from_str(r#"{"containers":[{"name":"etcd","image":"nginx"}]}"#).expect("spec");
    let facts = NamespaceFacts {
        name: "kube-system",
        labels: None,
    };
    let pod = AuditedPod {
        mirror: true,
        spec: &spec,
    };
    assert!(findings(&policy, &facts, &pod, &Secrets::new()).is_empty());
}
