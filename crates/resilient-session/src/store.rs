//! [`RedisService`]: typed Redis operations over JSON.
//!
//! Values are stored as JSON strings. Keys are `{namespace}:{key}` when the service has a
//! namespace, and TTLs are per write.
//! Every operation goes through the [`RedisManager`], so it has the manager's timeouts,
//! retries and breaker. Errors say whether Redis was unavailable ([`Error::is_unavailable`]) or a
//! stored value did not decode ([`Error::is_decode`]); nothing here panics on bad data.
//!
//! ```no_run
//! # async fn run(manager: resilient_session::RedisManager) -> Result<(), resilient_session::Error> {
//! use std::time::Duration;
//! use resilient_session::RedisService;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct User { name: String }
//!
//! let users = RedisService::new(manager).namespace("users");
//! users.set("123", &User { name: "Ada".into() }, Some(Duration::from_secs(3600))).await?;
//! users.mset(&[("124", User { name: "Grace".into() })], None).await?;
//! let found: Vec<Option<User>> = users.mget(&["123", "124", "125"]).await?;
//! assert!(found[2].is_none());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bb8_redis::redis;
use bb8_redis::redis::cluster_routing::Slot;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::health::RedisHealth;
use crate::{Error, RedisManager, Result};

/// Typed Redis operations over JSON, optionally under a namespace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RedisService {
    manager: RedisManager,
    namespace: Option<Arc<str>>,
}

impl RedisService {
    /// A service without a namespace, on `manager`'s pool.
    pub fn new(manager: RedisManager) -> Self {
        Self {
            manager,
            namespace: None,
        }
    }

    /// The same service with keys under `namespace` (`{namespace}:{key}`), replacing any
    /// namespace it had. The pool is shared.
    ///
    /// ```no_run
    /// # fn run(manager: resilient_session::RedisManager) {
    /// let sessions = resilient_session::RedisService::new(manager).namespace("sessions");
    /// assert_eq!(sessions.key("abc"), "sessions:abc");
    /// # }
    /// ```
    #[must_use]
    pub fn namespace(&self, namespace: impl Into<String>) -> Self {
        let namespace: String = namespace.into();
        Self {
            manager: self.manager.clone(),
            namespace: (!namespace.is_empty()).then(|| Arc::from(namespace)),
        }
    }

    /// The full Redis key for `key`.
    pub fn key(&self, key: &str) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}:{key}"),
            None => key.to_owned(),
        }
    }

    /// The manager this service runs on.
    pub fn manager(&self) -> &RedisManager {
        &self.manager
    }

    /// Health of the underlying connection.
    pub fn health(&self) -> RedisHealth {
        self.manager.health()
    }

    /// The value at `key`, `None` when there is none.
    ///
    /// # Errors
    ///
    /// Redis is unavailable ([`Error::is_unavailable`](crate::Error::is_unavailable)) or answered with an error; [`Error::Decode`](crate::Error::Decode) for a value that is not JSON of type `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let key = self.key(key);
        let mut cmd = redis::cmd("GET");
        cmd.arg(&key);
        let raw: Option<Vec<u8>> = self.manager.query("get", &cmd).await?;
        raw.map(|raw| decode(&key, &raw)).transpose()
    }

    /// Store `value` at `key`, expiring after `ttl` (whole milliseconds) when given.
    ///
    /// # Errors
    ///
    /// Redis is unavailable ([`Error::is_unavailable`](crate::Error::is_unavailable)) or answered with an error; [`Error::Encode`](crate::Error::Encode) for a value that does not serialise, [`Error::InvalidTtl`](crate::Error::InvalidTtl) for a zero TTL.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let key = self.key(key);
        let cmd = set_command(&key, &encode(&key, value)?, ttl)?;
        self.manager.query("set", &cmd).await
    }

    /// Delete `key`; `true` if it existed.
    ///
    /// # Errors
    ///
    /// Redis is unavailable ([`Error::is_unavailable`](crate::Error::is_unavailable)) or answered with an error.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        self.manager.query("delete", &cmd).await
    }

    /// Whether `key` exists.
    ///
    /// # Errors
    ///
    /// Redis is unavailable ([`Error::is_unavailable`](crate::Error::is_unavailable)) or answered with an error.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(key));
        self.manager.query("exists", &cmd).await
    }

    /// Let `key` expire after `ttl` (whole milliseconds); `true` if the key exists.
    ///
    /// # Errors
    ///
    /// Redis is unavailable ([`Error::is_unavailable`](crate::Error::is_unavailable)) or answered with an error; [`Error::InvalidTtl`](crate::Error::InvalidTtl) for a zero TTL.
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let mut cmd = redis::cmd("PEXPIRE");
        cmd.arg(self.key(key)).arg(ttl_millis(ttl)?);
        self.manager.query("expire", &cmd).await
    }

    /// The values at `keys`, in order, `None` where there is none. One `MGET`.
    ///
    /// # Errors
    ///
    /// Redis is unavailable ([`Error::is_unavailable`](crate::Error::is_unavailable)) or answered with an error; [`Error::Decode`](crate::Error::Decode) for a value that is not JSON of type `T`.
    pub async fn mget<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<Vec<Option<T>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        let mut cmd = redis::cmd("MGET");
        cmd.arg(&keys);
        let raw: Vec<Option<Vec<u8>>> = self.manager.query("mget", &cmd).await?;
        keys.iter()
            .zip(raw)
            .map(|(key, raw)| raw.map(|raw| decode(key, &raw)).transpose())
            .collect()
    }

    /// Store every `(key, value)` pair: one `MSET` without a TTL; with one, a pipeline of
    /// `SET … PX` sent in a single round trip.
    ///
    /// # Errors
    ///
    /// Redis is unavailable ([`Error::is_unavailable`](crate::Error::is_unavailable)) or answered with an error; [`Error::Encode`](crate::Error::Encode) for a value that does not serialise, [`Error::InvalidTtl`](crate::Error::InvalidTtl) for a zero TTL.
    pub async fn mset<K: AsRef<str>, T: Serialize>(
        &self,
        entries: &[(K, T)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let key = self.key(key.as_ref());
            let value = encode(&key, value)?;
            encoded.push((key, value));
        }
        match ttl {
            None => {
                let mut cmd = redis::cmd("MSET");
                for (key, value) in &encoded {
                    cmd.arg(key).arg(value);
                }
                self.manager.query("mset", &cmd).await
            }
            Some(_) => {
                // A pipeline may not span cluster slots: one per slot there (not atomic as a
                // whole, as `MSET` is not in a cluster either).
                let cluster = self.manager.is_cluster();
                let mut pipelines: HashMap<Option<Slot>, redis::Pipeline> = HashMap::new();
                for (key, value) in &encoded {
                    let slot = cluster.then(|| Slot::for_key(key));
                    pipelines
                        .entry(slot)
                        .or_insert_with(redis::pipe)
                        .add_command(set_command(key, value, ttl)?)
                        .ignore();
                }
                for pipeline in pipelines.values() {
                    self.manager.query_pipeline::<()>("mset", pipeline).await?;
                }
                Ok(())
            }
        }
    }
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Encode {
        key: key.to_owned(),
        source,
    })
}

fn decode<T: DeserializeOwned>(key: &str, raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })
}

fn set_command(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<redis::Cmd> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(ttl_millis(ttl)?);
    }
    Ok(cmd)
}

fn ttl_millis(ttl: Duration) -> Result<u64> {
    match u64::try_from(ttl.as_millis()) {
        Ok(0) | Err(_) => Err(Error::InvalidTtl { ttl }),
        Ok(millis) => Ok(millis),
    }
}
