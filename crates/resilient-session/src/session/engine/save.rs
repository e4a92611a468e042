//! What the end of a request (or [`Session::save`](crate::Session::save)) does: [`plan`] it,
//! then, after the executor ran the Redis part, [`after_write`] / [`after_recheck`] /
//! [`after_touch`] / [`ended`].
//!
//! | the session | Redis | then |
//! | --- | --- | --- |
//! | logged out (`destroy`), or emptied | any | revoke its id (and an imported app's key); queued if Redis is down |
//! | not used | - | touch it when due (`EXPIRE`, and read the stamp) and re-issue the cookie if Redis is at its stamp; else (another tab wrote, outage writes Redis lacks, an older key) read it as a request that uses it would |
//! | read, not changed | - | re-issue the cookie if what it should hold changed (touched, stamp, mirror, an outage view dropped, an older key) |
//! | changed, stored | up | the changed fields (and the merged view, guarded by its stamp), one script; writes it had not seen come back with the mirror |
//! | login (`cycle_id`) | up | the old session copied as Redis has it then, and the changes, under a new id; the old one goes, its tombstone says "cycled" |
//! | moving (re-seeded, promoted) | up | everything under a new id, claiming the old one ("moved", naming the successor) |
//! | imported | up | a new session; the old app's key goes in the same script |
//! | gone while the request ran | up | why? Logged out: over. A login: superseded. Redis lost it: moved, from what this request has, under the rules of a load. Moved by another copy: into the cookie |
//! | changed | down (at load, or at the write) | into the cookie: the mirror, and the keys written since Redis had them (`w`, `d`, `x`), one more outage write on the stamp; the rest of the request goes on from that cookie |
//! | login | down | into the cookie under a new identity of its own (its fallback window the old one's); the old one is revoked |
//! | detached (nothing known), superseded | any | changes are not kept ([`Problem`]) unless it is a login |

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::answer::{GoneAnswer, Tombstone, Written};
use super::state::{Basis, Data, Intent, Known, Legacy, Phase, State};
use super::{Policy, Stamp};
use crate::cookie::Payload;
use crate::session::SessionId;

/// How long a "cycled" tombstone lives when tombstones are otherwise off (`fallback_max_age`
/// zero): long enough for a retried login to recognise its own.
const RETRY_MARK_SECS: u64 = 60;

/// What the planners need besides the state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) policy: Policy,
    pub(crate) mirrored: &'a BTreeSet<String>,
    /// The fingerprint of `mirrored`, as cookies carry it.
    pub(crate) fingerprint: u32,
    pub(crate) now: i64,
}

/// The Redis part of persisting, or none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// Nothing for Redis.
    Local(Local),
    /// Refresh the idle timeout of a session the handler did not use.
    Touch {
        id: SessionId,
        ttl: u64,
    },
    /// Read the session the handler did not use, as a request that uses it would (its load
    /// touches it), then plan the end of the request again: its cookie is re-issued from what
    /// Redis has, which a touch alone cannot do.
    Read,
    Write(Write),
    /// Log out.
    End(End),
}

/// What is left to do without Redis.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Local {
    /// The cookie to send (the executor adds the data epoch and fits it in 4096 bytes).
    pub(crate) issue: Option<Payload>,
    /// An identity given up: revoke it (queued until Redis has it).
    pub(crate) revoke: Option<SessionId>,
    pub(crate) problem: Option<Problem>,
    /// The changes went into the cookie: Redis was unavailable.
    pub(crate) fallback_write: bool,
    /// An imported app's key to delete once Redis is available.
    pub(crate) retire: Option<String>,
    /// A cookie's outage writes were found older than Redis's state, and dropped.
    pub(crate) stale: bool,
}

impl Local {
    /// Nothing done: no id could be made.
    pub(crate) fn failed() -> Self {
        Self {
            problem: Some(Problem::NoRandomness),
            ..Self::default()
        }
    }

    fn problem(problem: Problem) -> Self {
        Self {
            problem: Some(problem),
            ..Self::default()
        }
    }
}

/// What a handler that asks ([`Session::save`](crate::Session::save)) is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Redis is unavailable and the cookie could not stand in: the changes are not kept.
    FallbackExpired,
    /// The cookie predates a login made in another request: the changes are not kept.
    Superseded,
    /// The OS random number generator failed: nothing was done.
    NoRandomness,
}

