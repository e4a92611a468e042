//! What the example apps share: the settings read from the environment, the session
//! configuration, and the user type. The HTTP contract itself is in each app.

pub mod metrics;
pub mod page;
pub mod routes;
pub mod sessions;
mod start;
pub mod users;

pub use start::StartError;

use std::net::SocketAddr;

use base64::Engine;
use resilient_session::{
    Import, KeyRing, RedisManager, RedisManagerBuilder, SessionConfig, SessionEngine,
};
use serde::{Deserialize, Serialize};

/// The keys that survive a Redis outage: who is logged in, and the counter.
pub const MIRRORED_KEYS: [&str; 2] = ["user", "counter"];

/// The counter, from what `Session::get("counter")` answered: 0 when unset (or not a number),
/// `None` when it is not known (Redis is unavailable and the cookie cannot stand in for it): the
/// apps answer 503 then, rather than a counter that is not the user's.
///
/// ```
/// use resilient_session::Error;
///
/// assert_eq!(example_common::counter(Ok(Some(3))), Some(3));
/// assert_eq!(example_common::counter(Ok(None)), Some(0));
/// let unknown = Error::ValueUnavailable { key: "counter".into() };
/// assert_eq!(example_common::counter(Err(unknown)), None);
/// ```
pub fn counter(read: resilient_session::Result<Option<i64>>) -> Option<i64> {
    match read {
        Ok(counter) => Some(counter.unwrap_or(0)),
        Err(err) if err.is_unavailable() => None,
        Err(_) => Some(0),
    }
}

/// What the apps answer when the session's data is not known.
pub const UNAVAILABLE: &str =
    "the session is unavailable: Redis cannot be reached and the cookie cannot stand in for it";

/// The logged-in user, as stored in the session and sent to `POST /login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Who.
    pub user_id: String,
    /// Their role.
    pub role: String,
}

/// The example's session configuration: mirrored `user` and `counter`, and, on a loopback
/// address, no `Secure` attribute (browsers and curl would not send a `Secure` cookie over
/// plain http to 127.0.0.1; anywhere else the cookie stays `Secure`).
pub fn session_config(keys: KeyRing, bind: SocketAddr) -> SessionConfig {
    SessionConfig::new(keys)
        .mirrored_keys(MIRRORED_KEYS)
        .secure(!bind.ip().is_loopback())
}

/// An example app's settings, from the environment.
#[derive(Debug)]
pub struct Settings {
    /// `BIND`, default `127.0.0.1:3000`.
    pub bind: SocketAddr,
    /// Sessions in Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`; `rediss://` for TLS,
    /// with `REDIS_TLS_CA_FILE` and, for client certificates, `REDIS_TLS_CERT_FILE` and
    /// `REDIS_TLS_KEY_FILE`), in a Redis Cluster (`REDIS_CLUSTER_URLS`, comma-separated seed
    /// nodes), or at the primary Sentinel names (`REDIS_SENTINEL_URLS`, comma-separated, and
    /// `REDIS_SENTINEL_MASTER`); cookies protected by `SESSION_SECRET` (random, with a warning,
    /// when unset).
    pub store: SessionEngine,
}

impl Settings {
    /// Reads `BIND`, `REDIS_URL` and `SESSION_SECRET`. Must run within a Tokio runtime; does not
    /// wait for Redis.
    pub fn from_env() -> Result<Self, Box<dyn std::error::Error>> {
        Self::from_env_with(|config| config)
    }

    /// [`from_env`](Self::from_env), with the session configuration changed by `tweak` (the
    /// auth examples mirror their auth crate's keys).
    pub fn from_env_with(
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let bind: SocketAddr = env("BIND")
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse()
            .map_err(|err| format!("BIND must be an address like 127.0.0.1:3000: {err}"))?;
        let keys = match env("SESSION_SECRET") {
            Some(secret) => {
                KeyRing::from_secret(secret).map_err(|err| format!("SESSION_SECRET: {err}"))?
            }
            None => {
                tracing::warn!(
                    "SESSION_SECRET is not set: using a random key, so sessions end when the app \
                     restarts. Set it to 32 bytes or more (e.g. `openssl rand -base64 48`)."
                );
                KeyRing::generate()?
            }
        };
        if bind.ip().is_loopback() {
            tracing::info!(
                "loopback address: the session cookie is sent without `Secure` (plain http)"
            );
        }
        let mut config = tweak(session_config(keys, bind));
        if let Some(import) = import_from(env)? {
            config = config.import_sessions(import);
        }
        let store = SessionEngine::new(redis_from_env()?, config)?;
        Ok(Self { bind, store })
    }
}

