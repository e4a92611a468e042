//! The conformance scenarios: each written once, run against every example app.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use conformance::{Framework, Reply, TestApp, TestRedis, forge_private_cookie, session_keys};
use serde_json::json;

conformance::scenarios!(for test_redis::RedisServer => node:
    login_counter_logout_and_the_old_cookie_is_anonymous,
    login_cycles_the_session_id,
    absolute_lifetime_ends_a_session_touched_all_along,
    idle_timeout_ends_an_untouched_session,
    redis_round_trips_per_request,
    one_touch_per_touch_interval,
    bad_cookies_get_a_fresh_session,
    malicious_ids_never_reach_redis,
    random_cookies_create_no_redis_key,
    corrupt_session_data_is_replaced,
    cookie_attributes_are_the_configured_ones,
    health_reports_redis,
);

// The same scenarios on a 3-primary / 3-replica Redis Cluster, but for the one that counts
// exact commands per request: there, the data epoch is per slot and read when a slot is first
// used, so the first write in a slot adds one round trip.
conformance::scenarios!(for test_redis::RedisCluster => cluster:
    login_counter_logout_and_the_old_cookie_is_anonymous,
    login_cycles_the_session_id,
    absolute_lifetime_ends_a_session_touched_all_along,
    idle_timeout_ends_an_untouched_session,
    one_touch_per_touch_interval,
    bad_cookies_get_a_fresh_session,
    malicious_ids_never_reach_redis,
    random_cookies_create_no_redis_key,
    corrupt_session_data_is_replaced,
    cookie_attributes_are_the_configured_ones,
    health_reports_redis,
);

fn default_config(config: resilient_session::SessionConfig) -> resilient_session::SessionConfig {
    config
}

async fn login_counter_logout_and_the_old_cookie_is_anonymous<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, default_config).await;
    let mut client = app.client();

    let reply = client.login("ada", "admin").await;
    assert_eq!(reply.json, json!({"user_id": "ada", "role": "admin"}));
    assert!(client.cookie().is_some(), "login sets the cookie");

    let me = client.get("/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json,
        json!({"user_id": "ada", "role": "admin", "source": "redis"})
    );

    for expected in 1..=3 {
        let reply = client.post("/counter").await;
        assert_eq!(reply.json, json!({"counter": expected, "source": "redis"}));
    }
    assert_eq!(client.get("/counter").await.json["counter"], 3);

    let saved = client.fork();
    let logout = client.post("/logout").await;
    assert_eq!(logout.status, 204);
    assert!(client.cookie().is_none(), "logout removes the cookie");
    assert_eq!(client.get("/me").await.status, 401);
    assert!(
        session_keys(&redis).is_empty(),
        "logout deletes the session"
    );

    let mut replay = saved;
    assert!(replay.cookie().is_some());
    assert_eq!(
        replay.get("/me").await.status,
        401,
        "a saved copy is anonymous"
    );
    assert_eq!(
        replay.get("/counter").await.json,
        json!({"counter": 0, "source": "new"})
    );
}

async fn login_cycles_the_session_id<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, default_config).await;
    let mut client = app.client();

    client.post("/counter").await;
    let before_login = client.fork();
    let anonymous_keys = session_keys(&redis);
    assert_eq!(anonymous_keys.len(), 1);

    client.login("ada", "user").await;
    assert_ne!(client.cookie(), before_login.cookie(), "a new cookie");
    let keys = session_keys(&redis);
    assert_eq!(keys.len(), 1, "one session: {keys:?}");
    assert_ne!(keys, anonymous_keys, "the old key is gone");
    assert_eq!(
        client.get("/counter").await.json["counter"],
        1,
        "data kept across the new id"
    );

    let mut old = before_login;
    assert_eq!(
        old.get("/me").await.status,
        401,
        "the old cookie is rejected"
    );
    assert_eq!(old.get("/counter").await.json["counter"], 0);
}

