//! A user's sessions, driven through the store as an adapter does, against a real Redis: the
//! index follows a session through a new id, logouts leave it, the limit counts live sessions
//! only, and a plain request sends it nothing.

mod common;

use common::{config, finish, open, store_with};
use resilient_session::{Revoked, SessionEngine};
use serde_json::json;
use test_redis::RedisServer;

/// A login as `owner`: a new id, the user, the mark. Returns the cookie.
async fn login(store: &SessionEngine, cookie: Option<&str>, owner: &str) -> String {
    let session = open(store, cookie);
    session.cycle_id().await;
    session.insert("user", owner).await.expect("insert");
    session
        .set_owner(owner, json!({"user_agent": "test"}))
        .await
        .expect("owner");
    finish(store, &session).await.expect("a cookie")
}

async fn user(store: &SessionEngine, cookie: &str) -> Option<String> {
    let session = open(store, Some(cookie));
    let user = session.get::<String>("user").await.ok().flatten();
    finish(store, &session).await;
    user
}

async fn handles(store: &SessionEngine, owner: &str) -> Vec<String> {
    let mut handles: Vec<String> = store
        .sessions_of(owner)
        .await
        .expect("listed")
        .into_iter()
        .map(|s| s.handle)
        .collect();
    handles.sort();
    handles
}

async fn handle(store: &SessionEngine, cookie: &str) -> String {
    let session = open(store, Some(cookie));
    let handle = session.handle().await.expect("a stored session");
    finish(store, &session).await;
    handle
}

fn index_size(redis: &RedisServer) -> i64 {
    let keys: Vec<String> = redis.query(&["KEYS", "session:owner:*"]);
    keys.iter()
        .map(|key| redis.query::<i64>(&["ZCARD", key]))
        .sum()
}

#[tokio::test]
async fn a_new_id_after_login_moves_the_session_in_its_index() {
    let redis = RedisServer::start();
    let store = store_with(&redis, config()).await;
    let cookie = login(&store, None, "ada").await;
    let before = handle(&store, &cookie).await;

    // A privilege change: a new id, no new login.
    let session = open(&store, Some(&cookie));
    session.cycle_id().await;
    let cookie = finish(&store, &session).await.expect("a new cookie");
    let after = handle(&store, &cookie).await;
    assert_ne!(before, after);
    assert_eq!(
        handles(&store, "ada").await,
        [after],
        "listed under its new id"
    );
    assert_eq!(index_size(&redis), 1, "the old id left the index");

    assert_eq!(
        store.revoke_all("ada").await.expect("revoked"),
        Revoked::Now(1)
    );
    assert_eq!(user(&store, &cookie).await, None, "ended");
}

#[tokio::test]
async fn a_logout_leaves_the_index() {
    let redis = RedisServer::start();
    let store = store_with(&redis, config()).await;
    let cookie = login(&store, None, "ada").await;
    assert_eq!(index_size(&redis), 1);
    let session = open(&store, Some(&cookie));
    session.destroy().await;
    finish(&store, &session).await;
    assert_eq!(index_size(&redis), 0);
}

#[tokio::test]
async fn the_limit_counts_live_sessions_only() {
    let redis = RedisServer::start();
    let store = store_with(&redis, config().max_sessions_per_owner(2)).await;
    let one = login(&store, None, "ada").await;
    let two = login(&store, None, "ada").await;
    // Two logs out; a third device logs in: one and three are the two sessions.
    let session = open(&store, Some(&two));
    session.destroy().await;
    finish(&store, &session).await;
    let three = login(&store, None, "ada").await;
    assert_eq!(
        user(&store, &one).await.as_deref(),
        Some("ada"),
        "not pushed out"
    );
    assert_eq!(user(&store, &three).await.as_deref(), Some("ada"));

    // Three logs in again (a new id): its old id does not count either.
    let three = login(&store, Some(&three), "ada").await;
    assert_eq!(
        user(&store, &one).await.as_deref(),
        Some("ada"),
        "still not pushed out"
    );
    assert_eq!(user(&store, &three).await.as_deref(), Some("ada"));
    assert_eq!(handles(&store, "ada").await.len(), 2);
}

#[tokio::test]
async fn a_plain_request_sends_no_index_command() {
    let redis = RedisServer::start();
    let store = store_with(&redis, config()).await;
    let cookie = login(&store, None, "ada").await;
    redis.reset_stats();
    let session = open(&store, Some(&cookie));
    let _ = session.get::<String>("user").await;
    session.insert("counter", 1).await.expect("insert");
    finish(&store, &session).await;
    let _ = user(&store, &cookie).await;
    let commands = redis.commandstats();
    for command in commands.keys() {
        assert!(
            !command.starts_with('z') && command != "pexpireat" && command != "hmget",
            "an index command on a plain request: {commands:?}"
        );
    }
    assert_eq!(commands.get("hgetall"), Some(&2), "{commands:?}");
}

#[tokio::test]
async fn a_session_marked_as_someone_elses_since_is_not_the_first_owners_to_end() {
    let redis = RedisServer::start();
    let store = store_with(&redis, config()).await;
    let cookie = login(&store, None, "ada").await;
    let handle = handle(&store, &cookie).await;
    // The app marks it as bob's, without a new id.
    let session = open(&store, Some(&cookie));
    session.set_owner("bob", json!(null)).await.expect("owner");
    session.insert("user", "bob").await.expect("insert");
    let cookie = finish(&store, &session).await.unwrap_or(cookie);

    assert_eq!(
        store
            .revoke_session("ada", &handle)
            .await
            .expect("answered"),
        Revoked::NotFound,
        "no longer ada's"
    );
    assert_eq!(
        store.revoke_all("ada").await.expect("answered"),
        Revoked::Now(0)
    );
    assert_eq!(
        user(&store, &cookie).await.as_deref(),
        Some("bob"),
        "not ended"
    );
    assert_eq!(handles(&store, "bob").await, [handle]);
}
