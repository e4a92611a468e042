//! The circuit breaker around the Redis pool.
//!
//! ```text
//!            failures ≥ threshold              back-off elapsed
//!  Closed ─────────────────────────▶ Open ─────────────────────────▶ HalfOpen (one probe)
//!    ▲                                ▲                                 │   │
//!    │          probe failed (back-off grows, with jitter, up to a cap) │   │
//!    │                                └─────────────────────────────────┘   │
//!    └──────────────────────────────── probe succeeded ─────────────────────┘
//! ```
//!
//! While open, [`Breaker::admit`] refuses at once: no network traffic. Time is passed in by the
//! caller, so the state machine is tested with a clock the test controls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::backoff::Backoff;

/// The breaker's state, as reported by health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakerState {
    /// Requests go to Redis.
    Closed,
    /// Redis failed repeatedly: requests fail fast without touching the network.
    Open,
    /// One probe request is testing whether Redis is back; the others still fail fast.
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant, trips: u32 },
    HalfOpen { trips: u32 },
}

/// How the breaker behaves; see `RedisManagerBuilder` for the defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerConfig {
    /// Consecutive failed operations that open the breaker.
    pub(crate) failure_threshold: u32,
    /// Wait before the first probe after opening, doubling on each failed probe up to `max`.
    pub(crate) open_backoff: Backoff,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    phase: Mutex<Phase>,
    /// Closed with no failure counted: the common case, answered without the lock.
    quiet: AtomicBool,
}

/// Leave to talk to Redis; report the outcome with [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The breaker is closed.
    Normal,
    /// The one request allowed through while half-open.
    Probe,
}

/// The operation was refused because the breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejected;

/// What became of an admitted operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Redis answered (even with an application-level error such as `WRONGTYPE`).
    Success,
    /// Redis could not serve the operation (connection, timeout, server unavailable).
    Failure,
    /// The probe was cancelled before it finished: let another one through.
    Abandoned,
}

