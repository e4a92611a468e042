//! Persisting a session (DESIGN.md §4 step 4): write, touch, or end it, and decide the cookie.

use super::backend::Write;
use super::response::SetCookie;
use super::state::{Outgoing, State};
use super::store::now;
use super::{Session, SessionId, SessionStore, Source};
use crate::Result;
use crate::cookie::Payload;
use crate::stats::Counters;

impl SessionStore {
    /// Step four of a request, after the handler: persists what is left to persist and returns
    /// the `Set-Cookie` to send, if any. Never fails: when Redis is unavailable, what changed
    /// goes into the cookie; problems are logged and counted.
    pub async fn finish(&self, session: &Session) -> Option<SetCookie> {
        let mut state = session.state.lock().await;
        if let Err(err) = self.persist(&mut state).await {
            tracing::debug!(error = %err, "session not fully persisted");
        }
        match &state.outgoing {
            Outgoing::Keep => None,
            Outgoing::Set(set_cookie) => Some(set_cookie.clone()),
            Outgoing::Remove => Some(self.removal()),
        }
    }

    /// Persists what changed since the last call: Redis when it is available, the cookie when
    /// not. Idempotent: a second call with nothing new does nothing.
    pub(crate) async fn persist(&self, state: &mut State) -> Result<()> {
        let now = now();
        if state.destroyed {
            self.end(state).await;
            return Ok(());
        }
        if !state.loaded {
            self.touch_unread(state, now).await;
            return Ok(());
        }
        if !state.is_dirty() {
            return self.refresh_cookie(state, now);
        }
        if state.values.is_empty() {
            // Everything was removed: an empty session is no session.
            self.end(state).await;
            return Ok(());
        }
        let loaded_from_cookie = state.source == Source::Cookie;
        if loaded_from_cookie && state.base.as_ref().is_some_and(|c| c.id.is_some()) {
            // Redis was unavailable when the session loaded; the next request that finds it up
            // merges these changes into the hash.
            return self.write_to_cookie(state, now);
        }
        self.write_to_redis(state, now).await
    }

