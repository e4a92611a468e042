//! Logouts made while Redis was down, replayed when it is back; so are the revocations of an
//! owner's sessions (see `owners.rs`), whose index cannot be read then.
//!
//! A logout that cannot reach Redis goes into an in-memory queue of key digests (never ids),
//! each with the time after which no copy of its cookie can be honoured any more (then it is
//! dropped, replayed or not). Until it is replayed, this process treats the session as over (a
//! saved copy of the cookie is anonymous here). A background task waits for Redis, then
//! replays each logout as `DEL` plus a tombstone, retrying a failed replay a bounded number of
//! times.
//!
//! The queue holds [`SessionConfig::max_queued_logouts`](crate::SessionConfig::max_queued_logouts)
//! entries (default 500,000, about 50 MB at most). Should it be full even of entries that still
//! matter, the logout cannot be kept: the process then *fails closed* (no cookie stands in for
//! Redis on its own, so the lost logout cannot be served from its cookie either) until the
//! queue has drained, and says so in its log and metrics.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::id::Digest;

/// Default most logouts waiting for Redis at once.
pub(crate) const DEFAULT_CAPACITY: usize = 500_000;

/// Replay attempts made while Redis looked available, before a logout is given up.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// Wait between checks for Redis, and after a failed replay.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What a queued logout deletes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// One of our sessions: its hash goes, a tombstone stays.
    Session(Digest),
    /// An imported app's session key.
    Legacy(Box<str>),
    /// One of an owner's sessions, by its handle: ended if it is theirs.
    Owned { owner: Box<str>, session: Digest },
    /// All of an owner's sessions, but `keep`.
    Owner {
        owner: Box<str>,
        keep: Option<Digest>,
    },
}

#[derive(Debug)]
pub(crate) struct Revocations {
    queue: Mutex<Queue>,
    capacity: usize,
    /// The queue's length, readable without the lock (the request path asks on every load).
    pending: AtomicUsize,
    /// A logout was lost to a full queue: no cookie stands in on its own until it drained.
    closed: AtomicBool,
    /// Wakes the replay task when a logout is queued (or the store is dropped).
    pub(crate) wake: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<Target>,
    entries: HashMap<Target, Entry>,
    /// When a full queue was last swept of what no longer matters: at most once a second, so
    /// that a flood into a full queue does not scan it, under the lock, on every push.
    swept: i64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Unix seconds after which no cookie can use the session any more.
    until: i64,
    attempts: u32,
}

/// What became of [`Revocations::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    Yes,
    /// Waiting already.
    Already,
    /// Full of logouts that still matter: this one is lost, and the process fails closed.
    Lost,
}

/// What became of a replay attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    Replayed,
    Failed,
}

