//! actix-web + actix-session + its Redis store (`RedisSessionStore::new`, a redis-rs connection
//! manager), with the same idle timeout as ours.

use std::net::SocketAddr;

use actix_session::config::{PersistentSession, TtlExtensionPolicy};
use actix_session::storage::{RedisSessionStore, SessionStore};
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::Key;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use super::IDLE_DAYS;

pub(super) fn serve(addr: SocketAddr, redis_url: String, rolling: bool) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let store = RedisSessionStore::new(redis_url)
            .await
            .map_err(|e| e.to_string())?;
        HttpServer::new(move || {
            App::new()
                .wrap(middleware(store.clone(), rolling))
                .configure(routes)
        })
        .bind(addr)
        .map_err(|e| e.to_string())?
        .run()
        .await
        .map_err(|e| e.to_string())
    })
}

/// actix-session on `store`, with a fixed key; `rolling` is its rolling expiry
/// (`TtlExtensionPolicy::OnEveryRequest`).
pub fn middleware<S: SessionStore>(store: S, rolling: bool) -> SessionMiddleware<S> {
    let policy = if rolling {
        TtlExtensionPolicy::OnEveryRequest
    } else {
        TtlExtensionPolicy::OnStateChanges
    };
    let lifecycle = PersistentSession::default()
        .session_ttl(actix_web::cookie::time::Duration::days(IDLE_DAYS))
        .session_ttl_extension_policy(policy);
    SessionMiddleware::builder(store, Key::from(&[7u8; 64]))
        .cookie_secure(false)
        .session_lifecycle(lifecycle)
        .build()
}

/// The routes, to be wrapped in [`middleware`].
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/noop", web::get().to(|| async { "ok" }))
        .route("/counter", web::get().to(read))
        .route("/counter", web::post().to(increment))
        .route("/login", web::post().to(login));
}

async fn read(session: Session) -> HttpResponse {
    match session.get::<i64>("counter") {
        Ok(counter) => HttpResponse::Ok().json(json!({ "counter": counter.unwrap_or(0) })),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn increment(session: Session) -> HttpResponse {
    let counter = session.get::<i64>("counter").ok().flatten().unwrap_or(0) + 1;
    match session.insert("counter", counter) {
        Ok(()) => HttpResponse::Ok().json(json!({ "counter": counter })),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn login(session: Session, user: web::Json<Value>) -> HttpResponse {
    session.renew();
    match session.insert("user", &*user) {
        Ok(()) => HttpResponse::Ok().json(&*user),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
