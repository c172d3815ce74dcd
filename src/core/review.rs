//! The AdmissionReview codec: request bytes in, response bytes out.
//!
//! [`Review::decode`] reads only what the decision needs from the request
//! body in one pass, borrowing strings from it: the object is read as a Pod
//! right away when the request says Pod, and otherwise stays raw JSON.
//! [`Review::respond`] writes the response review: same `apiVersion`, same
//! `uid`, `patchType: JSONPatch` and the patch as standard base64 (the
//! documented form, not kube-core's byte array). What to answer is decided
//! in [`crate::core::decide`]; this module only reads and writes the wire
//! format.

use std::borrow::Cow;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::json::{self, JsonError, Reader, first_time};
use super::pod::PodView;

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
    Json(JsonError),
    /// The same, found by [`Review::decode_reference`].
    #[error("request body is not an AdmissionReview: {0}")]
    Serde(serde_json::Error),
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
    /// `resource`; kube-apiserver always sends it.
    pub resource: Option<GroupVersionResource<'a>>,
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
    /// Not read yet: the object's JSON text.
    Raw(&'a str),
}

/// A string borrowed from the body when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The `request` keys we read; everything else is skipped.
#[derive(Clone, Copy)]
enum Field {
    Uid,
    Kind,
    Resource,
    SubResource,
    Operation,
    Namespace,
    DryRun,
    Object,
    Other,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Uid => "uid",
            Field::Kind => "kind",
            Field::Resource => "resource",
            Field::SubResource => "subResource",
            Field::Operation => "operation",
            Field::Namespace => "namespace",
            Field::DryRun => "dryRun",
            Field::Object => "object",
            Field::Other => "",
        }
    }
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
                    "resource" => Field::Resource,
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
                    resource: None,
                    sub_resource: None,
                    operation: Cow::Borrowed(""),
                    namespace: None,
                    dry_run: None,
                    object: None,
                };
                let mut uid = None;
                // Duplicate keys are refused, like everywhere else in the
                // review (serde's derived readers refuse them too): Go's
                // encoding/json would take the last one, and kube-apiserver
                // never writes any, so a body with duplicates was not
                // written by it and gets a 400 rather than a guess.
                let mut seen = 0u16;
                while let Some(field) = map.next_key::<Field>()? {
                    if !matches!(field, Field::Other) {
                        let bit = 1u16 << (field as u16);
                        if seen & bit != 0 {
                            return Err(serde::de::Error::duplicate_field(field.name()));
                        }
                        seen |= bit;
                    }
                    match field {
                        Field::Uid => uid = text(map.next_value()?),
                        Field::Kind => {
                            request.kind = map.next_value::<Option<_>>()?.unwrap_or_default()
                        }
                        Field::Resource => request.resource = map.next_value()?,
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
                            request.object = map
                                .next_value::<Option<&'de RawValue>>()?
                                .map(|raw| Object::Raw(raw.get()));
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

/// `request.resource`.
#[derive(Debug, Default, Deserialize)]
pub struct GroupVersionResource<'a> {
    /// API group; empty for core.
    #[serde(default, borrow)]
    pub group: Cow<'a, str>,
    /// API version.
    #[serde(default, borrow)]
    pub version: Cow<'a, str>,
    /// Resource, e.g. `pods`.
    #[serde(default, borrow)]
    pub resource: Cow<'a, str>,
}

impl<'a> Review<'a> {
    /// Reads an AdmissionReview from a request body, with the fast reader
    /// of [`crate::core::json`].
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeReviewError> {
        let mut r = Reader::new(body);
        let raw = RawReview::read(&mut r).map_err(DecodeReviewError::Json)?;
        r.end().map_err(DecodeReviewError::Json)?;
        Review::check(raw)
    }

    /// The same with serde's derived readers: the reference the fast
    /// reader is checked against (unit tests, the `review` fuzz target).
    /// Not for the request path.
    #[doc(hidden)]
    pub fn decode_reference(body: &'a [u8]) -> Result<Self, DecodeReviewError> {
        let raw: RawReview<'a> = serde_json::from_slice(body).map_err(DecodeReviewError::Serde)?;
        Review::check(raw)
    }

    fn check(raw: RawReview<'a>) -> Result<Self, DecodeReviewError> {
        let RawReview {
            api_version,
            kind,
            request,
        } = raw;
        let version = match api_version.as_ref() {
            "admission.k8s.io/v1" => Version::V1,
            "admission.k8s.io/v1beta1" => Version::V1Beta1,
            other => return Err(DecodeReviewError::ApiVersion(other.to_owned())),
        };
        if kind != "AdmissionReview" {
            return Err(DecodeReviewError::Kind(kind.into_owned()));
        }
        let request = request.ok_or(DecodeReviewError::NoRequest)?;
        if request.uid.is_empty() {
            return Err(DecodeReviewError::EmptyUid);
        }
        Ok(Review { version, request })
    }
}

impl<'a> RawReview<'a> {
    /// The review object: `apiVersion`, `kind` and `request`.
    fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        r.begin_object("an AdmissionReview object")?;
        let mut seen = 0;
        let mut raw = RawReview {
            api_version: Cow::Borrowed(""),
            kind: Cow::Borrowed(""),
            request: None,
        };
        while let Some(key) = r.next_key()? {
            match &*key {
                b"apiVersion" => {
                    first_time(&mut seen, 0, "apiVersion")?;
                    raw.api_version = r.string("a string apiVersion")?;
                }
                b"kind" => {
                    first_time(&mut seen, 1, "kind")?;
                    raw.kind = r.string("a string kind")?;
                }
                b"request" => {
                    first_time(&mut seen, 2, "request")?;
                    if !r.null()? {
                        raw.request = Some(Request::read(r)?);
                    }
                }
                _ => r.skip()?,
            }
        }
        Ok(raw)
    }
}

