//! [`SessionConfig`]: the cookie, the lifetimes and the fallback rules.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::ConfigError;
use crate::cookie::KeyRing;
use crate::session::Import;

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only on same-site requests.
    Strict,
    /// Also sent on top-level cross-site navigations (following a link). The default.
    Lax,
    /// Sent on every request; requires `Secure`.
    None,
}

/// How the cookie payload is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieMode {
    /// Encrypted and authenticated (AES-256-GCM): the client cannot read or change it. Default.
    Private,
    /// Signed (HMAC-SHA256): readable by the client (base64url JSON), but not changeable.
    Signed,
}

/// Checks session data loaded from Redis; an `Err` marks the session corrupt: it is deleted and
/// the request gets a fresh session. The message is logged (never with the session id).
pub type Validator =
    Arc<dyn Fn(&Map<String, Value>) -> std::result::Result<(), String> + Send + Sync>;

/// Everything about sessions that an application configures: the cookie, the lifetimes and the
/// fallback rules.
///
/// # How we chose the defaults
///
/// The most secure choice, unless it breaks common use:
///
/// - **Cookie** `__Host-session`, `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`:
///   sent only over HTTPS, invisible to scripts, not sent on cross-site sub-requests (`Strict`
///   would log users out when they follow a link from another site), and scoped to this host.
///   The `__Host-` prefix makes browsers refuse the cookie from a sibling subdomain or over plain
///   http, so nobody else can plant or shadow it; it is on whenever the other attributes allow
///   it (`Secure`, `Path=/`, no `Domain`), so a development setup without `Secure` gets plain
///   `session`.
/// - **Payload** encrypted and authenticated (AES-256-GCM): the mirrored values (who is logged in,
///   their role) are not readable by the client. Signing only is available for apps that want to
///   read the cookie elsewhere.
/// - **Idle timeout** 7 days, refreshed by use; **absolute lifetime** 30 days, after which the
///   session ends however much it is used, so a stolen cookie does not live for ever.
/// - **Touch interval** 5 minutes: the idle timeout is refreshed at most this often, one `EXPIRE`,
///   instead of a write on every request.
/// - **Fallback max age** 1 hour: while Redis is down, a cookie is honoured on its own only if
///   Redis confirmed it within the last hour. See the guide's page on outages (`docs/outages.md`, the revocation horizon).
/// - **Logout queue** 500,000 logouts made while Redis is down (about 50 MB at most): enough
///   that a flood of anonymous logouts cannot push a real one out; should it fill all the same,
///   the process fails closed.
///
/// ```
/// use std::time::Duration;
/// use resilient_session::{KeyRing, SessionConfig};
///
/// let config = SessionConfig::new(KeyRing::from_secret("an-example-secret-of-32-bytes-or-more")?)
///     .cookie_name("app_session")
///     .idle_timeout(Duration::from_secs(24 * 3600))
///     .mirrored_keys(["user"]);
/// # Ok::<(), resilient_session::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct SessionConfig {
    pub(crate) keys: KeyRing,
    pub(crate) cookie_name: String,
    /// `None`: on when the other attributes allow it.
    pub(crate) host_prefix: Option<bool>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) mode: CookieMode,
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_lifetime: Duration,
    pub(crate) touch_interval: Duration,
    pub(crate) namespace: String,
    pub(crate) mirrored_keys: BTreeSet<String>,
    pub(crate) fallback_max_age: Duration,
    pub(crate) max_session_bytes: usize,
    pub(crate) validator: Option<Validator>,
    pub(crate) import: Option<Arc<Import>>,
    pub(crate) max_queued_logouts: usize,
    /// `None`: no limit.
    pub(crate) max_sessions_per_owner: Option<usize>,
}

impl SessionConfig {
    /// The defaults, with cookies protected by `keys`.
    pub fn new(keys: KeyRing) -> Self {
        Self {
            keys,
            cookie_name: "session".into(),
            host_prefix: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            mode: CookieMode::Private,
            idle_timeout: Duration::from_secs(7 * 24 * 3600),
            absolute_lifetime: Duration::from_secs(30 * 24 * 3600),
            touch_interval: Duration::from_secs(5 * 60),
            namespace: "session".into(),
            mirrored_keys: BTreeSet::new(),
            fallback_max_age: Duration::from_secs(3600),
            max_session_bytes: 64 * 1024,
            validator: None,
            import: None,
            max_queued_logouts: crate::session::DEFAULT_LOGOUT_QUEUE,
            max_sessions_per_owner: None,
        }
    }

    /// The cookie's name. Default `session`.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// Prefix the name with `__Host-`: browsers then insist on `Secure`, `Path=/` and no
    /// `Domain`, so no sibling subdomain can set or shadow the cookie. Default: on whenever the
    /// cookie is `Secure`, with `Path=/` and no `Domain`; `true` with other attributes is
    /// refused at start-up.
    pub fn host_prefix(mut self, on: bool) -> Self {
        self.host_prefix = Some(on);
        self
    }

