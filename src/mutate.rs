//! The mutation decision: which pull secrets a Pod needs and which of them it
//! lacks.
//!
//! [`PodView`] is the part of a Pod the decision reads (container images and
//! the existing `spec.imagePullSecrets`), deserialized borrowing from the
//! request body. [`plan`] matches every image against a
//! [`CompiledPolicy`] and returns a [`Plan`]: the secrets to add, the rules
//! that asked for them, and warnings for the user. Pure: no I/O, no logging.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::image;
use crate::policy::{CompiledPolicy, NamespaceFacts, NamespaceMatch};

/// Warnings longer than this are cut; kube-apiserver cuts them at 256
/// characters anyway once all of them together pass 4 KiB.
const MAX_WARNING_CHARS: usize = 256;
/// At most this many warnings per review, so a pod with hundreds of broken
/// images cannot produce an oversized response.
const MAX_WARNINGS: usize = 12;

/// The fields of a Pod that the decision needs, borrowed from the request.
#[derive(Debug, Deserialize)]
pub struct PodView<'a> {
    /// `metadata`, for naming the pod in logs and warnings.
    #[serde(default, borrow)]
    pub metadata: PodMeta<'a>,
    /// `spec`; required, because a patch to `/spec/...` needs it to exist.
    #[serde(borrow)]
    pub spec: PodSpecView<'a>,
}

/// The parts of `metadata` used for logging and the namespace fallback.
#[derive(Debug, Default, Deserialize)]
pub struct PodMeta<'a> {
    /// `metadata.name`; absent for pods created with `generateName`.
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    /// `metadata.generateName`.
    #[serde(default, borrow, rename = "generateName")]
    pub generate_name: Option<Cow<'a, str>>,
    /// `metadata.namespace`; the review's own namespace takes precedence.
    #[serde(default, borrow)]
    pub namespace: Option<Cow<'a, str>>,
    /// What the decision needs of `metadata.annotations`.
    #[serde(default)]
    pub annotations: AnnotationsView,
}

/// The kubelet marks the API copy of a static pod ("mirror pod") with this
/// annotation.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// `metadata.annotations`, read only for the keys the decision needs; the
/// values (and every other annotation) are skipped without being copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnnotationsView {
    /// The pod carries [`MIRROR_POD_ANNOTATION`].
    pub mirror: bool,
}

impl<'de> Deserialize<'de> for AnnotationsView {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AnnotationsView;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<AnnotationsView, E> {
                Ok(AnnotationsView::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AnnotationsView, A::Error> {
                let mut view = AnnotationsView::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    view.mirror |= key == MIRROR_POD_ANNOTATION;
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(view)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl PodMeta<'_> {
    /// Whether this is the kubelet's mirror of a static pod.
    pub fn is_mirror(&self) -> bool {
        self.annotations.mirror
    }

    /// A name for logs: the pod name, or its `generateName` prefix, or `""`.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.generate_name.as_deref())
            .unwrap_or("")
    }
}

/// The parts of `spec` the decision reads.
#[derive(Debug, Default, Deserialize)]
pub struct PodSpecView<'a> {
    /// `spec.containers`. Go writes an unset list as `null` (the field has
    /// no `omitempty`), which reads as empty; validation, after us, then
    /// tells the user the list is required.
    #[serde(default, borrow, deserialize_with = "null_as_empty")]
    pub containers: Vec<ContainerView<'a>>,
    /// `spec.initContainers`.
    #[serde(
        default,
        borrow,
        rename = "initContainers",
        deserialize_with = "null_as_empty"
    )]
    pub init_containers: Vec<ContainerView<'a>>,
    /// `spec.ephemeralContainers`.
    #[serde(
        default,
        borrow,
        rename = "ephemeralContainers",
        deserialize_with = "null_as_empty"
    )]
    pub ephemeral_containers: Vec<ContainerView<'a>>,
    /// `spec.imagePullSecrets`; `None` when the field is absent or null.
    #[serde(default, borrow, rename = "imagePullSecrets")]
    pub image_pull_secrets: Option<Vec<SecretRef<'a>>>,
}

