//! [`RedisManager`]: the pool behind the breaker, with retries, timeouts and health.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bb8_redis::bb8::{self, PooledConnection, RunError};
use bb8_redis::redis::{self, FromRedisValue, RedisResult};
use tokio::sync::Notify;
use tracing::Instrument;

use super::backoff::Backoff;
use super::breaker::{Admission, Breaker, Outcome, Transition};
use super::builder::RedisManagerBuilder;
use super::connection::{Connector, Link, PoolSignals, Shared};
use super::epoch::Epoch;
use super::status::Status;
use crate::health::{ConnectionState, PoolStats, RedisHealth};
use crate::metrics::{self, BreakerChange};
use crate::redis::BreakerState;
use crate::{ConfigError, Error, Result};

/// The Redis client manager: one cheaply cloneable handle to a bb8 pool of Redis
/// connections, behind a circuit breaker, with timeouts on every command, retries with backoff
/// and health tracking.
///
/// Build it once at start-up and clone it wherever it is needed; clones share the pool. There is
/// no global instance: tests build their own.
///
/// A background task watches the connection: it connects at start-up (the manager is usable at
/// once, even while Redis is down), and once Redis is lost it probes with backoff until Redis
/// answers again, so recovery needs no traffic.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use resilient_session::{RedisManager, RedisService};
///
/// let manager = RedisManager::from_env()?; // REDIS_URL, or redis://127.0.0.1:6379
/// let cache = RedisService::new(manager.clone()).namespace("app");
/// cache.set("greeting", "hello", None).await?;
/// println!("Redis is {:?}", manager.health().state);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisManager {
    inner: Arc<Inner>,
}

struct Inner {
    pool: bb8::Pool<Connector>,
    pool_size: u32,
    /// A Redis Cluster, not one node.
    cluster: bool,
    /// The connection commands share, taken from the pool again at least every
    /// [`HOT_REFRESH`], so that the pool keeps managing it (lifetime, replacement).
    hot: Mutex<Option<(Shared, Instant)>>,
    signals: PoolSignals,
    breaker: Breaker,
    status: Status,
    settings: Settings,
    /// Wakes the background task when the connection is lost (and when the manager is dropped).
    wake: Arc<Notify>,
    /// The breaker-open gauge counts this manager.
    breaker_counted_open: AtomicBool,
    operations: metrics::Operations,
    /// Never contacts Redis: every operation is [`Error::NotUsed`].
    not_used: bool,
}

/// How long commands share one pooled connection before taking it from the pool again.
const HOT_REFRESH: Duration = Duration::from_secs(1);

/// Timeouts and retry policy, fixed at build time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) retry: Backoff,
    pub(crate) retry_budget: Duration,
    pub(crate) reconnect: Backoff,
}

/// What to send: a command or a pipeline, reusable for retries.
#[derive(Clone, Copy)]
enum Request<'a> {
    Cmd(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
    /// The breaker's probe: a `PING` to one node.
    Probe,
}

impl Request<'_> {
    async fn send<T: FromRedisValue>(self, link: &mut Link) -> RedisResult<T> {
        match self {
            Request::Cmd(cmd) => link.query(cmd).await,
            Request::Pipeline(pipeline) => link.query_pipeline(pipeline).await,
            Request::Probe => Ok(T::from_redis_value(link.ping_one().await?)?),
        }
    }
}

impl RedisManager {
    /// A builder with every default; see [`RedisManagerBuilder`] for what they are and why.
    pub fn builder() -> RedisManagerBuilder {
        RedisManagerBuilder::new()
    }

