//! `RedisManager` against a redis-server that the tests kill, pause, slow down and restart.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilient_session::{
    BreakerState, ConnectionState, Error, RedisManager, RedisManagerBuilder, RedisService,
};
use test_redis::RedisServer;

mod common;
use common::until_connected;

const COMMAND_TIMEOUT: Duration = Duration::from_millis(200);
const RETRY_BUDGET: Duration = Duration::from_millis(500);
/// Room for a loaded CI machine on top of a time limit; what is checked is "bounded", not "fast".
const SLACK: Duration = Duration::from_millis(700);

fn builder(server: &RedisServer) -> RedisManagerBuilder {
    RedisManager::builder()
        .url(server.url())
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(Duration::from_millis(300))
        .retry_budget(RETRY_BUDGET)
}

async fn get(manager: &RedisManager) -> Result<Option<String>, Error> {
    RedisService::new(manager.clone()).get("k").await
}

#[tokio::test]
async fn killed_redis_opens_the_breaker_then_recovers_by_itself() {
    let mut server = RedisServer::start();
    let manager = builder(&server)
        .failure_threshold(3)
        .breaker_backoff(Duration::from_secs(2))
        .breaker_max_backoff(Duration::from_secs(4))
        .build()
        .expect("builds");
    until_connected(&manager).await;
    get(&manager).await.expect("redis is up");
    let first_connected_at = manager.health().connected_at.expect("connected");
    assert!(manager.health().pool.connections_created >= 1);

    server.kill();
    let mut failures = 0;
    loop {
        let err = get(&manager).await.expect_err("redis is down");
        assert!(err.is_unavailable(), "{err}");
        if matches!(err, Error::CircuitOpen) {
            break;
        }
        failures += 1;
        assert!(failures <= 3, "the breaker opens after 3 failed operations");
    }
    let health = manager.health();
    assert_eq!(health.state, ConnectionState::CircuitOpen);
    assert_eq!(health.breaker, BreakerState::Open);
    assert!(!health.is_healthy);
    assert!(health.error_count >= 3);
    assert!(health.last_error.is_some());

    // Redis is back, but the breaker's back-off (1-2 s) has not elapsed: operations fail fast
    // and nothing reaches the network.
    server.restart();
    server.reset_stats();
    for _ in 0..50 {
        assert!(matches!(get(&manager).await, Err(Error::CircuitOpen)));
    }
    assert_eq!(
        server.total_commands(),
        0,
        "no traffic while the breaker is open"
    );

    // Without any traffic from the test, the background probe closes the breaker.
    until_connected(&manager).await;
    let health = manager.health();
    assert_eq!(health.breaker, BreakerState::Closed);
    assert_eq!(health.state, ConnectionState::Connected);
    assert!(health.connected_at.expect("reconnected") > first_connected_at);
    assert_eq!(health.error_count, 0);
    get(&manager).await.expect("served by Redis again");
}

