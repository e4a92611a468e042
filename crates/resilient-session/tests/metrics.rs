//! The metrics recorded while a real redis-server serves sessions, is killed, and comes back.
//!
//! The recorder is `metrics-util`'s `DebuggingRecorder`, installed for this thread only
//! (`metrics::with_local_recorder`); the sessions run on a current-thread runtime inside it, so
//! that the manager's background probe is recorded too.

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use resilient_session::adapter;
use resilient_session::metrics::{
    BREAKER_OPEN, BREAKER_TRANSITIONS, COOKIES_REFUSED, FALLBACK_READS, FALLBACK_WRITES,
    REDIS_COMMAND_DURATION, REDIS_COMMANDS, REDIS_FAILURES, TOUCHES,
};
use resilient_session::{RedisManager, SessionEngine, Source};
use test_redis::RedisServer;

mod common;
use common::{config, cookie_header, finish, open, stored_session, until_connected};

/// What was recorded since the last snapshot (the debugging recorder resets on each).
struct Recorded(BTreeMap<String, DebugValue>);

impl Recorded {
    fn take(snapshotter: &Snapshotter) -> Self {
        let mut values = BTreeMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            values.insert(format!("{}{{{}}}", key.name(), labels.join(",")), value);
        }
        Self(values)
    }

    fn get(&self, name: &str, labels: &[&str]) -> Option<&DebugValue> {
        let mut labels = labels.to_vec();
        labels.sort();
        self.0.get(&format!("{name}{{{}}}", labels.join(",")))
    }

    fn counter(&self, name: &str, labels: &[&str]) -> u64 {
        match self.get(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        match self.get(name, &[]) {
            Some(DebugValue::Gauge(value)) => Some(value.into_inner()),
            _ => None,
        }
    }

    fn samples(&self, name: &str, labels: &[&str]) -> usize {
        match self.get(name, labels) {
            Some(DebugValue::Histogram(samples)) => samples.len(),
            _ => 0,
        }
    }
}

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, format!("{v:?}"))))
            .finish()
    }
}

/// Loads the session behind `cookie` the way a request that reads it would, and returns where
/// it came from and its counter.
async fn read(store: &SessionEngine, cookie: &str) -> (Source, Option<u64>) {
    let session = open(store, Some(cookie));
    let counter = session.get("counter").await.expect("a number");
    let source = session.source().await;
    adapter::finish(store, &session).await;
    (source, counter)
}

#[test]
fn metrics_follow_an_outage_and_the_recovery() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(outage(&snapshotter));
    });
}

