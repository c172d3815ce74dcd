//! AdmissionReview in and out.
//!
//! [`Review::decode`] reads only what the decision needs from the request
//! body in one pass, borrowing strings from it: the object is read as a Pod
//! right away when the request says Pod, and otherwise stays raw JSON. [`decide`] turns a review plus the
//! policy into a [`Decision`], and [`Decision::encode`] writes the response
//! review: same `apiVersion`, same `uid`, `patchType: JSONPatch` and the patch
//! as standard base64 (the documented form, not kube-core's byte array).

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::mutate::{self, PodView, Scope};
use crate::patch;
use crate::policy::{CompiledPolicy, NamespaceFacts};

/// The `admission.k8s.io` versions we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `admission.k8s.io/v1`.
    V1,
    /// `admission.k8s.io/v1beta1`.
    V1Beta1,
}

impl Version {
    /// The `apiVersion` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "admission.k8s.io/v1",
            Version::V1Beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// Why a body is not a readable AdmissionReview.
#[derive(Debug, thiserror::Error)]
pub enum DecodeReviewError {
    /// The body is not JSON of the expected shape.
    #[error("request body is not an AdmissionReview: {0}")]
    Json(serde_json::Error),
    /// `apiVersion` is not one we answer.
    #[error(
        "unsupported apiVersion {0:?}: expected admission.k8s.io/v1 or admission.k8s.io/v1beta1"
    )]
    ApiVersion(String),
    /// `kind` is not `AdmissionReview`.
    #[error("unsupported kind {0:?}: expected AdmissionReview")]
    Kind(String),
    /// There is no `request`.
    #[error("AdmissionReview has no request")]
    NoRequest,
    /// `request.uid` is empty.
    #[error("AdmissionReview request has an empty uid")]
    EmptyUid,
}

#[derive(Deserialize)]
struct RawReview<'a> {
    #[serde(default, borrow, rename = "apiVersion")]
    api_version: Cow<'a, str>,
    #[serde(default, borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    request: Option<Request<'a>>,
}

/// A decoded AdmissionReview request.
#[derive(Debug)]
pub struct Review<'a> {
    /// The version the response must carry.
    pub version: Version,
    /// The request.
    pub request: Request<'a>,
}

/// The fields of `request` the decision needs.
#[derive(Debug)]
pub struct Request<'a> {
    /// The request uid, echoed in the response.
    pub uid: Cow<'a, str>,
    /// The kind of the object (`kind`).
    pub kind: GroupVersionKind<'a>,
    /// `subResource`, e.g. `ephemeralcontainers`.
    pub sub_resource: Option<Cow<'a, str>>,
    /// `operation`: CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Cow<'a, str>,
    /// The namespace of the request.
    pub namespace: Option<Cow<'a, str>>,
    /// `dryRun`; the decision does not change, but logs say so.
    pub dry_run: Option<bool>,
    /// The object.
    pub object: Option<Object<'a>>,
}

/// `request.object`: read as a Pod in the same pass when `kind` said Pod
/// before it (kube-apiserver's field order), otherwise kept as raw JSON and
/// read only if needed.
#[derive(Debug)]
pub enum Object<'a> {
    /// Already read as a Pod.
    Pod(PodView<'a>),
    /// Not read yet.
    Raw(&'a RawValue),
}

/// A string borrowed from the body when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The `request` keys we read; everything else is skipped.
enum Field {
    Uid,
    Kind,
    SubResource,
    Operation,
    Namespace,
    DryRun,
    Object,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl serde::de::Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "uid" => Field::Uid,
                    "kind" => Field::Kind,
                    "subResource" => Field::SubResource,
                    "operation" => Field::Operation,
                    "namespace" => Field::Namespace,
                    "dryRun" => Field::DryRun,
                    "object" => Field::Object,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Request<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RequestVisitor;
        impl<'de> serde::de::Visitor<'de> for RequestVisitor {
            type Value = Request<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an AdmissionReview request")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Request<'de>, A::Error> {
                let text = |t: Option<Text<'de>>| t.map(|t| t.0);
                let mut request = Request {
                    uid: Cow::Borrowed(""),
                    kind: GroupVersionKind::default(),
                    sub_resource: None,
                    operation: Cow::Borrowed(""),
                    namespace: None,
                    dry_run: None,
                    object: None,
                };
                let mut uid = None;
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Uid => uid = text(map.next_value()?),
                        Field::Kind => {
                            request.kind = map.next_value::<Option<_>>()?.unwrap_or_default()
                        }
                        Field::SubResource => request.sub_resource = text(map.next_value()?),
                        Field::Operation => {
                            request.operation = text(map.next_value()?).unwrap_or_default()
                        }
                        Field::Namespace => request.namespace = text(map.next_value()?),
                        Field::DryRun => request.dry_run = map.next_value()?,
                        Field::Object if request.is_pod() => {
                            request.object =
                                map.next_value::<Option<PodView<'de>>>()?.map(Object::Pod);
                        }
                        Field::Object => {
                            request.object =
                                map.next_value::<Option<&'de RawValue>>()?.map(Object::Raw);
                        }
                        Field::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                request.uid = uid.ok_or_else(|| serde::de::Error::missing_field("uid"))?;
                Ok(request)
            }
        }
        deserializer.deserialize_map(RequestVisitor)
    }
}

