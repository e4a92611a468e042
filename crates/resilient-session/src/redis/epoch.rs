//! The Redis data epoch: what changes when the Redis behind a session may have lost its data.
//!
//! It has two parts, read in one round trip: a random value kept at a key (read with `GET`, and
//! created with `SET NX` only when missing, so a Redis restarted empty or flushed gets a new one,
//! and a Redis that refuses writes can still be read), and the replication id
//! of the primary that answers (`INFO replication`: a new one after a restart, and after a
//! failover, when a replica that may not have caught up is promoted; the key alone would not
//! show that, since it was replicated). Comparing the epoch a cookie saw with the current one
//! tells "this session ended" (same epoch, key gone) from "Redis may have forgotten it" (new
//! epoch).
//!
//! A single node (or a Sentinel primary) has one epoch key, read once per new connection, so
//! knowing it costs no command per request. A Redis Cluster has one per hash slot, placed in the
//! slot it stands for, so that a failover of one shard changes the epoch of that shard's
//! sessions only: see [`slot_epoch_key`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bb8_redis::redis::{self, cluster_routing::Slot};

/// Most epoch values kept in memory: one per cluster slot, and a few more.
const MAX_CACHED: usize = 16_384 + 16;

#[derive(Debug, Default)]
pub(crate) struct Epoch {
    /// The key read on every new single-node connection: the first one asked for.
    key: OnceLock<String>,
    values: Mutex<HashMap<String, Arc<str>>>,
}

impl Epoch {
    /// Note `key` as asked for; the first key asked for is read on every new connection.
    pub(crate) fn register(&self, key: &str) {
        self.key.get_or_init(|| key.to_owned());
    }

    pub(crate) fn key(&self) -> Option<&str> {
        self.key.get().map(String::as_str)
    }

    pub(crate) fn cached(&self, key: &str) -> Option<Arc<str>> {
        self.lock().get(key).cloned()
    }

    /// Forget every value: the next reader asks Redis.
    pub(crate) fn forget(&self) {
        self.lock().clear();
    }

    /// `GET key` and, unless `key_only`, `INFO replication`, to the node that holds `key`. A
    /// read: it works on a Redis that refuses writes (`OOM`).
    pub(crate) fn read_command(key: &str, key_only: bool) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        pipeline.cmd("GET").arg(key);
        if !key_only {
            pipeline.cmd("INFO").arg("replication");
        }
        pipeline
    }

    /// For a Redis without an epoch yet: `SET key <new random value> NX GET`. Returns the
    /// command and the value it proposes (another process may have set one first: then `GET`
    /// answers that one).
    pub(crate) fn create_command(key: &str) -> (redis::Cmd, String) {
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

    /// Record the epoch of `key`: the stored value and the replication id from `info` (empty
    /// when it was not asked for).
    pub(crate) fn record(&self, key: &str, stored: String, info: &str) -> Arc<str> {
        let value: Arc<str> = match replication_id(info) {
            Some(id) => Arc::from(format!("{stored}.{id}")),
            None => Arc::from(stored),
        };
        let mut values = self.lock();
        if values.len() >= MAX_CACHED {
            values.clear();
        }
        values.insert(key.to_owned(), Arc::clone(&value));
        value
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<str>>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `master_replid` from `INFO replication`.
fn replication_id(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.strip_prefix("master_replid:"))
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

/// The epoch key of `key`'s cluster slot: `{namespace}:epoch:{tag}`, where the hash tag puts it
/// in the same slot as `key`, hence on the same shard through any resharding or failover.
pub(crate) fn slot_epoch_key(namespace: &str, key: &str) -> String {
    static TAGS: OnceLock<HashMap<Slot, String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        // Short tags, tried in order, until one is known for every slot (about 170,000 hashes,
        // once per process).
        let mut tags = HashMap::with_capacity(16_384);
        let mut n = 0u32;
        while tags.len() < 16_384 {
            let tag = format!("{n:x}");
            tags.entry(Slot::for_key(&tag)).or_insert(tag);
            n += 1;
        }
        tags
    });
    match tags.get(&Slot::for_key(key)) {
        Some(tag) => format!("{namespace}:epoch:{{{tag}}}"),
        // Every slot has a tag; this is only the type system's doubt.
        None => format!("{namespace}:epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\
                        master_replid:8c3f0c1f2e\r\nmaster_replid2:0000\r\n";

    #[test]
    fn the_first_key_asked_for_is_read_on_new_connections() {
        let epoch = Epoch::default();
        epoch.register("session:epoch");
        epoch.register("other:epoch");
        assert_eq!(epoch.key(), Some("session:epoch"));
    }

    #[test]
    fn value_is_the_stored_one_with_the_replication_id() {
        let epoch = Epoch::default();
        assert_eq!(epoch.cached("k"), None);
        let (_, proposed) = Epoch::create_command("k");
        assert_eq!(proposed.len(), 22);
        let created = epoch.record("k", proposed.clone(), INFO);
        assert_eq!(&*created, format!("{proposed}.8c3f0c1f2e").as_str());
        let existing = epoch.record("k", "old".into(), INFO);
        assert_eq!(&*existing, "old.8c3f0c1f2e");
        assert_eq!(epoch.cached("k").as_deref(), Some("old.8c3f0c1f2e"));
        assert_eq!(epoch.cached("other"), None);
        assert_eq!(&*epoch.record("j", "v".into(), ""), "v", "key only");
        epoch.forget();
        assert_eq!(epoch.cached("k"), None);
    }

    #[test]
    fn a_new_replication_id_is_a_new_epoch() {
        let epoch = Epoch::default();
        let before = epoch.record("k", "v".into(), INFO);
        let promoted = INFO.replace("8c3f0c1f2e", "77aa01");
        let after = epoch.record("k", "v".into(), &promoted);
        assert_ne!(before, after);
    }

    #[test]
    fn slot_epoch_keys_share_the_slot_of_their_session() {
        for key in ["session:{abc}", "session:{Zm9vYmFy}", "plain"] {
            let epoch_key = slot_epoch_key("session", key);
            assert!(epoch_key.starts_with("session:epoch:{"), "{epoch_key}");
            assert_eq!(Slot::for_key(&epoch_key), Slot::for_key(key));
        }
    }
}