/// A list that may be written as `null`.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// One container, init container or ephemeral container.
#[derive(Debug, Deserialize)]
pub struct ContainerView<'a> {
    /// The container name.
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    /// The image reference as written in the spec.
    #[serde(default, borrow)]
    pub image: Option<Cow<'a, str>>,
}

/// An entry of `spec.imagePullSecrets`.
#[derive(Debug, Deserialize)]
pub struct SecretRef<'a> {
    /// The Secret name; entries without one are kept but match nothing.
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
}

/// Which containers of the pod a decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Containers, init containers and ephemeral containers.
    AllContainers,
    /// Ephemeral containers only (the `pods/ephemeralcontainers` subresource).
    EphemeralOnly,
}

/// The outcome of matching a pod against the policy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan<'p> {
    /// Names of the rules that matched, in rule order.
    pub rules: Vec<&'p str>,
    /// Every secret the matching rules ask for: rule order, then secret
    /// order, without duplicates.
    pub wanted: Vec<&'p str>,
    /// For each entry of `wanted`, the first rule that asked for it.
    pub wanted_from: Vec<&'p str>,
    /// The wanted secrets that the pod does not list yet, in `wanted` order.
    pub missing: Vec<&'p str>,
    /// Whether `spec.imagePullSecrets` is present on the pod.
    pub field_present: bool,
    /// Messages for the user: unparseable images, selectors that could not
    /// be evaluated.
    pub warnings: Vec<String>,
    /// Images that no rule matched (counted for metrics).
    pub unmatched_images: usize,
}

/// Matches every image of `pod` (within `scope`) against `policy` for the
/// namespace `ns`, and works out which secrets are missing from the pod.
pub fn plan<'p>(
    pod: &PodView<'_>,
    ns: &NamespaceFacts<'_>,
    policy: &'p CompiledPolicy,
    scope: Scope,
) -> Plan<'p> {
    let spec = &pod.spec;
    let mut out = Plan {
        field_present: spec.image_pull_secrets.is_some(),
        ..Plan::default()
    };
    let groups: [(&[ContainerView<'_>], &str); 3] = match scope {
        Scope::AllContainers => [
            (&spec.containers, "container"),
            (&spec.init_containers, "init container"),
            (&spec.ephemeral_containers, "ephemeral container"),
        ],
        Scope::EphemeralOnly => [
            (&[], ""),
            (&[], ""),
            (&spec.ephemeral_containers, "ephemeral container"),
        ],
    };

    let mut matched: Vec<usize> = Vec::new();
    let mut per_image: Vec<usize> = Vec::new();
    let mut unknown_selectors: Vec<usize> = Vec::new();
    for (containers, what) in groups {
        for container in containers {
            let Some(image) = container.image.as_deref() else {
                continue;
            };
            let reference = match image::parse(image) {
                Ok(reference) => reference,
                Err(err) => {
                    push_warning(
                        &mut out.warnings,
                        Warning::BadImage {
                            what,
                            container: &container.name,
                            image,
                            err: &err,
                        },
                    );
                    continue;
                }
            };
            per_image.clear();
            policy.match_image(reference.registry(), reference.repository(), &mut per_image);
            let mut any = false;
            for &rule in &per_image {
                match policy.rules()[rule].namespace_match(ns) {
                    NamespaceMatch::Yes => {
                        any = true;
                        matched.push(rule);
                    }
                    NamespaceMatch::No => {}
                    NamespaceMatch::Unknown => unknown_selectors.push(rule),
                }
            }
            if !any {
                out.unmatched_images += 1;
            }
        }
    }

    matched.sort_unstable();
    matched.dedup();
    for &rule in &matched {
        let rule = &policy.rules()[rule];
        out.rules.push(rule.name());
        for secret in rule.secrets() {
            if !out.wanted.contains(&secret.as_str()) {
                out.wanted.push(secret);
                out.wanted_from.push(rule.name());
            }
        }
    }
    let existing = spec.image_pull_secrets.as_deref().unwrap_or(&[]);
    out.missing = out
        .wanted
        .iter()
        .copied()
        .filter(|want| {
            !existing
                .iter()
                .any(|have| have.name.as_deref() == Some(want))
        })
        .collect();

    unknown_selectors.sort_unstable();
    unknown_selectors.dedup();
    for rule in unknown_selectors {
        push_warning(
            &mut out.warnings,
            Warning::UnknownLabels {
                rule: policy.rules()[rule].name(),
                namespace: ns.name,
            },
        );
    }
    out
}

impl<'p> Plan<'p> {
    /// How many of the missing secrets each rule brings, attributing a
    /// secret to the first rule that asks for it.
    pub fn missing_by_rule(&self) -> Vec<(&'p str, usize)> {
        let mut counts: Vec<(&'p str, usize)> = Vec::new();
        for (secret, rule) in self.wanted.iter().zip(&self.wanted_from) {
            if !self.missing.contains(secret) {
                continue;
            }
            match counts.iter_mut().find(|(name, _)| name == rule) {
                Some((_, n)) => *n += 1,
                None => counts.push((rule, 1)),
            }
        }
        counts
    }
}

/// The user-facing messages a plan can carry.
enum Warning<'a> {
    BadImage {
        what: &'a str,
        container: &'a str,
        image: &'a str,
        err: &'a image::ParseImageRefError,
    },
    UnknownLabels {
        rule: &'a str,
        namespace: &'a str,
    },
}

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::BadImage {
                what,
                container,
                image,
                err,
            } => write!(
                f,
                "pull-secret-injector: {what} {container:?}: image {image:?} is not a valid reference ({err}); no pull secret added for it"
            ),
            Warning::UnknownLabels { rule, namespace } => write!(
                f,
                "pull-secret-injector: rule {rule:?} has a namespace selector but the labels of namespace {namespace:?} are unknown; the rule was not applied"
            ),
        }
    }
}