/// What changed as a result of [`Breaker::record`], for logging and health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Opened { retry_in: Duration },
    Closed,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            phase: Mutex::new(Phase::Closed { failures: 0 }),
            quiet: AtomicBool::new(true),
        }
    }

    /// Ask to talk to Redis at `now`.
    pub(crate) fn admit(&self, now: Instant) -> Result<Admission, Rejected> {
        if self.quiet.load(Ordering::Acquire) {
            return Ok(Admission::Normal);
        }
        let mut phase = self.lock();
        match *phase {
            Phase::Closed { .. } => Ok(Admission::Normal),
            Phase::Open { until, trips } if now >= until => {
                *phase = Phase::HalfOpen { trips };
                Ok(Admission::Probe)
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => Err(Rejected),
        }
    }

    /// Report how an admitted operation went.
    pub(crate) fn record(
        &self,
        admission: Admission,
        outcome: Outcome,
        now: Instant,
    ) -> Transition {
        if admission == Admission::Normal
            && outcome == Outcome::Success
            && self.quiet.load(Ordering::Acquire)
        {
            return Transition::None;
        }
        let mut phase = self.lock();
        let transition = Self::step(&self.config, &mut phase, admission, outcome, now);
        let quiet = matches!(*phase, Phase::Closed { failures: 0 });
        self.quiet.store(quiet, Ordering::Release);
        transition
    }

    fn step(
        config: &BreakerConfig,
        phase: &mut Phase,
        admission: Admission,
        outcome: Outcome,
        now: Instant,
    ) -> Transition {
        match (*phase, admission, outcome) {
            (Phase::Closed { .. }, Admission::Normal, Outcome::Success) => {
                *phase = Phase::Closed { failures: 0 };
                Transition::None
            }
            (Phase::Closed { failures }, Admission::Normal, Outcome::Failure) => {
                let failures = failures.saturating_add(1);
                if failures >= config.failure_threshold {
                    Self::open(config, phase, 1, now)
                } else {
                    *phase = Phase::Closed { failures };
                    Transition::None
                }
            }
            (Phase::HalfOpen { .. }, Admission::Probe, Outcome::Success) => {
                *phase = Phase::Closed { failures: 0 };
                Transition::Closed
            }
            (Phase::HalfOpen { trips }, Admission::Probe, Outcome::Failure) => {
                Self::open(config, phase, trips.saturating_add(1), now)
            }
            (Phase::HalfOpen { trips }, Admission::Probe, Outcome::Abandoned) => {
                // Nobody learnt anything: let the next caller probe at once.
                *phase = Phase::Open { until: now, trips };
                Transition::None
            }
            // Late answers from operations admitted before the breaker opened, or an abandoned
            // normal operation: the probe decides, not them.
            _ => Transition::None,
        }
    }

    /// The current state (an open breaker whose back-off has elapsed says open until a probe is
    /// admitted).
    pub(crate) fn state(&self) -> BreakerState {
        match *self.lock() {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How long until a probe will be admitted; `None` when the breaker is not open.
    pub(crate) fn retry_in(&self, now: Instant) -> Option<Duration> {
        match *self.lock() {
            Phase::Open { until, .. } => Some(until.saturating_duration_since(now)),
            Phase::Closed { .. } | Phase::HalfOpen { .. } => None,
        }
    }

    fn open(config: &BreakerConfig, phase: &mut Phase, trips: u32, now: Instant) -> Transition {
        let retry_in = config.open_backoff.equal_jitter(trips.saturating_sub(1));
        *phase = Phase::Open {
            until: now + retry_in,
            trips,
        };
        Transition::Opened { retry_in }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        // The phase is a plain value that is always left consistent: a panic elsewhere while the
        // lock was held cannot corrupt it.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(400);

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failure_threshold: 3,
            open_backoff: Backoff {
                base: BASE,
                max: MAX,
            },
        })
    }

    fn fail(breaker: &Breaker, now: Instant) -> Transition {
        let admission = breaker.admit(now).expect("admitted");
        breaker.record(admission, Outcome::Failure, now)
    }

    /// Opens the breaker at `t0` and returns when the first probe is admitted.
    fn open(breaker: &Breaker, t0: Instant) -> Duration {
        fail(breaker, t0);
        fail(breaker, t0);
        match fail(breaker, t0) {
            Transition::Opened { retry_in } => retry_in,
            other => panic!("expected the breaker to open, got {other:?}"),
        }
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = breaker();
        let t0 = Instant::now();
        assert_eq!(fail(&b, t0), Transition::None);
        assert_eq!(fail(&b, t0), Transition::None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(matches!(fail(&b, t0), Transition::Opened { .. }));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(t0), Err(Rejected));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = breaker();
        let t0 = Instant::now();
        fail(&b, t0);
        fail(&b, t0);
        let admission = b.admit(t0).expect("closed");
        b.record(admission, Outcome::Success, t0);
        fail(&b, t0);
        fail(&b, t0);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn fails_fast_while_open_then_admits_exactly_one_probe() {
        let b = breaker();
        let t0 = Instant::now();
        let retry_in = open(&b, t0);
        assert!((BASE / 2..=BASE).contains(&retry_in), "{retry_in:?}");
        assert_eq!(b.retry_in(t0), Some(retry_in));
        assert_eq!(
            b.admit(t0 + retry_in - Duration::from_micros(1)),
            Err(Rejected)
        );

        let t1 = t0 + retry_in;
        assert_eq!(b.admit(t1), Ok(Admission::Probe));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(t1), Err(Rejected), "only one probe at a time");
        assert_eq!(b.retry_in(t1), None);
    }

    #[test]
    fn a_successful_probe_closes() {
        let b = breaker();
        let t0 = Instant::now();
        let t1 = t0 + open(&b, t0);
        let probe = b.admit(t1).expect("probe");
        assert_eq!(b.record(probe, Outcome::Success, t1), Transition::Closed);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(t1), Ok(Admission::Normal));
    }

    #[test]
    fn a_failed_probe_reopens_with_a_longer_backoff_up_to_the_cap() {
        let b = breaker();
        let mut now = Instant::now();
        now += open(&b, now);
        let mut ceilings = Vec::new();
        for _ in 0..5 {
            let probe = b.admit(now).expect("probe due");
            let Transition::Opened { retry_in } = b.record(probe, Outcome::Failure, now) else {
                panic!("a failed probe reopens");
            };
            assert_eq!(b.state(), BreakerState::Open);
            ceilings.push(retry_in);
            now += retry_in;
        }
        // Trips 2.. have ceilings 200 ms, 400 ms, then the 400 ms cap; equal jitter keeps each
        // delay within [ceiling / 2, ceiling].
        let expected = [200, 400, 400, 400, 400].map(Duration::from_millis);
        for (delay, ceiling) in ceilings.iter().zip(expected) {
            assert!(
                *delay >= ceiling / 2 && *delay <= ceiling,
                "{delay:?} not within {ceiling:?}"
            );
        }
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_caller_probe() {
        let b = breaker();
        let t0 = Instant::now();
        let t1 = t0 + open(&b, t0);
        let probe = b.admit(t1).expect("probe");
        b.record(probe, Outcome::Abandoned, t1);
        assert_eq!(b.admit(t1), Ok(Admission::Probe));
    }

    #[test]
    fn late_results_of_normal_operations_do_not_change_an_open_breaker() {
        let b = breaker();
        let t0 = Instant::now();
        open(&b, t0);
        assert_eq!(
            b.record(Admission::Normal, Outcome::Success, t0),
            Transition::None
        );
        assert_eq!(b.state(), BreakerState::Open);
    }
}
