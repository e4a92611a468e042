//! [actix-web] adapter for [`resilient_session`]: server-side sessions in Redis that keep working
//! when Redis does not.
//!
//! actix-web is not tower-based, so this crate drives the framework-agnostic engine of the core
//! crate ([`adapter::open`](resilient_session::adapter::open) before the handler,
//! [`adapter::finish`](resilient_session::adapter::finish) after it), exactly as the tower layer
//! does. Same [`SessionConfig`], same defaults, same cookie: the axum and the
//! actix apps can serve one site together.
//!
//! | item | what |
//! | --- | --- |
//! | [`SessionMiddleware`] | the middleware (`App::wrap`) |
//! | [`Session`] | the extractor: the request's session |
//! | [`SessionExt`] | `get_session()` on `HttpRequest` and `ServiceRequest` |
//! | [`SessionMissing`] | the error when the middleware is not installed |
//! | [`health_handler`] | `GET /api/health/redis`: 200 or 503 with the health JSON |
//! | `actix_session::ActixSessionBridge` | feature `actix-session`: an `actix_session::Session` backed by ours, for actix-identity |
//! | `flash::FlashStore` | feature `actix-web-flash-messages`: flash messages kept in the session |
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use resilient_session_actix::{
//!     health_handler, KeyRing, RedisManager, Session, SessionConfig, SessionMiddleware,
//!     SessionEngine,
//! };
//!
//! async fn count(session: Session) -> String {
//!     let n: u64 = session.get("counter").await.ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("counter", n).await;
//!     n.to_string()
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let keys = KeyRing::from_secret(std::env::var("SESSION_SECRET")?)?;
//!     let engine = SessionEngine::new(RedisManager::from_env()?, SessionConfig::new(keys))?;
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(SessionMiddleware::new(engine.clone()))
//!             .route("/counter", web::post().to(count))
//!             .route("/api/health/redis", web::get().to(health_handler(engine.clone())))
//!     })
//!     .bind("127.0.0.1:3000")?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Testing handlers without Redis
//!
//! [`SessionEngine::cookie_only`] builds an engine that never contacts Redis: sessions live in
//! their cookie, as during an outage, under the same rules as in production. With
//! `actix_web::test`, carry the cookie from one response to the next request:
//!
//! ```
//! use actix_web::{App, http::header, test, web};
//! use resilient_session_actix::{KeyRing, Session, SessionConfig, SessionEngine, SessionMiddleware};
//!
//! async fn count(session: Session) -> String {
//!     let n: u64 = session.get("counter").await.ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("counter", n).await;
//!     n.to_string()
//! }
//!
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = SessionEngine::cookie_only(SessionConfig::new(KeyRing::generate()?))?;
//! let app = test::init_service(
//!     App::new().wrap(SessionMiddleware::new(engine)).route("/counter", web::post().to(count)),
//! )
//! .await;
//!
//! let first = test::call_service(&app, test::TestRequest::post().uri("/counter").to_request()).await;
//! let set_cookie = first.headers().get(header::SET_COOKIE).ok_or("a session cookie")?.to_str()?;
//! let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
//! let second = test::TestRequest::post().uri("/counter").insert_header((header::COOKIE, cookie));
//! let second = second.to_request();
//! assert_eq!(test::call_and_read_body(&app, second).await, "2");
//! # Ok(()) }
//! ```
//!
//! [actix-web]: https://docs.rs/actix-web
#![forbid(unsafe_code)]
#![warn(clippy::missing_errors_doc)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled with the doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(feature = "actix-session")]
pub mod actix_session;
mod extract;
#[cfg(feature = "actix-web-flash-messages")]
pub mod flash;
mod health;
mod middleware;

pub use extract::{Session, SessionExt, SessionMissing};
pub use health::{health_handler, health_response};
pub use middleware::{InnerSessionMiddleware, SessionMiddleware};
pub use resilient_session::{
    ConfigError, CookieMode, Error, HealthReport, KeyRing, RedisManager, SameSite, SessionConfig,
    SessionEngine, Source,
};
