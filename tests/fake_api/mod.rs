//! An in-process fake kube-apiserver for the kube edges: list + watch of
//! ConfigMaps and of Namespaces, direct GET of a namespace, and
//! events.k8s.io Events (create, and merge-patch for a series). The test
//! scripts it: edits, deletes, a `410 Gone` on the next watch, dropped
//! watch streams.
//!
//! It is strict where a real cluster would be, so that the webhook cannot
//! pass here and fail there:
//!
//! - Every request is resolved into RequestInfo attributes and authorized
//!   like kube-apiserver's RBAC authorizer, as the webhook's ServiceAccount,
//!   with the Roles, ClusterRoles and bindings of `manifests/base`
//!   ([`rbac`]). For list and watch the name comes from a
//!   `metadata.name=NAME` field selector, which is how `resourceNames`
//!   allows them. A denial is answered `403` with the apiserver's Status and
//!   recorded ([`FakeApi::denials`]).
//! - Objects live in their namespace; list and watch honour the namespace
//!   in the path, `fieldSelector` (`metadata.name`, `metadata.namespace`)
//!   and equality `labelSelector`s.
//! - The Accept header is negotiated as the apiserver does:
//!   `as=PartialObjectMetadataList` (list) and `as=PartialObjectMetadata`
//!   (get, watch) answer metadata only; without it the answer is the full
//!   object. A Namespace request without it is recorded
//!   ([`FakeApi::non_metadata_requests`]).
//! - Events are validated as on create and update (reportingController
//!   `pull-secret-injector`, `regarding` in the Event's namespace, required
//!   fields, immutable fields, the series), and a PATCH must be a merge
//!   patch of an existing Event. Writes are kept in order
//!   ([`FakeApi::event_writes`]).
//!
//! Whatever else the fake has to refuse (an unknown path or verb, a bad
//! body or selector, a wrong media type) is recorded as a problem
//! ([`FakeApi::problems`]). [`FakeApi::assert_clean`] fails on any record.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod audit_rbac;
mod lifecycle;
mod listing;
mod rbac;
mod sync_rbac;
mod writable;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

pub use rbac::{Attributes, Manifests};
#[allow(unused_imports)]
pub use writable::{Resource, b64};

/// The reporting controller every Event must name.
pub const REPORTING_CONTROLLER: &str = "pull-secret-injector";
const CREATED_AT: &str = "2025-01-01T00:00:00Z";
const META_GROUP_VERSION: &str = "meta.k8s.io/v1";

/// One change to a stored object, as the watch history keeps it. The object
/// is kept in full; each watch renders it for its own Accept header.
#[derive(Clone, Debug)]
struct Line {
    resource_version: u64,
    event_type: &'static str,
    object: Value,
}

#[derive(Default)]
struct Store {
    /// Objects by (namespace, name); the namespace is "" when cluster-scoped.
    objects: BTreeMap<(String, String), Value>,
    /// Every change so far, for replay from a resourceVersion.
    history: Vec<Line>,
    /// Answer the next watch with 410 Gone.
    gone_next: bool,
    lists: usize,
    watches: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ConfigMaps,
    Namespaces,
}

impl Kind {
    fn list_kind(self) -> &'static str {
        match self {
            Kind::ConfigMaps => "ConfigMapList",
            Kind::Namespaces => "NamespaceList",
        }
    }

    fn namespaced(self) -> bool {
        self == Kind::ConfigMaps
    }
}

/// How an Event was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventVerb {
    Create,
    Patch,
}

/// One accepted Event write: the request body (the Event for a create, the
/// merge patch for a patch).
#[derive(Clone, Debug)]
pub struct EventWrite {
    pub verb: EventVerb,
    pub namespace: String,
    pub name: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    resource_version: u64,
    uids: u64,
    configmaps: Store,
    namespaces: Store,
    /// Stored Events, in creation order, as patched since.
    events: Vec<Value>,
    event_writes: Vec<EventWrite>,
    denials: Vec<String>,
    non_metadata: Vec<String>,
    problems: Vec<String>,
    namespace_gets: Vec<String>,
}

impl Inner {
    fn store(&mut self, kind: Kind) -> &mut Store {
        match kind {
            Kind::ConfigMaps => &mut self.configmaps,
            Kind::Namespaces => &mut self.namespaces,
        }
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012}", self.uids)
    }
}

