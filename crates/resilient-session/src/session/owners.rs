//! A user's sessions, in or out of a request: the per-owner index ([`Session::set_owner`] adds
//! to it), listing, revoking one, the others or all, and the calls on one session by its handle.
//!
//! The index is a sorted set at `<namespace>:owner:{<base64url(sha256(owner))>}`, one member per
//! session (its handle: the digest its keys are named by), scored by the session's absolute
//! deadline (milliseconds); it expires with its last member. With
//! [`SessionConfig::max_sessions_per_owner`](crate::SessionConfig::max_sessions_per_owner), a
//! login pushes the oldest out, in the same script. Only a login (`set_owner`) and these calls send
//! index commands; a plain request sends none. In a Redis Cluster the index and each session are
//! in slots of their own: every step is a command (or a pipeline) within one slot.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bb8_redis::redis;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::engine::CREATED_FIELD;
use super::engine::load::MAX_FOLLOW;
use super::engine::owned::{self, Entry, EntryAnswer, INFO_FIELD, OWNER_FIELD};
use super::engine::state::Owner;
use super::id::Digest;
use super::revocations::Target;
use super::scripts::{INDEX, OWN};
use super::store::now;
use super::{Session, SessionEngine, SessionId};
use crate::{Error, Result};

/// One of a user's sessions, as [`SessionEngine::sessions_of`] lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct OwnedSession {
    /// An opaque handle on the session (a digest of its id: not a usable cookie), for
    /// [`SessionEngine::revoke_session`] and the calls by handle.
    pub handle: String,
    /// When the session was created, unix seconds.
    pub created: i64,
    /// When the session was last seen, unix seconds: its last touch, so within a touch interval.
    pub last_seen: i64,
    /// What the app recorded at login ([`Session::set_owner`]).
    pub info: Value,
}

/// Why a session is marked as an owner's.
#[derive(Debug, Clone, Copy)]
enum Mark {
    /// The owner logged in to it.
    Login,
    /// It is the successor of one of the owner's sessions: marked unless someone else owns it.
    Adopt,
}

/// What a revocation of an owner's sessions did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revoked {
    /// This many sessions ended, now.
    Now(usize),
    /// Redis is unavailable: queued, and replayed once it is back, as a logout is. Until then
    /// a copy of such a session served from its cookie may still be used, for at most
    /// `fallback_max_age`; once Redis is back, its next request finds it ended.
    Queued,
    /// Not one of the owner's sessions: nothing ended.
    NotFound,
}

