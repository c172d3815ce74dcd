//! `audit`'s findings for one Pod: which of its images will fail to pull,
//! or get no secret the policy gives them, and why (DESIGN §9).
//!
//! [`findings`] is pure: the Pod's spec, the facts of its namespace (name,
//! labels, its Secrets reduced to [`SecretFacts`]) and the policy in;
//! [`Finding`]s out, per container image, in container order. Which rules
//! and secrets an image gets is asked of [`crate::core::query`], the one
//! place that answers it. Nothing here sees a secret's value.

use std::collections::BTreeMap;
use std::fmt;

use super::credentials::{DockerConfig, Keyring};
use super::image;
use super::pod::{ContainerView, PodSpecView};
use super::policy::{CompiledPolicy, NamespaceFacts};
use super::query::{self, Grant, Scope};
use super::reconcile::PULL_SECRET_TYPES;

/// What is wrong with one container image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingKind {
    /// The policy gives the image a secret the Pod does not list.
    MissingSecretRef,
    /// The Pod lists a secret that does not exist in its namespace.
    SecretNotFound,
    /// The Pod lists a secret whose type the kubelet does not read.
    SecretWrongType,
    /// The image matches a rule, but no pull secret of the Pod has a key the
    /// kubelet would use for it.
    NoCredentials,
    /// The image reference does not parse.
    InvalidImage,
}

impl FindingKind {
    /// The name used in output (`missing-secret-ref`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::MissingSecretRef => "missing-secret-ref",
            FindingKind::SecretNotFound => "secret-not-found",
            FindingKind::SecretWrongType => "secret-wrong-type",
            FindingKind::NoCredentials => "no-credentials",
            FindingKind::InvalidImage => "invalid-image",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about one container image of a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The container's name.
    pub container: String,
    /// The image as the spec writes it.
    pub image: String,
    /// What is wrong.
    pub kind: FindingKind,
    /// The secret concerned, when one is.
    pub secret: Option<String>,
    /// A sentence for the operator; names and keys only, never values.
    pub detail: String,
}

/// What `audit` keeps of one Secret: its type and, for a pull secret, the
/// `auths` keys of its docker config. Never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFacts {
    /// The Secret's `type` (`Opaque` when the API omits it).
    pub secret_type: String,
    /// For a pull secret: its docker config's keys, or why the kubelet
    /// cannot read it (the message names fields, never values).
    pub config: Option<Result<DockerConfig, String>>,
}

impl SecretFacts {
    /// Whether the kubelet reads pull credentials from a Secret of this type.
    pub fn is_pull_secret(&self) -> bool {
        PULL_SECRET_TYPES.contains(&self.secret_type.as_str())
    }
}

/// The Secrets of one namespace, by name.
pub type Secrets = BTreeMap<String, SecretFacts>;

/// A Pod as `audit` sees it.
#[derive(Debug, Clone, Copy)]
pub struct AuditedPod<'s, 'a> {
    /// The kubelet's mirror of a static pod: it pulls from its own
    /// manifest, never with this object's pull secrets, so it has no
    /// findings (the webhook leaves it alone too).
    pub mirror: bool,
    /// The spec: containers and `imagePullSecrets`.
    pub spec: &'s PodSpecView<'a>,
}

/// One image of the Pod, parsed and matched once.
struct Image<'s, 'p> {
    container: &'s str,
    image: &'s str,
    /// The rules and secrets the policy gives it, or why it does not parse.
    grant: Result<Grant<'p>, image::ParseImageRefError>,
}

