//! Server-side sessions in Redis that keep working when Redis does not.
//!
//! This crate is the framework-agnostic core; `resilient-session-axum` and
//! `resilient-session-actix` adapt it to their frameworks. Its layers, top down:
//!
//! | module | what it is |
//! | --- | --- |
//! | [`layer`] | [`SessionLayer`]: the tower middleware (cookie in, lazy [`Session`], persist, `Set-Cookie` out) |
//! | [`session`] | [`SessionStore`] (the engine: load, touch, save, delete, cycle ids, cookie fallback; a user's sessions listed and revoked, [`OwnedSession`], [`Revoked`]) and [`Session`] |
//! | [`cookie`] | the encrypted cookie payload and the [`KeyRing`] |
//! | [`config`] | [`SessionConfig`]: cookie attributes, lifetimes, mirrored keys, fallback age |
//! | [`store`] | [`RedisService`]: typed `get` / `set` / `delete` / `mget` / `mset` over JSON, namespaces, TTLs |
//! | [`redis`] | [`RedisManager`]: bb8 pool, timeouts, retries with backoff, circuit breaker, health |
//! | [`health`] | [`RedisHealth`] and the [`HealthReport`] served at `GET /api/health/redis` |
//! | [`error`] | the one [`Error`] type, with `is_unavailable()`-style predicates |
//! | [`metrics`] | the metric names (Redis commands, failures, breaker, fallbacks, touches, refused cookies) recorded through the `metrics` facade |
//!
//! # Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `tls` | off | `rediss://` URLs: TLS to Redis with rustls (ring), a private CA, client certificates |
//! | `tower-sessions` | off | [`TowerSessionsStore`]: a `tower_sessions::SessionStore` on our Redis manager |
//!
//! # Quick start
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), resilient_session::Error> {
//! use resilient_session::{KeyRing, RedisManager, SessionConfig, SessionLayer, SessionStore};
//!
//! // Starts even if Redis is down; connects in the background.
//! let manager = RedisManager::from_env()?;
//! let keys = KeyRing::from_secret(std::env::var("SESSION_SECRET").unwrap_or_default())?;
//! let config = SessionConfig::new(keys).mirrored_keys(["user"]); // `user` survives an outage
//! let layer = SessionLayer::new(SessionStore::new(manager, config)?);
//! // Add `layer` to your tower / axum service; handlers take a `Session`.
//! # let _ = layer;
//! # Ok(()) }
//! ```
//!
//! In a handler (with the axum adapter's extractor, or from the request extensions):
//!
//! ```no_run
//! # async fn handler(session: resilient_session::Session) -> Result<(), resilient_session::Error> {
//! let counter: u64 = session.get("counter").await?.unwrap_or(0);
//! session.insert("counter", counter + 1).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod cookie;
pub mod error;
pub mod health;
pub mod layer;
pub mod metrics;
pub mod redis;
pub mod session;
mod stats;
pub mod store;
#[cfg(feature = "tower-sessions")]
pub mod tower_sessions_store;

pub use config::{CookieMode, SameSite, SessionConfig, Validator};
pub use cookie::KeyRing;
pub use error::{Error, Result};
pub use health::{ConnectionState, FallbackReport, HealthReport, PoolStats, RedisHealth};
pub use layer::{ResponseFuture, SessionLayer, SessionService};
pub use redis::{BreakerState, RedisManager, RedisManagerBuilder};
pub use session::{
    FinishLater, Import, OwnedSession, ResponseHeaders, Revoked, Session, SessionStore, Source,
};
pub use stats::SessionStats;
pub use store::RedisService;
#[cfg(feature = "tower-sessions")]
pub use tower_sessions_store::TowerSessionsStore;
