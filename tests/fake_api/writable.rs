//! Secrets and Leases in the fake API: the writable, namespaced resources
//! `sync` uses, with what kube-apiserver checks on writes.
//!
//! - create: `409 AlreadyExists` when the name is taken; the server sets
//!   uid, resourceVersion and creationTimestamp; a Secret's `type`
//!   defaults to `Opaque`.
//! - update (PUT): the body's `metadata.resourceVersion` must be the stored
//!   one (`409 Conflict` otherwise; an update without one is refused here,
//!   as `sync` must always send it); a Secret's `type` is immutable (422).
//! - delete: the body's `preconditions` (uid, resourceVersion) must hold
//!   (409); a missing object is 404.
//! - get, list (label and field selectors, namespace or all) and watch from
//!   a resourceVersion, with `410 Gone` on demand.
//!
//! Faults are injected per resource: the next N requests answered with a
//! given status (500, 429 with Retry-After), or all of them for a while.
//!
//! Secret writes (create, update, delete) can be slowed down, as etcd's
//! commit makes them on a real cluster ([`FakeApi::set_secret_write_latency`]),
//! or held until released ([`FakeApi::hold_secret_writes`]); the writes in
//! flight are counted, with their peak, so tests and the benchmark can see
//! how many a client keeps going at once, and every write received is
//! counted, also one its client abandons before the answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::{Attributes, FakeApi, Filter, Line, Target, negotiate, render, render_item, status};

/// A resource kept here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Secrets,
    Leases,
}

impl Resource {
    fn kind(self) -> &'static str {
        match self {
            Resource::Secrets => "Secret",
            Resource::Leases => "Lease",
        }
    }
    fn api_version(self) -> &'static str {
        match self {
            Resource::Secrets => "v1",
            Resource::Leases => "coordination.k8s.io/v1",
        }
    }
    fn qualified(self) -> &'static str {
        match self {
            Resource::Secrets => "secrets",
            Resource::Leases => "leases.coordination.k8s.io",
        }
    }
}

/// One request seen, for counting API calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub resource: Resource,
    pub verb: &'static str,
    pub namespace: String,
    pub name: String,
    /// The status answered.
    pub code: u16,
    /// When it was answered.
    pub at: Instant,
}

/// Which Secret writes wait for [`FakeApi::release_secret_writes`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Hold {
    #[default]
    Nothing,
    All,
    Namespace(String),
}

impl Hold {
    fn holds(&self, namespace: &str) -> bool {
        match self {
            Hold::Nothing => false,
            Hold::All => true,
            Hold::Namespace(ns) => ns == namespace,
        }
    }
}

/// Secret writes being answered: how many now, the most at once, how long
/// each takes, which are held.
#[derive(Default)]
struct Writes {
    /// Received since the fake started, answered or not.
    received: AtomicUsize,
    now: AtomicUsize,
    peak: AtomicUsize,
    latency_micros: AtomicU64,
    hold: watch::Sender<Hold>,
}

/// Counts a write as in flight until dropped.
struct InFlight<'a>(&'a Writes);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writes {
    fn start(&self) -> InFlight<'_> {
        self.received.fetch_add(1, Ordering::SeqCst);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    /// Waits while writes to `namespace` are held, then the latency.
    async fn delay(&self, namespace: &str) {
        let mut hold = self.hold.subscribe();
        let _ = hold.wait_for(|h| !h.holds(namespace)).await;
        let latency = self.latency_micros.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
    }
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<(String, String), Value>,
    history: Vec<Line>,
    gone_next: bool,
}

/// Injected failures of one resource.
#[derive(Clone, Debug, Default)]
struct Fault {
    /// Answer the next `count` requests with `code`.
    count: usize,
    code: u16,
}

pub struct Writable {
    inner: Mutex<Inner>,
    writes: Writes,
    secrets_tx: broadcast::Sender<Line>,
    leases_tx: broadcast::Sender<Line>,
}

#[derive(Default)]
struct Inner {
    resource_version: u64,
    uids: u64,
    secrets: Store,
    leases: Store,
    faults: BTreeMap<Resource, Fault>,
    calls: Vec<Call>,
    serve_reads: bool,
}

impl Inner {
    fn store(&mut self, resource: Resource) -> &mut Store {
        match resource {
            Resource::Secrets => &mut self.secrets,
            Resource::Leases => &mut self.leases,
        }
    }
}