async fn absolute_lifetime_ends_a_session_touched_all_along<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, |c| {
        c.absolute_lifetime(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(60))
            .touch_interval(Duration::from_secs(1))
    })
    .await;
    let mut client = app.client();
    let started = Instant::now();
    client.login("ada", "user").await;
    let mut logged_out_after = None;
    while started.elapsed() < Duration::from_secs(8) {
        let me = client.get("/me").await;
        match me.status {
            200 => assert!(
                started.elapsed() < Duration::from_secs(4),
                "still logged in after the absolute lifetime"
            ),
            401 => {
                logged_out_after = Some(started.elapsed());
                break;
            }
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let after = logged_out_after.expect("the session ends");
    assert!(after >= Duration::from_secs(2), "ended early: {after:?}");
}

async fn idle_timeout_ends_an_untouched_session<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    // Times in the cookie are whole seconds: an idle timeout of 3 s is at least 2 s of real time.
    let app = TestApp::start(framework, &redis, |c| {
        c.idle_timeout(Duration::from_secs(3))
            .touch_interval(Duration::from_secs(1))
    })
    .await;
    let mut client = app.client();
    client.login("ada", "user").await;
    // Used within the idle timeout: still there, and touched.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(client.get("/me").await.status, 200);
    }
    let ttl: i64 = redis.query(&["TTL", &session_keys(&redis)[0]]);
    assert!((2..=3).contains(&ttl), "TTL is the idle timeout: {ttl}");
    // Not used for longer than the idle timeout: gone.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(client.get("/me").await.status, 401);
    assert!(session_keys(&redis).is_empty(), "Redis expired it");
}

async fn redis_round_trips_per_request<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, default_config).await;
    // Warm up: the scripts are loaded (a script's first use is EVALSHA, NOSCRIPT, EVAL), so the
    // counts below are the steady state.
    let mut warm_up = app.client();
    warm_up.login("bob", "user").await;
    warm_up.post("/logout").await;
    let mut client = app.client();
    client.login("ada", "user").await;
    client.post("/counter").await;

    redis.reset_stats();
    let reply = client.get("/noop").await;
    assert_eq!(reply.status, 200);
    assert!(reply.set_cookies.is_empty());
    assert_eq!(redis.commandstats(), BTreeMap::new(), "/noop sends nothing");

    redis.reset_stats();
    let reply = client.get("/counter").await;
    assert_eq!(reply.json["counter"], 1);
    assert!(
        reply.set_cookies.is_empty(),
        "no touch due, nothing to re-issue"
    );
    assert_eq!(
        redis.commandstats(),
        BTreeMap::from([("hgetall".to_owned(), 1)]),
        "a read is one HGETALL"
    );

    redis.reset_stats();
    client.post("/counter").await;
    // Two round trips: HGETALL, then one EVALSHA. Redis also counts the commands the script runs
    // (the existence check, HINCRBY of the session's stamp, HSET of the changed field only,
    // EXPIRE).
    let expected = [
        ("hgetall", 1),
        ("evalsha", 1),
        ("exists", 1),
        ("hincrby", 1),
        ("hset", 1),
        ("expire", 1),
    ];
    assert_eq!(
        redis.commandstats(),
        expected.map(|(c, n)| (c.to_owned(), n)).into()
    );

    // A new visitor that never writes costs nothing and gets no cookie.
    let mut visitor = app.client();
    redis.reset_stats();
    let reply = visitor.get("/counter").await;
    assert_eq!(reply.json, json!({"counter": 0, "source": "new"}));
    assert!(reply.set_cookies.is_empty());
    assert_eq!(visitor.get("/me").await.status, 401);
    assert_eq!(redis.total_commands(), 0, "{:?}", redis.commandstats());

    // Logout: a script that deletes the hash and leaves a tombstone (reading the one it
    // replaces, which may name a successor to revoke too), so that no copy of the cookie can
    // re-seed the session after a failover, and answers the session's owner; then, as the
    // example's logins mark their sessions, a `ZREM` from the owner's index: two round trips.
    redis.reset_stats();
    client.post("/logout").await;
    assert_eq!(
        redis.commandstats(),
        BTreeMap::from([
            ("evalsha".to_owned(), 1),
            ("hget".to_owned(), 1),
            ("del".to_owned(), 1),
            ("get".to_owned(), 1),
            ("set".to_owned(), 1),
            ("zrem".to_owned(), 1),
        ])
    );
}