/// `request.kind`.
#[derive(Debug, Default, Deserialize)]
pub struct GroupVersionKind<'a> {
    /// API group; empty for core.
    #[serde(default, borrow)]
    pub group: Cow<'a, str>,
    /// API version.
    #[serde(default, borrow)]
    pub version: Cow<'a, str>,
    /// Kind.
    #[serde(default, borrow)]
    pub kind: Cow<'a, str>,
}

impl<'a> Review<'a> {
    /// Reads an AdmissionReview from a request body.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeReviewError> {
        let raw: RawReview<'a> = serde_json::from_slice(body).map_err(DecodeReviewError::Json)?;
        let version = match raw.api_version.as_ref() {
            "admission.k8s.io/v1" => Version::V1,
            "admission.k8s.io/v1beta1" => Version::V1Beta1,
            other => return Err(DecodeReviewError::ApiVersion(other.to_owned())),
        };
        if raw.kind != "AdmissionReview" {
            return Err(DecodeReviewError::Kind(raw.kind.into_owned()));
        }
        let request = raw.request.ok_or(DecodeReviewError::NoRequest)?;
        if request.uid.is_empty() {
            return Err(DecodeReviewError::EmptyUid);
        }
        Ok(Review { version, request })
    }
}

impl Request<'_> {
    /// True for core/v1 Pods.
    pub fn is_pod(&self) -> bool {
        self.kind.group.is_empty() && self.kind.kind == "Pod"
    }

    /// What kind of decision the request calls for.
    pub fn action(&self) -> Action {
        if !self.is_pod() {
            return Action::Skip;
        }
        match (self.operation.as_ref(), self.sub_resource.as_deref()) {
            ("CREATE", None | Some("")) => Action::Mutate,
            ("UPDATE", None | Some("")) => Action::Warn(Scope::AllContainers),
            ("UPDATE", Some("ephemeralcontainers")) => Action::Warn(Scope::EphemeralOnly),
            _ => Action::Skip,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pod CREATE: patch in the missing secrets.
    Mutate,
    /// Pod UPDATE (or ephemeral containers): no patch, but warn about images
    /// whose secrets the pod lacks.
    Warn(Scope),
    /// Anything else: allow untouched.
    Skip,
}

/// How a review ended, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A patch was returned.
    Patched,
    /// A Pod CREATE that needed nothing.
    Unchanged,
    /// Not a Pod CREATE, a mirror pod, or the Pod could not be read:
    /// allowed untouched.
    Skipped,
}

