//! The end of a request (DESIGN.md §4 step 4): persist, touch, and the cookie to send.

use super::backend::Write;
use super::response::SetCookie;
use super::state::State;
use super::store::now;
use super::{Session, SessionId, SessionStore, Source};
use crate::cookie::Payload;
use crate::stats::Counters;

impl SessionStore {
    /// Step four of a request, after the handler: writes what changed (or touches the TTL when
    /// due) and returns the `Set-Cookie` to send, if any. Never fails: when Redis is
    /// unavailable, what changed goes into the cookie.
    pub async fn finish(&self, session: &Session) -> Option<SetCookie> {
        let mut state = session.state.lock().await;
        let now = now();
        if state.destroyed {
            return self.end(&state).await;
        }
        if !state.loaded {
            return self.finish_unread(&state, now).await;
        }
        if state.changed.is_empty() && !state.cycle {
            return self.finish_unchanged(&state, now);
        }
        if state.values.is_empty() {
            // Everything was removed: an empty session is no session.
            return self.end(&state).await;
        }
        let has_redis_id = state.cookie().is_some_and(|c| c.id.is_some());
        if state.source == Source::Cookie && has_redis_id {
            // Redis was unavailable when the session loaded; the next request that finds it up
            // merges these changes into the hash.
            return self.write_to_cookie(&state, now);
        }
        self.write_to_redis(&mut state, now).await
    }

    /// Logout, or a session emptied by the handler: delete the hash, remove the cookie.
    async fn end(&self, state: &State) -> Option<SetCookie> {
        let id = state
            .stored_id
            .as_ref()
            .or_else(|| state.cookie().and_then(|c| c.id.as_ref()));
        if let Some(id) = id
            && let Err(err) = self.backend().delete(id).await
        {
            tracing::warn!(error = %err, "could not delete an ended session from Redis");
        }
        state.had_cookie().then(|| self.removal())
    }

    /// The handler never read the session: at most a touch, when one is due.
    async fn finish_unread(&self, state: &State, now: i64) -> Option<SetCookie> {
        if state.had_cookie() && state.cookie().is_none() {
            // Invalid or expired: replace it with nothing.
            return Some(self.removal());
        }
        let cookie = state.cookie()?;
        let id = cookie.id.as_ref()?;
        if !self.touch_due(cookie, now) {
            return None;
        }
        match self
            .backend()
            .touch(id, self.ttl_secs(cookie.created, now))
            .await
        {
            Ok(true) => {
                let mut payload = cookie.clone();
                payload.touched = now;
                payload.epoch = self.backend().epoch(false).await.map(|e| e.to_string());
                self.issue(&payload, now)
            }
            // Gone, or Redis unavailable: the next request that reads the session decides.
            Ok(false) | Err(_) => None,
        }
    }

    /// Read but not changed: re-issue the cookie when the load touched the TTL or the mirror
    /// is out of date; drop a cookie that stands for no session.
    fn finish_unchanged(&self, state: &State, now: i64) -> Option<SetCookie> {
        if state.drop_cookie {
            return Some(self.removal());
        }
        let cookie = state.cookie()?;
        if state.source != Source::Redis {
            return None;
        }
        let mirror = self.mirror(&state.values);
        if !state.touched_at_load && mirror == cookie.mirror {
            return None;
        }
        let mut payload = cookie.clone();
        payload.mirror = mirror;
        if state.touched_at_load {
            payload.touched = now;
        }
        self.issue(&payload, now)
    }

    /// Redis is unavailable: what changed rides in the cookie until Redis has it.
    fn write_to_cookie(&self, state: &State, now: i64) -> Option<SetCookie> {
        Counters::bump(&self.counters().fallback_writes);
        let mut payload = state
            .cookie()
            .cloned()
            .unwrap_or_else(|| Payload::new(None, now));
        for key in &state.changed {
            match state.values.get(key) {
                Some(value) => {
                    payload.data.insert(key.clone(), value.clone());
                    payload.removed.retain(|k| k != key);
                }
                None => {
                    payload.data.remove(key);
                    if !payload.removed.contains(key) {
                        payload.removed.push(key.clone());
                    }
                }
            }
        }
        payload.mirror = self.mirror(&state.values);
        self.issue(&payload, now)
    }

    /// Write what changed: only the changed fields to an existing hash (if it still exists),
    /// everything to a new one (new session, new id, re-seeded session).
    async fn write_to_redis(&self, state: &mut State, now: i64) -> Option<SetCookie> {
        let existing = state.stored_id.clone().filter(|_| !state.cycle);
        let id = match &existing {
            Some(id) => id.clone(),
            None => match SessionId::generate() {
                Ok(id) => id,
                Err(err) => {
                    tracing::error!(error = %err, "cannot create a session id");
                    return None;
                }
            },
        };
        let created = state.cookie().map_or(now, |c| c.created);
        let ttl_secs = self.ttl_secs(created, now);
        let (set, delete): (Vec<_>, Vec<_>) = if existing.is_some() {
            state
                .changed
                .iter()
                .partition(|key| state.values.contains_key(key.as_str()))
        } else {
            (state.values.keys().collect(), Vec::new())
        };
        let set = set
            .into_iter()
            .filter_map(|key| {
                let value = state.values.get(key)?;
                Some((key.as_str(), value.to_string()))
            })
            .collect();
        let write = Write {
            id: &id,
            must_exist: existing.is_some(),
            set,
            delete: delete.into_iter().map(String::as_str).collect(),
            ttl_secs,
            replaces: state.stored_id.as_ref().filter(|_| state.cycle),
        };
        match self.backend().write(&write).await {
            Ok(true) => {
                let mut payload = Payload::new(Some(id.clone()), now);
                payload.created = created;
                payload.epoch = self.backend().epoch(false).await.map(|e| e.to_string());
                payload.mirror = self.mirror(&state.values);
                let unchanged_cookie = state.cookie().is_some_and(|c| {
                    c.id.as_ref() == Some(&id)
                        && c.mirror == payload.mirror
                        && c.data.is_empty()
                        && c.removed.is_empty()
                        && !self.touch_due(c, now)
                });
                state.stored_id = Some(id);
                state.changed.clear();
                if unchanged_cookie {
                    return None;
                }
                self.issue(&payload, now)
            }
            Ok(false) => {
                // Deleted while this request ran (a logout racing it): do not bring it back.
                tracing::debug!("session ended during the request; its changes are dropped");
                state.had_cookie().then(|| self.removal())
            }
            Err(err) if err.is_unavailable() => {
                tracing::debug!(error = %err, "Redis unavailable: session changes go into the cookie");
                self.write_to_cookie(state, now)
            }
            Err(err) => {
                tracing::error!(error = %err, "could not save the session");
                None
            }
        }
    }
}
