//! `RedisManager` on a Redis Cluster (3 primaries, 3 replicas) that the tests fail over and kill.

use std::time::Duration;

use resilient_session::{Error, RedisManager, RedisService};
use test_redis::RedisCluster;

mod common;
use common::until_connected;

/// A manager on `cluster`, connected.
async fn connected(cluster: &RedisCluster) -> RedisManager {
    let manager = RedisManager::builder()
        .cluster(cluster.urls())
        .build()
        .expect("builds");
    until_connected(&manager).await;
    manager
}

async fn set_get(manager: &RedisManager, key: &str) -> Result<Option<String>, Error> {
    let service = RedisService::new(manager.clone());
    service.set(key, "v", None).await?;
    service.get(key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_every_primary_and_a_dead_cluster_is_unavailable() {
    let mut cluster = RedisCluster::start(3, 1);
    let manager = connected(&cluster).await;
    for i in 0..30 {
        let key = format!("k{i}");
        assert_eq!(
            set_get(&manager, &key).await.expect("set and get"),
            Some("v".into())
        );
    }
    let spread = cluster.keys_per_primary("k*");
    assert!(
        spread.iter().all(|(_, n)| *n > 0),
        "keys on every primary: {spread:?}"
    );

    for node in 0..cluster.nodes().len() {
        cluster.kill(node);
    }
    let err = manager.ping().await.expect_err("no node is up");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(!manager.check().await.is_healthy);
}

/// Retries `set_get` on `key` until it succeeds; how many attempts failed meanwhile.
async fn until_served(manager: &RedisManager, key: &str) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut failures = 0;
    loop {
        match set_get(manager, key).await {
            Ok(value) => {
                assert_eq!(value, Some("v".into()));
                return failures;
            }
            Err(err) => {
                assert!(
                    err.is_unavailable(),
                    "a failover is an outage, not a bug: {err:?}"
                );
                assert!(
                    std::time::Instant::now() < deadline,
                    "not served again: {err}"
                );
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_followed_and_changes_the_epoch_of_that_shard_only() {
    let mut cluster = RedisCluster::start(3, 1);
    let manager = connected(&cluster).await;
    let primary = cluster.primary_indexes()[0];
    // A key on that primary, and one elsewhere.
    let keys: Vec<String> = (0..100).map(|i| format!("{{t{i}}}")).collect();
    let here = keys
        .iter()
        .find(|k| cluster.primary_index_for_key(k) == primary)
        .expect("a key on the first primary")
        .clone();
    let there = keys
        .iter()
        .find(|k| cluster.primary_index_for_key(k) != primary)
        .expect("a key elsewhere")
        .clone();
    // Epoch keys in the slots of those keys (same hash tag).
    let (here_epoch, there_epoch) = (format!("epoch:{here}"), format!("epoch:{there}"));
    let epoch_here = manager.data_epoch(&here_epoch, true).await.expect("epoch");
    let epoch_there = manager.data_epoch(&there_epoch, true).await.expect("epoch");
    set_get(&manager, &here).await.expect("served");

    // A controlled failover: MOVED is followed, at most a few commands fall back meanwhile.
    let replica = cluster.replica_index_of(primary);
    cluster.failover(replica);
    until_served(&manager, &here).await;
    let after_failover = manager.data_epoch(&here_epoch, true).await.expect("epoch");
    assert_ne!(
        after_failover, epoch_here,
        "a promoted replica is a new epoch"
    );
    let unchanged = manager.data_epoch(&there_epoch, true).await.expect("epoch");
    assert_eq!(unchanged, epoch_there, "other shards keep theirs");

    // The new primary dies: its replica takes over once the cluster notices.
    cluster.kill(replica);
    until_served(&manager, &here).await;
    cluster.wait_until_ok();
    let after_kill = manager.data_epoch(&here_epoch, true).await.expect("epoch");
    assert_ne!(after_kill, after_failover);
    let unchanged = manager.data_epoch(&there_epoch, true).await.expect("epoch");
    assert_eq!(unchanged, epoch_there);
    assert!(manager.health().is_healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_service_spreads_keys_over_the_slots() {
    let cluster = RedisCluster::start(3, 1);
    let manager = connected(&cluster).await;
    let svc = resilient_session::RedisService::new(manager).namespace("m");
    let entries: Vec<(String, u32)> = (0..20).map(|i| (format!("k{i}"), i)).collect();
    for ttl in [None, Some(Duration::from_secs(60))] {
        svc.mset(&entries, ttl).await.expect("mset over many slots");
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let found: Vec<Option<u32>> = svc.mget(&keys).await.expect("mget over many slots");
        assert_eq!(found, (0..20).map(Some).collect::<Vec<_>>());
    }
    let spread = cluster.keys_per_primary("m:*");
    assert!(spread.iter().all(|(_, n)| *n > 0), "{spread:?}");
}
