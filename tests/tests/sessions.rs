//! A user's sessions, listed and ended, through the example apps against a real Redis (one
//! node, a cluster, the least-privilege ACL user).

use std::time::Duration;

use base64::Engine as _;
use conformance::{ACL, Client, Framework, TestApp, TestRedis, defaults, wait_until};
use serde_json::Value;
use sha2::Digest as _;
use test_redis::RedisServer;
use test_redis::redis;

conformance::scenarios!(
    sessions_are_listed_and_ended_one_by_one,
    logout_others_ends_every_other_session,
    logout_everywhere_ends_them_all,
    listing_during_an_outage_says_redis_is_unavailable,
    revocations_during_an_outage_are_replayed,
    the_index_shrinks_as_sessions_expire_and_then_goes,
    everything_works_under_the_least_privilege_acl,
    a_login_beyond_the_limit_ends_the_oldest_session,
    simultaneous_logins_cannot_both_pass_a_limit_of_one,
    a_session_reseeded_from_its_cookie_stays_listed,
);
conformance::scenarios!(for test_redis::RedisCluster => cluster: sessions_are_listed_and_ended_on_any_deployment);

/// The index of `owner`'s sessions.
fn index_key(owner: &str) -> String {
    let digest = sha2::Sha256::digest(owner.as_bytes());
    format!(
        "session:owner:{{{}}}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

async fn logged_in(app: &TestApp, user: &str, user_agent: &str) -> Client {
    let mut client = app.client();
    client.set_user_agent(user_agent);
    client.login(user, "user").await;
    client
}

/// `GET /sessions`, checked: the handles, and which one is the caller's.
async fn list(client: &mut Client) -> Vec<Value> {
    let reply = client.get("/sessions").await;
    assert_eq!(reply.status, 200, "GET /sessions: {}", reply.text);
    reply.json.as_array().expect("a list").clone()
}

fn current(listed: &[Value]) -> String {
    let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "one current session: {listed:?}");
    current[0]["handle"].as_str().expect("a handle").to_owned()
}

async fn is_logged_in(client: &mut Client) -> bool {
    client.get("/me").await.status == 200
}

async fn sessions_are_listed_and_ended_one_by_one(framework: Framework) {
    sessions_are_listed_and_ended_on_any_deployment::<RedisServer>(framework).await;
}

async fn sessions_are_listed_and_ended_on_any_deployment<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut one = logged_in(&app, "ada", "one").await;
    let mut two = logged_in(&app, "ada", "two").await;
    let mut three = logged_in(&app, "ada", "three").await;
    let mut bob = logged_in(&app, "bob", "bob's").await;

    let listed = list(&mut one).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let mut agents: Vec<&str> = listed
        .iter()
        .map(|s| s["user_agent"].as_str().expect("recorded"))
        .collect();
    agents.sort_unstable();
    assert_eq!(agents, ["one", "three", "two"]);
    let now = time_now();
    for session in &listed {
        let created = session["created"].as_i64().expect("unix seconds");
        let last_seen = session["last_seen"].as_i64().expect("unix seconds");
        assert!((now - 60..=now + 1).contains(&created), "{session}");
        assert!((created..=now + 1).contains(&last_seen), "{session}");
        let handle = session["handle"].as_str().expect("a handle");
        assert!(
            !one.cookie().expect("a cookie").contains(handle),
            "a handle is not the cookie"
        );
    }
    let one_handle = current(&listed);
    let two_handle = current(&list(&mut two).await);
    assert_ne!(one_handle, two_handle);
    assert_eq!(list(&mut bob).await.len(), 1, "bob sees his own only");

    // Bob cannot end ada's sessions.
    assert_eq!(
        bob.delete(&format!("/sessions/{two_handle}")).await.status,
        404
    );
    assert_eq!(bob.delete("/sessions/not-a-handle").await.status, 404);
    assert!(is_logged_in(&mut two).await);

    // Ada ends "two" from "one".
    assert_eq!(
        one.delete(&format!("/sessions/{two_handle}")).await.status,
        204
    );
    assert!(!is_logged_in(&mut two).await, "that client is logged out");
    assert!(is_logged_in(&mut one).await && is_logged_in(&mut three).await);
    assert!(is_logged_in(&mut bob).await);
    assert_eq!(list(&mut one).await.len(), 2);

    let mut anonymous = app.client();
    assert_eq!(anonymous.get("/sessions").await.status, 401);
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

async fn logout_others_ends_every_other_session(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut one = logged_in(&app, "ada", "one").await;
    let mut two = logged_in(&app, "ada", "two").await;
    let mut three = logged_in(&app, "ada", "three").await;
    let mut bob = logged_in(&app, "bob", "bob's").await;

    assert_eq!(one.post("/logout-others").await.status, 204);
    assert!(is_logged_in(&mut one).await, "this one stays");
    assert!(!is_logged_in(&mut two).await && !is_logged_in(&mut three).await);
    assert!(is_logged_in(&mut bob).await);
    let listed = list(&mut one).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["current"], true);
}

