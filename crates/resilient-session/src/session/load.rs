//! Loading a session on first use (DESIGN.md §4 step 3, and "who wins, cookie or Redis").

use serde_json::{Map, Value};

use super::backend::{Fields, Tombstone};
use super::state::State;
use super::store::now;
use super::{SessionId, SessionStore, Source};
use crate::cookie::Payload;
use crate::stats::Counters;

/// The hash field that lists the outage batches already merged (newest last). Session keys
/// starting with NUL are reserved, so no app key collides with it.
pub(crate) const MERGED_FIELD: &str = "\u{0}merged";

/// How many merged batch names the hash remembers.
pub(crate) const MERGED_KEPT: usize = 8;

impl SessionStore {
    /// Loads `state` from Redis, or from the cookie when Redis is unavailable. Never fails: a
    /// session that cannot be had is a fresh one.
    pub(crate) async fn load(&self, state: &mut State) {
        state.loaded = true;
        self.verify_cookie(state);
        let Some(cookie) = state.base.clone() else {
            // A new visitor, or a cookie that was invalid or expired; perhaps with the cookie
            // of an app whose sessions are imported.
            if let Some(value) = state.legacy.take() {
                self.import_legacy(state, &value).await;
            }
            return;
        };
        if self.revoked_here(&cookie) {
            // Logged out while Redis was down; the logout waits to be replayed.
            state.reset();
            return;
        }
        let now = now();
        let Some(id) = cookie.id.clone() else {
            self.load_cookie_only(state, &cookie, now).await;
            return;
        };
        let touch = self
            .touch_due(&cookie, now)
            .then(|| self.ttl_secs(cookie.created, now));
        match self.backend().load(&id, touch).await {
            Ok(Some(fields)) => match self.parse(fields) {
                Ok((values, merged)) => {
                    state.values = values;
                    state.source = Source::Redis;
                    state.stored_id = Some(id);
                    state.touched_at_load = touch.is_some();
                    if touch.is_some() {
                        Counters::bump(&self.counters().touches);
                    }
                    // Redis has the data, the cookie what was written while it was down: the
                    // cookie's changes are newer and win, field by field, once per batch.
                    let already_merged = cookie.batch.as_ref().is_some_and(|b| merged.contains(b));
                    if !already_merged {
                        state.apply_pending(&cookie);
                    }
                    state.merged = merged;
                }
                Err(reason) => self.discard_corrupt(state, &id, &reason).await,
            },
            Ok(None) => self.load_missing(state, &cookie, &id).await,
            Err(err) if err.is_wrong_type() => {
                self.discard_corrupt(state, &id, &err.to_string()).await;
            }
            Err(err) => {
                // Unavailable, or an error we cannot place: never a reason to log anyone out.
                tracing::debug!(error = %err, "Redis unavailable: serving the session from its cookie");
                self.fall_back(state, &cookie, now);
            }
        }
    }

    /// A request with only an imported app's cookie: its session is read from Redis (one
    /// `GET`) and becomes a new session of ours, written at the end of the request, which then
    /// deletes the old key in the same round trip. Nothing is deleted before our copy is
    /// written: a request that fails or is dropped midway leaves the old session in place.
    /// Redis unavailable (or refusing the read): nothing moves, and this request's changes are
    /// not kept (they would start a second session beside the old one); a later request
    /// imports it.
    async fn import_legacy(&self, state: &mut State, value: &str) {
        let Some(import) = self.config().import.clone() else {
            return;
        };
        let Some(key) = import.redis_key(value) else {
            // Not a cookie that app issued (or another app's of the same name): no Redis
            // command, and it is left alone.
            return;
        };
        let stored = match self.backend().peek(&key).await {
            Ok(stored) => stored,
            Err(err) if err.is_wrong_type() => {
                tracing::warn!(
                    "the old session's key holds something else; the user starts a new session"
                );
                state.remove_legacy = true;
                return;
            }
            Err(err) => {
                if err.is_unavailable() {
                    tracing::debug!(error = %err, "Redis unavailable: the old session is imported later");
                } else {
                    tracing::error!(error = %err, "cannot read an old session to import (does the Redis user have GET and DEL on the old keys?); it is imported once that works");
                }
                state.detached = true;
                return;
            }
        };
        let Some(bytes) = stored else {
            // Expired or unknown: the old cookie stands for nothing.
            state.remove_legacy = true;
            return;
        };
        let values = import
            .decode(&bytes, time::OffsetDateTime::now_utc())
            .and_then(|values| match values {
                Some(values) => self.accept(&values).map(|()| Some(values)),
                None => Ok(None),
            });
        state.remove_legacy = true;
        match values {
            Ok(Some(values)) => {
                Counters::bump(&self.counters().sessions_imported);
                state.changed = values.keys().cloned().collect();
                state.values = values;
                state.source = Source::Redis;
                state.import_key = Some(key);
            }
            Ok(None) => {}
            Err(reason) => {
                // Left in Redis: it is not ours to delete.
                Counters::bump(&self.counters().corrupt_sessions);
                tracing::warn!(
                    reason,
                    "an old session cannot be imported; the user starts a new one"
                );
            }
        }
    }

    /// The checks Redis data passes before it is served: the size limit and the app's
    /// validator.
    fn accept(&self, values: &Map<String, Value>) -> Result<(), String> {
        let bytes = values
            .iter()
            .map(|(k, v)| k.len() + v.to_string().len())
            .sum();
        self.within_size_limit(bytes)?;
        self.validated(values)
    }

