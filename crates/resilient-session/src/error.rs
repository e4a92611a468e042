//! The crate's error types.
//!
//! Two enums, so that what a handler can meet is apart from what stops an app at start-up:
//! [`ConfigError`] from building things (a Redis URL, a setting, a secret), [`Error`] from
//! serving requests (Redis unavailable, a value of the wrong type, a session too large). Callers
//! of [`Error`] mostly need to know one thing: is Redis unavailable (so a fallback applies), or
//! is something else wrong? The predicates [`Error::is_unavailable`], [`Error::is_timeout`] and
//! [`Error::is_decode`] answer that without matching on variants. Messages carry context (the
//! operation, the key, the setting) but never a password, a session id or a secret.

use std::fmt;
use std::time::Duration;

use bb8_redis::redis::{ErrorKind, RedisError, ServerErrorKind};

/// A setting refused at start-up: by [`RedisManagerBuilder::build`](crate::RedisManagerBuilder::build),
/// [`RedisManager::from_env`](crate::RedisManager::from_env), [`KeyRing::new`](crate::KeyRing::new)
/// or [`SessionEngine::new`](crate::SessionEngine::new). The message names the setting to fix.
///
/// ```
/// use resilient_session::{ConfigError, KeyRing};
///
/// let err = KeyRing::from_secret("short").unwrap_err();
/// assert!(matches!(err, ConfigError::Invalid(_)));
/// assert!(err.to_string().contains("32 bytes"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A Redis URL could not be parsed. The URL itself is not repeated: it may hold a password.
    #[error(
        "{setting} is not a Redis URL (expected redis://[user[:password]@]host[:port][/db], or \
         rediss:// for TLS)"
    )]
    InvalidUrl {
        /// Where the URL came from: an environment variable (`REDIS_URL`) or a builder method.
        setting: &'static str,
        /// What the Redis client said about it.
        #[source]
        source: RedisClientError,
    },

    /// The TLS settings do not load: a certificate or key of
    /// `RedisManagerBuilder::tls_root_certificate` / `tls_client_certificate` is not valid PEM,
    /// or the key does not match its certificate.
    #[error(
        "the Redis TLS certificates do not load (check the CA, client certificate and key files)"
    )]
    Tls {
        /// What the Redis client said about them.
        #[source]
        source: RedisClientError,
    },

    /// A setting cannot work; the message names it and says what it accepts.
    #[error("invalid configuration: {0}")]
    Invalid(String),

    /// A Redis manager or session engine was built outside a Tokio runtime.
    #[error("no Tokio runtime: build the RedisManager and the SessionEngine from within one")]
    NoRuntime,

    /// The operating system's random number generator failed (for [`KeyRing::generate`](crate::KeyRing::generate)).
    #[error("the operating system's random number generator failed")]
    Randomness {
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// What the Redis client said, as the source of [`Error::Redis`], [`ConfigError::InvalidUrl`]
/// and [`ConfigError::Tls`]. Its message is the client's; the client's own error type stays
/// private, so that a new major version of the client is not a breaking change here.
pub struct RedisClientError(pub(crate) RedisError);

impl fmt::Display for RedisClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for RedisClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for RedisClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let source = std::error::Error::source(&self.0)?;
        // The client's message already ends with its I/O error's: said once, not twice.
        (!self.0.to_string().contains(&source.to_string())).then_some(source)
    }
}