async fn logout_everywhere_ends_them_all(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut one = logged_in(&app, "ada", "one").await;
    let mut two = logged_in(&app, "ada", "two").await;
    let mut bob = logged_in(&app, "bob", "bob's").await;
    let mut copy = one.fork();

    assert_eq!(one.post("/logout-everywhere").await.status, 204);
    assert!(!is_logged_in(&mut one).await, "this one too");
    assert!(!is_logged_in(&mut copy).await, "a copy of its cookie too");
    assert!(!is_logged_in(&mut two).await);
    assert!(is_logged_in(&mut bob).await);
    let members: Vec<String> = redis.query(&["ZRANGE", &index_key("ada"), "0", "-1"]);
    assert_eq!(members, Vec::<String>::new(), "the index is empty");
}

async fn listing_during_an_outage_says_redis_is_unavailable(framework: Framework) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut one = logged_in(&app, "ada", "one").await;
    redis.kill();
    assert!(is_logged_in(&mut one).await, "from the cookie");
    assert_eq!(one.get("/sessions").await.status, 503, "not an empty list");
}

/// Until every one of `clients` is logged out: Redis back, the queued revocations replayed.
async fn until_logged_out(clients: &[&Client]) {
    for client in clients {
        let client = (*client).clone();
        wait_until(
            Duration::from_secs(10),
            "the revocation is replayed",
            || {
                let mut client = client.clone();
                async move { !is_logged_in(&mut client).await }
            },
        )
        .await;
    }
}

async fn revocations_during_an_outage_are_replayed(framework: Framework) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut one = logged_in(&app, "ada", "one").await;
    let mut two = logged_in(&app, "ada", "two").await;
    let mut three = logged_in(&app, "ada", "three").await;
    let mut bob = logged_in(&app, "bob", "bob's").await;
    let two_handle = current(&list(&mut two).await);
    let bobs = current(&list(&mut bob).await);

    redis.kill();
    assert_eq!(
        one.delete(&format!("/sessions/{two_handle}")).await.status,
        204,
        "queued"
    );
    assert_eq!(one.post("/logout-others").await.status, 204, "queued");
    assert_eq!(
        one.delete(&format!("/sessions/{bobs}")).await.status,
        204,
        "queued: whose it is is checked when Redis is back"
    );
    assert!(
        is_logged_in(&mut one).await,
        "this one stays, from its cookie"
    );

    redis.restart();
    until_logged_out(&[&two, &three]).await;
    assert!(is_logged_in(&mut one).await, "the current one was kept");
    assert!(
        is_logged_in(&mut bob).await,
        "bob's session is not ada's to end"
    );
    assert!(!is_logged_in(&mut two).await && !is_logged_in(&mut three).await);
    assert_eq!(list(&mut one).await.len(), 1);
}

async fn the_index_shrinks_as_sessions_expire_and_then_goes(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, |config| {
        config
            .idle_timeout(Duration::from_secs(2))
            .absolute_lifetime(Duration::from_secs(3))
            .touch_interval(Duration::from_secs(1))
    })
    .await;
    for agent in ["one", "two", "three"] {
        logged_in(&app, "ada", agent).await;
    }
    let index = index_key("ada");
    assert_eq!(redis.query::<i64>(&["ZCARD", &index]), 3);
    let ttl: i64 = redis.query(&["TTL", &index]);
    assert!(
        (1..=5).contains(&ttl),
        "the index expires with its sessions: {ttl}"
    );

    // Idle past their timeout: the sessions are gone, and a listing drops them.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut four = logged_in(&app, "ada", "four").await;
    assert_eq!(list(&mut four).await.len(), 1, "only the new one");
    assert_eq!(redis.query::<i64>(&["ZCARD", &index]), 1);

    // Past the last session's absolute deadline the index itself is gone.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(redis.query::<i64>(&["EXISTS", &index]), 0);
}

