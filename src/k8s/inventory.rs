//! What `audit` reads from the cluster, read so that memory follows the
//! page size and not the cluster size.
//!
//! - Pods, one page at a time (`limit` + `continue`, like `kubectl get
//!   --chunk-size`): a [`PodPage`] keeps the page's JSON and lends out views
//!   of its Pods that borrow from it, so a page costs about its own size.
//! - The Secrets of one namespace, also listed in pages, each reduced to
//!   its name, type and, for a pull secret, the `auths` keys of its docker
//!   config on the way in ([`SecretFacts`]); no value is kept.
//! - A namespace's labels (for `namespaces.selector` rules), metadata only.
//! - The workload that owns a Pod (ReplicaSet → Deployment, Job → CronJob),
//!   through metadata-only reads cached per namespace ([`Owners`]).
//! - The policy ConfigMap, read once.
//!
//! Every failure names what could not be read; an RBAC denial is its own
//! variant so the command can say which permission is missing.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Deserialize;

use super::configmap::POLICY_KEY;
use crate::core::audit::{SecretFacts, Secrets};
use crate::core::credentials::{ConfigFormat, DockerConfig};
use crate::core::pod::{AnnotationsView, PodSpecView};

/// Why something `audit` needs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// RBAC denied the request (HTTP 403).
    #[error("{what}: forbidden: {message}")]
    Forbidden {
        /// What was being read, e.g. `cannot list pods in all namespaces`.
        what: String,
        /// The API server's message (it names the user, verb and resource).
        message: String,
    },
    /// Any other failure of the request.
    #[error("{what}: {source}")]
    Api {
        /// What was being read.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The answer was not the expected JSON.
    #[error("{what}: unexpected answer from the API server: {source}")]
    Decode {
        /// What was being read.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl InventoryError {
    fn from_kube(what: String, source: kube::Error) -> Self {
        match source {
            kube::Error::Api(status) if status.code == 403 => InventoryError::Forbidden {
                what,
                message: status.message,
            },
            source => InventoryError::Api { what, source },
        }
    }
}

/// Which Pods to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodScope {
    /// Every namespace (`-A`).
    AllNamespaces,
    /// One namespace.
    Namespace(String),
}

impl PodScope {
    fn path(&self) -> String {
        match self {
            PodScope::AllNamespaces => "/api/v1/pods".to_owned(),
            PodScope::Namespace(ns) => format!("/api/v1/namespaces/{ns}/pods"),
        }
    }

    fn describe(&self) -> String {
        match self {
            PodScope::AllNamespaces => "all namespaces".to_owned(),
            PodScope::Namespace(ns) => format!("namespace {ns:?}"),
        }
    }
}

/// `metadata` of a list: only the continue token matters.
#[derive(Debug, Default, Deserialize)]
struct ListMeta {
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// One page of Pods, as the API server sent it.
pub struct PodPage {
    body: String,
}

impl PodPage {
    /// The Pods of the page, borrowing from it, and the continue token.
    pub fn read(&self) -> Result<PodList<'_>, InventoryError> {
        serde_json::from_str(&self.body).map_err(|source| InventoryError::Decode {
            what: "cannot read a page of pods".to_owned(),
            source,
        })
    }
}

/// A page of Pods.
#[derive(Debug, Deserialize)]
pub struct PodList<'a> {
    #[serde(default)]
    metadata: ListMeta,
    /// The Pods.
    #[serde(default, borrow)]
    pub items: Vec<PodItem<'a>>,
}

impl PodList<'_> {
    /// The token for the next page; `None` on the last one.
    pub fn continue_token(&self) -> Option<&str> {
        self.metadata
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
    }
}

/// One Pod: what `audit` reads of it.
#[derive(Debug, Deserialize)]
pub struct PodItem<'a> {
    /// Name, namespace, the mirror annotation, owners.
    #[serde(borrow)]
    pub metadata: PodItemMeta<'a>,
    /// Containers and `imagePullSecrets`.
    #[serde(default, borrow)]
    pub spec: PodSpecView<'a>,
}

/// The parts of a Pod's `metadata` `audit` reads.
#[derive(Debug, Deserialize)]
pub struct PodItemMeta<'a> {
    /// The Pod's name.
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    /// Its namespace.
    #[serde(default, borrow)]
    pub namespace: Cow<'a, str>,
    /// Whether it is a mirror pod.
    #[serde(default)]
    pub annotations: AnnotationsView,
    /// `ownerReferences`.
    #[serde(default, borrow, rename = "ownerReferences")]
    pub owner_references: Option<Vec<OwnerRef<'a>>>,
}

