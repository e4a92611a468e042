//! The background task that replays logouts made while Redis was down; see `revocations.rs`.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;

use super::SessionStore;
use super::revocations::{Attempt, RETRY_PAUSE};
use super::store::Inner;
use crate::stats::Counters;

/// Runs until the store is dropped. Replays only while Redis looks healthy, so an outage of
/// any length uses up no attempts.
pub(crate) async fn replay(store: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(inner) = store.upgrade() else {
            return;
        };
        let store_now = SessionStore::from_inner(inner);
        let Some(id) = store_now.revocations().next() else {
            drop(store_now);
            wake.notified().await;
            continue;
        };
        if !store_now.manager().health().is_healthy {
            drop(store_now);
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        }
        let revocations = store_now.revocations();
        match store_now
            .backend()
            .revoke(&id, store_now.tombstone_secs())
            .await
        {
            Ok(()) => {
                revocations.settle(&id, Attempt::Replayed);
                Counters::bump(&store_now.counters().revocations_replayed);
                tracing::info!("replayed a logout made while Redis was down");
            }
            Err(err) => {
                if revocations.settle(&id, Attempt::Failed) {
                    Counters::bump(&store_now.counters().revocations_failed);
                    tracing::warn!(error = %err, "gave up replaying a logout made while Redis was down");
                }
                drop(store_now);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
