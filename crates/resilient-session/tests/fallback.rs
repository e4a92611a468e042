//! The cookie standing in for Redis, at its edges: what it does not carry is unknown, not
//! absent; what does not fit gives way in order, removals last; a cookie of an older key never
//! stands in on its own. The engine driven directly against a real redis-server.

use std::time::Duration;

use resilient_session::{Error, KeyRing, SessionConfig, SessionEngine, Source};
use test_redis::RedisServer;

mod common;
use common::{SECRET, config, cookie_header, finish, open, session_keys, store_with};

#[tokio::test]
async fn a_key_the_cookie_does_not_carry_is_unavailable_not_absent() {
    let mut server = RedisServer::start();
    let store = store_with(&server, config().mirrored_keys(["user"])).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    login.insert("mfa_pending", true).await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));

    server.kill();
    let session = open(&store, Some(&cookie));
    assert_eq!(session.source().await, Source::Cookie);
    assert_eq!(
        session
            .get::<String>("user")
            .await
            .expect("mirrored")
            .as_deref(),
        Some("ada")
    );
    let err = session
        .get::<bool>("mfa_pending")
        .await
        .expect_err("not carried by the cookie: not known");
    assert!(
        matches!(&err, Error::ValueUnavailable { key } if key == "mfa_pending"),
        "{err}"
    );
    assert!(err.is_unavailable(), "handlers can answer 503 on it");
    assert!(
        !err.to_string().contains(&cookie),
        "no cookie in the message"
    );
    // What the handler writes meanwhile is known again.
    session.insert("mfa_pending", false).await.expect("insert");
    assert_eq!(
        session.get::<bool>("mfa_pending").await.expect("known"),
        Some(false)
    );
    // And a key known to be gone is absent.
    session.remove("user").await;
    assert_eq!(session.get::<String>("user").await.expect("known"), None);
}

#[tokio::test]
async fn removing_what_the_cookie_carries_during_an_outage_does_not_end_the_session() {
    let mut server = RedisServer::builder().persistent().start();
    let store = store_with(&server, config().mirrored_keys(["user"])).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    login.insert("cart", 3).await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));

    server.kill();
    // The handler empties what it can see: the cookie does not carry `cart`, so the session is
    // not empty, and must not end (nor lose `cart`).
    let session = open(&store, Some(&cookie));
    session.clear().await;
    let set = finish(&store, &session).await.expect("a cookie");
    assert!(!set.contains("Max-Age=0"), "not a logout: {set}");
    let during = cookie_header(&set);
    assert_eq!(store.stats().revocations_pending, 0, "no logout queued");

    server.restart();
    common::until_connected(store.manager()).await;
    let after = open(&store, Some(&during));
    assert_eq!(
        after.get::<String>("user").await.expect("get"),
        None,
        "removed"
    );
    assert_eq!(
        after.get::<i64>("cart").await.expect("get"),
        Some(3),
        "kept"
    );
}

#[tokio::test]
async fn an_overflowing_outage_cookie_keeps_its_removals() {
    let mut server = RedisServer::builder().persistent().start();
    let store = store_with(&server, config().mirrored_keys(["user"])).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    login.insert("admin", true).await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));

    server.kill();
    // Redis down: a privilege taken away, and a note too big for the cookie.
    let session = open(&store, Some(&cookie));
    session.remove("admin").await;
    session
        .insert("notes", "n".repeat(5000))
        .await
        .expect("insert");
    let err = session.save().await.expect_err("the note does not fit");
    assert!(matches!(err, Error::CookieTooLarge { .. }), "{err}");
    let during = cookie_header(&finish(&store, &session).await.expect("a cookie"));
    assert!(during.len() <= 4096);

    server.restart();
    common::until_connected(store.manager()).await;
    let after = open(&store, Some(&during));
    assert_eq!(
        after.get::<String>("user").await.expect("get").as_deref(),
        Some("ada")
    );
    assert_eq!(
        after.get::<bool>("admin").await.expect("get"),
        None,
        "the removal reached Redis: the privilege does not come back"
    );
    assert_eq!(after.get::<String>("notes").await.expect("get"), None);
}

