//! `cargo run -p example-axum-login`: axum-login and axum-messages on our session layer, with
//! the examples' environment: `BIND` (default 127.0.0.1:3000), `REDIS_URL` (default
//! redis://127.0.0.1:6379), `SESSION_SECRET` (random, with a warning, when unset). Works with no
//! Redis at all. Log in as `ferris` / `hunter42`:
//! `curl -i -c jar -d username=ferris -d password=hunter42 http://127.0.0.1:3000/login`, then
//! `curl -b jar http://127.0.0.1:3000/`.

use example_common::Settings;

#[tokio::main]
async fn main() -> Result<(), example_common::StartError> {
    example_common::init_tracing();
    let Settings { bind, store } = Settings::from_env_with(example_axum_login::session_config)?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!("listening on http://{bind}");
    axum::serve(listener, example_axum_login::router(store))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