#[tokio::test]
async fn starts_while_redis_is_down_and_connects_when_it_appears() {
    let mut server = RedisServer::start();
    server.kill();
    let manager = builder(&server)
        .breaker_backoff(Duration::from_millis(100))
        .breaker_max_backoff(Duration::from_millis(400))
        .build()
        .expect("builds without Redis");
    let err = get(&manager).await.expect_err("nothing listens");
    assert!(err.is_unavailable(), "{err}");
    let health = manager.health();
    assert!(!health.is_healthy);
    assert_eq!(health.connected_at, None);
    assert_ne!(health.state, ConnectionState::Connected);

    server.restart();
    until_connected(&manager).await;
    assert!(manager.health().connected_at.is_some());
    get(&manager).await.expect("connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_fails_within_the_budget_and_nothing_hangs() {
    let server = RedisServer::start();
    let manager = builder(&server)
        .failure_threshold(100)
        .build()
        .expect("builds");
    until_connected(&manager).await;

    server.pause();
    let started = Instant::now();
    let results = futures_join_all((0..8).map(|_| {
        let manager = manager.clone();
        tokio::spawn(async move { get(&manager).await })
    }))
    .await;
    let elapsed = started.elapsed();
    for result in results {
        let err = result
            .expect("task")
            .expect_err("a paused Redis answers nothing");
        assert!(err.is_timeout(), "{err}");
        assert!(err.is_unavailable());
    }
    assert!(
        elapsed < RETRY_BUDGET + SLACK,
        "took {elapsed:?}, budget {RETRY_BUDGET:?}"
    );

    server.resume();
    // The timed-out connections were dropped; fresh ones work.
    get(&manager).await.expect("works after resume");
    assert!(manager.health().pool.connections_closed_broken >= 1);
}

#[tokio::test]
async fn slow_redis_times_out_within_the_budget() {
    let server = RedisServer::builder()
        .arg("--enable-debug-command")
        .arg("yes")
        .start();
    let manager = builder(&server)
        .failure_threshold(100)
        .build()
        .expect("builds");
    until_connected(&manager).await;

    let mut blocker = server.connection();
    let sleeper = std::thread::spawn(move || {
        bb8_redis::redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1.5")
            .query::<()>(&mut blocker)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let err = get(&manager).await.expect_err("Redis is busy sleeping");
    let elapsed = started.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert!(elapsed < RETRY_BUDGET + SLACK, "took {elapsed:?}");

    sleeper.join().expect("thread").expect("DEBUG SLEEP");
    get(&manager).await.expect("works once Redis is awake");
}

#[tokio::test]
async fn wrong_password_is_not_retried_and_never_shown() {
    const PASSWORD: &str = "wrong-password-7f3a9c";
    let logs = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = RedisServer::builder().password("the-right-one").start();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port());
    let manager = RedisManager::builder()
        .url(url)
        .failure_threshold(1)
        // Long enough that the background task does not probe again during the test.
        .breaker_backoff(Duration::from_secs(60))
        .breaker_max_backoff(Duration::from_secs(60))
        .build()
        .expect("builds");
    // The background task's first connection attempt fails and opens the breaker.
    let deadline = Instant::now() + Duration::from_secs(10);
    while manager.health().breaker != BreakerState::Open {
        assert!(Instant::now() < deadline, "{:?}", manager.health());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let start_error = manager
        .health()
        .last_error
        .expect("the failure is recorded");
    assert!(
        start_error.contains("WRONGPASS") || start_error.contains("uthentication"),
        "a clear error: {start_error}"
    );

    // One more operation on a fresh manager: exactly one AUTH reaches Redis (no retry).
    let fresh = RedisManager::builder()
        .url(format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port()))
        .breaker_backoff(Duration::from_secs(60))
        .breaker_max_backoff(Duration::from_secs(60))
        .build()
        .expect("builds");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fresh.health().error_count == 0 {
        assert!(Instant::now() < deadline, "{:?}", fresh.health());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.reset_stats();
    let err = get(&fresh).await.expect_err("wrong password");
    assert!(err.is_unavailable(), "{err}");
    assert!(!err.is_timeout());
    let failed = server.failed_calls();
    assert_eq!(
        failed.get("auth"),
        Some(&1),
        "one attempt, no retries: {failed:?}"
    );

    let mut texts = vec![format!("{err}"), format!("{err:?}"), logs.text()];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        texts.push(cause.to_string());
        source = cause.source();
    }
    texts.push(format!("{:?}", manager.health()));
    texts.push(format!("{manager:?}"));
    assert!(logs.text().contains("Redis"), "something was logged");
    for text in texts {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
    }
}

async fn futures_join_all<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut results = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        results.push(handle.await);
    }
    results
}

/// A `tracing` writer that keeps everything written to it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_data_epoch_falls_back_to_its_key_when_info_is_not_allowed() {
    // A Redis user from before `INFO` was needed.
    let mut server = RedisServer::builder()
        .persistent()
        .arg("--user")
        .arg("old")
        .arg("on")
        .arg(">old-password")
        .arg("~epoch*")
        .arg("-@all")
        .arg("+get")
        .arg("+set")
        .arg("+ping")
        .start();
    let url = format!("redis://old:old-password@127.0.0.1:{}/", server.port());
    let manager = RedisManager::builder().url(url).build().expect("builds");
    until_connected(&manager).await;
    let first = manager
        .data_epoch("epoch", true)
        .await
        .expect("key-only epoch");
    assert!(!first.contains('.'), "no replication id: {first}");
    assert_eq!(
        manager.data_epoch("epoch", true).await.expect("epoch"),
        first
    );
    server.restart_empty();
    until_connected(&manager).await;
    let after = manager.data_epoch("epoch", true).await.expect("epoch");
    assert_ne!(
        after, first,
        "a Redis that lost its data is still a new epoch"
    );
}

#[tokio::test]
async fn the_data_epoch_changes_on_a_restart_even_with_the_data_kept() {
    let mut server = RedisServer::builder().persistent().start();
    let manager = builder(&server).build().expect("builds");
    until_connected(&manager).await;
    let first = manager.data_epoch("epoch", true).await.expect("epoch");
    assert_eq!(
        manager.data_epoch("epoch", false).await.expect("cached"),
        first
    );
    server.restart();
    let stored: String = server.query(&["GET", "epoch"]);
    assert!(
        first.starts_with(&format!("{stored}.")),
        "the key survived: {stored}"
    );
    until_connected(&manager).await;
    let after = manager.data_epoch("epoch", true).await.expect("epoch");
    assert_ne!(after, first, "a new replication id after a restart");
}