impl Default for Writable {
    fn default() -> Self {
        Writable {
            inner: Mutex::new(Inner {
                // Apart from the fake's other resources, high enough never
                // to meet them.
                resource_version: 1_000_000,
                ..Inner::default()
            }),
            writes: Writes::default(),
            secrets_tx: broadcast::channel(65_536).0,
            leases_tx: broadcast::channel(64).0,
        }
    }
}

fn object_key(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_owned(),
        meta["name"].as_str().unwrap_or_default().to_owned(),
    )
}

impl Writable {
    /// Whether Secret reads come here: once a test asked for it or wrote
    /// a Secret here.
    pub(super) fn has_secrets(&self) -> bool {
        let inner = self.inner.lock().unwrap();
        inner.serve_reads || !inner.secrets.history.is_empty()
    }

    fn tx(&self, resource: Resource) -> &broadcast::Sender<Line> {
        match resource {
            Resource::Secrets => &self.secrets_tx,
            Resource::Leases => &self.leases_tx,
        }
    }

    /// Stores `object` (created or replaced) and streams the change; the
    /// stored version is returned.
    fn store(&self, inner: &mut Inner, resource: Resource, mut object: Value) -> Value {
        inner.resource_version += 1;
        let rv = inner.resource_version;
        let key = object_key(&object);
        let existing = inner.store(resource).objects.get(&key).cloned();
        let event_type = match &existing {
            Some(old) => {
                object["metadata"]["uid"] = old["metadata"]["uid"].clone();
                object["metadata"]["creationTimestamp"] =
                    old["metadata"]["creationTimestamp"].clone();
                "MODIFIED"
            }
            None => {
                inner.uids += 1;
                object["metadata"]["uid"] =
                    json!(format!("00000000-0000-4000-9000-{:012}", inner.uids));
                object["metadata"]["creationTimestamp"] = json!(super::CREATED_AT);
                "ADDED"
            }
        };
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind());
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if resource == Resource::Secrets && object.get("type").is_none_or(Value::is_null) {
            object["type"] = json!("Opaque");
        }
        let store = inner.store(resource);
        store.objects.insert(key, object.clone());
        let line = Line {
            resource_version: rv,
            event_type,
            object: object.clone(),
        };
        store.history.push(line.clone());
        let _ = self.tx(resource).send(line);
        object
    }

    fn remove(
        &self,
        inner: &mut Inner,
        resource: Resource,
        key: &(String, String),
    ) -> Option<Value> {
        let mut object = inner.store(resource).objects.remove(key)?;
        inner.resource_version += 1;
        let rv = inner.resource_version;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let line = Line {
            resource_version: rv,
            event_type: "DELETED",
            object: object.clone(),
        };
        inner.store(resource).history.push(line.clone());
        let _ = self.tx(resource).send(line);
        Some(object)
    }
}

/// Standard base64, as Secret data is stored.
pub fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_default()
}