impl Outcome {
    /// A lowercase label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Patched => "patched",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The answer to one review.
#[derive(Debug)]
pub struct Decision<'p> {
    /// How it ended.
    pub outcome: Outcome,
    /// Rules that matched.
    pub rules: Vec<&'p str>,
    /// Secrets added by the patch.
    pub added: Vec<&'p str>,
    /// How many added secrets each rule brought (for metrics).
    pub added_by_rule: Vec<(&'p str, usize)>,
    /// The pod's name, or its `generateName`, for logs.
    pub pod: String,
    /// The JSON Patch, if any.
    pub patch: Option<String>,
    /// Warnings for the user.
    pub warnings: Vec<String>,
    /// Images no rule matched.
    pub unmatched_images: usize,
}

/// Decides a review: the namespace's labels (`None` when unknown) feed
/// namespace selectors.
pub fn decide<'p>(
    request: &Request<'_>,
    policy: &'p CompiledPolicy,
    labels: Option<&BTreeMap<String, String>>,
) -> Decision<'p> {
    let mut decision = Decision {
        outcome: Outcome::Skipped,
        rules: Vec::new(),
        added: Vec::new(),
        added_by_rule: Vec::new(),
        pod: String::new(),
        patch: None,
        warnings: Vec::new(),
        unmatched_images: 0,
    };
    let action = request.action();
    let scope = match action {
        Action::Skip => return decision,
        Action::Mutate => Scope::AllContainers,
        Action::Warn(scope) => scope,
    };
    // The object was read as a Pod with the request unless `kind` came
    // after it in the body; then it is read now.
    let parsed: PodView<'_>;
    let pod: &PodView<'_> = match &request.object {
        Some(Object::Pod(pod)) => pod,
        Some(Object::Raw(raw)) => match serde_json::from_str(raw.get()) {
            Ok(pod) => {
                parsed = pod;
                &parsed
            }
            Err(err) => return unreadable_pod(decision, &err.to_string()),
        },
        None => return unreadable_pod(decision, "the request has no object"),
    };
    decision.pod = pod.metadata.display_name().to_owned();
    // A mirror pod is the API copy of a static pod: the kubelet pulls from
    // its own manifest, never from this object, and NodeRestriction forbids
    // a node's pods to reference Secrets, so a patch could only break it.
    if pod.metadata.is_mirror() {
        return decision;
    }
    let namespace = namespace_of(request, pod);
    let facts = NamespaceFacts {
        name: namespace,
        labels,
    };
    let mut plan = mutate::plan(pod, &facts, policy, scope);
    decision.added_by_rule = plan.missing_by_rule();
    decision.warnings = std::mem::take(&mut plan.warnings);
    decision.rules = std::mem::take(&mut plan.rules);
    decision.unmatched_images = plan.unmatched_images;
    if action == Action::Mutate {
        decision.patch = patch::patch(&plan.missing, plan.field_present);
        decision.outcome = if decision.patch.is_some() {
            Outcome::Patched
        } else {
            Outcome::Unchanged
        };
        decision.added = plan.missing;
    } else if !plan.missing.is_empty() {
        decision.added_by_rule.clear();
        decision.warnings.push(mutate::clean_warning(&format!(
            "pull-secret-injector: this {} is not patched, and the pod lacks imagePullSecrets {} that the policy gives its images (rules {}); pulls may fail with ImagePullBackOff",
            if scope == Scope::EphemeralOnly {
                "ephemeral container update"
            } else {
                "pod update"
            },
            plan.missing.join(", "),
            decision.rules.join(", "),
        )));
    }
    decision
}

/// No patch, and a warning saying why.
fn unreadable_pod<'p>(mut decision: Decision<'p>, err: &str) -> Decision<'p> {
    decision.warnings.push(mutate::clean_warning(&format!(
        "pull-secret-injector: could not read the Pod ({err}); no imagePullSecrets were added"
    )));
    decision
}

/// The pod's namespace: the request's, else the object's.
pub fn namespace_of<'r>(request: &'r Request<'_>, pod: &'r PodView<'_>) -> &'r str {
    request
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .or(pod.metadata.namespace.as_deref())
        .unwrap_or("")
}

#[derive(Serialize)]
struct ResponseReview<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    response: Response<'a>,
}

#[derive(Serialize)]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(rename = "patchType", skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    warnings: &'a [String],
    #[serde(rename = "auditAnnotations", skip_serializing_if = "Option::is_none")]
    audit_annotations: Option<AuditAnnotations>,
}

#[derive(Serialize)]
struct AuditAnnotations {
    #[serde(rename = "injected-secrets")]
    injected_secrets: String,
}

