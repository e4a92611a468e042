//! Logouts made while Redis was down, replayed when it is back.
//!
//! A logout that cannot reach Redis goes into a bounded in-memory queue. Until it is replayed,
//! this process treats the session as over (a saved copy of the cookie is anonymous here). A
//! background task waits for the circuit breaker to close, then replays each logout as `DEL` plus
//! a tombstone, retrying a failed replay a bounded number of times. What cannot be queued or
//! replayed is logged and counted.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::SessionId;

/// Most logouts waiting for Redis at once (about 100 bytes each).
pub(crate) const MAX_PENDING: usize = 10_000;

/// Replay attempts made while Redis looked available, before a logout is given up.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// Wait between checks for Redis, and after a failed replay.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
pub(crate) struct Revocations {
    queue: Mutex<Queue>,
    /// The queue's length, readable without the lock (the request path asks on every load).
    pending: AtomicUsize,
    /// Wakes the replay task when a logout is queued (or the store is dropped).
    pub(crate) wake: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<(SessionId, u32)>,
    members: HashSet<String>,
}

/// What became of a replay attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    Replayed,
    Failed,
}

impl Revocations {
    /// Queues a logout; `false` when the queue is full.
    pub(crate) fn push(&self, id: SessionId) -> bool {
        let mut queue = self.lock();
        if queue.members.contains(id.as_str()) {
            return true;
        }
        if queue.order.len() >= MAX_PENDING {
            return false;
        }
        queue.members.insert(id.as_str().to_owned());
        queue.order.push_back((id, 0));
        self.pending.store(queue.order.len(), Ordering::Release);
        drop(queue);
        self.wake.notify_one();
        true
    }

    /// Whether a logout of `id` waits to be replayed.
    pub(crate) fn contains(&self, id: &SessionId) -> bool {
        self.lock().members.contains(id.as_str())
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next logout to replay.
    pub(crate) fn next(&self) -> Option<SessionId> {
        self.lock().order.front().map(|(id, _)| id.clone())
    }

    /// Records the outcome for `id` (the front of the queue). Returns `true` when a failure used
    /// up the last attempt and the logout was dropped.
    pub(crate) fn settle(&self, id: &SessionId, attempt: Attempt) -> bool {
        let mut queue = self.lock();
        let Some(position) = queue.order.iter().position(|(queued, _)| queued == id) else {
            return false;
        };
        let given_up = match attempt {
            Attempt::Replayed => true,
            Attempt::Failed => {
                let attempts = &mut queue.order[position].1;
                *attempts += 1;
                *attempts >= MAX_ATTEMPTS
            }
        };
        if given_up {
            queue.order.remove(position);
            queue.members.remove(id.as_str());
            self.pending.store(queue.order.len(), Ordering::Release);
        } else if let Some(entry) = queue.order.remove(position) {
            // Let the others have their turn.
            queue.order.push_back(entry);
        }
        given_up && attempt == Attempt::Failed
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SessionId {
        SessionId::generate().expect("random")
    }

    #[test]
    fn queues_each_id_once_and_knows_its_members() {
        let revocations = Revocations::default();
        let (a, b) = (id(), id());
        assert!(revocations.push(a.clone()));
        assert!(revocations.push(a.clone()));
        assert!(revocations.push(b.clone()));
        assert_eq!(revocations.len(), 2);
        assert!(revocations.contains(&a) && revocations.contains(&b));
        assert_eq!(revocations.next(), Some(a.clone()));
        assert!(!revocations.settle(&a, Attempt::Replayed));
        assert!(!revocations.contains(&a));
        assert_eq!(revocations.next(), Some(b));
    }

    #[test]
    fn gives_up_after_the_last_attempt() {
        let revocations = Revocations::default();
        let a = id();
        revocations.push(a.clone());
        for _ in 1..MAX_ATTEMPTS {
            assert!(!revocations.settle(&a, Attempt::Failed));
            assert!(revocations.contains(&a));
        }
        assert!(revocations.settle(&a, Attempt::Failed), "dropped");
        assert_eq!(revocations.len(), 0);
    }

    #[test]
    fn is_bounded() {
        let revocations = Revocations::default();
        for _ in 0..MAX_PENDING {
            assert!(revocations.push(id()));
        }
        assert!(!revocations.push(id()), "full");
        assert_eq!(revocations.len(), MAX_PENDING);
    }
}
