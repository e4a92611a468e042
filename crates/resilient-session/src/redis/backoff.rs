//! Exponential backoff with jitter, shared by command retries, the circuit breaker and the
//! reconnect loop.

use std::time::Duration;

/// `base × 2^attempt`, capped at `max`, randomised so that many clients that failed together do
/// not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The un-jittered delay before retry number `attempt` (0-based).
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// "Full jitter": uniform in `[0, ceiling]`. Best spread, used for command retries.
    pub(crate) fn full_jitter(&self, attempt: u32) -> Duration {
        random_up_to(self.ceiling(attempt))
    }

    /// "Equal jitter": uniform in `[ceiling / 2, ceiling]`. Never near zero, used where a wait
    /// must really be a wait (breaker re-probes, reconnects).
    pub(crate) fn equal_jitter(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        ceiling / 2 + random_up_to(ceiling - ceiling / 2)
    }
}

/// Uniform in `[0, limit]` at microsecond resolution. Jitter needs no cryptographic quality; if the
/// OS generator fails the un-jittered limit is used.
fn random_up_to(limit: Duration) -> Duration {
    let micros = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
    if micros == 0 {
        return Duration::ZERO;
    }
    let random = getrandom::u64().unwrap_or(u64::MAX);
    Duration::from_micros(random % (micros.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        assert_eq!(BACKOFF.ceiling(0), Duration::from_millis(100));
        assert_eq!(BACKOFF.ceiling(1), Duration::from_millis(200));
        assert_eq!(BACKOFF.ceiling(3), Duration::from_millis(800));
        assert_eq!(BACKOFF.ceiling(4), Duration::from_secs(1));
        assert_eq!(BACKOFF.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_in_its_range_and_varies() {
        let full: Vec<_> = (0..200).map(|_| BACKOFF.full_jitter(2)).collect();
        assert!(full.iter().all(|d| *d <= Duration::from_millis(400)));
        let equal: Vec<_> = (0..200).map(|_| BACKOFF.equal_jitter(2)).collect();
        assert!(
            equal
                .iter()
                .all(|d| *d >= Duration::from_millis(200) && *d <= Duration::from_millis(400))
        );
        assert!(full.iter().any(|d| *d != full[0]), "full jitter is random");
        assert!(
            equal.iter().any(|d| *d != equal[0]),
            "equal jitter is random"
        );
    }
}
