//! Tracks where the connection stands, for health: state, since when, errors, the last error.
//!
//! The hot path (a successful operation while connected) reads one atomic and takes no lock.

use std::error::Error as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;

use crate::Error;
use crate::health::ConnectionState;

#[derive(Debug)]
pub(crate) struct Status {
    connected: AtomicBool,
    errors: AtomicU64,
    detail: Mutex<Detail>,
    /// Redacted from every stored error text, should a library ever echo it.
    secret: Option<String>,
}

#[derive(Debug)]
struct Detail {
    state: ConnectionState,
    connected_at: Option<OffsetDateTime>,
    last_error: Option<String>,
}

/// What [`Status`] reports; the breaker's view is added by the manager.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) state: ConnectionState,
    pub(crate) connected_at: Option<OffsetDateTime>,
    pub(crate) error_count: u64,
    pub(crate) last_error: Option<String>,
}

impl Status {
    pub(crate) fn new(secret: Option<String>) -> Self {
        Self {
            connected: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            detail: Mutex::new(Detail {
                state: ConnectionState::Connecting,
                connected_at: None,
                last_error: None,
            }),
            secret: secret.filter(|s| !s.is_empty()),
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Redis answered. Returns `true` when this (re-)established the connection.
    pub(crate) fn on_success(&self) -> bool {
        if self.is_connected() {
            return false;
        }
        let mut detail = self.lock();
        if detail.state == ConnectionState::Connected {
            return false;
        }
        detail.state = ConnectionState::Connected;
        detail.connected_at = Some(OffsetDateTime::now_utc());
        self.errors.store(0, Ordering::Relaxed);
        self.connected.store(true, Ordering::Release);
        true
    }

    /// Redis could not serve an operation. Returns the state before, so that the caller can
    /// tell a lost connection (was connected) or a failed start (was connecting) from one more
    /// failure while disconnected.
    pub(crate) fn on_failure(&self, err: &Error) -> ConnectionState {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let text = self.describe(err);
        let mut detail = self.lock();
        detail.last_error = Some(text);
        self.connected.store(false, Ordering::Release);
        std::mem::replace(&mut detail.state, ConnectionState::Disconnected)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let detail = self.lock();
        Snapshot {
            state: detail.state,
            connected_at: detail.connected_at,
            error_count: self.errors.load(Ordering::Relaxed),
            last_error: detail.last_error.clone(),
        }
    }

    /// The error and its sources, one line, with the secret blanked out.
    pub(crate) fn describe(&self, err: &Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        match &self.secret {
            Some(secret) => text.replace(secret.as_str(), "***"),
            None => text,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::server_error;

    fn failure(detail: &str) -> Error {
        Error::redis("get", server_error("WRONGPASS", detail))
    }

    #[test]
    fn starts_connecting_then_tracks_transitions() {
        let status = Status::new(None);
        assert_eq!(status.snapshot().state, ConnectionState::Connecting);
        assert!(status.on_success(), "first success connects");
        assert!(!status.on_success(), "already connected");
        let first = status.snapshot().connected_at.expect("connected_at set");

        assert_eq!(status.on_failure(&failure("x")), ConnectionState::Connected);
        assert_eq!(
            status.on_failure(&failure("y")),
            ConnectionState::Disconnected,
            "already lost"
        );
        let snapshot = status.snapshot();
        assert_eq!(snapshot.state, ConnectionState::Disconnected);
        assert_eq!(snapshot.error_count, 2);
        assert!(snapshot.last_error.expect("recorded").contains('y'));

        assert!(status.on_success(), "reconnects");
        let snapshot = status.snapshot();
        assert_eq!(
            snapshot.error_count, 0,
            "errors count since the last connect"
        );
        assert!(snapshot.connected_at.expect("set") >= first);
    }

    #[test]
    fn the_secret_never_reaches_the_error_text() {
        let status = Status::new(Some("hunter2-secret".into()));
        status.on_failure(&failure("password hunter2-secret was refused"));
        let text = status.snapshot().last_error.expect("recorded");
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert!(text.contains("***"), "{text}");
    }
}
