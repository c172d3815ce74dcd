//! How the watches recover from API errors, in particular after a
//! kube-apiserver restart.
//!
//! kube's watcher already re-lists after `410 Gone` ("too old resource
//! version": a restarted API server's watch cache no longer has our
//! resourceVersion), but its default backoff runs after every error, 410
//! included, and grows to 30 s; after a restart that left a policy edit
//! unapplied for 14 s and more. Here:
//! - `410 Gone`, wherever it comes from, means "list again now": the watch
//!   is rebuilt at once, with no wait;
//! - any other error waits, starting at [`FIRST_RETRY`] and doubling up to
//!   [`MAX_RETRY`], each wait plus a random jitter of up to its own length
//!   (so replicas do not retry in step), so at most 2 × [`MAX_RETRY`];
//! - the wait starts over once the API answers again (an object listed or
//!   watched, not merely a new attempt).

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use kube::runtime::watcher;

/// The first wait after an error.
pub const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest wait before jitter.
pub const MAX_RETRY: Duration = Duration::from_millis(1500);

/// What to do after a watch error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The resourceVersion is gone: rebuild the watch (list again) now.
    Relist,
    /// Wait this long, then let the watcher retry.
    Wait(Duration),
}

/// The retry state of one watch.
#[derive(Debug)]
pub struct Retry {
    builder: ExponentialBuilder,
    backoff: ExponentialBackoff,
}

impl Default for Retry {
    fn default() -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(FIRST_RETRY)
            .with_max_delay(MAX_RETRY)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Retry {
            builder,
            backoff: builder.build(),
        }
    }
}

impl Retry {
    /// What to do after `err`.
    pub fn after(&mut self, err: &watcher::Error) -> Recovery {
        if is_gone(err) {
            return Recovery::Relist;
        }
        // Never exhausted (no maximum number of times).
        Recovery::Wait(self.backoff.next().unwrap_or(MAX_RETRY))
    }

    /// The API answered: the next error waits [`FIRST_RETRY`] again.
    pub fn answered(&mut self) {
        self.backoff = self.builder.build();
    }

    /// Whether `event` shows that the API answered. `Init` does not: the
    /// watcher emits it before it sends the list request.
    pub fn answered_by<K>(&mut self, event: &watcher::Event<K>) {
        if !matches!(event, watcher::Event::Init) {
            self.answered();
        }
    }
}

/// `410 Gone` from a list, a watch request or a watch event.
pub fn is_gone(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn status(code: u16) -> Box<Status> {
        let mut status = Status::failure("too old resource version: 1", "Expired");
        status.code = code;
        Box::new(status)
    }

    #[test]
    fn gone_relists_at_once_and_other_errors_wait_a_few_seconds_at_most() {
        let mut retry = Retry::default();
        for _ in 0..20 {
            match retry.after(&watcher::Error::NoResourceVersion) {
                Recovery::Wait(wait) => assert!(wait <= MAX_RETRY * 2, "{wait:?}"),
                Recovery::Relist => panic!("only 410 relists"),
            }
        }
        // However long the API was down, a 410 relists without waiting.
        let gone = [
            watcher::Error::WatchError(status(410)),
            watcher::Error::WatchStartFailed(kube::Error::Api(status(410))),
            watcher::Error::InitialListFailed(kube::Error::Api(status(410))),
        ];
        for err in &gone {
            assert_eq!(retry.after(err), Recovery::Relist, "{err}");
        }
        assert!(matches!(
            retry.after(&watcher::Error::WatchError(status(500))),
            Recovery::Wait(_)
        ));
        // Once the API answers, the wait starts small again.
        retry.answered_by(&watcher::Event::<()>::Init);
        let Recovery::Wait(long) = retry.after(&watcher::Error::NoResourceVersion) else {
            panic!("waits");
        };
        assert!(long >= MAX_RETRY, "{long:?}");
        retry.answered_by(&watcher::Event::<()>::InitDone);
        let Recovery::Wait(short) = retry.after(&watcher::Error::NoResourceVersion) else {
            panic!("waits");
        };
        assert!(short <= FIRST_RETRY * 2, "{short:?}");
    }
}
