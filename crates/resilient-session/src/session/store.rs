//! [`SessionEngine`]: the engine both adapters drive.

use std::fmt;
use std::sync::Arc;

use super::backend::Backend;
use super::engine::load::LoadInput;
use super::engine::save::Ctx;
use super::engine::state::{Legacy, Outgoing};
use super::engine::{ClientCookie, Cookie, Policy, State};
use super::revocations::Revocations;
use super::tombstone::SUCCESSOR;
use super::{Import, Session, SessionId};
use crate::cookie::{CookieCodec, Payload};
use crate::health::{FallbackReport, HealthReport};
use crate::stats::{Counters, SessionStats};
use crate::{ConfigError, RedisManager, SessionConfig};

/// Sessions in Redis with a cookie fallback: built once at start-up from a [`RedisManager`] and
/// a [`SessionConfig`], cloned into every layer (clones share everything).
///
/// The [`SessionLayer`](crate::SessionLayer) (or an adapter's middleware) hands each request a
/// [`Session`]; the engine itself is for the rest of the app: a user's sessions
/// ([`sessions_of`](Self::sessions_of), [`revoke_all`](Self::revoke_all), …), the
/// [`health`](Self::health) report, the [`stats`](Self::stats).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use resilient_session::{KeyRing, RedisManager, SessionConfig, SessionEngine, SessionLayer};
///
/// let manager = RedisManager::from_env()?;
/// let keys = KeyRing::from_secret(std::env::var("SESSION_SECRET").unwrap_or_default())?;
/// let engine = SessionEngine::new(manager, SessionConfig::new(keys).mirrored_keys(["user"]))?;
/// let layer = SessionLayer::new(engine.clone());
/// // After a password change: every session of the user ends.
/// engine.revoke_all("ada").await?;
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionEngine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    backend: Backend,
    config: SessionConfig,
    policy: Policy,
    /// The fingerprint of the mirrored keys, as cookies carry it.
    fingerprint: u32,
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

impl SessionEngine {
    /// An engine on `manager` with `config`. A background task replays logouts made while Redis
    /// was down.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for settings that cannot work (see [`SessionConfig`]): at
    /// start-up rather than per request. [`ConfigError::NoRuntime`] outside a Tokio runtime.
    pub fn new(manager: RedisManager, config: SessionConfig) -> Result<Self, ConfigError> {
        config.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let store = Self {
            inner: Arc::new(Inner {
                backend: Backend::new(manager, config.namespace.clone()),
                codec: CookieCodec::new(&config),
                policy: Policy::new(&config),
                fingerprint: Payload::fingerprint(&config.mirrored_keys),
                revocations: Revocations::new(config.max_queued_logouts),
                config,
                counters: Counters::default(),
            }),
        };
        let wake = Arc::clone(&store.inner.revocations.wake);
        runtime.spawn(super::replay::replay(Arc::downgrade(&store.inner), wake));
        Ok(store)
    }

    /// An engine that never contacts Redis: sessions live in their cookie, as during an outage,
    /// with every key carried in it. For tests of handlers that take a [`Session`], so that they
    /// run without a Redis server; the engine's rules and cookie format are the ones in
    /// production. Values must fit in the cookie (4096 bytes in all); a logout removes the
    /// cookie, and this process (no other) refuses copies of it; there is no index of a user's
    /// sessions ([`sessions_of`](Self::sessions_of) and the revocations by owner answer
    /// [`Error::NotUsed`](crate::Error::NotUsed)); the [health](Self::health) report is
    /// `unhealthy` with the state `not_used`. Reads and writes count as served from the cookie
    /// in the [stats](Self::stats) and metrics, as they are.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use http::{Request, Response, header};
    /// use resilient_session::{KeyRing, Session, SessionConfig, SessionEngine, SessionLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// let config = SessionConfig::new(KeyRing::generate()?).secure(false);
    /// let engine = SessionEngine::cookie_only(config)?;
    /// let app = SessionLayer::new(engine).layer(service_fn(|request: Request<()>| async move {
    ///     let session = request.extensions().get::<Session>().cloned().ok_or("no session")?;
    ///     let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    ///     session.insert("visits", visits).await?;
    ///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Response::new(visits.to_string()))
    /// }));
    ///
    /// let first = app.clone().oneshot(Request::new(())).await?;
    /// let cookie = first.headers()[header::SET_COOKIE].to_str()?.split(';').next().ok_or("a cookie")?.to_owned();
    /// assert_eq!(first.into_body(), "1");
    /// let again = Request::builder().header(header::COOKIE, cookie).body(())?;
    /// assert_eq!(app.oneshot(again).await?.into_body(), "2");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new): [`ConfigError::Invalid`] for settings that cannot work,
    /// [`ConfigError::NoRuntime`] outside a Tokio runtime.
    pub fn cookie_only(config: SessionConfig) -> Result<Self, ConfigError> {
        Self::new(crate::RedisManagerBuilder::not_used()?, config)
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

    /// The cookie's name, with the `__Host-` prefix when it has one.
    pub fn cookie_name(&self) -> &str {
        self.inner.codec.name()
    }

    /// Counters since start: refused cookies, corrupt sessions, fallbacks, replayed logouts.
    pub fn stats(&self) -> SessionStats {
        let revocations = &self.inner.revocations;
        let pending = u64::try_from(revocations.len()).unwrap_or(u64::MAX);
        self.inner
            .counters
            .snapshot(pending, revocations.failing_closed())
    }

    /// The health report served at `GET /api/health/redis`: one `PING` (none while the
    /// breaker is open). Sessions are served while Redis is down, so the session service counts
    /// as working; the report's `fallback` section shows the degraded operation.
    pub async fn health(&self) -> HealthReport {
        let redis = self.manager().check().await;
        HealthReport::new(&redis, true).with_fallback(FallbackReport::new(&redis, &self.stats()))
    }

    /// See [`adapter::open`](crate::adapter::open).
    pub(crate) fn open<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a [u8]>) -> Session {
        let import = self.inner.config.import.as_deref();
        let found = self
            .inner
            .codec
            .find(cookie_headers, import.map(Import::cookie_name));
        Session::new(self.clone(), State::new(found.ours, found.legacy))
    }

