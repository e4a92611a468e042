//! [`Session`]: the handle a request handler uses.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

use super::SessionEngine;
use super::engine::state::Unknown;
use super::engine::{Phase, State};
use crate::{Error, Result};

/// Where the session's data came from on this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// No stored session: a new visitor, or a cookie that was missing, invalid or ended.
    New,
    /// Loaded from Redis.
    Redis,
    /// Served from the cookie because Redis was unavailable: the mirrored keys, and what was
    /// written while Redis was down. Other keys are not known ([`Session::get`] says so).
    Cookie,
    /// Redis is unavailable and the cookie cannot stand in for it (Redis confirmed it longer
    /// than `fallback_max_age` ago, or it was made with an older key, or Redis said the session
    /// is gone without saying why): nothing is known, changes are not kept, and the cookie
    /// stays for when Redis is back.
    Unavailable,
}

impl Source {
    /// `"new"`, `"redis"`, `"cookie"` or `"unavailable"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::New => "new",
            Source::Redis => "redis",
            Source::Cookie => "cookie",
            Source::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request's session: a cheap, cloneable handle that the layer puts in the request
/// extensions (the adapters' extractors hand it to handlers).
///
/// Lazy: nothing is loaded until the first method that needs the data; a handler that never
/// uses the session costs no Redis command. Methods are `async` because that first use loads
/// from Redis; a handle may be held across `.await` points and sent between tasks.
///
/// ```no_run
/// # async fn handler(session: resilient_session::Session) -> Result<(), resilient_session::Error> {
/// let visits: u64 = session.get("visits").await?.unwrap_or(0);
/// session.insert("visits", visits + 1).await?;
/// println!("served from {}", session.source().await);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) store: SessionEngine,
    pub(crate) state: Arc<Mutex<State>>,
}

impl Session {
    pub(crate) fn new(store: SessionEngine, state: State) -> Self {
        Self {
            store,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The value at `key`, `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::SessionValue`] if the stored value does not decode as `T`;
    /// [`Error::ValueUnavailable`] when Redis is unavailable and the cookie standing in for it
    /// does not carry `key` (it is not mirrored, nor written since Redis was last reached): the
    /// value may well exist, and `None` would be a lie (a flag such as `mfa_pending` silently
    /// gone). [`Error::is_unavailable`] is true for it.
    ///
    /// ```no_run
    /// # async fn handler(session: resilient_session::Session) -> Result<(), resilient_session::Error> {
    /// match session.get::<bool>("mfa_pending").await {
    ///     Ok(pending) => println!("pending: {}", pending.unwrap_or(false)),
    ///     Err(err) if err.is_unavailable() => println!("try again in a moment"),
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(value) = self.get_value(key).await? else {
            return Ok(None);
        };
        serde_json::from_value(value)
            .map(Some)
            .map_err(|source| Error::SessionValue {
                key: key.to_owned(),
                source,
            })
    }

    /// The raw JSON value at `key`, `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::ValueUnavailable`], as for [`get`](Self::get).
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>> {
        match self.loaded().await.data.get(key) {
            Ok(value) => Ok(value.cloned()),
            Err(Unknown) => Err(Error::ValueUnavailable {
                key: key.to_owned(),
            }),
        }
    }

