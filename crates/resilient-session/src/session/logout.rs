//! Logouts: now, following the "moved" tombstones to successors, or queued until Redis is back.

use super::engine::load::MAX_FOLLOW;
use super::id::Digest;
use super::revocations::{Queued, Target};
use super::tombstone::tombstone_of;
use super::{SessionEngine, SessionId};
use crate::Error;
use crate::cookie::Payload;
use crate::stats::Counters;

impl SessionEngine {
    /// Queues the logout of `target` for replay, which matters until `until`.
    pub(crate) fn revoke_later(&self, target: Target, until: i64, now: i64) {
        let counters = &self.counters();
        match self.revocations().push(target, until, now) {
            Queued::Yes | Queued::Already => Counters::bump(&counters.revocations_queued),
            Queued::Lost => {
                Counters::bump(&counters.revocations_failed);
                tracing::error!(
                    "the queue of logouts waiting for Redis is full: this one is lost, and until the queue has drained no cookie stands in for Redis on its own (fail closed)"
                );
            }
        }
    }

    /// Queues the logout of a session whose cookie is `payload` (or, without one, as long as
    /// any session could matter).
    pub(crate) fn revoke_id_later(&self, id: &SessionId, payload: Option<&Payload>, now: i64) {
        let policy = &self.policy();
        let until = match payload {
            Some(p) => {
                policy.revocation_matters_until(p.created, p.touched, p.id.as_ref() == Some(id))
            }
            None => policy.revocation_matters_until(now, now, true),
        };
        self.revoke_later(Target::Session(*id.digest()), until, now);
    }

    /// A logout, now: `DEL` and a "revoked" tombstone for `digest`, then for every successor a
    /// "moved" tombstone names; each leaves its owner's index. Returns the owner the session
    /// `digest` had, if any.
    ///
    /// # Errors
    ///
    /// The link of the chain Redis could not take, and why: the caller queues it.
    pub(crate) async fn revoke_chain(
        &self,
        digest: Digest,
    ) -> Result<Option<String>, (Digest, Error)> {
        let secs = self.policy().tombstone_secs();
        let mut next = Some(digest);
        let mut first_owner = None;
        let mut steps = 0;
        while let Some(digest) = next {
            let (previous, owner) = self
                .backend()
                .revoke(&digest, secs)
                .await
                .map_err(|err| (digest, err))?;
            if let Some(owner) = &owner {
                self.unindex(owner, &digest).await;
            }
            if steps == 0 {
                first_owner = owner;
            }
            steps += 1;
            next = tombstone_of(previous.as_deref(), |_| None)
                .successor()
                .filter(|_| steps <= MAX_FOLLOW);
        }
        Ok(first_owner)
    }

    /// [`revoke_chain`](Self::revoke_chain), queueing what Redis cannot take now.
    pub(crate) async fn revoke_now_or_later(&self, digest: Digest, now: i64) {
        if let Err((left, err)) = self.revoke_chain(digest).await {
            tracing::debug!(error = %err, "logout queued until Redis is available");
            let until = self.policy().revocation_matters_until(now, now, true);
            self.revoke_later(Target::Session(left), until, now);
        }
    }
}