/// The fake, shared between the server task and the test.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
    manifests: Arc<Manifests>,
    configmap_tx: broadcast::Sender<Line>,
    namespace_tx: broadcast::Sender<Line>,
    drop_tx: Arc<watch::Sender<u64>>,
    /// Pods, Secrets and workloads, listed in pages ([`listing`]).
    listing: Arc<Mutex<listing::Objects>>,
    /// Its connections, for stop, stall and restart ([`lifecycle`]).
    server: Arc<lifecycle::Server>,
    /// Secrets and Leases ([`writable`]).
    writable: Arc<writable::Writable>,
    pub addr: SocketAddr,
}

impl FakeApi {
    /// A fake that authorizes as the shipped manifests do.
    pub async fn start() -> FakeApi {
        FakeApi::start_with(Manifests::load()).await
    }

    pub async fn start_with(manifests: Manifests) -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeApi {
            inner: Arc::new(Mutex::new(Inner {
                resource_version: 100,
                ..Inner::default()
            })),
            manifests: Arc::new(manifests),
            configmap_tx: broadcast::channel(64).0,
            namespace_tx: broadcast::channel(64).0,
            drop_tx: Arc::new(watch::channel(0).0),
            listing: Arc::default(),
            server: Arc::default(),
            writable: Arc::default(),
            addr,
        };
        lifecycle::serve(&fake.server, listener, fake.router());
        fake
    }

    fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// What the fake read from the manifests: the namespace, the policy
    /// ConfigMap's name, the ServiceAccount and its permissions.
    pub fn manifests(&self) -> &Manifests {
        &self.manifests
    }

    /// A kube client talking to this fake.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn tx(&self, kind: Kind) -> &broadcast::Sender<Line> {
        match kind {
            Kind::ConfigMaps => &self.configmap_tx,
            Kind::Namespaces => &self.namespace_tx,
        }
    }

    /// Stores (or, with `None`, deletes) an object and streams the change.
    /// `build` gets the resourceVersion and the uid to use (kept from the
    /// stored object on an update, new on a create).
    fn record(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        build: Option<&dyn Fn(String, String) -> Value>,
    ) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        let key = (namespace.to_owned(), name.to_owned());
        let existing_uid = inner
            .store(kind)
            .objects
            .get(&key)
            .map(|o| o["metadata"]["uid"].as_str().unwrap_or_default().to_owned());
        let (event_type, object) = match build {
            Some(build) => {
                let (event_type, uid) = match existing_uid {
                    Some(uid) => ("MODIFIED", uid),
                    None => ("ADDED", inner.next_uid()),
                };
                let object = build(rv.clone(), uid);
                inner.store(kind).objects.insert(key, object.clone());
                (event_type, object)
            }
            None => {
                let mut object = inner
                    .store(kind)
                    .objects
                    .remove(&key)
                    .expect("deleting an existing object");
                object["metadata"]["resourceVersion"] = json!(rv);
                ("DELETED", object)
            }
        };
        let line = Line {
            resource_version: inner.resource_version,
            event_type,
            object,
        };
        inner.store(kind).history.push(line.clone());
        let _ = self.tx(kind).send(line);
    }

    /// Creates or replaces the ConfigMap `namespace/name`.
    pub fn put_configmap(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let data: BTreeMap<&str, &str> = data.iter().copied().collect();
        self.record(
            Kind::ConfigMaps,
            namespace,
            name,
            Some(&|rv, uid| {
                json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {
                        "name": name, "namespace": namespace, "uid": uid,
                        "resourceVersion": rv, "creationTimestamp": CREATED_AT,
                    },
                    "data": data,
                })
            }),
        );
    }

    pub fn delete_configmap(&self, namespace: &str, name: &str) {
        self.record(Kind::ConfigMaps, namespace, name, None);
    }

    /// Creates or relabels a namespace.
    pub fn put_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        self.record(
            Kind::Namespaces,
            "",
            name,
            Some(&|rv, uid| namespace_object(name, labels, &rv, &uid)),
        );
    }

    /// Adds a namespace without any watch event (so only a direct GET sees it).
    pub fn put_namespace_silently(&self, name: &str, labels: &[(&str, &str)]) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        let uid = inner.next_uid();
        inner.namespaces.objects.insert(
            (String::new(), name.to_owned()),
            namespace_object(name, labels, &rv, &uid),
        );
    }

    /// The next ConfigMap watch request is answered with 410 Gone, and the
    /// current streams end so the watcher has to come back.
    pub fn expire_configmap_watch(&self) {
        self.inner.lock().unwrap().configmaps.gone_next = true;
        self.drop_watches();
    }

    /// Ends every open watch stream (a dropped connection).
    pub fn drop_watches(&self) {
        self.drop_tx.send_modify(|n| *n += 1);
    }

    /// The stored Events, in creation order, as patched since.
    pub fn events(&self) -> Vec<Value> {
        self.inner.lock().unwrap().events.clone()
    }

    /// Every accepted Event create and patch, in order.
    pub fn event_writes(&self) -> Vec<EventWrite> {
        self.inner.lock().unwrap().event_writes.clone()
    }

    pub fn namespace_gets(&self) -> Vec<String> {
        self.inner.lock().unwrap().namespace_gets.clone()
    }

    /// ConfigMap lists and watches served (authorized ones only).
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        (inner.configmaps.lists, inner.configmaps.watches)
    }

    /// The messages of the requests RBAC denied.
    pub fn denials(&self) -> Vec<String> {
        self.inner.lock().unwrap().denials.clone()
    }

    /// Namespace requests made without the PartialObjectMetadata Accept
    /// header (so answered with full objects).
    pub fn non_metadata_requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().non_metadata.clone()
    }

    /// Other requests the fake refused, and why.
    pub fn problems(&self) -> Vec<String> {
        self.inner.lock().unwrap().problems.clone()
    }

    /// Fails if any request was denied, asked for full Namespaces, or was
    /// refused for another reason.
    pub fn assert_clean(&self) {
        let inner = self.inner.lock().unwrap();
        assert!(
            inner.denials.is_empty(),
            "RBAC denied requests: {:#?}",
            inner.denials
        );
        assert!(
            inner.non_metadata.is_empty(),
            "Namespace requests without the metadata Accept header: {:#?}",
            inner.non_metadata
        );
        assert!(
            inner.problems.is_empty(),
            "requests the fake API refused: {:#?}",
            inner.problems
        );
    }

    /// Answers with a failure Status and records it as a problem.
    fn problem(
        &self,
        request: &str,
        code: StatusCode,
        reason: &str,
        message: String,
        details: Option<Value>,
    ) -> Response {
        self.inner
            .lock()
            .unwrap()
            .problems
            .push(format!("{request}: {} {message}", code.as_u16()));
        status(code, reason, message, details)
    }
}