    /// Store `value` at `key`. Writing a value equal to the stored one changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::ReservedKey`] for keys starting with NUL, [`Error::SessionValue`] if the value
    /// does not serialise, [`Error::SessionTooLarge`] if the session would outgrow
    /// [`max_session_bytes`](crate::SessionConfig::max_session_bytes).
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        if key.starts_with('\0') {
            return Err(Error::ReservedKey {
                key: key.to_owned(),
            });
        }
        let value = serde_json::to_value(value).map_err(|source| Error::SessionValue {
            key: key.to_owned(),
            source,
        })?;
        let limit = self.store.config().max_session_bytes;
        let mut state = self.loaded().await;
        if state.data.values.get(key) == Some(&value) {
            return Ok(());
        }
        let bytes = state.data.bytes_with(key, Some(&value));
        if bytes > limit {
            return Err(Error::SessionTooLarge { bytes, limit });
        }
        state.data.set(key, value);
        Ok(())
    }

    /// Every key and value this request knows: all of them when the session came from Redis;
    /// while it is served from the cookie, only the keys the cookie carries (the mirrored ones,
    /// and those written since Redis was last reached); none when nothing is known
    /// ([`Source::Unavailable`](super::Source::Unavailable)).
    ///
    /// For code that hands the whole session to another library (this is how the adapters'
    /// tower-sessions and actix-session bridges load it). A handler reading one key uses
    /// [`get`](Self::get), which says when a key is unknown rather than absent.
    ///
    /// ```no_run
    /// # async fn handler(session: resilient_session::Session) {
    /// for (key, value) in session.known_entries().await {
    ///     println!("{key} = {value}");
    /// }
    /// # }
    /// ```
    pub async fn known_entries(&self) -> serde_json::Map<String, Value> {
        self.loaded().await.data.values.clone()
    }

    /// What another library changed in its own copy of the session, applied to this one: the
    /// keys of `before` (what it was given) that `after` lacks are removed, the keys whose value
    /// `after` changes are set, all at once or, on an error, none. Keys neither mentions are left
    /// alone: while the session is served from its cookie, the keys the cookie does not carry
    /// keep their values in Redis.
    ///
    /// For the adapters' tower-sessions and actix-session bridges, which hand the session's
    /// [`known_entries`](Self::known_entries) to such a library and take its changes back.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert): [`Error::ReservedKey`], or [`Error::SessionTooLarge`] when
    /// the session would outgrow `max_session_bytes` once every change is made.
    ///
    /// ```no_run
    /// # async fn bridge(session: resilient_session::Session) -> resilient_session::Result<()> {
    /// let before = session.known_entries().await;
    /// let mut after = before.clone();
    /// after.insert("theme".into(), "dark".into());
    /// after.remove("draft");
    /// session.apply_changes(&before, &after).await?;
    /// # Ok(()) }
    /// ```
    pub async fn apply_changes(
        &self,
        before: &serde_json::Map<String, Value>,
        after: &serde_json::Map<String, Value>,
    ) -> Result<()> {
        if let Some(key) = after.keys().find(|key| key.starts_with('\0')) {
            return Err(Error::ReservedKey { key: key.clone() });
        }
        let mut state = self.loaded().await;
        let changes: Vec<(&str, Option<&Value>)> = before
            .keys()
            .filter(|key| !after.contains_key(*key))
            .map(|key| (key.as_str(), None))
            .chain(
                after
                    .iter()
                    .filter(|(key, value)| state.data.values.get(*key) != Some(*value))
                    .map(|(key, value)| (key.as_str(), Some(value))),
            )
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        let limit = self.store.config().max_session_bytes;
        let bytes = state.data.bytes_after(&changes);
        if bytes > limit {
            return Err(Error::SessionTooLarge { bytes, limit });
        }
        for (key, value) in changes {
            match value {
                Some(value) => state.data.set(key, value.clone()),
                None => {
                    state.data.remove(key);
                }
            }
        }
        Ok(())
    }

    /// Remove `key`, returning its value (`None` when it had none, or when Redis is unavailable
    /// and the cookie did not carry it: it is removed all the same).
    pub async fn remove(&self, key: &str) -> Option<Value> {
        self.loaded().await.data.remove(key)
    }

    /// Remove every key. An empty session is no session: its hash is deleted and its cookie
    /// removed at the end of the request. (Served from the cookie while Redis is unavailable,
    /// the keys the cookie does not carry are not known, so they stay, and so does the session.)
    pub async fn clear(&self) {
        self.loaded().await.data.clear();
    }

    /// Give the session a new id at the end of the request, keeping its data: call it on login
    /// (and on any change of privilege) so that an id known before cannot be used after. The old
    /// id stops working, and no copy of its cookie follows the session to the new one.
    ///
    /// The data kept is the session as Redis has it when the request ends (what another request
    /// wrote meanwhile included), with this request's changes over it. To start clean, call
    /// [`clear`](Self::clear) first: then nothing of the old session is carried, not even what a
    /// copy of the old cookie wrote while the login ran.
    ///
    /// ```no_run
    /// # async fn login(session: resilient_session::Session) -> resilient_session::Result<()> {
    /// session.clear().await;
    /// session.insert("user_id", "ada").await?;
    /// session.cycle_id().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cycle_id(&self) {
        self.loaded().await.intent.cycle();
    }

    /// Mark the session as `owner`'s, with what the app wants to show of it in the owner's list
    /// of sessions (`info`: the user agent, an IP address, …): call it at login. At the end of
    /// the request the session joins the owner's index, under the id it ends with, so that
    /// [`SessionEngine::sessions_of`](super::SessionEngine::sessions_of) lists it and
    /// [`SessionEngine::revoke_all`](super::SessionEngine::revoke_all) ends it. Only a request
    /// that calls this sends index commands.
    ///
    /// Needs Redis: when the session goes into the cookie instead (an outage), it is not
    /// indexed; a later login indexes it.
    ///
    /// # Errors
    ///
    /// [`Error::SessionValue`] when `info` does not serialise as JSON.
    ///
    /// ```no_run
    /// # async fn login(session: resilient_session::Session) -> resilient_session::Result<()> {
    /// session.cycle_id().await;
    /// session.insert("user", "ada").await?;
    /// session.set_owner("ada", serde_json::json!({"user_agent": "curl/8.5"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_owner(&self, owner: &str, info: impl Serialize) -> Result<()> {
        let info = serde_json::to_value(info).map_err(|source| Error::SessionValue {
            key: "owner info".to_owned(),
            source,
        })?;
        self.loaded().await.owner = Some(super::engine::state::Owner {
            name: owner.to_owned(),
            info,
        });
        Ok(())
    }

    /// This session's handle, as [`SessionEngine::sessions_of`](super::SessionEngine::sessions_of)
    /// lists it (a digest of its id, not a usable cookie): `None` for a new session, or when
    /// nothing about it is known. After a login it changes at the end of the request.
    ///
    /// ```no_run
    /// # async fn handler(session: resilient_session::Session, store: resilient_session::SessionEngine) -> resilient_session::Result<()> {
    /// let current = session.handle().await;
    /// for listed in store.sessions_of("ada").await? {
    ///     println!("{} {}", listed.handle, Some(&listed.handle) == current.as_ref());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn handle(&self) -> Option<String> {
        let state = self.loaded().await;
        let id = match &state.phase {
            super::engine::Phase::Stored { id, .. } => Some(id),
            // Moving to a new id at the end of this request: until then, the old one.
            super::engine::Phase::Moving { from, .. } => Some(from),
            // Served from its cookie: the session the cookie is of.
            super::engine::Phase::Fallback => match &state.cookie {
                super::engine::ClientCookie::Valid(cookie) => cookie.payload.id.as_ref(),
                _ => None,
            },
            _ => None,
        };
        id.map(|id| id.digest().to_text())
    }

    /// End the session: its data is deleted and the cookie removed at the end of the request
    /// (logout). So is the session of an app it was imported from, and its cookie. While Redis
    /// is unavailable the logout is queued and replayed when it is back; until then this process
    /// treats every copy of the cookie as logged out.
    pub async fn destroy(&self) {
        let mut state = self.state.lock().await;
        state.intent = super::engine::state::Intent::Destroy;
        state.data.reset();
    }

    /// Persist now instead of at the end of the request, and learn how it went. The end of the
    /// request still sends the cookie, and persists anything changed after this call. Redis
    /// being unavailable is not an error by itself: the changes then ride in the cookie.
    ///
    /// # Errors
    ///
    /// [`Error::CookieTooLarge`] when Redis is unavailable and the changes do not fit in the
    /// 4096-byte cookie: the values of keys that are not mirrored are dropped first, then the
    /// mirror; the removals are kept, and if even they do not fit the session ends (fail
    /// closed). [`Error::FallbackExpired`] when nothing about the session is known (see
    /// [`Source::Unavailable`]): the changes are not kept.
    ///
    /// ```no_run
    /// # async fn handler(session: resilient_session::Session) {
    /// # let draft = String::new();
    /// session.insert("draft", draft).await.ok();
    /// if let Err(err) = session.save().await {
    ///     eprintln!("the draft was not kept: {err}");
    /// }
    /// # }
    /// ```
    pub async fn save(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.store.persist(&mut state).await
    }

    /// Where the data came from: Redis, the cookie (Redis unavailable), nowhere (new), or
    /// nothing is known ([`Source::Unavailable`]).
    pub async fn source(&self) -> super::Source {
        self.loaded().await.phase.source()
    }

    /// Where the data came from, if the session was loaded already; `None` when nothing loaded
    /// it yet (or another task holds it right now). Never loads and never waits: for logs and
    /// spans at the end of a request.
    ///
    /// ```no_run
    /// # async fn handler(session: resilient_session::Session) {
    /// assert_eq!(session.loaded_source(), None); // nothing read yet
    /// let _ = session.get_value("user").await;
    /// println!("served from {:?}", session.loaded_source());
    /// # }
    /// ```
    pub fn loaded_source(&self) -> Option<super::Source> {
        let state = self.state.try_lock().ok()?;
        (state.phase != Phase::Unloaded).then(|| state.phase.source())
    }

    /// Whether the session is known to hold no data (`false` when served from the cookie with
    /// keys it does not carry).
    pub async fn is_empty(&self) -> bool {
        self.loaded().await.data.is_known_empty()
    }

    /// The state, loaded on first use.
    async fn loaded(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().await;
        if state.phase == Phase::Unloaded && state.intent != super::engine::state::Intent::Destroy {
            self.store.load(&mut state).await;
        }
        state
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the id nor the data: both may be secrets.
        f.debug_struct("Session").finish_non_exhaustive()
    }
}
