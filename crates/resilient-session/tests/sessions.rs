//! The session engine driven directly (`open` → handler → `finish`), against a real
//! redis-server: races, the schema hook, size limits, key rotation, signed cookies.

use std::collections::BTreeMap;

use resilient_session::adapter;
use resilient_session::{CookieMode, Error, KeyRing, SessionConfig, Source};
use serde_json::json;
use test_redis::RedisServer;

mod common;

use common::{
    config, cookie_header, finish, open, session_keys, store, store_with, stored_session,
};

#[tokio::test]
async fn concurrent_requests_changing_different_keys_both_persist() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let cookie = stored_session(&store).await;

    let first = open(&store, Some(&cookie));
    let second = open(&store, Some(&cookie));
    // Both load the same state, then each changes its own key.
    assert_eq!(first.get::<i64>("counter").await.expect("get"), Some(1));
    assert_eq!(second.get::<i64>("counter").await.expect("get"), Some(1));
    first.insert("a", "from first").await.expect("insert");
    second.insert("b", "from second").await.expect("insert");
    tokio::join!(finish(&store, &first), finish(&store, &second));

    let check = open(&store, Some(&cookie));
    assert_eq!(
        check.get::<String>("a").await.expect("get").as_deref(),
        Some("from first")
    );
    assert_eq!(
        check.get::<String>("b").await.expect("get").as_deref(),
        Some("from second")
    );
    assert_eq!(check.get::<i64>("counter").await.expect("get"), Some(1));
}

#[tokio::test]
async fn a_late_write_does_not_bring_back_a_session_deleted_meanwhile() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let cookie = stored_session(&store).await;

    // A slow request loads the session...
    let slow = open(&store, Some(&cookie));
    slow.get::<i64>("counter").await.expect("loads");
    // ...a logout completes meanwhile...
    let logout = open(&store, Some(&cookie));
    logout.destroy().await;
    let removal = finish(&store, &logout).await.expect("removal cookie");
    assert!(removal.contains("Max-Age=0"));
    assert!(session_keys(&server).is_empty());
    // ...then the slow request writes.
    slow.insert("counter", 2).await.expect("insert");
    let set = finish(&store, &slow).await.expect("a removal cookie");
    assert!(set.contains("Max-Age=0"), "{}", set);
    assert!(
        session_keys(&server).is_empty(),
        "the session stays deleted"
    );
}

#[tokio::test]
async fn writing_an_equal_value_writes_nothing() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let cookie = stored_session(&store).await;
    server.reset_stats();
    let session = open(&store, Some(&cookie));
    session.insert("counter", 1).await.expect("insert");
    assert_eq!(finish(&store, &session).await, None);
    assert_eq!(
        server.commandstats(),
        BTreeMap::from([("hgetall".to_owned(), 1)])
    );
}

#[tokio::test]
async fn the_schema_hook_turns_invalid_data_into_a_fresh_session() {
    let server = RedisServer::start();
    let store = store_with(
        &server,
        config().validate(|data| match data.get("counter") {
            Some(counter) if !counter.is_i64() => Err("counter must be an integer".into()),
            _ => Ok(()),
        }),
    )
    .await;
    let cookie = stored_session(&store).await;
    let key = session_keys(&server).pop().expect("stored");
    server.run(&["HSET", &key, "counter", "\"seven\""]);

    let session = open(&store, Some(&cookie));
    assert_eq!(session.source().await, Source::New);
    assert!(session.is_empty().await);
    assert!(
        session_keys(&server).is_empty(),
        "the invalid session is deleted"
    );
    let set = finish(&store, &session).await.expect("removal");
    assert!(set.contains("Max-Age=0"));
    assert_eq!(store.stats().corrupt_sessions, 1);
}

