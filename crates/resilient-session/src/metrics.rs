//! Metrics through the [`metrics`](https://docs.rs/metrics/0.24) facade: their names, and the
//! helpers the rest of the crate records them with.
//!
//! The crate only records; the application chooses the exporter (Prometheus, StatsD, ...) and
//! installs its recorder. With no recorder installed, recording costs next to nothing.
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `resilient_session_redis_commands_total` | counter | `operation`, `outcome` | Redis operations (a command or a pipeline, retries included), by `outcome`: `ok` (Redis answered), `unavailable` (connection, timeout, open breaker, a server that cannot take it now: the fallback applies), `error` (another error: a wrong type, a script not cached yet, a decode error) |
//! | `resilient_session_redis_command_duration_seconds` | histogram | `operation` | time from admission to the answer, retries and waits included; operations refused by an open breaker are not timed |
//! | `resilient_session_redis_retries_total` | counter | `operation` | attempts made again after a connection error or a timeout |
//! | `resilient_session_redis_failures_total` | counter | `kind` | failed operations, by `kind`: `circuit_open` (refused at once by the breaker), `timeout`, `connection` (refused, dropped, TLS, no route), `auth` (`NOAUTH`, `WRONGPASS`), `refused` (`LOADING`, `MASTERDOWN`, `READONLY`, `TRYAGAIN`, `CLUSTERDOWN`, `MOVED`, `ASK`, `BUSY`, `OOM`), `noscript` (the save script is not cached yet, as after a Redis restart: it is sent again at once; harmless), `other` (not an outage: `WRONGTYPE`, a decode error) |
//! | `resilient_session_breaker_transitions_total` | counter | `to` | circuit breaker changes: `open` (too many failures, or a failed probe), `half_open` (a probe let through), `closed` (a probe succeeded) |
//! | `resilient_session_breaker_open` | gauge | | managers whose breaker is open or half-open: 1 while an app's one breaker is, 0 while it is closed |
//! | `resilient_session_fallback_reads_total` | counter | | requests whose session was served from its cookie because Redis was unavailable |
//! | `resilient_session_fallback_writes_total` | counter | | requests whose changes went into the cookie because Redis was unavailable |
//! | `resilient_session_touches_total` | counter | | idle timeouts refreshed in Redis (`EXPIRE` of an existing session) without a write |
//! | `resilient_session_revocations_total` | counter | `outcome` | logouts made while Redis was down: `queued` for replay, `replayed` since (`DEL` + tombstone), `failed` (queue full, or retries exhausted) |
//! | `resilient_session_failing_closed` | gauge | | 1 while a store of the process fails closed because its logout queue was full (no cookie stands in for Redis on its own), 0 otherwise |
//! | `resilient_session_stale_changes_dropped_total` | counter | | cookies whose changes from while Redis was down were older than what Redis holds, and were dropped rather than written over it |
//! | `resilient_session_cookies_refused_total` | counter | `reason` | request cookies of ours not honoured: `invalid` (tampered, truncated, malformed, an unknown key), `expired` (past the idle timeout or the absolute lifetime), `oversized` (longer than a cookie of ours can be) |
//! | `resilient_session_oversized_cookies_total` | counter | | outgoing cookies that did not fit in 4096 bytes: changes made while Redis was down, or the mirror, were left out |
//! | `resilient_session_corrupt_sessions_total` | counter | | sessions in Redis that were not JSON, failed validation or were too large, and were deleted |
//! | `resilient_session_sessions_imported_total` | counter | | sessions of tower-sessions or actix-session carried over ([`Import`](crate::Import)) |
//!
//! `operation` is the name the library gives a Redis operation (`session load`, `session save`,
//! `session touch`, `ping`, `epoch`, `get`, `set`, ... for [`RedisService`](crate::RedisService)): a small,
//! fixed set. No label ever holds a session id, a cookie, a key or a password. Counters are per
//! process; the gauge is too, so with several [`RedisManager`]s in one process it shows the
//! latest change of any of them.
//!
//! The session counters are the ones [`SessionEngine::stats`](crate::SessionEngine::stats)
//! returns, for every store of the process together (`cookies_rejected` there is
//! `reason="invalid"` plus `reason="oversized"` here).
//!
//! # Tracing spans
//!
//! At `DEBUG` level, each request through [`SessionLayer`](crate::SessionLayer) (and the actix
//! middleware) runs in a `session` span whose `session.source` field says where the session came
//! from (`redis`, `cookie`, `new`, or `unused` when the handler did not read it); each Redis
//! operation runs in a `redis` span with its `operation` and `outcome`. Neither carries an id or
//! a cookie.
//!
//! # Installing a recorder
//!
//! Install the recorder before the first request: each [`RedisManager`] registers its
//! per-operation metrics with the recorder installed when an operation is first recorded, and
//! keeps the handles (recording is then an atomic add, with no lookup or allocation).
//!
//! With Prometheus, the example apps install `metrics-exporter-prometheus`'s recorder once per
//! process, call [`describe`] and serve its `render()` at `GET /metrics`; see
//! `examples/common/src/metrics.rs`. Any recorder works; here the `metrics-util` debugging one,
//! for one thread, watches a `PING` fail while Redis is unreachable:
//!
//! ```
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use resilient_session::RedisManager;
//! use resilient_session::metrics::REDIS_COMMANDS;
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || {
//!     let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//!     runtime.block_on(async {
//!         // Nothing listens on port 1.
//!         let manager = RedisManager::builder().url("redis://127.0.0.1:1").build()?;
//!         assert!(manager.ping().await.is_err());
//!         Ok::<_, resilient_session::ConfigError>(())
//!     })?;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//!
//! let unavailable_pings = snapshotter.snapshot().into_vec().into_iter().find(|(key, ..)| {
//!     let key = key.key();
//!     key.name() == REDIS_COMMANDS
//!         && key.labels().any(|l| l.key() == "operation" && l.value() == "ping")
//!         && key.labels().any(|l| l.key() == "outcome" && l.value() == "unavailable")
//! });
//! assert!(matches!(unavailable_pings, Some((_, _, _, DebugValue::Counter(n))) if n >= 1));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! [`RedisManager`]: crate::RedisManager

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use ::metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};

