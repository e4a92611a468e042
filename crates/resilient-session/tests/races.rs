//! Requests that race each other or Redis: parallel tabs of one cookie, a read racing a login,
//! a save that meets a Redis which stopped answering or lost its data after the load. Nothing a
//! request was told it wrote is lost, and nobody is logged out. The engine driven directly
//! against a real redis-server.

use resilient_session::{Error, SessionEngine};
use test_redis::RedisServer;

mod common;
use common::{config, cookie_header, finish, open, session_keys, store_with};

async fn role_mirrored(server: &RedisServer) -> SessionEngine {
    store_with(server, config().mirrored_keys(["role"])).await
}

/// A session with `role` = admin; its cookie.
async fn admin(store: &SessionEngine) -> String {
    let login = open(store, None);
    login.insert("role", "admin").await.expect("insert");
    cookie_header(&finish(store, &login).await.expect("cookie"))
}

/// The session's `role`, known (the tests read it where it is mirrored or from Redis).
async fn role(session: &resilient_session::Session) -> Option<String> {
    session.get::<String>("role").await.expect("known")
}

#[tokio::test]
async fn a_parallel_write_is_not_rolled_back_by_the_other_tabs_mirror() {
    let server = RedisServer::start();
    let store = role_mirrored(&server).await;
    let c0 = admin(&store).await;

    // Two tabs, one cookie. R1 loads; R2 leaves admin mode (acknowledged); R1 then writes
    // something else, and its response, the last to arrive, is the browser's cookie.
    let r1 = open(&store, Some(&c0));
    assert_eq!(role(&r1).await.as_deref(), Some("admin"));
    let r2 = open(&store, Some(&c0));
    r2.insert("role", "user").await.expect("insert");
    r2.save().await.expect("acknowledged");
    finish(&store, &r2).await;
    r1.insert("counter", 1).await.expect("insert");
    let c1 = cookie_header(&finish(&store, &r1).await.expect("cookie"));

    // Redis stops answering: the cookie stands in, and takes a write.
    server.pause();
    let during = open(&store, Some(&c1));
    assert_eq!(
        role(&during).await.as_deref(),
        Some("user"),
        "the cookie mirrors Redis's role, not the one its request loaded"
    );
    during.insert("note", "x").await.expect("insert");
    let c2 = cookie_header(&finish(&store, &during).await.expect("into the cookie"));
    server.resume();
    common::until_connected(store.manager()).await;

    let after = open(&store, Some(&c2));
    assert_eq!(
        role(&after).await.as_deref(),
        Some("user"),
        "R2's write stands"
    );
    assert_eq!(
        after.get::<String>("note").await.expect("get").as_deref(),
        Some("x")
    );
}

#[tokio::test]
async fn a_failed_save_with_an_older_cookie_does_not_roll_back_a_newer_write() {
    let server = RedisServer::start();
    let store = role_mirrored(&server).await;
    let c0 = admin(&store).await;
    let r2 = open(&store, Some(&c0));
    r2.insert("role", "user").await.expect("insert");
    finish(&store, &r2).await;

    // A tab whose cookie predates R2's write: it loads the right role, then its save fails.
    let r1 = open(&store, Some(&c0));
    assert_eq!(role(&r1).await.as_deref(), Some("user"));
    r1.insert("counter", 1).await.expect("insert");
    server.pause();
    let c1 = cookie_header(&finish(&store, &r1).await.expect("into the cookie"));
    server.resume();
    common::until_connected(store.manager()).await;

    let after = open(&store, Some(&c1));
    assert_eq!(
        role(&after).await.as_deref(),
        Some("user"),
        "R2's write stands"
    );
    assert_eq!(
        after.get::<i64>("counter").await.expect("get"),
        Some(1),
        "and R1's"
    );
}

#[tokio::test]
async fn a_request_racing_a_login_does_not_log_the_user_out() {
    let server = RedisServer::start();
    let store = store_with(&server, config()).await;
    let login = open(&store, None);
    login.insert("cart", 1).await.expect("insert");
    let c0 = cookie_header(&finish(&store, &login).await.expect("cookie"));

    // A poll sent with the pre-login cookie, answered after the login.
    let login = open(&store, Some(&c0));
    login.insert("user", "ada").await.expect("insert");
    login.cycle_id().await;
    let poll = open(&store, Some(&c0));
    let logged_in = cookie_header(&finish(&store, &login).await.expect("a new id"));
    assert_eq!(
        poll.get::<String>("user").await.expect("get"),
        None,
        "not the login's"
    );
    poll.insert("seen", true).await.expect("insert");
    let err = poll.save().await.expect_err("not kept");
    assert!(matches!(err, Error::SessionSuperseded), "{err}");
    assert_eq!(
        finish(&store, &poll).await,
        None,
        "no removal, no new cookie: the browser keeps the login's"
    );
    let next = open(&store, Some(&logged_in));
    assert_eq!(
        next.get::<String>("user").await.expect("get").as_deref(),
        Some("ada")
    );
}

