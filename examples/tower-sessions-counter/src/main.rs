//! `cargo run -p example-tower-sessions-counter`: tower-sessions' counter example on our Redis
//! store, at `BIND` (default 127.0.0.1:3000) with Redis at `REDIS_URL`.

use resilient_session::{RedisManager, TowerSessionsStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let session_store = TowerSessionsStore::new(RedisManager::from_env()?);
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(
        listener,
        example_tower_sessions_counter::app(session_store).into_make_service(),
    )
    .await?;
    Ok(())
}