impl FakeApi {
    /// Creates or replaces a Secret as a user would (`kubectl apply`).
    pub fn put_secret(
        &self,
        namespace: &str,
        name: &str,
        type_: &str,
        data: &[(&str, &[u8])],
        labels: &[(&str, &str)],
    ) -> Value {
        use base64::Engine as _;
        let data: BTreeMap<&str, String> = data
            .iter()
            .map(|(k, v)| (*k, base64::engine::general_purpose::STANDARD.encode(v)))
            .collect();
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let object = json!({
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":\"...\"}"}},
            "type": type_,
            "data": data,
        });
        let mut inner = self.writable.inner.lock().unwrap();
        self.writable.store(&mut inner, Resource::Secrets, object)
    }

    /// Serves every Secret request from this store (`sync`'s), also before
    /// any Secret exists; without it, reads go to the paged listing until
    /// a Secret is written here.
    pub fn use_writable_secrets(&self) {
        self.writable.inner.lock().unwrap().serve_reads = true;
    }

    /// Changes a stored Secret in place (someone's edit).
    pub fn edit_secret(&self, namespace: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut inner = self.writable.inner.lock().unwrap();
        let key = (namespace.to_owned(), name.to_owned());
        let mut object = inner
            .secrets
            .objects
            .get(&key)
            .cloned()
            .expect("secret exists");
        edit(&mut object);
        self.writable.store(&mut inner, Resource::Secrets, object);
    }

    /// Deletes a Secret (someone's `kubectl delete`).
    pub fn delete_secret(&self, namespace: &str, name: &str) -> bool {
        let mut inner = self.writable.inner.lock().unwrap();
        let key = (namespace.to_owned(), name.to_owned());
        self.writable
            .remove(&mut inner, Resource::Secrets, &key)
            .is_some()
    }

    /// The stored Secret.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.writable.inner.lock().unwrap();
        inner
            .secrets
            .objects
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every stored Secret.
    pub fn secrets(&self) -> Vec<Value> {
        let inner = self.writable.inner.lock().unwrap();
        inner.secrets.objects.values().cloned().collect()
    }

    /// How many stored Secrets satisfy `check` (no copies made).
    pub fn count_secrets(&self, check: impl Fn(&Value) -> bool) -> usize {
        let inner = self.writable.inner.lock().unwrap();
        inner.secrets.objects.values().filter(|s| check(s)).count()
    }

    /// The stored Lease.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.writable.inner.lock().unwrap();
        inner
            .leases
            .objects
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Changes the stored Lease in place, as another replica's update
    /// would (a new resourceVersion, streamed to watches).
    pub fn edit_lease(&self, namespace: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut inner = self.writable.inner.lock().unwrap();
        let key = (namespace.to_owned(), name.to_owned());
        let mut object = inner
            .leases
            .objects
            .get(&key)
            .cloned()
            .expect("lease exists");
        edit(&mut object);
        self.writable.store(&mut inner, Resource::Leases, object);
    }

    /// The next Secret watch is answered `410 Gone`, and open watches end.
    pub fn expire_secret_watches(&self) {
        self.writable.inner.lock().unwrap().secrets.gone_next = true;
        self.drop_watches();
    }

    /// The next `count` requests for `resource` are answered `code`
    /// (500, 429 with Retry-After: 1, 503...).
    pub fn fail_next(&self, resource: Resource, count: usize, code: u16) {
        self.writable
            .inner
            .lock()
            .unwrap()
            .faults
            .insert(resource, Fault { count, code });
    }

    /// Every Secret and Lease request answered so far.
    pub fn calls(&self) -> Vec<Call> {
        self.writable.inner.lock().unwrap().calls.clone()
    }

    /// How many `verb` requests for `resource` were answered `code` so
    /// far (cheap: nothing is copied).
    pub fn count_calls(&self, resource: Resource, verb: &str, code: u16) -> usize {
        let inner = self.writable.inner.lock().unwrap();
        inner
            .calls
            .iter()
            .filter(|c| c.resource == resource && c.verb == verb && c.code == code)
            .count()
    }

    /// Forgets the requests counted so far, and the peak of writes in
    /// flight.
    pub fn reset_calls(&self) {
        self.writable.inner.lock().unwrap().calls.clear();
        let writes = &self.writable.writes;
        writes
            .peak
            .store(writes.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Every Secret write waits `latency` before it is answered (etcd's
    /// commit on a real cluster), so a client's concurrency shows.
    pub fn set_secret_write_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.writable
            .writes
            .latency_micros
            .store(micros, Ordering::SeqCst);
    }

    /// Secret writes in `namespace` (every namespace with `None`) wait,
    /// unanswered, until [`FakeApi::release_secret_writes`].
    pub fn hold_secret_writes(&self, namespace: Option<&str>) {
        let hold = namespace.map_or(Hold::All, |ns| Hold::Namespace(ns.to_owned()));
        self.writable.writes.hold.send_replace(hold);
    }

    /// Lets held Secret writes through.
    pub fn release_secret_writes(&self) {
        self.writable.writes.hold.send_replace(Hold::Nothing);
    }

    /// Secret writes received since the fake started, whether answered,
    /// held, or abandoned by the client before an answer.
    pub fn secret_writes_received(&self) -> usize {
        self.writable.writes.received.load(Ordering::SeqCst)
    }

    /// Secret writes received and not answered yet.
    pub fn secret_writes_in_flight(&self) -> usize {
        self.writable.writes.now.load(Ordering::SeqCst)
    }

    /// The most Secret writes in flight at once since the last
    /// [`FakeApi::reset_calls`].
    pub fn peak_secret_writes_in_flight(&self) -> usize {
        self.writable.writes.peak.load(Ordering::SeqCst)
    }
}

/// Handles a request for Secrets or Leases (already authorized).
pub(super) async fn handle(
    fake: &FakeApi,
    what: &str,
    resource: Resource,
    request: &Attributes,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let write =
        resource == Resource::Secrets && matches!(request.verb, "create" | "update" | "delete");
    let in_flight = write.then(|| fake.writable.writes.start());
    if write {
        fake.writable.writes.delay(&request.namespace).await;
    }
    let response = answer(fake, what, resource, request, query, headers, body);
    drop(in_flight);
    fake.writable.inner.lock().unwrap().calls.push(Call {
        resource,
        verb: request.verb,
        namespace: request.namespace.clone(),
        name: request.name.clone(),
        code: response.status().as_u16(),
        at: Instant::now(),
    });
    response
}

fn not_found(resource: Resource, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} {name:?} not found", resource.qualified()),
        Some(json!({"name": name, "kind": resource.qualified().split('.').next()})),
    )
}