/// An entry of `ownerReferences`.
#[derive(Debug, Clone, Deserialize)]
pub struct OwnerRef<'a> {
    /// e.g. `apps/v1`.
    #[serde(default, borrow, rename = "apiVersion")]
    pub api_version: Cow<'a, str>,
    /// e.g. `ReplicaSet`.
    #[serde(default, borrow)]
    pub kind: Cow<'a, str>,
    /// The owner's name.
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    /// Whether this owner is the managing controller.
    #[serde(default)]
    pub controller: Option<bool>,
}

/// A page of Secrets: names, types and (borrowed) data.
#[derive(Deserialize)]
struct SecretList<'a> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default, borrow)]
    items: Vec<SecretItem<'a>>,
}

#[derive(Deserialize)]
struct SecretItem<'a> {
    #[serde(borrow)]
    metadata: NameMeta<'a>,
    #[serde(default, borrow, rename = "type")]
    secret_type: Option<Cow<'a, str>>,
    /// Borrowed from the page (base64 has nothing to unescape); only a pull
    /// secret's docker config is decoded, down to its keys, then dropped.
    #[serde(default, borrow)]
    data: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

/// What the kubelet would read of a Secret: for a pull secret, its docker
/// config's keys (or why it cannot), else nothing.
fn secret_facts(item: SecretItem<'_>) -> SecretFacts {
    let secret_type = item
        .secret_type
        .filter(|t| !t.is_empty())
        .map_or_else(|| "Opaque".to_owned(), Cow::into_owned);
    let config = ConfigFormat::from_secret_type(&secret_type).map(|format| {
        let encoded = item
            .data
            .as_ref()
            .and_then(|d| d.get(format.data_key()))
            .map_or("", |v| v.as_ref());
        let content = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| format!("{} is not base64", format.data_key()))?;
        DockerConfig::parse(format, &content).map_err(|e| e.to_string())
    });
    SecretFacts {
        secret_type,
        config,
    }
}

#[derive(Deserialize)]
struct NameMeta<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
}

/// Reads the cluster for `audit`.
#[derive(Clone)]
pub struct Inventory {
    client: Client,
    page_size: u32,
}

impl Inventory {
    /// Reads through `client`, listing `page_size` objects per request.
    pub fn new(client: Client, page_size: u32) -> Self {
        Inventory {
            client,
            page_size: page_size.max(1),
        }
    }

    fn page(&self, token: Option<&str>) -> ListParams {
        ListParams {
            limit: Some(self.page_size),
            continue_token: token.map(str::to_owned),
            ..ListParams::default()
        }
    }

    /// One page of the Pods of `scope`, from `token` (none for the first).
    pub async fn pods(
        &self,
        scope: &PodScope,
        token: Option<&str>,
    ) -> Result<PodPage, InventoryError> {
        let what = || format!("cannot list pods in {}", scope.describe());
        let request = kube::core::Request::new(scope.path())
            .list(&self.page(token))
            .map_err(|e| InventoryError::from_kube(what(), kube::Error::BuildRequest(e)))?;
        let body = self
            .client
            .request_text(request)
            .await
            .map_err(|e| InventoryError::from_kube(what(), e))?;
        Ok(PodPage { body })
    }

