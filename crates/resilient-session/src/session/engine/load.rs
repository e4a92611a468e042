//! [`Loader`]: what a session's first use reads, and what it serves, from what the cookie says
//! and what Redis answers.
//!
//! The executor asks Redis what a [`Step::Ask`] says and feeds the answer back, until the
//! loader is [`Step::Done`]. The rules, in the order a load meets them:
//!
//! 1. No cookie: a new session (or, with only an imported app's cookie, that app's session).
//! 2. A cookie this process logged out while Redis was down: over.
//! 3. A cookie with a Redis id: the hash.
//!    - Found: Redis has the session. What the cookie wrote while Redis was down is applied
//!      over it, key by key, only if its stamp is newer (see [`Stamp`](super::Stamp)) and the
//!      newest key protected it (older writes are dropped); its whole mirror too if Redis is
//!      behind the state the mirror is from (Redis lost writes it had confirmed).
//!    - Unavailable: the cookie stands in, if it may on its own (Redis confirmed it within
//!      `fallback_max_age`, the newest key protected it, the process is not failing closed);
//!      else nothing is known (detached), and the cookie is kept.
//!    - Missing: why? The tombstone and the data epoch say. A logout (revoked): over. A login
//!      this cookie predates (cycled): superseded, the cookie left alone (the browser has the
//!      login's). Moved: follow it to the successor. None, same
//!      epoch: it ended (expired, deleted). None, a new epoch (Redis lost its data): re-seeded
//!      from the cookie under a new id, if the cookie may stand in on its own. Redis
//!      unavailable for the question: Redis said "gone", so the cookie is not served
//!      (detached).
//! 4. A cookie-only session (begun while Redis was down): its own id's tombstone. None: it
//!    moves to Redis. Moved: follow. Revoked: over. Unavailable: the cookie stands in.
//!
//! Following a tombstone goes at most [`MAX_FOLLOW`] steps; a successor gone without a
//! tombstone was lost with Redis's data and is re-seeded in its turn.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Policy;
use super::answer::{GoneAnswer, HashAnswer, LegacyAnswer, Tombstone, Unavailable};
use super::state::{Basis, Cookie, Data, Known, Phase};
use crate::session::SessionId;

/// Most tombstones followed from one cookie.
pub(crate) const MAX_FOLLOW: u8 = 8;

/// What a load needs to know besides Redis's answers.
#[derive(Debug, Clone)]
pub(crate) struct LoadInput<'a> {
    /// The request's verified cookie.
    pub(crate) cookie: Option<Cookie>,
    /// The Redis key of an imported app's session, on a request without our cookie.
    pub(crate) legacy_key: Option<String>,
    /// This process holds a logout of the cookie's session that waits for Redis.
    pub(crate) revoked_here: bool,
    /// This process lost a logout it could not queue: no cookie stands in on its own.
    pub(crate) fail_closed: bool,
    pub(crate) mirrored: &'a BTreeSet<String>,
    /// The fingerprint of `mirrored`, as cookies carry it.
    pub(crate) fingerprint: u32,
    pub(crate) policy: Policy,
    pub(crate) now: i64,
}

/// A question for Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    /// The hash (`HGETALL`), refreshing its TTL to `touch` seconds in the same round trip.
    Hash { id: SessionId, touch: Option<u64> },
    /// The hash is gone: the id's tombstone, and the data epoch now.
    Gone { id: SessionId },
    /// A cookie-only session: the tombstone of its own id.
    Tombstone { id: SessionId },
    /// An imported app's session.
    Legacy { key: String },
    /// Delete a corrupt session, leaving a tombstone so no copy re-seeds it.
    Discard { id: SessionId, reason: String },
}

/// Redis's answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    Hash(HashAnswer),
    Gone(GoneAnswer),
    Tombstone(Result<Tombstone, Unavailable>),
    Legacy(LegacyAnswer),
    Discarded,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Ask(Query),
    Done(Loaded),
}

/// What the load serves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Loaded {
    pub(crate) phase: Phase,
    pub(crate) data: Data,
    /// The cookie's session is over: the response removes it.
    pub(crate) over: bool,
    /// The imported app's cookie goes.
    pub(crate) legacy_gone: bool,
    pub(crate) notes: Notes,
}