    /// A manager with default settings for the URL in `REDIS_URL` (read now, at run time), or
    /// `redis://127.0.0.1:6379` when it is unset or empty; see
    /// [`RedisManagerBuilder::from_env`].
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), resilient_session::ConfigError> {
    /// let manager = resilient_session::RedisManager::from_env()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] naming `REDIS_URL` when it does not parse,
    /// [`ConfigError::Invalid`] for a `rediss://` URL without the `tls` feature, and
    /// [`ConfigError::NoRuntime`] outside a Tokio runtime.
    pub fn from_env() -> Result<Self, ConfigError> {
        RedisManagerBuilder::from_env().build()
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        pool: bb8::Pool<Connector>,
        pool_size: u32,
        cluster: bool,
        signals: PoolSignals,
        breaker: Breaker,
        status: Status,
        settings: Settings,
        runtime: &tokio::runtime::Handle,
        not_used: bool,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            not_used,
            pool_size,
            cluster,
            pool,
            hot: Mutex::new(None),
            signals,
            breaker,
            status,
            settings,
            wake: Arc::clone(&wake),
            breaker_counted_open: AtomicBool::new(false),
            operations: metrics::Operations::default(),
        });
        if !not_used {
            runtime.spawn(supervise(Arc::downgrade(&inner), wake));
            metrics::breaker_started();
        }
        Self { inner }
    }

    /// Run one command, with the timeout, retries and breaker. `operation` names it in errors
    /// and logs (`"get"`, `"session load"`).
    pub(crate) async fn query<T: FromRedisValue + Send>(
        &self,
        operation: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        self.run(operation, Request::Cmd(cmd)).await
    }

    /// Run a pipeline in one round trip, with the timeout, retries and breaker.
    pub(crate) async fn query_pipeline<T: FromRedisValue + Send>(
        &self,
        operation: &'static str,
        pipeline: &redis::Pipeline,
    ) -> Result<T> {
        self.run(operation, Request::Pipeline(pipeline)).await
    }

    /// Send a `PING` (through the breaker, like any command).
    ///
    /// # Errors
    ///
    /// Redis is unavailable ([`Error::is_unavailable`]), or answered with an error.
    pub async fn ping(&self) -> Result<()> {
        self.query::<String>("ping", &redis::cmd("PING"))
            .await
            .map(drop)
    }

    /// The Redis data epoch at `key`: a random value read with `GET` (and created with `SET NX`
    /// only when the key is missing), joined with the replication id of the primary holding it,
    /// so that a Redis that lost its data, restarted, or was replaced by a promoted replica has
    /// a new one. Reading it works on a Redis that refuses writes (`OOM`). The first key asked
    /// for is read on every new single-node connection, so its value is usually known without a
    /// command; `fresh` reads it from Redis now instead of answering from memory. Values are
    /// forgotten whenever Redis is unavailable.
    ///
    /// # Errors
    ///
    /// Redis is unavailable, or refuses both the read and (for a missing key) the creation.
    ///
    /// ```no_run
    /// # async fn run(manager: resilient_session::RedisManager) -> Result<(), resilient_session::Error> {
    /// let before = manager.data_epoch("app:epoch", false).await?;
    /// // ... later: has the Redis behind "app:epoch" possibly lost data since?
    /// let lost = manager.data_epoch("app:epoch", true).await? != before;
    /// # Ok(()) }
    /// ```
    pub async fn data_epoch(&self, key: &str, fresh: bool) -> Result<Arc<str>> {
        let epoch = &self.inner.signals.epoch;
        epoch.register(key);
        if !fresh && let Some(value) = epoch.cached(key) {
            return Ok(value);
        }
        let read = Epoch::read_command(key, false);
        let (stored, info): (Option<String>, String) = match self
            .query_pipeline("epoch", &read)
            .await
        {
            Err(err) if !err.is_unavailable() => {
                // `INFO` refused (an ACL line from before it was needed): the key alone still
                // tells a Redis that lost its data, not a failover.
                tracing::warn!(error = %err, "cannot read the replication id; the data epoch will miss failovers (allow `+info` for this Redis user)");
                let (stored,): (Option<String>,) = self
                    .query_pipeline("epoch", &Epoch::read_command(key, true))
                    .await?;
                (stored, String::new())
            }
            answer => answer?,
        };
        let stored = match stored {
            Some(stored) => stored,
            None => {
                let (create, proposed) = Epoch::create_command(key);
                let existing: Option<String> = self.query("epoch", &create).await?;
                existing.unwrap_or(proposed)
            }
        };
        Ok(epoch.record(key, stored, &info))
    }

    /// The data epoch at `key` if it is known without asking Redis.
    pub(crate) fn cached_epoch(&self, key: &str) -> Option<Arc<str>> {
        self.inner.signals.epoch.cached(key)
    }

    /// A cookie-only engine's manager: it never contacts Redis.
    pub(crate) fn is_not_used(&self) -> bool {
        self.inner.not_used
    }

    /// Connected to a Redis Cluster: session code keeps every command on one slot.
    pub(crate) fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// The health of the connection now, from what recent operations saw; sends nothing.
    pub fn health(&self) -> RedisHealth {
        let inner = &*self.inner;
        let status = inner.status.snapshot();
        let breaker = inner.breaker.state();
        let state = match breaker {
            _ if inner.not_used => ConnectionState::NotUsed,
            BreakerState::Closed => status.state,
            _ => ConnectionState::CircuitOpen,
        };
        let pool = inner.pool.state();
        RedisHealth {
            state,
            connected_at: status.connected_at,
            error_count: status.error_count,
            last_error: status.last_error,
            is_healthy: state == ConnectionState::Connected,
            breaker,
            pool: PoolStats {
                connections: pool.connections,
                idle_connections: pool.idle_connections,
                connections_created: pool.statistics.connections_created,
                connections_closed_broken: pool.statistics.connections_closed_broken,
                checkouts_timed_out: pool.statistics.get_timed_out,
            },
        }
    }

    /// Check Redis with a `PING` (failing fast while the breaker is open), then report.
    pub async fn check(&self) -> RedisHealth {
        // The outcome is recorded in the health itself.
        let _ = self.ping().await;
        self.health()
    }

    async fn run<T: FromRedisValue + Send>(
        &self,
        operation: &'static str,
        request: Request<'_>,
    ) -> Result<T> {
        let inner = &*self.inner;
        if inner.not_used {
            return Err(Error::NotUsed);
        }
        let started = Instant::now();
        let Ok(admission) = inner.breaker.admit(started) else {
            let err = Error::CircuitOpen;
            inner.operations.record(operation, Err(&err), None);
            return Err(err);
        };
        if admission == Admission::Probe {
            metrics::breaker(BreakerChange::HalfOpen, &inner.breaker_counted_open);
        }
        let mut permit = Permit {
            breaker: &inner.breaker,
            admission,
            settled: false,
        };
        let span = tracing::debug_span!("redis", operation, outcome = tracing::field::Empty);
        let result = self
            .with_retries(operation, request)
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Err(err) if err.is_unavailable() => Outcome::Failure,
            _ => Outcome::Success,
        };
        let transition = permit.settle(outcome);
        let done = result.as_ref().map(drop);
        span.record("outcome", metrics::outcome(done));
        inner
            .operations
            .record(operation, done, Some(started.elapsed()));
        match transition {
            Transition::Opened { .. } => {
                metrics::breaker(BreakerChange::Open, &inner.breaker_counted_open);
            }
            Transition::Closed => {
                metrics::breaker(BreakerChange::Closed, &inner.breaker_counted_open);
            }
            Transition::None => {}
        }
        self.observe(operation, &result, transition);
        result
    }

    async fn with_retries<T: FromRedisValue + Send>(
        &self,
        operation: &'static str,
        request: Request<'_>,
    ) -> Result<T> {
        let settings = self.inner.settings;
        let started = Instant::now();
        // The budget bounds the whole operation: every attempt, and every wait between them.
        let deadline = started + settings.retry_budget;
        let mut attempt = 0;
        loop {
            match self.attempt(operation, request, deadline).await {
                Err(err) if err.is_retryable() && attempt < settings.max_retries => {
                    let delay = settings.retry.full_jitter(attempt);
                    if started.elapsed() + delay + settings.command_timeout > settings.retry_budget
                    {
                        return Err(err);
                    }
                    tracing::debug!(operation, attempt, ?delay, error = %err, "retrying Redis operation");
                    metrics::redis_retry(operation);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// One attempt, within the operation's `deadline`. A timer is armed only for what does not
    /// complete at once: the command (and a checkout that has to wait).
    async fn attempt<T: FromRedisValue + Send>(
        &self,
        operation: &'static str,
        request: Request<'_>,
        deadline: Instant,
    ) -> Result<T> {
        let settings = self.inner.settings;
        let out_of_budget = || Error::Timeout {
            operation,
            after: settings.retry_budget,
        };
        let shared = match self.hot_connection() {
            Some(shared) => shared,
            None => {
                // A clone of a multiplexed connection: the pooled one goes back at once, for
                // others to share while this command is in flight.
                let conn = tokio::time::timeout_at(deadline.into(), self.checkout())
                    .await
                    .map_err(|_| out_of_budget())??;
                let shared = conn.share();
                *self.lock_hot() = Some((shared.clone(), Instant::now() + HOT_REFRESH));
                shared
            }
        };
        let mut redis = shared.redis.clone();
        let command_deadline = (Instant::now() + settings.command_timeout).min(deadline);
        let timeout = command_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(command_deadline.into(), request.send(&mut redis)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => {
                let err = Error::redis(operation, source);
                self.on_error(&err, &shared);
                Err(err)
            }
            Err(_elapsed) => {
                let err = Error::Timeout {
                    operation,
                    after: timeout,
                };
                self.on_error(&err, &shared);
                Err(err)
            }
        }
    }

    /// What an error says about the connection it came on.
    fn on_error(&self, err: &Error, shared: &Shared) {
        let signals = &self.inner.signals;
        if self.inner.cluster {
            // The cluster connection reconnects to a failed node and re-reads the slot map by
            // itself, and its connections to the other nodes still serve their slots: replacing
            // it would only make every shard wait for the failed one.
        } else if err.is_read_only() || err.is_connection_dropped() {
            // A failover demoted this node, or Redis went away: every connection to it must go,
            // so that new ones reach the new primary (or the restarted Redis).
            signals.retire_all();
            shared.mark_broken();
        } else if err.breaks_connection() {
            shared.mark_broken();
        }
    }

    /// The shared connection, if it is fresh and usable.
    fn hot_connection(&self) -> Option<Shared> {
        let hot = self.lock_hot();
        let (shared, until) = hot.as_ref()?;
        (Instant::now() < *until && self.inner.signals.is_usable(shared)).then(|| shared.clone())
    }

    fn lock_hot(&self) -> std::sync::MutexGuard<'_, Option<(Shared, Instant)>> {
        self.inner
            .hot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn checkout(&self) -> Result<PooledConnection<'_, Connector>> {
        let inner = &*self.inner;
        let connect_timeout = inner.settings.connect_timeout;
        let to_error = |err| match err {
            RunError::User(source) => Error::redis("connect", source),
            RunError::TimedOut => Error::Timeout {
                operation: "connect",
                after: connect_timeout,
            },
        };
        // Each pass either drops one retired connection or returns; a pool holds at most
        // `max_size` of them.
        for _ in 0..=inner.pool_size {
            let mut failures = inner.signals.connect_failures();
            let conn = tokio::select! {
                biased;
                got = inner.pool.get() => got.map_err(to_error)?,
                source = failures.next() => return Err(to_error(RunError::User(source))),
            };
            if conn.is_broken() || inner.signals.is_stale(&conn) {
                conn.mark_broken();
                continue;
            }
            return Ok(conn);
        }
        Err(to_error(RunError::TimedOut))
    }

    fn observe<T>(&self, operation: &'static str, result: &Result<T>, transition: Transition) {
        let inner = &*self.inner;
        match result {
            Err(err) if err.is_unavailable() => {
                // Whatever Redis answers next may have lost its data: read the epoch again.
                inner.signals.epoch.forget();
                let before = inner.status.on_failure(err);
                let error = inner.status.describe(err);
                match before {
                    ConnectionState::Connected => {
                        tracing::warn!(operation, %error, "lost the Redis connection");
                        inner.wake.notify_one();
                    }
                    ConnectionState::Connecting => {
                        tracing::warn!(operation, %error, "cannot connect to Redis yet");
                    }
                    _ => tracing::debug!(operation, %error, "Redis is still unavailable"),
                }
                if let Transition::Opened { retry_in } = transition {
                    inner.wake.notify_one();
                    tracing::warn!(operation, %error, ?retry_in, "Redis circuit breaker opened: failing fast until a probe succeeds");
                }
            }
            _ => {
                if inner.status.on_success() {
                    tracing::info!("connected to Redis");
                }
                if transition == Transition::Closed {
                    tracing::info!("Redis circuit breaker closed");
                }
            }
        }
    }
}

/// An admission that is reported back to the breaker exactly once, even if the operation is
/// cancelled (its future dropped): a probe that never reports would leave the breaker half-open
/// for good.
struct Permit<'a> {
    breaker: &'a Breaker,
    admission: Admission,
    settled: bool,
}

impl Permit<'_> {
    fn settle(&mut self, outcome: Outcome) -> Transition {
        self.settled = true;
        self.breaker.record(self.admission, outcome, Instant::now())
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker
                .record(self.admission, Outcome::Abandoned, Instant::now());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Let the background task see that the manager is gone.
        self.wake.notify_one();
        metrics::breaker_dropped(&self.breaker_counted_open);
    }
}

