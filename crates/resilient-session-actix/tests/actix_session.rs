//! `ActixSessionBridge` against a real redis-server: what each actix-session call does to our
//! session.

use actix_session::SessionExt as _;
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use resilient_session_actix::actix_session::ActixSessionBridge;
use resilient_session_actix::{
    KeyRing, RedisManager, SessionConfig, SessionEngine, SessionMiddleware,
};
use serde_json::Value;
use test_redis::RedisServer;

fn store(redis: &RedisServer, max_session_bytes: usize) -> SessionEngine {
    let manager = RedisManager::builder()
        .url(redis.url())
        .build()
        .expect("a manager");
    let keys = KeyRing::from_secret("actix-session-bridge-test-secret-32-bytes").expect("keys");
    SessionEngine::new(
        manager,
        SessionConfig::new(keys).max_session_bytes(max_session_bytes),
    )
    .expect("a store")
}

async fn get(request: HttpRequest, key: web::Path<String>) -> HttpResponse {
    let value: Option<Value> = request.get_session().get(&key).expect("a read");
    HttpResponse::Ok().json(value)
}

async fn set(request: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (key, value) = path.into_inner();
    match request.get_session().insert(key, value) {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn remove(request: HttpRequest, key: web::Path<String>) -> HttpResponse {
    request.get_session().remove(&key);
    HttpResponse::Ok().finish()
}

async fn renew(request: HttpRequest) -> HttpResponse {
    request.get_session().renew();
    HttpResponse::Ok().finish()
}

async fn purge(request: HttpRequest) -> HttpResponse {
    request.get_session().purge();
    HttpResponse::Ok().finish()
}

/// Sends `method path` with `cookie`, returns the status, the JSON body and the cookie after.
macro_rules! send {
    ($app:expr, $cookie:expr, $request:expr) => {{
        let mut request = $request;
        if let Some(cookie) = &$cookie {
            request = request.insert_header((header::COOKIE, cookie.clone()));
        }
        let response = test::call_service(&$app, request.to_request()).await;
        let status = response.status();
        let mut cookie = $cookie.clone();
        if let Some(set) = response.headers().get(header::SET_COOKIE) {
            let set = set.to_str().expect("ASCII").to_owned();
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            let value = pair.split_once('=').map_or("", |(_, value)| value);
            let removed = set.contains("Max-Age=0") || value.is_empty();
            cookie = (!removed).then_some(pair);
        }
        let body = test::read_body(response).await;
        (
            status,
            serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            cookie,
        )
    }};
}

macro_rules! app {
    ($store:expr) => {
        test::init_service(
            App::new()
                .wrap(ActixSessionBridge::new())
                .wrap(SessionMiddleware::new($store))
                .route("/get/{key}", web::get().to(get))
                .route("/set/{key}/{value}", web::post().to(set))
                .route("/remove/{key}", web::post().to(remove))
                .route("/renew", web::post().to(renew))
                .route("/purge", web::post().to(purge)),
        )
        .await
    };
}

const LIMIT: usize = 64 * 1024;

fn keys(redis: &RedisServer) -> Vec<String> {
    redis.query(&["KEYS", "session:{*"])
}

#[actix_rt::test]
async fn values_go_to_redis_and_come_back() {
    let redis = RedisServer::start();
    let app = app!(store(&redis, LIMIT));
    let (status, _, cookie) = send!(
        app,
        None::<String>,
        test::TestRequest::post().uri("/set/a/1")
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&redis).len(), 1);
    let (_, value, cookie) = send!(app, cookie, test::TestRequest::get().uri("/get/a"));
    assert_eq!(value, "1");
    let (_, _, cookie) = send!(app, cookie, test::TestRequest::post().uri("/remove/a"));
    let (_, value, _) = send!(app, cookie, test::TestRequest::get().uri("/get/a"));
    assert_eq!(value, Value::Null, "removed");
}

#[actix_rt::test]
async fn renew_keeps_the_data_under_a_new_id() {
    let redis = RedisServer::start();
    let app = app!(store(&redis, LIMIT));
    let (_, _, before) = send!(
        app,
        None::<String>,
        test::TestRequest::post().uri("/set/a/1")
    );
    let (_, _, after) = send!(app, before, test::TestRequest::post().uri("/renew"));
    assert_ne!(after, before, "a new cookie");
    let (_, value, _) = send!(app, after, test::TestRequest::get().uri("/get/a"));
    assert_eq!(value, "1", "the data kept");
    let (_, value, _) = send!(app, before, test::TestRequest::get().uri("/get/a"));
    assert_eq!(value, Value::Null, "the old id is dead");
}

#[actix_rt::test]
async fn purge_ends_the_session_and_every_copy_of_its_cookie() {
    let redis = RedisServer::start();
    let app = app!(store(&redis, LIMIT));
    let (_, _, cookie) = send!(
        app,
        None::<String>,
        test::TestRequest::post().uri("/set/a/1")
    );
    let (status, _, after) = send!(app, cookie, test::TestRequest::post().uri("/purge"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, None, "the cookie removed");
    assert!(keys(&redis).is_empty(), "nothing left in Redis");
    let (_, value, _) = send!(app, cookie, test::TestRequest::get().uri("/get/a"));
    assert_eq!(value, Value::Null, "a copy of the cookie");
}

#[actix_rt::test]
async fn changes_too_large_answer_500_and_keep_nothing() {
    let redis = RedisServer::start();
    let app = app!(store(&redis, 100));
    let (_, _, cookie) = send!(
        app,
        None::<String>,
        test::TestRequest::post().uri("/set/a/1")
    );
    let large = "y".repeat(200);
    let (status, _, cookie) = send!(
        app,
        cookie,
        test::TestRequest::post().uri(&format!("/set/b/{large}"))
    );
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, value, cookie) = send!(app, cookie, test::TestRequest::get().uri("/get/b"));
    assert_eq!(value, Value::Null, "nothing of it kept");
    let (_, value, _) = send!(app, cookie, test::TestRequest::get().uri("/get/a"));
    assert_eq!(value, "1", "what was there stays");
}
