//! The per-request state behind a [`Session`](super::Session) handle.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::response::SetCookie;
use super::{SessionId, Source};
use crate::cookie::{Payload, RawCookie};

#[derive(Debug)]
pub(crate) struct State {
    /// The request carried a cookie of ours, valid or not.
    pub(crate) had_cookie: bool,
    /// The request's cookie, until it is verified (on first use, or when the end of the
    /// request needs it).
    pub(crate) pending: Option<RawCookie>,
    /// The cookie this session continues: the request's, then whatever this request issued.
    /// `None` for a fresh session.
    pub(crate) base: Option<Arc<Payload>>,
    pub(crate) loaded: bool,
    pub(crate) values: Map<String, Value>,
    /// Keys set or removed and not yet persisted.
    pub(crate) changed: BTreeSet<String>,
    pub(crate) source: Source,
    /// The id under which the session's hash exists in Redis.
    pub(crate) stored_id: Option<SessionId>,
    /// The load refreshed the TTL (a touch was due) and the cookie does not say so yet.
    pub(crate) touched_at_load: bool,
    /// The session came from the cookie alone (begun while Redis was down, or re-seeded after
    /// Redis lost its data): it is to be written whole, under a new id.
    pub(crate) promote: bool,
    /// Served empty because the cookie is too old to stand in for an unavailable Redis; the
    /// cookie is kept (Redis may confirm it again) and changes are not.
    pub(crate) detached: bool,
    /// Outage batches the hash has merged (its reserved field), newest last.
    pub(crate) merged: Vec<String>,
    pub(crate) destroyed: bool,
    /// The destruction was carried out (or queued).
    pub(crate) ended: bool,
    pub(crate) cycle: bool,
    /// What the response does with the cookie.
    pub(crate) outgoing: Outgoing,
    /// The cookie of an app whose sessions are imported, on a request without ours.
    pub(crate) legacy: Option<String>,
    /// The response removes that cookie (its session was imported, or is gone).
    pub(crate) remove_legacy: bool,
    /// The imported app's key, deleted when this session is first written.
    pub(crate) import_key: Option<String>,
}

/// What the response does with the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// Nothing: the client's cookie stays as it is.
    Keep,
    Set(SetCookie),
    Remove,
}

impl State {
    pub(crate) fn new(cookie: Option<RawCookie>) -> Self {
        Self {
            had_cookie: cookie.is_some(),
            pending: cookie,
            base: None,
            loaded: false,
            values: Map::new(),
            changed: BTreeSet::new(),
            source: Source::New,
            stored_id: None,
            touched_at_load: false,
            promote: false,
            detached: false,
            merged: Vec::new(),
            destroyed: false,
            ended: false,
            cycle: false,
            outgoing: Outgoing::Keep,
            legacy: None,
            remove_legacy: false,
            import_key: None,
        }
    }

    /// Start over with an empty session: the cookie stood for a session that is over (ended,
    /// corrupt, revoked), so it is removed unless a new one replaces it.
    pub(crate) fn reset(&mut self) {
        self.clear_data();
        self.base = None;
        if self.had_cookie {
            self.outgoing = Outgoing::Remove;
        }
    }

    /// Serve an empty session, but keep the cookie: it may stand for a session again once
    /// Redis is back. Changes are not kept; a logout still revokes the cookie's id.
    pub(crate) fn detach(&mut self) {
        self.clear_data();
        self.detached = true;
    }

    fn clear_data(&mut self) {
        self.values.clear();
        self.changed.clear();
        self.source = Source::New;
        self.stored_id = None;
        self.promote = false;
    }

    /// Applies what the cookie carried while Redis was down (`data`, `removed`) over the
    /// current values, and marks it to be written.
    pub(crate) fn apply_pending(&mut self, cookie: &Payload) {
        for (key, value) in &cookie.data {
            self.values.insert(key.clone(), value.clone());
            self.changed.insert(key.clone());
        }
        for key in &cookie.removed {
            self.values.remove(key);
            self.changed.insert(key.clone());
        }
    }

    /// Serves the session from the cookie alone: mirrored values plus what was written while
    /// Redis was down.
    pub(crate) fn serve_from_cookie(&mut self, cookie: &Payload) {
        self.values = cookie.mirror.clone();
        self.apply_pending(cookie);
        self.source = Source::Cookie;
    }

    /// Everything is to be written (to a new hash, or a new cookie).
    pub(crate) fn mark_all_changed(&mut self) {
        let keys: Vec<String> = self.values.keys().cloned().collect();
        self.changed.extend(keys);
    }

    /// Whether anything is left to persist.
    pub(crate) fn is_dirty(&self) -> bool {
        !self.changed.is_empty() || self.cycle || self.promote
    }

    /// Total size of the session in bytes of JSON (keys and values), with `key` set to `value`.
    pub(crate) fn bytes_with(&self, key: &str, value: Option<&Value>) -> usize {
        let others: usize = self
            .values
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, v)| k.len() + json_len(v))
            .sum();
        others + value.map_or(0, |value| key.len() + json_len(value))
    }
}

fn json_len(value: &Value) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len())
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
