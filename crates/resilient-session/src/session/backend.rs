//! The Redis side of sessions: key layout and the commands each step sends.
//!
//! One session is one hash at `<namespace>:{<sha256(id)>}` (the braces are literal: a Redis
//! Cluster hash tag), one field per session key, values JSON. A load is `HGETALL` (with `EXPIRE`
//! in the same pipeline when a touch is due); a touch is `EXPIRE`. A save runs one small Lua
//! script: the changed fields (`HSET` / `HDEL`) and `EXPIRE`, atomically (sent as `EVALSHA`),
//! and, for a session that already exists, only if its hash still exists. That last condition is
//! why it is a script and not a plain pipeline: a slow write racing a logout must not bring the
//! session back (CVE-2025-46336 is that bug elsewhere). A new id (`cycle_id`) writes the new hash
//! and deletes the old one in the same round trip, never with `RENAME` (it fails across cluster
//! slots); if the old hash was gone by then, the new one is deleted too. In a Redis Cluster the
//! two hashes are in different slots, so that step takes two round trips; every other step
//! touches one slot. A logout is `DEL` plus a tombstone at `<namespace>:revoked:{<sha256(id)>}`
//! ("revoked", same slot), replayed later if Redis was down. A session re-seeded or promoted
//! from its cookie first claims its old id with a "moved" tombstone (`SET NX`), so that it moves
//! once.

use std::borrow::Cow;
use std::sync::Arc;

use bb8_redis::redis;

use super::SessionId;
use crate::redis::slot_epoch_key;
use crate::{RedisManager, Result};

/// Writes the changed fields and the TTL; with `must_exist`, only if the hash still exists.
///
/// `KEYS[1]` the session hash. `ARGV[1]` TTL in seconds, `ARGV[2]` `"1"` when the hash must
/// exist, `ARGV[3]` the number of fields to delete, then those fields, then field/value pairs.
/// Returns 1 when written, 0 when the session was gone.
const WRITE_SCRIPT: &str = r"
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local deletes = tonumber(ARGV[3])
if deletes > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 4, 3 + deletes)) end
if #ARGV > 3 + deletes then redis.call('HSET', KEYS[1], unpack(ARGV, 4 + deletes)) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
";

/// SHA-1 of [`WRITE_SCRIPT`]: saves go as `EVALSHA`, without the script's text (a test checks
/// that saves to a Redis that has the script need no `EVAL`). After `NOSCRIPT` (a restarted Redis) the text is sent
/// once with `EVAL`, which loads it again.
const WRITE_SCRIPT_SHA1: &str = "899ec392d868a24975323540118a3713f6bcbb06";

#[derive(Debug, Clone)]
pub(crate) struct Backend {
    manager: RedisManager,
    namespace: String,
    /// The one epoch key outside a cluster, made once rather than on every save.
    epoch_key: String,
}

/// One save: which hash, which fields, what TTL.
#[derive(Debug)]
pub(crate) struct Write<'a> {
    pub(crate) id: &'a SessionId,
    /// The session already existed: write only if its hash still does.
    pub(crate) must_exist: bool,
    pub(crate) set: Vec<(&'a str, String)>,
    pub(crate) delete: Vec<&'a str>,
    pub(crate) ttl_secs: u64,
    /// A previous id whose hash goes (after `cycle_id`).
    pub(crate) replaces: Option<&'a SessionId>,
    /// How long the previous id's "moved" tombstone lives (`None`: no tombstones).
    pub(crate) tombstone_secs: Option<u64>,
    /// An imported app's key, deleted once this write is done.
    pub(crate) retires: Option<&'a str>,
}

/// What became of a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Yes,
    /// The session ended meanwhile: nothing was (or stays) written.
    Gone,
}

/// What a tombstone says about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tombstone {
    /// No tombstone.
    None,
    /// Logged out.
    Revoked,
    /// Moved to a new id (re-seeded or promoted) by another request.
    Moved,
}

const REVOKED: &str = "revoked";
const MOVED: &str = "moved";

/// A session hash as Redis returned it: field and value bytes.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn tombstone_of(value: Option<String>) -> Tombstone {
    match value.as_deref() {
        None => Tombstone::None,
        Some(REVOKED) => Tombstone::Revoked,
        Some(_) => Tombstone::Moved,
    }
}

/// A "moved" tombstone value unique to one claim, so that a claim retried after its first
/// attempt ran (its answer lost) recognises its own tombstone.
fn moved_token() -> Result<String> {
    let id = SessionId::generate()?;
    Ok(format!("{MOVED}:{}", &id.as_str()[..16]))
}

/// `SET <tombstone> <token> NX GET EX <secs>`: claims `id` unless it has a tombstone.
fn claim_command(namespace: &str, id: &SessionId, token: &str, secs: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(id.tombstone_key(namespace))
        .arg(token)
        .arg("NX")
        .arg("GET")
        .arg("EX")
        .arg(secs);
    cmd
}