impl<'a> Request<'a> {
    /// Reads `request`: the fields the decision needs, the object as a Pod
    /// when `kind` and `resource` already said Pod (kube-apiserver writes
    /// them first), else as raw JSON.
    fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        r.begin_object("an AdmissionReview request (an object)")?;
        let mut seen = 0;
        let mut uid = None;
        let mut request = Request {
            uid: Cow::Borrowed(""),
            kind: GroupVersionKind::default(),
            resource: None,
            sub_resource: None,
            operation: Cow::Borrowed(""),
            namespace: None,
            dry_run: None,
            object: None,
        };
        while let Some(key) = r.next_key()? {
            let field = match &*key {
                b"uid" => Field::Uid,
                b"kind" => Field::Kind,
                b"resource" => Field::Resource,
                b"subResource" => Field::SubResource,
                b"operation" => Field::Operation,
                b"namespace" => Field::Namespace,
                b"dryRun" => Field::DryRun,
                b"object" => Field::Object,
                _ => {
                    r.skip()?;
                    continue;
                }
            };
            first_time(&mut seen, field as u32, field.name())?;
            match field {
                Field::Uid => uid = r.optional_string("a string uid")?,
                Field::Kind => {
                    if !r.null()? {
                        request.kind = GroupVersionKind::read(r)?;
                    }
                }
                Field::Resource => {
                    if !r.null()? {
                        request.resource = Some(GroupVersionResource::read(r)?);
                    }
                }
                Field::SubResource => {
                    request.sub_resource = r.optional_string("a string subResource")?;
                }
                Field::Operation => {
                    request.operation =
                        r.optional_string("a string operation")?.unwrap_or_default();
                }
                Field::Namespace => request.namespace = r.optional_string("a string namespace")?,
                Field::DryRun => request.dry_run = r.optional_bool("a boolean dryRun")?,
                Field::Object => {
                    if !r.null()? {
                        request.object = Some(if request.is_pod() {
                            Object::Pod(PodView::read(r)?)
                        } else {
                            Object::Raw(r.raw()?)
                        });
                    }
                }
                Field::Other => r.skip()?,
            }
        }
        request.uid = uid.ok_or(JsonError::Missing("uid"))?;
        Ok(request)
    }
}

impl<'a> GroupVersionKind<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        let [group, version, kind] = read_group_version(r, "kind")?;
        Ok(GroupVersionKind {
            group,
            version,
            kind,
        })
    }
}

impl<'a> GroupVersionResource<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        let [group, version, resource] = read_group_version(r, "resource")?;
        Ok(GroupVersionResource {
            group,
            version,
            resource,
        })
    }
}