/// The environment variable `name`; set but empty reads as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The Redis manager for `REDIS_URL`, `REDIS_CLUSTER_URLS` or `REDIS_SENTINEL_*`, and the
/// optional TLS files.
fn redis_from_env() -> Result<RedisManager, Box<dyn std::error::Error>> {
    let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
        env(name)
            .map(|path| std::fs::read(&path).map_err(|e| format!("{name}: {e}")))
            .transpose()
    };
    let mut builder = RedisManagerBuilder::from_env();
    let list = |name: &str| {
        let urls: Vec<String> = env(name)?
            .split(',')
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        (!urls.is_empty()).then_some(urls)
    };
    if let Some(seeds) = list("REDIS_CLUSTER_URLS") {
        builder = builder.cluster(seeds);
    }
    if let Some(sentinels) = list("REDIS_SENTINEL_URLS") {
        let master = env("REDIS_SENTINEL_MASTER")
            .ok_or("REDIS_SENTINEL_URLS needs REDIS_SENTINEL_MASTER (the service name)")?;
        builder = builder.sentinel(sentinels, master);
    }
    if let Some(ca) = read("REDIS_TLS_CA_FILE")? {
        builder = builder.tls_root_certificate(ca);
    }
    match (read("REDIS_TLS_CERT_FILE")?, read("REDIS_TLS_KEY_FILE")?) {
        (Some(cert), Some(key)) => builder = builder.tls_client_certificate(cert, key),
        (None, None) => {}
        _ => return Err("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together".into()),
    }
    Ok(builder.build()?)
}

/// Sessions to carry over from the app this one replaces, from the variables `var` reads (the
/// environment, in the apps): tower-sessions (`IMPORT_TOWER_SESSIONS_COOKIE`, its cookie name,
/// e.g. `id`; `IMPORT_TOWER_SESSIONS_PREFIX`, its Redis key prefix, empty by default) or
/// actix-session (`IMPORT_ACTIX_SESSION_COOKIE`, `IMPORT_ACTIX_SESSION_KEY`: its cookie key's
/// 64 master bytes in base64, `IMPORT_ACTIX_SESSION_PREFIX`).
///
/// ```
/// let import = example_common::import_from(|name| {
///     (name == "IMPORT_TOWER_SESSIONS_COOKIE").then(|| "id".to_owned())
/// })
/// .expect("valid");
/// assert!(import.is_some());
/// ```
pub fn import_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Import>, Box<dyn std::error::Error>> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(cookie) = var("IMPORT_TOWER_SESSIONS_COOKIE") {
        let prefix = var("IMPORT_TOWER_SESSIONS_PREFIX").unwrap_or_default();
        return Ok(Some(Import::tower_sessions(cookie).key_prefix(prefix)));
    }
    if let Some(cookie) = var("IMPORT_ACTIX_SESSION_COOKIE") {
        let key = var("IMPORT_ACTIX_SESSION_KEY")
            .ok_or("IMPORT_ACTIX_SESSION_COOKIE needs IMPORT_ACTIX_SESSION_KEY")?;
        let master = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|err| format!("IMPORT_ACTIX_SESSION_KEY is not base64: {err}"))?;
        let key = cookie::Key::try_from(master.as_slice())
            .map_err(|err| format!("IMPORT_ACTIX_SESSION_KEY: {err}"))?;
        let prefix = var("IMPORT_ACTIX_SESSION_PREFIX").unwrap_or_default();
        return Ok(Some(Import::actix_session(cookie, key).key_prefix(prefix)));
    }
    Ok(None)
}

/// Logs to stderr at INFO.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
}
