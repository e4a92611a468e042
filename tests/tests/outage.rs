//! Redis down: scenarios that kill, pause and restart a real redis-server under an example app.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use conformance::{
    Client, Framework, TestApp, count_to, counting_load, decrypt_cookie, defaults, redis_key_of,
    served_from_redis_again, session_keys, wait_until,
};
use resilient_session::{BreakerState, RedisManager};
use serde_json::json;
use test_redis::RedisServer;

conformance::scenarios!(
    outage_then_redis_returns_with_its_data,
    outage_then_redis_returns_empty_and_the_session_is_reseeded,
    logout_during_an_outage_is_replayed_on_redis_with_data,
    logout_during_an_outage_is_replayed_on_redis_restarted_empty,
    paused_redis_costs_the_first_requests_a_bounded_wait_and_later_ones_none,
    fifty_clients_through_an_outage_lose_nothing,
    past_fallback_max_age_the_cookie_is_not_honoured_alone,
    bad_cookies_are_refused_during_an_outage_too,
    a_session_begun_during_an_outage_gets_a_fresh_id_in_redis,
    the_app_starts_without_redis_and_moves_to_it,
    out_of_memory_writes_go_to_the_cookie,
    health_shows_degraded_operation,
);

/// The payload of the client's session cookie.
fn payload(app: &TestApp, client: &Client) -> serde_json::Value {
    decrypt_cookie(app.store.cookie_name(), &client.cookie().expect("a cookie"))
}

