//! Server-side sessions in Redis that keep working when Redis does not.
//!
//! This crate is the framework-agnostic core. Its layers, bottom up:
//!
//! | module | what it is |
//! | --- | --- |
//! | [`redis`] | [`RedisManager`]: bb8 pool, timeouts, retries with backoff, circuit breaker, health |
//! | [`store`] | [`RedisService`]: typed `get` / `set` / `delete` / `mget` / `mset` over JSON, namespaces, TTLs |
//! | [`health`] | [`RedisHealth`] and the [`HealthReport`] served at `GET /api/health/redis` |
//! | [`error`] | the one [`Error`] type, with `is_unavailable()`-style predicates |
//!
//! # Quick start
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), resilient_session::Error> {
//! use std::time::Duration;
//! use resilient_session::{RedisManager, RedisService};
//!
//! // Starts even if Redis is down; connects in the background.
//! let manager = RedisManager::from_env()?;
//! let users = RedisService::new(manager.clone()).namespace("users");
//!
//! users.set("123", &"Ada", Some(Duration::from_secs(3600))).await?;
//! let name: Option<String> = users.get("123").await?;
//! assert_eq!(name.as_deref(), Some("Ada"));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod health;
pub mod redis;
pub mod store;

pub use error::{Error, Result};
pub use health::{ConnectionState, HealthReport, PoolStats, RedisHealth};
pub use redis::{BreakerState, RedisManager, RedisManagerBuilder};
pub use store::RedisService;
