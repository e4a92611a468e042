//! Counters of what the session engine did: refused cookies, corrupt sessions, fallbacks,
//! replayed logouts.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the session engine's counters since start; see
/// [`SessionStore::stats`](crate::SessionStore::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SessionStats {
    /// Cookies of ours that were tampered, truncated, malformed or from an unknown key.
    pub cookies_rejected: u64,
    /// Sessions in Redis that were not JSON, failed validation or were too large, and were
    /// deleted.
    pub corrupt_sessions: u64,
    /// Requests whose session was served from the cookie because Redis was unavailable.
    pub fallback_reads: u64,
    /// Requests whose changes went into the cookie because Redis was unavailable.
    pub fallback_writes: u64,
    /// Cookies that did not fit in 4096 bytes: what was written while Redis was down was cut.
    pub oversized_cookies: u64,
    /// Logouts made while Redis was down, waiting to be replayed.
    pub revocations_pending: u64,
    /// Logouts made while Redis was down and replayed since (`DEL` + tombstone).
    pub revocations_replayed: u64,
    /// Logouts made while Redis was down that could not be replayed (queue full, retries
    /// exhausted); each was logged.
    pub revocations_failed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) cookies_rejected: AtomicU64,
    pub(crate) corrupt_sessions: AtomicU64,
    pub(crate) fallback_reads: AtomicU64,
    pub(crate) fallback_writes: AtomicU64,
    pub(crate) oversized_cookies: AtomicU64,
    pub(crate) revocations_replayed: AtomicU64,
    pub(crate) revocations_failed: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, revocations_pending: u64) -> SessionStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SessionStats {
            cookies_rejected: read(&self.cookies_rejected),
            corrupt_sessions: read(&self.corrupt_sessions),
            fallback_reads: read(&self.fallback_reads),
            fallback_writes: read(&self.fallback_writes),
            oversized_cookies: read(&self.oversized_cookies),
            revocations_pending,
            revocations_replayed: read(&self.revocations_replayed),
            revocations_failed: read(&self.revocations_failed),
        }
    }
}
