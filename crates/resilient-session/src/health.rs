//! Health of the Redis connection, and the report served at `GET /api/health/redis`.

use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::SessionStats;
use crate::redis::BreakerState;

/// Where the connection to Redis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConnectionState {
    /// No connection has succeeded yet (start-up), attempts are under way.
    Connecting,
    /// The last operation reached Redis.
    Connected,
    /// The last operation could not reach Redis; the breaker has not opened (yet).
    Disconnected,
    /// The circuit breaker is open or half-open: Redis is not being contacted except by a probe.
    CircuitOpen,
    /// A cookie-only engine's manager ([`SessionEngine::cookie_only`](crate::SessionEngine::cookie_only)):
    /// Redis is never contacted.
    NotUsed,
}

/// Connection-pool statistics (from bb8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub connections: u32,
    /// Open connections not in use.
    pub idle_connections: u32,
    /// Connections opened since start.
    pub connections_created: u64,
    /// Connections dropped because an error showed they were broken.
    pub connections_closed_broken: u64,
    /// Checkouts that timed out waiting for a connection.
    pub checkouts_timed_out: u64,
}

/// A snapshot of the Redis connection's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RedisHealth {
    /// Where the connection stands.
    pub state: ConnectionState,
    /// Since when Redis has been answering (the last transition to connected), if it ever did.
    #[serde(serialize_with = "option_millis_utc")]
    pub connected_at: Option<OffsetDateTime>,
    /// Failed operations since the connection was last (re-)established.
    pub error_count: u64,
    /// The last error, as text. Never holds a password, a session id or a secret.
    pub last_error: Option<String>,
    /// `true` when [`state`](Self::state) is [`ConnectionState::Connected`].
    pub is_healthy: bool,
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// Pool statistics.
    pub pool: PoolStats,
}

/// The health report, in the JSON shape of `GET /api/health/redis`.
///
/// [`RedisHealth`] is the full picture for programs (connection state, breaker, pool statistics,
/// last error). [`HealthReport`] is what the adapters serve: it serialises to this JSON:
///
/// ```json
/// {
///   "status": "healthy",
///   "timestamp": "2024-01-15T10:30:00.000Z",
///   "service": "redis",
///   "details": {
///     "session_service": true,
///     "redis_connection": {
///       "state": "connected",
///       "connectedAt": "2024-01-15T10:25:00.000Z",
///       "errorCount": 0,
///       "isHealthy": true
///     }
///   }
/// }
/// ```
///
/// The session engine's report adds a `details.fallback` section on degraded operation: the
/// breaker state, and how many requests were served from or written to the cookie. The logouts
/// waiting for Redis are not in it: the report is for anyone to read, and how many logouts a
/// process holds is no one else's business (nor feedback for someone trying to fill the queue);
/// [`SessionEngine::stats`](crate::SessionEngine::stats) and the metrics have them.
///
/// ```no_run
/// # async fn run() -> Result<(), resilient_session::ConfigError> {
/// use resilient_session::{HealthReport, RedisManager};
///
/// let manager = RedisManager::from_env()?;
/// let health = manager.check().await; // one PING through the breaker
/// let report = HealthReport::new(&health, health.is_healthy);
/// println!("{} {}", report.status_code(), serde_json::to_string(&report).unwrap_or_default());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    status: Status,
    #[serde(serialize_with = "millis_utc")]
    timestamp: OffsetDateTime,
    service: &'static str,
    details: Details,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Details {
    session_service: bool,
    redis_connection: ConnectionReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<FallbackReport>,
}

/// How sessions fared without Redis: `details.fallback` in the health report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FallbackReport {
    breaker: BreakerState,
    fallback_reads: u64,
    fallback_writes: u64,
    oversized_cookies: u64,
}