/// One save script run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Write {
    pub(crate) id: SessionId,
    /// A new hash; else only if it still exists.
    pub(crate) create: bool,
    /// Field/JSON pairs and fields to delete: the handler's changes, or everything.
    pub(crate) set: Vec<(String, String)>,
    pub(crate) delete: Vec<String>,
    /// The cookie's view merged over the hash: written only if the hash is still at `expected`.
    pub(crate) guarded: Option<Guarded>,
    /// The new stamp is above this (the stamp of the cookie's view).
    pub(crate) floor: Stamp,
    /// The exact stamp of a session that moves from its cookie.
    pub(crate) stamp: Option<Stamp>,
    /// The stamp the request loaded (an update): the script says when it finds another, and
    /// answers the mirrored keys as they are then.
    pub(crate) loaded: Option<Stamp>,
    pub(crate) ttl: u64,
    pub(crate) created: i64,
    pub(crate) predecessor: Option<Predecessor>,
    /// An identity this one replaces without Redis having had it in this request (a login on a
    /// session that could not be read): revoked once this is written.
    pub(crate) supersedes: Option<SessionId>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Guarded {
    /// The hash's stamp the view was merged against.
    pub(crate) expected: Stamp,
    /// The view's own stamp: a save of the view alone leaves the hash there (see
    /// `scripts/save.lua`), so that a newer copy of the same cookie still wins over it.
    pub(crate) view: Stamp,
    pub(crate) set: Vec<(String, String)>,
    pub(crate) delete: Vec<String>,
}

/// What a new hash replaces, in the same script.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Predecessor {
    /// A login: the old hash is copied (then the write's fields over it; not when the login
    /// cleared the session, then it is the write alone) and goes, its tombstone says "cycled";
    /// if a logout took it meanwhile, nothing is written.
    Cycle {
        old: SessionId,
        tombstone_secs: u64,
        copy: bool,
    },
    /// A move: the old id is claimed with a tombstone (followable: "moved", naming the new id;
    /// or, on a login, "cycled"), unless another request claimed it first.
    Claim {
        old: SessionId,
        followable: bool,
        tombstone_secs: u64,
    },
    /// An import: the old app's key goes.
    Retire { key: String },
}

/// A logout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct End {
    /// The id to revoke (`DEL` and a "revoked" tombstone, following "moved" ones).
    pub(crate) revoke: Option<SessionId>,
    /// An imported app's key to delete.
    pub(crate) retire: Option<String>,
}

/// What follows a save script.
// Returned once per save and matched at once: boxing the common variant would cost an
// allocation per write for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum After {
    Local(Local),
    /// The session was gone when the save came: ask why ([`after_recheck`]).
    Recheck(SessionId),
}

/// Plans the end of a request for `state`. `revoked_here`: the cookie's session waits in this
/// process's logout queue (then it is not touched). `legacy_key`: the imported app's key the
/// request's old cookie stands for. `new_id` makes ids (random in the executor).
pub(crate) fn plan(
    state: &mut State,
    ctx: Ctx<'_>,
    revoked_here: bool,
    legacy_key: Option<String>,
    new_id: &mut dyn FnMut() -> SessionId,
) -> Plan {
    if state.intent == Intent::Destroy {
        return plan_end(state, legacy_key);
    }
    let unkept = match &state.phase {
        Phase::Ended => return Plan::Local(Local::default()),
        Phase::Unloaded => return plan_unread(state, ctx, revoked_here),
        Phase::Detached => Some(Problem::FallbackExpired),
        Phase::Superseded => Some(Problem::Superseded),
        _ => None,
    };
    if let Some(problem) = unkept
        && state.intent != Intent::Cycle
    {
        if state.data.is_dirty() {
            state.data.changed.clear();
            return Plan::Local(Local::problem(problem));
        }
        return Plan::Local(Local::default());
    }
    let must_move = matches!(state.phase, Phase::Moving { .. } | Phase::Imported { .. });
    let dirty = state.data.is_dirty() || state.intent == Intent::Cycle || must_move;
    if state.data.is_known_empty() && dirty {
        // An empty session is no session.
        return match state.phase {
            Phase::New | Phase::Superseded => Plan::Local(Local::default()),
            _ => plan_end(state, legacy_key),
        };
    }
    if !dirty {
        return Plan::Local(Local {
            issue: refreshed(state, ctx),
            ..Local::default()
        });
    }
    match state.phase {
        Phase::Fallback => Plan::Local(to_cookie(state, ctx, new_id)),
        _ => Plan::Write(write(state, ctx, new_id)),
    }
}