use crate::Error;

/// Counter: Redis operations, by `operation` and `outcome` (`ok`, `unavailable`, `error`).
pub const REDIS_COMMANDS: &str = "resilient_session_redis_commands_total";
/// Histogram, in seconds: how long Redis operations took, by `operation`.
pub const REDIS_COMMAND_DURATION: &str = "resilient_session_redis_command_duration_seconds";
/// Counter: retried attempts, by `operation`.
pub const REDIS_RETRIES: &str = "resilient_session_redis_retries_total";
/// Counter: failed Redis operations, by `kind` (`circuit_open`, `timeout`, `connection`,
/// `auth`, `refused`, `noscript`, `other`).
pub const REDIS_FAILURES: &str = "resilient_session_redis_failures_total";
/// Counter: circuit breaker transitions, by `to` (`open`, `half_open`, `closed`).
pub const BREAKER_TRANSITIONS: &str = "resilient_session_breaker_transitions_total";
/// Gauge: how many `RedisManager`s of the process have their circuit breaker open or half-open
/// (1 or 0 for an app with one manager).
pub const BREAKER_OPEN: &str = "resilient_session_breaker_open";
/// Counter: sessions served from their cookie because Redis was unavailable.
pub const FALLBACK_READS: &str = "resilient_session_fallback_reads_total";
/// Counter: session changes written into the cookie because Redis was unavailable.
pub const FALLBACK_WRITES: &str = "resilient_session_fallback_writes_total";
/// Counter: idle timeouts refreshed in Redis without a write.
pub const TOUCHES: &str = "resilient_session_touches_total";
/// Counter: logouts made while Redis was down, by `outcome` (`queued`, `replayed`, `failed`).
pub const REVOCATIONS: &str = "resilient_session_revocations_total";
/// Gauge: stores of the process failing closed because their logout queue was full.
pub const FAILING_CLOSED: &str = "resilient_session_failing_closed";
/// Counter: cookies whose outage changes were older than Redis's state, and were dropped.
pub const STALE_CHANGES_DROPPED: &str = "resilient_session_stale_changes_dropped_total";
/// Counter: request cookies not honoured, by `reason` (`invalid`, `expired`, `oversized`).
pub const COOKIES_REFUSED: &str = "resilient_session_cookies_refused_total";
/// Counter: outgoing cookies cut to fit in 4096 bytes.
pub const OVERSIZED_COOKIES: &str = "resilient_session_oversized_cookies_total";
/// Counter: corrupt sessions found in Redis and deleted.
pub const CORRUPT_SESSIONS: &str = "resilient_session_corrupt_sessions_total";
/// Counter: sessions of another session library carried over ([`Import`](crate::Import)).
pub const SESSIONS_IMPORTED: &str = "resilient_session_sessions_imported_total";

