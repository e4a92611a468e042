//! [axum] adapter for [`resilient_session`]: server-side sessions in Redis that keep working
//! when Redis does not.
//!
//! The session engine and the tower middleware live in the core crate (re-exported here); this
//! crate adds what is axum-specific:
//!
//! | item | what |
//! | --- | --- |
//! | [`Session`] | the extractor: the request's session, from [`SessionLayer`] |
//! | [`SessionMissing`] | its rejection, when the layer is not installed |
//! | [`health_handler`] | `GET /api/health/redis`: 200 or 503 with the health JSON |
//! | `tower_sessions::TowerSessionLayer` | feature `tower-sessions`: a `tower_sessions::Session` backed by ours, for axum-login and axum-messages |
//!
//! ```no_run
//! use axum::{Router, routing::{get, post}};
//! use resilient_session_axum::{
//!     health_handler, KeyRing, RedisManager, Session, SessionConfig, SessionLayer, SessionEngine,
//! };
//!
//! async fn count(session: Session) -> String {
//!     let n: u64 = session.get("counter").await.ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("counter", n).await;
//!     n.to_string()
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeyRing::from_secret(std::env::var("SESSION_SECRET")?)?;
//! let store = SessionEngine::new(RedisManager::from_env()?, SessionConfig::new(keys))?;
//! let app = Router::new()
//!     .route("/counter", post(count))
//!     .route("/api/health/redis", get(health_handler(store.clone())))
//!     .layer(SessionLayer::new(store));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! [axum]: https://docs.rs/axum
#![forbid(unsafe_code)]

mod extract;
mod health;
#[cfg(feature = "tower-sessions")]
pub mod tower_sessions;

pub use extract::{Session, SessionMissing};
pub use health::{HealthFuture, health_handler, health_response};
pub use resilient_session::{
    ConfigError, CookieMode, Error, HealthReport, KeyRing, RedisManager, SameSite, SessionConfig,
    SessionEngine, SessionLayer, Source,
};
