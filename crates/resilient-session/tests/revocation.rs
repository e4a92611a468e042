//! What must never happen, whatever the order of events: a logged-out session coming back, a
//! login carried by a cookie someone else chose, a user logged out by a transient error, outage
//! writes applied twice. The session engine is driven directly against a real redis-server.

use std::time::Duration;

use resilient_session::adapter;
use resilient_session::{Error, Session, SessionConfig, SessionEngine, Source};
use test_redis::RedisServer;

mod common;
use common::{config, cookie_header, finish, open, session_keys, store_with, stored_session};

/// Waits until the store replayed `n` logouts.
async fn replayed(store: &SessionEngine, n: u64) {
    for _ in 0..200 {
        if store.stats().revocations_replayed >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("logouts not replayed: {:?}", store.stats());
}

/// Logs out the session of `cookie`.
async fn log_out(store: &SessionEngine, cookie: &str) {
    let logout = open(store, Some(cookie));
    logout.destroy().await;
    adapter::finish(store, &logout).await;
}

/// Restarts Redis (with its data) and waits until the store replayed one logout.
async fn restart_and_replay(server: &mut RedisServer, store: &SessionEngine) {
    server.restart();
    back(store).await;
    replayed(store, 1).await;
}

/// Waits until the manager talks to Redis again.
async fn back(store: &SessionEngine) {
    common::until_connected(store.manager()).await;
}

async fn user(session: &Session) -> Option<String> {
    session.get::<String>("user").await.expect("decodes")
}

/// Nothing is known of the session: Redis is unavailable and its cookie cannot stand in.
async fn unknown(session: &Session) -> bool {
    matches!(
        session.get::<String>("user").await,
        Err(Error::ValueUnavailable { .. })
    ) && session.source().await == Source::Unavailable
}

fn mirrored() -> SessionConfig {
    config().mirrored_keys(["user"])
}

#[tokio::test]
async fn a_busy_redis_never_logs_anyone_out() {
    let server = RedisServer::start();
    server.run(&["CONFIG", "SET", "busy-reply-threshold", "50"]);
    let store = store_with(&server, mirrored()).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));

    // A script that never ends: Redis answers BUSY to everyone else.
    let mut blocker = server.connection();
    let script = std::thread::spawn(move || {
        bb8_redis::redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query::<()>(&mut blocker)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let session = open(&store, Some(&cookie));
    assert_eq!(
        user(&session).await.as_deref(),
        Some("ada"),
        "served from the cookie"
    );
    assert_eq!(session.source().await, Source::Cookie);
    assert_eq!(finish(&store, &session).await, None, "the cookie is kept");
    assert_eq!(store.stats().corrupt_sessions, 0);

    server.run(&["SCRIPT", "KILL"]);
    assert!(
        script.join().expect("thread").is_err(),
        "the script was killed"
    );
    assert_eq!(session_keys(&server).len(), 1, "the session is intact");
}

#[tokio::test]
async fn a_login_during_an_outage_does_not_ride_a_cookie_chosen_before() {
    let mut server = RedisServer::builder().persistent().start();
    let store = store_with(&server, mirrored()).await;
    // The attacker makes a session and plants its cookie in the victim's browser.
    let planted = stored_session(&store).await;

    server.kill();
    let victim = open(&store, Some(&planted));
    victim.cycle_id().await;
    victim.insert("user", "victim").await.expect("insert");
    let victim_cookie = cookie_header(&finish(&store, &victim).await.expect("a new cookie"));
    assert_ne!(victim_cookie, planted);
    let attacker = open(&store, Some(&planted));
    assert_eq!(user(&attacker).await, None, "revoked here at once");

    restart_and_replay(&mut server, &store).await;
    let attacker = open(&store, Some(&planted));
    assert_eq!(user(&attacker).await, None);
    assert_eq!(attacker.source().await, Source::New);
    let victim = open(&store, Some(&victim_cookie));
    assert_eq!(user(&victim).await.as_deref(), Some("victim"));
    let promoted = cookie_header(&finish(&store, &victim).await.expect("moved to Redis"));
    let after_promotion = open(&store, Some(&promoted));
    assert_eq!(user(&after_promotion).await.as_deref(), Some("victim"));
    assert_eq!(after_promotion.source().await, Source::Redis);
}

/// A logged-in session (`user` = ada, mirrored), then Redis restarted empty: its cookie.
async fn logged_in_then_redis_lost_its_data() -> (RedisServer, SessionEngine, String) {
    let mut server = RedisServer::start();
    let store = store_with(&server, mirrored()).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));
    server.restart_empty();
    back(&store).await;
    (server, store, cookie)
}