/// Now, in unix milliseconds: the index's scores (deadlines) are, so that the order of two
/// logins in one second is kept.
fn now_ms() -> i64 {
    // One reading of the clock: seconds and milliseconds of the same instant.
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

fn index_key(namespace: &str, owner: &str) -> String {
    let digest = Sha256::digest(owner.as_bytes());
    format!("{namespace}:owner:{{{}}}", URL_SAFE_NO_PAD.encode(digest))
}

impl Session {
    /// The engine this session belongs to: for a handler that manages the user's other sessions.
    ///
    /// ```no_run
    /// # async fn handler(session: resilient_session::Session) -> resilient_session::Result<()> {
    /// let listed = session.engine().sessions_of("ada").await?;
    /// # let _ = listed;
    /// # Ok(()) }
    /// ```
    pub fn engine(&self) -> &SessionEngine {
        &self.store
    }
}

impl SessionEngine {
    /// After a save reached Redis: the session `id` joins `owner`'s index (the session's own
    /// mark first, so that an index member always has one).
    ///
    /// `replacing`: the id it had before (a login or a privilege change cycled it), and whose
    /// it was: that member goes, first, so that it does not count toward the limit.
    pub(crate) async fn register_owner(
        &self,
        id: &SessionId,
        created: i64,
        owner: &Owner,
        replacing: Option<(Digest, &str)>,
    ) {
        let backend = self.backend();
        let key = id.redis_key(backend.namespace());
        match self.mark(&key, &owner.name, &owner.info, Mark::Login).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(error = %err, "the session was not added to its owner's index");
                return;
            }
        }
        let index = index_key(backend.namespace(), &owner.name);
        let mut predecessor = String::new();
        if let Some((old, previous)) = replacing {
            if previous == owner.name {
                // Removed by the index script, before it counts.
                predecessor = old.to_text();
            } else {
                self.unindex(previous, &old).await;
            }
        }
        let limit = self.config().max_sessions_per_owner.unwrap_or(0);
        if limit > 0 {
            // Members whose sessions ended without a logout (idle, expired) do not count.
            if let Err(err) = self.sessions_of(&owner.name).await {
                tracing::debug!(error = %err, "the owner's index was not pruned before the limit");
            }
        }
        // What is left of its life, from now to the millisecond: two logins in one second keep
        // their order.
        let left = self.policy().deadline(created).saturating_sub(now());
        let deadline_ms = now_ms().saturating_add(left.saturating_mul(1000));
        let handle = id.digest().to_text();
        let added = backend
            .by_sha::<Vec<String>>("session index", |by_sha| {
                let mut cmd = INDEX.command(by_sha, &[&index]);
                cmd.arg(deadline_ms)
                    .arg(&handle)
                    .arg(now_ms())
                    .arg(limit)
                    .arg(&predecessor);
                cmd
            })
            .await;
        match added {
            Ok(evicted) => {
                for digest in evicted.iter().filter_map(|handle| Digest::parse(handle)) {
                    self.revoke_now_or_later(digest, now()).await;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "the session was not added to its owner's index");
            }
        }
    }

    /// Takes the session `digest` out of `owner`'s index (its logout, its new id).
    pub(crate) async fn unindex(&self, owner: &str, digest: &Digest) {
        let index = index_key(self.backend().namespace(), owner);
        if let Err(err) = self.forget(&index, &digest.to_text()).await {
            tracing::debug!(error = %err, "an ended session stays in its owner's index until it is read");
        }
    }

    /// Marks the session at `key` as `owner`'s (`own.lua`): `false` when it is gone, or, to
    /// adopt it, someone else's.
    async fn mark(&self, key: &str, owner: &str, info: &Value, mark: Mark) -> Result<bool> {
        let info = info.to_string();
        let mode = match mark {
            Mark::Login => "login",
            Mark::Adopt => "adopt",
        };
        self.backend()
            .by_sha::<i64>("session owner", |by_sha| {
                let mut cmd = OWN.command(by_sha, &[key]);
                cmd.arg(owner).arg(&info).arg(mode);
                cmd
            })
            .await
            .map(|marked| marked == 1)
    }

    /// The index's members and their scores, those past their deadline dropped first.
    async fn members(&self, index: &str) -> Result<Vec<(String, f64)>> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("ZREMRANGEBYSCORE")
            .arg(index)
            .arg("-inf")
            .arg(format!("({}", now_ms()))
            .ignore();
        pipeline
            .cmd("ZRANGE")
            .arg(index)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        let (members,): (Vec<(String, f64)>,) = self
            .backend()
            .manager()
            .query_pipeline("session index read", &pipeline)
            .await?;
        Ok(members)
    }

    /// What Redis holds for the session `digest`: its owner mark, creation, info, TTL, tombstone.
    async fn entry_answer(&self, digest: &Digest) -> Result<EntryAnswer> {
        let namespace = self.backend().namespace();
        let key = digest.redis_key(namespace);
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("HMGET")
            .arg(&key)
            .arg(CREATED_FIELD)
            .arg(INFO_FIELD)
            .arg(OWNER_FIELD);
        pipeline.cmd("PTTL").arg(&key);
        pipeline.cmd("GET").arg(digest.tombstone_key(namespace));
        type Fields = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
        let ((created, info, owner), pttl_ms, tombstone): (Fields, i64, Option<String>) = self
            .backend()
            .manager()
            .query_pipeline("session index entry", &pipeline)
            .await?;
        Ok(EntryAnswer {
            created,
            info,
            owner,
            pttl_ms,
            tombstone,
        })
    }

    /// `owner`'s sessions, oldest first. Entries whose session is gone leave the index as it is
    /// read; a session that moved to a new id (re-seeded after Redis lost its data) is listed
    /// under the new one. Callable from any task holding the store: an admin endpoint, a job.
    ///
    /// # Errors
    ///
    /// The Redis error when Redis is unavailable ([`Error::is_unavailable`](crate::Error::is_unavailable)):
    /// the list is not known then, which is not the same as empty.
    ///
    /// ```no_run
    /// # async fn job(store: resilient_session::SessionEngine) -> resilient_session::Result<()> {
    /// for session in store.sessions_of("ada").await? {
    ///     println!("{} since {}, last seen {}", session.handle, session.created, session.last_seen);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn sessions_of(&self, owner: &str) -> Result<Vec<OwnedSession>> {
        let index = index_key(self.backend().namespace(), owner);
        let policy = self.policy();
        let mut listed = Vec::new();
        for (handle, score) in self.members(&index).await? {
            let Some(mut digest) = Digest::parse(&handle) else {
                self.forget(&index, &handle).await?;
                continue;
            };
            let mut member = handle;
            for _ in 0..MAX_FOLLOW {
                match owned::entry(&self.entry_answer(&digest).await?, owner, &policy, now()) {
                    Entry::Alive {
                        created,
                        last_seen,
                        info,
                    } => {
                        listed.push(OwnedSession {
                            handle: member,
                            created,
                            last_seen,
                            info,
                        });
                        break;
                    }
                    Entry::Moved(successor) => {
                        // The same session under a new id (its cookie re-seeded it): it keeps
                        // its place, and gets back the mark the cookie could not carry.
                        let key = successor.redis_key(self.backend().namespace());
                        if !self.mark(&key, owner, &Value::Null, Mark::Adopt).await? {
                            // Gone meanwhile, or someone else's now.
                            self.forget(&index, &member).await?;
                            break;
                        }
                        // Added before the old one goes: the index is never empty (and
                        // deleted, its expiry with it) in between.
                        let next = successor.to_text();
                        self.remember(&index, &next, score).await?;
                        self.forget(&index, &member).await?;
                        digest = successor;
                        member = next;
                    }
                    Entry::Gone => {
                        self.forget(&index, &member).await?;
                        break;
                    }
                }
            }
        }
        listed.sort_by_key(|session| session.created);
        Ok(listed)
    }

    async fn forget(&self, index: &str, member: &str) -> Result<()> {
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(index).arg(member);
        self.backend()
            .manager()
            .query::<i64>("session index remove", &cmd)
            .await
            .map(drop)
    }

    async fn remember(&self, index: &str, member: &str, score: f64) -> Result<()> {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(index).arg(score).arg(member);
        self.backend()
            .manager()
            .query::<i64>("session index add", &cmd)
            .await
            .map(drop)
    }

    /// Ends `owner`'s session `handle`, everywhere (every copy of its cookie, and the sessions
    /// it moved to). [`Revoked::NotFound`] when `handle` is not one of `owner`'s sessions:
    /// nothing is ended. While Redis is unavailable the revocation is queued (whether the handle
    /// is `owner`'s is checked when it is replayed).
    ///
    /// # Errors
    ///
    /// A Redis error that is not an outage (a command the Redis user may not run, say).
    ///
    /// ```no_run
    /// # async fn admin(store: resilient_session::SessionEngine, handle: &str) -> resilient_session::Result<()> {
    /// use resilient_session::Revoked;
    ///
    /// if store.revoke_session("ada", handle).await? == Revoked::NotFound {
    ///     println!("not one of ada's sessions");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn revoke_session(&self, owner: &str, handle: &str) -> Result<Revoked> {
        let Some(session) = Digest::parse(handle) else {
            return Ok(Revoked::NotFound);
        };
        let queued = Target::Owned {
            owner: owner.into(),
            session,
        };
        self.now_or_queued(self.revoke_owned(owner, session).await, queued)
    }

    /// [`revoke_session`](Self::revoke_session), with Redis's errors as they are.
    pub(crate) async fn revoke_owned(&self, owner: &str, digest: Digest) -> Result<Revoked> {
        // Listed as the owner's: in the index, and marked as theirs (not re-marked since as
        // another user's).
        let handle = digest.to_text();
        let listed = self.sessions_of(owner).await?;
        if !listed.iter().any(|session| session.handle == handle) {
            return Ok(Revoked::NotFound);
        }
        // The revocation takes it out of the index too (it is marked as the owner's).
        self.revoke_now_or_later(digest, now()).await;
        Ok(Revoked::Now(1))
    }

    /// An answer of Redis, or `queued` for replay when Redis was unavailable. A cookie-only
    /// engine has no index of owners to replay against: it says so.
    fn now_or_queued(&self, answer: Result<Revoked>, queued: Target) -> Result<Revoked> {
        match answer {
            Err(Error::NotUsed) => Err(Error::NotUsed),
            Err(err) if err.is_unavailable() => {
                tracing::debug!(error = %err, "revocation queued until Redis is available");
                let now = now();
                let until = self.policy().revocation_matters_until(now, now, true);
                self.revoke_later(queued, until, now);
                Ok(Revoked::Queued)
            }
            answer => answer,
        }
    }

    /// Ends all of `owner`'s sessions but `keep` (the current one, by its
    /// [`Session::handle`]): "log out my other devices", or after a password change. While Redis
    /// is unavailable the revocation is queued and replayed.
    ///
    /// # Errors
    ///
    /// As [`revoke_session`](Self::revoke_session).
    ///
    /// ```no_run
    /// # async fn handler(session: resilient_session::Session) -> resilient_session::Result<()> {
    /// let current = session.handle().await;
    /// session.engine().revoke_others("ada", current.as_deref()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke_others(&self, owner: &str, keep: Option<&str>) -> Result<Revoked> {
        let queued = Target::Owner {
            owner: owner.into(),
            keep: keep.and_then(Digest::parse),
        };
        self.now_or_queued(self.revoke_owner(owner, keep).await, queued)
    }

    /// [`revoke_others`](Self::revoke_others), with Redis's errors as they are.
    pub(crate) async fn revoke_owner(&self, owner: &str, keep: Option<&str>) -> Result<Revoked> {
        let mut ended = 0;
        // The live sessions, moved ones under their new ids: `keep` is compared with those.
        for session in self.sessions_of(owner).await? {
            if Some(session.handle.as_str()) == keep {
                continue;
            }
            // Each revocation takes its session out of the index (they are marked as the
            // owner's: that is how the listing found them).
            if let Some(digest) = Digest::parse(&session.handle) {
                self.revoke_now_or_later(digest, now()).await;
                ended += 1;
            }
        }
        Ok(Revoked::Now(ended))
    }

    /// Ends every one of `owner`'s sessions. A handler ending its own session this way also
    /// calls [`Session::destroy`], so that its cookie goes too. While Redis is unavailable the
    /// revocation is queued and replayed.
    ///
    /// # Errors
    ///
    /// As [`revoke_session`](Self::revoke_session).
    ///
    /// From a task outside any request, e.g. after a password reset by e-mail (the store is
    /// the one the layer uses, cloned):
    ///
    /// ```no_run
    /// # async fn password_changed(store: resilient_session::SessionEngine) {
    /// let job = tokio::spawn(async move { store.revoke_all("ada").await });
    /// match job.await {
    ///     Ok(Ok(revoked)) => println!("{revoked:?}"),
    ///     Ok(Err(err)) => eprintln!("try again: {err}"),
    ///     Err(panicked) => eprintln!("{panicked}"),
    /// }
    /// # }
    /// ```
    pub async fn revoke_all(&self, owner: &str) -> Result<Revoked> {
        self.revoke_others(owner, None).await
    }

    /// The data of the session `handle` (its keys and values), `None` when there is no such
    /// session. Outside a request: nothing is touched or changed.
    ///
    /// # Errors
    ///
    /// The Redis error when Redis is unavailable.
    ///
    /// ```no_run
    /// # async fn admin(store: resilient_session::SessionEngine, handle: &str) -> resilient_session::Result<()> {
    /// if let Some(data) = store.session_data(handle).await? {
    ///     println!("user: {:?}", data.get("user"));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn session_data(&self, handle: &str) -> Result<Option<Map<String, Value>>> {
        let Some(digest) = Digest::parse(handle) else {
            return Ok(None);
        };
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(digest.redis_key(self.backend().namespace()));
        let fields: Vec<(Vec<u8>, Vec<u8>)> =
            self.backend().manager().query("session read", &cmd).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            fields
                .into_iter()
                .filter(|(field, _)| field.first() != Some(&0))
                .filter_map(|(field, value)| {
                    let key = String::from_utf8(field).ok()?;
                    Some((key, serde_json::from_slice(&value).ok()?))
                })
                .collect(),
        ))
    }

    /// Refreshes the session `handle`'s idle timeout (never past its absolute lifetime), as a
    /// request's touch does. `false` when there is no such session.
    ///
    /// # Errors
    ///
    /// The Redis error when Redis is unavailable.
    ///
    /// ```no_run
    /// # async fn keep_alive(store: resilient_session::SessionEngine, handle: &str) -> resilient_session::Result<()> {
    /// store.touch_session(handle).await?;
    /// # Ok(()) }
    /// ```
    pub async fn touch_session(&self, handle: &str) -> Result<bool> {
        let Some(digest) = Digest::parse(handle) else {
            return Ok(false);
        };
        let key = digest.redis_key(self.backend().namespace());
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&key).arg(CREATED_FIELD);
        let created: Option<String> = self.backend().manager().query("session read", &cmd).await?;
        let Some(created) = created.and_then(|c| c.parse().ok()) else {
            return Ok(false);
        };
        let mut cmd = redis::cmd("EXPIRE");
        cmd.arg(&key).arg(self.policy().ttl_secs(created, now()));
        self.backend().manager().query("session touch", &cmd).await
    }

    /// Ends the session `handle` everywhere, like [`Session::destroy`] in its own request: a
    /// logout Redis cannot take now is queued and replayed. An unknown handle does nothing.
    ///
    /// ```no_run
    /// # async fn admin(store: resilient_session::SessionEngine, handle: &str) {
    /// store.delete_session(handle).await;
    /// # }
    /// ```
    pub async fn delete_session(&self, handle: &str) {
        if let Some(digest) = Digest::parse(handle) {
            self.revoke_now_or_later(digest, now()).await;
        }
    }
}