#[tokio::test]
async fn removals_that_do_not_fit_end_the_session_rather_than_come_back() {
    let mut server = RedisServer::builder().persistent().start();
    let store = store_with(&server, config().mirrored_keys(["user"])).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let keys: Vec<String> = (0..300).map(|n| format!("permission-{n:04}")).collect();
    for key in &keys {
        login.insert(key, true).await.expect("insert");
    }
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));

    server.kill();
    let session = open(&store, Some(&cookie));
    for key in &keys {
        session.remove(key).await;
    }
    let err = session
        .save()
        .await
        .expect_err("3,600 bytes of removals do not fit");
    assert!(matches!(err, Error::CookieTooLarge { .. }), "{err}");
    let removal = finish(&store, &session).await.expect("the cookie goes");
    assert!(removal.contains("Max-Age=0"), "fail closed: {removal}");
    assert_eq!(
        store.stats().revocations_pending,
        1,
        "and the session is revoked"
    );

    server.restart();
    common::until_connected(store.manager()).await;
    for _ in 0..200 {
        if store.stats().revocations_replayed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        session_keys(&server).is_empty(),
        "its permissions went with it"
    );
    let copy = open(&store, Some(&cookie));
    assert_eq!(
        copy.get::<bool>("permission-0000").await.expect("get"),
        None
    );
}

#[tokio::test]
async fn a_cookie_of_an_older_key_never_stands_in_on_its_own() {
    let mut server = RedisServer::start();
    let old = store_with(&server, config().mirrored_keys(["user"])).await;
    let login = open(&old, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&old, &login).await.expect("cookie"));

    // The secret rotates: the old one is still accepted, for finding sessions in Redis.
    let ring = KeyRing::new(["a-brand-new-secret-of-at-least-32-bytes", SECRET]).expect("ring");
    let rotated = store_with(&server, SessionConfig::new(ring).mirrored_keys(["user"])).await;
    let session = open(&rotated, Some(&cookie));
    assert_eq!(
        session
            .get::<String>("user")
            .await
            .expect("from Redis")
            .as_deref(),
        Some("ada")
    );

    server.kill();
    let during = open(&rotated, Some(&cookie));
    assert_eq!(during.source().await, Source::Unavailable, "no fallback");
    assert!(during.get::<String>("user").await.is_err());

    server.restart_empty();
    common::until_connected(rotated.manager()).await;
    let after = open(&rotated, Some(&cookie));
    assert_eq!(
        after.get::<String>("user").await.expect("get"),
        None,
        "not re-seeded from a cookie of an older key"
    );
    finish(&rotated, &after).await;
    assert!(session_keys(&server).is_empty());
}

#[tokio::test]
async fn a_full_logout_queue_fails_the_process_closed_until_it_drains() {
    let mut server = RedisServer::builder().persistent().start();
    let store = store_with(
        &server,
        config().mirrored_keys(["user"]).max_queued_logouts(2),
    )
    .await;
    let mut cookies = Vec::new();
    for user in ["ada", "bob", "cy", "dee"] {
        let login = open(&store, None);
        login.insert("user", user).await.expect("insert");
        cookies.push(cookie_header(
            &finish(&store, &login).await.expect("cookie"),
        ));
    }

    server.kill();
    let served = open(&store, Some(&cookies[3]));
    assert_eq!(served.source().await, Source::Cookie, "the fallback works");
    for cookie in &cookies[..3] {
        let logout = open(&store, Some(cookie));
        logout.destroy().await;
        finish(&store, &logout).await;
    }
    let stats = store.stats();
    assert_eq!(stats.revocations_pending, 2);
    assert_eq!(stats.revocations_failed, 1, "the third logout is lost");
    assert!(stats.failing_closed);
    let lost = open(&store, Some(&cookies[2]));
    assert_eq!(
        lost.source().await,
        Source::Unavailable,
        "the lost logout's cookie is not served from the cookie"
    );
    let other = open(&store, Some(&cookies[3]));
    assert_eq!(
        other.source().await,
        Source::Unavailable,
        "nor anyone's: fail closed"
    );

    server.restart();
    common::until_connected(store.manager()).await;
    for _ in 0..200 {
        if !store.stats().failing_closed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !store.stats().failing_closed,
        "drained: {:?}",
        store.stats()
    );
    server.kill();
    let again = open(&store, Some(&cookies[3]));
    assert_eq!(
        again.source().await,
        Source::Cookie,
        "the fallback works again"
    );
}