/// The background task: connects at start-up, and after the connection is lost probes with
/// backoff (respecting the breaker's schedule) until Redis answers and the breaker is closed.
async fn supervise(manager: Weak<Inner>, wake: Arc<Notify>) {
    let mut failed_probes = 0u32;
    loop {
        let pause = {
            let Some(inner) = manager.upgrade() else {
                return;
            };
            if !inner.needs_probe() {
                None
            } else if let Some(retry_in) = inner.breaker.retry_in(Instant::now()) {
                Some(retry_in)
            } else if failed_probes == 0 {
                Some(Duration::ZERO)
            } else {
                Some(inner.settings.reconnect.equal_jitter(failed_probes - 1))
            }
        };
        match pause {
            None => {
                wake.notified().await;
                failed_probes = 0;
                continue;
            }
            Some(pause) => tokio::time::sleep(pause).await,
        }
        let Some(inner) = manager.upgrade() else {
            return;
        };
        if !inner.needs_probe() {
            continue;
        }
        let manager = RedisManager { inner };
        match manager.run::<redis::Value>("ping", Request::Probe).await {
            Ok(_) => failed_probes = 0,
            Err(_) => failed_probes = failed_probes.saturating_add(1),
        }
    }
}

impl Inner {
    /// Redis is not known to be answering, or the breaker is not closed yet (an operation
    /// admitted before the breaker opened may have succeeded since: only a probe closes it).
    fn needs_probe(&self) -> bool {
        !self.status.is_connected() || self.breaker.state() != BreakerState::Closed
    }
}

impl fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisManager")
            .field("state", &self.health().state)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}