/// What a claim found: the tombstone that was there, unless it is the claim's own (a retry).
fn claimed(previous: Option<String>, token: &str) -> Tombstone {
    if previous.as_deref() == Some(token) {
        Tombstone::None
    } else {
        tombstone_of(previous)
    }
}

impl Backend {
    pub(crate) fn new(manager: RedisManager, namespace: String) -> Self {
        let epoch_key = format!("{namespace}:epoch");
        Self {
            manager,
            namespace,
            epoch_key,
        }
    }

    pub(crate) fn manager(&self) -> &RedisManager {
        &self.manager
    }

    fn key(&self, id: &SessionId) -> String {
        id.redis_key(&self.namespace)
    }

    /// The data epoch key that stands for `id`'s session: one per Redis, or one per cluster slot.
    fn epoch_key(&self, id: &SessionId) -> Cow<'_, str> {
        if self.manager.is_cluster() {
            Cow::Owned(slot_epoch_key(&self.namespace, &self.key(id)))
        } else {
            Cow::Borrowed(&self.epoch_key)
        }
    }

    /// The session's fields, `None` when its hash does not exist. With `touch`, the TTL is
    /// refreshed in the same round trip.
    pub(crate) async fn load(&self, id: &SessionId, touch: Option<u64>) -> Result<Option<Fields>> {
        let key = self.key(id);
        let fields: Fields = match touch {
            None => {
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(&key);
                self.manager.query("session load", &cmd).await?
            }
            Some(ttl) => {
                let mut pipeline = redis::pipe();
                pipeline.cmd("HGETALL").arg(&key);
                pipeline.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                let (fields,): (Fields,) = self
                    .manager
                    .query_pipeline("session load", &pipeline)
                    .await?;
                fields
            }
        };
        Ok((!fields.is_empty()).then_some(fields))
    }

    /// Runs a save.
    pub(crate) async fn write(&self, write: &Write<'_>) -> Result<Written> {
        match write.replaces {
            None => match write.retires {
                None => self.write_hash(write).await,
                Some(old_key) => self.write_and_retire(write, old_key).await,
            },
            Some(old) => {
                // The old id is deleted and claimed with a "moved" tombstone (same slot), so
                // that a logout racing the login shows as a "revoked" tombstone, whatever was
                // retried, and no copy of the old cookie can re-seed it later.
                let token = moved_token()?;
                let mut retire = redis::pipe();
                retire.cmd("DEL").arg(self.key(old));
                if let Some(secs) = write.tombstone_secs {
                    retire.add_command(claim_command(&self.namespace, old, &token, secs));
                } else {
                    retire.cmd("GET").arg(old.tombstone_key(&self.namespace));
                }
                let (written, deleted, previous): (i64, i64, Option<String>) =
                    if self.manager.is_cluster() {
                        // Two slots: the new hash first, so that a failure in between loses
                        // nothing.
                        if self.write_hash(write).await? == Written::Gone {
                            return Ok(Written::Gone);
                        }
                        let (deleted, previous) =
                            self.manager.query_pipeline("session save", &retire).await?;
                        (1, deleted, previous)
                    } else {
                        // The script's text, not its SHA-1: a `NOSCRIPT` failure would come
                        // after the rest of the pipeline had run.
                        let mut pipeline = redis::pipe();
                        pipeline.add_command(self.write_command(write, false));
                        for cmd in retire.cmd_iter() {
                            pipeline.add_command(cmd.clone());
                        }
                        self.manager
                            .query_pipeline("session save", &pipeline)
                            .await?
                    };
                let logged_out = match write.tombstone_secs {
                    Some(_) => claimed(previous, &token) == Tombstone::Revoked,
                    // Without tombstones, only the hash tells: already gone means ended.
                    None => deleted == 0,
                };
                match (written, logged_out) {
                    (1, false) => Ok(Written::Yes),
                    // The session ended while this request ran (a logout racing a login): the
                    // new hash must not outlive it.
                    (1, true) => {
                        self.delete(write.id).await?;
                        Ok(Written::Gone)
                    }
                    _ => Ok(Written::Gone),
                }
            }
        }
    }

    /// A new session imported from another app: written, then the old app's key deleted, in
    /// one round trip (two in a cluster: other slots). The script goes by text: a `NOSCRIPT`
    /// would come after the `DEL` had run.
    async fn write_and_retire(&self, write: &Write<'_>, old_key: &str) -> Result<Written> {
        let mut del = redis::cmd("DEL");
        del.arg(old_key);
        if self.manager.is_cluster() {
            let written = self.write_hash(write).await?;
            self.manager.query::<i64>("session import", &del).await?;
            return Ok(written);
        }
        let mut pipeline = redis::pipe();
        pipeline.add_command(self.write_command(write, false));
        pipeline.add_command(del).ignore();
        let (written,): (i64,) = self
            .manager
            .query_pipeline("session save", &pipeline)
            .await?;
        Ok(if written == 1 {
            Written::Yes
        } else {
            Written::Gone
        })
    }

    /// The write script on `write.id`'s hash alone, by SHA-1, by text after `NOSCRIPT`.
    async fn write_hash(&self, write: &Write<'_>) -> Result<Written> {
        let by_sha = self.write_command(write, true);
        let written: i64 = match self.manager.query("session save", &by_sha).await {
            Err(err) if err.is_no_script() => {
                let by_text = self.write_command(write, false);
                self.manager.query("session save", &by_text).await?
            }
            written => written?,
        };
        Ok(if written == 1 {
            Written::Yes
        } else {
            Written::Gone
        })
    }

    /// `EVALSHA` (or `EVAL` with the text) of the write script for `write`.
    fn write_command(&self, write: &Write<'_>, by_sha: bool) -> redis::Cmd {
        let mut cmd = if by_sha {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(WRITE_SCRIPT_SHA1);
            cmd
        } else {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(WRITE_SCRIPT);
            cmd
        };
        cmd.arg(1)
            .arg(self.key(write.id))
            .arg(write.ttl_secs)
            .arg(if write.must_exist { "1" } else { "0" })
            .arg(write.delete.len())
            .arg(&write.delete);
        for (field, value) in &write.set {
            cmd.arg(*field).arg(value);
        }
        cmd
    }

    /// The value at `key` (`GET`): an imported app's session.
    pub(crate) async fn peek(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.manager.query("session import", &cmd).await
    }

    /// Refreshes the TTL; `false` when the hash does not exist.
    pub(crate) async fn touch(&self, id: &SessionId, ttl_secs: u64) -> Result<bool> {
        let mut cmd = redis::cmd("EXPIRE");
        cmd.arg(self.key(id)).arg(ttl_secs);
        self.manager.query("session touch", &cmd).await
    }

    pub(crate) async fn delete(&self, id: &SessionId) -> Result<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(id));
        self.manager
            .query::<i64>("session delete", &cmd)
            .await
            .map(drop)
    }

    /// Replays a logout: `DEL` the hash, and leave a tombstone for `tombstone_secs` (when given)
    /// so that no copy of the cookie re-seeds the session, even from a Redis that lost its data.
    pub(crate) async fn revoke(&self, id: &SessionId, tombstone_secs: Option<u64>) -> Result<()> {
        let mut pipeline = redis::pipe();
        pipeline.cmd("DEL").arg(self.key(id)).ignore();
        if let Some(secs) = tombstone_secs {
            pipeline
                .cmd("SET")
                .arg(id.tombstone_key(&self.namespace))
                .arg(REVOKED)
                .arg("EX")
                .arg(secs)
                .ignore();
        }
        self.manager
            .query_pipeline("session revoke", &pipeline)
            .await
    }

    /// The tombstone of `id`, if any.
    pub(crate) async fn tombstone(&self, id: &SessionId) -> Result<Tombstone> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(id.tombstone_key(&self.namespace));
        let value: Option<String> = self.manager.query("session tombstone", &cmd).await?;
        Ok(tombstone_of(value))
    }

    /// Claims `id` for a move to a new id: leaves a "moved" tombstone unless there is one
    /// already, atomically, so that a session is re-seeded or promoted once, never forked by
    /// two copies of its cookie. Answers the tombstone that was there (`None`: the claim is ours).
    pub(crate) async fn claim(&self, id: &SessionId, tombstone_secs: u64) -> Result<Tombstone> {
        let token = moved_token()?;
        let cmd = claim_command(&self.namespace, id, &token, tombstone_secs);
        let previous: Option<String> = self.manager.query("session claim", &cmd).await?;
        Ok(claimed(previous, &token))
    }

    /// The data epoch of `id`'s session, from memory unless `fresh`.
    pub(crate) async fn epoch(&self, id: &SessionId, fresh: bool) -> Result<Arc<str>> {
        self.manager.data_epoch(&self.epoch_key(id), fresh).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_recognises_its_own_tombstone_after_a_retry() {
        let token = moved_token().expect("random");
        assert!(token.starts_with("moved:"));
        assert_ne!(token, moved_token().expect("random"), "unique per claim");
        assert_eq!(claimed(None, &token), Tombstone::None);
        assert_eq!(claimed(Some(token.clone()), &token), Tombstone::None);
        assert_eq!(claimed(Some("revoked".into()), &token), Tombstone::Revoked);
        let other = moved_token().expect("random");
        assert_eq!(claimed(Some(other), &token), Tombstone::Moved);
        assert_eq!(claimed(Some("moved".into()), &token), Tombstone::Moved);
    }
}