/// A store whose ring has a new key first, the test secret second (what an old deployment
/// used): cookies the old store made are of an older key here.
async fn rotated(
    server: &RedisServer,
    tweak: impl FnOnce(SessionConfig) -> SessionConfig,
) -> SessionEngine {
    let ring = KeyRing::new(["a-brand-new-secret-of-at-least-32-bytes", SECRET]).expect("ring");
    store_with(
        server,
        tweak(SessionConfig::new(ring).mirrored_keys(["role"])),
    )
    .await
}

/// A cookie of the old key whose content Redis never vouched for (`role` = admin, written
/// while Redis did not answer), the session in Redis saying `role` = user.
async fn an_unvouched_cookie(server: &RedisServer) -> String {
    let old = store_with(server, config().mirrored_keys(["role"])).await;
    let login = open(&old, None);
    login.insert("role", "user").await.expect("insert");
    let cookie = cookie_header(&finish(&old, &login).await.expect("cookie"));
    server.pause();
    let escalate = open(&old, Some(&cookie));
    escalate.insert("role", "admin").await.expect("insert");
    let unvouched = cookie_header(&finish(&old, &escalate).await.expect("into the cookie"));
    server.resume();
    common::until_connected(old.manager()).await;
    unvouched
}

#[tokio::test]
async fn a_touch_does_not_re_issue_an_older_keys_content_under_the_newest_key() {
    let server = RedisServer::start();
    let unvouched = an_unvouched_cookie(&server).await;
    let new = rotated(&server, |c| c.touch_interval(Duration::ZERO)).await;
    // Unused: it is read rather than only touched, and re-issued from what Redis has.
    for request in [open(&new, Some(&unvouched)), {
        let read = open(&new, Some(&unvouched));
        assert_eq!(
            read.get::<String>("role").await.expect("get").as_deref(),
            Some("user")
        );
        read
    }] {
        let fresh = cookie_header(&finish(&new, &request).await.expect("re-issued from Redis"));
        let after = open(&new, Some(&fresh));
        assert_eq!(
            after.get::<String>("role").await.expect("get").as_deref(),
            Some("user"),
            "what Redis had, under the newest key"
        );
    }
}

#[tokio::test]
async fn a_failed_save_does_not_re_issue_an_older_keys_content_under_the_newest_key() {
    let server = RedisServer::start();
    let unvouched = an_unvouched_cookie(&server).await;
    let new = rotated(&server, |c| c).await;
    let request = open(&new, Some(&unvouched));
    assert_eq!(
        request.get::<String>("role").await.expect("get").as_deref(),
        Some("user")
    );
    request.insert("counter", 1).await.expect("insert");
    server.pause(); // Redis stops answering between the load and the save
    let into_cookie = cookie_header(&finish(&new, &request).await.expect("into the cookie"));
    server.resume();
    common::until_connected(new.manager()).await;
    let next = open(&new, Some(&into_cookie));
    assert_eq!(
        next.get::<String>("role").await.expect("get").as_deref(),
        Some("user"),
        "not the older key's role"
    );
    assert_eq!(
        next.get::<i64>("counter").await.expect("get"),
        Some(1),
        "the write is kept"
    );
}

