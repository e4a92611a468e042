//! Importing live sessions of tower-sessions (records in tower-sessions-redis-store's format,
//! written here the way that store writes them) through the engine, with Redis up and down.

use std::collections::HashMap;

use base64::Engine;
use resilient_session::adapter;
use resilient_session::{Import, Source};
use serde_json::{Value, json};
use test_redis::RedisServer;

mod common;

use common::{config, cookie_header, finish, open, session_keys, store_with};

/// What tower-sessions-redis-store keeps at the session id: MessagePack of the record.
#[derive(serde::Serialize)]
struct Record {
    id: i128,
    data: HashMap<String, Value>,
    expiry_date: time::OffsetDateTime,
}

/// A store that imports tower-sessions' sessions (cookie `id`, no key prefix).
async fn importing(server: &RedisServer) -> resilient_session::SessionEngine {
    store_with(
        server,
        config().import_sessions(Import::tower_sessions("id")),
    )
    .await
}

/// Puts an old session in Redis; returns its cookie header (`id=<id>`) and key.
fn old_session(server: &RedisServer, id: i128, expires_in: time::Duration) -> (String, String) {
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_le_bytes());
    let record = Record {
        id,
        data: HashMap::from([
            (
                "user".to_owned(),
                json!({"user_id": "ada", "role": "admin"}),
            ),
            ("counter".to_owned(), json!(2)),
        ]),
        expiry_date: time::OffsetDateTime::now_utc() + expires_in,
    };
    let bytes = rmp_serde::to_vec(&record).expect("encodes");
    let mut conn = server.connection();
    let _: () = test_redis::redis::cmd("SET")
        .arg(&key)
        .arg(bytes)
        .query(&mut conn)
        .expect("SET");
    (format!("id={key}"), key)
}

#[tokio::test]
async fn an_old_session_moves_once_and_its_cookie_is_replaced() {
    let server = RedisServer::start();
    let store = importing(&server).await;
    let (old_cookie, old_key) = old_session(&server, 42, time::Duration::hours(1));

    let session = open(&store, Some(&old_cookie));
    assert_eq!(session.get::<i64>("counter").await.expect("get"), Some(2));
    assert_eq!(session.source().await, Source::Redis);
    let response = adapter::finish(&store, &session).await;
    let headers: Vec<&str> = response.set_cookies().collect();
    assert_eq!(headers.len(), 2, "{response:?}");
    assert!(
        headers[0].starts_with(&format!("{}=", store.cookie_name())),
        "ours"
    );
    let set = headers[0].to_owned();
    assert!(
        headers[1].starts_with("id=;") && headers[1].contains("Max-Age=0"),
        "the old one removed"
    );
    assert_eq!(server.query::<i64>(&["EXISTS", &old_key]), 0);
    assert_eq!(session_keys(&server).len(), 1);
    assert_eq!(store.stats().sessions_imported, 1);

    // Our cookie from now on; the old one again (a stale tab) finds nothing to import.
    let next = open(&store, Some(&cookie_header(&set)));
    assert_eq!(next.get::<i64>("counter").await.expect("get"), Some(2));
    let stale = open(&store, Some(&old_cookie));
    assert_eq!(stale.get::<i64>("counter").await.expect("get"), None);
}

#[tokio::test]
async fn with_redis_down_the_old_session_waits_and_nothing_forks() {
    let mut server = RedisServer::builder().persistent().start();
    let store = importing(&server).await;
    let (old_cookie, old_key) = old_session(&server, 7, time::Duration::hours(1));

    server.kill();
    let session = open(&store, Some(&old_cookie));
    let unknown = session.get::<i64>("counter").await.expect_err("not known");
    assert!(unknown.is_unavailable(), "{unknown}");
    // A write now would start a second session beside the old one: it is not kept.
    let _ = session.insert("counter", 1).await;
    assert!(
        adapter::finish(&store, &session)
            .await
            .set_cookies()
            .next()
            .is_none(),
        "no cookie set or removed"
    );

    server.restart();
    common::until_connected(store.manager()).await;
    assert_eq!(server.query::<i64>(&["EXISTS", &old_key]), 1, "still there");
    let later = open(&store, Some(&old_cookie));
    assert_eq!(later.get::<i64>("counter").await.expect("get"), Some(2));
    assert!(finish(&store, &later).await.is_some());
    assert_eq!(server.query::<i64>(&["EXISTS", &old_key]), 0);
}

#[tokio::test]
async fn an_expired_or_unknown_old_session_starts_fresh_and_loses_its_cookie() {
    let server = RedisServer::start();
    let store = importing(&server).await;
    let (expired, _) = old_session(&server, 9, time::Duration::seconds(-5));
    let unknown = format!(
        "id={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(11i128.to_le_bytes())
    );
    for cookie in [expired, unknown] {
        let session = open(&store, Some(&cookie));
        assert_eq!(
            session.get::<i64>("counter").await.expect("get"),
            None,
            "{cookie}"
        );
        let response = adapter::finish(&store, &session).await;
        let removed: Vec<&str> = response.set_cookies().collect();
        assert!(
            removed.len() == 1 && removed[0].starts_with("id=;"),
            "the old cookie is removed: {removed:?}"
        );
    }
    assert!(session_keys(&server).is_empty());
}

#[tokio::test]
async fn our_cookie_wins_over_an_old_one() {
    let server = RedisServer::start();
    let store = importing(&server).await;
    let (old_cookie, old_key) = old_session(&server, 5, time::Duration::hours(1));
    let ours = common::stored_session(&store).await;
    let both = open(&store, Some(&format!("{ours}; {old_cookie}")));
    assert_eq!(
        both.get::<i64>("counter").await.expect("get"),
        Some(1),
        "ours"
    );
    assert_eq!(
        server.query::<i64>(&["EXISTS", &old_key]),
        1,
        "not imported"
    );
}

