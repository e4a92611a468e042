//! [`TowerSessionsStore`]: a `tower_sessions::SessionStore` on our Redis manager (feature
//! `tower-sessions`).
//!
//! For an app that keeps tower-sessions' `SessionManagerLayer` and swaps only its store: the
//! sessions then get our pool, timeouts, retries with backoff, circuit breaker and health. A dead
//! Redis fails fast (a refused connection at once, an open breaker without touching the network)
//! instead of hanging; tower-sessions has no fallback, so such a request fails (its layer answers
//! 500 when a save fails).
//!
//! Records are stored the way tower-sessions-redis-store 0.16 stores them: MessagePack at the
//! session id, with the record's expiry as the key's `EXAT`. Swapping that store for this one
//! keeps every live session. A [`key_prefix`](TowerSessionsStore::key_prefix) puts the keys
//! under a namespace instead (e.g. for a least-privilege ACL); existing sessions then end.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use resilient_session::{RedisManager, TowerSessionsStore};
//! use tower_sessions::SessionManagerLayer;
//!
//! let store = TowerSessionsStore::new(RedisManager::from_env()?);
//! let layer = SessionManagerLayer::new(store).with_secure(false);
//! # let _ = layer;
//! # Ok(()) }
//! ```

use std::fmt::Write as _;

use async_trait::async_trait;
use bb8_redis::redis;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, SessionStore as _};

use crate::health::RedisHealth;
use crate::{Error, RedisManager};

/// A `tower_sessions::SessionStore` on a [`RedisManager`].
///
/// ```no_run
/// # fn run(manager: resilient_session::RedisManager) {
/// let store = resilient_session::TowerSessionsStore::new(manager).key_prefix("tower:");
/// println!("Redis is {:?}", store.health().state);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TowerSessionsStore {
    manager: RedisManager,
    prefix: String,
}

impl TowerSessionsStore {
    /// A store on `manager`, keys and values as tower-sessions-redis-store 0.16 writes them.
    pub fn new(manager: RedisManager) -> Self {
        Self {
            manager,
            prefix: String::new(),
        }
    }

    /// Put every key under `prefix` (e.g. `"tower:"`). Default: none, as
    /// tower-sessions-redis-store.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The health of the Redis connection, from what recent operations saw.
    pub fn health(&self) -> RedisHealth {
        self.manager.health()
    }

    fn key(&self, id: &Id) -> String {
        format!("{}{id}", self.prefix)
    }

    /// `SET key record EXAT expiry` with `condition` (`NX` / `XX`); `false` when the condition
    /// kept it from being written.
    async fn write(&self, record: &Record, condition: &str) -> session_store::Result<bool> {
        let value = rmp_serde::to_vec(record)
            .map_err(|err| session_store::Error::Encode(describe(&err)))?;
        let expiry = record.expiry_date.unix_timestamp();
        if expiry <= OffsetDateTime::now_utc().unix_timestamp() {
            // Already expired: nothing to keep.
            self.delete(&record.id).await?;
            return Ok(true);
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(&record.id))
            .arg(value)
            .arg("EXAT")
            .arg(expiry)
            .arg(condition);
        let written: Option<String> = self
            .manager
            .query("tower-sessions save", &cmd)
            .await
            .map_err(backend)?;
        Ok(written.is_some())
    }
}

#[async_trait]
impl session_store::SessionStore for TowerSessionsStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A new id until one is free (a collision of 128-bit ids is not expected, but cheap to
        // rule out).
        while !self.write(record, "NX").await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        // Only a session that still exists: a save racing a delete must not bring it back.
        self.write(record, "XX").await.map(drop)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(id));
        let value: Option<Vec<u8>> = self
            .manager
            .query("tower-sessions load", &cmd)
            .await
            .map_err(backend)?;
        value
            .map(|bytes| {
                rmp_serde::from_slice(&bytes)
                    .map_err(|err| session_store::Error::Decode(describe(&err)))
            })
            .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(id));
        self.manager
            .query::<i64>("tower-sessions delete", &cmd)
            .await
            .map(drop)
            .map_err(backend)
    }
}

/// tower-sessions' error holds text only: the whole chain of causes goes into it.
fn backend(err: Error) -> session_store::Error {
    session_store::Error::Backend(describe(&err))
}

/// `error: cause: cause…`
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message.
        if !text.ends_with(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_causes_as_text() {
        let refused = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        let err = backend(Error::redis("tower-sessions load", refused));
        let text = err.to_string();
        assert!(text.contains("tower-sessions load"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
    }
}