    /// The `Secure` attribute. Default on. Turn off only for plain-http development.
    pub fn secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    /// The `HttpOnly` attribute. Default on.
    pub fn http_only(mut self, on: bool) -> Self {
        self.http_only = on;
        self
    }

    /// The `SameSite` attribute. Default [`SameSite::Lax`].
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Path` attribute. Default `/`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The `Domain` attribute. Default none (this host only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// How the payload is protected. Default [`CookieMode::Private`].
    pub fn cookie_mode(mut self, mode: CookieMode) -> Self {
        self.mode = mode;
        self
    }

    /// Idle timeout: a session not used for this long ends. Default 7 days.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Absolute lifetime: a session ends this long after it began, however it is used. Default
    /// 30 days.
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime = lifetime;
        self
    }

    /// The idle timeout is refreshed (one `EXPIRE`) at most this often. Default 5 minutes.
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = interval;
        self
    }

    /// Carry live sessions over from tower-sessions or actix-session: a request that carries
    /// only the old app's cookie has its old session moved into a new one of ours, once. See
    /// [`Import`]. Default: none.
    ///
    /// ```
    /// # let keys = resilient_session::KeyRing::generate().expect("random");
    /// use resilient_session::{Import, SessionConfig};
    ///
    /// let config = SessionConfig::new(keys).import_sessions(Import::tower_sessions("id"));
    /// ```
    pub fn import_sessions(mut self, import: Import) -> Self {
        self.import = Some(Arc::new(import));
        self
    }

    /// Prefix of every Redis key. Default `session`. No spaces, no braces (the keys carry a
    /// Redis Cluster hash tag after it).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Keys whose values also ride in the encrypted cookie, so that they survive a Redis outage
    /// (typically the logged-in user and role). Keep them small: the cookie holds 4 KB.
    pub fn mirrored_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.mirrored_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// How long after Redis last confirmed a session its cookie is honoured on its own while
    /// Redis is down (or has lost its data). Zero fails closed: no fallback. Default 1 hour.
    pub fn fallback_max_age(mut self, age: Duration) -> Self {
        self.fallback_max_age = age;
        self
    }

    /// Most logouts made while Redis is down that this process keeps for replay (about 100
    /// bytes each). A full queue first drops logouts no cookie can use any more; should a
    /// logout still not fit, it is lost, logged and counted, and the process fails closed (no
    /// cookie stands in for Redis on its own) until the queue has drained. Default 500,000.
    pub fn max_queued_logouts(mut self, logouts: usize) -> Self {
        self.max_queued_logouts = logouts;
        self
    }

    /// Most sessions one owner ([`Session::set_owner`](crate::Session::set_owner)) may have at
    /// once: a login beyond it ends the owner's oldest sessions, decided in one script on the
    /// owner's index, so that two logins at the same moment cannot both pass a limit. An ended
    /// session ends as a logout does (every copy of its cookie). Default: no limit. Zero counts
    /// as one.
    pub fn max_sessions_per_owner(mut self, sessions: usize) -> Self {
        self.max_sessions_per_owner = Some(sessions.max(1));
        self
    }

    /// Largest session, in bytes of JSON. A larger session loaded from Redis is treated as
    /// corrupt; an insert that would exceed it is refused. Default 64 KiB.
    pub fn max_session_bytes(mut self, bytes: usize) -> Self {
        self.max_session_bytes = bytes;
        self
    }

    /// Check session data loaded from Redis (a schema check).
    ///
    /// ```
    /// # use resilient_session::{KeyRing, SessionConfig};
    /// # let keys = KeyRing::generate()?;
    /// let config = SessionConfig::new(keys).validate(|data| match data.get("user") {
    ///     Some(user) if !user.is_object() => Err("user must be an object".into()),
    ///     _ => Ok(()),
    /// });
    /// # Ok::<(), resilient_session::ConfigError>(())
    /// ```
    pub fn validate<F>(mut self, validator: F) -> Self
    where
        F: Fn(&Map<String, Value>) -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// The cookie's full name, with the `__Host-` prefix when it has one.
    ///
    /// ```
    /// # let keys = resilient_session::KeyRing::generate().expect("random");
    /// use resilient_session::SessionConfig;
    ///
    /// assert_eq!(SessionConfig::new(keys.clone()).full_cookie_name(), "__Host-session");
    /// assert_eq!(SessionConfig::new(keys).secure(false).full_cookie_name(), "session");
    /// ```
    pub fn full_cookie_name(&self) -> String {
        if self.prefixed() {
            format!("__Host-{}", self.cookie_name)
        } else {
            self.cookie_name.clone()
        }
    }

