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
        let Some(cookie) = state.cookie().cloned() else {
            // No cookie (a new visitor), or one that was invalid or expired.
            state.drop_cookie = state.had_cookie();
            return;
        };
        let now = now();
        let Some(id) = cookie.id.clone() else {
            // A session that began while Redis was down: the cookie is all there is. Everything
            // is written to Redis at the end of the request, under a new id, if Redis is back.
            if self.fallback_allowed(&cookie, now) {
                self.load_from_cookie(state, &cookie, now);
                state.mark_all_changed();
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
                    // Redis has the data, the cookie has what was written while it was down.
                    state.apply_pending(&cookie);
                }
                Err(reason) => self.discard_corrupt(state, &id, &reason).await,
            },
            Ok(None) => self.load_missing(state, &cookie).await,
            Err(err) if err.is_unavailable() => {
                tracing::debug!(error = %err, "Redis unavailable: serving the session from its cookie");
                self.load_from_cookie(state, &cookie, now);
            }
            Err(err) => {
                // Redis answered, but not with a hash (`WRONGTYPE`): corrupt.
                self.discard_corrupt(state, &id, &err.to_string()).await;
            }
        }
    }

    /// The cookie stands in for Redis, within the fallback max age; past it, the session is
    /// empty but the cookie is kept: a Redis outage never logs anyone out by itself.
    fn load_from_cookie(&self, state: &mut State, cookie: &Payload, now: i64) {
        Counters::bump(&self.counters().fallback_reads);
        if self.fallback_allowed(cookie, now) {
            state.serve_from_cookie(cookie);
        } else {
            state.source = Source::Cookie;
        }
    }

    /// The hash is gone. Same data epoch as the cookie saw: the session ended (logout, expiry,
    /// deleted by an operator). Otherwise Redis lost its data; see `reseed`.
    async fn load_missing(&self, state: &mut State, cookie: &Payload) {
        let current = self.backend().epoch(true).await;
        let lost =
            matches!((&cookie.epoch, &current), (Some(seen), Some(now)) if seen.as_str() != &**now);
        if lost && self.fallback_allowed(cookie, now()) {
            self.reseed(state, cookie);
        } else {
            state.reset();
        }
    }

    /// Redis lost its data: the session starts again from its cookie, under a new id at the
    /// end of the request.
    fn reseed(&self, state: &mut State, cookie: &Payload) {
        state.serve_from_cookie(cookie);
        state.source = Source::Redis;
        state.mark_all_changed();
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
