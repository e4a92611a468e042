//! The systems under test.

use std::fmt;

/// One server configuration, run as its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    /// axum with no session at all: the ceiling.
    Plain,
    /// Our axum example app (`example-axum`), default settings.
    OursAxum,
    /// Our actix example app (`example-actix`), default settings.
    OursActix,
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
    pub(crate) const ALL: [System; 7] = [
        System::Plain,
        System::OursAxum,
        System::OursActix,
        System::TowerSessions,
        System::TowerSessionsAlwaysSave,
        System::ActixSession,
        System::ActixSessionRolling,
    ];

    /// The name used on the command line and in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Plain => "plain-axum",
            System::OursAxum => "ours-axum",
            System::OursActix => "ours-actix",
            System::TowerSessions => "tower-sessions",
            System::TowerSessionsAlwaysSave => "tower-sessions+always_save",
            System::ActixSession => "actix-session",
            System::ActixSessionRolling => "actix-session+OnEveryRequest",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<System> {
        System::ALL.into_iter().find(|s| s.name() == name)
    }

    pub(crate) fn is_ours(self) -> bool {
        matches!(self, System::OursAxum | System::OursActix)
    }

    /// Whether it keeps sessions (the plain server only has `/noop`).
    pub(crate) fn has_sessions(self) -> bool {
        self != System::Plain
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
