//! What Redis said, typed: the inputs the planners decide on.

use serde_json::{Map, Value};

use super::Stamp;
use crate::session::id::{Digest, SessionId};

/// Redis could not be asked (down, refusing, timing out, the breaker open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// What a tombstone says about an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tombstone {
    /// No tombstone.
    None,
    /// Logged out. `successor`: the session it had moved to, revoked too (named again by every
    /// attempt of the logout, so that one whose answer was lost is not the end of the chain).
    Revoked { successor: Option<Digest> },
    /// Re-seeded or promoted from its cookie into the session whose key is `digest`. `id`: the
    /// successor's id, when a key of the ring opens it (copies of the cookie follow it there).
    Moved {
        digest: Digest,
        id: Option<SessionId>,
    },
    /// Given a new id by a login. Copies of the old cookie never follow a login: one of them
    /// may have been planted (session fixation).
    Cycled,
}

impl Tombstone {
    /// The session a logout of this one also ends: the one it moved to.
    pub(crate) fn successor(&self) -> Option<Digest> {
        match self {
            Tombstone::Moved { digest, .. } => Some(*digest),
            Tombstone::Revoked { successor } => *successor,
            _ => None,
        }
    }
}

/// A session's hash, loaded and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hash {
    pub(crate) values: Map<String, Value>,
    pub(crate) stamp: Stamp,
    /// When the session was created, if the hash says (reserved field `\0c`).
    pub(crate) created: Option<i64>,
}

/// The answer to loading a session's hash.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HashAnswer {
    Found(Hash),
    Missing,
    /// Not ours to serve: not JSON, the wrong shape, too large, refused by the validator. The
    /// reason is for the log.
    Corrupt(String),
    Unavailable,
}

/// The answer to "the hash is gone: why?".
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GoneAnswer {
    /// The id's tombstone, and the data epoch of its slot now.
    Known {
        tombstone: Tombstone,
        epoch: String,
    },
    Unavailable,
}

/// An imported app's session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LegacyAnswer {
    /// Its data, and when it would have ended (unix seconds), if it says.
    Found {
        values: Map<String, Value>,
        deadline: Option<i64>,
    },
    Missing,
    /// Unreadable or refused by the checks; left where it is. The reason is for the log.
    Refused(String),
    Unavailable,
}

/// What became of a save.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Written {
    /// Written; the hash is now at this stamp.
    Yes(Stamp),
    /// Written, over writes this request had not seen (another request wrote in between): the
    /// mirrored keys as Redis has them now (`None`: absent), so that the cookie does not claim
    /// the new stamp with an older mirror.
    MovedOn {
        stamp: Stamp,
        mirror: Vec<(String, Option<Value>)>,
    },
    /// The session ended meanwhile (a logout racing this request): nothing was written.
    Gone,
    /// A move found the old id's tombstone already there: nothing was written.
    Taken(Tombstone),
    /// Not done, or not known to be done: Redis unavailable, or an error nobody can place.
    Failed,
}