/// A logout: what to revoke.
fn plan_end(state: &mut State, legacy_key: Option<String>) -> Plan {
    let revoke = match &state.phase {
        Phase::Stored { id, .. } => Some(id.clone()),
        Phase::Moving { from, .. } => Some(from.clone()),
        _ => state
            .valid_cookie()
            .and_then(|cookie| cookie.payload.revocable_id().cloned()),
    };
    let retire = match &state.phase {
        Phase::Imported { old_key, .. } => Some(old_key.clone()),
        _ => legacy_key,
    };
    if revoke.is_none() && retire.is_none() {
        ended(state);
        return Plan::Local(Local::default());
    }
    Plan::End(End { revoke, retire })
}

/// The session is logged out: no data, the cookie (and an imported app's) removed.
pub(crate) fn ended(state: &mut State) {
    if state.legacy != Legacy::None || matches!(state.phase, Phase::Imported { .. }) {
        state.legacy = Legacy::Remove;
    }
    state.end(Phase::Ended);
}

/// The handler did not use the session: a touch, when due. A cookie a touch could not
/// re-issue (one of an older key, or with writes Redis does not have yet) is read instead, so
/// that the next request does not touch again.
fn plan_unread(state: &State, ctx: Ctx<'_>, revoked_here: bool) -> Plan {
    if let Some(cookie) = state.valid_cookie() {
        let payload = &cookie.payload;
        if let Some(id) = &payload.id
            && ctx.policy.touch_due(payload.touched, ctx.now)
            && !revoked_here
        {
            if !cookie.newest_key || payload.has_pending() {
                return Plan::Read;
            }
            return Plan::Touch {
                id: id.clone(),
                ttl: ctx.policy.ttl_secs(payload.created, ctx.now),
            };
        }
    }
    Plan::Local(Local::default())
}

/// After a touch of an unused session: the hash's stamp, `None` if it was not there (or
/// Redis unavailable: the next request that reads it decides). The cookie is re-issued with
/// the new time only when Redis is where the cookie thinks: a touch says nothing of the values,
/// and a cookie whose mirror Redis has moved past (another tab wrote) must not have that mirror
/// vouched for anew; it is read instead ([`Plan::Read`]), and re-issued from what Redis has.
pub(crate) fn after_touch(state: &State, touched: Option<Stamp>, ctx: Ctx<'_>) -> Plan {
    let (Some(cookie), Some(stamp)) = (state.valid_cookie(), touched) else {
        return Plan::Local(Local::default());
    };
    if !cookie.newest_key || stamp != cookie.payload.stamp() {
        return Plan::Read;
    }
    let mut payload = Payload::clone(&cookie.payload);
    payload.touched = ctx.now;
    Plan::Local(Local {
        issue: Some(payload),
        ..Local::default()
    })
}

/// The cookie a stored session's client should hold now: nothing but what Redis has.
fn stored_payload(
    id: &SessionId,
    created: i64,
    confirmed: i64,
    stamp: Stamp,
    data: &Data,
    ctx: Ctx<'_>,
) -> Payload {
    let mut payload = Payload::new(Some(id.clone()), confirmed);
    payload.created = created;
    payload.set_stamp(stamp);
    payload.mirror = mirror_of(&data.values, ctx.mirrored);
    payload.mirrored = ctx.fingerprint;
    payload
}

/// Read and not changed: the cookie again when what it should hold changed (a touch at load,
/// another stamp, another mirror, a followed successor, an outage view dropped, an older key).
fn refreshed(state: &State, ctx: Ctx<'_>) -> Option<Payload> {
    let Phase::Stored {
        id,
        stamp,
        created,
        confirmed,
        ..
    } = &state.phase
    else {
        return None;
    };
    let cookie = state.valid_cookie()?;
    let current = &cookie.payload;
    // What `stored_payload` would make, compared without making it: most reads re-issue
    // nothing.
    let same = cookie.newest_key
        && current.id.as_ref() == Some(id)
        && current.touched == *confirmed
        && current.created == *created
        && current.stamp() == *stamp
        && current.mirror_stamp() == *stamp
        && current.provisional.is_none()
        && !current.has_pending()
        // A mirror that did not fit stays out until the next write.
        && (current.incomplete
            || current.mirrored == ctx.fingerprint
                && mirrors(&current.mirror, &state.data.values, ctx.mirrored));
    (!same).then(|| stored_payload(id, *created, *confirmed, *stamp, &state.data, ctx))
}

