//! The auth crates on our engine, through the auth example apps against a real redis-server:
//! axum-login and axum-messages (`example-axum-login`), actix-identity and
//! actix-web-flash-messages (`example-actix-identity`), the same HTTP contract on both.

use std::time::Duration;

use conformance::{Client, Reply, TestApp, defaults, session_keys, wait_until};
use serde_json::{Value, json};
use test_redis::RedisServer;

conformance::scenarios!(
    login_shows_the_flash_message_once_then_logout_ends_the_session,
    bad_credentials_are_refused_and_leave_no_session,
    a_cookie_from_a_login_is_dead_after_logout,
    a_login_over_another_gives_a_new_session_id,
    a_logout_when_the_cookie_cannot_stand_in_still_ends_the_session,
    a_login_survives_an_outage_and_returns_to_redis,
    logout_during_an_outage_ends_every_copy_and_is_replayed,
);

const FERRIS: [(&str, &str); 2] = [("username", "ferris"), ("password", "hunter42")];

async fn login(client: &mut Client) -> Reply {
    let reply = client.post_form("/login", &FERRIS).await;
    assert_eq!(reply.status, 303, "login: {}", reply.text);
    assert_eq!(reply.header("location").as_deref(), Some("/"));
    reply
}

/// `GET /` as a logged-in ferris: the messages it showed, and where the session came from.
async fn home(client: &mut Client) -> (Value, String) {
    let reply = client.get("/").await;
    assert_eq!(reply.status, 200, "GET /: {}", reply.text);
    assert_eq!(reply.json["user"], "ferris", "{}", reply.json);
    let source = reply.json["source"].as_str().unwrap_or_default().to_owned();
    (reply.json["messages"].clone(), source)
}

async fn login_shows_the_flash_message_once_then_logout_ends_the_session(
    framework: conformance::Framework,
) {
    let redis = RedisServer::start();
    let app = TestApp::start_auth(framework, &redis, defaults).await;
    let mut client = app.client();
    assert_eq!(client.get("/").await.status, 401, "not logged in yet");

    login(&mut client).await;
    assert_eq!(
        home(&mut client).await,
        (json!(["Welcome, ferris"]), "redis".to_owned())
    );
    assert_eq!(
        home(&mut client).await,
        (json!([]), "redis".to_owned()),
        "a flash message is shown once"
    );
    assert_eq!(session_keys(&redis).len(), 1, "one session in Redis");

    assert_eq!(client.post("/logout").await.status, 204);
    assert_eq!(client.get("/").await.status, 401, "logged out");
    assert_eq!(session_keys(&redis), Vec::<String>::new(), "nothing left");
}

async fn bad_credentials_are_refused_and_leave_no_session(framework: conformance::Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start_auth(framework, &redis, defaults).await;
    let mut client = app.client();
    for fields in [
        [("username", "ferris"), ("password", "hunter43")],
        [("username", "crab"), ("password", "hunter42")],
    ] {
        let reply = client.post_form("/login", &fields).await;
        assert_eq!(reply.status, 401, "{fields:?}: {}", reply.text);
        assert_eq!(client.get("/").await.status, 401);
    }
    assert_eq!(session_keys(&redis), Vec::<String>::new());
}

async fn a_cookie_from_a_login_is_dead_after_logout(framework: conformance::Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start_auth(framework, &redis, defaults).await;
    let mut client = app.client();
    login(&mut client).await;
    home(&mut client).await;
    let mut stolen = client.fork();
    assert_eq!(client.post("/logout").await.status, 204);
    assert_eq!(stolen.get("/").await.status, 401, "a copy of the cookie");
    assert_eq!(
        stolen.post("/logout").await.status,
        204,
        "logging out again is harmless"
    );
    assert_eq!(stolen.get("/").await.status, 401);
}

async fn a_login_over_another_gives_a_new_session_id(framework: conformance::Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start_auth(framework, &redis, defaults).await;
    // A session someone logged in to, planted in another browser: its cookie is known to them.
    let mut client = app.client();
    login(&mut client).await;
    let mut planted = client.fork();
    login(&mut client).await;
    home(&mut client).await;
    assert_eq!(
        planted.get("/").await.status,
        401,
        "the id from before the login is dead"
    );
    assert_eq!(session_keys(&redis).len(), 1);
}

async fn a_logout_when_the_cookie_cannot_stand_in_still_ends_the_session(
    framework: conformance::Framework,
) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start_auth(framework, &redis, |config| {
        config.fallback_max_age(Duration::from_secs(1))
    })
    .await;
    let mut client = app.client();
    login(&mut client).await;
    home(&mut client).await;
    let mut copy = client.fork();

    redis.kill();
    // The cookie says when Redis last confirmed it in whole seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        client.get("/").await.status,
        401,
        "past fallback_max_age nothing about the session is known"
    );
    assert_eq!(client.post("/logout").await.status, 204);

    redis.restart();
    until_replayed(&app, &redis).await;
    assert_eq!(
        copy.get("/").await.status,
        401,
        "a copy of the cookie, Redis back"
    );
}

/// Until Redis is back and the logout queued meanwhile removed the session.
async fn until_replayed(app: &TestApp, redis: &RedisServer) {
    let store = app.store.clone();
    wait_until(Duration::from_secs(10), "the logout is replayed", || {
        let store = store.clone();
        let redis_keys = session_keys(redis);
        async move { store.manager().health().is_healthy && redis_keys.is_empty() }
    })
    .await;
}

/// Until `client`'s session is served from Redis again after its return.
async fn back_on_redis(app: &TestApp, client: &Client) {
    let store = app.store.clone();
    wait_until(Duration::from_secs(10), "the manager reconnects", || {
        let store = store.clone();
        async move { store.manager().health().is_healthy }
    })
    .await;
    let client = client.clone();
    wait_until(Duration::from_secs(5), "served from Redis", || {
        let mut client = client.clone();
        async move { client.get("/").await.json["source"] == "redis" }
    })
    .await;
}

async fn a_login_survives_an_outage_and_returns_to_redis(framework: conformance::Framework) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start_auth(framework, &redis, defaults).await;
    let mut client = app.client();
    login(&mut client).await;
    home(&mut client).await;

    redis.kill();
    assert_eq!(
        home(&mut client).await,
        (json!([]), "cookie".to_owned()),
        "still logged in, from the cookie"
    );

    redis.restart();
    back_on_redis(&app, &client).await;
    assert_eq!(home(&mut client).await, (json!([]), "redis".to_owned()));
    assert_eq!(client.post("/logout").await.status, 204);
    assert_eq!(client.get("/").await.status, 401);
}

async fn logout_during_an_outage_ends_every_copy_and_is_replayed(
    framework: conformance::Framework,
) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start_auth(framework, &redis, defaults).await;
    let mut client = app.client();
    login(&mut client).await;
    home(&mut client).await;
    let mut copy = client.fork();

    redis.kill();
    assert_eq!(home(&mut client).await.1, "cookie");
    assert_eq!(client.post("/logout").await.status, 204, "logout works");
    assert_eq!(client.get("/").await.status, 401);
    assert_eq!(copy.get("/").await.status, 401, "a copy of the cookie too");

    redis.restart();
    until_replayed(&app, &redis).await;
    assert_eq!(copy.get("/").await.status, 401, "the copy, Redis back");

    // And the user logs in again, on Redis.
    login(&mut client).await;
    assert_eq!(
        home(&mut client).await,
        (json!(["Welcome, ferris"]), "redis".to_owned())
    );
}