    /// Whether the name takes the `__Host-` prefix.
    fn prefixed(&self) -> bool {
        self.host_prefix
            .unwrap_or(self.secure && self.path == "/" && self.domain.is_none())
    }

    /// Refuses settings that cannot work, at start-up.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let name = &self.cookie_name;
        let valid_token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_token {
            return Err(ConfigError::Invalid(format!(
                "cookie name {name:?} is not a valid HTTP token"
            )));
        }
        if self.host_prefix == Some(true)
            && (!self.secure || self.path != "/" || self.domain.is_some())
        {
            return Err(ConfigError::Invalid(
                "the __Host- prefix requires Secure, Path=/ and no Domain".into(),
            ));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::Invalid("SameSite=None requires Secure".into()));
        }
        if !self.path.starts_with('/') || self.path.contains(';') {
            return Err(ConfigError::Invalid(format!(
                "invalid cookie path {:?}",
                self.path
            )));
        }
        if self
            .domain
            .as_deref()
            .is_some_and(|d| d.is_empty() || d.contains(';'))
        {
            return Err(ConfigError::Invalid("invalid cookie domain".into()));
        }
        if self.namespace.is_empty()
            || self
                .namespace
                .contains(|c: char| c.is_whitespace() || c == '{' || c == '}')
        {
            return Err(ConfigError::Invalid(
                "the namespace must be non-empty, without spaces or braces (braces would move \
                 the Redis Cluster hash tag)"
                    .into(),
            ));
        }
        if self.idle_timeout < Duration::from_secs(1)
            || self.absolute_lifetime < Duration::from_secs(1)
        {
            return Err(ConfigError::Invalid(
                "idle_timeout and absolute_lifetime must be at least one second".into(),
            ));
        }
        if let Some(import) = &self.import {
            let name = import.cookie_name();
            if name == self.full_cookie_name() {
                return Err(ConfigError::Invalid(
                    "the imported sessions' cookie needs another name than ours".into(),
                ));
            }
            if name.is_empty()
                || name.contains(|c: char| !c.is_ascii_graphic() || ";=,".contains(c))
            {
                return Err(ConfigError::Invalid(format!(
                    "the imported sessions' cookie name {name:?} is not a cookie name"
                )));
            }
        }
        if self.touch_interval >= self.idle_timeout {
            return Err(ConfigError::Invalid(
                "touch_interval must be shorter than idle_timeout".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("keys", &self.keys)
            .field("cookie_name", &self.full_cookie_name())
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("mode", &self.mode)
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("touch_interval", &self.touch_interval)
            .field("namespace", &self.namespace)
            .field("mirrored_keys", &self.mirrored_keys)
            .field("fallback_max_age", &self.fallback_max_age)
            .field("max_session_bytes", &self.max_session_bytes)
            .field("validator", &self.validator.is_some())
            .field("import", &self.import)
            .field("max_queued_logouts", &self.max_queued_logouts)
            .field("max_sessions_per_owner", &self.max_sessions_per_owner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig::new(KeyRing::generate().expect("random"))
    }

    #[test]
    fn defaults_are_the_secure_ones() {
        let c = config();
        assert!(c.secure && c.http_only);
        assert_eq!(c.same_site, SameSite::Lax);
        assert_eq!(c.mode, CookieMode::Private);
        assert_eq!(c.full_cookie_name(), "__Host-session");
        assert!(c.check().is_ok());
    }

    #[test]
    fn impossible_settings_are_refused() {
        let cases = [
            config().cookie_name("bad name"),
            config().cookie_name(""),
            config().host_prefix(true).secure(false),
            config().host_prefix(true).domain("example.com"),
            config().host_prefix(true).path("/app"),
            config().same_site(SameSite::None).secure(false),
            config().path("no-slash"),
            config().namespace(""),
            config().namespace("app{1}"),
            config()
                .touch_interval(Duration::from_secs(10))
                .idle_timeout(Duration::from_secs(5)),
        ];
        for case in cases {
            assert!(case.check().is_err(), "{case:?}");
        }
        assert_eq!(
            config().host_prefix(true).full_cookie_name(),
            "__Host-session"
        );
    }

    #[test]
    fn the_host_prefix_is_on_whenever_it_can_be() {
        let rows = [
            (config(), "__Host-session"),
            (config().secure(false), "session"),
            (config().path("/app"), "session"),
            (config().domain("example.com"), "session"),
            (config().host_prefix(false), "session"),
            (config().host_prefix(true), "__Host-session"),
        ];
        for (config, name) in rows {
            assert_eq!(config.full_cookie_name(), name, "{config:?}");
            assert!(config.check().is_ok(), "{config:?}");
        }
    }
}