/// A full Namespace as the apiserver stores it (with the automatic
/// `kubernetes.io/metadata.name` label, an annotation, managedFields, spec
/// and status), so a client that asks for full objects gets them all.
fn namespace_object(name: &str, labels: &[(&str, &str)], rv: &str, uid: &str) -> Value {
    let mut labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    labels.insert("kubernetes.io/metadata.name", name);
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uid,
            "resourceVersion": rv,
            "creationTimestamp": CREATED_AT,
            "labels": labels,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration":
                    format!("{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{name}\"}}}}\n"),
            },
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": CREATED_AT,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {}, "f:labels": {}}},
            }],
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn status(code: StatusCode, reason: &str, message: String, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    (code, axum::Json(body)).into_response()
}

// ---------------------------------------------------------------------------
// Request resolution, as kube-apiserver's RequestInfoFactory does it.

/// The attributes of a resource request, or `None` for a path that is not
/// one (`/api/VERSION/...` or `/apis/GROUP/VERSION/...`).
fn request_info(
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Option<Attributes> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, parts) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    // /namespaces/NS/RESOURCE/... is RESOURCE in NS; /namespaces/NS (and
    // its status and finalize subresources) is the namespace NS, also "in"
    // NS.
    let (namespace, parts) = match parts {
        ["namespaces", ns, rest @ ..]
            if !rest.is_empty() && !matches!(rest[0], "status" | "finalize") =>
        {
            (*ns, rest)
        }
        ["namespaces", ns, ..] => (*ns, parts),
        _ => ("", parts),
    };
    let (resource, name, subresource) = match parts {
        [resource] => (*resource, "", ""),
        [resource, name] => (*resource, *name, ""),
        [resource, name, subresource] => (*resource, *name, *subresource),
        _ => return None,
    };
    if resource.is_empty() {
        return None;
    }
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match *method {
        Method::GET | Method::HEAD if name.is_empty() && watch => "watch",
        Method::GET | Method::HEAD if name.is_empty() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => return None,
    };
    let mut name = name.to_owned();
    if matches!(verb, "list" | "watch")
        && let Some(selected) = query.get("fieldSelector").and_then(|s| exact_name_match(s))
        && !selected.is_empty()
        && !matches!(selected.as_str(), "." | "..")
        && !selected.contains(['/', '%'])
    {
        name = selected;
    }
    Some(Attributes {
        verb,
        group: group.to_owned(),
        version: version.to_owned(),
        resource: resource.to_owned(),
        subresource: subresource.to_owned(),
        namespace: namespace.to_owned(),
        name,
    })
}

