//! The admission decision: what to answer for one review.
//!
//! [`decide`] turns a decoded request, the policy and the namespace's labels
//! into a [`Decision`]: skip, or [`plan`] the pull secrets every image of
//! the Pod gets and patch in those it lacks, with warnings for the user.
//! The wire format lives in [`crate::core::review`], the Pod's fields in
//! [`crate::core::pod`]; this module holds the rules and the messages.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use smallvec::SmallVec;

use super::image;
use super::patch;
use super::pod::{ContainerView, PodView};
use super::policy::{CompiledPolicy, NamespaceFacts};
use super::query::{self, Matches, Names};
use super::redact;
use super::review::{AuditAnnotations, Object, Request, Review};

/// Warnings longer than this are cut; kube-apiserver cuts them at 256
/// characters anyway once all of them together pass 4 KiB.
const MAX_WARNING_CHARS: usize = 256;
/// At most this many warnings per review, so a pod with hundreds of broken
/// images cannot produce an oversized response.
const MAX_WARNINGS: usize = 12;

/// A count for each of a few rules, kept inline like [`Names`].
pub type PerRule<'p> = SmallVec<[(&'p str, usize); 4]>;

/// What kind of decision the request calls for.
pub fn action(request: &Request<'_>) -> Action {
    if !request.is_pod() {
        return Action::Skip;
    }
    match (request.operation.as_ref(), request.sub_resource.as_deref()) {
        ("CREATE", None | Some("")) => Action::Mutate,
        ("UPDATE", None | Some("")) => Action::Warn(Scope::AllContainers),
        ("UPDATE", Some("ephemeralcontainers")) => Action::Warn(Scope::EphemeralOnly),
        _ => Action::Skip,
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
    /// Report-only mode: a patch was due but not returned; the secrets it
    /// would have added are in the `would-inject-secrets` audit annotation.
    Reported,
}

impl Outcome {
    /// A lowercase label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Patched => "patched",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::Reported => "reported",
        }
    }
}

/// The answer to one review: names from the policy (`'p`) and from the
/// request (`'r`).
#[derive(Debug)]
pub struct Decision<'p, 'r> {
    /// How it ended.
    pub outcome: Outcome,
    /// Rules that matched.
    pub rules: Names<'p>,
    /// Secrets added by the patch.
    pub added: Names<'p>,
    /// How many added secrets each rule brought (for metrics).
    pub added_by_rule: PerRule<'p>,
    /// The pod's name, or its `generateName`, for logs.
    pub pod: Cow<'r, str>,
    /// The JSON Patch, if any.
    pub patch: Option<String>,
    /// Warnings for the user.
    pub warnings: Vec<String>,
    /// Images no rule matched.
    pub unmatched_images: usize,
}

/// Decides a review: the namespace's labels (`None` when unknown) feed
/// namespace selectors.
pub fn decide<'p, 'r>(
    request: &'r Request<'_>,
    policy: &'p CompiledPolicy,
    labels: Option<&BTreeMap<String, String>>,
) -> Decision<'p, 'r> {
    let mut decision = Decision {
        outcome: Outcome::Skipped,
        rules: Names::new(),
        added: Names::new(),
        added_by_rule: PerRule::new(),
        pod: Cow::Borrowed(""),
        patch: None,
        warnings: Vec::new(),
        unmatched_images: 0,
    };
    let action = action(request);
    let scope = match action {
        Action::Skip => return decision,
        Action::Mutate => Scope::AllContainers,
        Action::Warn(scope) => scope,
    };
    // The object was read as a Pod with the request unless `kind` came
    // after it in the body; then it is read now.
    let parsed: PodView<'_>;
    let pod: &PodView<'_> = match &request.object {
        Some(Object::Pod(pod)) => {
            decision.pod = Cow::Borrowed(pod.metadata.display_name());
            pod
        }
        Some(Object::Raw(raw)) => match PodView::from_json(raw) {
            Ok(pod) => {
                parsed = pod;
                decision.pod = Cow::Owned(parsed.metadata.display_name().to_owned());
                &parsed
            }
            Err(err) => return unreadable_pod(decision, &err.to_string()),
        },
        None => return unreadable_pod(decision, "the request has no object"),
    };
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
    let mut plan = plan(pod, &facts, policy, scope);
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
        decision.warnings.push(clean_warning(&format!(
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
fn unreadable_pod<'p, 'r>(mut decision: Decision<'p, 'r>, err: &str) -> Decision<'p, 'r> {
    decision.warnings.push(clean_warning(&format!(
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

impl Decision<'_, '_> {
    /// The same decision in report-only mode (`serve --report-only`): a
    /// patch that was due is dropped and the outcome becomes
    /// [`Outcome::Reported`]; `added` keeps the secrets it would have added,
    /// for the log line, the metrics and the `would-inject-secrets` audit
    /// annotation. Warnings stay as they are.
    pub fn into_report(mut self) -> Self {
        if self.outcome == Outcome::Patched {
            self.outcome = Outcome::Reported;
            self.patch = None;
        }
        self
    }

    /// Writes the response AdmissionReview for `review`.
    pub fn encode(&self, review: &Review<'_>) -> Vec<u8> {
        let joined = (!self.added.is_empty()).then(|| self.added.join(","));
        let annotations = if self.outcome == Outcome::Reported {
            AuditAnnotations {
                injected_secrets: None,
                would_inject_secrets: joined,
            }
        } else {
            AuditAnnotations {
                injected_secrets: joined,
                would_inject_secrets: None,
            }
        };
        review.respond(self.patch.as_deref(), &self.warnings, &annotations)
    }
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
    pub rules: Names<'p>,
    /// Every secret the matching rules ask for: rule order, then secret
    /// order, without duplicates.
    pub wanted: Names<'p>,
    /// For each entry of `wanted`, the first rule that asked for it.
    pub wanted_from: Names<'p>,
    /// The wanted secrets that the pod does not list yet, in `wanted` order.
    pub missing: Names<'p>,
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

    let mut matches = Matches::default();
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
            if !matches.add(policy, &reference, query::Scope::Namespace(ns)) {
                out.unmatched_images += 1;
            }
        }
    }

    let grant = matches.grant(policy);
    out.rules = grant.rules;
    out.wanted = grant.secrets;
    out.wanted_from = grant.secret_rules;
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

    for rule in matches.unknown_selectors(policy) {
        push_warning(
            &mut out.warnings,
            Warning::UnknownLabels {
                rule,
                namespace: ns.name,
            },
        );
    }
    out
}

impl<'p> Plan<'p> {
    /// How many of the missing secrets each rule brings, attributing a
    /// secret to the first rule that asks for it.
    pub fn missing_by_rule(&self) -> PerRule<'p> {
        let mut counts = PerRule::new();
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
            } => {
                // The user sees this; an image written with credentials
                // (`user:pw@host/…`) is echoed without them.
                let err = err.to_string();
                write!(
                    f,
                    "pull-secret-injector: {what} {container:?}: image {:?} is not a valid reference ({}); no pull secret added for it",
                    redact::image(image),
                    redact::credentials_of(image, &err)
                )
            }
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
mod tests;
