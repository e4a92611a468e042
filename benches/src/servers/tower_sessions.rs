//! axum + tower-sessions + tower-sessions-redis-store, set up as their docs show (a fred pool of
//! six connections, default configuration), with the same idle timeout as ours.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

use super::IDLE_DAYS;

pub(super) async fn serve(
    addr: SocketAddr,
    redis_url: String,
    always_save: bool,
) -> Result<(), String> {
    let config = Config::from_url(&redis_url).map_err(|e| e.to_string())?;
    let pool = Pool::new(config, None, None, None, 6).map_err(|e| e.to_string())?;
    let _connections = pool.connect();
    pool.wait_for_connect().await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| e.to_string())?;
    axum::serve(listener, router(RedisStore::new(pool), always_save))
        .await
        .map_err(|e| e.to_string())
}

/// The routes behind tower-sessions on `store`; `always_save` is its rolling expiry.
pub fn router<S: SessionStore + Clone>(store: S, always_save: bool) -> Router {
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(IDLE_DAYS)))
        .with_always_save(always_save);
    Router::new()
        .route("/noop", get(|| async { "ok" }))
        .route("/counter", get(read).post(increment))
        .route("/login", post(login))
        .layer(layer)
}

type Reply = Result<Json<Value>, StatusCode>;

fn fail<E>(_: E) -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn read(session: Session) -> Reply {
    let counter: i64 = session.get("counter").await.map_err(fail)?.unwrap_or(0);
    Ok(Json(json!({ "counter": counter })))
}

async fn increment(session: Session) -> Reply {
    let counter = session
        .get::<i64>("counter")
        .await
        .map_err(fail)?
        .unwrap_or(0)
        + 1;
    session.insert("counter", counter).await.map_err(fail)?;
    Ok(Json(json!({ "counter": counter })))
}

async fn login(session: Session, Json(user): Json<Value>) -> Reply {
    session.cycle_id().await.map_err(fail)?;
    session.insert("user", &user).await.map_err(fail)?;
    Ok(Json(user))
}