#[tokio::test]
async fn a_session_re_seeded_then_logged_out_stays_out() {
    let (server, store, before_restart) = logged_in_then_redis_lost_its_data().await;
    let reseeded = open(&store, Some(&before_restart));
    assert_eq!(user(&reseeded).await.as_deref(), Some("ada"), "re-seeded");
    let after = cookie_header(&finish(&store, &reseeded).await.expect("a new id"));

    let logout = open(&store, Some(&after));
    logout.destroy().await;
    adapter::finish(&store, &logout).await;
    assert!(session_keys(&server).is_empty());

    // A copy of the cookie from before the restart must not re-seed it again.
    let copy = open(&store, Some(&before_restart));
    assert_eq!(user(&copy).await, None);
    adapter::finish(&store, &copy).await;
    assert!(session_keys(&server).is_empty(), "nothing came back");
}

#[tokio::test]
async fn two_copies_of_a_cookie_do_not_fork_a_re_seeded_session() {
    let (server, store, cookie) = logged_in_then_redis_lost_its_data().await;
    let first = open(&store, Some(&cookie));
    let second = open(&store, Some(&cookie));
    assert_eq!(user(&first).await.as_deref(), Some("ada"));
    assert_eq!(user(&second).await.as_deref(), Some("ada"));
    assert!(finish(&store, &first).await.is_some(), "the first moves it");
    assert_eq!(
        finish(&store, &second).await,
        None,
        "the second keeps the cookie as it is"
    );
    assert_eq!(session_keys(&server).len(), 1, "one session, not two");
}

#[tokio::test]
async fn a_cookie_only_session_logged_out_during_the_outage_stays_out() {
    let mut server = RedisServer::start();
    let store = store_with(&server, mirrored()).await;
    server.kill();
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("a cookie-only session"));
    log_out(&store, &cookie).await;

    restart_and_replay(&mut server, &store).await;
    let copy = open(&store, Some(&cookie));
    assert_eq!(user(&copy).await, None, "the copy is anonymous");
    adapter::finish(&store, &copy).await;
    assert!(session_keys(&server).is_empty(), "and was not promoted");
}

#[tokio::test]
async fn a_login_racing_a_logout_does_not_bring_the_session_back() {
    let server = RedisServer::start();
    let store = store_with(&server, mirrored()).await;
    let cookie = stored_session(&store).await;

    let login = open(&store, Some(&cookie));
    login.get_value("counter").await.expect("loads");
    let logout = open(&store, Some(&cookie));
    logout.destroy().await;
    adapter::finish(&store, &logout).await;

    login.cycle_id().await;
    login.insert("user", "ada").await.expect("insert");
    let set = finish(&store, &login).await.expect("a removal");
    assert!(set.contains("Max-Age=0"), "{:?}", set);
    assert!(
        session_keys(&server).is_empty(),
        "no session under the new id"
    );
}

/// A logged-in session whose cookie Redis last confirmed longer ago than the fallback max age
/// (1 s), then Redis killed: the cookie cannot stand in for it.
async fn too_old_for_the_fallback() -> (RedisServer, SessionEngine, String) {
    let mut server = RedisServer::builder().persistent().start();
    let store = store_with(&server, mirrored().fallback_max_age(Duration::from_secs(1))).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    server.kill();
    (server, store, cookie)
}

#[tokio::test]
async fn a_cookie_too_old_for_the_fallback_is_kept_for_when_redis_is_back() {
    let (mut server, store, cookie) = too_old_for_the_fallback().await;
    let during = open(&store, Some(&cookie));
    assert!(unknown(&during).await, "not honoured on its own");
    during.insert("cart", "a book").await.expect("insert");
    let err = during.save().await.expect_err("cannot be kept");
    assert!(matches!(err, Error::FallbackExpired), "{err}");
    assert_eq!(
        finish(&store, &during).await,
        None,
        "the cookie is not replaced"
    );

    server.restart();
    back(&store).await;
    let after = open(&store, Some(&cookie));
    assert_eq!(
        user(&after).await.as_deref(),
        Some("ada"),
        "the session is still there"
    );
}

