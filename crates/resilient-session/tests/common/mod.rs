//! Helpers shared by the integration tests of this crate.
#![allow(dead_code)] // each test file uses its own share of the helpers

use std::time::{Duration, Instant};

use resilient_session::adapter;
use resilient_session::{KeyRing, RedisManager, Session, SessionConfig, SessionEngine};
use test_redis::RedisServer;

/// Waits (up to 10 s) until `manager` reports itself connected. The background task connects
/// at start-up; once it has, it sends nothing until the connection is lost, so a test that
/// counts commands starts from a quiet manager.
pub(crate) async fn until_connected(manager: &RedisManager) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !manager.health().is_healthy {
        assert!(
            Instant::now() < deadline,
            "not connected after 10 s: {:?}",
            manager.health()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) const SECRET: &str = "sessions-test-secret-of-at-least-32-bytes";

pub(crate) async fn store_with(server: &RedisServer, config: SessionConfig) -> SessionEngine {
    let manager = RedisManager::builder()
        .url(server.url())
        .build()
        .expect("manager");
    until_connected(&manager).await;
    SessionEngine::new(manager, config).expect("store")
}

pub(crate) async fn store(server: &RedisServer) -> SessionEngine {
    store_with(server, config()).await
}

pub(crate) fn config() -> SessionConfig {
    SessionConfig::new(KeyRing::from_secret(SECRET).expect("secret"))
}

/// The `Cookie` header a browser would send back after the `Set-Cookie` value `set`.
pub(crate) fn cookie_header(set: &str) -> String {
    set.split(';').next().expect("name=value").to_owned()
}

/// Ends `session`'s request: the session cookie's `Set-Cookie` value, if the response sets or
/// removes it.
pub(crate) async fn finish(store: &SessionEngine, session: &Session) -> Option<String> {
    adapter::finish(store, session)
        .await
        .session_cookie()
        .map(str::to_owned)
}

pub(crate) fn open(store: &SessionEngine, cookie: Option<&str>) -> Session {
    adapter::open(store, cookie.map(str::as_bytes))
}

pub(crate) fn session_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = server.query(&["KEYS", "session:*"]);
    keys.retain(|k| k != "session:epoch" && !k.starts_with("session:revoked:"));
    keys
}

/// A stored session with `counter` = 1; returns its cookie header.
pub(crate) async fn stored_session(store: &SessionEngine) -> String {
    let session = open(store, None);
    session.insert("counter", 1).await.expect("insert");
    let set = finish(store, &session)
        .await
        .expect("a new session sets a cookie");
    cookie_header(&set)
}

/// The session of `cookie` writes `key` = `value` while Redis is paused, so the write goes into
/// the cookie; then Redis answers again. Returns the cookie that carries the write.
pub(crate) async fn written_during_a_pause<T: serde::Serialize>(
    server: &RedisServer,
    store: &SessionEngine,
    cookie: &str,
    key: &str,
    value: T,
) -> String {
    server.pause();
    let during = open(store, Some(cookie));
    during.insert(key, value).await.expect("insert");
    let carried = cookie_header(&finish(store, &during).await.expect("into the cookie"));
    server.resume();
    until_connected(store.manager()).await;
    carried
}
