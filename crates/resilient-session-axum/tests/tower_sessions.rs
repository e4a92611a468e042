//! `TowerSessionLayer` against a real redis-server: what each tower-sessions call does to our
//! session, the edge cases included (flush then new data, clear before any read, a server error,
//! a save after the response, changes too large as a whole).

use std::sync::{Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use resilient_session_axum::tower_sessions::{TowerSession, TowerSessionLayer};
use resilient_session_axum::{KeyRing, RedisManager, SessionConfig, SessionEngine, SessionLayer};
use serde_json::Value;
use test_redis::RedisServer;
use tower::ServiceExt;

/// A tower-sessions session kept past its request, by `/keep`.
static KEPT: OnceLock<Mutex<Option<TowerSession>>> = OnceLock::new();

fn app(redis: &RedisServer, max_session_bytes: usize) -> (Router, String) {
    let manager = RedisManager::builder()
        .url(redis.url())
        .build()
        .expect("a manager");
    let keys = KeyRing::from_secret("tower-sessions-bridge-test-secret-32-bytes").expect("keys");
    let config = SessionConfig::new(keys).max_session_bytes(max_session_bytes);
    let store = SessionEngine::new(manager, config).expect("a store");
    let cookie_name = store.cookie_name().to_owned();
    let fail = || async { StatusCode::INTERNAL_SERVER_ERROR };
    let router = Router::new()
        .route(
            "/get/{key}",
            get(|session: TowerSession, Path(key): Path<String>| async move {
                let value: Option<Value> = session.get(&key).await.expect("a read");
                axum::Json(value)
            }),
        )
        .route(
            "/set/{key}/{value}",
            post(|session: TowerSession, Path((key, value)): Path<(String, String)>| async move {
                match session.insert(&key, value).await {
                    Ok(()) => StatusCode::OK,
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }),
        )
        .route(
            "/cycle",
            post(|session: TowerSession| async move {
                session.cycle_id().await.expect("cycled");
                StatusCode::OK
            }),
        )
        .route(
            "/flush",
            post(|session: TowerSession| async move {
                session.flush().await.expect("flushed");
                StatusCode::OK
            }),
        )
        .route(
            "/flush-then-set/{key}/{value}",
            post(|session: TowerSession, Path((key, value)): Path<(String, String)>| async move {
                session.flush().await.expect("flushed");
                session.insert(&key, value).await.expect("inserted");
                StatusCode::OK
            }),
        )
        .route(
            "/clear",
            post(|session: TowerSession| async move {
                session.clear().await;
                StatusCode::OK
            }),
        )
        .route(
            "/set-then-fail/{key}/{value}",
            post(move |session: TowerSession, Path((key, value)): Path<(String, String)>| async move {
                session.insert(&key, value).await.expect("inserted");
                fail().await
            }),
        )
        .route(
            "/flush-then-fail",
            post(move |session: TowerSession| async move {
                session.flush().await.expect("flushed");
                fail().await
            }),
        )
        .route(
            "/set-two/{small}/{large}",
            post(|session: TowerSession, Path((small, large)): Path<(String, usize)>| async move {
                session.insert(&small, "x").await.expect("inserted");
                session.insert("large", "y".repeat(large)).await.expect("inserted");
                StatusCode::OK
            }),
        )
        .route(
            "/keep",
            post(|session: TowerSession| async move {
                let _: Option<Value> = session.get("a").await.expect("a read");
                *KEPT.get_or_init(Mutex::default).lock().expect("lock") = Some(session);
                StatusCode::OK
            }),
        )
        .layer(TowerSessionLayer::new())
        .layer(SessionLayer::new(store));
    (router, cookie_name)
}

/// A client with a one-cookie jar.
#[derive(Clone)]
struct Client {
    app: Router,
    cookie_name: String,
    cookie: Option<String>,
}

impl Client {
    async fn send(&mut self, post: bool, path: &str) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(if post { "POST" } else { "GET" })
            .uri(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, format!("{}={cookie}", self.cookie_name));
        }
        let request = request.body(Body::empty()).expect("a request");
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().expect("ASCII");
            let pair = set.split(';').next().unwrap_or_default();
            if let Some(value) = pair.strip_prefix(&format!("{}=", self.cookie_name)) {
                let removed = set.contains("Max-Age=0") || value.is_empty();
                self.cookie = (!removed).then(|| value.to_owned());
            }
        }
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn get(&mut self, key: &str) -> Value {
        let (status, value) = self.send(false, &format!("/get/{key}")).await;
        assert_eq!(status, StatusCode::OK);
        value
    }

    async fn post(&mut self, path: &str) -> StatusCode {
        self.send(true, path).await.0
    }
}

