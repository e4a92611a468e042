//! Helpers shared by the integration tests of this crate.
#![allow(dead_code)] // each test file uses its own share of the helpers

use std::time::{Duration, Instant};

use resilient_session::{KeyRing, RedisManager, Session, SessionConfig, SessionStore};
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

pub(crate) async fn store_with(server: &RedisServer, config: SessionConfig) -> SessionStore {
    let manager = RedisManager::builder()
        .url(server.url())
        .build()
        .expect("manager");
    until_connected(&manager).await;
    SessionStore::new(manager, config).expect("store")
}

pub(crate) async fn store(server: &RedisServer) -> SessionStore {
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
pub(crate) async fn finish(store: &SessionStore, session: &Session) -> Option<String> {
    store
        .finish(session)
        .await
        .session_cookie()
        .map(str::to_owned)
}

pub(crate) fn open(store: &SessionStore, cookie: Option<&str>) -> Session {
    store.open(cookie.map(str::as_bytes))
}

pub(crate) fn session_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = server.query(&["KEYS", "session:*"]);
    keys.retain(|k| k != "session:epoch" && !k.starts_with("session:revoked:"));
    keys
}

/// A stored session with `counter` = 1; returns its cookie header.
pub(crate) async fn stored_session(store: &SessionStore) -> String {
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
    store: &SessionStore,
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
