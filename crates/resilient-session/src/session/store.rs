//! [`SessionStore`]: the seed's "Session Service", and the engine both adapters drive.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::backend::Backend;
use super::response::SetCookie;
use super::revocations::Revocations;
use super::state::{Outgoing, State, mirror_of};
use super::{Import, Session};
use crate::cookie::{CookieCodec, Payload};
use crate::health::{FallbackReport, HealthReport};
use crate::stats::{Counters, SessionStats};
use crate::{Error, RedisManager, Result, SessionConfig};

/// Sessions in Redis with a cookie fallback: built once at start-up from a [`RedisManager`] and
/// a [`SessionConfig`], cloned into every layer (clones share everything).
///
/// Framework adapters drive a request through it in two calls: [`open`](Self::open) before the
/// handler (parse the cookie, no I/O) and [`finish`](Self::finish) after it (persist, touch,
/// and the `Set-Cookie` to send). The tower [`SessionLayer`](crate::SessionLayer) does exactly
/// that.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), resilient_session::Error> {
/// use resilient_session::{KeyRing, RedisManager, SessionConfig, SessionStore};
///
/// let manager = RedisManager::from_env()?;
/// let keys = KeyRing::from_secret(std::env::var("SESSION_SECRET").unwrap_or_default())?;
/// let store = SessionStore::new(manager, SessionConfig::new(keys).mirrored_keys(["user"]))?;
///
/// // What an adapter does around a handler:
/// let session = store.open([&b"session=..."[..]]);
/// session.insert("user", "ada").await?;
/// if let Some(set_cookie) = store.finish(&session).await {
///     for header in set_cookie.headers() {
///         println!("Set-Cookie: {header}");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    backend: Backend,
    config: SessionConfig,
    codec: CookieCodec,
    counters: Counters,
    revocations: Revocations,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Let the replay task see that the store is gone.
        self.revocations.wake.notify_one();
    }
}

impl SessionStore {
    /// A store on `manager` with `config`. Fails on settings that cannot work (see
    /// [`SessionConfig`]), at start-up rather than per request. Must be called within a Tokio
    /// runtime: a background task replays logouts made while Redis was down.
    pub fn new(manager: RedisManager, config: SessionConfig) -> Result<Self> {
        config.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let store = Self {
            inner: Arc::new(Inner {
                backend: Backend::new(manager, config.namespace.clone()),
                codec: CookieCodec::new(&config),
                config,
                counters: Counters::default(),
                revocations: Revocations::default(),
            }),
        };
        let wake = Arc::clone(&store.inner.revocations.wake);
        runtime.spawn(super::replay::replay(Arc::downgrade(&store.inner), wake));
        Ok(store)
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The Redis manager sessions are stored through.
    pub fn manager(&self) -> &RedisManager {
        self.inner.backend.manager()
    }

    /// The cookie's name, with the `__Host-` prefix when configured.
    pub fn cookie_name(&self) -> &str {
        self.inner.codec.name()
    }

    /// Counters since start: refused cookies, corrupt sessions, fallbacks, replayed logouts.
    pub fn stats(&self) -> SessionStats {
        let pending = u64::try_from(self.inner.revocations.len()).unwrap_or(u64::MAX);
        self.inner.counters.snapshot(pending)
    }

    /// The health report served at `GET /api/health/redis`: one `PING` (none while the
    /// breaker is open). Sessions are served while Redis is down, so the session service counts
    /// as working; the report's `fallback` section shows the degraded operation.
    pub async fn health(&self) -> HealthReport {
        let redis = self.manager().check().await;
        HealthReport::new(&redis, true).with_fallback(FallbackReport::new(&redis, &self.stats()))
    }

    /// Step one of a request: the session for a request whose `Cookie` headers have these
    /// values. No I/O, and no cryptography yet: the cookie is verified on first use (or at the
    /// end of the request if a touch may be due).
    pub fn open<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a [u8]>) -> Session {
        let import = self.inner.config.import.as_deref();
        let found = self
            .inner
            .codec
            .find(cookie_headers, import.map(Import::cookie_name));
        let mut state = State::new(found.ours);
        // Only a request without a cookie of ours imports.
        state.legacy = found.legacy.filter(|_| !state.had_cookie);
        Session::new(self.clone(), state)
    }

