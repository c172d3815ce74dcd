//! Leader election over a `coordination.k8s.io/v1` Lease, the way
//! client-go's `leaderelection` does it with a Lease lock: get, then create
//! or update with the object's resourceVersion, so two replicas can never
//! both win a round (the loser gets 409).
//!
//! Written here rather than taken from a crate: `kube-lease-manager` (the
//! one kube-5 crate) writes the Lease with strategic-merge and server-side
//! apply patches, and the sync ServiceAccount may only get, create and
//! update Leases.
//!
//! Expiry is judged on this replica's clock, from when it last saw the
//! Lease change (as client-go does), never by comparing timestamps written
//! by another node. A leader counts as one only until `renew_deadline`
//! after its last successful renewal started: [`Leadership::is_leader`] is
//! checked before every write, and [`Leadership::subscribe`] turns false at
//! that instant so writes in flight are abandoned.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use super::metrics::SyncMetrics;

/// The Lease's name.
pub const LEASE_NAME: &str = "pull-secret-injector-sync";

/// Timings of the election.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimings {
    /// How long a Lease holds without renewal (written into it).
    pub duration: Duration,
    /// A leader that has not renewed for this long stops leading; shorter
    /// than `duration`, so it stops before anyone may take over.
    pub renew_deadline: Duration,
    /// How often the Lease is renewed or, by followers, checked.
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        LeaseTimings {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether this replica leads, shared with every writer.
#[derive(Debug)]
pub struct Leadership {
    until: Mutex<Option<Instant>>,
    tx: watch::Sender<bool>,
}

impl Default for Leadership {
    fn default() -> Self {
        Leadership {
            until: Mutex::new(None),
            tx: watch::channel(false).0,
        }
    }
}

impl Leadership {
    /// True while the last renewal is recent enough.
    pub fn is_leader(&self) -> bool {
        self.lock().is_some_and(|until| Instant::now() < until)
    }

    /// A receiver that is true while leading and turns false the moment
    /// leadership ends.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Leading until `until`.
    fn lead_until(&self, until: Instant) {
        *self.lock() = Some(until);
        self.tx.send_if_modified(|v| !std::mem::replace(v, true));
    }

    /// Not leading any more.
    fn stop(&self) {
        *self.lock() = None;
        self.tx.send_if_modified(|v| std::mem::replace(v, false));
    }

    fn deadline(&self) -> Option<Instant> {
        *self.lock()
    }

    // A panic while held cannot leave an Option<Instant> half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The election of one replica.
pub struct Elector {
    api: Api<Lease>,
    identity: String,
    timings: LeaseTimings,
    /// The Lease's resourceVersion when it last changed, and when that was
    /// seen here.
    observed: Option<(String, Instant)>,
}

impl Elector {
    /// An elector for the Lease [`LEASE_NAME`] in `namespace`, as `identity`.
    pub fn new(client: Client, namespace: &str, identity: &str, timings: LeaseTimings) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            identity: identity.to_owned(),
            timings,
            observed: None,
        }
    }

    /// Takes part in the election until `stop` turns true, then gives the
    /// Lease up if held (so the next leader need not wait for it to expire).
    pub async fn run(
        mut self,
        leadership: &Leadership,
        metrics: &SyncMetrics,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut was_leader = false;
        loop {
            let started = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(true) => leadership.lead_until(started + self.timings.renew_deadline),
                Ok(false) => leadership.stop(),
                Err(err) => {
                    tracing::warn!(error = %err, lease = LEASE_NAME, "cannot read or write the leader Lease; retrying");
                }
            }
            let leading = leadership.is_leader();
            if leading != was_leader {
                if leading {
                    tracing::info!(identity = %self.identity, "became the sync leader");
                } else {
                    tracing::warn!(identity = %self.identity, "no longer the sync leader; writes stopped");
                }
                was_leader = leading;
            }
            metrics.leader(leading);
            let deadline = leadership.deadline();
            let expiry = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let stopping = tokio::select! {
                () = tokio::time::sleep(self.timings.retry_period) => false,
                () = expiry => {
                    leadership.stop();
                    false
                }
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                if leadership.is_leader() {
                    leadership.stop();
                    metrics.leader(false);
                    self.release().await;
                }
                return Ok(());
            }
        }
    }

    /// One round: whether this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
                Err(err) => Err(err),
            };
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != rv) {
            self.observed = Some((rv, Instant::now()));
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == self.identity {
            LeaseSpec {
                renew_time: Some(now),
                lease_duration_seconds: Some(self.duration_seconds()),
                ..spec
            }
        } else {
            let held_for = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.timings.duration, Duration::from_secs);
            let unchanged_since = self.observed.as_ref().map_or_else(Instant::now, |o| o.1);
            if !holder.is_empty() && unchanged_since.elapsed() < held_for {
                return Ok(false);
            }
            tracing::info!(previous = %holder, "taking over the sync Lease");
            self.spec(now, transitions + 1)
        };
        lease.spec = Some(next);
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observed = updated
                    .metadata
                    .resource_version
                    .map(|rv| (rv, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.timings.duration.as_secs()).unwrap_or(i32::MAX)
    }

    fn spec(&self, now: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up: no holder, so a follower takes it at its next
    /// round.
    async fn release(&self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
                return Ok(());
            };
            let Some(spec) = lease.spec.as_mut() else {
                return Ok(());
            };
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            self.api
                .replace(LEASE_NAME, &PostParams::default(), &lease)
                .await
                .map(drop)
        };
        match tokio::time::timeout(Duration::from_secs(3), result).await {
            Ok(Ok(())) => tracing::info!("released the sync Lease"),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot release the sync Lease; it expires by itself")
            }
            Err(_) => tracing::warn!("releasing the sync Lease timed out; it expires by itself"),
        }
    }
}
