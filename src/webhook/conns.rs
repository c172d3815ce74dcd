//! The table of open connections of one listener: the connection cap, and
//! which connection gives way when the table is full.
//!
//! Each connection has an [`Activity`]: when it last started or finished a
//! request, how many requests it has open, and how many of those are still
//! receiving their body. A connection whose every open request is still
//! receiving (or that has none: idle, mid-handshake, or sending headers)
//! holds nothing the server is working on, so when a new client arrives at
//! a full table, the one of those that has been quiet the longest is closed
//! to make room. Only connections whose requests are being answered are
//! never evicted, so idle or trickling clients cannot lock out
//! kube-apiserver or the probes: the newcomer always gets in unless every
//! slot is doing real work.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The open connections of one listener, at most `max` of them.
pub(crate) struct Table {
    epoch: Instant,
    max: usize,
    open: Mutex<Vec<Arc<Activity>>>,
    emptied: Notify,
}

/// What [`Table::admit`] did with a new connection.
pub(crate) enum Admission {
    /// There was room.
    Admitted(Slot),
    /// The table was full; the quietest evictable connection was told to
    /// close, and the new one took its place.
    Evicted(Slot),
    /// The table is full of connections being answered.
    Full,
}

impl Table {
    pub(crate) fn new(max: usize) -> Arc<Table> {
        Arc::new(Table {
            epoch: Instant::now(),
            max,
            open: Mutex::new(Vec::with_capacity(max.min(4096))),
            emptied: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Activity>>> {
        // The table's invariants hold between statements; a panic elsewhere
        // while it was held leaves nothing half-done.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection, evicting the quietest evictable one when
    /// the table is full.
    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        let activity = Arc::new(Activity::new(self.epoch));
        let slot = Slot {
            table: self.clone(),
            activity: activity.clone(),
        };
        let mut open = self.lock();
        if open.len() < self.max {
            open.push(activity);
            return Admission::Admitted(slot);
        }
        let victim = open
            .iter()
            .enumerate()
            .filter(|(_, a)| a.evictable())
            .min_by_key(|(_, a)| a.last_active.load(Ordering::Relaxed))
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                let evicted = open.swap_remove(i);
                // notify_one keeps the wake-up if the task is not waiting
                // right now, so it is never lost.
                evicted.evict.notify_one();
                open.push(activity);
                Admission::Evicted(slot)
            }
            None => Admission::Full,
        }
    }

    /// Connections open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Resolves once no connection is open.
    pub(crate) async fn emptied(&self) {
        loop {
            let notified = self.emptied.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A connection's place in the table; dropping it frees the place.
pub(crate) struct Slot {
    table: Arc<Table>,
    activity: Arc<Activity>,
}

impl Slot {
    /// The connection's activity, shared with its requests.
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        // An evicted connection was already taken out.
        if let Some(i) = open.iter().position(|a| Arc::ptr_eq(a, &self.activity)) {
            open.swap_remove(i);
        }
        if open.is_empty() {
            self.table.emptied.notify_waiters();
        }
    }
}

/// What one connection is doing, updated by its requests (a few relaxed
/// atomics per request) and read when choosing whom to evict.
pub(crate) struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch` at which a request last started or ended
    /// (or the connection was accepted). Bytes arriving do not count, so
    /// trickling never makes a connection look busy.
    last_active: AtomicU64,
    /// Requests started and not answered yet.
    requests: AtomicUsize,
    /// Of those, requests still receiving their body.
    receiving: AtomicUsize,
    evict: Notify,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let activity = Activity {
            epoch,
            last_active: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
            receiving: AtomicUsize::new(0),
            evict: Notify::new(),
        };
        activity.touch();
        activity
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_active.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether closing this connection would drop no request being
    /// answered.
    fn evictable(&self) -> bool {
        // Read `receiving` first: a request moves from receiving to
        // answered, so a stale `receiving` can only make it look busier.
        let receiving = self.receiving.load(Ordering::Relaxed);
        self.requests.load(Ordering::Relaxed) <= receiving
    }

    /// How long the connection has had no request open, or `None` while
    /// one is.
    pub(crate) fn quiet_for(&self) -> Option<Duration> {
        if self.requests.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = self.last_active.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// Resolves when the table has evicted this connection.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// A request started; `receiving` when its body is still to come.
    pub(crate) fn request_started(&self, receiving: bool) {
        self.touch();
        if receiving {
            self.receiving.fetch_add(1, Ordering::Relaxed);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's body ended (or was dropped unread).
    pub(crate) fn body_done(&self) {
        self.receiving.fetch_sub(1, Ordering::Relaxed);
    }

    /// A request was answered (or abandoned).
    pub(crate) fn request_done(&self) {
        self.requests.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(admission: Admission) -> Slot {
        match admission {
            Admission::Admitted(s) | Admission::Evicted(s) => s,
            Admission::Full => panic!("table full"),
        }
    }

    #[test]
    fn a_full_table_evicts_the_quietest_idle_connection_and_never_a_busy_one() {
        let table = Table::new(3);
        let at = |slot: &Slot, ms: u64| slot.activity().last_active.store(ms, Ordering::Relaxed);
        let busy = slot(table.admit());
        busy.activity().request_started(false);
        at(&busy, 0);
        let idle = slot(table.admit());
        at(&idle, 1);
        let trickling = slot(table.admit());
        trickling.activity().request_started(true);
        at(&trickling, 2);

        // The idle one goes first (quiet since 1), then the one trickling
        // a body (since 2); the one being answered (since 0) stays.
        let Admission::Evicted(first) = table.admit() else {
            panic!("expected an eviction")
        };
        first.activity().request_started(false);
        assert_eq!(table.len(), 3);
        let Admission::Evicted(second) = table.admit() else {
            panic!("expected an eviction")
        };
        second.activity().request_started(false);
        assert!(matches!(table.admit(), Admission::Full));
        let open = table.lock().clone();
        for (kept, name) in [(&busy, "busy"), (&first, "first"), (&second, "second")] {
            assert!(
                open.iter().any(|a| Arc::ptr_eq(a, kept.activity())),
                "{name}"
            );
        }
        drop(open);
        drop((idle, trickling));
        assert_eq!(table.len(), 3, "evicted slots were already removed");
        drop((busy, first, second));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn quiet_time_counts_only_without_open_requests() {
        let table = Table::new(1);
        let s = slot(table.admit());
        assert!(s.activity().quiet_for().is_some());
        s.activity().request_started(true);
        assert!(s.activity().quiet_for().is_none());
        s.activity().body_done();
        s.activity().request_done();
        assert!(s.activity().quiet_for().is_some());
    }
}