/// What can go wrong while serving a request: Redis unavailable, a value of the wrong type, a
/// session over its size limit.
///
/// ```
/// use resilient_session::Error;
///
/// fn describe(err: &Error) -> &'static str {
///     if err.is_unavailable() {
///         "Redis is down: serve from the fallback"
///     } else if err.is_decode() {
///         "stored value has the wrong shape"
///     } else {
///         "a bug or bad data"
///     }
/// }
/// assert_eq!(describe(&Error::CircuitOpen), "Redis is down: serve from the fallback");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The circuit breaker is open: Redis failed repeatedly and is not being contacted.
    #[error("Redis is unavailable: the circuit breaker is open")]
    CircuitOpen,

    /// The engine is cookie-only ([`SessionEngine::cookie_only`](crate::SessionEngine::cookie_only)):
    /// it never contacts Redis. [`Error::is_unavailable`] is true for it.
    #[error("Redis is not used: this session engine is cookie-only")]
    NotUsed,

    /// A Redis operation (connection checkout or command) did not finish in time.
    #[error("Redis {operation} timed out after {after:?}")]
    Timeout {
        /// The operation, e.g. `connect` or `get`.
        operation: &'static str,
        /// The time limit that was exceeded.
        after: Duration,
    },

    /// Redis answered with an error, or the connection failed.
    #[error("Redis {operation} failed")]
    Redis {
        /// The operation, e.g. `connect` or `get`.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: RedisClientError,
    },

    /// A value read from Redis is not valid JSON for the requested type.
    #[error("value at Redis key `{key}` does not decode as the requested type")]
    Decode {
        /// The full Redis key.
        key: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },

    /// A session value does not convert to or from the requested type.
    #[error("session value `{key}` does not convert to or from the requested type")]
    SessionValue {
        /// The session key (not the Redis key).
        key: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },

    /// An insert would make the session larger than `SessionConfig::max_session_bytes`.
    #[error("session would be {bytes} bytes, over the limit of {limit}")]
    SessionTooLarge {
        /// The size the session would have had, in bytes of JSON.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },

    /// Redis was unavailable and the session's changes did not fit in the 4096-byte cookie:
    /// the mirrored keys were kept, the other changes were dropped.
    #[error(
        "session changes do not fit in the cookie while Redis is unavailable ({bytes} bytes \
         needed, 4096 allowed): mirrored keys kept, other changes dropped"
    )]
    CookieTooLarge {
        /// The size the cookie would have had.
        bytes: usize,
    },

    /// The session's cookie is too old to stand in for Redis (see `fallback_max_age`) and Redis
    /// is unavailable: the session is served empty and its changes are not kept, so that the
    /// real session is still there when Redis is back.
    #[error(
        "Redis is unavailable and the session cookie is too old to stand in for it: changes not kept"
    )]
    FallbackExpired,

    /// Redis is unavailable and the cookie standing in for it does not carry this key (it is
    /// not mirrored, nor written since Redis was last reached): its value is not known. Not
    /// "absent": it may exist in Redis. [`Error::is_unavailable`] is true for it.
    #[error(
        "session value `{key}` is unavailable: Redis cannot be reached and the session cookie does not carry it"
    )]
    ValueUnavailable {
        /// The session key.
        key: String,
    },

    /// The request's session cookie predates a login made in another request (a request racing
    /// the login, a stale tab): its session went on under another id, and this request's
    /// changes are not kept. The browser has the login's cookie.
    #[error("the session cookie was superseded by a login in another request: changes not kept")]
    SessionSuperseded,

    /// Session keys starting with a NUL character are reserved for the library.
    #[error("session key {key:?} is reserved (keys may not start with a NUL character)")]
    ReservedKey {
        /// The key.
        key: String,
    },

    /// The operating system's random number generator failed: no session id could be made, and
    /// nothing was saved.
    #[error("the operating system's random number generator failed: nothing was saved")]
    Randomness {
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A time to live of zero, or one too long for Redis, was passed to a
    /// [`RedisService`](crate::RedisService) call.
    #[error("a Redis TTL must be between 1 ms and u64::MAX ms, not {ttl:?}")]
    InvalidTtl {
        /// The TTL passed.
        ttl: Duration,
    },

    /// A value could not be serialised to JSON.
    #[error("value for Redis key `{key}` could not be encoded as JSON")]
    Encode {
        /// The full Redis key.
        key: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// A crate-wide `Result` alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn redis(operation: &'static str, source: RedisError) -> Self {
        Error::Redis {
            operation,
            source: RedisClientError(source),
        }
    }

    /// Redis cannot serve requests right now: refused or dropped connection, timeout, open
    /// circuit, failed authentication, or a server that cannot take the command (`LOADING`,
    /// `MASTERDOWN`, `READONLY`, `OOM`, `TRYAGAIN`, `CLUSTERDOWN`, `MOVED`, `ASK`, `BUSY`); and a
    /// session value that is unknown because of it ([`Error::ValueUnavailable`]).
    ///
    /// Session code falls back to the cookie on these; anything else is a bug or bad data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::CircuitOpen
            | Error::NotUsed
            | Error::Timeout { .. }
            | Error::ValueUnavailable { .. } => true,
            // Whatever stopped a connection (TLS, a handshake, a refused client configuration),
            // Redis was not reached.
            Error::Redis {
                operation: "connect",
                ..
            } => true,
            Error::Redis { source, .. } => {
                is_connection_error(&source.0)
                    || is_auth_error(&source.0)
                    || is_server_busy(&source.0)
            }
            _ => false,
        }
    }

    /// An operation ran out of time (connection checkout or command).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Redis { source, .. } => source.0.is_timeout(),
            _ => false,
        }
    }

    /// A stored value did not decode as the requested type.
    pub fn is_decode(&self) -> bool {
        matches!(self, Error::Decode { .. } | Error::SessionValue { .. })
    }

    /// Worth another attempt: connection errors and timeouts, and the answers by which a
    /// server refuses a command for now without running it (`LOADING`, `MASTERDOWN`,
    /// `READONLY`, `TRYAGAIN`, `CLUSTERDOWN`, `MOVED`, `ASK`: a failover or a resharding under
    /// way). Never authentication failures, out-of-memory, wrong types or other answers.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Redis { source, .. } => {
                is_connection_error(&source.0) || refused_for_now(&source.0)
            }
            _ => false,
        }
    }

    /// The connection this error came from cannot be trusted any more.
    pub(crate) fn breaks_connection(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Redis { source, .. } => is_connection_error(&source.0),
            _ => false,
        }
    }

    /// The connection was closed under the command (a Redis restart, a killed node).
    pub(crate) fn is_connection_dropped(&self) -> bool {
        matches!(self, Error::Redis { source, .. } if source.0.is_connection_dropped())
    }

    /// The node is a replica now (`READONLY`): after a failover, connections to it must go.
    pub(crate) fn is_read_only(&self) -> bool {
        match self {
            Error::Redis { source, .. } => {
                source.0.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
                    || server_codes(&source.0).iter().any(|c| c == "READONLY")
            }
            _ => false,
        }
    }

    /// Redis does not know the script asked for by its SHA-1 (`NOSCRIPT`).
    pub(crate) fn is_no_script(&self) -> bool {
        match self {
            Error::Redis { source, .. } => server_codes(&source.0).iter().any(|c| c == "NOSCRIPT"),
            _ => false,
        }
    }

    /// The `kind` label of [`crate::metrics::REDIS_FAILURES`]: `circuit_open`, `timeout`,
    /// `connection`, `auth`, `refused` (a server that cannot take the command now), `noscript`
    /// (a script not cached yet: sent again at once) or `other`.
    pub(crate) fn failure_kind(&self) -> &'static str {
        match self {
            Error::CircuitOpen => "circuit_open",
            _ if self.is_timeout() => "timeout",
            Error::Redis {
                operation: "connect",
                source,
            } if !is_auth_error(&source.0) => "connection",
            Error::Redis { source, .. } if is_connection_error(&source.0) => "connection",
            Error::Redis { source, .. } if is_auth_error(&source.0) => "auth",
            Error::Redis { source, .. } if is_server_busy(&source.0) => "refused",
            _ if self.is_no_script() => "noscript",
            _ => "other",
        }
    }

    /// Redis said the key holds another type (`WRONGTYPE`): the data is not ours to read.
    pub(crate) fn is_wrong_type(&self) -> bool {
        match self {
            Error::Redis { source, .. } => server_codes(&source.0).iter().any(|c| c == "WRONGTYPE"),
            _ => false,
        }
    }
}