// ---------------------------------------------------------------------------
// Selectors.

#[derive(Clone, Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// `fields.Selector.RequiresExactMatch("metadata.name")`.
fn exact_name_match(selector: &str) -> Option<String> {
    parse_field_selector(selector)
        .ok()?
        .into_iter()
        .find_map(|r| match r {
            Requirement::Equals(field, value) if field == "metadata.name" => Some(value),
            _ => None,
        })
}

fn split_requirement(term: &str) -> Option<Requirement> {
    for (op, equals) in [("!=", false), ("==", true), ("=", true)] {
        if let Some((key, value)) = term.split_once(op) {
            let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
            return Some(if equals {
                Requirement::Equals(key, value)
            } else {
                Requirement::NotEquals(key, value)
            });
        }
    }
    None
}

fn parse_field_selector(selector: &str) -> Result<Vec<Requirement>, String> {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|term| {
            split_requirement(term).ok_or_else(|| format!("invalid selector: '{selector}'"))
        })
        .collect()
}

/// Equality-based label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`); the
/// set-based forms are refused rather than ignored.
fn parse_label_selector(selector: &str) -> Result<Vec<Requirement>, String> {
    if selector.contains('(') {
        return Err(format!(
            "the fake API supports only equality label selectors: '{selector}'"
        ));
    }
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|term| {
            if let Some(requirement) = split_requirement(term) {
                return Ok(requirement);
            }
            if term.contains(char::is_whitespace) {
                return Err(format!("unable to parse requirement: '{term}'"));
            }
            Ok(match term.strip_prefix('!') {
                Some(key) => Requirement::NotExists(key.to_owned()),
                None => Requirement::Exists(term.to_owned()),
            })
        })
        .collect()
}

/// What a list or watch selects: a namespace (or all), fields and labels.
#[derive(Clone, Debug)]
struct Filter {
    namespace: String,
    fields: Vec<Requirement>,
    labels: Vec<Requirement>,
}

impl Filter {
    fn from_request(
        kind: Kind,
        request: &Attributes,
        query: &BTreeMap<String, String>,
    ) -> Result<Filter, String> {
        let fields = parse_field_selector(query.get("fieldSelector").map_or("", |s| s))?;
        let supported: &[&str] = match kind {
            Kind::ConfigMaps => &["metadata.name", "metadata.namespace"],
            Kind::Namespaces => &["metadata.name", "metadata.namespace", "status.phase"],
        };
        for requirement in &fields {
            let (Requirement::Equals(field, _) | Requirement::NotEquals(field, _)) = requirement
            else {
                unreachable!("field selectors have no set-based requirements")
            };
            if !supported.contains(&field.as_str()) {
                return Err(format!("field label not supported: {field}"));
            }
        }
        let labels = parse_label_selector(query.get("labelSelector").map_or("", |s| s))?;
        Ok(Filter {
            namespace: if kind.namespaced() {
                request.namespace.clone()
            } else {
                String::new()
            },
            fields,
            labels,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or_default();
        if !self.namespace.is_empty() && namespace != self.namespace {
            return false;
        }
        let field = |name: &str| -> String {
            match name {
                "metadata.name" => meta["name"].as_str().unwrap_or_default().to_owned(),
                "metadata.namespace" => namespace.to_owned(),
                "status.phase" => object["status"]["phase"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                _ => String::new(),
            }
        };
        let fields_match = self.fields.iter().all(|r| match r {
            Requirement::Equals(f, v) => field(f) == *v,
            Requirement::NotEquals(f, v) => field(f) != *v,
            Requirement::Exists(_) | Requirement::NotExists(_) => false,
        });
        let label = |key: &str| meta["labels"][key].as_str();
        let labels_match = self.labels.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        });
        fields_match && labels_match
    }
}

// ---------------------------------------------------------------------------
// Content negotiation.

/// What the Accept header asks the object to be transformed into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Full,
    Metadata,
    MetadataList,
}

