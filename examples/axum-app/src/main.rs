//! `cargo run -p example-axum`: the example app on `BIND` (default 127.0.0.1:3000), with Redis
//! at `REDIS_URL` (default redis://127.0.0.1:6379) and cookies protected by `SESSION_SECRET`
//! (random, with a warning, when unset). Works with no Redis at all: sessions then live in the
//! cookie until Redis appears.

use example_common::Settings;

#[tokio::main]
async fn main() -> Result<(), example_common::StartError> {
    example_common::init_tracing();
    // Before Redis is first contacted, so that `GET /metrics` counts from the start; a failure is
    // logged, and `GET /metrics` says why.
    let _ = example_common::metrics::prometheus();
    let Settings { bind, store } = Settings::from_env()?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!("listening on http://{bind}");
    axum::serve(listener, example_axum::router(store))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