#[tokio::test]
async fn a_logout_with_a_cookie_too_old_for_the_fallback_is_replayed() {
    let (mut server, store, cookie) = too_old_for_the_fallback().await;
    assert!(unknown(&open(&store, Some(&cookie))).await);
    log_out(&store, &cookie).await;

    restart_and_replay(&mut server, &store).await;
    let copy = open(&store, Some(&cookie));
    assert_eq!(user(&copy).await, None, "logged out for good");
    assert!(session_keys(&server).is_empty());
}

#[tokio::test]
async fn a_stale_copy_of_an_outage_cookie_does_not_write_its_changes_again() {
    let mut server = RedisServer::builder().persistent().start();
    let store = store_with(&server, config().mirrored_keys(["counter"])).await;
    let cookie = stored_session(&store).await; // counter = 1

    server.kill();
    let outage = open(&store, Some(&cookie));
    outage.insert("counter", 2).await.expect("insert");
    let outage_cookie = cookie_header(&finish(&store, &outage).await.expect("data in the cookie"));

    server.restart();
    back(&store).await;
    let first = open(&store, Some(&outage_cookie));
    assert_eq!(
        first.get::<i64>("counter").await.expect("get"),
        Some(2),
        "merged"
    );
    first.insert("counter", 3).await.expect("insert");
    finish(&store, &first).await.expect("the cookie shrinks");

    // The same outage cookie again (a request sent before the shrunk cookie arrived).
    let stale = open(&store, Some(&outage_cookie));
    assert_eq!(
        stale.get::<i64>("counter").await.expect("get"),
        Some(3),
        "the newer value stands"
    );
    adapter::finish(&store, &stale).await;
    let check = open(&store, Some(&outage_cookie));
    assert_eq!(check.get::<i64>("counter").await.expect("get"), Some(3));
}

#[tokio::test]
async fn a_logout_completes_even_if_the_request_is_dropped() {
    let server = RedisServer::start();
    let store = store_with(&server, config()).await;
    let cookie = stored_session(&store).await;
    let logout = open(&store, Some(&cookie));
    logout.destroy().await;
    // The client goes away: the finishing future is polled once, then dropped.
    let _ = tokio::time::timeout(Duration::ZERO, adapter::finish(&store, &logout)).await;
    for _ in 0..100 {
        if session_keys(&server).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the logout's DEL did not happen");
}

#[tokio::test]
async fn reserved_keys_are_refused() {
    let server = RedisServer::start();
    let store = store_with(&server, config()).await;
    let session = open(&store, None);
    let err = session
        .insert("\u{0}merged", "x")
        .await
        .expect_err("reserved");
    assert!(matches!(err, Error::ReservedKey { .. }), "{err}");
}

#[tokio::test]
async fn a_reissued_cookie_carries_the_epoch_of_now() {
    let mut server = RedisServer::builder().persistent().start();
    let config = mirrored()
        .touch_interval(Duration::from_secs(1))
        .idle_timeout(Duration::from_secs(60));
    let store = store_with(&server, config).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let before_restart = cookie_header(&finish(&store, &login).await.expect("cookie"));

    // Redis restarts with its data: a new epoch (its replication id), the session still there.
    server.restart();
    back(&store).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let touched = open(&store, Some(&before_restart));
    assert_eq!(user(&touched).await.as_deref(), Some("ada"));
    let reissued = cookie_header(&finish(&store, &touched).await.expect("touched: re-issued"));

    // An operator deletes the session (no tombstone), same epoch: it ended, and the cookie
    // does not bring it back as if Redis had lost it.
    let key = session_keys(&server).pop().expect("the session");
    server.run(&["DEL", &key]);
    let after = open(&store, Some(&reissued));
    assert_eq!(user(&after).await, None, "ended");
    finish(&store, &after).await;
    assert!(session_keys(&server).is_empty(), "not re-seeded");
}

#[tokio::test]
async fn a_corrupt_session_is_not_re_seeded_after_a_restart() {
    let mut server = RedisServer::builder().persistent().start();
    let config = mirrored().validate(|data| match data.get("counter") {
        Some(counter) if !counter.is_i64() => Err("counter must be an integer".into()),
        _ => Ok(()),
    });
    let store = store_with(&server, config).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));
    let key = session_keys(&server).pop().expect("stored");
    server.run(&["HSET", &key, "counter", "\"seven\""]);
    assert_eq!(user(&open(&store, Some(&cookie))).await, None, "discarded");
    assert_eq!(store.stats().corrupt_sessions, 1);

    server.restart();
    back(&store).await;
    let copy = open(&store, Some(&cookie));
    assert_eq!(user(&copy).await, None, "its tombstone says it ended");
    finish(&store, &copy).await;
    assert!(session_keys(&server).is_empty());
}