    /// Verifies the request's cookie, once: a valid, unexpired one becomes the client's cookie;
    /// anything else is removed in the response.
    pub(crate) fn verify(&self, state: &mut State, now: i64) {
        let ClientCookie::Unverified(raw) = &state.cookie else {
            return;
        };
        let counters = &self.inner.counters;
        state.cookie = match self.inner.codec.open(raw) {
            Some(opened)
                if !self.inner.policy.expired(
                    opened.payload.created,
                    opened.payload.touched,
                    now,
                ) =>
            {
                ClientCookie::Valid(Cookie {
                    payload: Arc::new(opened.payload),
                    newest_key: opened.newest_key,
                })
            }
            Some(_expired) => {
                Counters::bump(&counters.cookies_expired);
                state.outgoing = Outgoing::Remove;
                ClientCookie::None
            }
            None => {
                Counters::bump(if raw.too_long() {
                    &counters.cookies_too_long
                } else {
                    &counters.cookies_rejected
                });
                state.outgoing = Outgoing::Remove;
                ClientCookie::None
            }
        };
    }

    /// Whether the client's cookie may be left unverified at the end of a request that did not
    /// use it: its clear hint says no touch is due and it has not expired.
    pub(crate) fn quiet(&self, state: &State, now: i64) -> bool {
        match &state.cookie {
            ClientCookie::Unverified(raw) => raw
                .touched_hint()
                .is_some_and(|hint| !self.inner.policy.worth_verifying(hint, now)),
            _ => false,
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

    pub(crate) fn policy(&self) -> Policy {
        self.inner.policy
    }

    pub(crate) fn codec(&self) -> &CookieCodec {
        &self.inner.codec
    }

    pub(crate) fn ctx(&self, now: i64) -> Ctx<'_> {
        Ctx {
            policy: self.inner.policy,
            mirrored: &self.inner.config.mirrored_keys,
            fingerprint: self.inner.fingerprint,
            now,
        }
    }

    /// What a load starts from.
    pub(crate) fn load_input(&self, state: &State, now: i64) -> LoadInput<'_> {
        LoadInput {
            cookie: state.valid_cookie().cloned(),
            legacy_key: self.legacy_key(state),
            revoked_here: self.revoked_here(state),
            fail_closed: self.inner.revocations.failing_closed(),
            mirrored: &self.inner.config.mirrored_keys,
            fingerprint: self.inner.fingerprint,
            policy: self.inner.policy,
            now,
        }
    }

    /// The Redis key of the imported app's session the request's old cookie stands for, if it
    /// is one that app issued.
    pub(crate) fn legacy_key(&self, state: &State) -> Option<String> {
        let Legacy::Present(value) = &state.legacy else {
            return None;
        };
        self.inner.config.import.as_ref()?.redis_key(value)
    }

    /// Whether this process holds a logout of the client cookie's session that waits for Redis.
    pub(crate) fn revoked_here(&self, state: &State) -> bool {
        let revocations = &self.inner.revocations;
        !revocations.is_empty()
            && state
                .valid_cookie()
                .and_then(|cookie| cookie.payload.revocable_id())
                .is_some_and(|id| revocations.contains(id.digest()))
    }

    /// Seals a successor's id for its tombstone.
    pub(crate) fn seal(&self, id: &str) -> String {
        self.inner.codec.seal(SUCCESSOR, id)
    }

    /// Opens a successor's id from its tombstone.
    pub(crate) fn unseal(&self, sealed: &str) -> Option<SessionId> {
        SessionId::parse(&self.inner.codec.unseal(SUCCESSOR, sealed)?)
    }
}

impl fmt::Debug for SessionEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEngine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