    /// Verifies the request's cookie, once: a valid, unexpired one becomes the session's
    /// base; anything else is replaced or removed in the response.
    pub(crate) fn verify_cookie(&self, state: &mut State) {
        let Some(raw) = state.pending.take() else {
            return;
        };
        match self.inner.codec.open(&raw) {
            Some(payload) if !self.is_expired(&payload, now()) => {
                state.base = Some(Arc::new(payload));
            }
            Some(_expired) => {
                Counters::bump(&self.inner.counters.cookies_expired);
                state.outgoing = Outgoing::Remove;
            }
            None => {
                let counters = &self.inner.counters;
                Counters::bump(if raw.too_long() {
                    &counters.cookies_too_long
                } else {
                    &counters.cookies_rejected
                });
                state.outgoing = Outgoing::Remove;
            }
        }
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn revocations(&self) -> &Revocations {
        &self.inner.revocations
    }

    /// How long a replayed logout's tombstone lives: as long as a copy of the cookie could be
    /// honoured on its own. `None` when nothing is ever honoured on its own.
    pub(crate) fn tombstone_secs(&self) -> Option<u64> {
        let age = self.inner.config.fallback_max_age.as_secs();
        (age > 0).then_some(age)
    }

    /// Past its absolute lifetime or idle timeout, or issued in the future. Times are whole
    /// seconds, so "past" means by more than a second: never early. (Redis expires the data
    /// itself on time.)
    fn is_expired(&self, cookie: &Payload, now: i64) -> bool {
        let config = &self.inner.config;
        let absolute = seconds(config.absolute_lifetime);
        let idle = seconds(config.idle_timeout);
        const SKEW: i64 = 300;
        now > cookie.created.saturating_add(absolute)
            || now > cookie.touched.saturating_add(idle)
            || cookie.created > now + SKEW
            || cookie.touched > now + SKEW
    }

    /// From a cookie's (unverified) touched time: whether a touch may be due, or the cookie
    /// may have expired. Either way it is worth verifying.
    pub(crate) fn touch_may_be_due(&self, touched: i64, now: i64) -> bool {
        now - touched >= seconds(self.inner.config.touch_interval) || touched > now
    }

    /// A touch is due when Redis last confirmed the session a touch interval ago or more.
    pub(crate) fn touch_due(&self, cookie: &Payload, now: i64) -> bool {
        now - cookie.touched >= seconds(self.inner.config.touch_interval)
    }

    /// The cookie may stand in for Redis: Redis confirmed it within the fallback max age.
    pub(crate) fn fallback_allowed(&self, cookie: &Payload, now: i64) -> bool {
        let max_age = self.inner.config.fallback_max_age;
        !max_age.is_zero() && now - cookie.touched <= seconds(max_age)
    }

    /// Seconds the session has left: the idle timeout, cut short by the absolute lifetime.
    pub(crate) fn ttl_secs(&self, created: i64, now: i64) -> u64 {
        let config = &self.inner.config;
        let absolute_left = created
            .saturating_add(seconds(config.absolute_lifetime))
            .saturating_sub(now);
        let ttl = seconds(config.idle_timeout).min(absolute_left).max(1);
        u64::try_from(ttl).unwrap_or(1)
    }

    pub(crate) fn mirror(&self, values: &Map<String, Value>) -> Map<String, Value> {
        mirror_of(values, &self.inner.config.mirrored_keys)
    }

    /// Whether `mirror` holds exactly the mirrored keys of `values` (without building it).
    pub(crate) fn mirror_matches(
        &self,
        values: &Map<String, Value>,
        mirror: &Map<String, Value>,
    ) -> bool {
        let mirrored = &self.inner.config.mirrored_keys;
        mirrored
            .iter()
            .all(|key| values.get(key) == mirror.get(key))
            && mirror.keys().all(|key| mirrored.contains(key))
    }

    /// Sends `payload` as the session cookie: the response will set it, and the rest of the
    /// request continues from it. When it does not fit in 4096 bytes, what was written while
    /// Redis was down is left out first (an error says so), then the mirror: the id always
    /// fits. Each cut is logged and counted.
    pub(crate) fn send(&self, state: &mut State, payload: Payload, now: i64) -> Result<()> {
        let max_age = Duration::from_secs(self.ttl_secs(payload.created, now));
        let mut payload = payload;
        let mut cut_changes = None;
        loop {
            let too_large = match self.inner.codec.encode(&payload, max_age) {
                Ok(header) => {
                    state.outgoing = Outgoing::Set(SetCookie::new(header));
                    state.base = Some(Arc::new(payload));
                    return match cut_changes {
                        Some(bytes) => Err(Error::CookieTooLarge { bytes }),
                        None => Ok(()),
                    };
                }
                Err(too_large) => too_large.bytes,
            };
            Counters::bump(&self.inner.counters.oversized_cookies);
            if !payload.data.is_empty() || !payload.removed.is_empty() {
                tracing::warn!(
                    bytes = too_large,
                    "session cookie would exceed 4096 bytes: changes made while Redis is down are dropped, the mirror is kept"
                );
                payload.data.clear();
                payload.removed.clear();
                cut_changes = Some(too_large);
            } else if !payload.mirror.is_empty() {
                tracing::warn!(
                    bytes = too_large,
                    "session cookie would exceed 4096 bytes: the mirrored keys are left out"
                );
                payload.mirror.clear();
            } else {
                tracing::error!(
                    bytes = too_large,
                    "session cookie cannot fit in 4096 bytes; not sent"
                );
                return Err(Error::CookieTooLarge { bytes: too_large });
            }
        }
    }

    pub(crate) fn removal(&self) -> SetCookie {
        SetCookie::new(self.inner.codec.removal())
    }
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