    /// Logout, or a session emptied by the handler: delete the hash, remove the cookie. When
    /// Redis is unavailable, the logout is queued and replayed when it is back.
    async fn end(&self, state: &mut State) {
        if state.ended {
            return;
        }
        state.ended = true;
        let id = state
            .stored_id
            .clone()
            .or_else(|| state.base.as_ref().and_then(|c| c.revocable_id().cloned()));
        let cookie_only =
            state.stored_id.is_none() && state.base.as_ref().is_some_and(|c| c.id.is_none());
        if let Some(id) = id {
            let ended = if cookie_only {
                // Nothing in Redis: only a tombstone stops a copy being promoted later.
                self.backend().revoke(&id, self.tombstone_secs()).await
            } else {
                self.backend().delete(&id).await
            };
            match ended {
                Ok(()) => {}
                Err(err) if err.is_unavailable() => {
                    if !self.revocations().push(id) {
                        Counters::bump(&self.counters().revocations_failed);
                        tracing::warn!(
                            "too many logouts waiting for Redis: this one will not be replayed"
                        );
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not delete an ended session"),
            }
        }
        state.values.clear();
        state.changed.clear();
        state.base = None;
        state.stored_id = None;
        state.outgoing = if state.had_cookie {
            Outgoing::Remove
        } else {
            Outgoing::Keep
        };
    }

    /// The handler never read the session: touch the TTL when a touch is due.
    async fn touch_unread(&self, state: &mut State, now: i64) {
        let Some(cookie) = state.base.as_ref() else {
            return;
        };
        let Some(id) = cookie.id.as_ref() else {
            return;
        };
        if !self.touch_due(cookie, now) {
            return;
        }
        if let Ok(true) = self
            .backend()
            .touch(id, self.ttl_secs(cookie.created, now))
            .await
        {
            let mut payload = cookie.clone();
            payload.touched = now;
            payload.epoch = self.epoch_text().await.or(payload.epoch);
            // The payload only shrank or kept its size: it fits.
            let _ = self.send(state, payload, now);
        }
        // Gone, or Redis unavailable: the next request that reads the session decides.
    }

    /// Read but not changed: re-issue the cookie when the load touched the TTL or the mirror
    /// is out of date.
    fn refresh_cookie(&self, state: &mut State, now: i64) -> Result<()> {
        if state.source != Source::Redis {
            return Ok(());
        }
        let Some(cookie) = state.base.as_ref() else {
            return Ok(());
        };
        let mirror = self.mirror(&state.values);
        if !state.touched_at_load && mirror == cookie.mirror {
            return Ok(());
        }
        let mut payload = cookie.clone();
        payload.mirror = mirror;
        if state.touched_at_load {
            payload.touched = now;
            state.touched_at_load = false;
        }
        self.send(state, payload, now)
    }

    /// Redis is unavailable: what changed rides in the cookie until Redis has it. A session
    /// that begins now gets an id of its own for revocation, never used as a Redis key.
    fn write_to_cookie(&self, state: &mut State, now: i64) -> Result<()> {
        state.cycle = false;
        state.promote = false;
        if state.changed.is_empty() {
            // Nothing new: the cookie already holds the session.
            return Ok(());
        }
        Counters::bump(&self.counters().fallback_writes);
        let mut payload = match state.base.clone() {
            Some(payload) => payload,
            None => {
                let mut payload = Payload::new(None, now);
                payload.provisional = Some(SessionId::generate()?);
                payload
            }
        };
        for key in std::mem::take(&mut state.changed) {
            match state.values.get(&key) {
                Some(value) => {
                    payload.removed.retain(|k| *k != key);
                    payload.data.insert(key, value.clone());
                }
                None => {
                    payload.data.remove(&key);
                    if !payload.removed.contains(&key) {
                        payload.removed.push(key);
                    }
                }
            }
        }
        payload.mirror = self.mirror(&state.values);
        self.send(state, payload, now)
    }

    /// Writes what changed: only the changed fields to an existing hash (if it still exists),
    /// everything to a new one (new session, new id, re-seeded or promoted session).
    async fn write_to_redis(&self, state: &mut State, now: i64) -> Result<()> {
        if let Some(provisional) = state.base.as_ref().and_then(|c| c.provisional.clone()) {
            // A session from the cookie alone moves to Redis, unless it was logged out.
            match self.backend().is_revoked(&provisional).await {
                Ok(false) => {}
                Ok(true) => {
                    state.reset();
                    return Ok(());
                }
                Err(err) if err.is_unavailable() => return self.write_to_cookie(state, now),
                Err(err) => return Err(err),
            }
        }
        let existing = state.stored_id.clone().filter(|_| !state.cycle);
        let id = match &existing {
            Some(id) => id.clone(),
            None => SessionId::generate()?,
        };
        let created = state.base.as_ref().map_or(now, |c| c.created);
        let (set, delete): (Vec<&String>, Vec<&String>) = if existing.is_some() {
            state
                .changed
                .iter()
                .partition(|key| state.values.contains_key(key.as_str()))
        } else {
            (state.values.keys().collect(), Vec::new())
        };
        let write = Write {
            id: &id,
            must_exist: existing.is_some(),
            set: set
                .into_iter()
                .filter_map(|key| Some((key.as_str(), state.values.get(key)?.to_string())))
                .collect(),
            delete: delete.into_iter().map(String::as_str).collect(),
            ttl_secs: self.ttl_secs(created, now),
            replaces: state.stored_id.as_ref().filter(|_| state.cycle),
        };
        match self.backend().write(&write).await {
            Ok(true) => {
                let mut payload = Payload::new(Some(id.clone()), now);
                payload.created = created;
                payload.epoch = self.epoch_text().await;
                payload.mirror = self.mirror(&state.values);
                let cookie_current = state.base.as_ref().is_some_and(|c| {
                    c.id.as_ref() == Some(&id)
                        && c.mirror == payload.mirror
                        && c.data.is_empty()
                        && c.removed.is_empty()
                        && !self.touch_due(c, now)
                });
                state.stored_id = Some(id);
                state.changed.clear();
                state.cycle = false;
                state.promote = false;
                state.touched_at_load = false;
                if cookie_current {
                    Ok(())
                } else {
                    self.send(state, payload, now)
                }
            }
            Ok(false) => {
                // Deleted while this request ran (a logout racing it): do not bring it back.
                tracing::debug!("session ended during the request; its changes are dropped");
                state.reset();
                Ok(())
            }
            Err(err) if err.is_unavailable() => {
                tracing::debug!(error = %err, "Redis unavailable: session changes go into the cookie");
                self.write_to_cookie(state, now)
            }
            Err(err) => {
                tracing::error!(error = %err, "could not save the session");
                Err(err)
            }
        }
    }

    async fn epoch_text(&self) -> Option<String> {
        self.backend().epoch(false).await.map(|e| e.to_string())
    }
}
