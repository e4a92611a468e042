//! Persisting a session (DESIGN.md §4 step 4): write, touch, or end it, and decide the cookie.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::backend::{Tombstone, Write, Written};
use super::load::{MERGED_FIELD, MERGED_KEPT};
use super::response::SetCookie;
use super::state::{Outgoing, State};
use super::store::now;
use super::{Session, SessionId, SessionStore, Source};
use crate::cookie::Payload;
use crate::stats::Counters;
use crate::{Error, Result};

impl SessionStore {
    /// Step four of a request, after the handler: persists what is left to persist and returns
    /// the `Set-Cookie` to send, if any. Never fails: when Redis is unavailable, what changed
    /// goes into the cookie; problems are logged and counted.
    ///
    /// Should this future be dropped before it is done (the client went away), the rest runs in
    /// a task of its own: a logout's `DEL` or a write still happens. Work that needs no Redis
    /// (most reads) is done at once; see [`try_finish`](Self::try_finish).
    pub async fn finish(&self, session: &Session) -> Option<SetCookie> {
        match self.try_finish(session) {
            Some(done) => done,
            None => self.finish_with_io(session).await,
        }
    }

    /// The part of [`finish`](Self::finish) that talks to Redis, for callers that already tried
    /// [`try_finish`](Self::try_finish).
    pub(crate) async fn finish_with_io(&self, session: &Session) -> Option<SetCookie> {
        let mut unfinished = CompleteOnDrop {
            store: self,
            session,
            armed: true,
        };
        let mut state = session.state.lock().await;
        if let Err(err) = self.persist(&mut state).await {
            tracing::debug!(error = %err, "session not fully persisted");
        }
        unfinished.armed = false;
        self.outgoing(&state)
    }

    /// [`finish`](Self::finish) without waiting, when the end of the request needs no Redis
    /// command (a session not used, or only read with no touch due): `Some` with the
    /// `Set-Cookie` to send, if any. `None` when Redis work is left: then call `finish`.
    /// Adapters use it to skip the task and the allocation on most requests.
    pub fn try_finish(&self, session: &Session) -> Option<Option<SetCookie>> {
        let mut state = session.state.try_lock().ok()?;
        match self.persist_without_io(&mut state)? {
            Ok(()) => {}
            Err(err) => tracing::debug!(error = %err, "session not fully persisted"),
        }
        Some(self.outgoing(&state))
    }

    fn outgoing(&self, state: &State) -> Option<SetCookie> {
        let ours = match &state.outgoing {
            Outgoing::Keep => None,
            Outgoing::Set(set_cookie) => Some(set_cookie.clone()),
            Outgoing::Remove => Some(self.removal()),
        };
        let legacy = state
            .remove_legacy
            .then(|| {
                let config = self.config();
                config.import.as_ref().map(|i| i.removal(config.secure))
            })
            .flatten();
        match (ours, legacy) {
            (Some(ours), Some(legacy)) => Some(ours.and(legacy)),
            (None, Some(legacy)) => Some(SetCookie::new(legacy)),
            (ours, None) => ours,
        }
    }

    /// Persists what changed since the last call: Redis when it is available, the cookie when
    /// not. Idempotent: a second call with nothing new does nothing.
    pub(crate) async fn persist(&self, state: &mut State) -> Result<()> {
        if let Some(done) = self.persist_without_io(state) {
            return done;
        }
        if state.destroyed || state.values.is_empty() && state.loaded {
            // A logout, or everything removed: an empty session is no session.
            self.end(state).await;
            return Ok(());
        }
        if !state.loaded {
            self.touch_unread(state, now()).await;
            return Ok(());
        }
        self.write_to_redis(state, now()).await
    }

    /// What persisting takes when it needs no Redis command; `None` when it does.
    fn persist_without_io(&self, state: &mut State) -> Option<Result<()>> {
        let now = now();
        if state.destroyed {
            self.verify_cookie(state);
            return state.ended.then_some(Ok(()));
        }
        if !state.loaded {
            // Unused: the cookie's clear hint says whether a touch may be due (or the cookie
            // expired); only then is it verified.
            let hint = state.pending.as_ref().map(|raw| raw.touched_hint());
            if let Some(hint) = hint {
                let quiet = hint.is_some_and(|touched| !self.touch_may_be_due(touched, now));
                if quiet {
                    return Some(Ok(()));
                }
                self.verify_cookie(state);
            }
            let touch_due = state.base.as_ref().is_some_and(|cookie| {
                cookie.id.is_some() && self.touch_due(cookie, now) && !self.revoked_here(cookie)
            });
            return (!touch_due).then_some(Ok(()));
        }
        if !state.is_dirty() {
            return Some(self.refresh_cookie(state, now));
        }
        if state.detached && !state.cycle {
            // The cookie stays for when Redis is back; changes made meanwhile cannot be kept.
            state.changed.clear();
            return Some(Err(Error::FallbackExpired));
        }
        if state.values.is_empty() {
            return None;
        }
        if state.source == Source::Cookie && !state.promote {
            // Redis was unavailable when the session loaded; the next request that finds it up
            // merges these changes into the hash.
            return Some(self.write_to_cookie(state, now));
        }
        None
    }