async fn everything_works_under_the_least_privilege_acl(framework: Framework) {
    let redis = ACL
        .iter()
        .fold(RedisServer::builder(), |builder, arg| builder.arg(*arg))
        .arg("+ping")
        .start();
    let url = format!(
        "redis://sessions:sessions-password@127.0.0.1:{}/",
        redis.port()
    );
    let manager = resilient_session::RedisManager::builder().url(url);
    // With a limit, so that the index script's counting runs under the ACL too.
    let app = TestApp::start_with(framework, manager, &redis, |config| {
        config.max_sessions_per_owner(5)
    })
    .await;
    let mut one = logged_in(&app, "ada", "one").await;
    let mut two = logged_in(&app, "ada", "two").await;
    let listed = list(&mut one).await;
    assert_eq!(listed.len(), 2);
    let two_handle = current(&list(&mut two).await);
    assert_eq!(
        one.delete(&format!("/sessions/{two_handle}")).await.status,
        204
    );
    assert_eq!(one.post("/logout-others").await.status, 204);
    assert_eq!(one.post("/logout-everywhere").await.status, 204);
    let log: Vec<redis::Value> = redis.query(&["ACL", "LOG"]);
    assert!(log.is_empty(), "refused: {log:?}");
}

async fn a_login_beyond_the_limit_ends_the_oldest_session(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, |config| config.max_sessions_per_owner(2)).await;
    let mut one = logged_in(&app, "ada", "one").await;
    let mut two = logged_in(&app, "ada", "two").await;
    let mut bob = logged_in(&app, "bob", "bob's").await;
    let mut three = logged_in(&app, "ada", "three").await;
    assert!(!is_logged_in(&mut one).await, "the oldest went");
    assert!(is_logged_in(&mut two).await && is_logged_in(&mut three).await);
    assert!(
        is_logged_in(&mut bob).await,
        "another user's count is their own"
    );
    assert_eq!(list(&mut three).await.len(), 2);
}

async fn simultaneous_logins_cannot_both_pass_a_limit_of_one(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, |config| config.max_sessions_per_owner(1)).await;
    for round in 0..5 {
        let (mut a, mut b) = (app.client(), app.client());
        let (ra, rb) = tokio::join!(a.login("ada", "user"), b.login("ada", "user"));
        assert_eq!((ra.status, rb.status), (200, 200));
        let (a_in, b_in) = (is_logged_in(&mut a).await, is_logged_in(&mut b).await);
        assert!(
            a_in ^ b_in,
            "round {round}: exactly one of two simultaneous logins stays ({a_in}, {b_in})"
        );
        assert_eq!(redis.query::<i64>(&["ZCARD", &index_key("ada")]), 1);
    }
}

async fn a_session_reseeded_from_its_cookie_stays_listed(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut one = logged_in(&app, "ada", "one").await;
    let mut two = logged_in(&app, "ada", "two").await;
    let old = current(&list(&mut one).await);

    // Redis loses one session's hash, and says so with a new data epoch (a partial loss: a
    // failover in a cluster loses one shard's keys, the index lives on another).
    let epoch_key = redis
        .keys("session:epoch*")
        .into_iter()
        .next()
        .expect("an epoch");
    redis.run(&["DEL", &format!("session:{{{old}}}")]);
    redis.run(&["SET", &epoch_key, "another-epoch"]);
    assert!(is_logged_in(&mut one).await, "re-seeded from its cookie");

    // Nothing listed it since: logout-others from it keeps it all the same.
    assert_eq!(one.post("/logout-others").await.status, 204);
    assert!(
        is_logged_in(&mut one).await,
        "the current session, under its new id, is kept"
    );
    assert!(!is_logged_in(&mut two).await);
    let listed = list(&mut one).await;
    assert_eq!(listed.len(), 1, "listed under its new id: {listed:?}");
    assert_ne!(current(&listed), old);
    assert_eq!(one.post("/logout-everywhere").await.status, 204);
    assert!(!is_logged_in(&mut one).await);
}
