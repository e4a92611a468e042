//! Deployment: the example apps under a Redis user limited to the session keys and the commands
//! the library sends, watched with `MONITOR`.

use std::time::Duration;

use conformance::{Framework, TestApp, decrypt_cookie, wait_until};
use resilient_session::RedisManager;
use test_redis::RedisServer;

conformance::scenarios!(everything_works_under_a_least_privilege_acl_user);

/// The ACL line README documents, as `redis-server` arguments.
const ACL: [&str; 17] = [
    "--user",
    "sessions",
    "on",
    ">sessions-password",
    "~session:*",
    "resetchannels",
    "-@all",
    "+hgetall",
    "+expire",
    "+evalsha",
    "+eval",
    "+del",
    "+set",
    "+get",
    "+exists",
    "+hset",
    "+hdel",
];

fn acl_server() -> RedisServer {
    ACL.iter()
        .fold(RedisServer::builder().persistent(), |builder, arg| {
            builder.arg(*arg)
        })
        .arg("+ping")
        .start()
}

/// Commands the ACL refused since the server started (`ACL LOG`), described.
fn denials(redis: &RedisServer) -> Vec<String> {
    let log: Vec<resilient_session::redis::redis::Value> = redis.query(&["ACL", "LOG"]);
    log.into_iter().map(|entry| format!("{entry:?}")).collect()
}

async fn everything_works_under_a_least_privilege_acl_user(framework: Framework) {
    let mut redis = acl_server();
    let url = format!(
        "redis://sessions:sessions-password@127.0.0.1:{}/",
        redis.port()
    );
    let manager = RedisManager::builder()
        .url(url)
        .breaker_backoff(Duration::from_millis(100))
        .breaker_max_backoff(Duration::from_millis(500));
    let app = TestApp::start_with(framework, manager, &redis, |c| c).await;
    let cookie_name = app.store.cookie_name().to_owned();
    let mut ids = Vec::new();
    let mut remember = |cookie: Option<String>| {
        if let Some(cookie) = cookie {
            let payload = decrypt_cookie(&cookie_name, &cookie);
            for field in ["i", "p"] {
                if let Some(id) = payload[field].as_str() {
                    ids.push(id.to_owned());
                }
            }
        }
    };

    // Healthy: login, reads, writes, logout.
    let monitor = redis.monitor();
    let mut ada = app.client();
    ada.login("ada", "admin").await;
    remember(ada.cookie());
    for expected in 1..=2 {
        assert_eq!(ada.post("/counter").await.json["counter"], expected);
    }
    assert_eq!(ada.get("/me").await.status, 200);
    let mut bob = app.client();
    bob.login("bob", "user").await;
    remember(bob.cookie());
    let bob_copy = bob.fork();
    assert_eq!(ada.post("/logout").await.status, 204);
    let mut seen = monitor.stop();
    assert_eq!(denials(&redis), Vec::<String>::new(), "nothing refused");

    // An outage: a logout to replay, and a session begun meanwhile.
    redis.kill();
    assert_eq!(bob.post("/logout").await.status, 204);
    let mut carol = app.client();
    carol.post("/counter").await;
    remember(carol.cookie());
    redis.restart();
    let monitor = redis.monitor();
    let store = app.store.clone();
    wait_until(Duration::from_secs(5), "the logout is replayed", || {
        let store = store.clone();
        async move { store.stats().revocations_replayed == 1 }
    })
    .await;
    // Its first request after the outage moves it to Redis (under a new id).
    assert_eq!(carol.post("/counter").await.json["counter"], 2);
    assert_eq!(carol.get("/counter").await.json["source"], "redis");
    remember(carol.cookie());
    let mut copy = bob_copy;
    assert_eq!(copy.get("/me").await.status, 401);
    seen.push_str(&monitor.stop());
    assert_eq!(denials(&redis), Vec::<String>::new(), "nothing refused");

    // Redis lost its data: the epoch is new, sessions are re-seeded.
    let mut dave = app.client();
    dave.login("dave", "user").await;
    remember(dave.cookie());
    redis.restart_empty();
    let monitor = redis.monitor();
    // The first request re-seeds the session under a new id (from the cookie); the next ones
    // are served by Redis.
    assert_eq!(dave.get("/me").await.json["user_id"], "dave");
    let me = dave.get("/me").await;
    assert_eq!(me.json["user_id"], "dave");
    assert_eq!(me.json["source"], "redis");
    remember(dave.cookie());
    seen.push_str(&monitor.stop());
    assert_eq!(denials(&redis), Vec::<String>::new(), "nothing refused");

    // What Redis saw: only namespaced keys, never a session id, none of the dangerous commands.
    assert!(
        seen.contains("\"HGETALL\""),
        "the monitor saw the app: {seen}"
    );
    assert!(!ids.is_empty());
    for id in &ids {
        assert!(
            !seen.contains(id.as_str()),
            "a raw session id reached Redis"
        );
    }
    for command in ["\"KEYS\"", "\"FLUSHALL\"", "\"FLUSHDB\"", "\"CONFIG\""] {
        assert!(!seen.contains(command), "{command} was sent");
    }
    for line in seen
        .lines()
        .filter(|l| l.contains("\"HGETALL\"") || l.contains("\"DEL\""))
    {
        let key = line.rsplit('"').nth(1).unwrap_or("");
        assert!(key.starts_with("session:"), "{line}");
    }
}
