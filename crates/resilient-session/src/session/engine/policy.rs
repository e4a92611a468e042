//! [`Policy`]: the time rules of sessions, from the configuration, with `now` passed in.

use std::time::Duration;

use crate::SessionConfig;

/// How far ahead of this process's clock another instance's may be: a cookie confirmed up to
/// this far in the future is accepted, and a tombstone lives this much longer than the fallback
/// window, so that no clock of a fleet outlives it.
pub(crate) const MAX_CLOCK_SKEW: i64 = 300;

/// The lifetimes and windows of [`SessionConfig`], in whole seconds. Every rule takes `now`
/// (unix seconds) as a parameter and saturates rather than overflows: cookie times come from
/// outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    idle: i64,
    absolute: i64,
    touch_interval: i64,
    /// `None`: fail closed, a cookie never stands in for Redis.
    fallback: Option<Fallback>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fallback {
    /// How long after Redis last confirmed it a cookie may stand in for it.
    max_age: i64,
    /// How long a "revoked" or "cycled" tombstone lives: the fallback window, rounded up, plus
    /// the clock skew a cookie may carry.
    tombstone: u64,
}

impl Policy {
    pub(crate) fn new(config: &SessionConfig) -> Self {
        let fallback = (!config.fallback_max_age.is_zero()).then(|| {
            let max_age = seconds(config.fallback_max_age);
            let rounded_up =
                max_age.saturating_add(i64::from(config.fallback_max_age.subsec_nanos() > 0));
            Fallback {
                max_age,
                tombstone: u64::try_from(rounded_up.saturating_add(MAX_CLOCK_SKEW))
                    .unwrap_or(u64::MAX),
            }
        });
        Self {
            idle: seconds(config.idle_timeout),
            absolute: seconds(config.absolute_lifetime),
            touch_interval: seconds(config.touch_interval),
            fallback,
        }
    }

    /// Past its absolute lifetime or idle timeout, or confirmed further in the future than any
    /// clock of the fleet can be. Times are whole seconds, so "past" means by more than a
    /// second: never early. (Redis expires the data itself on time.)
    pub(crate) fn expired(&self, created: i64, touched: i64, now: i64) -> bool {
        let ahead = now.saturating_add(MAX_CLOCK_SKEW);
        now > created.saturating_add(self.absolute)
            || now > touched.saturating_add(self.idle)
            || created > ahead
            || touched > ahead
    }

    /// A touch is due when Redis last confirmed the session a touch interval ago or more.
    pub(crate) fn touch_due(&self, touched: i64, now: i64) -> bool {
        now.saturating_sub(touched) >= self.touch_interval
    }

    /// From a cookie's unverified clear-text touched time: whether a touch may be due or the
    /// cookie may have expired (or the hint is nonsense). Either way it is worth verifying.
    pub(crate) fn worth_verifying(&self, hint: i64, now: i64) -> bool {
        self.touch_due(hint, now) || hint > now
    }

    /// The cookie may stand in for Redis: Redis confirmed it within the fallback max age.
    pub(crate) fn within_fallback(&self, touched: i64, now: i64) -> bool {
        self.fallback
            .is_some_and(|fallback| now.saturating_sub(touched) <= fallback.max_age)
    }

    /// The idle timeout, in seconds: the TTL a touch sets.
    pub(crate) fn idle_secs(&self) -> u64 {
        u64::try_from(self.idle).unwrap_or(u64::MAX)
    }

    /// When a session created at `created` ends at the latest, touched or not (unix seconds).
    pub(crate) fn deadline(&self, created: i64) -> i64 {
        created.saturating_add(self.absolute)
    }

    /// Seconds the session has left: the idle timeout, cut short by the absolute lifetime. At
    /// least one.
    pub(crate) fn ttl_secs(&self, created: i64, now: i64) -> u64 {
        let absolute_left = created.saturating_add(self.absolute).saturating_sub(now);
        u64::try_from(self.idle.min(absolute_left).max(1)).unwrap_or(1)
    }

    /// How long a "revoked" or "cycled" tombstone lives: as long as a copy of the cookie could
    /// be honoured on its own, clock skew included. `None` when nothing ever is (fail closed):
    /// then no tombstone is needed.
    pub(crate) fn tombstone_secs(&self) -> Option<u64> {
        self.fallback.map(|fallback| fallback.tombstone)
    }

    /// How long a "moved" tombstone lives: as long as any copy of the old cookie may come back
    /// and must find its way to the successor (or end with it), that is the old session's
    /// whole remaining life, and never less than another tombstone.
    pub(crate) fn moved_tombstone_secs(&self, created: i64, now: i64) -> Option<u64> {
        let tombstone = self.tombstone_secs()?;
        Some(self.ttl_secs(created, now).max(tombstone))
    }

    /// When a logout queued while Redis is down stops mattering: once no copy of the cookie can
    /// be honoured any more, by Redis or on its own. A cookie-only session is only ever honoured
    /// on its own; a stored one as long as its hash may live.
    pub(crate) fn revocation_matters_until(&self, created: i64, touched: i64, stored: bool) -> i64 {
        let fallback_end = touched
            .saturating_add(self.fallback.map_or(0, |fallback| fallback.max_age))
            .saturating_add(MAX_CLOCK_SKEW);
        if stored {
            created
                .saturating_add(self.absolute)
                .saturating_add(MAX_CLOCK_SKEW)
                .max(fallback_end)
        } else {
            fallback_end
        }
    }