fn negotiate(headers: &HeaderMap) -> Result<Target, String> {
    let Some(accept) = headers.get(ACCEPT) else {
        return Ok(Target::Full);
    };
    let accept = accept.to_str().map_err(|e| e.to_string())?;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let mime = parts.next().unwrap_or_default();
        if !matches!(mime, "application/json" | "application/*" | "*/*") {
            continue;
        }
        let params: BTreeMap<&str, &str> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let meta = params.get("g") == Some(&"meta.k8s.io") && params.get("v") == Some(&"v1");
        match params.get("as") {
            None => return Ok(Target::Full),
            Some(&"PartialObjectMetadata") if meta => return Ok(Target::Metadata),
            Some(&"PartialObjectMetadataList") if meta => return Ok(Target::MetadataList),
            Some(_) => continue,
        }
    }
    Err(format!(
        "only the following media types are accepted: application/json, \
         application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, \
         application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1 (Accept: {accept})"
    ))
}

/// One object as the target asks for it.
fn render(object: &Value, target: Target) -> Value {
    match target {
        Target::Full => object.clone(),
        Target::Metadata | Target::MetadataList => json!({
            "apiVersion": META_GROUP_VERSION,
            "kind": "PartialObjectMetadata",
            "metadata": object["metadata"],
        }),
    }
}

/// A list item: in a JSON list the apiserver leaves out each full item's
/// apiVersion and kind (the list's own say it).
fn render_item(object: &Value, target: Target) -> Value {
    let mut item = render(object, target);
    if target == Target::Full
        && let Some(map) = item.as_object_mut()
    {
        map.remove("apiVersion");
        map.remove("kind");
    }
    item
}

// ---------------------------------------------------------------------------
// Handlers.

async fn handle(
    State(fake): State<FakeApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let what = format!("{method} {uri}");
    let query: BTreeMap<String, String> = match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(Query(pairs)) => pairs.into_iter().collect(),
        Err(err) => {
            return fake.problem(
                &what,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                err.to_string(),
                None,
            );
        }
    };
    let Some(request) = request_info(&method, uri.path(), &query) else {
        return fake.problem(
            &what,
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            None,
        );
    };

    if !fake.manifests.rbac.allows(&request) {
        let message = request.forbidden_message(&fake.manifests.rbac.user);
        fake.inner.lock().unwrap().denials.push(message.clone());
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            message,
            Some(json!({"name": request.name, "group": request.group, "kind": request.resource})),
        );
    }

    match (
        request.group.as_str(),
        request.version.as_str(),
        request.resource.as_str(),
        request.subresource.as_str(),
    ) {
        ("", "v1", "configmaps", "")
            if !request.namespace.is_empty() || request.name.is_empty() =>
        {
            read(&fake, &what, Kind::ConfigMaps, &request, &query, &headers)
        }
        // Cluster-scoped: /api/v1/namespaces and /api/v1/namespaces/NAME
        // (whose RequestInfo namespace is NAME) only.
        ("", "v1", "namespaces", "") if request.namespace == request.name => {
            read(&fake, &what, Kind::Namespaces, &request, &query, &headers)
        }
        // Secrets come from the writable store (sync) for writes and
        // watches, and for reads once a test wrote one there; otherwise
        // from the paged, read-only listing (audit).
        ("", "v1", "secrets", "")
            if (!request.namespace.is_empty() || request.name.is_empty())
                && (!matches!(request.verb, "get" | "list") || fake.writable.has_secrets()) =>
        {
            writable::handle(
                &fake,
                &what,
                Resource::Secrets,
                &request,
                &query,
                &headers,
                &body,
            )
            .await
        }
        ("coordination.k8s.io", "v1", "leases", "") if !request.namespace.is_empty() => {
            writable::handle(
                &fake,
                &what,
                Resource::Leases,
                &request,
                &query,
                &headers,
                &body,
            )
            .await
        }
        (group, "v1", resource, "") if listing::serves(group, resource) => {
            listing::read(&fake, &what, &request, &query, &headers)
        }
        ("events.k8s.io", "v1", "events", "") if !request.namespace.is_empty() => {
            match request.verb {
                "create" => create_event(&fake, &what, &request, &headers, &body),
                "patch" => patch_event(&fake, &what, &request, &headers, &body),
                verb => fake.problem(
                    &what,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!("the fake API does not {verb} events"),
                    None,
                ),
            }
        }
        _ => fake.problem(
            &what,
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            None,
        ),
    }
}