async fn outage(snapshotter: &Snapshotter) {
    let mut server = RedisServer::start();
    let manager = RedisManager::builder()
        .url(server.url())
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(300))
        .retry_budget(Duration::from_millis(500))
        .failure_threshold(2)
        .breaker_backoff(Duration::from_millis(200))
        .breaker_max_backoff(Duration::from_millis(400))
        .build()
        .expect("manager");
    until_connected(&manager).await;
    // Every load is a touch, and the counter rides in the cookie for the outage.
    let config = config()
        .mirrored_keys(["counter"])
        .touch_interval(Duration::ZERO);
    let store = SessionEngine::new(manager.clone(), config).expect("store");

    // Healthy: commands succeed, and are timed.
    let cookie = stored_session(&store).await;
    for _ in 0..3 {
        assert_eq!(read(&store, &cookie).await, (Source::Redis, Some(1)));
    }
    let healthy = Recorded::take(snapshotter);
    let load_ok = ["operation=session load", "outcome=ok"];
    assert!(
        healthy.counter(REDIS_COMMANDS, &load_ok) >= 3,
        "{healthy:?}"
    );
    assert!(
        healthy.counter(REDIS_COMMANDS, &["operation=session save", "outcome=ok"]) >= 1,
        "{healthy:?}"
    );
    assert!(healthy.samples(REDIS_COMMAND_DURATION, &["operation=session load"]) >= 3);
    assert_eq!(healthy.counter(TOUCHES, &[]), 3, "{healthy:?}");
    assert_eq!(healthy.counter(FALLBACK_READS, &[]), 0);
    // The only failure: the first save finds its script not cached yet, and sends it again.
    assert!(
        healthy
            .0
            .keys()
            .filter(|k| k.starts_with(REDIS_FAILURES))
            .all(|k| k.as_str() == format!("{REDIS_FAILURES}{{kind=noscript}}")),
        "{healthy:?}"
    );
    assert_eq!(healthy.gauge(BREAKER_OPEN), Some(0.0), "{healthy:?}");

    // Cookies that are not ours are refused, and say why.
    let (name, value) = cookie.split_once('=').expect("name=value");
    let middle = value.len() / 2;
    let flipped = if &value[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!(
        "{name}={}{flipped}{}",
        &value[..middle],
        &value[middle + 1..]
    );
    assert_eq!(read(&store, &tampered).await, (Source::New, None));
    let too_long = format!("{name}={}", "a".repeat(5000));
    assert_eq!(read(&store, &too_long).await, (Source::New, None));
    let refused = Recorded::take(snapshotter);
    assert_eq!(refused.counter(COOKIES_REFUSED, &["reason=invalid"]), 1);
    assert_eq!(refused.counter(COOKIES_REFUSED, &["reason=oversized"]), 1);
    assert_eq!(store.stats().cookies_rejected, 2);

    // Redis killed: the sessions come from their cookies, the failures are counted by kind and
    // the breaker opens, then fails fast.
    server.kill();
    const OUTAGE_READS: u64 = 6;
    for _ in 0..OUTAGE_READS {
        assert_eq!(read(&store, &cookie).await, (Source::Cookie, Some(1)));
    }
    let session = open(&store, Some(&cookie));
    session.insert("counter", 2).await.expect("insert");
    let cookie = cookie_header(
        &finish(&store, &session)
            .await
            .expect("the cookie carries it"),
    );
    let outage = Recorded::take(snapshotter);
    assert_eq!(
        outage.counter(FALLBACK_READS, &[]),
        OUTAGE_READS + 1,
        "{outage:?}"
    );
    assert_eq!(outage.counter(FALLBACK_WRITES, &[]), 1, "{outage:?}");
    assert!(
        outage.counter(
            REDIS_COMMANDS,
            &["operation=session load", "outcome=unavailable"]
        ) >= OUTAGE_READS,
        "{outage:?}"
    );
    assert!(
        outage.counter(REDIS_FAILURES, &["kind=connection"]) >= 1,
        "{outage:?}"
    );
    assert!(
        outage.counter(REDIS_FAILURES, &["kind=circuit_open"]) >= 1,
        "{outage:?}"
    );
    assert!(
        outage.counter(BREAKER_TRANSITIONS, &["to=open"]) >= 1,
        "{outage:?}"
    );
    assert_eq!(outage.counter(BREAKER_TRANSITIONS, &["to=closed"]), 0);
    assert_eq!(outage.counter(REDIS_COMMANDS, &load_ok), 0);
    assert_eq!(outage.gauge(BREAKER_OPEN), Some(1.0), "{outage:?}");
    assert_eq!(outage.counter(TOUCHES, &[]), 0, "no touch reaches Redis");

    // Redis back: the background probe closes the breaker, and sessions come from Redis again.
    server.restart();
    until_connected(&manager).await;
    assert_eq!(read(&store, &cookie).await, (Source::Redis, Some(2)));
    let recovered = Recorded::take(snapshotter);
    let half_open = ["to=half_open"];
    assert!(
        outage.counter(BREAKER_TRANSITIONS, &half_open)
            + recovered.counter(BREAKER_TRANSITIONS, &half_open)
            >= 1,
        "a probe was let through: {recovered:?}"
    );
    assert_eq!(
        recovered.counter(BREAKER_TRANSITIONS, &["to=closed"]),
        1,
        "{recovered:?}"
    );
    assert!(
        recovered.counter(REDIS_COMMANDS, &["operation=ping", "outcome=ok"]) >= 1,
        "{recovered:?}"
    );
    assert!(
        recovered.counter(REDIS_COMMANDS, &load_ok) >= 1,
        "{recovered:?}"
    );
    assert_eq!(recovered.counter(FALLBACK_READS, &[]), 0, "{recovered:?}");
}