#[tokio::test]
async fn a_save_after_redis_lost_the_session_moves_it_rather_than_log_out() {
    let mut server = RedisServer::start();
    let store = store_with(&server, config().mirrored_keys(["user"])).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let c0 = cookie_header(&finish(&store, &login).await.expect("cookie"));

    let request = open(&store, Some(&c0));
    assert_eq!(
        request.get::<String>("user").await.expect("get").as_deref(),
        Some("ada")
    );
    server.restart_empty();
    common::until_connected(store.manager()).await;
    request.insert("cart", 3).await.expect("insert");
    request.save().await.expect("saved all the same");
    let moved = finish(&store, &request).await.expect("a cookie");
    assert!(!moved.contains("Max-Age=0"), "not logged out: {moved}");
    assert_eq!(session_keys(&server).len(), 1, "in Redis again");

    let next = open(&store, Some(&cookie_header(&moved)));
    assert_eq!(
        next.get::<String>("user").await.expect("get").as_deref(),
        Some("ada")
    );
    assert_eq!(next.get::<i64>("cart").await.expect("get"), Some(3));
    // The copy from before follows it there.
    let copy = open(&store, Some(&c0));
    assert_eq!(copy.get::<i64>("cart").await.expect("get"), Some(3));
}

#[tokio::test]
async fn a_save_racing_a_logout_still_does_not_bring_the_session_back() {
    let server = RedisServer::start();
    let store = store_with(&server, config()).await;
    let cookie = common::stored_session(&store).await;
    let slow = open(&store, Some(&cookie));
    slow.get::<i64>("counter").await.expect("loads");
    let logout = open(&store, Some(&cookie));
    logout.destroy().await;
    finish(&store, &logout).await;

    slow.insert("counter", 2).await.expect("insert");
    let removal = finish(&store, &slow).await.expect("a removal");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(
        session_keys(&server).is_empty(),
        "asked why it was gone: a logout"
    );
}

#[tokio::test]
async fn a_failed_save_does_not_roll_back_a_write_made_after_its_load() {
    let mut server = RedisServer::builder().persistent().start();
    let store = role_mirrored(&server).await;
    let c0 = admin(&store).await;

    let r2 = open(&store, Some(&c0));
    assert_eq!(role(&r2).await.as_deref(), Some("admin"));
    // Another tab demotes, acknowledged, after R2 loaded.
    let r1 = open(&store, Some(&c0));
    r1.insert("role", "user").await.expect("insert");
    r1.save().await.expect("acknowledged");
    finish(&store, &r1).await;

    // R2's save never lands: Redis dies first, and comes back with its data.
    r2.insert("counter", 1).await.expect("insert");
    server.kill();
    let c2 = cookie_header(&finish(&store, &r2).await.expect("into the cookie"));
    server.restart();
    common::until_connected(store.manager()).await;

    let after = open(&store, Some(&c2));
    assert_eq!(
        role(&after).await.as_deref(),
        Some("user"),
        "R1's acknowledged demotion stands: the cookie wrote only what R2 changed"
    );
    assert_eq!(after.get::<i64>("counter").await.expect("get"), Some(1));
}

#[tokio::test]
async fn a_login_does_not_drop_a_write_acknowledged_after_its_load() {
    let server = RedisServer::start();
    let store = store_with(&server, config()).await;
    let first = open(&store, None);
    first.insert("cart", 1).await.expect("insert");
    let c0 = cookie_header(&finish(&store, &first).await.expect("cookie"));

    let login = open(&store, Some(&c0));
    assert_eq!(login.get::<i64>("cart").await.expect("get"), Some(1));
    let tab = open(&store, Some(&c0));
    tab.insert("cart", 2).await.expect("insert");
    tab.save().await.expect("acknowledged");
    finish(&store, &tab).await;

    login.insert("user", "ada").await.expect("insert");
    login.cycle_id().await;
    let logged_in = cookie_header(&finish(&store, &login).await.expect("a new id"));
    let next = open(&store, Some(&logged_in));
    assert_eq!(
        next.get::<i64>("cart").await.expect("get"),
        Some(2),
        "the login copied the session as Redis had it then"
    );
    assert_eq!(
        next.get::<String>("user").await.expect("get").as_deref(),
        Some("ada")
    );
}

/// Two requests in flight when Redis lost its data: both find the session gone at their save,
/// both try to move it; the one that loses keeps its write in the cookie, and its next request
/// follows the move and lands it.
#[tokio::test(flavor = "current_thread")]
async fn the_request_that_loses_a_move_keeps_its_write() {
    let mut server = RedisServer::start();
    let store = store_with(&server, config().mirrored_keys(["user"])).await;
    let login = open(&store, None);
    login.insert("user", "ada").await.expect("insert");
    let c0 = cookie_header(&finish(&store, &login).await.expect("cookie"));
    // A write the older tab has not seen: its cookie is behind Redis.
    let w = open(&store, Some(&c0));
    w.insert("x", 1).await.expect("insert");
    let c1 = cookie_header(&finish(&store, &w).await.expect("cookie"));

    let r1 = open(&store, Some(&c1));
    let r2 = open(&store, Some(&c0));
    r1.get::<String>("user").await.expect("get");
    r2.get::<String>("user").await.expect("get");
    server.restart_empty();
    common::until_connected(store.manager()).await;
    r1.insert("a", 1).await.expect("insert");
    r2.insert("b", 2).await.expect("insert");
    let (s1, s2) = tokio::join!(
        async { (r1.save().await, finish(&store, &r1).await) },
        async { (r2.save().await, finish(&store, &r2).await) }
    );
    assert_eq!(session_keys(&server).len(), 1, "moved once");
    for (key, value, (saved, set)) in [("a", 1, s1), ("b", 2, s2)] {
        saved.expect("saved: in Redis, or in the cookie");
        let next = open(&store, Some(&cookie_header(&set.expect("a cookie"))));
        assert_eq!(
            next.get::<i64>(key).await.expect("get"),
            Some(value),
            "{key}"
        );
        assert_eq!(
            next.get::<String>("user").await.expect("get").as_deref(),
            Some("ada")
        );
    }
}

