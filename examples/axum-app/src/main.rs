//! `cargo run -p example-axum`: the example app on `BIND` (default 127.0.0.1:3000), with Redis
//! at `REDIS_URL` (default redis://127.0.0.1:6379) and cookies protected by `SESSION_SECRET`
//! (random, with a warning, when unset). Works with no Redis at all: sessions then live in the
//! cookie until Redis appears.

use std::net::SocketAddr;

use resilient_session_axum::{KeyRing, RedisManager, SessionStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();

    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
        .map_err(|err| format!("BIND must be an address like 127.0.0.1:3000: {err}"))?;
    let keys = match std::env::var("SESSION_SECRET") {
        Ok(secret) => KeyRing::from_secret(secret)?,
        Err(_) => {
            tracing::warn!(
                "SESSION_SECRET is not set: using a random key, so sessions end when the app \
                 restarts. Set it to 32 bytes or more (e.g. `openssl rand -base64 48`)."
            );
            KeyRing::generate()?
        }
    };
    if bind.ip().is_loopback() {
        tracing::info!(
            "loopback address: the session cookie is sent without `Secure` (plain http)"
        );
    }
    let manager = RedisManager::from_env()?;
    let store = SessionStore::new(manager, example_axum::session_config(keys, bind))?;

    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!("listening on http://{bind}");
    axum::serve(listener, example_axum::router(store))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
