//! The background task that replays logouts made while Redis was down; see `revocations.rs`.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;

use super::SessionEngine;
use super::id::Digest;
use super::revocations::{Attempt, RETRY_PAUSE, Target};
use super::store::{Inner, now};
use crate::stats::Counters;

/// Runs until the store is dropped. Replays only while Redis looks healthy, so an outage of
/// any length uses up no attempts.
pub(crate) async fn replay(store: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(inner) = store.upgrade() else {
            return;
        };
        let store_now = SessionEngine::from_inner(inner);
        let now = now();
        let Some(target) = store_now.revocations().next(now) else {
            drop(store_now);
            wake.notified().await;
            continue;
        };
        if store_now.manager().is_not_used() {
            // A cookie-only engine: the queue only refuses copies of logged-out cookies here.
            drop(store_now);
            wake.notified().await;
            continue;
        }
        if !store_now.manager().health().is_healthy {
            drop(store_now);
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        }
        let done = match &target {
            Target::Session(digest) => match store_now.revoke_chain(*digest).await {
                Ok(_) => Ok(()),
                Err((left, err)) if left == *digest => Err(err),
                // The first link is done; the rest of the chain waits in its turn.
                Err((left, _)) => {
                    let until = store_now.policy().revocation_matters_until(now, now, true);
                    store_now.revoke_later(Target::Session(left), until, now);
                    Ok(())
                }
            },
            Target::Legacy(key) => store_now.backend().delete(key).await,
            Target::Owned { owner, session } => {
                store_now.revoke_owned(owner, *session).await.map(drop)
            }
            Target::Owner { owner, keep } => {
                let keep = keep.map(Digest::to_text);
                store_now
                    .revoke_owner(owner, keep.as_deref())
                    .await
                    .map(drop)
            }
        };
        let revocations = store_now.revocations();
        match done {
            Ok(()) => {
                revocations.settle(&target, Attempt::Replayed);
                Counters::bump(&store_now.counters().revocations_replayed);
                tracing::info!("replayed a logout made while Redis was down");
            }
            Err(err) => {
                if revocations.settle(&target, Attempt::Failed) {
                    Counters::bump(&store_now.counters().revocations_failed);
                    tracing::warn!(error = %err, "gave up replaying a logout made while Redis was down");
                }
                drop(store_now);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
