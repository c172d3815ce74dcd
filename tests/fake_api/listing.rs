//! Read-only resources that are listed in pages: Pods, Secrets,
//! ReplicaSets, Deployments, Jobs and CronJobs, with `get` and `list` as
//! kube-apiserver serves them from etcd.
//!
//! - A list returns items in key order (namespace, then name), across all
//!   namespaces for a cluster-scoped path (`/api/v1/pods`).
//! - `limit` cuts the list; the answer then carries an opaque
//!   `metadata.continue` token and `remainingItemCount`, and a request with
//!   that token resumes after the last item returned. A token that is not
//!   one the fake handed out is refused with 400, as the apiserver does.
//! - Metadata-only Accept headers are honoured like for the other kinds.
//! - Every list request is recorded with its limit and token
//!   ([`FakeApi::list_requests`]), so tests can prove pages were asked for
//!   and followed.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{
    Attributes, FakeApi, META_GROUP_VERSION, Target, negotiate, render, render_item, status,
};

/// The resources served here: (group, resource, list kind).
const RESOURCES: [(&str, &str, &str); 6] = [
    ("", "pods", "PodList"),
    ("", "secrets", "SecretList"),
    ("apps", "replicasets", "ReplicaSetList"),
    ("apps", "deployments", "DeploymentList"),
    ("batch", "jobs", "JobList"),
    ("batch", "cronjobs", "CronJobList"),
];

/// Whether `group`/`resource` is one of ours.
pub fn serves(group: &str, resource: &str) -> bool {
    RESOURCES
        .iter()
        .any(|(g, r, _)| *g == group && *r == resource)
}

/// One list request as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRequest {
    pub resource: String,
    /// "" for all namespaces.
    pub namespace: String,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// Items returned.
    pub returned: usize,
}

/// The stored objects, by resource, then (namespace, name).
#[derive(Default)]
pub struct Objects {
    by_resource: BTreeMap<String, BTreeMap<(String, String), Value>>,
    lists: Vec<ListRequest>,
    gets: Vec<String>,
}

fn token_for(key: &(String, String)) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("fake-continue:{}/{}", key.0, key.1))
}

fn key_of(token: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (ns, name) = text.strip_prefix("fake-continue:")?.split_once('/')?;
    Some((ns.to_owned(), name.to_owned()))
}

impl FakeApi {
    /// Stores `object` (which names its namespace and name) as `resource`
    /// (e.g. `pods`, `replicasets`), replacing any object of that name.
    pub fn put_object(&self, resource: &str, mut object: Value) {
        assert!(
            RESOURCES.iter().any(|(_, r, _)| *r == resource),
            "the fake does not serve {resource}"
        );
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        let uid = inner.next_uid();
        drop(inner);
        let meta = &mut object["metadata"];
        let key = (
            meta["namespace"].as_str().expect("namespace").to_owned(),
            meta["name"].as_str().expect("name").to_owned(),
        );
        meta["resourceVersion"] = json!(rv);
        meta["uid"] = json!(uid);
        meta["creationTimestamp"] = json!(super::CREATED_AT);
        self.listing
            .lock()
            .unwrap()
            .by_resource
            .entry(resource.to_owned())
            .or_default()
            .insert(key, object);
    }

    /// Every list request of a listed resource, in order.
    pub fn list_requests(&self) -> Vec<ListRequest> {
        self.listing.lock().unwrap().lists.clone()
    }

    /// Every get of a listed resource, as `resource namespace/name`.
    pub fn object_gets(&self) -> Vec<String> {
        self.listing.lock().unwrap().gets.clone()
    }
}

/// get and list of the resources above.
pub fn read(
    fake: &FakeApi,
    what: &str,
    request: &Attributes,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    if !matches!(request.verb, "get" | "list") {
        return fake.problem(
            what,
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the fake API does not {} {}",
                request.verb, request.resource
            ),
            None,
        );
    }
    for unsupported in ["fieldSelector", "labelSelector", "resourceVersion"] {
        if query.contains_key(unsupported) {
            return fake.problem(
                what,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "the fake API does not support {unsupported} on {}",
                    request.resource
                ),
                None,
            );
        }
    }
    let target = match negotiate(headers) {
        Ok(target) => target,
        Err(message) => {
            return fake.problem(
                what,
                StatusCode::NOT_ACCEPTABLE,
                "NotAcceptable",
                message,
                None,
            );
        }
    };
    let mut listing = fake.listing.lock().unwrap();
    let empty = BTreeMap::new();
    let store = listing.by_resource.get(&request.resource).unwrap_or(&empty);

    if request.verb == "get" {
        let key = (request.namespace.clone(), request.name.clone());
        let answer = match store.get(&key) {
            Some(object) => axum::Json(render(object, target)).into_response(),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} {:?} not found", request.resource, request.name),
                Some(json!({"name": request.name, "kind": request.resource})),
            ),
        };
        listing.gets.push(format!(
            "{} {}/{}",
            request.resource, request.namespace, request.name
        ));
        return answer;
    }

    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => None,
        Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            drop(listing);
            return fake.problem(
                what,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "invalid limit".into(),
                None,
            );
        }
    };
    let token = query.get("continue").cloned();
    let after = match token.as_deref().map(key_of) {
        None => None,
        Some(Some(key)) => Some(key),
        Some(None) => {
            drop(listing);
            return fake.problem(
                what,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "continue key is not valid: illegal base64 data".into(),
                None,
            );
        }
    };
    let selected: Vec<(&(String, String), &Value)> = store
        .iter()
        .filter(|(key, _)| request.namespace.is_empty() || key.0 == request.namespace)
        .filter(|(key, _)| after.as_ref().is_none_or(|a| *key > a))
        .collect();
    let take = limit.unwrap_or(selected.len()).min(selected.len());
    let remaining = selected.len() - take;
    let items: Vec<Value> = selected[..take]
        .iter()
        .map(|(_, o)| render_item(o, target))
        .collect();
    let mut metadata = json!({"resourceVersion": "100"});
    if remaining > 0 {
        metadata["continue"] = json!(token_for(selected[take - 1].0));
        metadata["remainingItemCount"] = json!(remaining);
    }
    let (group, _, list_kind) = RESOURCES
        .iter()
        .find(|(_, r, _)| *r == request.resource)
        .copied()
        .unwrap_or(("", "", "List"));
    let (api_version, kind) = match target {
        Target::Full if group.is_empty() => ("v1".to_owned(), list_kind),
        Target::Full => (format!("{group}/v1"), list_kind),
        Target::Metadata | Target::MetadataList => {
            (META_GROUP_VERSION.to_owned(), "PartialObjectMetadataList")
        }
    };
    listing.lists.push(ListRequest {
        resource: request.resource.clone(),
        namespace: request.namespace.clone(),
        limit,
        continue_token: token,
        returned: items.len(),
    });
    axum::Json(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "items": items,
    }))
    .into_response()
}