#[tokio::test]
async fn nothing_is_deleted_before_our_copy_is_written() {
    let server = RedisServer::start();
    let store = importing(&server).await;
    let (old_cookie, old_key) = old_session(&server, 3, time::Duration::hours(1));
    // The handler reads the session, then the request is dropped (client gone, handler error).
    let session = open(&store, Some(&old_cookie));
    assert_eq!(session.get::<i64>("counter").await.expect("get"), Some(2));
    drop(session);
    assert_eq!(server.query::<i64>(&["EXISTS", &old_key]), 1, "still there");
    // The next try imports it.
    let retry = open(&store, Some(&old_cookie));
    assert_eq!(retry.get::<i64>("counter").await.expect("get"), Some(2));
    assert!(finish(&store, &retry).await.is_some());
    assert_eq!(server.query::<i64>(&["EXISTS", &old_key]), 0);
}

#[tokio::test]
async fn data_over_our_limits_is_not_imported_nor_deleted() {
    let server = RedisServer::start();
    let config = config()
        .max_session_bytes(16)
        .import_sessions(Import::tower_sessions("id"));
    let store = store_with(&server, config).await;
    let (old_cookie, old_key) = old_session(&server, 4, time::Duration::hours(1));
    let session = open(&store, Some(&old_cookie));
    assert_eq!(session.get::<i64>("counter").await.expect("get"), None);
    assert_eq!(store.stats().corrupt_sessions, 1);
    assert_eq!(store.stats().sessions_imported, 0);
    adapter::finish(&store, &session).await;
    assert_eq!(
        server.query::<i64>(&["EXISTS", &old_key]),
        1,
        "not ours to delete"
    );
}

#[test]
fn the_old_cookie_name_must_differ_from_ours() {
    let same = config().import_sessions(Import::tower_sessions(config().full_cookie_name()));
    let err = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let manager = resilient_session::RedisManager::builder()
                .build()
                .expect("manager");
            resilient_session::SessionEngine::new(manager, same)
        })
        .expect_err("refused");
    assert!(err.to_string().contains("another name"), "{err}");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for bad in ["", "a b", "a;b"] {
        let config = config().import_sessions(Import::tower_sessions(bad));
        let refused = runtime.block_on(async {
            let manager = resilient_session::RedisManager::builder()
                .build()
                .expect("manager");
            resilient_session::SessionEngine::new(manager, config)
        });
        assert!(refused.is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn an_import_keeps_the_old_sessions_deadline() {
    let server = RedisServer::start();
    let store = importing(&server).await;
    let (old_cookie, _) = old_session(&server, 21, time::Duration::hours(1));
    let session = open(&store, Some(&old_cookie));
    assert_eq!(session.get::<i64>("counter").await.expect("get"), Some(2));
    finish(&store, &session).await.expect("our cookie");
    let key = session_keys(&server).pop().expect("imported");
    let ttl: i64 = server.query(&["TTL", &key]);
    assert!(
        (3590..=3600).contains(&ttl),
        "the old session would have ended in an hour; so does ours: {ttl} s"
    );
}

#[tokio::test]
async fn a_refused_import_write_deletes_nothing_until_our_copy_exists() {
    let server = RedisServer::start();
    let store = importing(&server).await;
    let (old_cookie, old_key) = old_session(&server, 8, time::Duration::hours(1));
    server.run(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.run(&["CONFIG", "SET", "maxmemory", "1"]);

    // Reads work out of memory, writes do not.
    let session = open(&store, Some(&old_cookie));
    assert_eq!(session.get::<i64>("counter").await.expect("get"), Some(2));
    let response = adapter::finish(&store, &session).await;
    assert_eq!(
        server.query::<i64>(&["EXISTS", &old_key]),
        1,
        "our copy is not in Redis: the old one stays"
    );
    assert!(session_keys(&server).is_empty());
    // The data rides in our cookie meanwhile; the old cookie goes.
    let cookies: Vec<&str> = response.set_cookies().collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let ours = cookie_header(cookies[0]);

    server.run(&["CONFIG", "SET", "maxmemory", "0"]);
    common::until_connected(store.manager()).await;
    let later = open(&store, Some(&ours));
    assert_eq!(later.get::<i64>("counter").await.expect("get"), Some(2));
    finish(&store, &later).await.expect("moved to Redis");
    assert_eq!(session_keys(&server).len(), 1, "in Redis now");
    for _ in 0..200 {
        if server.query::<i64>(&["EXISTS", &old_key]) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the old key was not deleted once ours was written");
}

#[tokio::test]
async fn a_logout_after_an_import_in_the_same_request_deletes_the_old_key() {
    let server = RedisServer::start();
    let store = importing(&server).await;
    let (old_cookie, old_key) = old_session(&server, 12, time::Duration::hours(1));
    let session = open(&store, Some(&old_cookie));
    assert_eq!(session.get::<i64>("counter").await.expect("get"), Some(2));
    session.destroy().await;
    let response = adapter::finish(&store, &session).await;
    assert_eq!(server.query::<i64>(&["EXISTS", &old_key]), 0, "deleted");
    assert!(session_keys(&server).is_empty());
    assert!(
        response.set_cookies().any(|c| c.starts_with("id=;")),
        "and its cookie removed"
    );
    let again = open(&store, Some(&old_cookie));
    assert_eq!(again.get::<i64>("counter").await.expect("get"), None);
}