impl Revocations {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::default(),
            capacity,
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            wake: Arc::default(),
        }
    }

    /// Queues a logout of `target`, which matters until `until`.
    pub(crate) fn push(&self, target: Target, until: i64, now: i64) -> Queued {
        let mut queue = self.lock();
        if let Some(entry) = queue.entries.get_mut(&target) {
            entry.until = entry.until.max(until);
            return Queued::Already;
        }
        if queue.order.len() >= self.capacity && queue.swept < now {
            queue.swept = now;
            queue.drop_expired(now);
        }
        if queue.order.len() >= self.capacity {
            if !self.closed.swap(true, Ordering::AcqRel) {
                crate::metrics::failing_closed(true);
            }
            return Queued::Lost;
        }
        queue
            .entries
            .insert(target.clone(), Entry { until, attempts: 0 });
        queue.order.push_back(target);
        self.pending.store(queue.order.len(), Ordering::Release);
        drop(queue);
        self.wake.notify_one();
        Queued::Yes
    }

    /// Whether a logout of `digest` waits to be replayed.
    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        !self.is_empty() && self.lock().entries.contains_key(&Target::Session(*digest))
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A logout was lost: cookies must not stand in for Redis on their own.
    pub(crate) fn failing_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The next logout to replay, if any still matters at `now`.
    pub(crate) fn next(&self, now: i64) -> Option<Target> {
        let mut queue = self.lock();
        let mut next = None;
        while let Some(target) = queue.order.front().cloned() {
            if queue.entries.get(&target).is_some_and(|e| e.until >= now) {
                next = Some(target);
                break;
            }
            queue.order.pop_front();
            queue.entries.remove(&target);
        }
        self.settled(&queue);
        next
    }

    /// Records the outcome for `target`. Returns `true` when a failure used up the last
    /// attempt and the logout was dropped.
    pub(crate) fn settle(&self, target: &Target, attempt: Attempt) -> bool {
        let mut queue = self.lock();
        let Some(entry) = queue.entries.get_mut(target) else {
            return false;
        };
        let given_up = match attempt {
            Attempt::Replayed => true,
            Attempt::Failed => {
                entry.attempts += 1;
                entry.attempts >= MAX_ATTEMPTS
            }
        };
        if let Some(position) = queue.order.iter().position(|queued| queued == target) {
            queue.order.remove(position);
            if given_up {
                queue.entries.remove(target);
            } else {
                // Let the others have their turn.
                queue.order.push_back(target.clone());
            }
        }
        self.settled(&queue);
        given_up && attempt == Attempt::Failed
    }

    /// Publishes the length; an empty queue no longer fails closed.
    fn settled(&self, queue: &Queue) {
        self.pending.store(queue.order.len(), Ordering::Release);
        if queue.order.is_empty() && self.closed.swap(false, Ordering::AcqRel) {
            crate::metrics::failing_closed(false);
            tracing::info!("the logout queue has drained: cookies stand in for Redis again");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Queue {
    /// Drops the logouts no cookie can use any more.
    fn drop_expired(&mut self, now: i64) {
        let entries = &mut self.entries;
        self.order.retain(|target| {
            let keep = entries.get(target).is_some_and(|e| e.until >= now);
            if !keep {
                entries.remove(target);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

    const NOW: i64 = 1_800_000_000;

    fn target() -> Target {
        Target::Session(*SessionId::generate().expect("random").digest())
    }

    #[test]
    fn queues_each_target_once_and_knows_its_members() {
        let revocations = Revocations::new(10);
        let (a, b) = (target(), target());
        assert_eq!(revocations.push(a.clone(), NOW, NOW), Queued::Yes);
        assert_eq!(revocations.push(a.clone(), NOW, NOW), Queued::Already);
        assert_eq!(revocations.push(b.clone(), NOW, NOW), Queued::Yes);
        assert_eq!(revocations.len(), 2);
        let Target::Session(digest) = &a else {
            unreachable!()
        };
        assert!(revocations.contains(digest));
        assert_eq!(revocations.next(NOW), Some(a.clone()));
        assert!(!revocations.settle(&a, Attempt::Replayed));
        assert!(!revocations.contains(digest));
        assert_eq!(revocations.next(NOW), Some(b));
    }

    #[test]
    fn gives_up_after_the_last_attempt() {
        let revocations = Revocations::new(10);
        let a = target();
        revocations.push(a.clone(), NOW, NOW);
        for _ in 1..MAX_ATTEMPTS {
            assert!(!revocations.settle(&a, Attempt::Failed));
            assert_eq!(revocations.len(), 1);
        }
        assert!(revocations.settle(&a, Attempt::Failed), "dropped");
        assert_eq!(revocations.len(), 0);
    }

    #[test]
    fn a_full_queue_makes_room_from_what_no_longer_matters_then_fails_closed() {
        let revocations = Revocations::new(3);
        revocations.push(target(), NOW - 1, NOW - 100);
        revocations.push(target(), NOW + 10, NOW - 100);
        revocations.push(target(), NOW + 10, NOW - 100);
        // Full; one entry no longer matters at NOW.
        assert_eq!(revocations.push(target(), NOW + 10, NOW), Queued::Yes);
        assert_eq!(revocations.len(), 3);
        assert!(!revocations.failing_closed());
        assert_eq!(revocations.push(target(), NOW + 10, NOW), Queued::Lost);
        assert!(revocations.failing_closed(), "a lost logout fails closed");
        // Until the queue drained.
        while let Some(next) = revocations.next(NOW) {
            revocations.settle(&next, Attempt::Replayed);
        }
        assert!(!revocations.failing_closed());
    }

    #[test]
    fn what_no_longer_matters_is_not_replayed() {
        let revocations = Revocations::new(10);
        let (old, live) = (target(), target());
        revocations.push(old, NOW - 1, NOW - 100);
        revocations.push(live.clone(), NOW + 1, NOW - 100);
        assert_eq!(revocations.next(NOW), Some(live));
        assert_eq!(revocations.len(), 1);
    }

    #[test]
    fn hundreds_of_thousands_fit_by_default() {
        let revocations = Revocations::new(DEFAULT_CAPACITY);
        for n in 0..200_000u32 {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            let digest = Digest::parse(&base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                bytes,
            ))
            .expect("a digest");
            assert_eq!(
                revocations.push(Target::Session(digest), NOW, NOW),
                Queued::Yes
            );
        }
        assert_eq!(revocations.len(), 200_000);
        assert!(!revocations.failing_closed());
    }
}
