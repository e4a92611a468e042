//! The state of one request's session: a lifecycle [`Phase`], the [`Data`] the handler sees,
//! what it asked for ([`Intent`]), and the cookies of the response.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::Stamp;
use crate::cookie::{Payload, RawCookie};
use crate::session::{SessionId, Source};

/// A request's session, from `open` to the end of the request.
#[derive(Debug)]
pub(crate) struct State {
    /// The request carried a cookie of ours, valid or not: ending the session removes it.
    pub(crate) had_cookie: bool,
    /// The client's cookie: the request's until this request issues another.
    pub(crate) cookie: ClientCookie,
    /// The cookie of an app whose sessions are imported.
    pub(crate) legacy: Legacy,
    pub(crate) phase: Phase,
    pub(crate) data: Data,
    pub(crate) intent: Intent,
    /// What the response does with our cookie.
    pub(crate) outgoing: Outgoing,
    /// Whose session this is to be, as the handler said at login: written with the save.
    pub(crate) owner: Option<Owner>,
    /// Whose the session was when it was loaded from Redis, under which id: a login that
    /// cycles the id moves it in the owner's index, a logout takes it out.
    pub(crate) indexed: Option<(SessionId, Owner)>,
}

/// A session's owner and what the app recorded about the session, at login.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Owner {
    pub(crate) name: String,
    pub(crate) info: Value,
}

/// The client's session cookie.
#[derive(Debug, Clone)]
pub(crate) enum ClientCookie {
    /// None, or one that was refused (tampered, expired) or stands for a session that ended.
    None,
    /// The request's, not verified yet: it is, on first use (or at the end of the request if a
    /// touch may be due).
    Unverified(RawCookie),
    Valid(Cookie),
}

/// A verified cookie.
#[derive(Debug, Clone)]
pub(crate) struct Cookie {
    pub(crate) payload: Arc<Payload>,
    /// Protected by the newest key of the ring (every cookie this process issues is).
    pub(crate) newest_key: bool,
}

impl Cookie {
    /// A cookie this request issues.
    pub(crate) fn issued(payload: Payload) -> Self {
        Self {
            payload: Arc::new(payload),
            newest_key: true,
        }
    }
}

/// Where the session is in its life, for this request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    /// The handler has not used the session yet: nothing is loaded.
    Unloaded,
    /// No session: a new visitor, or one whose cookie stood for a session that is over.
    New,
    /// In Redis at `id`, in the state `stamp`, created at `created`; Redis last confirmed it
    /// (refreshed its idle timeout) at `confirmed`. `merged`: the cookie's view was applied over
    /// the hash as it was at that stamp, and is written only if Redis still is there.
    Stored {
        id: SessionId,
        stamp: Stamp,
        created: i64,
        confirmed: i64,
        merged: Option<Stamp>,
    },
    /// Redis is up and does not have the session, which it should: it moves there under a new
    /// id at the end of the request, from its cookie, claiming `from` (the re-seeded id, or a
    /// cookie-only session's own) so that it moves once. It starts at `stamp`, keeps its
    /// `created`, and Redis last confirmed it at `confirmed`. `basis`: where its data came from.
    Moving {
        from: SessionId,
        stamp: Stamp,
        created: i64,
        confirmed: i64,
        basis: Basis,
    },
    /// Redis is unavailable and the cookie stands in for it: its mirror and outage writes.
    Fallback,
    /// Redis is unavailable and the cookie cannot stand in (too old, an older key, the
    /// process failing closed, or Redis said the session is gone but not whether it ended):
    /// nothing is known, changes are not kept, and the cookie stays for when Redis is back.
    Detached,
    /// Imported from another app: a new session of ours, written at the end of the request,
    /// whose write deletes `old_key`. It keeps the old session's deadline (`created`).
    Imported { old_key: String, created: i64 },
    /// The cookie's session went on under another id, by a login this cookie predates (a
    /// request racing the login, a stale tab, a planted cookie): nothing of it is served, its
    /// changes are not kept, and its cookie is left alone: the browser has the login's.
    Superseded,
    /// Logged out: done.
    Ended,
}

/// Where the data of a session that moves came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// Its cookie: Redis lost it, or it began while Redis was down.
    Cookie,
    /// What this request loaded from Redis, which lost it before the request could save.
    Redis,
}

impl Phase {
    /// Where the data the handler sees came from.
    pub(crate) fn source(&self) -> Source {
        match self {
            Phase::Unloaded | Phase::New | Phase::Superseded | Phase::Ended => Source::New,
            Phase::Stored { .. } | Phase::Moving { .. } | Phase::Imported { .. } => Source::Redis,
            Phase::Fallback => Source::Cookie,
            Phase::Detached => Source::Unavailable,
        }
    }
}

/// The session's values as the handler sees them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Data {
    pub(crate) values: Map<String, Value>,
    /// Keys the handler set or removed, not yet persisted.
    pub(crate) changed: BTreeSet<String>,
    /// Keys the cookie's view set or removed over what Redis had, not yet persisted (and not
    /// changed by the handler since).
    pub(crate) merged: BTreeSet<String>,
    pub(crate) known: Known,
    /// The handler cleared the session in this request: a login then carries nothing of it.
    pub(crate) cleared: bool,
}

/// Which keys the session knows the value (or the absence) of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Known {
    /// Every key: what is not in the values does not exist.
    #[default]
    All,
    /// Served from the cookie: the mirrored keys and what was written since Redis was
    /// reachable; any other key may have a value in Redis that the cookie does not carry.
    Only(BTreeSet<String>),
}