impl FallbackReport {
    /// The section for a connection in `redis` state and an engine with `stats`.
    pub fn new(redis: &RedisHealth, stats: &SessionStats) -> Self {
        Self {
            breaker: redis.breaker,
            fallback_reads: stats.fallback_reads,
            fallback_writes: stats.fallback_writes,
            oversized_cookies: stats.oversized_cookies,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionReport {
    state: ConnectionState,
    #[serde(serialize_with = "option_millis_utc")]
    connected_at: Option<OffsetDateTime>,
    error_count: u64,
    is_healthy: bool,
}

impl HealthReport {
    /// A report, timestamped now, for `redis` and whether the session service works.
    ///
    /// ```
    /// # use resilient_session::{HealthReport, RedisHealth};
    /// fn report(health: &RedisHealth) -> (u16, String) {
    ///     let report = HealthReport::new(health, health.is_healthy);
    ///     (report.status_code(), serde_json::to_string(&report).unwrap_or_default())
    /// }
    /// ```
    pub fn new(redis: &RedisHealth, session_service: bool) -> Self {
        let healthy = redis.is_healthy && session_service;
        Self {
            status: if healthy {
                Status::Healthy
            } else {
                Status::Unhealthy
            },
            timestamp: OffsetDateTime::now_utc(),
            service: "redis",
            details: Details {
                session_service,
                redis_connection: ConnectionReport {
                    state: redis.state,
                    connected_at: redis.connected_at,
                    error_count: redis.error_count,
                    is_healthy: redis.is_healthy,
                },
                fallback: None,
            },
        }
    }

    /// Adds the `details.fallback` section.
    pub fn with_fallback(mut self, fallback: FallbackReport) -> Self {
        self.details.fallback = Some(fallback);
        self
    }

    /// `true` when the status is `healthy`.
    pub fn is_healthy(&self) -> bool {
        self.status == Status::Healthy
    }

    /// The HTTP status to answer with: 200 when healthy, 503 when not.
    pub fn status_code(&self) -> u16 {
        if self.is_healthy() { 200 } else { 503 }
    }
}

fn millis_utc<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let text = at
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

fn option_millis_utc<S: Serializer>(
    at: &Option<OffsetDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => millis_utc(at, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn health(state: ConnectionState) -> RedisHealth {
        RedisHealth {
            state,
            connected_at: Some(datetime!(2024-01-15 10:25:00 UTC)),
            error_count: 0,
            last_error: None,
            is_healthy: state == ConnectionState::Connected,
            breaker: BreakerState::Closed,
            pool: PoolStats::default(),
        }
    }

    #[test]
    fn serialises_exactly_to_the_seed_shape() {
        let mut report = HealthReport::new(&health(ConnectionState::Connected), true);
        report.timestamp = datetime!(2024-01-15 10:30:00 UTC);
        let json = serde_json::to_value(&report).expect("serialises");
        let expected = serde_json::json!({
            "status": "healthy",
            "timestamp": "2024-01-15T10:30:00.000Z",
            "service": "redis",
            "details": {
                "session_service": true,
                "redis_connection": {
                    "state": "connected",
                    "connectedAt": "2024-01-15T10:25:00.000Z",
                    "errorCount": 0,
                    "isHealthy": true
                }
            }
        });
        assert_eq!(json, expected);
        assert_eq!(report.status_code(), 200);
    }

    #[test]
    fn unhealthy_is_503_and_says_why() {
        let report = HealthReport::new(&health(ConnectionState::CircuitOpen), true);
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["status"], "unhealthy");
        assert_eq!(json["details"]["redis_connection"]["state"], "circuit_open");
        assert_eq!(json["details"]["redis_connection"]["isHealthy"], false);
        assert_eq!(report.status_code(), 503);
    }

    #[test]
    fn the_fallback_section_is_added_beside_the_seed_fields() {
        let redis = health(ConnectionState::CircuitOpen);
        let stats = SessionStats {
            fallback_reads: 3,
            revocations_pending: 1,
            ..SessionStats::default()
        };
        let report =
            HealthReport::new(&redis, true).with_fallback(FallbackReport::new(&redis, &stats));
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["details"]["redis_connection"]["state"], "circuit_open");
        assert_eq!(json["details"]["fallback"]["breaker"], "closed");
        assert_eq!(json["details"]["fallback"]["fallbackReads"], 3);
        let fallback = json["details"]["fallback"].as_object().expect("a section");
        assert!(
            fallback.keys().all(|key| !key.starts_with("revocations")),
            "no queue depth in a public report: {fallback:?}"
        );
        assert_eq!(report.status_code(), 503);
    }

    #[test]
    fn never_connected_has_a_null_connected_at() {
        let mut redis = health(ConnectionState::Connecting);
        redis.connected_at = None;
        let json = serde_json::to_value(HealthReport::new(&redis, false)).expect("serialises");
        assert!(json["details"]["redis_connection"]["connectedAt"].is_null());
        assert_eq!(json["details"]["redis_connection"]["state"], "connecting");
    }
}
