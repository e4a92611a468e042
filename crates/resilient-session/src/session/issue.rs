//! The cookies a response sends: the session cookie fitted in 4096 bytes, an imported app's
//! removed, and whether the response is private.

use std::time::Duration;

use super::SessionEngine;
use super::engine::fit::cut;
use super::engine::state::{Legacy, Outgoing};
use super::engine::{Phase, State};
use super::response::ResponseHeaders;
use crate::cookie::Payload;
use crate::stats::Counters;
use crate::{Error, Result};

impl SessionEngine {
    /// Sends `payload` as the session cookie: the response will set it, and the rest of the
    /// request continues from it. When it does not fit in 4096 bytes, what gives way is cut
    /// (see [`cut`]); each cut is logged and counted. Should even the removals made while Redis
    /// was down not fit, the session fails closed: it ends here (its logout queued) rather than
    /// let a removed value come back.
    ///
    /// # Errors
    ///
    /// [`Error::CookieTooLarge`] when a cut lost writes made while Redis was down.
    pub(crate) fn send(&self, state: &mut State, payload: Payload, now: i64) -> Result<()> {
        let max_age = Duration::from_secs(self.policy().ttl_secs(payload.created, now));
        let mut payload = payload;
        let mut lost_writes = None;
        loop {
            let too_large = match self.codec().encode(&payload, max_age) {
                Ok(header) => {
                    state.issue(header, payload);
                    return match lost_writes {
                        Some(bytes) => Err(Error::CookieTooLarge { bytes }),
                        None => Ok(()),
                    };
                }
                Err(too_large) => too_large.bytes,
            };
            Counters::bump(&self.counters().oversized_cookies);
            match cut(&mut payload) {
                Some(lost) => {
                    if lost.loses_writes() {
                        tracing::warn!(
                            bytes = too_large,
                            "session cookie would exceed 4096 bytes: changes made while Redis is down are dropped ({lost:?})"
                        );
                        lost_writes = Some(too_large);
                    } else {
                        tracing::warn!(
                            bytes = too_large,
                            "session cookie would exceed 4096 bytes: the mirrored keys are left out"
                        );
                    }
                }
                None if payload.removed.is_empty() => {
                    // Only the identity is left: nothing was removed that could come back.
                    tracing::error!(
                        bytes = too_large,
                        "session cookie cannot fit in 4096 bytes; not sent"
                    );
                    return Err(Error::CookieTooLarge { bytes: too_large });
                }
                None => {
                    tracing::error!(
                        bytes = too_large,
                        "session cookie cannot fit in 4096 bytes; the session ends rather than lose what was removed"
                    );
                    if let Some(id) = payload.revocable_id() {
                        self.revoke_id_later(id, Some(&payload), now);
                    }
                    state.end(Phase::Ended);
                    return Err(Error::CookieTooLarge { bytes: too_large });
                }
            }
        }
    }

    /// What the response gets: the cookies, and whether it is about a session.
    pub(crate) fn headers(&self, state: &State) -> ResponseHeaders {
        let cookie = match &state.outgoing {
            Outgoing::Keep => None,
            Outgoing::Set(header) => Some(header.clone()),
            Outgoing::Remove => Some(self.codec().removal()),
        };
        let legacy = (state.legacy == Legacy::Remove)
            .then(|| {
                let config = self.config();
                config.import.as_ref().map(|i| i.removal(config.secure))
            })
            .flatten();
        let read = state.phase != Phase::Unloaded;
        ResponseHeaders::new(cookie, legacy, read)
    }
}
