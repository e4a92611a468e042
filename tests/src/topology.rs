//! The Redis deployments scenarios run against: one server, or a Redis Cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use resilient_session::RedisManagerBuilder;
use test_redis::redis::{FromRedisValue, Value};
use test_redis::{RedisCluster, RedisServer};

/// What a scenario needs of a Redis deployment, so that one scenario runs on a single
/// `redis-server` and on a 3-primary / 3-replica cluster.
pub trait TestRedis: Sized + Send + Sync + 'static {
    /// Starts a private deployment on loopback.
    fn start() -> Self;

    /// A manager builder for the deployment, with a short breaker back-off (100 ms to
    /// 500 ms), so tests see recovery quickly.
    fn manager(&self) -> RedisManagerBuilder;

    /// At least one node is up.
    fn is_running(&self) -> bool;

    /// Kills every node (`SIGKILL`).
    fn kill(&mut self);

    /// Runs `args` on the primary that holds its key (`args[1]`), and returns the reply.
    fn query<T: FromRedisValue>(&self, args: &[&str]) -> T;

    /// Runs `args` like [`query`](Self::query), ignoring the reply.
    fn run(&self, args: &[&str]) {
        let _: Value = self.query(args);
    }

    /// Every key matching `pattern`, over every primary (by `SCAN`), sorted.
    fn keys(&self, pattern: &str) -> Vec<String>;

    /// Resets the command statistics of every node.
    fn reset_stats(&self);

    /// Session commands since [`reset_stats`](Self::reset_stats), summed over the primaries:
    /// as [`RedisServer::commandstats`], without replication's acknowledgements (`replconf`)
    /// and the cluster client's own topology queries (`cluster|*`).
    fn commandstats(&self) -> BTreeMap<String, u64>;

    /// The sum of [`commandstats`](Self::commandstats).
    fn total_commands(&self) -> u64 {
        self.commandstats().values().sum()
    }
}

fn short_breaker(builder: RedisManagerBuilder) -> RedisManagerBuilder {
    builder
        .breaker_backoff(Duration::from_millis(100))
        .breaker_max_backoff(Duration::from_millis(500))
}

fn scan(node: &RedisServer, pattern: &str) -> Vec<String> {
    let (mut cursor, mut keys) = (String::from("0"), Vec::new());
    loop {
        let (next, batch): (String, Vec<String>) =
            node.query(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]);
        keys.extend(batch);
        if next == "0" {
            return keys;
        }
        cursor = next;
    }
}

impl TestRedis for RedisServer {
    fn start() -> Self {
        RedisServer::start()
    }

    fn manager(&self) -> RedisManagerBuilder {
        short_breaker(RedisManagerBuilder::new().url(self.url()))
    }

    fn is_running(&self) -> bool {
        RedisServer::is_running(self)
    }

    fn kill(&mut self) {
        RedisServer::kill(self);
    }

    fn query<T: FromRedisValue>(&self, args: &[&str]) -> T {
        RedisServer::query(self, args)
    }

    fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = scan(self, pattern);
        keys.sort();
        keys
    }

    fn reset_stats(&self) {
        RedisServer::reset_stats(self);
    }

    fn commandstats(&self) -> BTreeMap<String, u64> {
        RedisServer::commandstats(self)
    }
}

impl TestRedis for RedisCluster {
    fn start() -> Self {
        RedisCluster::start(3, 1)
    }

    fn manager(&self) -> RedisManagerBuilder {
        short_breaker(RedisManagerBuilder::new().cluster(self.urls()))
    }

    fn is_running(&self) -> bool {
        self.nodes().iter().any(RedisServer::is_running)
    }

    fn kill(&mut self) {
        for node in 0..self.nodes().len() {
            RedisCluster::kill(self, node);
        }
    }

    fn query<T: FromRedisValue>(&self, args: &[&str]) -> T {
        let node = match args.get(1) {
            Some(key) => self.primary_index_for_key(key),
            None => self.primary_indexes()[0],
        };
        self.nodes()[node].query(args)
    }

    fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .primaries()
            .into_iter()
            .flat_map(|node| scan(node, pattern))
            .collect();
        keys.sort();
        keys
    }

    fn reset_stats(&self) {
        for node in self.nodes().iter().filter(|n| n.is_running()) {
            node.reset_stats();
        }
    }

    fn commandstats(&self) -> BTreeMap<String, u64> {
        // Primaries only: a replica counts the commands it applies from its primary again.
        let mut total = BTreeMap::new();
        for node in self.primaries() {
            for (name, calls) in node.commandstats() {
                // Not the app's: replication acknowledgements, and the cluster client's topology
                // queries.
                if name != "replconf" && !name.starts_with("cluster") {
                    *total.entry(name).or_insert(0) += calls;
                }
            }
        }
        total
    }
}
