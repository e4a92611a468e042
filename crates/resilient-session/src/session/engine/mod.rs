//! The session engine's rules, decided apart from any I/O.
//!
//! Every decision of a request (serve from Redis or from the cookie, merge the cookie's outage
//! writes or drop them, follow a tombstone, re-seed, touch, write, move, revoke, what the
//! cookie holds) is a pure function of the cookie, what Redis answered, the configuration's
//! [`Policy`] and `now`. The executors (`session/load.rs`, `session/save.rs`) only ask Redis
//! what a plan says and feed the answers back; the rules are tested here, as tables, without a
//! Redis.
//!
//! | file | decides |
//! | --- | --- |
//! | [`policy`] | expiry, touches, the fallback window, TTLs, tombstone lifetimes |
//! | [`stamp`] | which of two states of a session is newer |
//! | [`state`] | the request's session: one lifecycle [`Phase`], its data, the handler's intent |
//! | [`answer`] | what Redis said, typed |
//! | [`load`] | the first use: what to ask, and what to serve |
//! | [`save`] | the end of the request: what to write, touch or revoke, and the cookie |
//! | [`fit`] | what gives way when the cookie does not fit in 4096 bytes |
//! | [`login`] | what a login in a Redis Cluster writes over the old session it read |
//! | [`owned`] | what an entry of a user's index of sessions stands for |

pub(crate) mod answer;
pub(crate) mod fit;
pub(crate) mod load;
pub(crate) mod login;
pub(crate) mod owned;
pub(crate) mod policy;
pub(crate) mod save;
pub(crate) mod stamp;
pub(crate) mod state;

#[cfg(test)]
mod who_wins;

pub(crate) use policy::Policy;
pub(crate) use stamp::{CREATED_FIELD, STAMP_FIELD, Stamp};
pub(crate) use state::{ClientCookie, Cookie, Phase, State};
