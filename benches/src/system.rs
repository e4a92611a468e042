//! The systems under test.

use std::fmt;

/// One server configuration, run as its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// axum with no session at all: the ceiling.
    Plain,
    /// Our axum example app (`example-axum`), default settings.
    OursAxum,
    /// Our actix example app (`example-actix`), default settings.
    OursActix,
    /// `example-axum` with no metrics recorder: the Prometheus recorder's cost, A/B.
    OursAxumNoMetrics,
    /// `example-actix` with no metrics recorder.
    OursActixNoMetrics,
    /// axum + tower-sessions + tower-sessions-redis-store, default (no save on read).
    TowerSessions,
    /// The same with `with_always_save(true)`: its way to get rolling expiry.
    TowerSessionsAlwaysSave,
    /// actix-web + actix-session + its Redis store, default.
    ActixSession,
    /// The same with `TtlExtensionPolicy::OnEveryRequest`: rolling expiry.
    ActixSessionRolling,
}

impl System {
    /// Every system, in the order of the tables.
    pub const ALL: [System; 9] = [
        System::Plain,
        System::OursAxum,
        System::OursActix,
        System::OursAxumNoMetrics,
        System::OursActixNoMetrics,
        System::TowerSessions,
        System::TowerSessionsAlwaysSave,
        System::ActixSession,
        System::ActixSessionRolling,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            System::Plain => "plain-axum",
            System::OursAxum => "ours-axum",
            System::OursActix => "ours-actix",
            System::OursAxumNoMetrics => "ours-axum-no-metrics",
            System::OursActixNoMetrics => "ours-actix-no-metrics",
            System::TowerSessions => "tower-sessions",
            System::TowerSessionsAlwaysSave => "tower-sessions+always_save",
            System::ActixSession => "actix-session",
            System::ActixSessionRolling => "actix-session+OnEveryRequest",
        }
    }

    /// The system called `name` on the command line.
    pub fn from_name(name: &str) -> Option<System> {
        System::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One of our example apps.
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            System::OursAxum
                | System::OursActix
                | System::OursAxumNoMetrics
                | System::OursActixNoMetrics
        )
    }

    /// The peer measured on the same framework in its default configuration, and in its
    /// rolling-expiry one.
    pub fn peers(self) -> Option<(System, System)> {
        match self {
            System::OursAxum => Some((System::TowerSessions, System::TowerSessionsAlwaysSave)),
            System::OursActix => Some((System::ActixSession, System::ActixSessionRolling)),
            _ => None,
        }
    }

    /// Whether it keeps sessions (the plain server only has `/noop`).
    pub fn has_sessions(self) -> bool {
        self != System::Plain
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