/// `{group, version, <third>}` (`kind` or `resource`): the three strings,
/// each empty when absent.
fn read_group_version<'a>(
    r: &mut Reader<'a>,
    third: &'static str,
) -> Result<[Cow<'a, str>; 3], JsonError> {
    r.begin_object("a group/version object")?;
    let mut seen = 0;
    let mut parts = [Cow::Borrowed(""), Cow::Borrowed(""), Cow::Borrowed("")];
    while let Some(key) = r.next_key()? {
        let (bit, name) = match &*key {
            b"group" => (0, "group"),
            b"version" => (1, "version"),
            key if key == third.as_bytes() => (2, third),
            _ => {
                r.skip()?;
                continue;
            }
        };
        first_time(&mut seen, bit, name)?;
        parts[bit as usize] = r.string("a string")?;
    }
    Ok(parts)
}

impl Request<'_> {
    /// True for core Pods reached through the `pods` resource. Another
    /// resource whose kind is Pod is not a Pod the webhook patches (only
    /// `pods` and its subresources are Pods being created or updated); a
    /// review without `resource` (written by hand: kube-apiserver always
    /// sends it) is taken at its kind.
    pub fn is_pod(&self) -> bool {
        self.kind.group.is_empty()
            && self.kind.kind == "Pod"
            && self
                .resource
                .as_ref()
                .is_none_or(|r| r.group.is_empty() && r.resource == "pods")
    }
}

/// `auditAnnotations` of a response; kube-apiserver prefixes each key with
/// the webhook's name.
#[derive(Debug, Default, Serialize)]
pub struct AuditAnnotations {
    /// The secrets the patch adds, comma-separated.
    #[serde(rename = "injected-secrets", skip_serializing_if = "Option::is_none")]
    pub injected_secrets: Option<String>,
    /// In report-only mode: the secrets a patch would have added.
    #[serde(
        rename = "would-inject-secrets",
        skip_serializing_if = "Option::is_none"
    )]
    pub would_inject_secrets: Option<String>,
}

impl AuditAnnotations {
    fn is_empty(&self) -> bool {
        self.injected_secrets.is_none() && self.would_inject_secrets.is_none()
    }
}

impl Review<'_> {
    /// Writes the response AdmissionReview: allowed, with `patch` (a JSON
    /// Patch document) when given, `warnings` and `annotations`.
    pub fn respond(
        &self,
        patch: Option<&str>,
        warnings: &[String],
        annotations: &AuditAnnotations,
    ) -> Vec<u8> {
        // Written field by field into one buffer sized up front (the
        // serde-derived writer this replaces grew its buffer three times and
        // scanned the base64 patch for characters to escape; base64 has
        // none). `tests` checks it against that writer byte for byte.
        let base64 = &base64::engine::general_purpose::STANDARD;
        let patch_len = patch.map_or(0, |p| base64::encoded_len(p.len(), true).unwrap_or(0));
        let annotations_len = [
            &annotations.injected_secrets,
            &annotations.would_inject_secrets,
        ]
        .iter()
        .map(|value| value.as_ref().map_or(0, |v| 32 + v.len()))
        .sum::<usize>();
        let mut out =
            Vec::with_capacity(160 + self.request.uid.len() + patch_len + annotations_len);
        out.extend_from_slice(b"{\"apiVersion\":\"");
        out.extend_from_slice(self.version.as_str().as_bytes());
        out.extend_from_slice(b"\",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
        json::write_string(&mut out, &self.request.uid);
        out.extend_from_slice(b",\"allowed\":true");
        if let Some(patch) = patch {
            out.extend_from_slice(b",\"patchType\":\"JSONPatch\",\"patch\":\"");
            let at = out.len();
            out.resize(at + patch_len, 0);
            let written = base64
                .encode_slice(patch, &mut out[at..])
                .unwrap_or_default();
            out.truncate(at + written);
            out.push(b'"');
        }
        if !warnings.is_empty() {
            out.extend_from_slice(b",\"warnings\":");
            // Writing a string list into memory cannot fail.
            let _ = serde_json::to_writer(&mut out, warnings);
        }
        if !annotations.is_empty() {
            out.extend_from_slice(b",\"auditAnnotations\":");
            let mut separator = b'{';
            for (key, value) in [
                ("injected-secrets", &annotations.injected_secrets),
                ("would-inject-secrets", &annotations.would_inject_secrets),
            ] {
                if let Some(value) = value {
                    out.push(separator);
                    separator = b',';
                    out.push(b'"');
                    out.extend_from_slice(key.as_bytes());
                    out.extend_from_slice(b"\":");
                    json::write_string(&mut out, value);
                }
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"}}");
        out
    }
}

#[cfg(test)]
mod tests;