#[tokio::test]
async fn tombstones_outlive_the_fallback_window_and_clock_skew() {
    for (max_age, ttl) in [
        (Duration::from_secs(3600), 3600 + 300),
        // Sub-second: tombstones all the same, rounded up.
        (Duration::from_millis(500), 1 + 300),
    ] {
        let server = RedisServer::start();
        let store = store_with(&server, mirrored().fallback_max_age(max_age)).await;
        let cookie = stored_session(&store).await;
        log_out(&store, &cookie).await;
        let tombstones: Vec<String> = server.query(&["KEYS", "session:revoked:*"]);
        assert_eq!(tombstones.len(), 1, "{max_age:?}: a tombstone");
        let left: i64 = server.query(&["TTL", &tombstones[0]]);
        assert!(
            (ttl - 2..=ttl).contains(&left),
            "{max_age:?}: lives {left} s, expected {ttl}"
        );
    }
}

#[tokio::test]
async fn a_logout_whose_answer_was_lost_still_ends_the_successor() {
    let (server, store, before) = logged_in_then_redis_lost_its_data().await;
    let reseed = open(&store, Some(&before));
    assert_eq!(user(&reseed).await.as_deref(), Some("ada"), "re-seeded");
    let after = cookie_header(&finish(&store, &reseed).await.expect("moved"));

    // Redis stops answering while the logout (with the copy from before the re-seed) is sent:
    // the command runs when Redis resumes, its answer is lost, the logout is queued and
    // replayed; the replay must still learn the successor.
    server.pause();
    log_out(&store, &before).await;
    server.resume();
    back(&store).await;
    replayed(&store, 1).await;

    let successor = open(&store, Some(&after));
    assert_eq!(user(&successor).await, None, "the successor went with it");
    assert!(session_keys(&server).is_empty());
}

/// A store that fails closed: no fallback, so no tombstones and no re-seeding.
async fn failing_closed(server: &RedisServer) -> SessionEngine {
    store_with(server, mirrored().fallback_max_age(Duration::ZERO)).await
}

#[tokio::test]
async fn failing_closed_a_save_does_not_re_seed_what_redis_lost() {
    let mut server = RedisServer::start();
    let store = failing_closed(&server).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));

    // Two requests in flight when Redis loses its data: neither moves the session (without
    // tombstones a logout would look the same), so there is nothing to fork either.
    let first = open(&store, Some(&cookie));
    let second = open(&store, Some(&cookie));
    assert_eq!(user(&first).await.as_deref(), Some("ada"));
    assert_eq!(user(&second).await.as_deref(), Some("ada"));
    server.restart_empty();
    back(&store).await;
    first.insert("cart", 1).await.expect("insert");
    second.insert("cart", 2).await.expect("insert");
    let ended = finish(&store, &first).await.expect("a removal");
    assert!(ended.contains("Max-Age=0"), "{ended}");
    finish(&store, &second).await;
    assert!(
        session_keys(&server).is_empty(),
        "{:?}",
        session_keys(&server)
    );
}

#[tokio::test]
async fn failing_closed_a_write_racing_a_logout_does_not_bring_it_back() {
    let server = RedisServer::start();
    let store = failing_closed(&server).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&store, &login).await.expect("cookie"));
    // A failover to a replica that had everything: another data epoch, nothing lost.
    server.run(&["SET", "session:epoch", "after-a-failover"]);

    let slow = open(&store, Some(&cookie));
    assert_eq!(user(&slow).await.as_deref(), Some("ada"));
    log_out(&store, &cookie).await;
    slow.insert("cart", 1).await.expect("insert");
    let answer = finish(&store, &slow).await.expect("a removal");
    assert!(answer.contains("Max-Age=0"), "{answer}");
    assert!(
        session_keys(&server).is_empty(),
        "{:?}",
        session_keys(&server)
    );
}