#[tokio::test]
async fn sessions_have_a_size_limit() {
    let server = RedisServer::start();
    let store = store_with(&server, config().max_session_bytes(1024)).await;
    let session = open(&store, None);
    let err = session
        .insert("blob", "x".repeat(2000))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, Error::SessionTooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert!(session.is_empty().await, "nothing was stored");

    // A session that grew too large in Redis (another writer) counts as corrupt.
    let cookie = stored_session(&store).await;
    let key = session_keys(&server).pop().expect("stored");
    let big = format!("\"{}\"", "y".repeat(2000));
    server.run(&["HSET", &key, "blob", &big]);
    let session = open(&store, Some(&cookie));
    assert_eq!(session.source().await, Source::New);
    assert!(session_keys(&server).is_empty());
}

#[tokio::test]
async fn a_value_that_does_not_decode_is_a_typed_error() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let session = open(&store, None);
    session
        .insert("user", json!({"id": 1}))
        .await
        .expect("insert");
    let err = session
        .get::<String>("user")
        .await
        .expect_err("not a string");
    assert!(err.is_decode(), "{err}");
    assert!(err.to_string().contains("`user`"), "{err}");
}

#[tokio::test]
async fn rotated_keys_keep_sessions_and_new_cookies_use_the_newest_key() {
    let server = RedisServer::start();
    let old = store(&server).await;
    let cookie = stored_session(&old).await;

    let rotated = store_with(
        &server,
        SessionConfig::new(
            KeyRing::new(["a-brand-new-secret-of-at-least-32-bytes", common::SECRET])
                .expect("ring"),
        ),
    )
    .await;
    let session = open(&rotated, Some(&cookie));
    assert_eq!(session.get::<i64>("counter").await.expect("get"), Some(1));
    session.insert("counter", 2).await.expect("insert");
    session.cycle_id().await;
    let fresh = cookie_header(&finish(&rotated, &session).await.expect("new cookie"));

    let with_old_keys = open(&old, Some(&fresh));
    assert_eq!(
        with_old_keys.source().await,
        Source::New,
        "the new cookie is under the new key"
    );
    let with_new_keys = open(&rotated, Some(&fresh));
    assert_eq!(
        with_new_keys.get::<i64>("counter").await.expect("get"),
        Some(2)
    );
}

#[tokio::test]
async fn signed_cookies_work_like_private_ones() {
    let server = RedisServer::start();
    let store = store_with(
        &server,
        config()
            .cookie_mode(CookieMode::Signed)
            .mirrored_keys(["user"]),
    )
    .await;
    let session = open(&store, None);
    session.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &session).await.expect("cookie"));
    let again = open(&store, Some(&cookie));
    assert_eq!(
        again.get::<String>("user").await.expect("get").as_deref(),
        Some("ada")
    );
    assert_eq!(again.source().await, Source::Redis);
}

#[tokio::test]
async fn clearing_a_session_ends_it() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let cookie = stored_session(&store).await;
    let session = open(&store, Some(&cookie));
    session.clear().await;
    let set = finish(&store, &session).await.expect("removal");
    assert!(set.contains("Max-Age=0"));
    assert!(session_keys(&server).is_empty());
}

#[test]
fn short_secrets_are_refused_at_start_up() {
    let err = KeyRing::from_secret("only-20-bytes-long!!").expect_err("too short");
    assert!(err.to_string().contains("at least 32"), "{err}");
}

#[tokio::test]
async fn a_mirror_too_large_for_the_cookie_is_left_out_not_the_session() {
    let server = RedisServer::start();
    let store = store_with(&server, config().mirrored_keys(["profile"])).await;
    let session = open(&store, None);
    session
        .insert("profile", "p".repeat(5000))
        .await
        .expect("fits the session");
    let set = finish(&store, &session)
        .await
        .expect("a cookie all the same");
    let name_value = cookie_header(&set);
    assert!(name_value.len() <= 4096, "{} bytes", name_value.len());
    assert_eq!(store.stats().oversized_cookies, 1);

    let again = open(&store, Some(&name_value));
    assert_eq!(again.source().await, Source::Redis);
    assert_eq!(
        again
            .get::<String>("profile")
            .await
            .expect("get")
            .map(|p| p.len()),
        Some(5000)
    );
}