    /// The Secrets of `namespace`, by name, with their types.
    pub async fn secrets(&self, namespace: &str) -> Result<Secrets, InventoryError> {
        let what = || format!("cannot list secrets in namespace {namespace:?}");
        let mut out = Secrets::new();
        let mut token: Option<String> = None;
        loop {
            let request =
                kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/secrets"))
                    .list(&self.page(token.as_deref()))
                    .map_err(|e| InventoryError::from_kube(what(), kube::Error::BuildRequest(e)))?;
            let body = self
                .client
                .request_text(request)
                .await
                .map_err(|e| InventoryError::from_kube(what(), e))?;
            let page: SecretList<'_> =
                serde_json::from_str(&body).map_err(|source| InventoryError::Decode {
                    what: what(),
                    source,
                })?;
            for item in page.items {
                let name = item.metadata.name.clone().into_owned();
                out.insert(name, secret_facts(item));
            }
            match page.metadata.continue_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// The labels of `namespace`; `None` when it does not exist (any more).
    pub async fn namespace_labels(
        &self,
        namespace: &str,
    ) -> Result<Option<BTreeMap<String, String>>, InventoryError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let meta = api.get_metadata_opt(namespace).await.map_err(|e| {
            InventoryError::from_kube(format!("cannot get namespace {namespace:?}"), e)
        })?;
        Ok(meta.map(|m| m.metadata.labels.unwrap_or_default()))
    }

    /// The text of the policy ConfigMap `namespace/name` (key
    /// `policy.yaml`), or `None` when the ConfigMap or the key is missing.
    pub async fn policy_text(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, InventoryError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let configmap = api.get_opt(name).await.map_err(|e| {
            InventoryError::from_kube(format!("cannot get configmap {namespace}/{name}"), e)
        })?;
        Ok(configmap.and_then(|c| c.data?.remove(POLICY_KEY)))
    }
}

/// The owner an object's controller reference names, as `Kind/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Controller {
    api_version: String,
    kind: String,
    name: String,
}

impl Controller {
    fn of<'r, 'a: 'r>(refs: impl IntoIterator<Item = &'r OwnerRef<'a>>) -> Option<Self> {
        refs.into_iter()
            .find(|r| r.controller == Some(true))
            .map(|r| Controller {
                api_version: r.api_version.clone().into_owned(),
                kind: r.kind.clone().into_owned(),
                name: r.name.clone().into_owned(),
            })
    }

    fn group(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or("", |(group, _)| group)
    }

    fn workload(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// The workloads that own Pods, resolved through ReplicaSets (to their
/// Deployment) and Jobs (to their CronJob). Lookups are cached for one
/// namespace at a time: the API server lists Pods in namespace order, so
/// each namespace is met once and the cache never holds more than one.
pub struct Owners {
    client: Client,
    namespace: String,
    /// (kind, name) of a ReplicaSet or Job → its own controller, if any.
    cache: HashMap<(String, String), Option<Controller>>,
}

impl Owners {
    /// An empty cache reading through `client`.
    pub fn new(client: Client) -> Self {
        Owners {
            client,
            namespace: String::new(),
            cache: HashMap::new(),
        }
    }

    /// The workload to restart for a Pod of `namespace` with `refs`:
    /// `Deployment/api`, `CronJob/backup`, `StatefulSet/db`, ... or `None`
    /// for a Pod without a controller.
    pub async fn workload(
        &mut self,
        namespace: &str,
        refs: &[OwnerRef<'_>],
    ) -> Result<Option<String>, InventoryError> {
        let Some(owner) = Controller::of(refs) else {
            return Ok(None);
        };
        let parent_of = match (owner.group(), owner.kind.as_str()) {
            ("apps", "ReplicaSet") => "replicaset",
            ("batch", "Job") => "job",
            _ => return Ok(Some(owner.workload())),
        };
        if self.namespace != namespace {
            self.namespace = namespace.to_owned();
            self.cache.clear();
        }
        let key = (owner.kind.clone(), owner.name.clone());
        let parent = match self.cache.get(&key) {
            Some(parent) => parent.clone(),
            None => {
                let what = || format!("cannot get {parent_of} {namespace}/{}", owner.name);
                let meta = match parent_of {
                    "replicaset" => Api::<ReplicaSet>::namespaced(self.client.clone(), namespace)
                        .get_metadata_opt(&owner.name)
                        .await
                        .map(|m| m.map(|m| m.metadata)),
                    _ => Api::<Job>::namespaced(self.client.clone(), namespace)
                        .get_metadata_opt(&owner.name)
                        .await
                        .map(|m| m.map(|m| m.metadata)),
                }
                .map_err(|e| InventoryError::from_kube(what(), e))?;
                let parent = meta.and_then(|m| {
                    let refs: Vec<OwnerRef<'_>> = m
                        .owner_references
                        .iter()
                        .flatten()
                        .map(|r| OwnerRef {
                            api_version: Cow::Borrowed(r.api_version.as_str()),
                            kind: Cow::Borrowed(r.kind.as_str()),
                            name: Cow::Borrowed(r.name.as_str()),
                            controller: r.controller,
                        })
                        .collect();
                    Controller::of(&refs)
                });
                self.cache.insert(key, parent.clone());
                parent
            }
        };
        Ok(Some(parent.unwrap_or(owner).workload()))
    }
}