/// Whether `mirror` is [`mirror_of`] `values`.
fn mirrors(
    mirror: &Map<String, Value>,
    values: &Map<String, Value>,
    keys: &BTreeSet<String>,
) -> bool {
    let mut present = 0;
    let same = keys.iter().all(|key| {
        let value = values.get(key);
        present += usize::from(value.is_some());
        mirror.get(key) == value
    });
    same && mirror.len() == present
}

/// The save script for a dirty session whose Redis part can be tried.
fn write(state: &State, ctx: Ctx<'_>, new_id: &mut dyn FnMut() -> SessionId) -> Write {
    let cookie = state.valid_cookie();
    let created = match &state.phase {
        Phase::Stored { created, .. }
        | Phase::Moving { created, .. }
        | Phase::Imported { created, .. } => *created,
        _ => cookie.map_or(ctx.now, |c| c.payload.created),
    };
    let everything = || -> Vec<(String, String)> {
        state
            .data
            .values
            .iter()
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect()
    };
    let login = state.intent == Intent::Cycle;
    // An update keeps its id; anything else is written under a new one.
    let id = match &state.phase {
        Phase::Stored { id, .. } if !login => id.clone(),
        _ => new_id(),
    };
    let mut write = Write {
        id,
        create: true,
        set: Vec::new(),
        delete: Vec::new(),
        guarded: None,
        floor: Stamp::default(),
        stamp: None,
        loaded: None,
        ttl: ctx.policy.ttl_secs(created, ctx.now),
        created,
        predecessor: None,
        supersedes: None,
    };
    match &state.phase {
        Phase::Stored { stamp, merged, .. } if !login => {
            write.create = false;
            (write.set, write.delete) = changes(&state.data.values, &state.data.changed);
            // Only a cookie of the newest key had its view merged, and only then is its
            // stamp one to be above.
            let view = cookie.filter(|c| c.newest_key).map(|c| c.payload.stamp());
            write.guarded = merged.map(|expected| {
                let (set, delete) = changes(&state.data.values, &state.data.merged);
                Guarded {
                    expected,
                    view: view.unwrap_or(expected),
                    set,
                    delete,
                }
            });
            write.floor = view.unwrap_or_default();
            write.loaded = Some(*stamp);
        }
        Phase::Stored {
            id, stamp, merged, ..
        } => {
            // The script copies the old session as it is then (a write that landed after this
            // request's load included), and this request's changes go over it; a view merged
            // at load only if the old session is still where it was merged, as in an update.
            // A login that cleared the session copies nothing: what a copy of the pre-login
            // cookie wrote meanwhile does not ride into the new session.
            let copy = !state.data.cleared;
            if copy {
                (write.set, write.delete) = changes(&state.data.values, &state.data.changed);
                write.guarded = merged.map(|expected| {
                    let (set, delete) = changes(&state.data.values, &state.data.merged);
                    Guarded {
                        expected,
                        view: expected,
                        set,
                        delete,
                    }
                });
                write.loaded = Some(*stamp);
            } else {
                write.set = everything();
            }
            write.predecessor = Some(Predecessor::Cycle {
                old: id.clone(),
                tombstone_secs: ctx.policy.tombstone_secs().unwrap_or(RETRY_MARK_SECS),
                copy,
            });
        }
        Phase::Moving { from, stamp, .. } => {
            write.set = everything();
            let tombstone_secs = if login {
                ctx.policy.tombstone_secs()
            } else {
                ctx.policy.moved_tombstone_secs(created, ctx.now)
            };
            // Tombstones are off only when nothing moves from a cookie (fail closed).
            if let Some(tombstone_secs) = tombstone_secs {
                write.predecessor = Some(Predecessor::Claim {
                    old: from.clone(),
                    followable: !login,
                    tombstone_secs,
                });
            }
            // A login starts a history of its own; a move continues the cookie's.
            write.stamp = (!login).then_some(*stamp);
        }
        Phase::Imported { old_key, .. } => {
            write.set = everything();
            write.predecessor = Some(Predecessor::Retire {
                key: old_key.clone(),
            });
        }
        // New, or a login on a session nothing could be read of (its old identity goes).
        _ => {
            write.set = everything();
            if state.phase == Phase::Detached {
                write.supersedes = cookie.and_then(|c| c.payload.revocable_id().cloned());
            }
        }
    }
    write
}