fn push_warning(warnings: &mut Vec<String>, warning: Warning<'_>) {
    if warnings.len() < MAX_WARNINGS {
        warnings.push(clean_warning(&warning.to_string()));
    }
}

/// Drops control characters and cuts the text to [`MAX_WARNING_CHARS`].
pub fn clean_warning(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_WARNING_CHARS)
        .collect();
    if text
        .chars()
        .filter(|c| !c.is_control())
        .nth(MAX_WARNING_CHARS)
        .is_some()
    {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const POLICY: &str = r#"
rules:
  - name: corp-harbor
    registries: [harbor.corp.example, "*.corp.example:5000"]
    repositories: ["team-a/**"]
    secrets: [harbor-pull, shared]
  - name: dockerhub
    registries: [docker.io]
    secrets: [dockerhub-creds, shared]
  - name: labelled
    registries: [ghcr.io]
    secrets: [ghcr]
    namespaces:
      selector:
        matchLabels: {registry-access: ghcr}
  - name: prod-only
    registries: [quay.io]
    secrets: [quay]
    namespaces:
      include: ["prod-*"]
      exclude: ["prod-sandbox"]
"#;

    fn policy() -> CompiledPolicy {
        CompiledPolicy::from_text(POLICY).expect("test policy is valid")
    }

    fn pod(json: &str) -> PodView<'_> {
        serde_json::from_str(json).expect("test pod parses")
    }

    fn ns(name: &str) -> NamespaceFacts<'_> {
        NamespaceFacts { name, labels: None }
    }

    #[test]
    fn secrets_follow_rule_order_then_secret_order_without_duplicates() {
        let policy = policy();
        let pod = pod(
            r#"{"spec":{"containers":[{"name":"a","image":"harbor.corp.example/team-a/api:1"},
                {"name":"b","image":"nginx"}]}}"#,
        );
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert_eq!(plan.rules, ["corp-harbor", "dockerhub"]);
        assert_eq!(plan.wanted, ["harbor-pull", "shared", "dockerhub-creds"]);
        assert_eq!(plan.missing, plan.wanted);
        assert!(!plan.field_present);
        assert_eq!(
            plan.missing_by_rule(),
            [("corp-harbor", 2), ("dockerhub", 1)]
        );
    }

    #[test]
    fn rule_order_does_not_depend_on_container_order() {
        let policy = policy();
        let pod = pod(r#"{"spec":{"containers":[{"name":"b","image":"nginx"}],
                "initContainers":[{"name":"a","image":"harbor.corp.example/team-a/api:1"}]}}"#);
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert_eq!(plan.wanted, ["harbor-pull", "shared", "dockerhub-creds"]);
    }

    #[test]
    fn existing_secret_is_kept_and_not_requested_again() {
        let policy = policy();
        let pod = pod(
            r#"{"spec":{"containers":[{"name":"b","image":"docker.io/library/nginx"}],
                "imagePullSecrets":[{"name":"shared"},{}]}}"#,
        );
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert!(plan.field_present);
        assert_eq!(plan.missing, ["dockerhub-creds"]);
    }

    #[test]
    fn ephemeral_scope_ignores_regular_containers() {
        let policy = policy();
        let pod = pod(r#"{"spec":{"containers":[{"name":"b","image":"nginx"}],
                "ephemeralContainers":[{"name":"dbg","image":"harbor.corp.example/team-a/dbg"}]}}"#);
        let plan = plan(&pod, &ns("default"), &policy, Scope::EphemeralOnly);
        assert_eq!(plan.rules, ["corp-harbor"]);
    }

    #[test]
    fn unparseable_image_gives_a_warning_and_no_secret() {
        let policy = policy();
        let pod =
            pod(r#"{"spec":{"containers":[{"name":"x","image":"Harbor.corp.example/Team/app"}]}}"#);
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert!(plan.wanted.is_empty());
        assert_eq!(plan.warnings.len(), 1);
        assert!(
            plan.warnings[0].contains("not a valid reference"),
            "{}",
            plan.warnings[0]
        );
    }

    #[test]
    fn selector_with_unknown_labels_does_not_match_and_warns() {
        let policy = policy();
        let pod = pod(r#"{"spec":{"containers":[{"name":"x","image":"ghcr.io/org/app"}]}}"#);
        let plan = plan(&pod, &ns("team"), &policy, Scope::AllContainers);
        assert!(plan.wanted.is_empty());
        assert_eq!(plan.unmatched_images, 1);
        assert!(plan.warnings[0].contains("labels of namespace \"team\" are unknown"));

        let labels = BTreeMap::from([("registry-access".to_owned(), "ghcr".to_owned())]);
        let facts = NamespaceFacts {
            name: "team",
            labels: Some(&labels),
        };
        let plan = super::plan(&pod, &facts, &policy, Scope::AllContainers);
        assert_eq!(plan.wanted, ["ghcr"]);
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn namespace_globs_limit_a_rule() {
        let policy = policy();
        let pod = pod(r#"{"spec":{"containers":[{"name":"x","image":"quay.io/org/app"}]}}"#);
        for (namespace, expected) in [
            ("prod-eu", vec!["quay"]),
            ("prod-sandbox", vec![]),
            ("dev", vec![]),
        ] {
            let plan = plan(&pod, &ns(namespace), &policy, Scope::AllContainers);
            assert_eq!(plan.wanted, expected, "namespace {namespace}");
        }
    }

    #[test]
    fn null_container_lists_read_as_empty() {
        let policy = policy();
        let pod = pod(
            r#"{"metadata":{"annotations":null},"spec":{"containers":null,"initContainers":null,
                "ephemeralContainers":null,"imagePullSecrets":null}}"#,
        );
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert!(plan.wanted.is_empty() && plan.warnings.is_empty());
        assert!(!plan.field_present);
    }

    #[test]
    fn warnings_are_cleaned_and_bounded() {
        let long = format!("a\u{7}{}", "b".repeat(400));
        let cleaned = clean_warning(&long);
        assert_eq!(cleaned.chars().count(), MAX_WARNING_CHARS);
        assert!(!cleaned.contains('\u{7}'));
        assert!(cleaned.ends_with('…'));

        let policy = policy();
        let containers: Vec<String> = (0..50)
            .map(|i| format!(r#"{{"name":"c{i}","image":"BAD/IMAGE{i}"}}"#))
            .collect();
        let json = format!(r#"{{"spec":{{"containers":[{}]}}}}"#, containers.join(","));
        let plan = plan(&pod(&json), &ns("default"), &policy, Scope::AllContainers);
        assert_eq!(plan.warnings.len(), MAX_WARNINGS);
    }
}
