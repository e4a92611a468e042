//! What the end of a request (or [`Session::save`](crate::Session::save)) does: [`plan`] it,
//! then, after the executor ran the Redis part, [`after_write`] / [`after_touch`] / [`ended`].
//!
//! | the session | Redis | then |
//! | --- | --- | --- |
//! | logged out (`destroy`), or emptied | any | revoke its id (and an imported app's key); queued if Redis is down |
//! | not used | - | touch it when due (`EXPIRE`), re-issue the cookie |
//! | read, not changed | - | re-issue the cookie if what it should hold changed (touched, stamp, mirror, an outage view dropped) |
//! | changed, stored | up | the changed fields (and the merged view, guarded by its stamp), one script |
//! | login (`cycle_id`) | up | everything under a new id; the old one goes, its tombstone says "cycled" |
//! | moving (re-seeded, promoted) | up | everything under a new id, claiming the old one ("moved", naming the successor) |
//! | imported | up | a new session; the old app's key goes in the same script |
//! | changed | down (at load, or at the write) | into the cookie: mirror, `d`, `x`, one more outage write on the stamp |
//! | login | down | into the cookie under a new identity of its own; the old one is revoked |
//! | detached (nothing known) | down | changes are not kept ([`Problem::FallbackExpired`]) unless it is a login |

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::answer::{Tombstone, Written};
use super::state::{ClientCookie, Data, Intent, Legacy, Phase, State};
use super::{Policy, Stamp};
use crate::cookie::Payload;
use crate::session::SessionId;

/// What the planners need besides the state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) policy: Policy,
    pub(crate) mirrored: &'a BTreeSet<String>,
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
}

impl Local {
    /// Nothing done: no id could be made.
    pub(crate) fn failed() -> Self {
        Self {
            problem: Some(Problem::NoRandomness),
            ..Self::default()
        }
    }
}

