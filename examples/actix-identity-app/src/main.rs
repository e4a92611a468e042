//! `cargo run -p example-actix-identity`: actix-identity and actix-web-flash-messages on our
//! session middleware, with the examples' environment: `BIND` (default 127.0.0.1:3000),
//! `REDIS_URL` (default redis://127.0.0.1:6379), `SESSION_SECRET` (random, with a warning, when
//! unset). Works with no Redis at all. Log in as `ferris` / `hunter42`:
//! `curl -i -c jar -d username=ferris -d password=hunter42 http://127.0.0.1:3000/login`, then
//! `curl -b jar http://127.0.0.1:3000/`.

use example_common::Settings;

#[actix_web::main]
async fn main() -> Result<(), example_common::StartError> {
    example_common::init_tracing();
    let Settings { bind, store } = Settings::from_env_with(example_actix_identity::session_config)?;
    tracing::info!("listening on http://{bind}");
    actix_web::HttpServer::new(move || example_actix_identity::app(store.clone()))
        .bind(bind)?
        .run()
        .await?;
    Ok(())
}