    fn within_size_limit(&self, bytes: usize) -> Result<(), String> {
        let limit = self.config().max_session_bytes;
        if bytes > limit {
            return Err(format!(
                "session is {bytes} bytes, over the limit of {limit}"
            ));
        }
        Ok(())
    }

    /// The app's validator, if any, accepts `values`.
    fn validated(&self, values: &Map<String, Value>) -> Result<(), String> {
        match &self.config().validator {
            Some(validate) => {
                validate(values).map_err(|reason| format!("validation failed: {reason}"))
            }
            None => Ok(()),
        }
    }

    /// Whether this process holds a logout of the cookie's session that waits for Redis.
    pub(crate) fn revoked_here(&self, cookie: &Payload) -> bool {
        let revocations = self.revocations();
        !revocations.is_empty()
            && cookie
                .revocable_id()
                .is_some_and(|id| revocations.contains(id))
    }

    /// The cookie stands in for Redis, within the fallback max age. Past it, the session is
    /// served empty but the cookie is kept: an outage never logs anyone out by itself.
    fn fall_back(&self, state: &mut State, cookie: &Payload, now: i64) {
        if self.fallback_allowed(cookie, now) {
            Counters::bump(&self.counters().fallback_reads);
            state.serve_from_cookie(cookie);
        } else {
            state.detach();
        }
    }

    /// A session that began while Redis was down: the cookie is all there is. It moves to
    /// Redis, under a new id, at the end of the first request that finds Redis up, unless it was
    /// logged out (or moved) meanwhile.
    async fn load_cookie_only(&self, state: &mut State, cookie: &Payload, now: i64) {
        if !self.fallback_allowed(cookie, now) {
            state.reset();
            return;
        }
        let tombstone = match &cookie.provisional {
            Some(provisional) => self.backend().tombstone(provisional).await,
            None => Ok(Tombstone::None),
        };
        match tombstone {
            Ok(Tombstone::Revoked) => state.reset(),
            // Another request moved it already; this copy stands for nothing.
            Ok(Tombstone::Moved) => state.detach(),
            // No tombstone, or Redis unavailable (then the move fails fast at the end).
            Ok(Tombstone::None) | Err(_) => {
                self.fall_back(state, cookie, now);
                state.promote = true;
            }
        }
    }

    /// The hash is gone. Same data epoch as the cookie saw: the session ended (logout, expiry,
    /// deleted by an operator). A new epoch: Redis lost its data, and the session is re-seeded
    /// from its cookie under a new id, within the fallback max age and unless its id has a
    /// tombstone (a replayed logout, or another copy that re-seeded it already).
    async fn load_missing(&self, state: &mut State, cookie: &Payload, id: &SessionId) {
        let current = match self.backend().epoch(id, true).await {
            Ok(current) => current,
            // Cannot tell "ended" from "lost" now: serve from the cookie, decide on a later
            // request. A transient error never logs anyone out.
            Err(err) if err.is_unavailable() => {
                self.fall_back(state, cookie, now());
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the Redis data epoch; the session ends");
                state.reset();
                return;
            }
        };
        let lost = cookie
            .epoch
            .as_ref()
            .is_some_and(|seen| seen.as_str() != &*current);
        if !lost || !self.fallback_allowed(cookie, now()) {
            state.reset();
            return;
        }
        match self.backend().tombstone(id).await {
            Ok(Tombstone::None) => {
                state.serve_from_cookie(cookie);
                state.source = Source::Redis;
                state.promote = true;
            }
            Ok(Tombstone::Revoked) => state.reset(),
            Ok(Tombstone::Moved) => state.detach(),
            // Cannot tell now: serve from the cookie, re-seed on a later request.
            Err(_) => self.fall_back(state, cookie, now()),
        }
    }

    /// Deletes a corrupt session and starts a fresh one. The warning never holds the id.
    async fn discard_corrupt(&self, state: &mut State, id: &SessionId, reason: &str) {
        Counters::bump(&self.counters().corrupt_sessions);
        tracing::warn!(
            reason,
            "corrupt session data in Redis; deleted, starting a fresh session"
        );
        if let Err(err) = self.backend().delete(id).await {
            tracing::warn!(error = %err, "could not delete a corrupt session");
        }
        state.reset();
    }

    /// Session data from a hash: UTF-8 field names, JSON values, within the size limit, and
    /// accepted by the app's validator; plus the names of the outage batches it merged.
    fn parse(&self, fields: Fields) -> Result<(Map<String, Value>, Vec<String>), String> {
        self.within_size_limit(fields.iter().map(|(k, v)| k.len() + v.len()).sum())?;
        let mut values = Map::new();
        let mut merged = Vec::new();
        for (field, raw) in fields {
            let field =
                String::from_utf8(field).map_err(|_| "a field name is not UTF-8".to_owned())?;
            if field == MERGED_FIELD {
                merged = serde_json::from_slice(&raw)
                    .map_err(|_| "the merged-batches field is not a list".to_owned())?;
                continue;
            }
            let value = serde_json::from_slice(&raw)
                .map_err(|err| format!("value of `{field}` is not JSON: {err}"))?;
            values.insert(field, value);
        }
        self.validated(&values)?;
        Ok((values, merged))
    }
}