/// get, list and watch of ConfigMaps and Namespaces.
fn read(
    fake: &FakeApi,
    what: &str,
    kind: Kind,
    request: &Attributes,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    if !matches!(request.verb, "get" | "list" | "watch") {
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
    // The apiserver transforms the answer into the requested kind and
    // refuses when they do not fit.
    match (request.verb, target) {
        ("list", Target::Metadata) => {
            return fake.problem(
                what,
                StatusCode::NOT_ACCEPTABLE,
                "NotAcceptable",
                "you requested PartialObjectMetadata, but the requested object is a list".into(),
                None,
            );
        }
        ("get" | "watch", Target::MetadataList) => {
            return fake.problem(
                what,
                StatusCode::NOT_ACCEPTABLE,
                "NotAcceptable",
                "you requested PartialObjectMetadataList, but the requested object is not a list"
                    .into(),
                None,
            );
        }
        _ => {}
    }
    if kind == Kind::Namespaces && target == Target::Full {
        fake.inner
            .lock()
            .unwrap()
            .non_metadata
            .push(format!("{what} (Accept: {:?})", headers.get(ACCEPT)));
    }

    if request.verb == "get" {
        let mut inner = fake.inner.lock().unwrap();
        if kind == Kind::Namespaces {
            inner.namespace_gets.push(request.name.clone());
        }
        let namespace = if kind.namespaced() {
            request.namespace.clone()
        } else {
            String::new()
        };
        return match inner
            .store(kind)
            .objects
            .get(&(namespace, request.name.clone()))
        {
            Some(object) => axum::Json(render(object, target)).into_response(),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} {:?} not found", request.resource, request.name),
                Some(json!({"name": request.name, "kind": request.resource})),
            ),
        };
    }

    let filter = match Filter::from_request(kind, request, query) {
        Ok(filter) => filter,
        Err(message) => {
            return fake.problem(what, StatusCode::BAD_REQUEST, "BadRequest", message, None);
        }
    };
    if request.verb == "watch" {
        let from = query
            .get("resourceVersion")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        return watch_response(fake, kind, filter, target, from);
    }

    let mut inner = fake.inner.lock().unwrap();
    let rv = inner.resource_version;
    let store = inner.store(kind);
    store.lists += 1;
    let items: Vec<Value> = store
        .objects
        .values()
        .filter(|o| filter.matches(o))
        .map(|o| render_item(o, target))
        .collect();
    let (api_version, list_kind) = match target {
        Target::Full => ("v1", kind.list_kind()),
        Target::Metadata | Target::MetadataList => {
            (META_GROUP_VERSION, "PartialObjectMetadataList")
        }
    };
    axum::Json(json!({
        "apiVersion": api_version,
        "kind": list_kind,
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    }))
    .into_response()
}

fn watch_response(
    fake: &FakeApi,
    kind: Kind,
    filter: Filter,
    target: Target,
    from: u64,
) -> Response {
    let mut inner = fake.inner.lock().unwrap();
    let store = inner.store(kind);
    store.watches += 1;
    if std::mem::take(&mut store.gone_next) {
        return gone(from);
    }
    // From resourceVersion 0 (or none) a watch starts with the current
    // objects as ADDED; from a later one it replays what followed.
    let replay = replay(&store.objects, &store.history, from);
    let live = fake.tx(kind).subscribe();
    drop(inner);
    // Lagging behind is not expected of these small watches; skip on.
    stream_watch(fake, replay, live, false, filter, target)
}

/// A watch answered with 410 Gone, as after a watch cache restart.
fn gone(from: u64) -> Response {
    let status = json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {from}"), "reason": "Expired", "code": 410}});
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(format!("{status}\n")))
        .unwrap()
}

/// What a watch from `from` starts with: the current objects as ADDED from
/// 0, else the changes after `from`.
fn replay(objects: &BTreeMap<(String, String), Value>, history: &[Line], from: u64) -> Vec<Line> {
    if from == 0 {
        objects
            .values()
            .map(|object| Line {
                resource_version: 0,
                event_type: "ADDED",
                object: object.clone(),
            })
            .collect()
    } else {
        history
            .iter()
            .filter(|l| l.resource_version > from)
            .cloned()
            .collect()
    }
}