    /// The `created` time of a session imported from another app whose own session would have
    /// ended at `old_deadline`: the import keeps that deadline rather than start a new absolute
    /// lifetime.
    pub(crate) fn imported_created(&self, now: i64, old_deadline: Option<i64>) -> i64 {
        old_deadline.map_or(now, |deadline| {
            now.min(deadline.saturating_sub(self.absolute))
        })
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyRing;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 24 * 3600;

    fn policy(tweak: impl FnOnce(SessionConfig) -> SessionConfig) -> Policy {
        Policy::new(&tweak(SessionConfig::new(
            KeyRing::from_secret("p".repeat(32)).expect("valid"),
        )))
    }

    fn defaults() -> Policy {
        policy(|c| c)
    }

    #[test]
    fn expiry() {
        let p = defaults();
        // (created, touched, expired?)
        let rows = [
            (NOW, NOW, false),
            (NOW - 30 * DAY, NOW, false),
            (NOW - 30 * DAY - 1, NOW, true),
            (NOW, NOW - 7 * DAY, false),
            (NOW, NOW - 7 * DAY - 1, true),
            (NOW + MAX_CLOCK_SKEW, NOW + MAX_CLOCK_SKEW, false),
            (NOW, NOW + MAX_CLOCK_SKEW + 1, true),
            (NOW + MAX_CLOCK_SKEW + 1, NOW, true),
            (i64::MIN, NOW, true),
            (NOW, i64::MIN, true),
            (i64::MAX, i64::MAX, true),
        ];
        for (created, touched, expired) in rows {
            assert_eq!(
                p.expired(created, touched, NOW),
                expired,
                "created {created}, touched {touched}"
            );
        }
    }

    #[test]
    fn touches_are_due_once_per_interval_and_nonsense_hints_are_verified() {
        let p = defaults();
        assert!(!p.touch_due(NOW - 299, NOW));
        assert!(p.touch_due(NOW - 300, NOW));
        assert!(!p.worth_verifying(NOW - 1, NOW));
        assert!(p.worth_verifying(NOW + 1, NOW), "from the future");
        // The clear-text hint is anything a client sends: no overflow.
        assert!(p.worth_verifying(i64::MIN, NOW));
        assert!(p.worth_verifying(i64::MAX, NOW));
        assert!(p.touch_due(i64::MIN, i64::MAX));
        assert!(!p.touch_due(i64::MAX, i64::MIN));
    }

    #[test]
    fn the_fallback_window() {
        let p = defaults();
        assert!(p.within_fallback(NOW - 3600, NOW));
        assert!(!p.within_fallback(NOW - 3601, NOW));
        assert!(
            p.within_fallback(NOW + MAX_CLOCK_SKEW, NOW),
            "skewed clocks"
        );
        assert!(!p.within_fallback(i64::MIN, NOW));
        let closed = policy(|c| c.fallback_max_age(Duration::ZERO));
        assert!(!closed.within_fallback(NOW, NOW), "fail closed");
        assert_eq!(closed.tombstone_secs(), None);
        assert_eq!(closed.moved_tombstone_secs(NOW, NOW), None);
    }

    #[test]
    fn tombstones_outlive_every_cookie_that_could_stand_in() {
        let p = defaults();
        assert_eq!(p.tombstone_secs(), Some(3600 + 300));
        // A sub-second window still needs tombstones, rounded up.
        let tiny = policy(|c| c.fallback_max_age(Duration::from_millis(500)));
        assert_eq!(tiny.tombstone_secs(), Some(1 + 300));
        assert!(tiny.within_fallback(NOW, NOW));
        let odd = policy(|c| c.fallback_max_age(Duration::from_millis(1500)));
        assert_eq!(odd.tombstone_secs(), Some(2 + 300));
        // A "moved" tombstone lives as long as the old session could.
        assert_eq!(p.moved_tombstone_secs(NOW, NOW), Some(7 * DAY as u64));
        assert_eq!(
            p.moved_tombstone_secs(NOW - 30 * DAY + 10, NOW),
            Some(3600 + 300),
            "never shorter than the others"
        );
    }

    #[test]
    fn ttls_are_cut_by_the_absolute_lifetime() {
        let p = defaults();
        assert_eq!(p.ttl_secs(NOW, NOW), 7 * DAY as u64);
        assert_eq!(p.ttl_secs(NOW - 30 * DAY + 60, NOW), 60);
        assert_eq!(p.ttl_secs(NOW - 31 * DAY, NOW), 1, "at least one second");
        assert_eq!(p.ttl_secs(i64::MIN, NOW), 1);
        assert_eq!(p.ttl_secs(i64::MAX, NOW), 7 * DAY as u64);
    }

    #[test]
    fn queued_logouts_matter_while_a_copy_could_be_honoured() {
        let p = defaults();
        assert_eq!(
            p.revocation_matters_until(NOW, NOW, false),
            NOW + 3600 + MAX_CLOCK_SKEW
        );
        assert_eq!(
            p.revocation_matters_until(NOW, NOW, true),
            NOW + 30 * DAY + MAX_CLOCK_SKEW
        );
        let closed = policy(|c| c.fallback_max_age(Duration::ZERO));
        assert_eq!(
            closed.revocation_matters_until(NOW, NOW, false),
            NOW + MAX_CLOCK_SKEW
        );
        assert_eq!(
            p.revocation_matters_until(i64::MAX, i64::MAX, true),
            i64::MAX
        );
    }

    #[test]
    fn an_import_keeps_the_old_deadline() {
        let p = defaults();
        assert_eq!(p.imported_created(NOW, None), NOW);
        assert_eq!(
            p.imported_created(NOW, Some(NOW + DAY)),
            NOW + DAY - 30 * DAY
        );
        assert_eq!(
            p.imported_created(NOW, Some(NOW + 60 * DAY)),
            NOW,
            "never a longer life than ours"
        );
        assert_eq!(p.imported_created(NOW, Some(i64::MIN)), i64::MIN);
    }
}
