//! The Redis side of sessions: key layout, the commands each step sends, and how their answers
//! read.
//!
//! One session is one hash at `<namespace>:{<sha256(id)>}` (the braces are literal: a Redis
//! Cluster hash tag), one field per session key, values JSON, plus the reserved field `\0v`: the
//! session's [stamp](super::engine::Stamp). A load is `HGETALL` (with `EXPIRE` in the same
//! pipeline when a touch is due); a touch is `EXPIRE`. A save is one Lua script (sent as
//! `EVALSHA`), atomic: the changed fields, one more version on the stamp, `EXPIRE`, for an
//! existing session only if its hash still exists (a slow write racing a logout must not bring
//! the session back: CVE-2025-46336 is that bug elsewhere), the cookie's merged outage writes
//! only if the hash is still at the stamp they were merged against, and what the new hash
//! replaces: on a login the old hash goes and its tombstone says `cycled`; a session re-seeded
//! or promoted from its cookie claims its old id with a `moved` tombstone naming the new one,
//! unless another copy did first; an imported app's key goes once ours is written. Never
//! `RENAME`. In a Redis Cluster the old and new keys are in different slots: the claim, the
//! write and the retirement are then separate round trips, in an order that never deletes
//! anything before our copy exists.
//!
//! A logout is `DEL` plus a `revoked` tombstone at `<namespace>:revoked:{<sha256(id)>}` (same
//! slot), in one script: a `moved` tombstone it replaces names a successor, which is revoked in
//! turn.

use std::collections::BTreeSet;
use std::sync::Arc;

use bb8_redis::redis::{self, Value as RedisValue};

use super::engine::answer::Written;
use super::engine::login;
use super::engine::save::{Predecessor, Write};
use super::engine::{STAMP_FIELD, Stamp};
use super::id::{Digest, SessionId};
use super::scripts::{RETIRE, REVOKE, SAVE, save_arguments, written};
use super::tombstone::{cycled_value, moved_value, tombstone_of};
use crate::redis::slot_epoch_key;
use crate::{RedisManager, Result};

#[derive(Debug, Clone)]
pub(crate) struct Backend {
    manager: RedisManager,
    namespace: String,
    /// The one epoch key outside a cluster, made once rather than on every save.
    epoch_key: String,
}

