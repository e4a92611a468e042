//! Loading a session on first use: runs the [`Loader`]'s plan against Redis.

use serde_json::{Map, Value};

use super::backend::Fields;
use super::engine::answer::{GoneAnswer, Hash, HashAnswer, LegacyAnswer, Unavailable};
use super::engine::load::{Answer, Loaded, Loader, Query, Step};
use super::engine::owned::{INFO_FIELD, OWNER_FIELD};
use super::engine::state::{ClientCookie, Legacy, Outgoing, Owner};
use super::engine::{CREATED_FIELD, Phase, STAMP_FIELD, Stamp, State};
use super::store::now;
use super::tombstone::tombstone_of;
use super::{SessionEngine, SessionId};
use crate::Error;
use crate::stats::Counters;

impl SessionEngine {
    /// Loads `state` from Redis, or from the cookie when Redis is unavailable. Never fails: a
    /// session that cannot be had is a fresh one, or one that knows nothing.
    pub(crate) async fn load(&self, state: &mut State) {
        let now = now();
        self.verify(state, now);
        let mut loader = Loader::new(self.load_input(state, now));
        let mut step = loader.start();
        let mut owners = Vec::new();
        let loaded = loop {
            match step {
                Step::Done(loaded) => break loaded,
                Step::Ask(query) => {
                    let answer = self.ask(query, now, &mut owners).await;
                    step = loader.answer(answer);
                }
            }
        };
        self.note(&loaded);
        apply(state, loaded);
        if let Phase::Stored { id, .. } = &state.phase {
            state.indexed = owners.into_iter().find(|(of, _)| of == id);
        }
    }

    /// Runs one query; the owner marks of the hashes it read go into `owners`.
    async fn ask(&self, query: Query, now: i64, owners: &mut Vec<(SessionId, Owner)>) -> Answer {
        let backend = self.backend();
        match query {
            Query::Hash { id, touch } => Answer::Hash(match backend.load(&id, touch).await {
                Ok(Some(fields)) => match self.parse(owner_mark(&id, fields, owners)) {
                    Ok(hash) => HashAnswer::Found(hash),
                    Err(reason) => HashAnswer::Corrupt(reason),
                },
                Ok(None) => HashAnswer::Missing,
                Err(err) if err.is_wrong_type() => HashAnswer::Corrupt(err.to_string()),
                Err(err) => {
                    unavailable(&err);
                    HashAnswer::Unavailable
                }
            }),
            Query::Gone { id } => Answer::Gone(self.gone(&id).await),
            Query::Tombstone { id } => Answer::Tombstone(match backend.tombstone(&id).await {
                Ok(value) => Ok(tombstone_of(value.as_deref(), |s| self.unseal(s))),
                Err(err) => {
                    unavailable(&err);
                    Err(Unavailable)
                }
            }),
            Query::Legacy { key } => Answer::Legacy(self.legacy(&key, now).await),
            Query::Discard { id, reason } => {
                Counters::bump(&self.counters().corrupt_sessions);
                tracing::warn!(
                    reason,
                    "corrupt session data in Redis; deleted, starting a fresh session"
                );
                // With a tombstone, so that no copy of the cookie re-seeds it after a restart.
                self.revoke_now_or_later(*id.digest(), now).await;
                Answer::Discarded
            }
        }
    }

    /// Why is `id`'s hash gone: its tombstone, and the data epoch of its slot now (read fresh).
    pub(crate) async fn gone(&self, id: &SessionId) -> GoneAnswer {
        let backend = self.backend();
        let tombstone = backend.tombstone(id).await;
        let epoch = backend.epoch(id.digest(), true).await;
        match (tombstone, epoch) {
            (Ok(tombstone), Ok(epoch)) => GoneAnswer::Known {
                tombstone: tombstone_of(tombstone.as_deref(), |s| self.unseal(s)),
                epoch: epoch.to_string(),
            },
            (Err(err), _) | (_, Err(err)) => {
                unavailable(&err);
                GoneAnswer::Unavailable
            }
        }
    }

    /// An imported app's session: read (`GET`, with its remaining life), decoded and checked.
    async fn legacy(&self, key: &str, now: i64) -> LegacyAnswer {
        let Some(import) = self.config().import.clone() else {
            return LegacyAnswer::Missing;
        };
        let (bytes, pttl) = match self.backend().peek(key).await {
            Ok((Some(bytes), pttl)) => (bytes, pttl),
            Ok((None, _)) => return LegacyAnswer::Missing,
            Err(err) if err.is_wrong_type() => {
                return LegacyAnswer::Refused("the old session's key holds something else".into());
            }
            Err(err) => {
                if err.is_unavailable() {
                    tracing::debug!(error = %err, "Redis unavailable: the old session is imported later");
                } else {
                    tracing::error!(error = %err, "cannot read an old session to import (does the Redis user have GET, PTTL and DEL on the old keys?); it is imported once that works");
                }
                return LegacyAnswer::Unavailable;
            }
        };
        let ttl_deadline = (pttl > 0).then(|| now.saturating_add(pttl / 1000));
        match import.decode(&bytes, time::OffsetDateTime::now_utc()) {
            Ok(Some(super::import::OldSession { values, deadline })) => {
                match self.accept(&values) {
                    Ok(()) => LegacyAnswer::Found {
                        values,
                        deadline: earliest(deadline, ttl_deadline),
                    },
                    Err(reason) => LegacyAnswer::Refused(reason),
                }
            }
            Ok(None) => LegacyAnswer::Missing,
            Err(reason) => LegacyAnswer::Refused(reason),
        }
    }