async fn one_touch_per_touch_interval<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, |c| {
        c.touch_interval(Duration::from_secs(2))
    })
    .await;
    let mut client = app.client();
    client.login("ada", "user").await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    redis.reset_stats();
    let mut reissued = 0;
    for _ in 0..10 {
        let reply = client.get("/me").await;
        assert_eq!(reply.status, 200);
        reissued += reply.set_cookies.len();
    }
    for _ in 0..5 {
        assert_eq!(client.get("/noop").await.status, 200);
    }
    let stats = redis.commandstats();
    assert_eq!(stats.get("expire"), Some(&1), "one touch: {stats:?}");
    assert_eq!(stats.get("hgetall"), Some(&10), "{stats:?}");
    assert_eq!(reissued, 1, "the touch re-issues the cookie once");

    // An unread session is touched too, once, when due, in one round trip that reads its
    // stamp: the cookie is re-issued because Redis is where it thinks.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    redis.reset_stats();
    let mut reissued = 0;
    for _ in 0..5 {
        reissued += client.get("/noop").await.set_cookies.len();
    }
    assert_eq!(
        redis.commandstats(),
        BTreeMap::from([("expire".to_owned(), 1), ("hget".to_owned(), 1)])
    );
    assert_eq!(reissued, 1);
    assert_eq!(client.get("/me").await.status, 200);
}

/// The app answered as the contract says, and leaked nothing.
fn assert_contract_reply(reply: &Reply) {
    assert!(reply.status < 500, "{} {}", reply.status, reply.text);
    for leak in ["redis", "Redis", "panic", "session:", "Error"] {
        assert!(
            !reply.text.contains(leak),
            "body leaks {leak:?}: {}",
            reply.text
        );
    }
}

async fn bad_cookies_get_a_fresh_session<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, default_config).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    let good = client.cookie().expect("cookie");

    let mut tampered = good.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    // A well-formed cookie protected by a key the app does not have.
    let wrong_key = {
        let key = cookie::Key::derive_from(&[7u8; 32]);
        let mut jar = cookie::CookieJar::new();
        jar.private_mut(&key)
            .add(cookie::Cookie::new("session", r#"{"v":1,"c":1,"t":1}"#));
        jar.get("session").expect("added").value().to_owned()
    };
    let cases = [
        ("tampered", String::from_utf8(tampered).expect("ascii")),
        ("truncated", good[..good.len() - 5].to_owned()),
        ("non-base64", "%%%not*base64!!".to_owned()),
        ("64 KB", "A".repeat(64 * 1024)),
        ("wrong key", wrong_key),
        ("empty", String::new()),
    ];
    for (what, value) in cases {
        redis.reset_stats();
        let mut forged = app.client();
        forged.set_cookie(Some(value));
        let me = forged.get("/me").await;
        assert_eq!(me.status, 401, "{what}");
        assert_contract_reply(&me);
        assert_eq!(redis.total_commands(), 0, "{what}: no Redis command");
        assert!(
            me.set_cookies.iter().any(|c| c.contains("Max-Age=0")),
            "{what}: the bad cookie is removed: {:?}",
            me.set_cookies
        );
        let counter = forged.post("/counter").await;
        assert_eq!(
            counter.json,
            json!({"counter": 1, "source": "new"}),
            "{what}"
        );
    }
    assert!(app.store.stats().cookies_rejected >= 5);

    // A cookie under another name is not ours: ignored, the session cookie still works.
    let reply = app.client().get_raw("/me", &format!("other={good}")).await;
    assert_eq!(reply.status, 401);
    assert!(reply.set_cookies.is_empty(), "other cookies are left alone");
    assert_eq!(
        client.get("/me").await.status,
        200,
        "the real one still works"
    );
}

async fn malicious_ids_never_reach_redis<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, default_config).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    for id in [
        "*",
        "session:*",
        "a:b",
        "x\r\nFLUSHALL\r\n",
        &"A".repeat(42),
        "",
    ] {
        let payload = json!({"v": 1, "i": id, "c": now, "t": now}).to_string();
        let mut forged = app.client();
        forged.set_cookie(Some(forge_private_cookie("session", &payload)));
        redis.reset_stats();
        let me = forged.get("/me").await;
        assert_eq!(me.status, 401, "{id:?}");
        assert_contract_reply(&me);
        assert_eq!(
            redis.total_commands(),
            0,
            "{id:?} reached Redis: {:?}",
            redis.commandstats()
        );
    }
}