/// A cookie whose outage write (role = user) a login request merges at load; meanwhile another
/// tab lands the same view and a third request sets role = auditor, acknowledged.
#[tokio::test]
async fn a_login_does_not_write_a_merged_view_over_a_newer_write() {
    let server = RedisServer::start();
    let store = role_mirrored(&server).await;
    let c0 = admin(&store).await;
    let c1 = common::written_during_a_pause(&server, &store, &c0, "role", "user").await;

    let login = open(&store, Some(&c1));
    assert_eq!(role(&login).await.as_deref(), Some("user"), "merged");
    let tab = open(&store, Some(&c1));
    assert_eq!(role(&tab).await.as_deref(), Some("user"));
    let c2 = cookie_header(&finish(&store, &tab).await.expect("the view lands"));
    let later = open(&store, Some(&c2));
    later.insert("role", "auditor").await.expect("insert");
    later.save().await.expect("acknowledged");
    finish(&store, &later).await;

    login.insert("user", "ada").await.expect("insert");
    login.cycle_id().await;
    let logged_in = cookie_header(&finish(&store, &login).await.expect("a new id"));
    let next = open(&store, Some(&logged_in));
    assert_eq!(role(&next).await.as_deref(), Some("auditor"));
}

/// A login loads role = admin; another tab demotes, acknowledged; the login copies the demotion
/// into the new session, and its cookie must mirror that, not what the login loaded.
#[tokio::test]
async fn a_login_cookie_mirrors_what_the_login_copied() {
    let server = RedisServer::start();
    let store = role_mirrored(&server).await;
    let c0 = admin(&store).await;
    let login = open(&store, Some(&c0));
    assert_eq!(role(&login).await.as_deref(), Some("admin"));
    let tab = open(&store, Some(&c0));
    tab.insert("role", "user").await.expect("insert");
    tab.save().await.expect("acknowledged");
    finish(&store, &tab).await;

    login.insert("user", "ada").await.expect("insert");
    login.cycle_id().await;
    let logged_in = cookie_header(&finish(&store, &login).await.expect("a new id"));
    server.pause();
    let during = open(&store, Some(&logged_in));
    let seen = role(&during).await;
    let source = during.source().await;
    server.resume();
    assert_eq!(source, resilient_session::Source::Cookie);
    assert_eq!(
        seen.as_deref(),
        Some("user"),
        "the demotion, from the cookie"
    );
}

/// A merge-only save leaves the hash at the view's stamp (with outage writes in it), and later
/// writes keep that part: a failed save's cookie must still go past another request's write.
#[tokio::test]
async fn a_failed_save_is_kept_when_the_hash_stamp_carries_outage_writes() {
    let mut server = RedisServer::builder().persistent().start();
    let store = role_mirrored(&server).await;
    let c0 = admin(&store).await;
    server.kill();
    let during = open(&store, Some(&c0));
    during.insert("counter", 1).await.expect("insert");
    let c1 = cookie_header(&finish(&store, &during).await.expect("into the cookie"));
    server.restart();
    common::until_connected(store.manager()).await;
    let landed = open(&store, Some(&c1));
    assert_eq!(landed.get::<i64>("counter").await.expect("get"), Some(1));
    let c2 = cookie_header(&finish(&store, &landed).await.expect("landed"));

    // Two tabs: R2 writes, acknowledged; R1's save never lands.
    let r1 = open(&store, Some(&c2));
    assert_eq!(role(&r1).await.as_deref(), Some("admin"));
    let r2 = open(&store, Some(&c2));
    r2.insert("role", "user").await.expect("insert");
    r2.save().await.expect("acknowledged");
    finish(&store, &r2).await;
    r1.insert("note", "keep me").await.expect("insert");
    server.kill();
    r1.save().await.expect("kept, in the cookie");
    let c3 = cookie_header(&finish(&store, &r1).await.expect("a cookie"));
    server.restart();
    common::until_connected(store.manager()).await;

    let next = open(&store, Some(&c3));
    assert_eq!(
        next.get::<String>("note").await.expect("get").as_deref(),
        Some("keep me")
    );
    assert_eq!(
        role(&next).await.as_deref(),
        Some("user"),
        "R2's write stands"
    );
}
