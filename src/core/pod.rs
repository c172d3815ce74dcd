//! The Pod as the webhook reads it: only the fields a decision needs
//! (names for logs, the mirror-pod annotation, container images and the
//! existing `spec.imagePullSecrets`), deserialized borrowing from the
//! request body so that a review costs no copy of the Pod.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use super::json::{JsonError, Reader, first_time};

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

// The request path's readers of the same types: same meaning as the
// derived `Deserialize` above (checked against it in `core::review`'s tests
// and the `review` fuzz target), several times faster (see `core::json`).

impl<'a> PodView<'a> {
    /// Reads a Pod from its JSON text (nothing may follow it).
    pub fn from_json(text: &'a str) -> Result<Self, JsonError> {
        let mut r = Reader::new(text.as_bytes());
        let pod = PodView::read(&mut r)?;
        r.end()?;
        Ok(pod)
    }

    /// Reads a Pod object.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        r.begin_object("a Pod object")?;
        let (mut seen, mut metadata, mut spec) = (0, None, None);
        while let Some(key) = r.next_key()? {
            match &*key {
                b"metadata" => {
                    first_time(&mut seen, 0, "metadata")?;
                    metadata = Some(PodMeta::read(r)?);
                }
                b"spec" => {
                    first_time(&mut seen, 1, "spec")?;
                    spec = Some(PodSpecView::read(r)?);
                }
                _ => r.skip()?,
            }
        }
        Ok(PodView {
            metadata: metadata.unwrap_or_default(),
            spec: spec.ok_or(JsonError::Missing("spec"))?,
        })
    }
}

impl<'a> PodMeta<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        r.begin_object("the Pod's metadata (an object)")?;
        let mut seen = 0;
        let mut meta = PodMeta::default();
        while let Some(key) = r.next_key()? {
            match &*key {
                b"name" => {
                    first_time(&mut seen, 0, "name")?;
                    meta.name = r.optional_string("a string name")?;
                }
                b"generateName" => {
                    first_time(&mut seen, 1, "generateName")?;
                    meta.generate_name = r.optional_string("a string generateName")?;
                }
                b"namespace" => {
                    first_time(&mut seen, 2, "namespace")?;
                    meta.namespace = r.optional_string("a string namespace")?;
                }
                b"annotations" => {
                    first_time(&mut seen, 3, "annotations")?;
                    meta.annotations = AnnotationsView::read(r)?;
                }
                _ => r.skip()?,
            }
        }
        Ok(meta)
    }
}

impl AnnotationsView {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        let mut view = AnnotationsView::default();
        if r.null()? {
            return Ok(view);
        }
        r.begin_object("a map of annotations")?;
        while let Some(key) = r.next_key()? {
            view.mirror |= *key == *MIRROR_POD_ANNOTATION.as_bytes();
            r.skip()?;
        }
        Ok(view)
    }
}

impl<'a> PodSpecView<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        r.begin_object("the Pod's spec (an object)")?;
        let mut seen = 0;
        let mut spec = PodSpecView::default();
        while let Some(key) = r.next_key()? {
            match &*key {
                b"containers" => {
                    first_time(&mut seen, 0, "containers")?;
                    spec.containers = read_list(r, ContainerView::read)?.unwrap_or_default();
                }
                b"initContainers" => {
                    first_time(&mut seen, 1, "initContainers")?;
                    spec.init_containers = read_list(r, ContainerView::read)?.unwrap_or_default();
                }
                b"ephemeralContainers" => {
                    first_time(&mut seen, 2, "ephemeralContainers")?;
                    spec.ephemeral_containers =
                        read_list(r, ContainerView::read)?.unwrap_or_default();
                }
                b"imagePullSecrets" => {
                    first_time(&mut seen, 3, "imagePullSecrets")?;
                    spec.image_pull_secrets = read_list(r, SecretRef::read)?;
                }
                _ => r.skip()?,
            }
        }
        Ok(spec)
    }
}

/// A list, or `None` for `null`.
fn read_list<'a, T>(
    r: &mut Reader<'a>,
    item: fn(&mut Reader<'a>) -> Result<T, JsonError>,
) -> Result<Option<Vec<T>>, JsonError> {
    if r.null()? {
        return Ok(None);
    }
    r.begin_array("a list")?;
    let mut list = Vec::new();
    while r.next_element()? {
        list.push(item(r)?);
    }
    Ok(Some(list))
}

impl<'a> ContainerView<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        r.begin_object("a container (an object)")?;
        let mut seen = 0;
        let mut container = ContainerView {
            name: Cow::Borrowed(""),
            image: None,
        };
        while let Some(key) = r.next_key()? {
            match &*key {
                b"name" => {
                    first_time(&mut seen, 0, "name")?;
                    container.name = r.string("a string name")?;
                }
                b"image" => {
                    first_time(&mut seen, 1, "image")?;
                    container.image = r.optional_string("a string image")?;
                }
                _ => r.skip()?,
            }
        }
        Ok(container)
    }
}

impl<'a> SecretRef<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, JsonError> {
        r.begin_object("an imagePullSecrets entry (an object)")?;
        let mut seen = 0;
        let mut entry = SecretRef { name: None };
        while let Some(key) = r.next_key()? {
            match &*key {
                b"name" => {
                    first_time(&mut seen, 0, "name")?;
                    entry.name = r.optional_string("a string name")?;
                }
                _ => r.skip()?,
            }
        }
        Ok(entry)
    }
}