/// The streamed body of a watch: `replay`, then live changes, filtered and
/// rendered, until the fake drops its watches. A watcher that falls behind
/// the live channel is ended when `end_on_lag` (as the apiserver ends a slow
/// watch, so it resumes from its last resourceVersion), else skips ahead.
fn stream_watch(
    fake: &FakeApi,
    replay: Vec<Line>,
    live: broadcast::Receiver<Line>,
    end_on_lag: bool,
    filter: Filter,
    target: Target,
) -> Response {
    let mut dropped = fake.drop_tx.subscribe();
    dropped.mark_unchanged();
    let live = futures::stream::unfold(live, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((Some(line), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) if end_on_lag => {
                    return Some((None, rx));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .take_while(|line| std::future::ready(line.is_some()))
    .filter_map(std::future::ready);
    let stream = futures::stream::iter(replay)
        .chain(live)
        .filter(move |line| std::future::ready(filter.matches(&line.object)))
        .map(move |line| {
            let event = json!({"type": line.event_type, "object": render(&line.object, target)});
            Ok::<_, Infallible>(format!("{event}\n"))
        })
        .take_until(async move {
            let _ = dropped.changed().await;
        });
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

// ---------------------------------------------------------------------------
// Events.

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field].as_str().unwrap_or_default()
}

/// `ValidateEventCreate` for events.k8s.io/v1, plus the fake's own
/// expectation of the reporting controller.
fn validate_event(event: &Value, namespace: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut require = |field: &str, limit: usize| {
        let value = text(event, field);
        if value.is_empty() {
            errors.push(format!("{field}: Required value"));
        } else if value.len() > limit {
            errors.push(format!(
                "{field}: Too long: may not be more than {limit} bytes"
            ));
        }
    };
    require("reportingController", 253);
    require("reportingInstance", 128);
    require("action", 128);
    require("reason", 128);
    require("eventTime", usize::MAX);
    if text(event, "reportingController") != REPORTING_CONTROLLER {
        errors.push(format!(
            "reportingController: Unsupported value: {:?}: the fake API expects {REPORTING_CONTROLLER:?}",
            event["reportingController"]
        ));
    }
    if !matches!(text(event, "type"), "Normal" | "Warning") {
        errors.push(format!(
            "type: Unsupported value: {:?}: supported values: \"Normal\", \"Warning\"",
            event["type"]
        ));
    }
    if text(event, "note").len() > 1024 {
        errors.push("note: Too long: may not be more than 1024 bytes".into());
    }
    match event.get("regarding") {
        Some(regarding) if regarding.is_object() => {
            if text(regarding, "kind").is_empty() || text(regarding, "name").is_empty() {
                errors.push("regarding: Invalid value: names no object".into());
            }
            let regarding_ns = text(regarding, "namespace");
            if !regarding_ns.is_empty() && regarding_ns != namespace {
                errors.push(format!(
                    "regarding.namespace: Invalid value: {regarding_ns:?}: does not match event.namespace"
                ));
            }
        }
        _ => errors.push("regarding: Required value (the fake API requires it)".into()),
    }
    if let Some(series) = event.get("series").filter(|s| !s.is_null()) {
        if series["count"].as_i64().unwrap_or(0) < 2 {
            errors.push("series.count: Invalid value: should be at least 2".into());
        }
        if text(series, "lastObservedTime").is_empty() {
            errors.push("series.lastObservedTime: Required value".into());
        }
    }
    errors
}

fn invalid_event(fake: &FakeApi, what: &str, name: &str, errors: &[String]) -> Response {
    fake.problem(
        what,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!(
            "Event.events.k8s.io {name:?} is invalid: [{}]",
            errors.join(", ")
        ),
        Some(json!({"name": name, "group": "events.k8s.io", "kind": "Event",
            "causes": errors.iter().map(|e| json!({"reason": "FieldValueInvalid", "message": e})).collect::<Vec<_>>()})),
    )
}

fn create_event(
    fake: &FakeApi,
    what: &str,
    request: &Attributes,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if media_type(headers) != "application/json" {
        return fake.problem(
            what,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format: {:?}",
                headers.get(CONTENT_TYPE)
            ),
            None,
        );
    }
    let mut event: Value = match serde_json::from_slice(body) {
        Ok(event) => event,
        Err(err) => {
            return fake.problem(
                what,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                err.to_string(),
                None,
            );
        }
    };
    if text(&event, "apiVersion") != "events.k8s.io/v1" || text(&event, "kind") != "Event" {
        return fake.problem(
            what,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "the API version in the data ({}) and kind ({}) do not match events.k8s.io/v1 Event",
                event["apiVersion"], event["kind"]
            ),
            None,
        );
    }
    let namespace = &request.namespace;
    match event["metadata"]["namespace"].as_str() {
        Some(ns) if ns == namespace => {}
        None => event["metadata"]["namespace"] = json!(namespace),
        Some(_) => {
            return fake.problem(
                what,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request"
                    .into(),
                None,
            );
        }
    }
    let name = text(&event["metadata"], "name").to_owned();
    if name.is_empty() {
        return invalid_event(fake, what, &name, &["metadata.name: Required value".into()]);
    }
    let errors = validate_event(&event, namespace);
    if !errors.is_empty() {
        return invalid_event(fake, what, &name, &errors);
    }

    let mut inner = fake.inner.lock().unwrap();
    let exists = inner.events.iter().any(|e| {
        text(&e["metadata"], "namespace") == namespace && text(&e["metadata"], "name") == name
    });
    if exists {
        drop(inner);
        return fake.problem(
            what,
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("events.events.k8s.io {name:?} already exists"),
            Some(json!({"name": name, "group": "events.k8s.io", "kind": "events"})),
        );
    }
    inner.event_writes.push(EventWrite {
        verb: EventVerb::Create,
        namespace: namespace.clone(),
        name: name.clone(),
        body: event.clone(),
    });
    inner.resource_version += 1;
    event["metadata"]["resourceVersion"] = json!(inner.resource_version.to_string());
    event["metadata"]["uid"] = json!(inner.next_uid());
    event["metadata"]["creationTimestamp"] = json!(CREATED_AT);
    inner.events.push(event.clone());
    (StatusCode::CREATED, axum::Json(event)).into_response()
}