    /// Logout, or a session emptied by the handler: delete the hash, leave a tombstone, remove
    /// the cookie. When Redis is unavailable, the logout is queued and replayed when it is back.
    async fn end(&self, state: &mut State) {
        if state.ended {
            return;
        }
        let id = state
            .stored_id
            .clone()
            .or_else(|| state.base.as_ref().and_then(|c| c.revocable_id().cloned()));
        if let Some(id) = id {
            // A tombstone as well as the `DEL`: no copy of the cookie can re-seed the session,
            // not even after Redis lost its data or failed over.
            if let Err(err) = self.backend().revoke(&id, self.tombstone_secs()).await {
                tracing::debug!(error = %err, "logout queued until Redis is available");
                self.revoke_later(id);
            }
        }
        // Only now: a logout interrupted midway is carried out again.
        state.ended = true;
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

    /// Queues a logout for replay; counts it when the queue is full.
    fn revoke_later(&self, id: SessionId) {
        if self.revocations().push(id) {
            Counters::bump(&self.counters().revocations_queued);
        } else {
            Counters::bump(&self.counters().revocations_failed);
            tracing::warn!("too many logouts waiting for Redis: this one will not be replayed");
        }
    }

    /// The handler never read the session, and a touch is due: refresh the TTL.
    async fn touch_unread(&self, state: &mut State, now: i64) {
        let Some(cookie) = state.base.as_ref() else {
            return;
        };
        let Some(id) = cookie.id.as_ref() else {
            return;
        };
        if let Ok(true) = self
            .backend()
            .touch(id, self.ttl_secs(cookie.created, now))
            .await
        {
            Counters::bump(&self.counters().touches);
            let mut payload = Payload::clone(cookie);
            payload.touched = now;
            payload.epoch = self.epoch_text(id).await.or(payload.epoch);
            // Nothing was added to the payload: it fits as before.
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
        if !state.touched_at_load && self.mirror_matches(&state.values, &cookie.mirror) {
            return Ok(());
        }
        let mut payload = Payload::clone(cookie);
        payload.mirror = self.mirror(&state.values);
        if state.touched_at_load {
            payload.touched = now;
            state.touched_at_load = false;
        }
        self.send(state, payload, now)
    }

    /// Redis is unavailable: what changed rides in the cookie until Redis has it.
    ///
    /// A new id was asked for (`cycle_id`, on login) or the session's old identity was given
    /// up: the session becomes a cookie-only one with an identity of its own, and its old id is
    /// revoked, so that no cookie chosen before (session fixation) carries the login.
    fn write_to_cookie(&self, state: &mut State, now: i64) -> Result<()> {
        let new_identity = std::mem::take(&mut state.cycle) && state.base.is_some();
        state.promote = false;
        if state.changed.is_empty() && !new_identity {
            // Nothing new: the cookie already holds the session.
            return Ok(());
        }
        Counters::bump(&self.counters().fallback_writes);
        let mut payload = match state.base.clone() {
            Some(base) if !new_identity => Arc::unwrap_or_clone(base),
            base => {
                if let Some(old) = base.as_ref().and_then(|b| b.revocable_id().cloned()) {
                    self.revoke_later(old);
                }
                let mut fresh = Payload::new(None, now);
                fresh.created = base.as_ref().map_or(now, |b| b.created);
                fresh.provisional = Some(SessionId::generate()?);
                state.mark_all_changed();
                fresh
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
        payload.batch = Some(batch_name()?);
        payload.mirror = self.mirror(&state.values);
        self.send(state, payload, now)
    }

    /// Writes what changed: only the changed fields to an existing hash (if it still exists),
    /// everything to a new one (new session, new id, re-seeded or promoted session).
    async fn write_to_redis(&self, state: &mut State, now: i64) -> Result<()> {
        if state.promote && !self.claim_old_identity(state).await? {
            return Ok(());
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
        let mut set: Vec<(&str, String)> = set
            .into_iter()
            .filter_map(|key| Some((key.as_str(), state.values.get(key)?.to_string())))
            .collect();
        // Remember the outage batch this write merges, so that a stale copy of the cookie that
        // carries it does not write it again over newer values.
        let merged = self.merged_after(state);
        if let Some(merged) = &merged {
            set.push((MERGED_FIELD, merged.clone()));
        }
        // A new id for a session whose hash this request did not load (a login on a detached
        // or cookie-only session): its old identity ends too.
        let superseded = state
            .base
            .as_ref()
            .and_then(|c| c.revocable_id().cloned())
            .filter(|_| state.cycle && state.stored_id.is_none() && !state.promote);
        let write = Write {
            id: &id,
            must_exist: existing.is_some(),
            set,
            delete: delete.into_iter().map(String::as_str).collect(),
            ttl_secs: self.ttl_secs(created, now),
            replaces: state.stored_id.as_ref().filter(|_| state.cycle),
            tombstone_secs: self.tombstone_secs(),
            retires: state.import_key.as_deref(),
        };
        match self.backend().write(&write).await {
            Ok(Written::Yes) => {
                let mut payload = Payload::new(Some(id.clone()), now);
                payload.created = created;
                payload.epoch = self.epoch_text(&id).await;
                payload.mirror = self.mirror(&state.values);
                let cookie_current = state.base.as_ref().is_some_and(|c| {
                    c.id.as_ref() == Some(&id)
                        && c.mirror == payload.mirror
                        && !c.has_pending()
                        && !self.touch_due(c, now)
                });
                if let Some(old) = superseded {
                    self.revoke_later(old);
                }
                state.stored_id = Some(id);
                state.import_key = None;
                state.source = Source::Redis;
                state.detached = false;
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
            Ok(Written::Gone) => {
                // Ended while this request ran (a logout racing it): do not bring it back.
                tracing::debug!("session ended during the request; its changes are dropped");
                state.reset();
                Ok(())
            }
            Err(err) => {
                if err.is_unavailable() {
                    tracing::debug!(error = %err, "Redis unavailable: session changes go into the cookie");
                } else {
                    // Not an outage (a refused command, a bug): still, nothing is lost.
                    tracing::error!(error = %err, "could not save the session to Redis; it goes into the cookie");
                }
                if state.promote {
                    // The old identity may be claimed already: carry on under a new one.
                    state.cycle = true;
                }
                self.write_to_cookie(state, now)
            }
        }
    }

    /// A session that comes from its cookie alone takes over its old identity (the re-seeded
    /// id, or a cookie-only session's own) with a "moved" tombstone, so that it moves to Redis
    /// once. `false` when it may not: logged out, or moved already by another copy.
    async fn claim_old_identity(&self, state: &mut State) -> Result<bool> {
        let old = state.base.as_ref().and_then(|c| c.revocable_id().cloned());
        let (Some(old), Some(secs)) = (old, self.tombstone_secs()) else {
            return Ok(true);
        };
        match self.backend().claim(&old, secs).await {
            Ok(Tombstone::None) => Ok(true),
            Ok(Tombstone::Revoked) => {
                state.reset();
                Ok(false)
            }
            Ok(Tombstone::Moved) => {
                state.detach();
                Ok(false)
            }
            Err(err) => {
                tracing::debug!(error = %err, "cannot move the session to Redis now");
                self.write_to_cookie(state, now())?;
                Ok(false)
            }
        }
    }

    /// The merged-batches field after this write, when it merges a batch from the cookie.
    fn merged_after(&self, state: &State) -> Option<String> {
        let batch = state.base.as_ref()?.batch.as_ref()?;
        if state.merged.contains(batch) {
            return None;
        }
        let mut merged = state.merged.clone();
        merged.push(batch.clone());
        let skip = merged.len().saturating_sub(MERGED_KEPT);
        serde_json::to_string(&merged[skip..]).ok()
    }

    async fn epoch_text(&self, id: &SessionId) -> Option<String> {
        let epoch = self.backend().epoch(id, false).await;
        epoch.ok().map(|e| e.to_string())
    }
}

/// Finishes a session in a task of its own if [`SessionStore::finish`] is dropped midway.
struct CompleteOnDrop<'a> {
    store: &'a SessionStore,
    session: &'a Session,
    armed: bool,
}

impl Drop for CompleteOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("a session was dropped unfinished outside a Tokio runtime");
            return;
        };
        let (store, session) = (self.store.clone(), self.session.clone());
        runtime.spawn(async move {
            let mut state = session.state.lock().await;
            if let Err(err) = store.persist(&mut state).await {
                tracing::debug!(error = %err, "session not fully persisted");
            }
        });
    }
}

/// A random name for a batch of outage writes.
fn batch_name() -> Result<String> {
    let mut bytes = [0u8; 9];
    getrandom::fill(&mut bytes)
        .map_err(|err| Error::Config(format!("the OS random number generator failed: {err}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}