/// A key's value is not known: Redis is unavailable and the cookie does not carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unknown;

impl Data {
    /// The value at `key`: `Ok(None)` when it has none, `Err` when that is not known.
    pub(crate) fn get(&self, key: &str) -> Result<Option<&Value>, Unknown> {
        match self.values.get(key) {
            Some(value) => Ok(Some(value)),
            None if self.knows(key) => Ok(None),
            None => Err(Unknown),
        }
    }

    fn knows(&self, key: &str) -> bool {
        match &self.known {
            Known::All => true,
            Known::Only(keys) => keys.contains(key),
        }
    }

    /// Sets `key` (the handler's change: it wins over the cookie's view).
    pub(crate) fn set(&mut self, key: &str, value: Value) {
        self.values.insert(key.to_owned(), value);
        self.changed_by_handler(key);
    }

    /// Removes `key`, returning its value if there was one (and it was known).
    pub(crate) fn remove(&mut self, key: &str) -> Option<Value> {
        let removed = self.values.remove(key);
        self.changed_by_handler(key);
        removed
    }

    /// Removes every key.
    pub(crate) fn clear(&mut self) {
        let keys: Vec<String> = self.values.keys().cloned().collect();
        for key in keys {
            self.remove(&key);
        }
        self.cleared = true;
    }

    fn changed_by_handler(&mut self, key: &str) {
        self.merged.remove(key);
        self.changed.insert(key.to_owned());
        if let Known::Only(keys) = &mut self.known {
            keys.insert(key.to_owned());
        }
    }

    /// Forget everything: the session is over.
    pub(crate) fn reset(&mut self) {
        *self = Data::default();
    }

    /// Whether anything is left to persist.
    pub(crate) fn is_dirty(&self) -> bool {
        !self.changed.is_empty() || !self.merged.is_empty()
    }

    /// Persisted: nothing left to write, and everything known.
    pub(crate) fn persisted(&mut self) {
        self.changed.clear();
        self.merged.clear();
        self.known = Known::All;
    }

    /// Empty, and known to be: no session at all.
    pub(crate) fn is_known_empty(&self) -> bool {
        self.values.is_empty() && self.known == Known::All
    }

    /// Total size of the session in bytes of JSON (keys and values), with `key` set to `value`.
    pub(crate) fn bytes_with(&self, key: &str, value: Option<&Value>) -> usize {
        self.bytes_after(&[(key, value)])
    }

    /// Total size of the session in bytes of JSON (keys and values), with each key of
    /// `changes` set to its value (`None`: removed).
    pub(crate) fn bytes_after(&self, changes: &[(&str, Option<&Value>)]) -> usize {
        let changed = |key: &str| changes.iter().any(|(k, _)| *k == key);
        let others: usize = self
            .values
            .iter()
            .filter(|(k, _)| !changed(k))
            .map(|(k, v)| k.len() + json_len(v))
            .sum();
        let new: usize = changes
            .iter()
            .filter_map(|(key, value)| value.map(|value| key.len() + json_len(value)))
            .sum();
        others + new
    }
}

fn json_len(value: &Value) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len())
}

/// What the handler asked of the session's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Intent {
    #[default]
    Keep,
    /// A new id at the end of the request (login).
    Cycle,
    /// End it (logout). Final: nothing asked after it changes it.
    Destroy,
}

impl Intent {
    pub(crate) fn cycle(&mut self) {
        if *self != Intent::Destroy {
            *self = Intent::Cycle;
        }
    }
}

/// The cookie of an app whose sessions are imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Legacy {
    /// None, or one left alone.
    None,
    /// On a request without our cookie: the session it stands for is imported on first use.
    Present(String),
    /// The response removes it (its session was imported, ended, or is gone).
    Remove,
}

/// What the response does with our cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// Nothing: the client's cookie stays as it is.
    Keep,
    /// This `Set-Cookie` value.
    Set(String),
    Remove,
}

impl State {
    pub(crate) fn new(cookie: Option<RawCookie>, legacy: Option<String>) -> Self {
        // Only a request without a cookie of ours imports.
        let legacy = match legacy {
            Some(value) if cookie.is_none() => Legacy::Present(value),
            _ => Legacy::None,
        };
        Self {
            had_cookie: cookie.is_some(),
            cookie: cookie.map_or(ClientCookie::None, ClientCookie::Unverified),
            legacy,
            phase: Phase::Unloaded,
            data: Data::default(),
            intent: Intent::Keep,
            outgoing: Outgoing::Keep,
            owner: None,
            indexed: None,
        }
    }

    /// The verified cookie, if the client has a valid one.
    pub(crate) fn valid_cookie(&self) -> Option<&Cookie> {
        match &self.cookie {
            ClientCookie::Valid(cookie) => Some(cookie),
            _ => None,
        }
    }

    /// The session is over (logged out, ended, refused, corrupt): no data, and the client's
    /// cookie is removed (if it had one).
    pub(crate) fn end(&mut self, phase: Phase) {
        self.phase = phase;
        self.data.reset();
        self.cookie = ClientCookie::None;
        self.outgoing = if self.had_cookie {
            Outgoing::Remove
        } else {
            Outgoing::Keep
        };
    }

    /// The response sets this cookie, and the rest of the request continues from it.
    pub(crate) fn issue(&mut self, header: String, payload: Payload) {
        self.outgoing = Outgoing::Set(header);
        self.cookie = ClientCookie::Valid(Cookie::issued(payload));
    }
}
