#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recovery after a kube-apiserver restart, against the fake API server:
//! down (connection refused) or hung for a few seconds, then back on the
//! same port with a new watch cache (so the old resourceVersion is `410
//! Gone`). A policy edit and a namespace relabel made right after the
//! restart must be seen within a couple of seconds: a 410 lists again at
//! once, and other errors are retried within `2 × MAX_RETRY` (3 s), however
//! long the API was away.

mod fake_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::FakeApi;
use pull_secret_injector::k8s::configmap;
use pull_secret_injector::k8s::namespaces::NamespaceCache;
use pull_secret_injector::runtime::policy_store::PolicyStore;
use tokio::sync::watch;

const V1: &str = "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n";
const V2: &str = "rules:\n- name: ghcr\n  registries: [ghcr.io]\n  secrets: [ghcr]\n";
const V3: &str = "rules:\n- name: quay\n  registries: [quay.io]\n  secrets: [quay]\n";

/// How long the API is away: long enough for kube's default backoff to
/// have grown past 6 s (0.8, 1.6, 3.2 s ...).
const OUTAGE: Duration = Duration::from_secs(5);
/// How soon after the restart an edit must be seen: the longest retry wait
/// (3 s) plus a list and a watch.
const RECOVERY: Duration = Duration::from_secs(4);

/// Polls `f` until it holds, failing after `within`.
async fn within(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn generation(store: &PolicyStore) -> Option<u64> {
    store.current().map(|c| c.generation)
}

fn label(cache: &NamespaceCache, namespace: &str) -> Option<String> {
    cache
        .cached(namespace)
        .and_then(|labels| labels.get("registry-access").cloned())
}

/// The policy ConfigMap watch and the namespace cache, running.
struct Watches {
    store: Arc<PolicyStore>,
    cache: Arc<NamespaceCache>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

async fn start(fake: &FakeApi) -> Watches {
    let ns = fake.manifests().namespace.clone();
    let name = fake.manifests().policy_configmap.clone();
    fake.put_configmap(&ns, &name, &[("policy.yaml", V1)]);
    fake.put_namespace("team-a", &[("registry-access", "v1")]);
    let store = Arc::new(PolicyStore::default());
    let cache = NamespaceCache::new(fake.client(), Duration::from_secs(2));
    let (stop, stop_rx) = watch::channel(false);
    let watch = configmap::Watch {
        client: fake.client(),
        namespace: ns,
        name,
        store: store.clone(),
        instance: None,
    };
    let tasks = vec![
        tokio::spawn(watch.run(stop_rx.clone())),
        tokio::spawn(cache.clone().run(stop_rx)),
    ];
    within(Duration::from_secs(20), "first policy", || {
        generation(&store) == Some(1)
    })
    .await;
    within(Duration::from_secs(20), "first labels", || {
        label(&cache, "team-a").as_deref() == Some("v1")
    })
    .await;
    Watches {
        store,
        cache,
        stop,
        tasks,
    }
}

impl Watches {
    /// Edits the policy and relabels the namespace, then waits for both.
    async fn edit_and_expect(&self, fake: &FakeApi, text: &str, generation_now: u64, value: &str) {
        let ns = fake.manifests().namespace.clone();
        let name = fake.manifests().policy_configmap.clone();
        fake.put_configmap(&ns, &name, &[("policy.yaml", text)]);
        fake.put_namespace("team-a", &[("registry-access", value)]);
        within(RECOVERY, "the policy edit after the restart", || {
            generation(&self.store) == Some(generation_now)
        })
        .await;
        within(RECOVERY, "the relabel after the restart", || {
            label(&self.cache, "team-a").as_deref() == Some(value)
        })
        .await;
    }

    async fn stop(self, fake: &FakeApi) {
        self.stop.send(true).unwrap();
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
        fake.assert_clean();
    }
}

#[tokio::test]
async fn watches_recover_quickly_after_the_api_server_was_down() {
    let fake = FakeApi::start().await;
    let watches = start(&fake).await;
    let lists = fake.counts().0;

    fake.stop_api();
    tokio::time::sleep(OUTAGE).await;
    fake.restart_api().await;
    watches.edit_and_expect(&fake, V2, 2, "v2").await;
    // The watch came back through a 410 and a new list.
    assert!(fake.counts().0 > lists);
    watches.stop(&fake).await;
}

#[tokio::test]
async fn watches_recover_quickly_after_the_api_server_hung() {
    let fake = FakeApi::start().await;
    let watches = start(&fake).await;

    // Hung: connections open, nothing answered; an edit made meanwhile
    // reaches nobody.
    fake.stall_api();
    let ns = fake.manifests().namespace.clone();
    let name = fake.manifests().policy_configmap.clone();
    fake.put_configmap(&ns, &name, &[("policy.yaml", V2)]);
    tokio::time::sleep(OUTAGE).await;
    assert_eq!(generation(&watches.store), Some(1));
    // Restarted: the edit made during the hang and the next one arrive.
    fake.restart_api().await;
    within(RECOVERY, "the edit made during the hang", || {
        generation(&watches.store) == Some(2)
    })
    .await;
    watches.edit_and_expect(&fake, V3, 3, "v3").await;
    watches.stop(&fake).await;
}
