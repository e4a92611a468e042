//! [`Session`]: the handle a request handler uses.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

use super::SessionStore;
use super::state::State;
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
    /// Served from the cookie because Redis was unavailable.
    Cookie,
}

impl Source {
    /// `"new"`, `"redis"` or `"cookie"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::New => "new",
            Source::Redis => "redis",
            Source::Cookie => "cookie",
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
    pub(crate) store: SessionStore,
    pub(crate) state: Arc<Mutex<State>>,
}

impl Session {
    pub(crate) fn new(store: SessionStore, state: State) -> Self {
        Self {
            store,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The value at `key`, `None` when there is none. An error only if the stored value does
    /// not decode as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(value) = self.get_value(key).await else {
            return Ok(None);
        };
        serde_json::from_value(value)
            .map(Some)
            .map_err(|source| Error::SessionValue {
                key: key.to_owned(),
                source,
            })
    }

    /// The raw JSON value at `key`.
    pub async fn get_value(&self, key: &str) -> Option<Value> {
        self.loaded().await.values.get(key).cloned()
    }

    /// Store `value` at `key`. Writing a value equal to the stored one changes nothing. Fails if
    /// the value does not serialise, or the session would outgrow
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
        if state.values.get(key) == Some(&value) {
            return Ok(());
        }
        let bytes = state.bytes_with(key, Some(&value));
        if bytes > limit {
            return Err(Error::SessionTooLarge { bytes, limit });
        }
        state.values.insert(key.to_owned(), value);
        state.changed.insert(key.to_owned());
        Ok(())
    }

    /// Remove `key`, returning its value.
    pub async fn remove(&self, key: &str) -> Option<Value> {
        let mut state = self.loaded().await;
        let removed = state.values.remove(key);
        if removed.is_some() {
            state.changed.insert(key.to_owned());
        }
        removed
    }

    /// Remove every key. An empty session is no session: its hash is deleted and its cookie
    /// removed at the end of the request.
    pub async fn clear(&self) {
        let mut state = self.loaded().await;
        let keys: Vec<String> = state.values.keys().cloned().collect();
        state.changed.extend(keys);
        state.values.clear();
    }

    /// Give the session a new id at the end of the request, keeping its data: call it on login
    /// (and on any change of privilege) so that an id known before cannot be used after. The old
    /// id stops working.
    pub async fn cycle_id(&self) {
        self.loaded().await.cycle = true;
    }

    /// End the session: its data is deleted and the cookie removed at the end of the request
    /// (logout).
    pub async fn destroy(&self) {
        let mut state = self.state.lock().await;
        state.destroyed = true;
        state.values.clear();
        state.changed.clear();
    }

    /// Persist now instead of at the end of the request, and learn how it went. The end of the
    /// request still sends the cookie, and persists anything changed after this call.
    ///
    /// `Err(Error::CookieTooLarge { .. })` when Redis is unavailable and the changes do not fit
    /// in the 4096-byte cookie: the mirrored keys are kept, the other changes are dropped. Redis
    /// being unavailable is not an error by itself: the changes then ride in the cookie.
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

    /// Where the data came from: Redis, the cookie (Redis unavailable), or nowhere (new).
    pub async fn source(&self) -> super::Source {
        self.loaded().await.source
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
        state.loaded.then_some(state.source)
    }

    /// Whether the session holds no data.
    pub async fn is_empty(&self) -> bool {
        self.loaded().await.values.is_empty()
    }

    /// The state, loaded on first use.
    async fn loaded(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().await;
        if !state.loaded && !state.destroyed {
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