/// Gives every metric of this crate its description and unit in the installed recorder (the
/// `# HELP` lines of a Prometheus page). Call it once, after installing the recorder; without it
/// the metrics are recorded all the same.
///
/// ```
/// // With no recorder installed this does nothing; after installing one, call it once.
/// resilient_session::metrics::describe();
/// ```
pub fn describe() {
    describe_counter!(
        REDIS_COMMANDS,
        "Redis operations (a command or a pipeline, retries included), by operation and outcome (ok, unavailable, error)."
    );
    describe_histogram!(
        REDIS_COMMAND_DURATION,
        Unit::Seconds,
        "Time Redis operations took, retries included, by operation."
    );
    describe_counter!(
        REDIS_RETRIES,
        "Redis attempts made again after a connection error or a timeout, by operation."
    );
    describe_counter!(
        REDIS_FAILURES,
        "Failed Redis operations, by kind (circuit_open, timeout, connection, auth, refused, noscript, other)."
    );
    describe_counter!(
        BREAKER_TRANSITIONS,
        "Circuit breaker transitions, by the state entered (open, half_open, closed)."
    );
    describe_gauge!(
        BREAKER_OPEN,
        "Redis circuit breakers open or half-open (one per RedisManager)."
    );
    describe_counter!(
        FALLBACK_READS,
        "Sessions served from their cookie because Redis was unavailable."
    );
    describe_counter!(
        FALLBACK_WRITES,
        "Session changes written into the cookie because Redis was unavailable."
    );
    describe_counter!(TOUCHES, "Idle timeouts refreshed in Redis without a write.");
    describe_counter!(
        REVOCATIONS,
        "Logouts made while Redis was down, by outcome (queued, replayed, failed)."
    );
    describe_gauge!(
        FAILING_CLOSED,
        "Session stores failing closed (no cookie stands in for Redis) because their logout queue was full."
    );
    describe_counter!(
        STALE_CHANGES_DROPPED,
        "Cookies whose changes from while Redis was down were older than Redis's state, and were dropped."
    );
    describe_counter!(
        COOKIES_REFUSED,
        "Request session cookies not honoured, by reason (invalid, expired, oversized)."
    );
    describe_counter!(
        OVERSIZED_COOKIES,
        "Outgoing session cookies cut to fit in 4096 bytes."
    );
    describe_counter!(
        CORRUPT_SESSIONS,
        "Corrupt sessions found in Redis and deleted."
    );
    describe_counter!(
        SESSIONS_IMPORTED,
        "Sessions of tower-sessions or actix-session carried over."
    );
}

/// Something the session engine counts, in [`SessionStats`](crate::SessionStats) and as a
/// metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    FallbackRead,
    FallbackWrite,
    Touch,
    RevocationQueued,
    RevocationReplayed,
    RevocationFailed,
    CookieInvalid,
    CookieExpired,
    CookieTooLong,
    CookieCut,
    CorruptSession,
    SessionImported,
    StaleChangesDropped,
}

