//! The Redis client manager: a bb8 pool of Redis connections behind a circuit breaker.
//!
//! [`RedisManager`] is the handle; [`RedisManagerBuilder`] holds its settings and explains the
//! defaults. What happens to one operation:
//!
//! 1. the circuit breaker admits it, or refuses at once with [`Error::CircuitOpen`](crate::Error)
//!    (no network traffic while open; one probe at a time while half-open);
//! 2. a pooled connection is checked out (no `PING`: broken connections are found by their
//!    errors and replaced), waiting at most the connect timeout;
//! 3. the command runs under the command timeout;
//! 4. a connection error or timeout is retried with exponential backoff and full jitter, within
//!    the retry budget; an answer from Redis (`WRONGPASS`, `OOM`, `WRONGTYPE`, …) is not;
//! 5. the outcome feeds the breaker and the [health](crate::health).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use resilient_session::RedisManager;
//!
//! let manager = RedisManager::builder().url("redis://127.0.0.1:6379").build()?;
//! manager.ping().await?;
//! assert!(manager.health().is_healthy);
//! # Ok(()) }
//! ```

mod backoff;
mod breaker;
mod builder;
mod connection;
mod epoch;
mod manager;
mod status;

pub use breaker::BreakerState;
pub use builder::{DEFAULT_REDIS_URL, RedisManagerBuilder};
pub(crate) use epoch::slot_epoch_key;
pub use manager::RedisManager;