/// The `(set, delete)` of `keys`: JSON of those with a value, the others.
fn changes(
    values: &Map<String, Value>,
    keys: &BTreeSet<String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut set = Vec::new();
    let mut delete = Vec::new();
    for key in keys {
        match values.get(key) {
            Some(value) => set.push((key.clone(), value.to_string())),
            None => delete.push(key.clone()),
        }
    }
    (set, delete)
}

/// After the save script: the state, and the cookie; or a question first.
pub(crate) fn after_write(
    state: &mut State,
    write: &Write,
    written: Written,
    ctx: Ctx<'_>,
    new_id: &mut dyn FnMut() -> SessionId,
) -> After {
    let local = match written {
        Written::Yes(stamp) => stored(state, write, stamp, false, ctx),
        Written::MovedOn { stamp, mirror } => {
            // Another request wrote in between: the cookie takes the mirror as Redis has it
            // now, and a view merged at load (found outdated by the script) is dropped.
            for (key, value) in mirror {
                match value {
                    Some(value) => state.data.values.insert(key, value),
                    None => state.data.values.remove(&key),
                };
            }
            let stale = !state.data.merged.is_empty();
            stored(state, write, stamp, stale, ctx)
        }
        // Another copy of the cookie moved the session first: this request's changes ride in
        // the cookie, whose next request follows the move and merges them (its stamp is newer).
        Written::Taken(Tombstone::Moved { .. }) => to_cookie(state, ctx, new_id),
        Written::Taken(Tombstone::Cycled) => superseded(state),
        Written::Taken(_) => {
            state.end(Phase::Ended);
            Local::default()
        }
        // Gone while the request ran: a logout, a login, or Redis lost it. Ask.
        Written::Gone => {
            let asked = match (&write.predecessor, &state.phase) {
                (Some(Predecessor::Cycle { old, .. }), _) => Some(old.clone()),
                (None, Phase::Stored { id, .. }) if !write.create => Some(id.clone()),
                _ => None,
            };
            return match asked {
                Some(id) => After::Recheck(id),
                // A retried create of a session that ended since: it does not come back.
                None => {
                    state.end(Phase::Ended);
                    After::Local(Local::default())
                }
            };
        }
        Written::Failed => {
            let mut local = to_cookie(state, ctx, new_id);
            if let Some(Predecessor::Retire { key }) = &write.predecessor {
                // The imported session rides in a cookie-only session of ours; the old app's
                // key goes once Redis is back, so that no copy of its cookie imports it again.
                local.retire = Some(key.clone());
            }
            local
        }
    };
    After::Local(local)
}

/// Written: the session is stored, and the cookie says so.
fn stored(state: &mut State, write: &Write, stamp: Stamp, stale: bool, ctx: Ctx<'_>) -> Local {
    let payload = stored_payload(&write.id, write.created, ctx.now, stamp, &state.data, ctx);
    state.phase = Phase::Stored {
        id: write.id.clone(),
        stamp,
        created: write.created,
        confirmed: ctx.now,
        merged: None,
    };
    state.intent = Intent::Keep;
    state.data.persisted();
    if matches!(write.predecessor, Some(Predecessor::Retire { .. })) {
        state.legacy = Legacy::Remove;
    }
    Local {
        issue: Some(payload),
        revoke: write.supersedes.clone(),
        stale,
        ..Local::default()
    }
}

/// The cookie predates a login: this request's changes are not kept, its cookie left alone.
fn superseded(state: &mut State) -> Local {
    state.phase = Phase::Superseded;
    state.data.reset();
    Local::problem(Problem::Superseded)
}

/// What a move from this request's own data must not ignore, as a load would not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Gates {
    /// The process fails closed (its logout queue overflowed): nothing moves from a cookie.
    pub(crate) fail_closed: bool,
    /// A logout of this session waits in this process's queue.
    pub(crate) revoked_here: bool,
}

