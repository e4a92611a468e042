//! The pool's connection manager: how bb8 opens a connection and tells a broken one.
//!
//! bb8-redis's own manager never reports a connection as broken and relies on a `PING` at
//! checkout to find dead ones, one round trip per request. Ours keeps that `PING` off and marks a
//! connection broken when a command on it fails at the connection level; bb8 then drops it
//! instead of returning it to the pool, and a checkout that finds it first skips it.
//!
//! Connections are multiplexed: a checkout takes a clone of one and returns it to the pool at
//! once, so any number of commands share a few connections (pipelined), instead of one
//! in-flight command per pooled connection. A "generation" counter retires every connection opened
//! before the last dropped connection: after a Redis restart all of them are dead, and finding
//! that out one failed request at a time would trip the breaker for nothing.
//!
//! In a Redis Cluster, a pooled connection is a redis-rs cluster connection: one handle over a
//! connection to every primary, which follows `MOVED`/`ASK` redirects and refreshes the slot map
//! on its own. It is not retired when one node fails: the others still serve their slots.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bb8_redis::bb8;
use bb8_redis::redis::aio::MultiplexedConnection;
use bb8_redis::redis::cluster_async::ClusterConnection;
use bb8_redis::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use bb8_redis::redis::{self, AsyncConnectionConfig, FromRedisValue, RedisError, RedisResult};
use tokio::sync::broadcast;

use super::epoch::Epoch;

pub(crate) struct Connector {
    target: Target,
    config: AsyncConnectionConfig,
    /// Bounds a whole connection attempt, Sentinel queries included.
    connect_timeout: std::time::Duration,
    signals: PoolSignals,
}

/// Where connections go.
pub(crate) enum Target {
    /// One Redis node.
    Node(redis::Client),
    /// The primary that Sentinel names, asked again for every new connection, so that the pool
    /// follows a failover.
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
    /// A Redis Cluster, found from its seed nodes.
    Cluster(redis::cluster::ClusterClient),
}

/// A connection commands can be sent on: to one node, or to a whole cluster.
#[derive(Clone)]
pub(crate) enum Link {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Link {
    pub(crate) async fn query<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Link::Node(conn) => cmd.query_async(conn).await,
            Link::Cluster(conn) => cmd.query_async(conn).await,
        }
    }

    /// `PING` to one node: in a cluster, a random primary, where a plain `PING` goes to every
    /// primary and fails while any one of them is down.
    pub(crate) async fn ping_one(&mut self) -> RedisResult<redis::Value> {
        match self {
            Link::Node(conn) => redis::cmd("PING").query_async(conn).await,
            Link::Cluster(conn) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
                conn.route_command(redis::cmd("PING"), routing).await
            }
        }
    }

    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &mut self,
        pipeline: &redis::Pipeline,
    ) -> RedisResult<T> {
        match self {
            Link::Node(conn) => pipeline.query_async(conn).await,
            Link::Cluster(conn) => pipeline.query_async(conn).await,
        }
    }
}

/// What the connector and the manager share about the pool's connections.
#[derive(Debug, Clone)]
pub(crate) struct PoolSignals {
    generation: Arc<AtomicU64>,
    connect_failures: broadcast::Sender<RedisError>,
    pub(crate) epoch: Arc<Epoch>,
}

/// A pooled connection with what the pool needs to know about it.
pub(crate) struct Connection {
    pub(crate) redis: Link,
    generation: u64,
    /// Shared with the clones in use, which may find out after the connection went back.
    broken: Arc<AtomicBool>,
}

impl Connector {
    pub(crate) fn new(
        target: Target,
        config: AsyncConnectionConfig,
        connect_timeout: std::time::Duration,
        signals: PoolSignals,
    ) -> Self {
        Self {
            target,
            config,
            connect_timeout,
            signals,
        }
    }
}

impl PoolSignals {
    pub(crate) fn new() -> Self {
        let (connect_failures, _) = broadcast::channel(1);
        Self {
            generation: Arc::new(AtomicU64::new(0)),
            connect_failures,
            epoch: Arc::default(),
        }
    }

    /// The next connect failure from now on. bb8 keeps connect errors from a caller waiting for a
    /// connection (it would wait out its whole timeout); the manager listens here to fail fast.
    pub(crate) fn connect_failures(&self) -> ConnectFailures {
        ConnectFailures(self.connect_failures.subscribe())
    }

