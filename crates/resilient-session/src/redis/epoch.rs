//! The Redis data epoch: a random value kept at one key, created with `SET NX` when missing.
//!
//! A Redis that lost its data (restarted empty, failed over to a replica that had not caught up)
//! has no epoch key, so the next reader creates a new value. Comparing the epoch a cookie saw with
//! the current one tells "this session ended" (same epoch, key gone) from "Redis forgot it" (new
//! epoch). The manager reads it once per new connection, so knowing it costs no command per
//! request.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bb8_redis::redis;

#[derive(Debug, Default)]
pub(crate) struct Epoch {
    key: OnceLock<String>,
    value: Mutex<Option<Arc<str>>>,
}

impl Epoch {
    /// Track the epoch at `key`. A manager tracks one key; asking for another is refused.
    pub(crate) fn register(&self, key: &str) -> bool {
        self.key.get_or_init(|| key.to_owned()) == key
    }

    pub(crate) fn key(&self) -> Option<&str> {
        self.key.get().map(String::as_str)
    }

    pub(crate) fn cached(&self) -> Option<Arc<str>> {
        self.lock().clone()
    }

    /// Forget the value: the next reader asks Redis.
    pub(crate) fn forget(&self) {
        *self.lock() = None;
    }

    /// `SET key <new random value> NX GET`: creates the epoch when missing, and answers the
    /// existing value, or nil when this call created it. Returns the command and the new value.
    pub(crate) fn command(key: &str) -> (redis::Cmd, String) {
        let mut random = [0u8; 16];
        // Should the OS generator fail, a timestamp still differs from the last epoch.
        if getrandom::fill(&mut random).is_err() {
            let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
            random = now.to_le_bytes();
        }
        let proposed = URL_SAFE_NO_PAD.encode(random);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(&proposed).arg("NX").arg("GET");
        (cmd, proposed)
    }

    /// Record the answer to [`command`](Self::command).
    pub(crate) fn record(&self, existing: Option<String>, proposed: String) -> Arc<str> {
        let value: Arc<str> = Arc::from(existing.unwrap_or(proposed));
        *self.lock() = Some(Arc::clone(&value));
        value
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<str>>> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_per_manager() {
        let epoch = Epoch::default();
        assert!(epoch.register("session:epoch"));
        assert!(epoch.register("session:epoch"));
        assert!(!epoch.register("other:epoch"));
        assert_eq!(epoch.key(), Some("session:epoch"));
    }

    #[test]
    fn records_the_existing_value_or_the_proposed_one() {
        let epoch = Epoch::default();
        assert_eq!(epoch.cached(), None);
        let (_, proposed) = Epoch::command("k");
        assert_eq!(&*epoch.record(None, proposed.clone()), proposed.as_str());
        assert_eq!(&*epoch.record(Some("old".into()), proposed), "old");
        assert_eq!(epoch.cached().as_deref(), Some("old"));
    }
}
