//! `SessionEngine::cookie_only`: the engine with no Redis at all, for handler tests. Needs no
//! Redis server, so it runs from the published package too.

use std::time::{Duration, Instant};

use resilient_session::{
    ConnectionState, Error, KeyRing, Session, SessionConfig, SessionEngine, Source, adapter,
};

fn engine() -> SessionEngine {
    let keys = KeyRing::from_secret("cookie-only-test-secret-of-32-bytes-or-more").expect("secret");
    SessionEngine::cookie_only(SessionConfig::new(keys)).expect("cookie-only engine")
}

fn open(engine: &SessionEngine, cookie: Option<&str>) -> Session {
    adapter::open(engine, cookie.map(str::as_bytes))
}

/// The session cookie's `Set-Cookie` value, if the response sets or removes it.
async fn finish(engine: &SessionEngine, session: &Session) -> Option<String> {
    let headers = adapter::finish(engine, session).await;
    headers.session_cookie().map(str::to_owned)
}

/// The `Cookie` header a browser sends back after the `Set-Cookie` value `set`.
fn cookie_header(set: &str) -> String {
    set.split(';').next().expect("name=value").to_owned()
}

#[tokio::test]
async fn values_of_any_key_go_round_in_the_cookie() {
    let engine = engine();
    let first = open(&engine, None);
    assert_eq!(
        first.get::<i64>("counter").await.expect("unset is None"),
        None
    );
    first.insert("counter", 1).await.expect("insert");
    first.insert("note", "not mirrored").await.expect("insert");
    let set = finish(&engine, &first).await.expect("a cookie");

    let next = open(&engine, Some(&cookie_header(&set)));
    assert_eq!(next.get::<i64>("counter").await.expect("get"), Some(1));
    assert_eq!(
        next.get::<String>("note").await.expect("get").as_deref(),
        Some("not mirrored")
    );
    // A key this session never wrote is absent, not "unknown": there is no Redis to hold it.
    assert_eq!(next.get::<String>("other").await.expect("absent"), None);
    assert_eq!(next.source().await, Source::Cookie);
}

#[tokio::test]
async fn a_logout_ends_the_session_in_the_browser() {
    let engine = engine();
    let login = open(&engine, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&engine, &login).await.expect("a cookie"));

    let logout = open(&engine, Some(&cookie));
    logout.destroy().await;
    let removal = finish(&engine, &logout)
        .await
        .expect("the cookie is removed");
    assert!(
        removal.to_ascii_lowercase().contains("max-age=0"),
        "{removal}"
    );

    // A copy of the logged-out cookie, in this process: refused, as during an outage.
    let copy = open(&engine, Some(&cookie));
    assert_eq!(copy.get::<String>("user").await.expect("get"), None);
    assert_eq!(copy.source().await, Source::New);
}

#[tokio::test]
async fn nothing_is_ever_sent_to_redis() {
    let engine = engine();
    let session = open(&engine, None);
    session.insert("k", 1).await.expect("insert");
    finish(&engine, &session).await;

    let started = Instant::now();
    let listed = engine.sessions_of("ada").await;
    assert!(matches!(listed, Err(Error::NotUsed)), "{listed:?}");
    // No index of owners, nothing to queue a revocation for: said, not pretended.
    let revoked = engine.revoke_all("ada").await;
    assert!(matches!(revoked, Err(Error::NotUsed)), "{revoked:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    let health = engine.manager().health();
    assert_eq!(health.state, ConnectionState::NotUsed);
    assert_eq!(health.pool.connections_created, 0);
    assert_eq!(health.error_count, 0);
}