#[tokio::test]
async fn what_did_not_fit_in_a_cookie_only_session_is_unknown_not_absent() {
    let mut server = RedisServer::start();
    let store = store_with(&server, config().mirrored_keys(["user"])).await;
    server.kill();
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    login.insert("mfa_pending", true).await.expect("insert");
    login
        .insert("draft", "x".repeat(3500))
        .await
        .expect("insert");
    let err = login.save().await.expect_err("the draft does not fit");
    assert!(matches!(err, Error::CookieTooLarge { .. }), "{err}");
    let cookie = cookie_header(&finish(&store, &login).await.expect("a cookie"));
    let next = open(&store, Some(&cookie));
    assert_eq!(
        next.get::<String>("user")
            .await
            .expect("mirrored")
            .as_deref(),
        Some("ada")
    );
    let pending = next.get::<bool>("mfa_pending").await;
    assert!(
        matches!(pending, Err(Error::ValueUnavailable { .. })),
        "{pending:?}"
    );
}

#[tokio::test]
async fn a_key_mirrored_since_a_cookie_was_made_is_unknown_in_it() {
    let server = RedisServer::start();
    let before = store_with(&server, config().mirrored_keys(["user"])).await;
    let login = open(&before, None);
    login.insert("user", "ada").await.expect("insert");
    login.insert("mfa_pending", true).await.expect("insert");
    let cookie = cookie_header(&finish(&before, &login).await.expect("cookie"));

    // A new deployment mirrors `mfa_pending` too; the old cookie does not carry it.
    let after = store_with(&server, config().mirrored_keys(["user", "mfa_pending"])).await;
    server.pause();
    let during = open(&after, Some(&cookie));
    assert_eq!(during.source().await, Source::Cookie);
    let pending = during.get::<bool>("mfa_pending").await;
    server.resume();
    assert!(
        matches!(pending, Err(Error::ValueUnavailable { .. })),
        "Redis has true; the cookie says nothing: {pending:?}"
    );
}

#[tokio::test]
async fn a_login_during_an_outage_keeps_unknown_what_was_unknown_and_its_window() {
    let mut server = RedisServer::start();
    let store = store_with(
        &server,
        config()
            .mirrored_keys(["user"])
            .fallback_max_age(Duration::from_secs(3)),
    )
    .await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    login.insert("mfa_pending", true).await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));
    server.kill();
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let privilege = open(&store, Some(&cookie));
    assert!(
        privilege.get::<bool>("mfa_pending").await.is_err(),
        "unknown"
    );
    privilege.cycle_id().await;
    let cycled = cookie_header(&finish(&store, &privilege).await.expect("a new identity"));
    let next = open(&store, Some(&cycled));
    let pending = next.get::<bool>("mfa_pending").await;
    assert!(
        matches!(pending, Err(Error::ValueUnavailable { .. })),
        "still unknown under the new identity, not absent: {pending:?}"
    );

    // The new identity stands in no longer than the old cookie could have (times are whole
    // seconds: more than four after the login is past a window of three).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let late = open(&store, Some(&cycled));
    let user = late.get::<String>("user").await;
    assert!(
        !matches!(user, Ok(Some(_))),
        "past the window of what Redis last confirmed: {user:?} ({})",
        late.source().await
    );
}

#[tokio::test]
async fn a_touch_does_not_keep_a_mirror_redis_moved_past_standing_in() {
    let server = RedisServer::start();
    let store = store_with(
        &server,
        config()
            .mirrored_keys(["role"])
            .touch_interval(Duration::from_secs(1))
            .fallback_max_age(Duration::from_secs(2)),
    )
    .await;
    let login = open(&store, None);
    login.insert("role", "admin").await.expect("insert");
    let stale = cookie_header(&finish(&store, &login).await.expect("cookie"));
    // Another tab demotes.
    let demote = open(&store, Some(&stale));
    demote.insert("role", "user").await.expect("insert");
    finish(&store, &demote).await;

    // The holder of the older cookie only makes requests that do not use the session: they
    // touch it, and do not vouch for its mirror anew.
    let mut cookie = stale;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let unused = open(&store, Some(&cookie));
        if let Some(set) = finish(&store, &unused).await {
            cookie = cookie_header(&set);
        }
    }
    // 3 s after Redis last vouched for role=admin: what stands in is what Redis has now (the
    // unused requests read it, and the cookie was re-issued from it), never the stale role.
    server.pause();
    let during = open(&store, Some(&cookie));
    let role = during.get::<String>("role").await;
    server.resume();
    assert!(
        matches!(role.as_ref(), Ok(Some(role)) if role == "user"),
        "the stale role must not stand in: {role:?}"
    );
}