#[tokio::test]
async fn save_reports_changes_that_do_not_fit_the_cookie_while_redis_is_down() {
    let mut server = RedisServer::start();
    let store = store_with(&server, config().mirrored_keys(["user"])).await;
    let session = open(&store, None);
    session.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &session).await.expect("cookie"));
    server.kill();

    let session = open(&store, Some(&cookie));
    assert_eq!(session.source().await, Source::Cookie);
    session
        .insert("notes", "n".repeat(5000))
        .await
        .expect("fits the session limit");
    let err = session.save().await.expect_err("does not fit the cookie");
    assert!(matches!(err, Error::CookieTooLarge { .. }), "{err}");

    let set = finish(&store, &session)
        .await
        .expect("a cookie all the same");
    let name_value = cookie_header(&set);
    assert!(name_value.len() <= 4096, "{} bytes", name_value.len());
    let again = open(&store, Some(&name_value));
    assert_eq!(
        again.get::<String>("user").await.expect("get").as_deref(),
        Some("ada"),
        "the mirror is kept"
    );
    let dropped = again
        .get_value("notes")
        .await
        .expect_err("dropped: not known any more");
    assert!(
        matches!(dropped, Error::ValueUnavailable { .. }),
        "{dropped}"
    );
    assert!(store.stats().oversized_cookies >= 1);

    // What fits is saved without complaint.
    let small = open(&store, Some(&name_value));
    small.insert("theme", "dark").await.expect("insert");
    small.save().await.expect("fits");
}

#[tokio::test]
async fn saves_go_by_script_hash_and_survive_a_flushed_script_cache() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let cookie = stored_session(&store).await; // loads the script with EVAL after NOSCRIPT

    server.reset_stats();
    let session = open(&store, Some(&cookie));
    session.insert("counter", 2).await.expect("insert");
    adapter::finish(&store, &session).await;
    let stats = server.commandstats();
    assert_eq!(stats.get("evalsha"), Some(&1), "{stats:?}");
    assert_eq!(
        stats.get("eval"),
        None,
        "the hash is the script's: {stats:?}"
    );

    server.run(&["SCRIPT", "FLUSH"]);
    let session = open(&store, Some(&cookie));
    session.insert("counter", 3).await.expect("insert");
    adapter::finish(&store, &session).await;
    let check = open(&store, Some(&cookie));
    assert_eq!(check.get::<i64>("counter").await.expect("get"), Some(3));
}

#[tokio::test]
async fn thousands_of_fields_are_saved_and_removed_in_one_script() {
    // Past what Lua's `unpack` takes at once (about 8,000 arguments: 4,000 field/value pairs).
    const FIELDS: usize = 4200;
    let server = RedisServer::start();
    let store = store(&server).await;
    let session = open(&store, None);
    for n in 0..FIELDS {
        session.insert(&format!("k{n}"), n).await.expect("insert");
    }
    let cookie = cookie_header(&finish(&store, &session).await.expect("a cookie"));
    let key = session_keys(&server).pop().expect("written to Redis");
    let fields: usize = server.query(&["HLEN", &key]);
    assert_eq!(
        fields,
        FIELDS + 2,
        "every field, the stamp and the creation time"
    );

    let next = open(&store, Some(&cookie));
    for n in 0..FIELDS - 1 {
        next.remove(&format!("k{n}")).await;
    }
    finish(&store, &next).await;
    let fields: usize = server.query(&["HLEN", &key]);
    assert_eq!(fields, 3);
    let last = open(&store, Some(&cookie));
    assert_eq!(
        last.get::<usize>(&format!("k{}", FIELDS - 1))
            .await
            .expect("get"),
        Some(FIELDS - 1)
    );
}