/// What happened, for counters and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Notes {
    /// The TTL was refreshed with the load.
    pub(crate) touched: bool,
    /// Served from the cookie.
    pub(crate) fallback: bool,
    /// The cookie's outage writes were older than Redis's state and dropped.
    pub(crate) stale_view: bool,
    /// Tombstones followed to a successor.
    pub(crate) followed: u8,
    pub(crate) corrupt: Option<String>,
    pub(crate) imported: bool,
    pub(crate) legacy_refused: Option<String>,
}

/// Plans one load; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Loader<'a> {
    input: LoadInput<'a>,
    /// The id whose hash or tombstone was asked for last.
    at: Option<SessionId>,
    /// Whether `at` was reached by following a tombstone.
    followed: u8,
    touched: bool,
    legacy_key: Option<String>,
}

impl<'a> Loader<'a> {
    pub(crate) fn new(mut input: LoadInput<'a>) -> Self {
        let legacy_key = input.legacy_key.take();
        Self {
            input,
            at: None,
            followed: 0,
            touched: false,
            legacy_key,
        }
    }

    /// The first step.
    pub(crate) fn start(&mut self) -> Step {
        let Some(cookie) = &self.input.cookie else {
            return match self.legacy_key.clone() {
                Some(key) => Step::Ask(Query::Legacy { key }),
                None => Step::Done(Loaded::new(Phase::New, Data::default())),
            };
        };
        if self.input.revoked_here {
            return Step::Done(Loaded::over());
        }
        let payload = &cookie.payload;
        match (&payload.id, &payload.provisional) {
            (Some(id), _) => {
                let touch = self
                    .input
                    .policy
                    .touch_due(payload.touched, self.input.now)
                    .then(|| self.ttl());
                self.ask_hash(id.clone(), touch)
            }
            (None, Some(own)) if self.trusted() => {
                self.at = Some(own.clone());
                Step::Ask(Query::Tombstone { id: own.clone() })
            }
            // Too old to stand in, of an older key, or the process failing closed: a
            // cookie-only session has nothing else to stand on.
            (None, _) => Step::Done(Loaded::over()),
        }
    }

    /// The step after `answer`.
    pub(crate) fn answer(&mut self, answer: Answer) -> Step {
        match answer {
            Answer::Hash(hash) => self.on_hash(hash),
            Answer::Gone(gone) => self.on_gone(gone),
            Answer::Tombstone(Ok(tombstone)) => self.on_own_tombstone(tombstone),
            Answer::Tombstone(Err(Unavailable)) => self.stand_in(),
            Answer::Legacy(legacy) => self.on_legacy(legacy),
            Answer::Discarded => Step::Done(Loaded::over()),
        }
    }

    fn cookie(&self) -> Option<&Cookie> {
        self.input.cookie.as_ref()
    }

    /// The cookie may stand in for Redis on its own.
    fn trusted(&self) -> bool {
        self.cookie().is_some_and(|cookie| {
            cookie.newest_key
                && !self.input.fail_closed
                && self
                    .input
                    .policy
                    .within_fallback(cookie.payload.touched, self.input.now)
        })
    }

    fn ttl(&self) -> u64 {
        let created = self.cookie().map_or(self.input.now, |c| c.payload.created);
        self.input.policy.ttl_secs(created, self.input.now)
    }

    fn ask_hash(&mut self, id: SessionId, touch: Option<u64>) -> Step {
        self.touched = touch.is_some();
        self.at = Some(id.clone());
        Step::Ask(Query::Hash { id, touch })
    }

    fn done(&self, mut loaded: Loaded) -> Step {
        loaded.notes.touched = self.touched && matches!(loaded.phase, Phase::Stored { .. });
        loaded.notes.followed = self.followed;
        Step::Done(loaded)
    }