/// A session hash as Redis returned it: field and value bytes.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

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

    /// The prefix of every key.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The data epoch key that stands for `id`'s session: one per Redis, or one per cluster slot.
    fn epoch_key(&self, digest: &Digest) -> std::borrow::Cow<'_, str> {
        if self.manager.is_cluster() {
            std::borrow::Cow::Owned(slot_epoch_key(
                &self.namespace,
                &digest.redis_key(&self.namespace),
            ))
        } else {
            std::borrow::Cow::Borrowed(&self.epoch_key)
        }
    }

    /// The session's fields, `None` when its hash does not exist. With `touch`, the TTL is
    /// refreshed in the same round trip.
    pub(crate) async fn load(&self, id: &SessionId, touch: Option<u64>) -> Result<Option<Fields>> {
        let key = id.redis_key(&self.namespace);
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

    /// Runs a save; `seal` seals a successor's id for a `moved` tombstone; `mirrored` are the
    /// mirrored keys (an update answers their values when it finds writes it had not seen).
    pub(crate) async fn write(
        &self,
        write: &Write,
        mirrored: &BTreeSet<String>,
        seal: impl Fn(&str) -> String,
    ) -> Result<Written> {
        let tombstone = match &write.predecessor {
            Some(Predecessor::Claim {
                followable: true, ..
            }) => moved_value(&write.id, &seal(write.id.as_str())),
            Some(Predecessor::Claim { .. } | Predecessor::Cycle { .. }) => cycled_value(&write.id),
            _ => String::new(),
        };
        if self.manager.is_cluster() {
            return self.write_in_cluster(write, &tombstone, mirrored).await;
        }
        let ns = &self.namespace;
        let mut keys = vec![write.id.redis_key(ns), write.id.tombstone_key(ns)];
        let predecessor = match &write.predecessor {
            None => ("", 0),
            Some(Predecessor::Cycle {
                old,
                tombstone_secs,
                copy,
            }) => {
                keys.extend([old.redis_key(ns), old.tombstone_key(ns)]);
                (if *copy { "cycle" } else { "clean-cycle" }, *tombstone_secs)
            }
            Some(Predecessor::Claim {
                old,
                tombstone_secs,
                ..
            }) => {
                keys.extend([old.redis_key(ns), old.tombstone_key(ns)]);
                ("claim", *tombstone_secs)
            }
            Some(Predecessor::Retire { key }) => {
                keys.push(key.clone());
                ("retire", 0)
            }
        };
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (kind, secs) = predecessor;
        self.save(write, &keys, (kind, &tombstone, secs), mirrored)
            .await
    }

    /// Runs the save script on `keys`, by SHA-1, by text after `NOSCRIPT`.
    async fn save(
        &self,
        write: &Write,
        keys: &[&str],
        predecessor: (&str, &str, u64),
        mirrored: &BTreeSet<String>,
    ) -> Result<Written> {
        let command = |by_sha| {
            let mut cmd = SAVE.command(by_sha, keys);
            save_arguments(&mut cmd, write, predecessor, mirrored);
            cmd
        };
        let answer: RedisValue = self.by_sha("session save", command).await?;
        Ok(written(&answer, mirrored))
    }

    /// A script command by SHA-1, then by text after `NOSCRIPT` (a restarted Redis).
    pub(crate) async fn by_sha<T: redis::FromRedisValue + Send>(
        &self,
        operation: &'static str,
        command: impl Fn(bool) -> redis::Cmd,
    ) -> Result<T> {
        match self.manager.query(operation, &command(true)).await {
            Err(err) if err.is_no_script() => self.manager.query(operation, &command(false)).await,
            answer => answer,
        }
    }

    /// A save in a Redis Cluster: the old id is claimed first (its slot), then our hash
    /// written (another slot), then what it replaces retired: nothing is deleted before our copy
    /// exists, and a failure in between leaves at worst a tombstone naming a session that is
    /// not there (its followers re-seed it).
    async fn write_in_cluster(
        &self,
        write: &Write,
        tombstone: &str,
        mirrored: &BTreeSet<String>,
    ) -> Result<Written> {
        let ns = &self.namespace;
        let (key, own) = (write.id.redis_key(ns), write.id.tombstone_key(ns));
        let own_keys = [key.as_str(), own.as_str()];
        let alone = ("", "", 0);
        match &write.predecessor {
            Some(Predecessor::Claim {
                old,
                tombstone_secs,
                ..
            }) => {
                let mut claim = redis::cmd("SET");
                claim
                    .arg(old.tombstone_key(ns))
                    .arg(tombstone)
                    .arg("NX")
                    .arg("GET")
                    .arg("EX")
                    .arg(*tombstone_secs);
                let previous: Option<String> = self.manager.query("session claim", &claim).await?;
                if let Some(previous) = previous.filter(|p| p != tombstone) {
                    return Ok(Written::Taken(tombstone_of(Some(&previous), |_| None)));
                }
                self.save(write, &own_keys, alone, mirrored).await
            }
            Some(Predecessor::Cycle {
                old,
                tombstone_secs,
                copy,
            }) => {
                // Another slot: the old session is read here (as it is now), and the login
                // written over it.
                let (write, missed) = if *copy {
                    let mut cmd = redis::cmd("HGETALL");
                    cmd.arg(old.redis_key(ns));
                    let fields: Fields = self.manager.query("session save", &cmd).await?;
                    let fields = fields
                        .into_iter()
                        .filter_map(|(f, v)| {
                            Some((String::from_utf8(f).ok()?, String::from_utf8(v).ok()?))
                        })
                        .collect();
                    login::over_old_session(write, fields)
                } else {
                    (write.clone(), false)
                };
                let written = match self.save(&write, &own_keys, alone, mirrored).await? {
                    Written::Yes(stamp) if missed => Written::MovedOn {
                        stamp,
                        mirror: login::mirror_after(&write, mirrored),
                    },
                    Written::Yes(stamp) => Written::Yes(stamp),
                    other => return Ok(other),
                };
                let (old_hash, old_tombstone) = (old.redis_key(ns), old.tombstone_key(ns));
                let command = |by_sha| {
                    let mut cmd = RETIRE.command(by_sha, &[&old_hash, &old_tombstone]);
                    cmd.arg(tombstone).arg(*tombstone_secs);
                    cmd
                };
                let retired: i64 = self.by_sha("session save", command).await?;
                if retired == 0 {
                    // A logout took the old session while this login ran: the new one goes too.
                    self.delete(&key).await?;
                    return Ok(Written::Gone);
                }
                Ok(written)
            }
            Some(Predecessor::Retire { key: old }) => {
                let written = self.save(write, &own_keys, alone, mirrored).await?;
                if matches!(written, Written::Yes(_)) {
                    self.delete(old).await?;
                }
                Ok(written)
            }
            None => self.save(write, &own_keys, alone, mirrored).await,
        }
    }

    /// The value at `key` and its remaining life in milliseconds (`GET`, `PTTL`): an imported
    /// app's session.
    pub(crate) async fn peek(&self, key: &str) -> Result<(Option<Vec<u8>>, i64)> {
        let mut pipeline = redis::pipe();
        pipeline.cmd("GET").arg(key).cmd("PTTL").arg(key);
        self.manager
            .query_pipeline("session import", &pipeline)
            .await
    }

    /// Refreshes the TTL and reads the stamp (`EXPIRE`, `HGET`, one round trip): `None` when the
    /// hash does not exist.
    pub(crate) async fn touch(&self, id: &SessionId, ttl_secs: u64) -> Result<Option<Stamp>> {
        let key = id.redis_key(&self.namespace);
        let mut pipeline = redis::pipe();
        pipeline.cmd("EXPIRE").arg(&key).arg(ttl_secs);
        pipeline.cmd("HGET").arg(&key).arg(STAMP_FIELD);
        let (exists, stamp): (bool, Option<Vec<u8>>) = self
            .manager
            .query_pipeline("session touch", &pipeline)
            .await?;
        Ok(exists.then(|| stamp.and_then(|s| Stamp::parse(&s)).unwrap_or_default()))
    }

    /// Deletes a key (an imported app's session, or ours in a cluster's failed login).
    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        self.manager
            .query::<i64>("session delete", &cmd)
            .await
            .map(drop)
    }

    /// A logout: `DEL` the hash and leave a "revoked" tombstone for `tombstone_secs` (when
    /// given), so that no copy of the cookie re-seeds the session, even from a Redis that lost
    /// its data; one script (`revoke.lua`), whose new tombstone names the successor the old one
    /// named, so that an attempt whose answer was lost does not end the chain. Returns the
    /// tombstone it replaced, as text, and the session's owner mark, if it had one.
    pub(crate) async fn revoke(
        &self,
        digest: &Digest,
        tombstone_secs: Option<u64>,
    ) -> Result<(Option<String>, Option<String>)> {
        let (hash, tombstone) = (
            digest.redis_key(&self.namespace),
            digest.tombstone_key(&self.namespace),
        );
        let command = |by_sha| {
            let mut cmd = REVOKE.command(by_sha, &[&hash, &tombstone]);
            cmd.arg(tombstone_secs.unwrap_or(0));
            cmd
        };
        self.by_sha("session revoke", command).await
    }

    /// The tombstone of `id`, as text (`GET`: it reads under `OOM` too).
    pub(crate) async fn tombstone(&self, id: &SessionId) -> Result<Option<String>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(id.tombstone_key(&self.namespace));
        self.manager.query("session tombstone", &cmd).await
    }

    /// The data epoch of `id`'s session, from memory unless `fresh`.
    pub(crate) async fn epoch(&self, digest: &Digest, fresh: bool) -> Result<Arc<str>> {
        self.manager
            .data_epoch(&self.epoch_key(digest), fresh)
            .await
    }

    /// The data epoch of `id`'s session if it is known without asking.
    pub(crate) fn cached_epoch(&self, digest: &Digest) -> Option<Arc<str>> {
        self.manager.cached_epoch(&self.epoch_key(digest))
    }
}
