//! [`SessionStore`]: the seed's "Session Service", and the engine both adapters drive.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Session;
use super::backend::Backend;
use super::response::SetCookie;
use super::state::{State, mirror_of};
use crate::cookie::{CookieCodec, Incoming, Payload};
use crate::health::HealthReport;
use crate::stats::{Counters, SessionStats};
use crate::{RedisManager, Result, SessionConfig};

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
///     println!("Set-Cookie: {}", set_cookie.header());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    config: SessionConfig,
    codec: CookieCodec,
    counters: Counters,
}

impl SessionStore {
    /// A store on `manager` with `config`. Fails on settings that cannot work (see
    /// [`SessionConfig`]), at start-up rather than per request.
    pub fn new(manager: RedisManager, config: SessionConfig) -> Result<Self> {
        config.check()?;
        Ok(Self {
            inner: Arc::new(Inner {
                backend: Backend::new(manager, config.namespace.clone()),
                codec: CookieCodec::new(&config),
                config,
                counters: Counters::default(),
            }),
        })
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

    /// Counters since start: refused cookies, corrupt sessions, fallbacks.
    pub fn stats(&self) -> SessionStats {
        self.inner.counters.snapshot()
    }

    /// The health report served at `GET /api/health/redis`: one `PING` (none while the
    /// breaker is open).
    pub async fn health(&self) -> HealthReport {
        let redis = self.manager().check().await;
        HealthReport::new(&redis, true)
    }

    /// Step one of a request: the session for a request whose `Cookie` headers have these
    /// values. No I/O: the session loads on first use.
    pub fn open<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a [u8]>) -> Session {
        let incoming = match self.inner.codec.find(cookie_headers) {
            Incoming::Valid(payload) if self.is_expired(&payload, now()) => Incoming::Invalid,
            Incoming::Invalid => {
                Counters::bump(&self.inner.counters.cookies_rejected);
                Incoming::Invalid
            }
            other => other,
        };
        Session::new(self.clone(), State::new(incoming))
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Past its absolute lifetime or idle timeout, or issued in the future.
    fn is_expired(&self, cookie: &Payload, now: i64) -> bool {
        let config = &self.inner.config;
        let absolute = seconds(config.absolute_lifetime);
        let idle = seconds(config.idle_timeout);
        const SKEW: i64 = 300;
        now >= cookie.created.saturating_add(absolute)
            || now >= cookie.touched.saturating_add(idle)
            || cookie.created > now + SKEW
            || cookie.touched > now + SKEW
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

    /// The `Set-Cookie` for `payload`. When it does not fit in 4096 bytes, what was written while
    /// Redis was down is left out first, then the mirror: the id always fits. Each cut is
    /// logged and counted.
    pub(crate) fn issue(&self, payload: &Payload, now: i64) -> Option<SetCookie> {
        let max_age = Duration::from_secs(self.ttl_secs(payload.created, now));
        let mut payload = std::borrow::Cow::Borrowed(payload);
        loop {
            let too_large = match self.inner.codec.encode(&payload, max_age) {
                Ok(header) => return Some(SetCookie::new(header)),
                Err(too_large) => too_large,
            };
            Counters::bump(&self.inner.counters.oversized_cookies);
            let cut = payload.to_mut();
            let dropped = if !cut.data.is_empty() || !cut.removed.is_empty() {
                cut.data.clear();
                cut.removed.clear();
                "the changes made while Redis was down"
            } else if !cut.mirror.is_empty() {
                cut.mirror.clear();
                "the mirrored keys"
            } else {
                tracing::error!(
                    bytes = too_large.bytes,
                    "session cookie cannot fit in 4096 bytes; not sent"
                );
                return None;
            };
            tracing::warn!(
                bytes = too_large.bytes,
                dropped,
                "session cookie would exceed 4096 bytes"
            );
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