/// The error codes Redis answered with: one for a command, one per failed command of a
/// pipeline (whose error has no single code).
fn server_codes(err: &RedisError) -> Vec<String> {
    match err.code() {
        Some(code) => vec![code.to_owned()],
        None => err
            .clone()
            .into_server_errors()
            .map(|errors| errors.iter().map(|(_, e)| e.code().to_owned()).collect())
            .unwrap_or_default(),
    }
}

fn is_connection_error(err: &RedisError) -> bool {
    // A cluster connection with no live connection to the node of a slot says so.
    err.kind() == ErrorKind::ClusterConnectionNotFound
        || err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
}

fn is_auth_error(err: &RedisError) -> bool {
    err.kind() == ErrorKind::AuthenticationFailed
        || server_codes(err)
            .iter()
            .any(|c| matches!(c.as_str(), "NOAUTH" | "WRONGPASS"))
}

/// The server cannot take the command now: it is busy, out of memory, or refuses it for now.
fn is_server_busy(err: &RedisError) -> bool {
    refused_for_now(err) || server_codes(err).iter().any(|c| c == "OOM" || c == "BUSY")
}

/// The server refused the command without running it, because of a failover, a resharding or
/// a start-up under way.
fn refused_for_now(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
        )
    ) || server_codes(err).iter().any(|c| {
        matches!(
            c.as_str(),
            "LOADING" | "MASTERDOWN" | "READONLY" | "TRYAGAIN" | "CLUSTERDOWN" | "MOVED" | "ASK"
        )
    })
}