fn client(redis: &RedisServer, max_session_bytes: usize) -> Client {
    let (app, cookie_name) = app(redis, max_session_bytes);
    Client {
        app,
        cookie_name,
        cookie: None,
    }
}

const LIMIT: usize = 64 * 1024;

#[tokio::test]
async fn values_written_are_read_back_from_redis() {
    let redis = RedisServer::start();
    let mut client = client(&redis, LIMIT);
    assert_eq!(client.post("/set/a/1").await, StatusCode::OK);
    assert_eq!(client.get("a").await, "1");
    assert_eq!(
        redis.query::<Vec<String>>(&["KEYS", "session:{*"]).len(),
        1,
        "in Redis"
    );
}

#[tokio::test]
async fn cycle_id_keeps_the_data_under_a_new_id() {
    let redis = RedisServer::start();
    let mut client = client(&redis, LIMIT);
    client.post("/set/a/1").await;
    let mut before = client.clone();
    assert_eq!(client.post("/cycle").await, StatusCode::OK);
    assert_ne!(client.cookie, before.cookie, "a new cookie");
    assert_eq!(client.get("a").await, "1", "the data kept");
    assert_eq!(before.get("a").await, Value::Null, "the old id is dead");
}

#[tokio::test]
async fn flush_ends_the_session_and_every_copy_of_its_cookie() {
    let redis = RedisServer::start();
    let mut client = client(&redis, LIMIT);
    client.post("/set/a/1").await;
    let mut copy = client.clone();
    assert_eq!(client.post("/flush").await, StatusCode::OK);
    assert_eq!(client.cookie, None, "the cookie removed");
    assert_eq!(copy.get("a").await, Value::Null);
    assert!(
        redis
            .query::<Vec<String>>(&["KEYS", "session:{*"])
            .is_empty(),
        "nothing left in Redis"
    );
}

#[tokio::test]
async fn flush_then_new_data_is_a_new_session_that_carries_nothing_of_the_old() {
    let redis = RedisServer::start();
    let mut client = client(&redis, LIMIT);
    client.post("/set/a/1").await;
    let mut before = client.clone();
    assert_eq!(client.post("/flush-then-set/b/2").await, StatusCode::OK);
    assert_ne!(client.cookie, before.cookie, "a new cookie");
    assert_eq!(
        client.get("a").await,
        Value::Null,
        "nothing of the old session"
    );
    assert_eq!(client.get("b").await, "2");
    assert_eq!(before.get("a").await, Value::Null, "the old cookie is dead");
}

#[tokio::test]
async fn clear_before_any_read_removes_everything() {
    let redis = RedisServer::start();
    let mut client = client(&redis, LIMIT);
    client.post("/set/a/1").await;
    client.post("/set/b/2").await;
    assert_eq!(client.post("/clear").await, StatusCode::OK);
    assert_eq!(client.get("a").await, Value::Null);
    assert_eq!(client.get("b").await, Value::Null);
}

#[tokio::test]
async fn a_server_error_keeps_no_changes_but_a_logout_in_it_still_ends_the_session() {
    let redis = RedisServer::start();
    let mut client = client(&redis, LIMIT);
    client.post("/set/a/1").await;
    assert_eq!(
        client.post("/set-then-fail/a/9").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(client.get("a").await, "1", "the change of a failed request");
    let mut copy = client.clone();
    assert_eq!(
        client.post("/flush-then-fail").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(copy.get("a").await, Value::Null, "logged out all the same");
}

#[tokio::test]
async fn changes_too_large_as_a_whole_are_refused_whole() {
    let redis = RedisServer::start();
    let mut client = client(&redis, 200);
    client.post("/set/a/1").await;
    assert_eq!(
        client.post("/set-two/b/500").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "too large: the request fails"
    );
    assert_eq!(client.get("b").await, Value::Null, "nothing of it kept");
    assert_eq!(client.get("a").await, "1", "what was there stays");
}

#[tokio::test]
async fn the_session_refuses_to_save_after_the_response() {
    let redis = RedisServer::start();
    let mut client = client(&redis, LIMIT);
    client.post("/set/a/1").await;
    assert_eq!(client.post("/keep").await, StatusCode::OK);
    let kept = KEPT
        .get_or_init(Mutex::default)
        .lock()
        .expect("lock")
        .take()
        .expect("kept");
    kept.insert("late", true).await.expect("in memory");
    assert!(kept.save().await.is_err(), "the request is over");
    assert_eq!(client.get("late").await, Value::Null);
}
