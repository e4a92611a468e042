//! Deployment: the example apps under a Redis user limited to the session keys and the commands
//! the library sends, watched with `MONITOR`.

use std::time::Duration;

use conformance::{ACL, Framework, TestApp, decrypt_cookie, wait_until};
use resilient_session::RedisManager;
use test_redis::{RedisServer, TestCertificates};

conformance::scenarios!(
    everything_works_under_a_least_privilege_acl_user,
    sessions_work_over_tls_with_client_certificates,
    a_wrong_ca_or_host_name_is_refused_and_sessions_fall_back,
    a_sentinel_failover_is_followed_without_a_restart,
);

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
    let log: Vec<test_redis::redis::Value> = redis.query(&["ACL", "LOG"]);
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

fn tls_manager(
    redis: &RedisServer,
    certificates: &TestCertificates,
) -> resilient_session::RedisManagerBuilder {
    let (cert, key) = certificates.client_pem();
    RedisManager::builder()
        .url(redis.tls_url())
        .tls_root_certificate(certificates.ca_pem())
        .tls_client_certificate(cert, key)
        .breaker_backoff(Duration::from_millis(100))
        .breaker_max_backoff(Duration::from_millis(500))
}

async fn sessions_work_over_tls_with_client_certificates(framework: Framework) {
    let certificates = TestCertificates::generate(&["IP:127.0.0.1", "DNS:localhost"]);
    let mut redis = RedisServer::builder()
        .persistent()
        .tls(&certificates, true)
        .start();
    let app =
        TestApp::start_with(framework, tls_manager(&redis, &certificates), &redis, |c| c).await;
    let mut client = app.client();
    let login = client.login("ada", "admin").await;
    eprintln!(
        "LOGIN {:?} health {:?} stats {:?}",
        login.set_cookies,
        app.store.manager().check().await,
        redis.commandstats()
    );
    for expected in 1..=2 {
        let reply = client.post("/counter").await;
        assert_eq!(reply.json["counter"], expected);
        assert_eq!(reply.json["source"], "redis");
    }
    assert_eq!(
        redis.commandstats().get("hgetall"),
        Some(&2),
        "over the TLS port"
    );

    redis.kill();
    assert_eq!(client.post("/counter").await.json["source"], "cookie");
    redis.restart();
    wait_until(Duration::from_secs(5), "back on Redis over TLS", || {
        let store = app.store.clone();
        async move { store.manager().health().is_healthy }
    })
    .await;
    assert_eq!(client.get("/counter").await.json["counter"], 3);
    let reply = client.get("/counter").await;
    assert_eq!(reply.json["source"], "redis");
    assert_eq!(client.post("/logout").await.status, 204);
}

async fn a_wrong_ca_or_host_name_is_refused_and_sessions_fall_back(framework: Framework) {
    let certificates = TestCertificates::generate(&["IP:127.0.0.1"]);
    let redis = RedisServer::builder().tls(&certificates, false).start();
    let stranger = TestCertificates::generate(&["IP:127.0.0.1"]);
    // A CA that did not sign the server's certificate.
    let wrong_ca = RedisManager::builder()
        .url(redis.tls_url())
        .tls_root_certificate(stranger.ca_pem());
    // The right CA, but a certificate for another name than the one connected to.
    let other_name = TestCertificates::generate(&["DNS:other.example"]);
    let named = RedisServer::builder().tls(&other_name, false).start();
    let wrong_name = RedisManager::builder()
        .url(named.tls_url())
        .tls_root_certificate(other_name.ca_pem());

    for (what, manager, server) in [
        ("wrong CA", wrong_ca, &redis),
        ("wrong name", wrong_name, &named),
    ] {
        server.reset_stats();
        let app = TestApp::start_unconnected(framework, manager, |c| c).await;
        let mut client = app.client();
        client.login("ada", "admin").await;
        let me = client.get("/me").await;
        assert_eq!(
            me.json["source"], "cookie",
            "{what}: served from the cookie"
        );
        assert_eq!(client.get("/api/health/redis").await.status, 503, "{what}");
        let last_error = app.store.manager().health().last_error.unwrap_or_default();
        assert!(!last_error.is_empty(), "{what}: the refusal is reported");
        assert_eq!(
            server.total_commands(),
            0,
            "{what}: nothing reached Redis, in plain text or not"
        );
    }
}

async fn a_sentinel_failover_is_followed_without_a_restart(framework: Framework) {
    let mut primary = RedisServer::start();
    let replica = RedisServer::builder().replica_of(primary.port()).start();
    let sentinel = RedisServer::builder()
        .sentinel(primary.port(), "sessions")
        .start();
    wait_until(Duration::from_secs(20), "Sentinel sees the replica", || {
        let replicas: Vec<test_redis::redis::Value> =
            sentinel.query(&["SENTINEL", "REPLICAS", "sessions"]);
        async move { !replicas.is_empty() }
    })
    .await;
    let manager = RedisManager::builder()
        .sentinel([sentinel.url()], "sessions")
        .breaker_backoff(Duration::from_millis(100))
        .breaker_max_backoff(Duration::from_millis(500));
    let app = TestApp::start_with(framework, manager, &primary, |c| c).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    let mut counter = 0;
    let mut count = |reply: conformance::Reply| {
        assert_eq!(reply.status, 200, "no 5xx: {}", reply.text);
        counter += 1;
        assert_eq!(reply.json["counter"], counter, "nothing lost");
        reply.json["source"].as_str().unwrap_or_default().to_owned()
    };
    for _ in 0..3 {
        assert_eq!(count(client.post("/counter").await), "redis");
    }
    // The replica has it all before the primary goes.
    let _: i64 = primary.query(&["WAIT", "1", "2000"]);

    primary.kill();
    let mut promoted = false;
    let mut back_on_redis = false;
    for _ in 0..300 {
        let source = count(client.post("/counter").await);
        let master: Vec<String> =
            sentinel.query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sessions"]);
        promoted |= master.get(1).map(String::as_str) == Some(&replica.port().to_string());
        if promoted && source == "redis" {
            back_on_redis = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(promoted, "Sentinel promoted the replica");
    assert!(
        back_on_redis,
        "the app follows the new primary without a restart"
    );
    assert_eq!(
        client.get("/me").await.json["user_id"],
        "ada",
        "still logged in"
    );
    let keys: Vec<String> = replica.query(&["KEYS", "session:*"]);
    assert!(
        keys.len() >= 2,
        "the session lives on the new primary: {keys:?}"
    );
}
