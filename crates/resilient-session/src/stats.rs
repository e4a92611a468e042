//! Counters of what the session engine did: refused cookies, corrupt sessions, fallbacks,
//! touches, replayed logouts. Each bump is also recorded as a metric (see [`crate::metrics`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Event;

/// A snapshot of the session engine's counters since start; see
/// [`SessionEngine::stats`](crate::SessionEngine::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SessionStats {
    /// Cookies of ours that were tampered, truncated, malformed, too long to be ours or from an
    /// unknown key.
    pub cookies_rejected: u64,
    /// Valid cookies past the idle timeout or the absolute lifetime.
    pub cookies_expired: u64,
    /// Sessions in Redis that were not JSON, failed validation or were too large, and were
    /// deleted.
    pub corrupt_sessions: u64,
    /// Requests whose session was served from the cookie because Redis was unavailable.
    pub fallback_reads: u64,
    /// Requests whose changes went into the cookie because Redis was unavailable.
    pub fallback_writes: u64,
    /// Cookies that did not fit in 4096 bytes: what was written while Redis was down was cut.
    pub oversized_cookies: u64,
    /// Idle timeouts refreshed in Redis (`EXPIRE` of an existing session) without a write.
    pub touches: u64,
    /// Logouts made while Redis was down and queued for replay (a second logout of a session
    /// already waiting counts again).
    pub revocations_queued: u64,
    /// Logouts made while Redis was down, waiting to be replayed.
    pub revocations_pending: u64,
    /// Logouts made while Redis was down and replayed since (`DEL` + tombstone).
    pub revocations_replayed: u64,
    /// Logouts made while Redis was down that could not be replayed (queue full, retries
    /// exhausted); each was logged.
    pub revocations_failed: u64,
    /// The logout queue was full: this process refuses to let a cookie stand in for Redis on
    /// its own until it has drained.
    pub failing_closed: bool,
    /// Cookies whose changes from while Redis was down were older than what Redis holds (the
    /// session was written since), and were dropped rather than written over it.
    pub stale_changes_dropped: u64,
    /// Sessions of tower-sessions or actix-session carried over ([`Import`](crate::Import)).
    pub sessions_imported: u64,
}

/// One count, and the metric each bump records.
#[derive(Debug)]
pub(crate) struct Counter {
    count: AtomicU64,
    event: Event,
}

impl Counter {
    const fn new(event: Event) -> Self {
        Self {
            count: AtomicU64::new(0),
            event,
        }
    }

    fn read(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) cookies_rejected: Counter,
    /// Counted in `cookies_rejected` too; a metric label of its own.
    pub(crate) cookies_too_long: Counter,
    pub(crate) cookies_expired: Counter,
    pub(crate) corrupt_sessions: Counter,
    pub(crate) fallback_reads: Counter,
    pub(crate) fallback_writes: Counter,
    pub(crate) oversized_cookies: Counter,
    pub(crate) touches: Counter,
    pub(crate) revocations_queued: Counter,
    pub(crate) revocations_replayed: Counter,
    pub(crate) revocations_failed: Counter,
    pub(crate) sessions_imported: Counter,
    pub(crate) stale_changes_dropped: Counter,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            cookies_rejected: Counter::new(Event::CookieInvalid),
            cookies_too_long: Counter::new(Event::CookieTooLong),
            cookies_expired: Counter::new(Event::CookieExpired),
            corrupt_sessions: Counter::new(Event::CorruptSession),
            fallback_reads: Counter::new(Event::FallbackRead),
            fallback_writes: Counter::new(Event::FallbackWrite),
            oversized_cookies: Counter::new(Event::CookieCut),
            touches: Counter::new(Event::Touch),
            revocations_queued: Counter::new(Event::RevocationQueued),
            revocations_replayed: Counter::new(Event::RevocationReplayed),
            revocations_failed: Counter::new(Event::RevocationFailed),
            sessions_imported: Counter::new(Event::SessionImported),
            stale_changes_dropped: Counter::new(Event::StaleChangesDropped),
        }
    }
}

impl Counters {
    /// Counts one, and records the counter's metric.
    pub(crate) fn bump(counter: &Counter) {
        counter.count.fetch_add(1, Ordering::Relaxed);
        counter.event.record();
    }

    pub(crate) fn snapshot(&self, revocations_pending: u64, failing_closed: bool) -> SessionStats {
        SessionStats {
            cookies_rejected: self.cookies_rejected.read() + self.cookies_too_long.read(),
            cookies_expired: self.cookies_expired.read(),
            corrupt_sessions: self.corrupt_sessions.read(),
            fallback_reads: self.fallback_reads.read(),
            fallback_writes: self.fallback_writes.read(),
            oversized_cookies: self.oversized_cookies.read(),
            touches: self.touches.read(),
            revocations_queued: self.revocations_queued.read(),
            revocations_pending,
            revocations_replayed: self.revocations_replayed.read(),
            revocations_failed: self.revocations_failed.read(),
            failing_closed,
            stale_changes_dropped: self.stale_changes_dropped.read(),
            sessions_imported: self.sessions_imported.read(),
        }
    }
}