async fn outage_with_counter(framework: Framework, redis: &mut RedisServer) -> (TestApp, Client) {
    let app = TestApp::start(framework, redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    count_to(&mut client, 1, 5, "redis").await;

    redis.kill();
    let me = client.get("/me").await;
    assert_eq!(
        me.json,
        json!({"user_id": "ada", "role": "admin", "source": "cookie"})
    );
    count_to(&mut client, 6, 7, "cookie").await;
    let cookie = payload(&app, &client);
    assert_eq!(
        cookie["m"]["counter"], 7,
        "the outage write rides in the cookie (a mirrored key: in the mirror)"
    );
    assert_eq!(
        cookie["w"],
        json!(["counter"]),
        "marked as not in Redis yet: {cookie}"
    );
    (app, client)
}

async fn outage_then_redis_returns_with_its_data(framework: Framework) {
    let mut redis = RedisServer::builder().persistent().start();
    let (app, mut client) = outage_with_counter(framework, &mut redis).await;

    redis.restart();
    served_from_redis_again(&mut client, 7).await;
    count_to(&mut client, 8, 8, "redis").await;
    let keys = session_keys(&redis);
    assert_eq!(keys.len(), 1);
    assert_eq!(redis.query::<String>(&["HGET", &keys[0], "counter"]), "8");
    let cookie = payload(&app, &client);
    assert!(
        cookie.get("d").is_none() && cookie.get("w").is_none(),
        "the cookie shrank back: {cookie}"
    );
    assert_eq!(client.get("/me").await.json["source"], "redis");
}

async fn outage_then_redis_returns_empty_and_the_session_is_reseeded(framework: Framework) {
    let mut redis = RedisServer::start();
    let (app, mut client) = outage_with_counter(framework, &mut redis).await;
    let old_id = payload(&app, &client)["i"]
        .as_str()
        .expect("an id")
        .to_owned();

    redis.restart_empty();
    served_from_redis_again(&mut client, 7).await;
    let me = client.get("/me").await;
    assert_eq!(
        me.json,
        json!({"user_id": "ada", "role": "admin", "source": "redis"}),
        "still logged in"
    );
    count_to(&mut client, 8, 8, "redis").await;
    let new_id = payload(&app, &client)["i"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert_ne!(new_id, old_id, "re-seeded under a new id");
    assert_eq!(session_keys(&redis), vec![redis_key_of(&new_id)]);
    assert_eq!(
        redis.query::<String>(&["HGET", &redis_key_of(&new_id), "counter"]),
        "8"
    );
}

async fn logout_during_an_outage(framework: Framework, with_data: bool) {
    let mut redis = if with_data {
        RedisServer::builder().persistent().start()
    } else {
        RedisServer::start()
    };
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    count_to(&mut client, 1, 1, "redis").await;
    let mut copy = client.fork();

    redis.kill();
    assert_eq!(client.post("/logout").await.status, 204);
    assert!(client.cookie().is_none(), "the cookie is removed at once");
    assert_eq!(
        copy.get("/me").await.status,
        401,
        "a copy is anonymous here at once"
    );
    assert_eq!(app.store.stats().revocations_pending, 1);

    if with_data {
        redis.restart();
    } else {
        redis.restart_empty();
    }
    let store = app.store.clone();
    wait_until(Duration::from_secs(5), "the logout is replayed", || {
        let store = store.clone();
        async move { store.stats().revocations_replayed == 1 }
    })
    .await;
    assert_eq!(app.store.stats().revocations_pending, 0);
    assert!(session_keys(&redis).is_empty(), "DEL replayed");
    let tombstones: Vec<String> = redis.query(&["KEYS", "session:revoked:*"]);
    assert_eq!(tombstones.len(), 1, "a tombstone");

    // The copy is anonymous here, and on an instance that never saw the logout.
    assert_eq!(copy.get("/me").await.status, 401);
    let other = TestApp::start(framework, &redis, defaults).await;
    let mut copy_elsewhere = other.client();
    copy_elsewhere.set_cookie(copy.cookie());
    assert_eq!(copy_elsewhere.get("/me").await.status, 401);
    assert_eq!(copy_elsewhere.get("/counter").await.json["counter"], 0);
    assert!(session_keys(&redis).is_empty(), "nothing re-seeded");
}

async fn logout_during_an_outage_is_replayed_on_redis_with_data(framework: Framework) {
    logout_during_an_outage(framework, true).await;
}

async fn logout_during_an_outage_is_replayed_on_redis_restarted_empty(framework: Framework) {
    logout_during_an_outage(framework, false).await;
}

async fn paused_redis_costs_the_first_requests_a_bounded_wait_and_later_ones_none(
    framework: Framework,
) {
    let redis = RedisServer::start();
    let manager = RedisManager::builder()
        .url(redis.url())
        .failure_threshold(2)
        // No probe during the measurement: a probe would wait on the paused server.
        .breaker_backoff(Duration::from_secs(30))
        .breaker_max_backoff(Duration::from_secs(30));
    let app = TestApp::start_with(framework, manager, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;

    redis.pause();
    let mut waits = Vec::new();
    for _ in 0..6 {
        let started = Instant::now();
        let me = client.get("/me").await;
        waits.push(started.elapsed());
        assert_eq!(me.json["source"], "cookie", "{}", me.text);
    }
    redis.resume();
    let budget = Duration::from_millis(250 + 600);
    println!(
        "request waits with Redis paused: {waits:?} (command timeout 250 ms, retry budget 600 ms)"
    );
    for (i, wait) in waits.iter().enumerate().take(2) {
        assert!(
            *wait < budget + Duration::from_millis(500),
            "request {i} waited {wait:?}"
        );
    }
    assert_eq!(app.store.manager().health().breaker, BreakerState::Open);
    for (i, wait) in waits.iter().enumerate().skip(2) {
        assert!(
            *wait < Duration::from_millis(250),
            "request {i} waited {wait:?} with the breaker open"
        );
    }
}

async fn fifty_clients_through_an_outage_lose_nothing(framework: Framework) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let stop = Arc::new(AtomicBool::new(false));
    let breaker_opened = Arc::new(AtomicBool::new(false));
    let tasks = counting_load(&app, 50, Duration::from_millis(20), &stop);
    let watcher = {
        let store = app.store.clone();
        let opened = Arc::clone(&breaker_opened);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if store.manager().health().breaker != BreakerState::Closed {
                    opened.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    watcher.await.expect("watcher");

    let mut clients = Vec::new();
    for task in tasks {
        let (client, last, server_errors) = task.await.expect("a client task");
        assert_eq!(server_errors, 0, "no 5xx");
        assert!(last > 10, "the client made progress: {last}");
        clients.push((client, last));
    }
    assert!(breaker_opened.load(Ordering::Relaxed), "the breaker opened");
    assert_eq!(
        app.store.manager().health().breaker,
        BreakerState::Closed,
        "and closed"
    );
    for (client, last) in &mut clients {
        let reply = client.get("/counter").await;
        assert_eq!(reply.json, json!({"counter": *last, "source": "redis"}));
    }
    assert_eq!(session_keys(&redis).len(), 50, "every session is in Redis");
    for (client, last) in &clients {
        let id = payload(&app, client)["i"]
            .as_str()
            .expect("an id")
            .to_owned();
        let stored: String = redis.query(&["HGET", &redis_key_of(&id), "counter"]);
        assert_eq!(stored, last.to_string());
    }
}

async fn past_fallback_max_age_the_cookie_is_not_honoured_alone(framework: Framework) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start(framework, &redis, |c| {
        c.fallback_max_age(Duration::from_secs(1))
    })
    .await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    redis.kill();
    let me = client.get("/me").await;
    assert_eq!(me.status, 401, "not honoured on its own any more");
    assert!(
        me.set_cookies.is_empty(),
        "but not removed: Redis may confirm it again"
    );
    let counter = client.get("/counter").await;
    assert_eq!(
        counter.status, 503,
        "the counter is not known: not a made-up 0: {}",
        counter.text
    );

    redis.restart();
    wait_until(Duration::from_secs(5), "logged in again from Redis", || {
        let mut client = client.clone();
        async move { client.get("/me").await.status == 200 }
    })
    .await;
}

async fn bad_cookies_are_refused_during_an_outage_too(framework: Framework) {
    let mut redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, |c| {
        c.idle_timeout(Duration::from_secs(2))
            .touch_interval(Duration::from_secs(1))
    })
    .await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    let good = client.cookie().expect("cookie");
    redis.kill();

    let mut tampered = good.clone().into_bytes();
    let at = tampered.len() / 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let mut forged = app.client();
    forged.set_cookie(Some(String::from_utf8(tampered).expect("ascii")));
    let me = forged.get("/me").await;
    assert_eq!(me.status, 401);
    assert!(me.set_cookies.iter().any(|c| c.contains("Max-Age=0")));

    // Past the idle timeout the cookie is expired, Redis or not (whole seconds: wait 3 s).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let me = client.get("/me").await;
    assert_eq!(me.status, 401);
    assert!(me.set_cookies.iter().any(|c| c.contains("Max-Age=0")));
}

async fn a_session_begun_during_an_outage_gets_a_fresh_id_in_redis(framework: Framework) {
    let mut redis = RedisServer::start();
    redis.kill();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    count_to(&mut client, 1, 1, "new").await;
    count_to(&mut client, 2, 2, "cookie").await;
    let during = payload(&app, &client);
    assert!(during.get("i").is_none(), "no Redis id yet: {during}");
    let provisional = during["p"].as_str().expect("its own id").to_owned();

    redis.restart();
    served_from_redis_again(&mut client, 2).await;
    let after = payload(&app, &client);
    let id = after["i"].as_str().expect("a Redis id now").to_owned();
    assert_ne!(id, provisional, "a new id is minted on promotion");
    assert!(
        after.get("p").is_none() && after.get("d").is_none(),
        "{after}"
    );
    assert_eq!(session_keys(&redis), vec![redis_key_of(&id)]);
    count_to(&mut client, 3, 3, "redis").await;
}

async fn the_app_starts_without_redis_and_moves_to_it(framework: Framework) {
    let mut redis = RedisServer::start();
    redis.kill();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    let login = client.login("ada", "admin").await;
    assert_eq!(login.json["user_id"], "ada");
    assert_eq!(client.get("/me").await.json["source"], "cookie");
    count_to(&mut client, 1, 2, "cookie").await;
    let health = client.get("/api/health/redis").await;
    assert_eq!(health.status, 503);

    let mut leaving = app.client();
    leaving.login("bob", "user").await;
    assert_eq!(leaving.post("/logout").await.status, 204);
    assert_eq!(
        leaving.get("/me").await.status,
        401,
        "logout works from the cookie"
    );

    redis.restart();
    served_from_redis_again(&mut client, 2).await;
    count_to(&mut client, 3, 3, "redis").await;
    assert_eq!(
        client.get("/me").await.json,
        json!({"user_id": "ada", "role": "admin", "source": "redis"})
    );
    assert_eq!(client.get("/api/health/redis").await.status, 200);
}

async fn out_of_memory_writes_go_to_the_cookie(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    count_to(&mut client, 1, 1, "redis").await;

    redis.run(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.run(&["CONFIG", "SET", "maxmemory", "1"]);
    for expected in 2..=3 {
        let reply = client.post("/counter").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json["counter"], expected);
    }
    assert!(app.store.stats().fallback_writes >= 1);
    redis.run(&["CONFIG", "SET", "maxmemory", "0"]);
    served_from_redis_again(&mut client, 3).await;
    count_to(&mut client, 4, 4, "redis").await;
    let key = session_keys(&redis).pop().expect("the session");
    assert_eq!(redis.query::<String>(&["HGET", &key, "counter"]), "4");
}

async fn health_shows_degraded_operation(framework: Framework) {
    let mut redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    redis.kill();
    count_to(&mut client, 1, 2, "cookie").await;
    client.post("/logout").await;

    let health = client.get("/api/health/redis").await;
    assert_eq!(health.status, 503, "{}", health.text);
    let fallback = &health.json["details"]["fallback"];
    assert_ne!(fallback["breaker"], "closed", "{fallback}");
    assert!(fallback["fallbackWrites"].as_u64() >= Some(2), "{fallback}");
    assert!(
        fallback.get("revocationsPending").is_none(),
        "no queue depth in the public report: {fallback}"
    );
    assert_eq!(app.store.stats().revocations_pending, 1);
    assert_eq!(health.json["details"]["session_service"], true);

    redis.restart();
    let mut probe = client.clone();
    wait_until(Duration::from_secs(5), "healthy again", || {
        let mut probe = probe.clone();
        async move { probe.get("/api/health/redis").await.status == 200 }
    })
    .await;
    let health = probe.get("/api/health/redis").await;
    assert_eq!(health.json["details"]["fallback"]["breaker"], "closed");
}