impl Decision<'_> {
    /// Writes the response AdmissionReview for `review`.
    pub fn encode(&self, review: &Review<'_>) -> Vec<u8> {
        let patch = self
            .patch
            .as_ref()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
        let body = ResponseReview {
            api_version: review.version.as_str(),
            kind: "AdmissionReview",
            response: Response {
                uid: &review.request.uid,
                allowed: true,
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
                warnings: &self.warnings,
                audit_annotations: (!self.added.is_empty()).then(|| AuditAnnotations {
                    injected_secrets: self.added.join(","),
                }),
            },
        };
        // Serializing plain strings and bools into memory cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn review(operation: &str, sub: Option<&str>, object: Value) -> Vec<u8> {
        let mut request = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": "team-a",
            "object": object,
        });
        if let Some(sub) = sub {
            request["subResource"] = json!(sub);
        }
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        }))
        .expect("serializes")
    }

    fn policy() -> CompiledPolicy {
        CompiledPolicy::from_text(
            "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n",
        )
        .expect("valid")
    }

    #[test]
    fn bad_bodies_are_named_precisely() {
        for (body, expected) in [
            (&b"not json"[..], "not an AdmissionReview"),
            (br#"{"apiVersion":"v1","kind":"AdmissionReview"}"#, "unsupported apiVersion"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#, "unsupported kind"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "no request"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#,
                "empty uid",
            ),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x""#, "EOF"),
        ] {
            let err = Review::decode(body).expect_err("must fail");
            assert!(err.to_string().contains(expected), "{err} vs {expected}");
        }
    }

    #[test]
    fn actions_follow_operation_kind_and_subresource() {
        let pod = json!({"spec": {"containers": []}});
        for (op, sub, expected) in [
            ("CREATE", None, Action::Mutate),
            ("UPDATE", None, Action::Warn(Scope::AllContainers)),
            (
                "UPDATE",
                Some("ephemeralcontainers"),
                Action::Warn(Scope::EphemeralOnly),
            ),
            ("UPDATE", Some("status"), Action::Skip),
            ("DELETE", None, Action::Skip),
            ("CREATE", Some("binding"), Action::Skip),
        ] {
            let body = review(op, sub, pod.clone());
            let review = Review::decode(&body).expect("decodes");
            assert_eq!(review.request.action(), expected, "{op} {sub:?}");
        }
    }

    #[test]
    fn unreadable_pod_is_a_bad_review_when_kind_comes_first() {
        let body = review("CREATE", None, json!({"spec": "nonsense"}));
        let err = Review::decode(&body).expect_err("the object is no Pod");
        assert!(
            err.to_string().contains("expected struct PodSpecView"),
            "{err}"
        );
    }

    #[test]
    fn object_before_kind_is_read_afterwards() {
        let policy = policy();
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"spec":{"containers":[{"name":"a","image":"nginx"}]}},"kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
        let review = Review::decode(body).expect("decodes");
        assert!(matches!(review.request.object, Some(Object::Raw(_))));
        assert_eq!(decide(&review.request, &policy, None).added, ["hub"]);

        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"spec":"nonsense"},"kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
        let review = Review::decode(body).expect("decodes");
        let decision = decide(&review.request, &policy, None);
        assert_eq!(decision.outcome, Outcome::Skipped);
        assert!(decision.patch.is_none());
        assert!(decision.warnings[0].contains("could not read the Pod"));
    }

    #[test]
    fn response_echoes_version_and_uid_with_base64_patch() {
        let body = review(
            "CREATE",
            None,
            json!({"spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
        );
        let review = Review::decode(&body).expect("decodes");
        let policy = policy();
        let decision = decide(&review.request, &policy, None);
        let out: Value = serde_json::from_slice(&decision.encode(&review)).expect("json");
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(
            out["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(out["response"]["allowed"], true);
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        assert_eq!(
            out["response"]["auditAnnotations"]["injected-secrets"],
            "hub"
        );
        let patch = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().expect("string"))
            .expect("base64");
        let patch: Value = serde_json::from_slice(&patch).expect("patch json");
        assert_eq!(patch[0]["path"], "/spec/imagePullSecrets");
    }

    #[test]
    fn mirror_pods_are_left_alone() {
        let policy = policy();
        for annotations in [
            json!({"kubernetes.io/config.mirror": "8c5f0a", "kubernetes.io/config.source": "file"}),
            json!({"a": {"nested": ["ignored"]}, "kubernetes.io/config.mirror": ""}),
        ] {
            let body = review(
                "CREATE",
                None,
                json!({"metadata": {"name": "etcd-node1", "annotations": annotations},
                       "spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
            );
            let review = Review::decode(&body).expect("decodes");
            let decision = decide(&review.request, &policy, None);
            assert_eq!(decision.outcome, Outcome::Skipped);
            assert!(decision.patch.is_none());
            assert!(decision.warnings.is_empty(), "{:?}", decision.warnings);
        }
        // Other annotations (or none, or null) do not change anything.
        for metadata in [
            json!({"annotations": {"kubernetes.io/config.source": "api"}}),
            json!({"annotations": null}),
            json!({}),
        ] {
            let body = review(
                "CREATE",
                None,
                json!({"metadata": metadata, "spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
            );
            let review = Review::decode(&body).expect("decodes");
            let decision = decide(&review.request, &policy, None);
            assert_eq!(decision.outcome, Outcome::Patched, "{metadata}");
        }
    }

    #[test]
    fn update_lacking_a_secret_is_warned_not_patched() {
        let body = review(
            "UPDATE",
            None,
            json!({"spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
        );
        let review = Review::decode(&body).expect("decodes");
        let policy = policy();
        let decision = decide(&review.request, &policy, None);
        assert!(decision.patch.is_none());
        assert!(
            decision.warnings[0].contains("lacks imagePullSecrets hub"),
            "{:?}",
            decision.warnings
        );
    }
}