fn conflict(resource: Resource, name: &str, why: &str) -> Response {
    status(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} {name:?}: {why}",
            resource.qualified()
        ),
        Some(json!({"name": name, "kind": resource.qualified().split('.').next()})),
    )
}

fn answer(
    fake: &FakeApi,
    what: &str,
    resource: Resource,
    request: &Attributes,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    {
        let mut inner = fake.writable.inner.lock().unwrap();
        if let Some(fault) = inner.faults.get_mut(&resource)
            && fault.count > 0
        {
            fault.count -= 1;
            let code = StatusCode::from_u16(fault.code).unwrap();
            let mut response = status(
                code,
                if fault.code == 429 {
                    "TooManyRequests"
                } else {
                    "InternalError"
                },
                format!("injected failure {}", fault.code),
                None,
            );
            if fault.code == 429 {
                response
                    .headers_mut()
                    .insert("retry-after", "1".parse().unwrap());
            }
            return response;
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
    let namespace = request.namespace.clone();
    let name = request.name.clone();
    match request.verb {
        "get" => {
            let inner = fake.writable.inner.lock().unwrap();
            let store = match resource {
                Resource::Secrets => &inner.secrets,
                Resource::Leases => &inner.leases,
            };
            match store.objects.get(&(namespace, name.clone())) {
                Some(object) => axum::Json(render(object, target)).into_response(),
                None => not_found(resource, &name),
            }
        }
        "list" | "watch" => {
            let filter = match Filter::for_writable(request, query) {
                Ok(filter) => filter,
                Err(message) => {
                    return fake.problem(
                        what,
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        message,
                        None,
                    );
                }
            };
            if request.verb == "watch" {
                let from = query
                    .get("resourceVersion")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return watch(fake, resource, filter, target, from);
            }
            let inner = fake.writable.inner.lock().unwrap();
            let rv = inner.resource_version;
            let store = match resource {
                Resource::Secrets => &inner.secrets,
                Resource::Leases => &inner.leases,
            };
            let items: Vec<Value> = store
                .objects
                .values()
                .filter(|o| filter.matches(o))
                .map(|o| render_item(o, target))
                .collect();
            axum::Json(json!({
                "apiVersion": resource.api_version(),
                "kind": format!("{}List", resource.kind()),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            }))
            .into_response()
        }
        "create" | "update" => {
            let mut object: Value = match serde_json::from_slice(body) {
                Ok(object) => object,
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
            if text(&object, "kind") != resource.kind()
                || text(&object, "apiVersion") != resource.api_version()
            {
                return fake.problem(
                    what,
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("expected {} {}", resource.api_version(), resource.kind()),
                    None,
                );
            }
            match object["metadata"]["namespace"].as_str() {
                None => object["metadata"]["namespace"] = json!(namespace),
                Some(ns) if ns == namespace => {}
                Some(_) => {
                    return fake.problem(
                        what,
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                        None,
                    );
                }
            }
            let object_name = text(&object["metadata"], "name").to_owned();
            let key = (namespace.clone(), object_name.clone());
            let mut inner = fake.writable.inner.lock().unwrap();
            let existing = inner.store(resource).objects.get(&key).cloned();
            if request.verb == "create" {
                if existing.is_some() {
                    return status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{} {object_name:?} already exists", resource.qualified()),
                        Some(
                            json!({"name": object_name, "kind": resource.qualified().split('.').next()}),
                        ),
                    );
                }
                if !object["metadata"]["resourceVersion"].is_null() {
                    drop(inner);
                    return fake.problem(
                        what,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                        "resourceVersion should not be set on objects to be created".into(),
                        None,
                    );
                }
                let stored = fake.writable.store(&mut inner, resource, object);
                return (StatusCode::CREATED, axum::Json(stored)).into_response();
            }
            if object_name != name {
                drop(inner);
                return fake.problem(
                    what,
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the name of the object does not match the name on the URL".into(),
                    None,
                );
            }
            let Some(existing) = existing else {
                return not_found(resource, &name);
            };
            let sent = text(&object["metadata"], "resourceVersion").to_owned();
            if sent.is_empty() {
                drop(inner);
                // kube-apiserver would accept an unconditional update; sync
                // must never send one, so the fake refuses it.
                return fake.problem(
                    what,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.resourceVersion: the fake API requires it on every update".into(),
                    None,
                );
            }
            if sent != text(&existing["metadata"], "resourceVersion") {
                return conflict(
                    resource,
                    &name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                );
            }
            if resource == Resource::Secrets {
                let old_type = text(&existing, "type");
                let new_type = object["type"].as_str().unwrap_or("Opaque");
                if old_type != new_type {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        format!(
                            "Secret {name:?} is invalid: type: Invalid value: {new_type:?}: field is immutable"
                        ),
                        None,
                    );
                }
            }
            let stored = fake.writable.store(&mut inner, resource, object);
            axum::Json(stored).into_response()
        }
        "delete" => {
            let options: Value = if body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(body) {
                    Ok(options) => options,
                    Err(err) => {
                        return fake.problem(
                            what,
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            err.to_string(),
                            None,
                        );
                    }
                }
            };
            let key = (namespace, name.clone());
            let mut inner = fake.writable.inner.lock().unwrap();
            let Some(existing) = inner.store(resource).objects.get(&key).cloned() else {
                return not_found(resource, &name);
            };
            let pre = &options["preconditions"];
            if let Some(uid) = pre["uid"].as_str()
                && uid != text(&existing["metadata"], "uid")
            {
                return conflict(
                    resource,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        text(&existing["metadata"], "uid")
                    ),
                );
            }
            if let Some(rv) = pre["resourceVersion"].as_str()
                && rv != text(&existing["metadata"], "resourceVersion")
            {
                return conflict(
                    resource,
                    &name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        text(&existing["metadata"], "resourceVersion")
                    ),
                );
            }
            let removed = fake.writable.remove(&mut inner, resource, &key);
            axum::Json(removed.unwrap_or(existing)).into_response()
        }
        verb => fake.problem(
            what,
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the fake API does not {verb} {}", resource.qualified()),
            None,
        ),
    }
}

