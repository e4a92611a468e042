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
//! let engine = SessionEngine::new(RedisManager::from_env()?, SessionConfig::new(keys))?;
//! let app = Router::new()
//!     .route("/counter", post(count))
//!     .route("/api/health/redis", get(health_handler(engine.clone())))
//!     .layer(SessionLayer::new(engine));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Testing handlers without Redis
//!
//! [`SessionEngine::cookie_only`] builds an engine that never contacts Redis: sessions live in
//! their cookie, as during an outage, under the same rules as in production. A test drives the
//! router with `tower::ServiceExt::oneshot` and carries the cookie from one response to the
//! next request:
//!
//! ```
//! use axum::{Router, body::Body, http::{Request, header}, routing::post};
//! use resilient_session_axum::{KeyRing, Session, SessionConfig, SessionEngine, SessionLayer};
//! use tower::ServiceExt;
//!
//! async fn count(session: Session) -> String {
//!     let n: u64 = session.get("counter").await.ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("counter", n).await;
//!     n.to_string()
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = SessionEngine::cookie_only(SessionConfig::new(KeyRing::generate()?))?;
//! let app = Router::new().route("/counter", post(count)).layer(SessionLayer::new(engine));
//!
//! let first = app.clone().oneshot(Request::post("/counter").body(Body::empty())?).await?;
//! let cookie = first.headers()[header::SET_COOKIE].to_str()?.split(';').next().unwrap_or_default().to_owned();
//! let second = Request::post("/counter").header(header::COOKIE, cookie).body(Body::empty())?;
//! let body = axum::body::to_bytes(app.oneshot(second).await?.into_body(), 64).await?;
//! assert_eq!(body, "2");
//! # Ok(()) }
//! ```
//!
//! [axum]: https://docs.rs/axum
#![forbid(unsafe_code)]
#![warn(clippy::missing_errors_doc)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled with the doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

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