/// What a handler that asks ([`Session::save`](crate::Session::save)) is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Redis is unavailable and the cookie could not stand in: the changes are not kept.
    FallbackExpired,
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
    /// A login: the old hash goes, its tombstone says "cycled"; if a logout took it meanwhile,
    /// nothing is written.
    Cycle {
        old: SessionId,
        tombstone_secs: Option<u64>,
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
    match &state.phase {
        Phase::Ended => return Plan::Local(Local::default()),
        Phase::Unloaded => return plan_unread(state, ctx, revoked_here),
        Phase::Detached if state.intent != Intent::Cycle => {
            if state.data.is_dirty() {
                state.data.changed.clear();
                return Plan::Local(Local {
                    problem: Some(Problem::FallbackExpired),
                    ..Local::default()
                });
            }
            return Plan::Local(Local::default());
        }
        _ => {}
    }
    let must_move = matches!(state.phase, Phase::Moving { .. } | Phase::Imported { .. });
    let dirty = state.data.is_dirty() || state.intent == Intent::Cycle || must_move;
    if state.data.is_known_empty() && dirty {
        // An empty session is no session.
        return match state.phase {
            Phase::New => Plan::Local(Local::default()),
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

/// The handler did not use the session: a touch, when due.
fn plan_unread(state: &State, ctx: Ctx<'_>, revoked_here: bool) -> Plan {
    if let Some(cookie) = state.valid_cookie() {
        let payload = &cookie.payload;
        if let Some(id) = &payload.id
            && ctx.policy.touch_due(payload.touched, ctx.now)
            && !revoked_here
        {
            return Plan::Touch {
                id: id.clone(),
                ttl: ctx.policy.ttl_secs(payload.created, ctx.now),
            };
        }
    }
    Plan::Local(Local::default())
}

/// After a touch of an unused session: `true` if the hash was there.
pub(crate) fn after_touch(state: &State, touched: bool, ctx: Ctx<'_>) -> Local {
    let issue = state.valid_cookie().filter(|_| touched).map(|cookie| {
        let mut payload = Payload::clone(&cookie.payload);
        payload.touched = ctx.now;
        payload
    });
    Local {
        issue,
        ..Local::default()
    }
}

/// The cookie a stored session's client should hold now.
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
    payload
}

/// Read and not changed: the cookie again when what it should hold changed (a touch at load,
/// another stamp, another mirror, a followed successor, an outage view dropped).
fn refreshed(state: &State, ctx: Ctx<'_>) -> Option<Payload> {
    let Phase::Stored {
        id,
        stamp,
        confirmed,
        ..
    } = &state.phase
    else {
        return None;
    };
    let current = &state.valid_cookie()?.payload;
    let desired = stored_payload(id, current.created, *confirmed, *stamp, &state.data, ctx);
    let same = current.id == desired.id
        && current.touched == desired.touched
        && current.stamp() == desired.stamp()
        && current.provisional.is_none()
        && !current.has_pending()
        // A mirror that did not fit stays out until the next write.
        && (current.mirror_cut || current.mirror == desired.mirror);
    (!same).then_some(desired)
}

/// The save script for a dirty session whose Redis part can be tried.
fn write(state: &State, ctx: Ctx<'_>, new_id: &mut dyn FnMut() -> SessionId) -> Write {
    let cookie = state.valid_cookie().map(|cookie| &cookie.payload);
    let created = match &state.phase {
        Phase::Imported { created, .. } => *created,
        _ => cookie.map_or(ctx.now, |c| c.created),
    };
    let everything = || -> Vec<(String, String)> {
        state
            .data
            .values
            .iter()
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect()
    };
    let mut write = Write {
        id: new_id(),
        create: true,
        set: Vec::new(),
        delete: Vec::new(),
        guarded: None,
        floor: Stamp::default(),
        stamp: None,
        ttl: ctx.policy.ttl_secs(created, ctx.now),
        created,
        predecessor: None,
        supersedes: None,
    };
    let login = state.intent == Intent::Cycle;
    match &state.phase {
        Phase::Stored { id, merged, .. } if !login => {
            write.id = id.clone();
            write.create = false;
            (write.set, write.delete) = changes(&state.data.values, &state.data.changed);
            write.guarded = merged.map(|expected| {
                let (set, delete) = changes(&state.data.values, &state.data.merged);
                Guarded {
                    expected,
                    view: cookie.map_or(expected, |c| c.stamp()),
                    set,
                    delete,
                }
            });
            write.floor = cookie.map_or(Stamp::default(), |c| c.stamp());
        }
        Phase::Stored { id, .. } => {
            write.set = everything();
            write.predecessor = Some(Predecessor::Cycle {
                old: id.clone(),
                tombstone_secs: ctx.policy.tombstone_secs(),
            });
        }
        Phase::Moving { from, stamp } => {
            write.set = everything();
            let tombstone_secs = if login {
                ctx.policy.tombstone_secs()
            } else {
                ctx.policy.moved_tombstone_secs(created, ctx.now)
            };
            // Tombstones are off only when nothing moves (fail closed).
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
                write.supersedes = cookie.and_then(|c| c.revocable_id().cloned());
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

/// After the save script: the state, and the cookie.
pub(crate) fn after_write(
    state: &mut State,
    write: &Write,
    written: Written,
    ctx: Ctx<'_>,
    new_id: &mut dyn FnMut() -> SessionId,
) -> Local {
    match written {
        Written::Yes(stamp) => {
            let payload =
                stored_payload(&write.id, write.created, ctx.now, stamp, &state.data, ctx);
            state.phase = Phase::Stored {
                id: write.id.clone(),
                stamp,
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
                ..Local::default()
            }
        }
        // Another copy of the cookie moved the session first: this request's changes ride in
        // the cookie, whose next request follows the move and merges them (its stamp is newer).
        Written::Taken(Tombstone::Moved { .. }) => {
            state.phase = Phase::Fallback;
            to_cookie(state, ctx, new_id)
        }
        // Ended while this request ran (a logout racing it), or claimed by a login: it does
        // not come back.
        Written::Gone | Written::Taken(_) => {
            state.end(Phase::Ended);
            Local::default()
        }
        Written::Failed => {
            // The write may have landed all the same (its answer lost with the connection):
            // what the cookie takes in now must be newer than anything it wrote.
            if let (Phase::Stored { stamp, .. }, ClientCookie::Valid(cookie)) =
                (&state.phase, &mut state.cookie)
            {
                let seen = cookie.payload.stamp().max(*stamp);
                let mut payload = Payload::clone(&cookie.payload);
                payload.set_stamp(Stamp::new(seen.writes().saturating_add(1), 0));
                cookie.payload = std::sync::Arc::new(payload);
            }
            let mut local = to_cookie(state, ctx, new_id);
            if let Some(Predecessor::Retire { key }) = &write.predecessor {
                // The imported session rides in a cookie-only session of ours; the old app's
                // key goes once Redis is back, so that no copy of its cookie imports it again.
                local.retire = Some(key.clone());
            }
            local
        }
    }
}

/// Redis is unavailable: what changed rides in the cookie until Redis has it.
///
/// A session with no identity yet (a new visitor), or a login (`cycle_id`), becomes a
/// cookie-only session with an identity of its own: a login's old identity is revoked, so
/// that no cookie chosen before (session fixation) carries it.
pub(crate) fn to_cookie(
    state: &mut State,
    ctx: Ctx<'_>,
    new_id: &mut dyn FnMut() -> SessionId,
) -> Local {
    let base = match &state.cookie {
        ClientCookie::Valid(cookie) => Some(Payload::clone(&cookie.payload)),
        _ => None,
    };
    let login = state.intent == Intent::Cycle;
    let mut revoke = None;
    let (mut payload, keys) = match base {
        Some(base) if !login => {
            let mut keys = std::mem::take(&mut state.data.changed);
            keys.append(&mut std::mem::take(&mut state.data.merged));
            if keys.is_empty() {
                // Nothing new: the cookie already holds the session.
                return Local::default();
            }
            (base, keys)
        }
        base => {
            revoke = base.as_ref().and_then(|b| b.revocable_id().cloned());
            let mut fresh = Payload::new(None, ctx.now);
            fresh.created = base.as_ref().map_or(ctx.now, |b| b.created);
            fresh.provisional = Some(new_id());
            state.data.changed.clear();
            state.data.merged.clear();
            (fresh, state.data.values.keys().cloned().collect())
        }
    };
    for key in keys {
        let value = state.data.values.get(&key);
        let mirrored = ctx.mirrored.contains(&key);
        payload.removed.retain(|k| *k != key);
        payload.data.remove(&key);
        payload.mirror.remove(&key);
        match (value, mirrored) {
            (Some(value), true) => {
                payload.mirror.insert(key, value.clone());
            }
            (Some(value), false) => {
                payload.data.insert(key, value.clone());
            }
            (None, _) => payload.removed.push(key),
        }
    }
    payload.set_stamp(payload.stamp().after_outage_write());
    payload.unsaved = true;
    state.intent = Intent::Keep;
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