    fn on_hash(&mut self, answer: HashAnswer) -> Step {
        let Some(id) = self.at.clone() else {
            return Step::Done(Loaded::over());
        };
        match answer {
            HashAnswer::Found(hash) => {
                let Some(cookie) = self.cookie() else {
                    return Step::Done(Loaded::over());
                };
                let payload = &cookie.payload;
                let mut data = Data {
                    values: hash.values,
                    ..Data::default()
                };
                let mut merged = None;
                let mut stale_view = false;
                if cookie.newest_key && payload.stamp() > hash.stamp {
                    // The cookie holds a state Redis has not seen: what it wrote while Redis
                    // was down wins, and its whole mirror if Redis lost writes it had
                    // confirmed to this cookie (a failover to a replica that missed them, a
                    // re-seed from an older copy).
                    let lost_writes = hash.stamp < payload.mirror_stamp();
                    if apply_view(&mut data, payload, lost_writes) {
                        merged = Some(hash.stamp);
                    }
                } else if payload.has_pending() {
                    // Not newer: what the cookie took in while Redis was down is dropped. Count
                    // it when it is not what Redis has anyway (a copy that diverged).
                    stale_view = apply_view(&mut data.clone(), payload, false);
                }
                let confirmed = if self.touched {
                    self.input.now
                } else {
                    payload.touched
                };
                let mut loaded = Loaded::new(
                    Phase::Stored {
                        id,
                        stamp: hash.stamp,
                        created: hash.created.unwrap_or(payload.created),
                        confirmed,
                        merged,
                    },
                    data,
                );
                loaded.notes.stale_view = stale_view;
                self.done(loaded)
            }
            HashAnswer::Missing if self.followed >= MAX_FOLLOW => Step::Done(Loaded::over()),
            HashAnswer::Missing => Step::Ask(Query::Gone { id }),
            HashAnswer::Corrupt(reason) => Step::Ask(Query::Discard { id, reason }),
            // Redis said "moved" and cannot show where to: the cookie is not served.
            HashAnswer::Unavailable if self.followed > 0 => Step::Done(Loaded::detached()),
            HashAnswer::Unavailable => self.stand_in(),
        }
    }

    fn on_gone(&mut self, answer: GoneAnswer) -> Step {
        let GoneAnswer::Known { tombstone, epoch } = answer else {
            // Redis said the hash is gone but not why: never serve the cookie on that.
            return Step::Done(Loaded::detached());
        };
        match tombstone {
            Tombstone::Revoked { .. } | Tombstone::Moved { id: None, .. } => {
                Step::Done(Loaded::over())
            }
            Tombstone::Cycled => Step::Done(Loaded::superseded()),
            Tombstone::Moved { id: Some(next), .. } => self.follow(next),
            Tombstone::None => {
                // A successor is only ever gone without a tombstone if Redis lost it.
                let lost = self.followed > 0
                    || self
                        .cookie()
                        .and_then(|c| c.payload.epoch.as_deref())
                        .is_some_and(|seen| seen != epoch);
                match self.at.clone() {
                    Some(from) if lost && self.trusted() => self.moving(from),
                    _ => Step::Done(Loaded::over()),
                }
            }
        }
    }

    fn on_own_tombstone(&mut self, tombstone: Tombstone) -> Step {
        match tombstone {
            Tombstone::None => match self.at.clone() {
                Some(own) => self.moving(own),
                None => Step::Done(Loaded::over()),
            },
            Tombstone::Moved { id: Some(next), .. } => self.follow(next),
            Tombstone::Moved { id: None, .. } | Tombstone::Revoked { .. } => {
                Step::Done(Loaded::over())
            }
            Tombstone::Cycled => Step::Done(Loaded::superseded()),
        }
    }

    fn follow(&mut self, next: SessionId) -> Step {
        self.followed += 1;
        if self.followed > MAX_FOLLOW {
            return Step::Done(Loaded::over());
        }
        let ttl = self.ttl();
        self.ask_hash(next, Some(ttl))
    }

    /// Redis does not have the session it should: it moves there from the cookie.
    fn moving(&self, from: SessionId) -> Step {
        let Some(cookie) = self.cookie() else {
            return Step::Done(Loaded::over());
        };
        let data = Data {
            values: cookie.payload.view(),
            ..Data::default()
        };
        let payload = &cookie.payload;
        self.done(Loaded::new(
            Phase::Moving {
                from,
                stamp: payload.stamp(),
                created: payload.created,
                confirmed: payload.touched,
                basis: Basis::Cookie,
            },
            data,
        ))
    }