fn watch(
    fake: &FakeApi,
    resource: Resource,
    filter: Filter,
    target: Target,
    from: u64,
) -> Response {
    let mut inner = fake.writable.inner.lock().unwrap();
    let store = inner.store(resource);
    if std::mem::take(&mut store.gone_next) {
        return super::gone(from);
    }
    let replay = super::replay(&store.objects, &store.history, from);
    let live = fake.writable.tx(resource).subscribe();
    drop(inner);
    super::stream_watch(fake, replay, live, true, filter, target)
}

impl Filter {
    /// A list or watch of Secrets or Leases: in the request's namespace (or
    /// all), `metadata.name` / `metadata.namespace` field selectors and
    /// label selectors, as kube-apiserver supports them for Secrets.
    fn for_writable(
        request: &Attributes,
        query: &BTreeMap<String, String>,
    ) -> Result<Filter, String> {
        let fields = super::parse_field_selector(query.get("fieldSelector").map_or("", |s| s))?;
        for requirement in &fields {
            if let super::Requirement::Equals(field, _) | super::Requirement::NotEquals(field, _) =
                requirement
                && !matches!(
                    field.as_str(),
                    "metadata.name" | "metadata.namespace" | "type"
                )
            {
                return Err(format!("field label not supported: {field}"));
            }
        }
        let labels = super::parse_label_selector(query.get("labelSelector").map_or("", |s| s))?;
        Ok(Filter {
            namespace: request.namespace.clone(),
            fields,
            labels,
        })
    }
}
