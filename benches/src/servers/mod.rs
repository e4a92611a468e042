//! The servers, each run as `session-bench serve <system> <port> <redis-url>` in its own
//! process, built in release mode with the bench. Every session system serves the same routes
//! with the same idle timeout (7 days): `GET /noop`, `GET /counter`, `POST /counter`,
//! `POST /login` (new session id, stores the user). Answers carry `{"counter": n}` so that the
//! load generator can tell a counter that went backwards.

pub mod actix_session;
pub mod ours;
mod plain;
pub mod tower_sessions;

use crate::system::System;

/// The idle timeout every system is configured with.
pub const IDLE_DAYS: i64 = 7;

/// Runs `system` on `port` until killed.
///
/// # Errors
///
/// When the server cannot start: Redis unreachable for a peer that needs it at start-up, the
/// port taken.
pub fn serve(system: System, port: u16, redis_url: &str) -> Result<(), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match system {
        System::Plain => tokio_main(plain::serve(addr)),
        System::OursAxum => tokio_main(ours::serve_axum(addr, redis_url.to_owned())),
        System::OursActix => ours::serve_actix(addr, redis_url.to_owned()),
        System::OursAxumNoMetrics => {
            ours::without_metrics()?;
            tokio_main(ours::serve_axum(addr, redis_url.to_owned()))
        }
        System::OursActixNoMetrics => {
            ours::without_metrics()?;
            ours::serve_actix(addr, redis_url.to_owned())
        }
        System::TowerSessions => {
            tokio_main(tower_sessions::serve(addr, redis_url.to_owned(), false))
        }
        System::TowerSessionsAlwaysSave => {
            tokio_main(tower_sessions::serve(addr, redis_url.to_owned(), true))
        }
        System::ActixSession => actix_session::serve(addr, redis_url.to_owned(), false),
        System::ActixSessionRolling => actix_session::serve(addr, redis_url.to_owned(), true),
    }
}

fn tokio_main(server: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(server)
}
