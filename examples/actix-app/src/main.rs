//! `cargo run -p example-actix`: the example app on actix-web, with the same environment as the
//! axum one: `BIND` (default 127.0.0.1:3000), `REDIS_URL` (default redis://127.0.0.1:6379) and
//! `SESSION_SECRET` (random, with a warning, when unset). Works with no Redis at all.

use example_common::Settings;

#[actix_web::main]
async fn main() -> Result<(), example_common::StartError> {
    example_common::init_tracing();
    // Before Redis is first contacted, so that `GET /metrics` counts from the start; a failure is
    // logged, and `GET /metrics` says why.
    let _ = example_common::metrics::prometheus();
    let Settings { bind, store } = Settings::from_env()?;
    tracing::info!("listening on http://{bind}");
    actix_web::HttpServer::new(move || example_actix::app(store.clone()))
        .bind(bind)?
        .run()
        .await?;
    Ok(())
}