    /// Redis is unavailable: the cookie stands in if it may, else nothing is known.
    fn stand_in(&self) -> Step {
        match self.cookie() {
            Some(cookie) if self.trusted() => {
                let payload = &cookie.payload;
                let known = if payload.id.is_none() && !payload.incomplete && !payload.partial {
                    // A cookie-only session is all in its cookie, unless some did not fit.
                    Known::All
                } else {
                    // The mirrored keys are all there, or known absent, unless the mirror was
                    // cut or the cookie mirrors other keys than are mirrored now; then only what
                    // it carries is known.
                    let mut keys: BTreeSet<String> =
                        if payload.incomplete || payload.mirrored != self.input.fingerprint {
                            payload.mirror.keys().cloned().collect()
                        } else {
                            self.input.mirrored.clone()
                        };
                    keys.extend(payload.data.keys().cloned());
                    keys.extend(payload.removed.iter().cloned());
                    Known::Only(keys)
                };
                let data = Data {
                    values: payload.view(),
                    known,
                    ..Data::default()
                };
                let mut loaded = Loaded::new(Phase::Fallback, data);
                loaded.notes.fallback = true;
                self.done(loaded)
            }
            _ => Step::Done(Loaded::detached()),
        }
    }

    fn on_legacy(&self, answer: LegacyAnswer) -> Step {
        let Some(old_key) = self.legacy_key.clone() else {
            return Step::Done(Loaded::new(Phase::New, Data::default()));
        };
        let mut loaded = match answer {
            LegacyAnswer::Found { values, deadline } if !values.is_empty() => {
                let created = self.input.policy.imported_created(self.input.now, deadline);
                let data = Data {
                    values,
                    ..Data::default()
                };
                let mut loaded = Loaded::new(Phase::Imported { old_key, created }, data);
                loaded.notes.imported = true;
                loaded
            }
            LegacyAnswer::Found { .. } | LegacyAnswer::Missing => {
                Loaded::new(Phase::New, Data::default())
            }
            LegacyAnswer::Refused(reason) => {
                let mut loaded = Loaded::new(Phase::New, Data::default());
                loaded.notes.legacy_refused = Some(reason);
                loaded
            }
            // Nothing moves: a later request imports it. Its cookie stays.
            LegacyAnswer::Unavailable => return Step::Done(Loaded::detached()),
        };
        loaded.legacy_gone = true;
        Step::Done(loaded)
    }
}

/// Applies what the cookie wrote while Redis was down over the values Redis has; with
/// `whole_mirror`, every mirrored value it carries too (else they are only what Redis had when
/// it last saw the cookie, and may be older than what it has now). `true` if anything differs
/// (and is to be written).
fn apply_view(data: &mut Data, payload: &crate::cookie::Payload, whole_mirror: bool) -> bool {
    let mut changes: Vec<(String, Option<Value>)> = Vec::new();
    let written = payload
        .mirror
        .iter()
        .filter(|(key, _)| whole_mirror || payload.written.contains(key))
        .chain(payload.data.iter());
    for (key, value) in written {
        if data.values.get(key) != Some(value) {
            changes.push((key.clone(), Some(value.clone())));
        }
    }
    for key in &payload.removed {
        if data.values.contains_key(key) {
            changes.push((key.clone(), None));
        }
    }
    for (key, value) in &changes {
        match value {
            Some(value) => data.values.insert(key.clone(), value.clone()),
            None => data.values.remove(key),
        };
        data.merged.insert(key.clone());
    }
    !changes.is_empty()
}

impl Loaded {
    fn new(phase: Phase, data: Data) -> Self {
        Self {
            phase,
            data,
            over: false,
            legacy_gone: false,
            notes: Notes::default(),
        }
    }

    /// The cookie's session is over: a fresh one, and the cookie goes.
    fn over() -> Self {
        let mut loaded = Self::new(Phase::New, Data::default());
        loaded.over = true;
        loaded
    }

    /// The cookie predates a login: nothing served, the cookie left alone.
    fn superseded() -> Self {
        Self::new(Phase::Superseded, Data::default())
    }

    /// Nothing can be known now; the cookie stays for when Redis is back.
    fn detached() -> Self {
        Self::new(
            Phase::Detached,
            Data {
                known: Known::Only(BTreeSet::new()),
                ..Data::default()
            },
        )
    }
}