/// A failover to a replica that missed the last write: the hash as it was before it, value and
/// stamp.
fn roll_back(server: &RedisServer, key: &str, counter: &str, stamp: u64) {
    server.run(&[
        "HSET",
        key,
        "counter",
        counter,
        "\u{0}v",
        &stamp.to_string(),
    ]);
}

/// One write, as a stamp counts it.
const WRITE: u64 = 1 << 20;

#[tokio::test]
async fn a_failover_that_lost_confirmed_writes_gets_them_back_from_the_mirror() {
    let server = RedisServer::start();
    let store = store_with(&server, config().mirrored_keys(["counter"])).await;
    let first = open(&store, None);
    first.insert("counter", 1).await.expect("insert");
    let c0 = cookie_header(&finish(&store, &first).await.expect("cookie"));

    // An ordinary write, lost by the failover.
    let write = open(&store, Some(&c0));
    write.insert("counter", 2).await.expect("insert");
    let c1 = cookie_header(&finish(&store, &write).await.expect("cookie"));
    let key = session_keys(&server).pop().expect("one session");
    roll_back(&server, &key, "1", WRITE);
    let next = open(&store, Some(&c1));
    assert_eq!(next.get::<i64>("counter").await.expect("get"), Some(2));
    let c2 = cookie_header(&finish(&store, &next).await.expect("landed again"));

    // An outage write that landed by a save of nothing but the cookie's view (which leaves the
    // hash at the view's stamp), lost by the failover.
    let c3 = common::written_during_a_pause(&server, &store, &c2, "counter", 3).await;
    let landed = open(&store, Some(&c3));
    assert_eq!(landed.get::<i64>("counter").await.expect("get"), Some(3));
    let before: String = server.query(&["HGET", &key, "\u{0}v"]);
    let c4 = cookie_header(
        &finish(&store, &landed)
            .await
            .expect("the cookie shrinks back"),
    );
    let after: String = server.query(&["HGET", &key, "\u{0}v"]);
    roll_back(&server, &key, "2", before.parse().expect("a stamp"));
    assert_ne!(before, after);
    let next = open(&store, Some(&c4));
    assert_eq!(next.get::<i64>("counter").await.expect("get"), Some(3));
}

#[tokio::test]
async fn an_unused_session_is_touched_at_most_once_per_interval() {
    let server = RedisServer::start();
    let store = store_with(
        &server,
        config()
            .mirrored_keys(["role"])
            .touch_interval(Duration::from_secs(1)),
    )
    .await;
    let login = open(&store, None);
    login.insert("role", "admin").await.expect("insert");
    let c0 = cookie_header(&finish(&store, &login).await.expect("cookie"));
    // A cookie with an outage write Redis does not have yet: its stamp is not Redis's.
    let mut cookie = common::written_during_a_pause(&server, &store, &c0, "note", "x").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let touches = store.stats().touches;
    for _ in 0..5 {
        let unused = open(&store, Some(&cookie));
        if let Some(set) = finish(&store, &unused).await {
            cookie = cookie_header(&set);
        }
    }
    assert_eq!(store.stats().touches - touches, 1, "{:?}", store.stats());
    let next = open(&store, Some(&cookie));
    assert_eq!(
        next.get::<String>("note").await.expect("get").as_deref(),
        Some("x"),
        "the outage write landed on the way"
    );
}
