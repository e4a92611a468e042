//! Server-side sessions in Redis that keep working when Redis does not.
//!
//! Sessions live in Redis. While Redis cannot be reached, each session goes on in its encrypted
//! cookie, which mirrors the keys you choose and carries what was written since; when Redis is
//! back, Redis wins, and logouts made meanwhile are replayed. This crate is the
//! framework-agnostic core; `resilient-session-axum` and `resilient-session-actix` adapt it to
//! their frameworks.
//!
//! | item | what it is |
//! | --- | --- |
//! | [`SessionEngine`] | the engine: load, touch, save, delete, cycle ids, cookie fallback; a user's sessions listed and revoked ([`OwnedSession`], [`Revoked`]) |
//! | [`Session`] | the per-request handle handlers use |
//! | [`SessionLayer`] | the tower middleware (cookie in, lazy [`Session`], persist, `Set-Cookie` out) |
//! | [`SessionConfig`], [`KeyRing`] | cookie attributes, lifetimes, mirrored keys, fallback age; the secrets that protect the cookie |
//! | [`RedisManager`], [`RedisManagerBuilder`] | the Redis connection: pool, timeouts, retries with backoff, circuit breaker, health |
//! | [`RedisService`] | typed `get` / `set` / `delete` / `mget` / `mset` over JSON, namespaces, TTLs |
//! | [`HealthReport`], [`RedisHealth`] | what `GET /api/health/redis` serves |
//! | [`Error`], [`ConfigError`] | what a request can meet; what start-up can refuse |
//! | [`metrics`] | the metric names recorded through the `metrics` facade |
//! | [`adapter`] | for framework adapters: the calls around a handler |
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
//! # #[tokio::main] async fn main() -> Result<(), resilient_session::ConfigError> {
//! use resilient_session::{KeyRing, RedisManager, SessionConfig, SessionEngine, SessionLayer};
//!
//! // Starts even if Redis is down; connects in the background.
//! let manager = RedisManager::from_env()?;
//! let keys = KeyRing::from_secret(std::env::var("SESSION_SECRET").unwrap_or_default())?;
//! let config = SessionConfig::new(keys).mirrored_keys(["user"]); // `user` survives an outage
//! let layer = SessionLayer::new(SessionEngine::new(manager, config)?);
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
#![warn(clippy::missing_errors_doc)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled with the doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod adapter;
mod config;
mod cookie;
mod error;
mod health;
mod layer;
pub mod metrics;
mod redis;
mod session;
mod stats;
mod store;
#[cfg(feature = "tower-sessions")]
mod tower_sessions_store;

pub use config::{CookieMode, SameSite, SessionConfig, Validator};
pub use cookie::{KeyRing, MIN_SECRET_BYTES};
pub use error::{ConfigError, Error, RedisClientError, Result};
pub use health::{ConnectionState, FallbackReport, HealthReport, PoolStats, RedisHealth};
pub use layer::{ResponseFuture, SessionLayer, SessionService};
pub use redis::{BreakerState, DEFAULT_REDIS_URL, RedisManager, RedisManagerBuilder};
pub use session::{Import, OwnedSession, Revoked, Session, SessionEngine, Source};
pub use stats::SessionStats;
pub use store::RedisService;
#[cfg(feature = "tower-sessions")]
pub use tower_sessions_store::TowerSessionsStore;
