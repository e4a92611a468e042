//! Faults beyond kill and pause, through the example apps: a fault proxy between the app and
//! Redis (latency, a blackhole, half-open connections, resets in the middle of a save), Redis's
//! own idle `timeout`, `CLIENT KILL`, `DEBUG SLEEP`, a restart from the AOF under load. None may
//! cost a 5xx, a lost write or a request waiting longer than the retry budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use conformance::{
    Client, Framework, TestApp, counting_load, defaults, served_from_redis_again, wait_until,
};
use resilient_session::{BreakerState, RedisManager, RedisManagerBuilder};
use test_redis::{FaultProxy, RedisServer};

conformance::scenarios!(
    latency_below_the_command_timeout_is_served_from_redis,
    latency_above_the_command_timeout_falls_back_within_the_budget,
    a_blackhole_falls_back_and_recovers_once_healed,
    half_open_connections_are_replaced,
    resets_in_the_middle_of_saves_lose_nothing,
    connections_redis_closes_when_idle_cost_nothing,
    client_kill_under_load_costs_no_5xx,
    debug_sleep_under_load_costs_no_5xx,
    a_restart_from_the_aof_under_load_loses_nothing,
    a_full_redis_takes_reads_while_writes_go_to_the_cookie,
);

/// The retry budget the apps run with here (the default), and what a request may take on top of
/// it (the app, the test client, a loaded machine).
const BUDGET: Duration = Duration::from_millis(600);
const SLACK: Duration = Duration::from_millis(400);

/// A manager through `proxy`, with the default timeouts and a short breaker back-off.
fn through(proxy: &FaultProxy) -> RedisManagerBuilder {
    RedisManager::builder()
        .url(proxy.url())
        .breaker_backoff(Duration::from_millis(100))
        .breaker_max_backoff(Duration::from_millis(500))
}

/// Redis behind a fault proxy, the app through it, a client logged in who counted to 2.
async fn behind_a_proxy(framework: Framework) -> (RedisServer, FaultProxy, TestApp, Client) {
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(redis.port());
    let app = TestApp::start_with(framework, through(&proxy), &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    count(&mut client, 1, 2).await;
    (redis, proxy, app, client)
}

/// Once healed, the session is served from Redis again within the breaker's back-off (at most
/// 500 ms here) and a second for the machine.
async fn back_within_the_breaker_backoff(client: &mut Client, counter: i64) {
    let back = served_from_redis_again(client, counter).await;
    assert!(
        back < Duration::from_secs(2),
        "back on Redis after {back:?}"
    );
}

/// Counts with `POST /counter` from `from` to `to`, each answer 200 and within the budget;
/// returns where each was served from.
async fn count(client: &mut Client, from: i64, to: i64) -> Vec<String> {
    let mut sources = Vec::new();
    for expected in from..=to {
        let started = Instant::now();
        let reply = client.post("/counter").await;
        let took = started.elapsed();
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["counter"], expected, "nothing lost");
        assert!(took < BUDGET + SLACK, "request {expected} took {took:?}");
        sources.push(reply.json["source"].as_str().unwrap_or_default().to_owned());
    }
    sources
}

async fn latency_below_the_command_timeout_is_served_from_redis(framework: Framework) {
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(redis.port());
    let app = TestApp::start_with(framework, through(&proxy), &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    proxy.set_latency(Duration::from_millis(20), Duration::from_millis(20));
    let mut took = Vec::new();
    for expected in 1..=30 {
        let started = Instant::now();
        let reply = client.post("/counter").await;
        took.push(started.elapsed());
        assert_eq!(reply.json["counter"], expected);
        assert_eq!(reply.json["source"], "redis", "slow, not down");
    }
    took.sort();
    println!(
        "{framework:?}: p99 with 20–40 ms to Redis: {:?}",
        took[took.len() * 99 / 100]
    );
}

async fn latency_above_the_command_timeout_falls_back_within_the_budget(framework: Framework) {
    let (_redis, proxy, app, mut client) = behind_a_proxy(framework).await;

    proxy.set_latency(Duration::from_millis(400), Duration::ZERO);
    let sources = count(&mut client, 3, 10).await;
    assert!(
        sources.iter().all(|s| s == "cookie"),
        "served from the cookie: {sources:?}"
    );
    assert_ne!(
        app.store.manager().health().breaker,
        BreakerState::Closed,
        "the breaker opened"
    );
    // With the breaker open, requests do not wait for Redis at all.
    let started = Instant::now();
    count(&mut client, 11, 11).await;
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );

    proxy.heal();
    back_within_the_breaker_backoff(&mut client, 11).await;
}

async fn a_blackhole_falls_back_and_recovers_once_healed(framework: Framework) {
    let (_redis, proxy, _app, mut client) = behind_a_proxy(framework).await;

    proxy.blackhole(true);
    let sources = count(&mut client, 3, 8).await;
    assert!(sources.iter().all(|s| s == "cookie"), "{sources:?}");

    proxy.heal();
    back_within_the_breaker_backoff(&mut client, 8).await;
    count(&mut client, 9, 9).await;
}