#[tokio::test]
async fn a_cookie_of_an_older_key_does_not_re_seed_through_a_save() {
    let mut server = RedisServer::start();
    let old = store_with(&server, mirrored()).await;
    let login = open(&old, None);
    login.insert("user", "ada").await.expect("insert");
    let cookie = cookie_header(&finish(&old, &login).await.expect("cookie"));
    let ring = resilient_session::KeyRing::new([
        "a-brand-new-secret-of-at-least-32-bytes",
        common::SECRET,
    ])
    .expect("ring");
    let rotated = store_with(&server, SessionConfig::new(ring).mirrored_keys(["user"])).await;

    let request = open(&rotated, Some(&cookie));
    assert_eq!(
        user(&request).await.as_deref(),
        Some("ada"),
        "Redis vouches"
    );
    server.restart_empty();
    back(&rotated).await;
    request.insert("cart", 1).await.expect("insert");
    finish(&rotated, &request).await;
    assert!(
        session_keys(&server).is_empty(),
        "an older key's cookie is never Redis's word: {:?}",
        session_keys(&server)
    );
}

/// A login handler that starts clean (`clear()`, then the user, then `cycle_id()`): a key the
/// holder of the pre-login cookie (planted: session fixation) writes while the login runs does
/// not ride into the authenticated session.
#[tokio::test]
async fn a_login_that_cleared_the_session_carries_nothing_written_meanwhile() {
    let server = RedisServer::start();
    let store = store_with(&server, config()).await;
    let planted = stored_session(&store).await;
    let login = open(&store, Some(&planted));
    assert_eq!(login.get::<i64>("counter").await.expect("get"), Some(1));
    let attacker = open(&store, Some(&planted));
    attacker
        .insert("csrf_token", "known-to-the-attacker")
        .await
        .expect("insert");
    attacker.save().await.expect("written");
    finish(&store, &attacker).await;

    login.clear().await;
    login.insert("user", "victim").await.expect("insert");
    login.cycle_id().await;
    let victim = cookie_header(&finish(&store, &login).await.expect("a new id"));
    let next = open(&store, Some(&victim));
    assert_eq!(user(&next).await.as_deref(), Some("victim"));
    assert_eq!(next.get::<i64>("counter").await.expect("get"), None);
    assert_eq!(next.get::<String>("csrf_token").await.expect("get"), None);
}

/// A copy of a cookie from before a re-seed follows the move; Redis loses its data again while
/// that request runs: its save re-seeds the successor, as a load would, rather than log out.
#[tokio::test]
async fn a_save_that_finds_a_followed_successor_lost_moves_it() {
    let (mut server, store, c0) = logged_in_then_redis_lost_its_data().await;
    let reseed = open(&store, Some(&c0));
    assert_eq!(user(&reseed).await.as_deref(), Some("ada"));
    finish(&store, &reseed).await.expect("a new id");

    let copy = open(&store, Some(&c0));
    assert_eq!(user(&copy).await.as_deref(), Some("ada"), "followed");
    server.restart_empty();
    back(&store).await;
    copy.insert("cart", 3).await.expect("insert");
    copy.save().await.expect("saved");
    let set = finish(&store, &copy).await.expect("a cookie");
    assert!(!set.contains("Max-Age=0"), "not logged out: {set}");
    let next = open(&store, Some(&cookie_header(&set)));
    assert_eq!(next.get::<i64>("cart").await.expect("get"), Some(3));
    assert_eq!(user(&next).await.as_deref(), Some("ada"));
}

/// A login while Redis is down and the cookie is too old to stand in: a new session, which the
/// next request keeps (it carries nothing of the old one, and has a window of its own).
#[tokio::test]
async fn a_login_on_a_cookie_too_old_for_the_fallback_is_kept() {
    let (_server, store, cookie) = too_old_for_the_fallback().await;
    let login = open(&store, Some(&cookie));
    assert!(unknown(&login).await);
    login.insert("user", "bob").await.expect("insert");
    login.cycle_id().await;
    login.save().await.expect("a new session");
    let logged_in = cookie_header(&finish(&store, &login).await.expect("a cookie"));
    let next = open(&store, Some(&logged_in));
    assert_eq!(user(&next).await.as_deref(), Some("bob"));
    assert_eq!(next.source().await, Source::Cookie);
}