impl Event {
    pub(crate) fn record(self) {
        let counter = match self {
            Event::FallbackRead => counter!(FALLBACK_READS),
            Event::FallbackWrite => counter!(FALLBACK_WRITES),
            Event::Touch => counter!(TOUCHES),
            Event::RevocationQueued => counter!(REVOCATIONS, "outcome" => "queued"),
            Event::RevocationReplayed => counter!(REVOCATIONS, "outcome" => "replayed"),
            Event::RevocationFailed => counter!(REVOCATIONS, "outcome" => "failed"),
            Event::CookieInvalid => counter!(COOKIES_REFUSED, "reason" => "invalid"),
            Event::CookieExpired => counter!(COOKIES_REFUSED, "reason" => "expired"),
            Event::CookieTooLong => counter!(COOKIES_REFUSED, "reason" => "oversized"),
            Event::CookieCut => counter!(OVERSIZED_COOKIES),
            Event::CorruptSession => counter!(CORRUPT_SESSIONS),
            Event::SessionImported => counter!(SESSIONS_IMPORTED),
            Event::StaleChangesDropped => counter!(STALE_CHANGES_DROPPED),
        };
        counter.increment(1);
    }
}

/// A store starts (`true`) or stops failing closed.
pub(crate) fn failing_closed(on: bool) {
    if on {
        gauge!(FAILING_CLOSED).increment(1.0);
    } else {
        gauge!(FAILING_CLOSED).decrement(1.0);
    }
}

/// The `outcome` labels of a finished Redis operation.
const OUTCOMES: [&str; 3] = ["ok", "unavailable", "error"];

fn outcome_index(result: Result<(), &Error>) -> usize {
    match result {
        Ok(()) => 0,
        Err(err) if err.is_unavailable() => 1,
        Err(_) => 2,
    }
}

/// The `outcome` label of a finished Redis operation.
pub(crate) fn outcome(result: Result<(), &Error>) -> &'static str {
    OUTCOMES[outcome_index(result)]
}

/// The per-operation metrics of one [`RedisManager`](crate::RedisManager), their handles
/// registered with the recorder on each operation's first use: recording then costs an atomic
/// add, where looking a labelled metric up costs allocations on every call.
#[derive(Default)]
pub(crate) struct Operations {
    handles: RwLock<Vec<(&'static str, Handles)>>,
}

struct Handles {
    /// By outcome, as [`OUTCOMES`] lists them; each registered when first counted.
    commands: [OnceLock<Counter>; 3],
    duration: Histogram,
}

impl Handles {
    fn new(operation: &'static str) -> Self {
        Self {
            commands: Default::default(),
            duration: histogram!(REDIS_COMMAND_DURATION, "operation" => operation),
        }
    }

    fn record(&self, operation: &'static str, outcome: usize, elapsed: Option<Duration>) {
        self.commands[outcome]
            .get_or_init(|| {
                counter!(REDIS_COMMANDS, "operation" => operation, "outcome" => OUTCOMES[outcome])
            })
            .increment(1);
        if let Some(elapsed) = elapsed {
            self.duration.record(elapsed);
        }
    }
}

impl Operations {
    /// One Redis operation is over: `elapsed` is `None` when it was refused without being
    /// tried.
    pub(crate) fn record(
        &self,
        operation: &'static str,
        result: Result<(), &Error>,
        elapsed: Option<Duration>,
    ) {
        let outcome = outcome_index(result);
        let recorded = self
            .read()
            .iter()
            .find(|(name, _)| *name == operation)
            .map(|(_, handles)| handles.record(operation, outcome, elapsed));
        if recorded.is_none() {
            let handles = Handles::new(operation);
            handles.record(operation, outcome, elapsed);
            let mut all = self.handles.write().unwrap_or_else(PoisonError::into_inner);
            if all.iter().all(|(name, _)| *name != operation) {
                all.push((operation, handles));
            }
        }
        if let Err(err) = result {
            counter!(REDIS_FAILURES, "kind" => err.failure_kind()).increment(1);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(&'static str, Handles)>> {
        self.handles.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations")
            .field("registered", &self.read().len())
            .finish()
    }
}

/// An attempt of `operation` is made again.
pub(crate) fn redis_retry(operation: &'static str) {
    counter!(REDIS_RETRIES, "operation" => operation).increment(1);
}

/// The state the circuit breaker entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerChange {
    Open,
    HalfOpen,
    Closed,
}

/// A manager's breaker changed state; `counted_open` is whether the gauge counts it as open
/// (one flag per manager, so that managers do not overwrite each other's state).
pub(crate) fn breaker(change: BreakerChange, counted_open: &AtomicBool) {
    let to = match change {
        BreakerChange::Open => "open",
        BreakerChange::HalfOpen => "half_open",
        BreakerChange::Closed => "closed",
    };
    counter!(BREAKER_TRANSITIONS, "to" => to).increment(1);
    let open = change != BreakerChange::Closed;
    if counted_open.swap(open, Ordering::AcqRel) != open {
        let step = if open { 1.0 } else { -1.0 };
        gauge!(BREAKER_OPEN).increment(step);
    }
}

/// A manager starts, its breaker closed: the gauge shows (at 0 if no breaker is open) without
/// touching other managers' counts.
pub(crate) fn breaker_started() {
    gauge!(BREAKER_OPEN).increment(0.0);
}

/// A manager is gone: its breaker no longer counts.
pub(crate) fn breaker_dropped(counted_open: &AtomicBool) {
    if counted_open.swap(false, Ordering::AcqRel) {
        gauge!(BREAKER_OPEN).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    fn counter_value(
        snapshot: &[(
            metrics_util::CompositeKey,
            Option<Unit>,
            Option<::metrics::SharedString>,
            DebugValue,
        )],
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<u64> {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let matches = key.name() == name
                && key.labels().count() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v));
            match value {
                DebugValue::Counter(n) if matches => Some(*n),
                _ => None,
            }
        })
    }