/// After "the session was gone when the save came: why?". A logout: over. A login: superseded.
/// Another copy moved it, or Redis cannot say: the changes ride in the cookie (its next request
/// follows, or finds out). Redis lost it (a new epoch, no tombstone): it moves to a new id from
/// what this request has (the data it loaded, and its changes), as a load would have re-seeded
/// it, and under the same rules: never when failing closed (no tombstones then, so a logout
/// looks the same), for a cookie of an older key, or one logged out here.
pub(crate) fn after_recheck(
    state: &mut State,
    gone: &SessionId,
    answer: GoneAnswer,
    gates: Gates,
    ctx: Ctx<'_>,
    new_id: &mut dyn FnMut() -> SessionId,
) -> Plan {
    let GoneAnswer::Known { tombstone, epoch } = answer else {
        return Plan::Local(to_cookie(state, ctx, new_id));
    };
    match tombstone {
        Tombstone::Revoked { .. } => {
            state.end(Phase::Ended);
            Plan::Local(Local::default())
        }
        Tombstone::Cycled => Plan::Local(superseded(state)),
        Tombstone::Moved { .. } => Plan::Local(to_cookie(state, ctx, new_id)),
        Tombstone::None => {
            // As a load: a successor it followed is only ever gone without a tombstone if Redis
            // lost it; its own id, if the data epoch changed.
            let lost = state.valid_cookie().is_some_and(|cookie| {
                let payload = &cookie.payload;
                let followed = payload.id.as_ref() != Some(gone);
                let new_epoch = payload.epoch.as_deref().is_some_and(|seen| seen != epoch);
                cookie.newest_key && (followed || new_epoch)
            });
            let may_move =
                ctx.policy.tombstone_secs().is_some() && !gates.fail_closed && !gates.revoked_here;
            match &state.phase {
                Phase::Stored {
                    stamp,
                    created,
                    confirmed,
                    ..
                } if lost && may_move => {
                    state.phase = Phase::Moving {
                        from: gone.clone(),
                        stamp: *stamp,
                        created: *created,
                        confirmed: *confirmed,
                        basis: Basis::Redis,
                    };
                    Plan::Write(write(state, ctx, new_id))
                }
                // It ended (expired, deleted, or logged out with tombstones off) while the
                // request ran.
                _ => {
                    state.end(Phase::Ended);
                    Plan::Local(Local::default())
                }
            }
        }
    }
}