    /// Retire every connection opened so far. The data epoch they read is forgotten too: the
    /// Redis behind the new ones may have lost its data.
    pub(crate) fn retire_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.epoch.forget();
    }

    pub(crate) fn is_stale(&self, conn: &Connection) -> bool {
        conn.generation < self.generation.load(Ordering::Acquire)
    }

    /// Neither broken nor retired.
    pub(crate) fn is_usable(&self, shared: &Shared) -> bool {
        !shared.broken.load(Ordering::Acquire)
            && shared.generation >= self.generation.load(Ordering::Acquire)
    }
}

/// See [`PoolSignals::connect_failures`].
#[derive(Debug)]
pub(crate) struct ConnectFailures(broadcast::Receiver<RedisError>);

impl ConnectFailures {
    /// Waits for the next failure; never resolves if the sender is gone.
    pub(crate) async fn next(&mut self) -> RedisError {
        loop {
            match self.0.recv().await {
                Ok(err) => return err,
                // Capacity one: after a lag the next `recv` holds the latest failure.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

/// A handle to a pooled connection for commands to share: usable after the pooled connection
/// went back to the pool, and able to mark it broken.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) redis: Link,
    broken: Arc<AtomicBool>,
    generation: u64,
}

impl Shared {
    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }
}

impl Connection {
    pub(crate) fn share(&self) -> Shared {
        Shared {
            redis: self.redis.clone(),
            broken: Arc::clone(&self.broken),
            generation: self.generation,
        }
    }

    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

impl bb8::ManageConnection for Connector {
    type Connection = Connection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Connection, RedisError> {
        let generation = self.signals.generation.load(Ordering::Acquire);
        let connected = match &self.target {
            Target::Node(client) => client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
                .map(Link::Node),
            Target::Cluster(client) => {
                // The slot map is read from the seed nodes first: twice the connect timeout.
                tokio::time::timeout(self.connect_timeout * 2, client.get_async_connection())
                    .await
                    .unwrap_or_else(|_| Err(timed_out()))
                    .map(Link::Cluster)
            }
            Target::Sentinel(sentinel) => {
                let connect = async {
                    sentinel
                        .lock()
                        .await
                        .get_async_connection_with_config(&self.config)
                        .await
                };
                // Twice the connect timeout: the Sentinels are asked, then the primary.
                tokio::time::timeout(self.connect_timeout * 2, connect)
                    .await
                    .unwrap_or_else(|_| Err(timed_out()))
                    .map(Link::Node)
            }
        };
        match connected {
            Ok(mut redis) => {
                if let Link::Node(node) = &mut redis {
                    self.read_epoch(node).await;
                }
                Ok(Connection {
                    redis,
                    generation,
                    broken: Arc::new(AtomicBool::new(false)),
                })
            }
            Err(err) => {
                // Nobody listening is fine: then nobody is waiting.
                let _ = self.signals.connect_failures.send(err.clone());
                Err(err)
            }
        }
    }

    async fn is_valid(&self, conn: &mut Connection) -> Result<(), RedisError> {
        // Only used if test-on-checkout were on; it is off (one round trip per request).
        conn.redis.query(&redis::cmd("PING")).await
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.is_broken() || self.signals.is_stale(conn)
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

impl Connector {
    /// A new connection to one node may be to a Redis that lost its data: read (or create) the
    /// epoch.
    async fn read_epoch(&self, redis: &mut MultiplexedConnection) {
        let epoch = &self.signals.epoch;
        let Some(key) = epoch.key() else {
            return;
        };
        let read: RedisResult<(Option<String>, String)> =
            Epoch::read_command(key, false).query_async(redis).await;
        let answer = match read {
            Ok((Some(stored), info)) => Ok((stored, info)),
            Ok((None, info)) => {
                let (create, proposed) = Epoch::create_command(key);
                create
                    .query_async::<Option<String>>(redis)
                    .await
                    .map(|existing| (existing.unwrap_or(proposed), info))
            }
            Err(err) => Err(err),
        };
        match answer {
            Ok((stored, info)) => {
                epoch.record(key, stored, &info);
            }
            // Unknown now: read again when needed, rather than trust a value from before.
            Err(err) => {
                epoch.forget();
                tracing::debug!(error = %err, "could not read the Redis data epoch");
            }
        }
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client's connection info holds the password: print only the address.
        let target = match &self.target {
            Target::Node(client) => client.get_connection_info().addr().to_string(),
            Target::Sentinel(_) => "the primary Sentinel names".to_owned(),
            Target::Cluster(_) => "a Redis Cluster".to_owned(),
        };
        f.debug_struct("Connector")
            .field("target", &target)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("generation", &self.generation)
            .field("broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}
