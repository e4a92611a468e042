//! tower-sessions' counter example (`examples/counter.rs` in the tower-sessions 0.15 repository), unchanged but
//! for its store: [`TowerSessionsStore`] on Redis instead of `MemoryStore`. The handler keeps
//! the original's `unwrap()`s: with Redis down, tower-sessions has no fallback, so a request
//! with a session fails (fast: our breaker, timeouts) and a new visitor's save answers 500.

use axum::{Router, response::IntoResponse, routing::get};
use resilient_session::TowerSessionsStore;
use serde::{Deserialize, Serialize};
use time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

const COUNTER_KEY: &str = "counter";

#[derive(Default, Deserialize, Serialize)]
struct Counter(usize);

#[allow(clippy::unwrap_used)] // as in the original example
async fn handler(session: Session) -> impl IntoResponse {
    let counter: Counter = session.get(COUNTER_KEY).await.unwrap().unwrap_or_default();
    session.insert(COUNTER_KEY, counter.0 + 1).await.unwrap();
    format!("Current count: {}", counter.0)
}

/// The example's app, on `session_store`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = resilient_session::TowerSessionsStore::new(resilient_session::RedisManager::from_env()?);
/// let app = example_tower_sessions_counter::app(store);
/// # let _ = app;
/// # Ok(()) }
/// ```
pub fn app(session_store: TowerSessionsStore) -> Router {
    let session_layer = SessionManagerLayer::new(session_store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::seconds(10)));

    Router::new().route("/", get(handler)).layer(session_layer)
}