/// Used by tests of the classification; keeps `redis` out of their imports.
#[cfg(test)]
pub(crate) fn server_error(code: &str, detail: &str) -> RedisError {
    bb8_redis::redis::make_extension_error(code.to_owned(), Some(detail.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_err(source: RedisError) -> Error {
        Error::redis("get", source)
    }

    /// The error and its causes, as a log line joins them.
    fn chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    }

    #[test]
    fn a_refused_connection_says_why_once() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let text = chain(&Error::redis("connect", refused));
        assert_eq!(text.matches("refused").count(), 1, "{text}");
        assert!(text.starts_with("Redis connect failed: "), "{text}");
    }

    #[test]
    fn io_errors_are_retryable_and_unavailable() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let err = redis_err(refused);
        assert!(err.is_retryable());
        assert!(err.is_unavailable());
        assert!(!err.is_decode());
    }

    #[test]
    fn server_answers_are_never_retried() {
        for code in ["WRONGPASS", "NOAUTH", "OOM", "WRONGTYPE"] {
            let err = redis_err(server_error(code, "nope"));
            assert!(!err.is_retryable(), "{code} must not be retried");
        }
    }

    #[test]
    fn auth_and_oom_count_as_unavailable_but_wrongtype_does_not() {
        assert!(redis_err(server_error("WRONGPASS", "x")).is_unavailable());
        assert!(redis_err(server_error("OOM", "x")).is_unavailable());
        assert!(!redis_err(server_error("WRONGTYPE", "x")).is_unavailable());
    }

    #[test]
    fn failover_and_resharding_answers_are_retried_then_fall_back() {
        for code in [
            "LOADING",
            "MASTERDOWN",
            "READONLY",
            "TRYAGAIN",
            "CLUSTERDOWN",
            "MOVED",
            "ASK",
        ] {
            let err = redis_err(server_error(code, "3999 127.0.0.1:6381"));
            assert!(err.is_retryable(), "{code} must be retried");
            assert!(err.is_unavailable(), "{code} must fall back");
            assert!(
                !err.breaks_connection(),
                "{code} leaves the connection usable"
            );
        }
        for code in ["BUSY", "OOM"] {
            let err = redis_err(server_error(code, "x"));
            assert!(!err.is_retryable() && err.is_unavailable(), "{code}");
        }
    }

    #[test]
    fn failure_kinds() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(redis_err(refused).failure_kind(), "connection");
        assert_eq!(Error::CircuitOpen.failure_kind(), "circuit_open");
        let timeout = Error::Timeout {
            operation: "get",
            after: Duration::from_millis(5),
        };
        assert_eq!(timeout.failure_kind(), "timeout");
        for (code, kind) in [
            ("WRONGPASS", "auth"),
            ("NOAUTH", "auth"),
            ("LOADING", "refused"),
            ("READONLY", "refused"),
            ("MOVED", "refused"),
            ("OOM", "refused"),
            ("BUSY", "refused"),
            ("WRONGTYPE", "other"),
            ("NOSCRIPT", "noscript"),
        ] {
            assert_eq!(
                redis_err(server_error(code, "x")).failure_kind(),
                kind,
                "{code}"
            );
        }
        let connect = Error::redis("connect", server_error("WRONGPASS", "x"));
        assert_eq!(connect.failure_kind(), "auth");
    }

    #[test]
    fn timeouts_and_open_circuit() {
        let timeout = Error::Timeout {
            operation: "get",
            after: Duration::from_millis(5),
        };
        assert!(timeout.is_timeout() && timeout.is_retryable() && timeout.is_unavailable());
        assert!(Error::CircuitOpen.is_unavailable());
        assert!(!Error::CircuitOpen.is_retryable());
    }
}