async fn half_open_connections_are_replaced(framework: Framework) {
    let (_redis, proxy, _app, mut client) = behind_a_proxy(framework).await;

    // Every open connection dies silently; new ones work.
    proxy.half_open();
    count(&mut client, 3, 5).await;
    back_within_the_breaker_backoff(&mut client, 5).await;
    assert_eq!(count(&mut client, 6, 6).await, ["redis"]);
}

async fn resets_in_the_middle_of_saves_lose_nothing(framework: Framework) {
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(redis.port());
    let app = TestApp::start_with(framework, through(&proxy), &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    let mut expected = 0;
    // Cut connections after more and more bytes, so that resets land at every point of the
    // load and of the save script's request and answer.
    for bytes in (20..400).step_by(37) {
        proxy.reset_after(Some(bytes));
        expected += 1;
        count(&mut client, expected, expected).await;
        proxy.heal();
        expected += 1;
        count(&mut client, expected, expected).await;
    }
    assert!(
        app.store.stats().fallback_writes > 0,
        "some saves were cut: {:?}",
        app.store.stats()
    );
    served_from_redis_again(&mut client, expected).await;
    let key = conformance::session_keys(&redis)
        .pop()
        .expect("the session");
    assert_eq!(
        redis.query::<String>(&["HGET", &key, "counter"]),
        expected.to_string(),
        "Redis holds every write"
    );
}

async fn connections_redis_closes_when_idle_cost_nothing(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    redis.run(&["CONFIG", "SET", "timeout", "1"]);
    count(&mut client, 1, 2).await;
    for round in 0..2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let sources = count(&mut client, 3 + round * 2, 4 + round * 2).await;
        assert_eq!(sources, ["redis", "redis"], "no fallback after idle");
    }
    assert_eq!(
        app.store.stats().fallback_reads,
        0,
        "{:?}",
        app.store.stats()
    );
}

/// Stops the load; checks no 5xx, progress, and that every client's counter is in Redis.
async fn end_load(stop: &Arc<AtomicBool>, tasks: Vec<tokio::task::JoinHandle<(Client, i64, u32)>>) {
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let (mut client, last, server_errors) = task.await.expect("a client task");
        assert_eq!(server_errors, 0, "no 5xx");
        assert!(last > 3, "the client made progress: {last}");
        served_from_redis_again(&mut client, last).await;
    }
}

async fn client_kill_under_load_costs_no_5xx(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = counting_load(&app, 10, Duration::from_millis(10), &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        redis.run(&["CLIENT", "KILL", "TYPE", "normal"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let store = app.store.clone();
    let back = wait_until(Duration::from_secs(1), "connected again", || {
        let store = store.clone();
        async move { store.manager().health().is_healthy }
    })
    .await;
    println!("{framework:?}: connected again {back:?} after the last CLIENT KILL");
    tokio::time::sleep(Duration::from_millis(500)).await;
    end_load(&stop, tasks).await;
}

async fn debug_sleep_under_load_costs_no_5xx(framework: Framework) {
    let redis = RedisServer::builder()
        .arg("--enable-debug-command")
        .arg("local")
        .start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = counting_load(&app, 10, Duration::from_millis(10), &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Redis stops answering for two seconds (a slow command, a fork on a big dataset).
    let blocked = {
        let port = redis.port();
        tokio::task::spawn_blocking(move || {
            let client = test_redis::redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .expect("a client");
            let mut conn = client.get_connection().expect("a connection");
            let _: () = test_redis::redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(2)
                .query(&mut conn)
                .expect("DEBUG SLEEP");
        })
    };
    blocked.await.expect("slept");
    tokio::time::sleep(Duration::from_secs(1)).await;
    end_load(&stop, tasks).await;
}

async fn a_restart_from_the_aof_under_load_loses_nothing(framework: Framework) {
    let mut redis = RedisServer::builder().persistent().start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = counting_load(&app, 10, Duration::from_millis(10), &stop);
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    end_load(&stop, tasks).await;
}

async fn a_full_redis_takes_reads_while_writes_go_to_the_cookie(framework: Framework) {
    let redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let mut client = app.client();
    client.login("ada", "admin").await;
    count(&mut client, 1, 2).await;

    redis.run(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.run(&["CONFIG", "SET", "maxmemory", "1"]);
    let read = client.get("/counter").await;
    assert_eq!(read.json["counter"], 2);
    assert_eq!(read.json["source"], "redis", "reads still come from Redis");
    count(&mut client, 3, 4).await;
    assert!(
        app.store.stats().fallback_writes >= 1,
        "the writes went to the cookie"
    );
    let read = client.get("/counter").await;
    assert_eq!(read.json["counter"], 4, "and are read back");

    redis.run(&["CONFIG", "SET", "maxmemory", "0"]);
    served_from_redis_again(&mut client, 4).await;
    count(&mut client, 5, 5).await;
    let key = conformance::session_keys(&redis)
        .pop()
        .expect("the session");
    assert_eq!(
        redis.query::<String>(&["HGET", &key, "counter"]),
        "5",
        "nothing lost when memory frees"
    );
}
