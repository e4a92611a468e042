//! Our example apps, exactly as `cargo run -p example-axum` / `example-actix` serve them, with
//! default session and Redis settings (secret fixed, so all processes agree), importing the
//! sessions of another app when the example apps' `IMPORT_*` variables say so; or the same apps
//! without a metrics recorder, to measure what the Prometheus one costs.

use std::net::SocketAddr;

use resilient_session::{KeyRing, RedisManager, SessionEngine};

const SECRET: &str = "session-bench-secret-of-at-least-32-bytes";

/// The store our example apps get from their environment, on Redis at `redis_url`, for an app
/// bound to `addr`. Must be called within a Tokio runtime.
///
/// # Errors
///
/// A bad `redis_url`, or bad `IMPORT_*` variables.
pub fn store(addr: SocketAddr, redis_url: String) -> Result<SessionEngine, String> {
    let manager = RedisManager::builder()
        .url(redis_url)
        .build()
        .map_err(|e| e.to_string())?;
    let keys = KeyRing::from_secret(SECRET).map_err(|e| e.to_string())?;
    let mut config = example_common::session_config(keys, addr);
    if let Some(import) =
        example_common::import_from(|name| std::env::var(name).ok()).map_err(|e| e.to_string())?
    {
        config = config.import_sessions(import);
    }
    SessionEngine::new(manager, config).map_err(|e| e.to_string())
}

/// Installs the `metrics` facade's no-op recorder, so that the example app finds a recorder in
/// place and installs no Prometheus one: the same app, its metrics recorded nowhere.
pub(super) fn without_metrics() -> Result<(), String> {
    metrics::set_global_recorder(metrics::NoopRecorder).map_err(|e| e.to_string())
}

pub(super) async fn serve_axum(addr: SocketAddr, redis_url: String) -> Result<(), String> {
    let store = store(addr, redis_url)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| e.to_string())?;
    axum::serve(listener, example_axum::router(store))
        .await
        .map_err(|e| e.to_string())
}

pub(super) fn serve_actix(addr: SocketAddr, redis_url: String) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let store = store(addr, redis_url)?;
        actix_web::HttpServer::new(move || example_actix::app(store.clone()))
            .bind(addr)
            .map_err(|e| e.to_string())?
            .run()
            .await
            .map_err(|e| e.to_string())
    })
}
