//! [`SessionStore`]: the engine both adapters drive.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, SUCCESSOR};
use super::engine::fit::cut;
use super::engine::load::LoadInput;
use super::engine::save::Ctx;
use super::engine::state::Legacy;
use super::engine::{ClientCookie, Cookie, Policy, State};
use super::id::Digest;
use super::response::ResponseHeaders;
use super::revocations::{Queued, Revocations, Target};
use super::{Import, Session, SessionId};
use crate::cookie::{CookieCodec, Payload};
use crate::health::{FallbackReport, HealthReport};
use crate::stats::{Counters, SessionStats};
use crate::{Error, RedisManager, Result, SessionConfig};

/// Sessions in Redis with a cookie fallback: built once at start-up from a [`RedisManager`] and
/// a [`SessionConfig`], cloned into every layer (clones share everything).
///
/// Framework adapters drive a request through it in two calls: [`open`](Self::open) before the
/// handler (parse the cookie, no I/O) and [`finish`](Self::finish) after it (persist, touch,
/// and the headers to add to the response). The tower [`SessionLayer`](crate::SessionLayer)
/// does exactly that.
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
/// let headers = store.finish(&session).await;
/// for set_cookie in headers.set_cookies() {
///     println!("Set-Cookie: {set_cookie}");
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
    policy: Policy,
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
    /// A store on `manager` with `config`. A background task replays logouts made while Redis
    /// was down.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for settings that cannot work (see [`SessionConfig`]): at start-up
    /// rather than per request. [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn new(manager: RedisManager, config: SessionConfig) -> Result<Self> {
        config.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let store = Self {
            inner: Arc::new(Inner {
                backend: Backend::new(manager, config.namespace.clone()),
                codec: CookieCodec::new(&config),
                policy: Policy::new(&config),
                revocations: Revocations::new(config.max_queued_logouts),
                config,
                counters: Counters::default(),
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

    /// Step one of a request: the session for a request whose `Cookie` headers have these
    /// values. No I/O, and no cryptography yet: the cookie is verified on first use (or at the
    /// end of the request if a touch may be due).
    pub fn open<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a [u8]>) -> Session {
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
                state.outgoing = super::engine::state::Outgoing::Remove;
                ClientCookie::None
            }
            None => {
                Counters::bump(if raw.too_long() {
                    &counters.cookies_too_long
                } else {
                    &counters.cookies_rejected
                });
                state.outgoing = super::engine::state::Outgoing::Remove;
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

    pub(crate) fn ctx(&self, now: i64) -> Ctx<'_> {
        Ctx {
            policy: self.inner.policy,
            mirrored: &self.inner.config.mirrored_keys,
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

    /// Queues the logout of `target` for replay, which matters until `until`.
    pub(crate) fn revoke_later(&self, target: Target, until: i64, now: i64) {
        let counters = &self.inner.counters;
        match self.inner.revocations.push(target, until, now) {
            Queued::Yes | Queued::Already => Counters::bump(&counters.revocations_queued),
            Queued::Lost => {
                Counters::bump(&counters.revocations_failed);
                tracing::error!(
                    "the queue of logouts waiting for Redis is full: this one is lost, and until the queue has drained no cookie stands in for Redis on its own (fail closed)"
                );
            }
        }
    }

    /// Queues the logout of a session whose cookie is `payload` (or, without one, as long as
    /// any session could matter).
    pub(crate) fn revoke_id_later(&self, id: &SessionId, payload: Option<&Payload>, now: i64) {
        let policy = &self.inner.policy;
        let until = match payload {
            Some(p) => {
                policy.revocation_matters_until(p.created, p.touched, p.id.as_ref() == Some(id))
            }
            None => policy.revocation_matters_until(now, now, true),
        };
        self.revoke_later(Target::Session(*id.digest()), until, now);
    }

    /// A logout, now: `DEL` and a "revoked" tombstone for `digest`, then for every successor a
    /// "moved" tombstone names.
    ///
    /// # Errors
    ///
    /// The link of the chain Redis could not take, and why: the caller queues it.
    pub(crate) async fn revoke_chain(&self, digest: Digest) -> Result<(), (Digest, Error)> {
        let secs = self.inner.policy.tombstone_secs();
        let mut next = Some(digest);
        let mut steps = 0;
        while let Some(digest) = next {
            let previous = self
                .backend()
                .revoke(&digest, secs)
                .await
                .map_err(|err| (digest, err))?;
            steps += 1;
            next = match super::backend::tombstone_of(previous.as_deref(), |_| None) {
                super::engine::answer::Tombstone::Moved { digest, .. }
                    if steps < super::engine::load::MAX_FOLLOW =>
                {
                    Some(digest)
                }
                _ => None,
            };
        }
        Ok(())
    }

    /// [`revoke_chain`](Self::revoke_chain), queueing what Redis cannot take now.
    pub(crate) async fn revoke_now_or_later(&self, digest: Digest, now: i64) {
        if let Err((left, err)) = self.revoke_chain(digest).await {
            tracing::debug!(error = %err, "logout queued until Redis is available");
            let until = self.inner.policy.revocation_matters_until(now, now, true);
            self.revoke_later(Target::Session(left), until, now);
        }
    }

    /// Seals a successor's id for its tombstone.
    pub(crate) fn seal(&self, id: &str) -> String {
        self.inner.codec.seal(SUCCESSOR, id)
    }

    /// Opens a successor's id from its tombstone.
    pub(crate) fn unseal(&self, sealed: &str) -> Option<SessionId> {
        SessionId::parse(&self.inner.codec.unseal(SUCCESSOR, sealed)?)
    }

    /// Sends `payload` as the session cookie: the response will set it, and the rest of the
    /// request continues from it. When it does not fit in 4096 bytes, what gives way is cut
    /// (see [`cut`]); each cut is logged and counted. Should even the removals made while Redis
    /// was down not fit, the session fails closed: it ends here (its logout queued) rather than
    /// let a removed value come back.
    ///
    /// # Errors
    ///
    /// [`Error::CookieTooLarge`] when a cut lost writes made while Redis was down.
    pub(crate) fn send(&self, state: &mut State, payload: Payload, now: i64) -> Result<()> {
        let max_age = Duration::from_secs(self.inner.policy.ttl_secs(payload.created, now));
        let mut payload = payload;
        let mut lost_writes = None;
        loop {
            let too_large = match self.inner.codec.encode(&payload, max_age) {
                Ok(header) => {
                    state.issue(header, payload);
                    return match lost_writes {
                        Some(bytes) => Err(Error::CookieTooLarge { bytes }),
                        None => Ok(()),
                    };
                }
                Err(too_large) => too_large.bytes,
            };
            Counters::bump(&self.inner.counters.oversized_cookies);
            match cut(&mut payload) {
                Some(lost) => {
                    if lost.loses_writes() {
                        tracing::warn!(
                            bytes = too_large,
                            "session cookie would exceed 4096 bytes: changes made while Redis is down are dropped ({lost:?})"
                        );
                        lost_writes = Some(too_large);
                    } else {
                        tracing::warn!(
                            bytes = too_large,
                            "session cookie would exceed 4096 bytes: the mirrored keys are left out"
                        );
                    }
                }
                None if !payload.unsaved => {
                    // Only the identity is left, and Redis has everything: nothing is lost.
                    tracing::error!(
                        bytes = too_large,
                        "session cookie cannot fit in 4096 bytes; not sent"
                    );
                    return Err(Error::CookieTooLarge { bytes: too_large });
                }
                None => {
                    tracing::error!(
                        bytes = too_large,
                        "session cookie cannot fit in 4096 bytes; the session ends rather than lose what was removed"
                    );
                    if let Some(id) = payload.revocable_id() {
                        self.revoke_id_later(id, Some(&payload), now);
                    }
                    state.end(super::engine::Phase::Ended);
                    return Err(Error::CookieTooLarge { bytes: too_large });
                }
            }
        }
    }

    /// What the response gets: the cookies, and whether it is about a session.
    pub(crate) fn headers(&self, state: &State) -> ResponseHeaders {
        use super::engine::state::Outgoing;
        let cookie = match &state.outgoing {
            Outgoing::Keep => None,
            Outgoing::Set(header) => Some(header.clone()),
            Outgoing::Remove => Some(self.inner.codec.removal()),
        };
        let legacy = (state.legacy == Legacy::Remove)
            .then(|| {
                let config = self.config();
                config.import.as_ref().map(|i| i.removal(config.secure))
            })
            .flatten();
        let read = state.phase != super::engine::Phase::Unloaded;
        ResponseHeaders::new(cookie, legacy, read)
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
