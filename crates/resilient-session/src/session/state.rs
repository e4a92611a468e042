//! The per-request state behind a [`Session`](super::Session) handle.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{SessionId, Source};
use crate::cookie::{Incoming, Payload};

#[derive(Debug)]
pub(crate) struct State {
    /// What the request's cookie held (an expired cookie is `Invalid`).
    pub(crate) incoming: Incoming,
    pub(crate) loaded: bool,
    pub(crate) values: Map<String, Value>,
    /// Keys set or removed since the load, still to be written to Redis.
    pub(crate) changed: BTreeSet<String>,
    pub(crate) source: Source,
    /// The id under which the session's hash existed at load.
    pub(crate) stored_id: Option<SessionId>,
    /// The load refreshed the TTL (a touch was due).
    pub(crate) touched_at_load: bool,
    pub(crate) destroyed: bool,
    pub(crate) cycle: bool,
    /// The incoming cookie stands for no session any more: remove it unless a new one replaces it.
    pub(crate) drop_cookie: bool,
}

impl State {
    pub(crate) fn new(incoming: Incoming) -> Self {
        Self {
            incoming,
            loaded: false,
            values: Map::new(),
            changed: BTreeSet::new(),
            source: Source::New,
            stored_id: None,
            touched_at_load: false,
            destroyed: false,
            cycle: false,
            drop_cookie: false,
        }
    }

    /// The cookie's payload, when the request carried a valid one.
    pub(crate) fn cookie(&self) -> Option<&Payload> {
        match &self.incoming {
            Incoming::Valid(payload) => Some(payload),
            Incoming::Absent | Incoming::Invalid => None,
        }
    }

    /// Whether the request carried a cookie of ours, valid or not.
    pub(crate) fn had_cookie(&self) -> bool {
        !matches!(self.incoming, Incoming::Absent)
    }

    /// Start over with an empty session (a corrupt or ended one).
    pub(crate) fn reset(&mut self) {
        self.values.clear();
        self.changed.clear();
        self.source = Source::New;
        self.stored_id = None;
        self.drop_cookie = true;
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

    /// Everything is to be written (to a new hash).
    pub(crate) fn mark_all_changed(&mut self) {
        let keys: Vec<String> = self.values.keys().cloned().collect();
        self.changed.extend(keys);
    }

    /// Total size of the session in bytes of JSON (keys and values).
    pub(crate) fn bytes_with(&self, key: &str, value: Option<&Value>) -> usize {
        let mut total: usize = self
            .values
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, v)| k.len() + json_len(v))
            .sum();
        if let Some(value) = value {
            total += key.len() + json_len(value);
        }
        total
    }
}

pub(crate) fn json_len(value: &Value) -> usize {
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