/// The fields `ValidateEventUpdate` keeps immutable.
const IMMUTABLE_EVENT_FIELDS: &[&str] = &[
    "type",
    "reason",
    "action",
    "regarding",
    "related",
    "reportingController",
    "reportingInstance",
    "note",
    "eventTime",
];

fn patch_event(
    fake: &FakeApi,
    what: &str,
    request: &Attributes,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    // kube's Recorder sends a JSON merge patch (Patch::Merge); the fake
    // accepts only that, so a change of patch type shows up here.
    if media_type(headers) != "application/merge-patch+json" {
        return fake.problem(
            what,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the fake API accepts only application/merge-patch+json for events, not {:?}",
                headers.get(CONTENT_TYPE)
            ),
            None,
        );
    }
    let patch: Value = match serde_json::from_slice(body) {
        Ok(patch) => patch,
        Err(err) => {
            return fake.problem(
                what,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                err.to_string(),
                None,
            );
        }
    };
    let (namespace, name) = (&request.namespace, &request.name);
    let mut inner = fake.inner.lock().unwrap();
    let Some(index) = inner.events.iter().position(|e| {
        text(&e["metadata"], "namespace") == namespace && text(&e["metadata"], "name") == name
    }) else {
        drop(inner);
        return fake.problem(
            what,
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("events.events.k8s.io {name:?} not found"),
            Some(json!({"name": name, "group": "events.k8s.io", "kind": "events"})),
        );
    };
    let old = inner.events[index].clone();
    let mut new = old.clone();
    json_patch::merge(&mut new, &patch);

    let mut errors = Vec::new();
    if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
        && rv != text(&old["metadata"], "resourceVersion")
    {
        drop(inner);
        return fake.problem(
            what,
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on events.events.k8s.io {name:?}: the object has been modified"
            ),
            None,
        );
    }
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        if new["metadata"][field] != old["metadata"][field] {
            errors.push(format!(
                "metadata.{field}: Invalid value: field is immutable"
            ));
        }
    }
    for field in IMMUTABLE_EVENT_FIELDS {
        if new.get(*field) != old.get(*field) {
            errors.push(format!("{field}: Invalid value: field is immutable"));
        }
    }
    if new.get("series").is_none_or(Value::is_null) {
        errors.push("series: Required value: an updated Event is a series".into());
    }
    errors.extend(validate_event(&new, namespace));
    if !errors.is_empty() {
        drop(inner);
        return invalid_event(fake, what, name, &errors);
    }

    inner.event_writes.push(EventWrite {
        verb: EventVerb::Patch,
        namespace: namespace.clone(),
        name: name.clone(),
        body: patch,
    });
    inner.resource_version += 1;
    new["metadata"]["resourceVersion"] = json!(inner.resource_version.to_string());
    inner.events[index] = new.clone();
    axum::Json(new).into_response()
}