    #[test]
    fn events_and_operations_record_their_labels() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            Event::CookieExpired.record();
            Event::CookieExpired.record();
            Event::RevocationQueued.record();
            let operations = Operations::default();
            operations.record("get", Ok(()), Some(Duration::from_millis(2)));
            operations.record("get", Err(&Error::CircuitOpen), None);
            operations.record("get", Ok(()), Some(Duration::from_millis(1)));
            // Two managers: each counts once in the gauge, however often it changes state.
            let (first, second) = (AtomicBool::new(false), AtomicBool::new(false));
            breaker(BreakerChange::Open, &first);
            breaker(BreakerChange::HalfOpen, &first);
            breaker(BreakerChange::Open, &second);
            breaker(BreakerChange::Closed, &first);
            breaker_dropped(&second);
            breaker_dropped(&first);
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let value = |name, labels: &[(&str, &str)]| counter_value(&snapshot, name, labels);
        assert_eq!(value(COOKIES_REFUSED, &[("reason", "expired")]), Some(2));
        assert_eq!(value(REVOCATIONS, &[("outcome", "queued")]), Some(1));
        assert_eq!(
            value(REDIS_COMMANDS, &[("operation", "get"), ("outcome", "ok")]),
            Some(2)
        );
        assert_eq!(
            value(
                REDIS_COMMANDS,
                &[("operation", "get"), ("outcome", "unavailable")]
            ),
            Some(1)
        );
        assert_eq!(value(REDIS_FAILURES, &[("kind", "circuit_open")]), Some(1));
        assert_eq!(value(BREAKER_TRANSITIONS, &[("to", "open")]), Some(2));
        let gauge = snapshot.iter().find_map(|(key, _, _, value)| match value {
            DebugValue::Gauge(value) if key.key().name() == BREAKER_OPEN => Some(value.0),
            _ => None,
        });
        assert_eq!(gauge, Some(0.0), "up to 2, back to 0");
        let timed = snapshot.iter().find_map(|(key, _, _, value)| match value {
            DebugValue::Histogram(samples) if key.key().name() == REDIS_COMMAND_DURATION => {
                Some(samples.len())
            }
            _ => None,
        });
        assert_eq!(
            timed,
            Some(2),
            "only the operations that were tried are timed"
        );
        // An outcome is registered when first counted: no series of zeros.
        assert_eq!(
            value(
                REDIS_COMMANDS,
                &[("operation", "get"), ("outcome", "error")]
            ),
            None
        );
    }
}
