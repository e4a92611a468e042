//! Loading a session on first use (DESIGN.md §4 step 3, and "who wins, cookie or Redis").

use serde_json::{Map, Value};

use super::backend::Fields;
use super::state::State;
use super::store::now;
use super::{SessionId, SessionStore, Source};
use crate::cookie::Payload;
use crate::stats::Counters;

impl SessionStore {
    /// Loads `state` from Redis, or from the cookie when Redis is unavailable. Never fails: a
    /// session that cannot be had is a fresh one.
    pub(crate) async fn load(&self, state: &mut State) {
        state.loaded = true;
        let Some(cookie) = state.base.clone() else {
            // A new visitor, or a cookie that was invalid or expired.
            return;
        };
        if cookie
            .revocable_id()
            .is_some_and(|id| self.revocations().contains(id))
        {
            // Logged out while Redis was down; the logout waits to be replayed.
            state.reset();
            return;
        }
        let now = now();
        let Some(id) = cookie.id.clone() else {
            // A session that began while Redis was down: the cookie is all there is. It moves to
            // Redis, under a new id, at the end of the first request that finds Redis up.
            if self.fallback_allowed(&cookie, now) {
                self.serve_from_cookie(state, &cookie);
                state.promote = true;
            } else {
                state.reset();
            }
            return;
        };
        let touch = self
            .touch_due(&cookie, now)
            .then(|| self.ttl_secs(cookie.created, now));
        match self.backend().load(&id, touch).await {
            Ok(Some(fields)) => match self.parse(fields) {
                Ok(values) => {
                    state.values = values;
                    state.source = Source::Redis;
                    state.stored_id = Some(id);
                    state.touched_at_load = touch.is_some();
                    // Redis has the data, the cookie what was written while it was down: the
                    // cookie's changes are newer and win, field by field.
                    state.apply_pending(&cookie);
                }
                Err(reason) => self.discard_corrupt(state, &id, &reason).await,
            },
            Ok(None) => self.load_missing(state, &cookie, &id).await,
            Err(err) if err.is_unavailable() => {
                tracing::debug!(error = %err, "Redis unavailable: serving the session from its cookie");
                if self.fallback_allowed(&cookie, now) {
                    self.serve_from_cookie(state, &cookie);
                } else {
                    // Too long since Redis confirmed it to be honoured on its own; but Redis may
                    // confirm it again once back, so the cookie stays.
                    state.detach();
                }
            }
            Err(err) => {
                // Redis answered, but not with a hash (`WRONGTYPE`): corrupt.
                self.discard_corrupt(state, &id, &err.to_string()).await;
            }
        }
    }

    fn serve_from_cookie(&self, state: &mut State, cookie: &Payload) {
        Counters::bump(&self.counters().fallback_reads);
        state.serve_from_cookie(cookie);
    }

    /// The hash is gone. Same data epoch as the cookie saw: the session ended (logout, expiry,
    /// deleted by an operator). A new epoch: Redis lost its data, and the session is re-seeded
    /// from its cookie under a new id, within the fallback max age and unless a replayed logout
    /// left a tombstone.
    async fn load_missing(&self, state: &mut State, cookie: &Payload, id: &SessionId) {
        let current = self.backend().epoch(true).await;
        let lost =
            matches!((&cookie.epoch, &current), (Some(seen), Some(now)) if seen.as_str() != &**now);
        if !lost || !self.fallback_allowed(cookie, now()) {
            state.reset();
            return;
        }
        match self.backend().is_revoked(id).await {
            Ok(false) => {
                state.serve_from_cookie(cookie);
                state.source = Source::Redis;
                state.promote = true;
            }
            Ok(true) => state.reset(),
            // Cannot tell now: serve from the cookie, re-seed on a later request.
            Err(_) => self.serve_from_cookie(state, cookie),
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
    /// accepted by the app's validator.
    fn parse(&self, fields: Fields) -> Result<Map<String, Value>, String> {
        let config = self.config();
        let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > config.max_session_bytes {
            return Err(format!(
                "session is {bytes} bytes, over the limit of {}",
                config.max_session_bytes
            ));
        }
        let mut values = Map::new();
        for (field, raw) in fields {
            let field =
                String::from_utf8(field).map_err(|_| "a field name is not UTF-8".to_owned())?;
            let value = serde_json::from_slice(&raw)
                .map_err(|err| format!("value of `{field}` is not JSON: {err}"))?;
            values.insert(field, value);
        }
        if let Some(validate) = &config.validator {
            validate(&values).map_err(|reason| format!("validation failed: {reason}"))?;
        }
        Ok(values)
    }
}