async fn random_cookies_create_no_redis_key<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, default_config).await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..1000 {
        // xorshift: reproducible noise of varying length and alphabet.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 600) as usize;
        let value: String = (0..len)
            .map(|j| {
                let c = (seed.rotate_left(j as u32) % 64) as u8;
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[c as usize]
                    as char
            })
            .collect();
        let mut client = app.client();
        client.set_cookie(Some(value));
        let reply = if i % 2 == 0 {
            client.get("/me").await
        } else {
            client.get("/counter").await
        };
        assert_contract_reply(&reply);
    }
    let keys = redis.keys("*");
    assert!(keys.is_empty(), "random cookies created keys: {keys:?}");
}

async fn corrupt_session_data_is_replaced<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, default_config).await;
    let corruptions: [&[&str]; 3] = [
        &["HSET", "{key}", "user", "{not json"],
        &["HSET", "{key}", "counter", "\u{1}\u{2}"],
        &["SET", "{key}", "a string, not a hash"],
    ];
    for corruption in corruptions {
        let mut client = app.client();
        client.login("ada", "admin").await;
        let key = session_keys(&redis).pop().expect("a session");
        if corruption[0] == "SET" {
            redis.run(&["DEL", &key]);
        }
        let args: Vec<&str> = corruption
            .iter()
            .map(|a| if *a == "{key}" { key.as_str() } else { a })
            .collect();
        redis.run(&args);

        let me = client.get("/me").await;
        assert_eq!(me.status, 401, "{corruption:?}");
        assert_contract_reply(&me);
        let exists: i64 = redis.query(&["EXISTS", &key]);
        assert_eq!(exists, 0, "{corruption:?}: the corrupt key is deleted");
        assert_eq!(
            client.cookie(),
            None,
            "{corruption:?}: its cookie is removed"
        );
        let counter = client.post("/counter").await;
        assert_eq!(counter.json, json!({"counter": 1, "source": "new"}));
        client.post("/logout").await;
    }
    assert_eq!(app.store.stats().corrupt_sessions, 3);
}

async fn cookie_attributes_are_the_configured_ones<R: TestRedis>(framework: Framework) {
    let redis = R::start();
    let app = TestApp::start(framework, &redis, |c| {
        c.cookie_name("sid")
            .host_prefix(true)
            .secure(true)
            .same_site(resilient_session::SameSite::Strict)
            .touch_interval(Duration::from_secs(1))
    })
    .await;
    let mut client = app.client();
    let check = |reply: &Reply, what: &str, removal: bool| {
        assert_eq!(
            reply.set_cookies.len(),
            1,
            "{what}: {:?}",
            reply.set_cookies
        );
        let cookie = cookie::Cookie::parse(reply.set_cookies[0].clone()).expect("parses");
        assert_eq!(cookie.name(), "__Host-sid", "{what}");
        assert_eq!(cookie.secure(), Some(true), "{what}");
        assert_eq!(cookie.http_only(), Some(true), "{what}");
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict), "{what}");
        assert_eq!(cookie.path(), Some("/"), "{what}");
        assert_eq!(cookie.domain(), None, "{what}");
        let max_age = cookie.max_age().expect("Max-Age");
        assert_eq!(max_age.is_zero(), removal, "{what}: {max_age:?}");
        assert_eq!(reply.header("vary").as_deref(), Some("Cookie"), "{what}");
        assert_eq!(
            reply.header("cache-control").as_deref(),
            Some("private"),
            "{what}"
        );
    };
    check(&client.login("ada", "user").await, "new", false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    check(&client.get("/noop").await, "touch", false);
    check(&client.post("/logout").await, "logout removal", true);
}

async fn health_reports_redis<R: TestRedis>(framework: Framework) {
    let mut redis = R::start();
    let app = TestApp::start(framework, &redis, default_config).await;
    let mut client = app.client();
    let reply = client.get("/api/health/redis").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "healthy");
    assert_eq!(reply.json["service"], "redis");
    assert_eq!(
        reply.json["details"]["redis_connection"]["state"],
        "connected"
    );
    assert_eq!(reply.json["details"]["redis_connection"]["isHealthy"], true);
    assert!(
        reply.json["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    redis.kill();
    let reply = client.get("/api/health/redis").await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.json["status"], "unhealthy");
    assert_eq!(
        reply.json["details"]["redis_connection"]["isHealthy"],
        false
    );
}