/// Redis is unavailable: what changed rides in the cookie until Redis has it.
///
/// The cookie is made from what this request knows of the session (the values it loaded from
/// Redis, or that its cookie stood in with, and its changes), never copied from the request's
/// cookie: only the keys written since Redis last had them are marked as such (this request's
/// changes, and those its cookie carried while it stood in), so that its other mirrored values,
/// which are what Redis had, never land over newer ones later. Its stamp: the cookie's when it
/// stood in; past anything a failed save could have written when the load found the session in
/// Redis; then one more outage write.
///
/// A session with no identity yet (a new visitor), or a login (`cycle_id`), becomes a
/// cookie-only session with an identity of its own: a login's old identity is revoked, so
/// that no cookie chosen before (session fixation) carries it. The new identity starts from
/// what is known (keys the request did not know are unknown in it too), and keeps the old
/// one's fallback window: a login does not make data Redis never confirmed stand in longer.
/// A login on a session nothing could be read of (or superseded) carries nothing of it: a new
/// session, with a window of its own.
pub(crate) fn to_cookie(
    state: &mut State,
    ctx: Ctx<'_>,
    new_id: &mut dyn FnMut() -> SessionId,
) -> Local {
    let cookie = state.valid_cookie().cloned();
    let trusted = cookie.as_ref().filter(|c| c.newest_key);
    let login = state.intent == Intent::Cycle;
    let nothing_carried =
        cookie.is_none() || matches!(state.phase, Phase::Detached | Phase::Superseded);
    let mut written: BTreeSet<String> = std::mem::take(&mut state.data.changed);
    written.append(&mut std::mem::take(&mut state.data.merged));
    // The writes the request's cookie carried, while its view stood in for Redis (or moves).
    let carried = match &state.phase {
        Phase::Fallback
        | Phase::Moving {
            basis: Basis::Cookie,
            ..
        } => trusted.map(|c| c.payload.as_ref()),
        _ => None,
    };
    written.extend(carried.into_iter().flat_map(|p| p.pending_keys().cloned()));
    // And the stamp of the Redis state the mirror's other values are from: what was loaded, or
    // what the cookie that stood in had. A failed save's stamp goes past anything its write
    // could have left, had it landed unseen.
    let (created, confirmed, stamp, mirror_stamp) = match &state.phase {
        Phase::Stored {
            stamp,
            created,
            confirmed,
            ..
        } => {
            let seen = trusted.map_or(*stamp, |c| c.payload.stamp().max(*stamp));
            (*created, *confirmed, seen.after_write(), *stamp)
        }
        Phase::Moving {
            stamp,
            created,
            confirmed,
            basis,
            ..
        } => {
            let from = match basis {
                Basis::Redis => *stamp,
                Basis::Cookie => trusted.map_or(*stamp, |c| c.payload.mirror_stamp()),
            };
            (*created, *confirmed, *stamp, from)
        }
        _ => cookie.as_ref().map_or(
            (ctx.now, ctx.now, Stamp::default(), Stamp::default()),
            |c| {
                let payload = &c.payload;
                (
                    payload.created,
                    payload.touched,
                    payload.stamp(),
                    payload.mirror_stamp(),
                )
            },
        ),
    };
    let mut revoke = None;
    let mut payload = Payload::new(None, confirmed);
    payload.created = created;
    let keys: Vec<String> = match cookie.as_ref().filter(|_| !login) {
        Some(cookie) => {
            if written.is_empty() {
                // Nothing new: the cookie already holds the session.
                state.phase = Phase::Fallback;
                return Local::default();
            }
            payload.id = cookie.payload.id.clone();
            payload.provisional = cookie.payload.provisional.clone();
            // Redis's data as of when it last confirmed the session: what tells a loss later.
            payload.epoch = cookie.payload.epoch.clone();
            payload.set_stamp(stamp);
            written.into_iter().collect()
        }
        None => {
            revoke = cookie
                .as_ref()
                .and_then(|c| c.payload.revocable_id().cloned());
            payload.provisional = Some(new_id());
            // Nothing of an old session it could not read is carried: a new session.
            if nothing_carried {
                payload.touched = ctx.now;
                state.data.known = Known::All;
            }
            state.data.values.keys().cloned().collect()
        }
    };
    payload.mirror = mirror_of(&state.data.values, ctx.mirrored);
    payload.mirrored = ctx.fingerprint;
    // What the request did not know stays unknown in the cookie (a Redis session's cookie
    // never has its other keys: only a cookie-only session's says so).
    match &state.data.known {
        Known::All => {}
        Known::Only(keys) if ctx.mirrored.is_subset(keys) => payload.partial = payload.id.is_none(),
        Known::Only(_) => payload.incomplete = true,
    }
    for key in keys {
        match (state.data.values.get(&key), ctx.mirrored.contains(&key)) {
            (Some(_), true) => payload.written.push(key),
            (Some(value), false) => {
                payload.data.insert(key, value.clone());
            }
            (None, _) => payload.removed.push(key),
        }
    }
    payload.set_stamp(payload.stamp().after_outage_write());
    if payload.id.is_some() {
        payload.set_mirror_stamp(mirror_stamp);
    }
    state.intent = Intent::Keep;
    // The rest of the request goes on from the cookie this issues.
    state.phase = Phase::Fallback;
    Local {
        issue: Some(payload),
        revoke,
        fallback_write: true,
        ..Local::default()
    }
}

/// The values of the mirrored keys.
pub(crate) fn mirror_of(
    values: &Map<String, Value>,
    mirrored: &BTreeSet<String>,
) -> Map<String, Value> {
    mirrored
        .iter()
        .filter_map(|key| values.get(key).map(|value| (key.clone(), value.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn map(entries: Vec<(u8, u8)>) -> Map<String, Value> {
        entries
            .into_iter()
            .map(|(key, value)| (format!("k{}", key % 4), Value::from(value % 3)))
            .collect()
    }

    proptest! {
        #[test]
        fn mirrors_says_what_mirror_of_makes(
            mirror in prop::collection::vec(any::<(u8, u8)>(), 0..5),
            values in prop::collection::vec(any::<(u8, u8)>(), 0..5),
            keys in prop::collection::btree_set(0..4u8, 0..4),
        ) {
            let (mirror, values) = (map(mirror), map(values));
            let keys: BTreeSet<String> = keys.into_iter().map(|k| format!("k{k}")).collect();
            prop_assert_eq!(
                mirrors(&mirror, &values, &keys),
                mirror == mirror_of(&values, &keys)
            );
        }
    }
}