/// The findings for every container image of `pod` in the namespace `ns`,
/// whose Secrets are `secrets`.
///
/// For each image, in the order `containers`, `initContainers`,
/// `ephemeralContainers`:
/// - `invalid-image` when the reference does not parse (nothing else is
///   said of it);
/// - `missing-secret-ref` for each secret the policy gives it that the Pod
///   does not list;
/// - `secret-not-found` / `secret-wrong-type` (also: a pull secret whose
///   content the kubelet cannot read) for each secret the Pod lists
///   that concerns the image and is missing or not a pull secret. A listed
///   secret concerns the images the policy gives it to; one the policy gives
///   to none of the Pod's images (added by hand, or by the ServiceAccount)
///   concerns every image, since the kubelet offers every pull secret to
///   every image;
/// - `no-credentials` when some rule matches the image but the kubelet's
///   keyring of the Pod's readable pull secrets ([`Keyring`]) has no key
///   for it.
pub fn findings(
    policy: &CompiledPolicy,
    ns: &NamespaceFacts<'_>,
    pod: &AuditedPod<'_, '_>,
    secrets: &Secrets,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if pod.mirror {
        return out;
    }
    let spec = pod.spec;
    let images: Vec<Image<'_, '_>> = [
        &spec.containers,
        &spec.init_containers,
        &spec.ephemeral_containers,
    ]
    .into_iter()
    .flat_map(|group: &Vec<ContainerView<'_>>| group.iter())
    .filter_map(|c| {
        let image = c.image.as_deref()?;
        let grant = image::parse(image)
            .map(|reference| query::secrets_for(policy, &reference, Scope::Namespace(ns)));
        Some(Image {
            container: &c.name,
            image,
            grant,
        })
    })
    .collect();

    // The Pod's pull secrets, in order, without duplicates or empty names.
    let mut listed: Vec<&str> = Vec::new();
    for name in spec
        .image_pull_secrets
        .iter()
        .flatten()
        .filter_map(|r| r.name.as_deref())
    {
        if !name.is_empty() && !listed.contains(&name) {
            listed.push(name);
        }
    }
    let given_to_some_image = |secret: &str| {
        images
            .iter()
            .any(|i| i.grant.as_ref().is_ok_and(|g| g.secrets.contains(&secret)))
    };
    let unattributed: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|s| !given_to_some_image(s))
        .collect();

    // The kubelet's keyring for the Pod: its readable pull secrets, in the
    // Pod's order.
    let configs: Vec<&DockerConfig> = listed
        .iter()
        .filter_map(|name| secrets.get(*name)?.config.as_ref()?.as_ref().ok())
        .collect();
    let keyring = Keyring::new(configs);

    for img in &images {
        let finding = |kind, secret: Option<&str>, detail: String| Finding {
            container: img.container.to_owned(),
            image: img.image.to_owned(),
            kind,
            secret: secret.map(str::to_owned),
            detail,
        };
        let grant = match &img.grant {
            Ok(grant) => grant,
            Err(err) => {
                out.push(finding(
                    FindingKind::InvalidImage,
                    None,
                    format!("not a valid image reference: {err}"),
                ));
                continue;
            }
        };
        for (secret, rule) in grant.secrets.iter().zip(&grant.secret_rules) {
            if !listed.contains(secret) {
                out.push(finding(
                    FindingKind::MissingSecretRef,
                    Some(secret),
                    format!(
                        "rule {rule:?} gives this image the secret, but the pod does not list it (created before the webhook, or not through it); recreate the pod"
                    ),
                ));
            }
        }
        for secret in listed
            .iter()
            .copied()
            .filter(|s| grant.secrets.contains(s) || unattributed.contains(s))
        {
            match secrets.get(secret) {
                None => out.push(finding(
                    FindingKind::SecretNotFound,
                    Some(secret),
                    format!(
                        "the pod lists it, but namespace {:?} has no Secret of that name",
                        ns.name
                    ),
                )),
                Some(facts) if !facts.is_pull_secret() => out.push(finding(
                    FindingKind::SecretWrongType,
                    Some(secret),
                    format!(
                        "its type is {:?}; the kubelet reads pull credentials only from {} Secrets",
                        facts.secret_type,
                        PULL_SECRET_TYPES.join(" or ")
                    ),
                )),
                Some(SecretFacts {
                    config: Some(Err(err)),
                    ..
                }) => out.push(finding(
                    FindingKind::SecretWrongType,
                    Some(secret),
                    format!(
                        "its docker config is not what the kubelet accepts ({err}); the kubelet fails every pull of the pod"
                    ),
                )),
                Some(_) => {}
            }
        }
        if !grant.rules.is_empty() {
            let found = keyring.lookup(img.image).map(|c| c.len()).unwrap_or(0);
            if found == 0 {
                out.push(finding(
                    FindingKind::NoCredentials,
                    None,
                    no_credentials(&listed, secrets, grant),
                ));
            }
        }
    }
    out
}

/// Why an image that matches a rule gets no credentials: which pull
/// secrets were there, and their keys (names, never values).
fn no_credentials(listed: &[&str], secrets: &Secrets, grant: &Grant<'_>) -> String {
    let usable: Vec<String> = listed
        .iter()
        .filter_map(|name| match secrets.get(*name)?.config.as_ref()? {
            Ok(config) => Some(format!("{name} [{}]", config.keys().join(", "))),
            Err(_) => None,
        })
        .collect();
    if usable.is_empty() {
        format!(
            "rules {} match the image, but the pod has no readable pull secret",
            grant.rules.join(", ")
        )
    } else {
        format!(
            "rules {} match the image, but no auths key of the pod's pull secrets is one the kubelet would use for it: {}",
            grant.rules.join(", "),
            usable.join("; ")
        )
    }
}

#[cfg(test)]
mod tests;