    /// Counts what a load did.
    fn note(&self, loaded: &Loaded) {
        let counters = self.counters();
        let notes = &loaded.notes;
        if notes.touched {
            Counters::bump(&counters.touches);
        }
        if notes.fallback {
            Counters::bump(&counters.fallback_reads);
        }
        if notes.stale_view {
            Counters::bump(&counters.stale_changes_dropped);
            tracing::info!(
                "a cookie's changes from while Redis was down are older than what Redis holds: dropped"
            );
        }
        if notes.imported {
            Counters::bump(&counters.sessions_imported);
        }
        if let Some(reason) = &notes.legacy_refused {
            // Left in Redis: it is not ours to delete.
            Counters::bump(&counters.corrupt_sessions);
            tracing::warn!(
                reason,
                "an old session cannot be imported; the user starts a new one"
            );
        }
    }

    /// The checks Redis data passes before it is served: the size limit and the app's
    /// validator.
    fn accept(&self, values: &Map<String, Value>) -> Result<(), String> {
        let bytes = values
            .iter()
            .map(|(k, v)| k.len() + v.to_string().len())
            .sum();
        self.within_size_limit(bytes)?;
        self.validated(values)
    }

    fn within_size_limit(&self, bytes: usize) -> Result<(), String> {
        let limit = self.config().max_session_bytes;
        if bytes > limit {
            return Err(format!(
                "session is {bytes} bytes, over the limit of {limit}"
            ));
        }
        Ok(())
    }

    /// The app's validator, if any, accepts `values`.
    fn validated(&self, values: &Map<String, Value>) -> Result<(), String> {
        match &self.config().validator {
            Some(validate) => {
                validate(values).map_err(|reason| format!("validation failed: {reason}"))
            }
            None => Ok(()),
        }
    }

    /// Session data from a hash: UTF-8 field names, JSON values, within the size limit, and
    /// accepted by the app's validator; and its stamp. Other reserved fields are skipped.
    fn parse(&self, fields: Fields) -> Result<Hash, String> {
        self.within_size_limit(fields.iter().map(|(k, v)| k.len() + v.len()).sum())?;
        let mut values = Map::new();
        let mut stamp = Stamp::default();
        let mut created = None;
        for (field, raw) in fields {
            if field == STAMP_FIELD.as_bytes() {
                stamp = Stamp::parse(&raw)
                    .ok_or_else(|| "the stamp field is not a stamp".to_owned())?;
                continue;
            }
            if field == CREATED_FIELD.as_bytes() {
                let time = std::str::from_utf8(&raw).ok().and_then(|t| t.parse().ok());
                created = Some(time.ok_or_else(|| "the created field is not a time".to_owned())?);
                continue;
            }
            if field.first() == Some(&0) {
                continue;
            }
            let field =
                String::from_utf8(field).map_err(|_| "a field name is not UTF-8".to_owned())?;
            let value = serde_json::from_slice(&raw)
                .map_err(|err| format!("value of `{field}` is not JSON: {err}"))?;
            values.insert(field, value);
        }
        self.validated(&values)?;
        Ok(Hash {
            values,
            stamp,
            created,
        })
    }
}

/// Takes the owner mark out of a hash's `fields` (into `owners`, for `id`).
fn owner_mark(id: &SessionId, mut fields: Fields, owners: &mut Vec<(SessionId, Owner)>) -> Fields {
    // In place: most hashes have no mark, and a load allocates nothing more for it.
    let (mut name, mut info) = (None, Value::Null);
    fields.retain(|(field, value)| {
        if field == OWNER_FIELD.as_bytes() {
            name = String::from_utf8(value.clone()).ok();
        } else if field == INFO_FIELD.as_bytes() {
            info = serde_json::from_slice(value).unwrap_or(Value::Null);
        } else {
            return true;
        }
        false
    });
    if let Some(name) = name {
        owners.push((id.clone(), Owner { name, info }));
    }
    fields
}

/// Puts what the load serves into the state.
fn apply(state: &mut State, loaded: Loaded) {
    if loaded.over {
        state.cookie = ClientCookie::None;
        if state.had_cookie {
            state.outgoing = Outgoing::Remove;
        }
    }
    if loaded.legacy_gone {
        state.legacy = Legacy::Remove;
    }
    state.phase = loaded.phase;
    state.data = loaded.data;
}

/// The earlier of two deadlines.
fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Logs an error that makes Redis's answer unusable for this load.
fn unavailable(err: &Error) {
    if err.is_unavailable() {
        tracing::debug!(error = %err, "Redis unavailable: serving the session from its cookie if it may");
    } else {
        // An error we cannot place: never a reason to log anyone out.
        tracing::warn!(error = %err, "unexpected Redis error loading a session; treated as unavailable");
    }
}
