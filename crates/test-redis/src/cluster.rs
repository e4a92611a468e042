//! A real Redis Cluster on loopback, made of [`RedisServer`]s joined with
//! `redis-cli --cluster create`.
//!
//! ```no_run
//! use test_redis::RedisCluster;
//!
//! let mut cluster = RedisCluster::start(3, 1); // 3 primaries, 1 replica each
//! let seeds = cluster.urls();
//! let primary = cluster.primary_index_for_key("session:abc");
//! let replica = cluster.replica_index_of(primary);
//! cluster.failover(replica); // the replica is now the primary of that slot
//! cluster.kill(replica); // and now its replica takes over again...
//! cluster.wait_until_ok(); // ...once the cluster has noticed
//! ```
//!
//! Roles change (failover, killed primaries), so every question about them is asked of the
//! nodes themselves. Nodes that were killed, or do not answer (paused), count as down.

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use bb8_redis::redis;

use crate::{Builder, RedisServer, TestCertificates};

/// How long [`RedisCluster::wait_until_ok`] and [`RedisCluster::failover`] wait.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// When [`RedisCluster::failover`] asks again: Redis abandons a manual failover after 5 s.
const MANUAL_FAILOVER_RETRY: Duration = Duration::from_secs(6);

/// Number of hash slots in a Redis Cluster.
const SLOTS: usize = 16384;

/// Options for a [`RedisCluster`]; see [`RedisCluster::builder`].
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct ClusterBuilder {
    node: Builder,
}

impl ClusterBuilder {
    /// Every node requires this password (`requirepass`, and `masterauth` for replication).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.node = self.node.password(password);
        self
    }

    /// Every node speaks TLS, with the server certificate of `certificates`, to clients, on
    /// the cluster bus and for replication (`tls-cluster`, `tls-replication`); with
    /// `require_client_certificate`, clients must present one signed by its CA. The cluster is
    /// created over TLS, and TLS clients are told the TLS ports (`CLUSTER SLOTS`, `MOVED`):
    /// seed a cluster client with [`RedisCluster::tls_urls`].
    ///
    /// Each node also keeps a plain port on 127.0.0.1, which only the test's own commands use
    /// ([`RedisCluster::urls`], [`RedisServer::query`], the role and health checks here); plain
    /// clients are told the plain ports.
    pub fn tls(
        mut self,
        certificates: &TestCertificates,
        require_client_certificate: bool,
    ) -> Self {
        self.node = self.node.tls(certificates, require_client_certificate);
        self
    }

    /// Pass one more `--name value` style argument to every `redis-server`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.node = self.node.arg(arg);
        self
    }

    /// Start `primaries` primaries with `replicas_per_primary` replicas each, join them into a
    /// cluster and wait until it is [ok](RedisCluster::wait_until_ok) with every replica in
    /// sync. Panics with a message if it cannot.
    pub fn start(self, primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        assert!(primaries >= 3, "Redis Cluster needs at least 3 primaries");
        let count = primaries * (1 + replicas_per_primary);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| self.node.clone().cluster().start())
            .collect();
        let mut command = Command::new("redis-cli");
        if let Some(password) = &self.node.password {
            command.args(["-a", password, "--no-auth-warning"]);
        }
        if let Some(tls) = &self.node.tls {
            command.args(tls.redis_cli_args());
        }
        let output = command
            .args(["--cluster", "create"])
            .args(
                nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.tls_port().unwrap_or_else(|| n.port()))),
            )
            .args(["--cluster-replicas", &replicas_per_primary.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }
}

/// A Redis Cluster of private `redis-server`s on loopback, all stopped when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Start `primaries` primaries with `replicas_per_primary` replicas each; see
    /// [`ClusterBuilder::start`].
    pub fn start(primaries: usize, replicas_per_primary: usize) -> Self {
        Self::builder().start(primaries, replicas_per_primary)
    }

    /// Options for a cluster: password, TLS, extra `redis-server` arguments.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// One seed URL per node (`redis://127.0.0.1:<port>/`, with the password if there is one).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// One TLS seed URL per node (`rediss://127.0.0.1:<TLS port>/`, with the password if there
    /// is one), for a cluster started with [`ClusterBuilder::tls`].
    pub fn tls_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::tls_url).collect()
    }

    /// Every node, in the order they were started; indexes here are the `usize`s of the other
    /// methods.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i`, to pause, resume or restart it (a restarted node rejoins the cluster).
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// The live nodes that are primaries now.
    pub fn primaries(&self) -> Vec<&RedisServer> {
        self.primary_indexes()
            .into_iter()
            .map(|i| &self.nodes[i])
            .collect()
    }

    /// The live nodes that are replicas now.
    pub fn replicas(&self) -> Vec<&RedisServer> {
        self.replica_indexes()
            .into_iter()
            .map(|i| &self.nodes[i])
            .collect()
    }

    /// Indexes of the live nodes that are primaries now.
    pub fn primary_indexes(&self) -> Vec<usize> {
        self.indexes_with_role("master")
    }

    /// Indexes of the live nodes that are replicas now.
    pub fn replica_indexes(&self) -> Vec<usize> {
        self.indexes_with_role("slave")
    }

    /// Index of the live primary that serves `key`'s hash slot now (as that primary itself
    /// says). Panics if none does, e.g. during a failover: call
    /// [`wait_until_ok`](Self::wait_until_ok) first.
    pub fn primary_index_for_key(&self, key: &str) -> usize {
        let slot: u16 = self
            .live_indexes()
            .into_iter()
            .find_map(|i| ask(&self.nodes[i], &["CLUSTER", "KEYSLOT", key]))
            .expect("no live cluster node answers CLUSTER KEYSLOT");
        self.primary_indexes()
            .into_iter()
            .find(|&i| {
                ask::<String>(&self.nodes[i], &["CLUSTER", "NODES"]).is_some_and(|nodes| {
                    parse_cluster_nodes(&nodes)
                        .iter()
                        .any(|n| n.myself && n.serves(slot))
                })
            })
            .unwrap_or_else(|| panic!("no live primary serves slot {slot} of key {key:?}"))
    }

    /// Index of a live replica of the primary at index `primary`; panics if it has none.
    pub fn replica_index_of(&self, primary: usize) -> usize {
        let port = self.nodes[primary].port();
        self.replica_indexes()
            .into_iter()
            .find(|&i| {
                self.replication(i)
                    .primary_port
                    .is_some_and(|p| ports(&self.nodes[primary]).contains(&p))
            })
            .unwrap_or_else(|| panic!("the node on port {port} has no live replica"))
    }

    /// `CLUSTER FAILOVER` on the replica at index `replica`: it becomes the primary and its
    /// primary its replica. Waits until it says so and the cluster is
    /// [ok](Self::wait_until_ok) again. A manual failover that Redis gives up on (after 5 s)
    /// is asked for again.
    pub fn failover(&self, replica: usize) {
        let node = &self.nodes[replica];
        node.run(&["CLUSTER", "FAILOVER"]);
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let mut asked = Instant::now();
        while self.replication(replica).role.as_deref() != Some("master") {
            assert!(
                Instant::now() < deadline,
                "the replica on port {} did not become a primary within {CLUSTER_TIMEOUT:?}; \
                 its log:\n{}",
                node.port(),
                crate::tail(&node.dir.join("redis.log")),
            );
            if asked.elapsed() > MANUAL_FAILOVER_RETRY {
                eprintln!(
                    "test-redis: no failover of the replica on port {} yet, asking again; its \
                     log:\n{}",
                    node.port(),
                    crate::tail(&node.dir.join("redis.log")),
                );
                // It may have become the primary meanwhile: then this is refused, harmlessly.
                let _: Option<redis::Value> = ask(node, &["CLUSTER", "FAILOVER"]);
                asked = Instant::now();
            }
            sleep(Duration::from_millis(50));
        }
        self.wait_until_ok();
    }

    /// Kill node `node` with `SIGKILL`, without waiting for the cluster to notice: see
    /// [`wait_until_ok`](Self::wait_until_ok).
    pub fn kill(&mut self, node: usize) {
        self.nodes[node].kill();
    }

    /// Wait until every live node says `cluster_state:ok` and maps every slot to a live
    /// primary, and every live replica is in sync with a live primary. Skips nodes that are
    /// down; panics, saying what is still wrong, after 30 s.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        while let Some(problem) = self.problem() {
            assert!(
                Instant::now() < deadline,
                "the cluster is not ok after {CLUSTER_TIMEOUT:?}: {problem}"
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// How many keys match `pattern` on each live primary (by `SCAN`, never `KEYS`), as
    /// `(port, count)`, to check how keys spread over the cluster.
    pub fn keys_per_primary(&self, pattern: &str) -> Vec<(u16, usize)> {
        self.primaries()
            .into_iter()
            .map(|node| {
                let (mut cursor, mut count) = (String::from("0"), 0);
                loop {
                    let (next, keys): (String, Vec<String>) =
                        node.query(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]);
                    count += keys.len();
                    if next == "0" {
                        return (node.port(), count);
                    }
                    cursor = next;
                }
            })
            .collect()
    }

    /// What keeps the cluster from being ok now, if anything.
    fn problem(&self) -> Option<String> {
        let live = self.live_indexes();
        // Plain and TLS ports: the test's plain connections see plain ports in CLUSTER NODES,
        // replicas name the port they replicate from, the TLS one with `tls-replication`.
        let primary_ports: Vec<u16> = self
            .primary_indexes()
            .into_iter()
            .flat_map(|i| ports(&self.nodes[i]))
            .collect();
        if live.is_empty() {
            return Some("no node is running".into());
        }
        // Which node says it serves each slot itself: a primary that has just been replaced
        // (failover) still does until it hears of its successor.
        let mut claimed_by: Vec<Option<u16>> = vec![None; SLOTS];
        for i in live {
            let port = self.nodes[i].port();
            let Some(info) = ask::<String>(&self.nodes[i], &["CLUSTER", "INFO"]) else {
                return Some(format!("node {port} does not answer CLUSTER INFO"));
            };
            if !info.lines().any(|line| line.trim() == "cluster_state:ok") {
                return Some(format!("node {port} says cluster_state is not ok"));
            }
            let Some(nodes) = ask::<String>(&self.nodes[i], &["CLUSTER", "NODES"]) else {
                return Some(format!("node {port} does not answer CLUSTER NODES"));
            };
            let mut served = vec![false; SLOTS];
            for owner in parse_cluster_nodes(&nodes) {
                for &(first, last) in &owner.slots {
                    if owner.myself {
                        let range = usize::from(first)..=usize::from(last);
                        let claims = claimed_by[range].iter_mut().zip(first..=last);
                        for (claim, slot) in claims {
                            if let Some(other) = claim.replace(port) {
                                return Some(format!(
                                    "nodes {other} and {port} both say they serve slot {slot}"
                                ));
                            }
                        }
                    }
                    if !primary_ports.contains(&owner.port) {
                        return Some(format!(
                            "node {port} maps slots {first}-{last} to node {}, not a live primary",
                            owner.port
                        ));
                    }
                    served[usize::from(first)..=usize::from(last)].fill(true);
                }
            }
            let unserved = served.iter().filter(|s| !**s).count();
            if unserved > 0 {
                return Some(format!("node {port} maps {unserved} slots to no node"));
            }
            let replication = self.replication(i);
            if replication.role.as_deref() == Some("slave")
                && !(replication.link_up
                    && replication
                        .primary_port
                        .is_some_and(|p| primary_ports.contains(&p)))
            {
                return Some(format!(
                    "replica {port} is not in sync with a live primary ({replication:?})"
                ));
            }
        }
        None
    }

    /// Indexes of the nodes that run and answer.
    fn live_indexes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| ask::<String>(&self.nodes[i], &["PING"]).is_some())
            .collect()
    }

    fn indexes_with_role(&self, role: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.replication(i).role.as_deref() == Some(role))
            .collect()
    }

    /// `INFO replication` of node `i`; all `None` when it is down.
    fn replication(&self, i: usize) -> Replication {
        let info: String = ask(&self.nodes[i], &["INFO", "replication"]).unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
        };
        Replication {
            role: field("role").map(str::to_owned),
            primary_port: field("master_port").and_then(|p| p.parse().ok()),
            link_up: field("master_link_status") == Some("up"),
        }
    }
}

/// What a node says in `INFO replication`.
#[derive(Debug)]
struct Replication {
    /// `master` or `slave`.
    role: Option<String>,
    primary_port: Option<u16>,
    link_up: bool,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, PartialEq, Eq)]
struct NodeLine {
    port: u16,
    myself: bool,
    /// Slot ranges it serves, inclusive (none for a replica).
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|&(first, last)| (first..=last).contains(&slot))
    }
}

/// Parses `CLUSTER NODES`: `<id> <ip:port@bus-port[,hostname]> <flags> <primary> <ping-sent>
/// <pong-received> <epoch> <link-state> <slot-or-range>...`, skipping slots being migrated
/// (`[...]`) and nodes with no address yet.
fn parse_cluster_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let address = fields.get(1)?.split('@').next()?;
            let port = address.rsplit(':').next()?.parse().ok()?;
            let slots = fields
                .get(8..)
                .unwrap_or_default()
                .iter()
                .filter(|slot| !slot.starts_with('['))
                .filter_map(|slot| match slot.split_once('-') {
                    Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
                    None => slot.parse().ok().map(|s| (s, s)),
                })
                .collect();
            Some(NodeLine {
                port,
                myself: fields.get(2)?.split(',').any(|flag| flag == "myself"),
                slots,
            })
        })
        .filter(|node| node.port != 0)
        .collect()
}

/// The ports `node` listens on: plain, and TLS if it has one.
fn ports(node: &RedisServer) -> Vec<u16> {
    std::iter::once(node.port())
        .chain(node.tls_port())
        .collect()
}

/// Runs one command on `node` with short timeouts; `None` if it is down, does not answer in
/// time (paused) or answers with an error.
fn ask<T: redis::FromRedisValue>(node: &RedisServer, args: &[&str]) -> Option<T> {
    if !node.is_running() {
        return None;
    }
    let mut connection = redis::Client::open(node.url())
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    connection
        .set_read_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut connection).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn parses_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,host-2 master - 0 1426238316232 2 connected 5461-10922 [5461->-e7d1]
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 16383
6ec2 :0@0 handshake,noaddr - 0 0 0 disconnected
";
        assert_eq!(
            parse_cluster_nodes(text),
            vec![
                NodeLine {
                    port: 30004,
                    myself: false,
                    slots: vec![],
                },
                NodeLine {
                    port: 30002,
                    myself: false,
                    slots: vec![(5461, 10922)],
                },
                NodeLine {
                    port: 30001,
                    myself: true,
                    slots: vec![(0, 5460), (16383, 16383)],
                },
            ]
        );
    }

    #[test]
    fn cluster_routing_failover_and_kill() {
        let started = Instant::now();
        let mut cluster = RedisCluster::start(3, 1);
        eprintln!("3×1 cluster up in {:?}", started.elapsed());
        assert_eq!(cluster.nodes().len(), 6);
        assert_eq!(cluster.urls().len(), 6);
        assert_eq!(cluster.primaries().len(), 3);
        assert_eq!(cluster.replicas().len(), 3);

        // Write each key on the primary of its slot; every other primary redirects it.
        for i in 0..100 {
            let key = format!("spread:{i}");
            let owner = cluster.primary_index_for_key(&key);
            cluster.nodes()[owner].run(&["SET", &key, "v"]);
            for other in cluster.primary_indexes() {
                if other != owner {
                    let refused = redis::cmd("SET")
                        .arg(&key)
                        .arg("v")
                        .query::<()>(&mut cluster.nodes()[other].connection())
                        .expect_err("a primary must not take a key of another's slot");
                    assert!(
                        refused.to_string().to_ascii_uppercase().contains("MOVED"),
                        "{refused}"
                    );
                }
            }
        }
        let spread = cluster.keys_per_primary("spread:*");
        assert_eq!(
            spread.iter().map(|(_, n)| n).sum::<usize>(),
            100,
            "{spread:?}"
        );
        assert!(spread.iter().all(|(_, n)| *n > 0), "{spread:?}");

        // redis-cli -c follows the redirection from any node, replicas included.
        let replica_port = cluster.replicas()[0].port().to_string();
        let output = Command::new("redis-cli")
            .args(["-c", "-p", &replica_port, "SET", "{user1}:a", "via-cli"])
            .output()
            .expect("run redis-cli -c");
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "OK");
        let primary = cluster.primary_index_for_key("{user1}:a");
        assert_eq!(
            cluster.nodes()[primary].query::<String>(&["GET", "{user1}:a"]),
            "via-cli"
        );

        // A manual failover swaps the roles; the data is there on the new primary.
        let replica = cluster.replica_index_of(primary);
        let failover = Instant::now();
        cluster.failover(replica);
        eprintln!("manual failover in {:?}", failover.elapsed());
        assert!(cluster.primary_indexes().contains(&replica));
        assert!(cluster.replica_indexes().contains(&primary));
        assert_eq!(cluster.primary_index_for_key("{user1}:a"), replica);
        assert_eq!(cluster.replica_index_of(replica), primary);
        assert_eq!(
            cluster.nodes()[replica].query::<String>(&["GET", "{user1}:a"]),
            "via-cli"
        );

        // Killing that primary promotes its replica, the first primary, again.
        let killed = Instant::now();
        cluster.kill(replica);
        cluster.wait_until_ok();
        eprintln!("failed over a killed primary in {:?}", killed.elapsed());
        assert_eq!(cluster.primary_index_for_key("{user1}:a"), primary);
        assert_eq!(cluster.primaries().len(), 3);
        assert_eq!(cluster.replicas().len(), 2);
        assert_eq!(
            cluster.nodes()[primary].query::<String>(&["GET", "{user1}:a"]),
            "via-cli"
        );

        // A restarted node rejoins, as a replica of the primary that took its place.
        let rejoin = Instant::now();
        cluster.node_mut(replica).restart();
        cluster.wait_until_ok();
        eprintln!("restarted node rejoined in {:?}", rejoin.elapsed());
        assert_eq!(cluster.replica_index_of(primary), replica);
        eprintln!("whole test took {:?}", started.elapsed());
    }

    /// Ports named in `redis-cli` output of `CLUSTER SLOTS` (one element per line: each
    /// node's address is followed by its port).
    fn ports_in_cluster_slots(text: &str) -> BTreeSet<u16> {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        lines
            .windows(2)
            .filter(|pair| pair[0] == "127.0.0.1")
            .map(|pair| pair[1].parse().expect("a port after an address"))
            .collect()
    }

    #[test]
    fn tls_cluster() {
        let started = Instant::now();
        let certificates = TestCertificates::generate(&["IP:127.0.0.1"]);
        let mut cluster = RedisCluster::builder()
            .password("tls-pw")
            .tls(&certificates, true)
            .start(3, 1);
        eprintln!("3×1 TLS cluster up in {:?}", started.elapsed());
        assert_eq!(cluster.primaries().len(), 3);
        assert_eq!(cluster.replicas().len(), 3);
        let tls_ports: Vec<u16> = cluster
            .nodes()
            .iter()
            .map(|node| node.tls_port().expect("a TLS port"))
            .collect();
        let expected: Vec<String> = tls_ports
            .iter()
            .map(|port| format!("rediss://:tls-pw@127.0.0.1:{port}/"))
            .collect();
        assert_eq!(cluster.tls_urls(), expected);

        let tls = cluster.nodes()[0].options.tls.clone().expect("TLS options");
        let cli = |tls_args: &[std::ffi::OsString], port: u16, args: &[&str]| -> String {
            let output = Command::new("redis-cli")
                .args(tls_args)
                .args(["-a", "tls-pw", "--no-auth-warning", "-p", &port.to_string()])
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run redis-cli");
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        let tls_cli = |port: u16, args: &[&str]| cli(&tls.redis_cli_args(), port, args);

        // The TLS port speaks TLS only, and wants a client certificate.
        assert_ne!(cli(&[], tls_ports[0], &["PING"]), "PONG");
        let without_certificate = ["--tls".into(), "--cacert".into(), tls.ca.clone().into()];
        assert_ne!(cli(&without_certificate, tls_ports[0], &["PING"]), "PONG");
        assert_eq!(tls_cli(tls_ports[0], &["PING"]), "PONG");

        // CLUSTER SLOTS names TLS ports to a TLS client, plain ones to a plain client: every
        // primary, and the replicas it already knows to be in sync.
        let (primary_tls, primary_plain): (BTreeSet<u16>, BTreeSet<u16>) = cluster
            .primaries()
            .iter()
            .map(|node| (node.tls_port().expect("a TLS port"), node.port()))
            .unzip();
        let all_tls: BTreeSet<u16> = tls_ports.iter().copied().collect();
        for node in cluster.nodes() {
            let port = node.tls_port().expect("a TLS port");
            let advertised = ports_in_cluster_slots(&tls_cli(port, &["CLUSTER", "SLOTS"]));
            assert!(
                advertised.is_superset(&primary_tls) && advertised.is_subset(&all_tls),
                "CLUSTER SLOTS over TLS on {port}: {advertised:?}, TLS ports {all_tls:?}"
            );
        }
        let all_plain: BTreeSet<u16> = cluster.nodes().iter().map(RedisServer::port).collect();
        let plain_port = cluster.nodes()[0].port();
        let advertised = ports_in_cluster_slots(&cli(&[], plain_port, &["CLUSTER", "SLOTS"]));
        assert!(
            advertised.is_superset(&primary_plain) && advertised.is_subset(&all_plain),
            "CLUSTER SLOTS over plain TCP: {advertised:?}, plain ports {all_plain:?}"
        );

        // redis-cli -c over TLS reaches every primary, following MOVED from another node.
        let writes = Instant::now();
        for primary in cluster.primary_indexes() {
            let key = (0..)
                .map(|i| format!("tls:{i}"))
                .find(|key| cluster.primary_index_for_key(key) == primary)
                .expect("a key of every primary");
            let entry = tls_ports[(primary + 1) % tls_ports.len()];
            assert_eq!(tls_cli(entry, &["-c", "SET", &key, "over-tls"]), "OK");
            assert_eq!(tls_cli(entry, &["-c", "GET", &key]), "over-tls");
            assert_eq!(
                cluster.nodes()[primary].query::<String>(&["GET", &key]),
                "over-tls"
            );
        }
        eprintln!("wrote a key on each primary in {:?}", writes.elapsed());
        let spread = cluster.keys_per_primary("tls:*");
        assert!(spread.iter().all(|(_, n)| *n == 1), "{spread:?}");

        // Replication and failover run over TLS too.
        assert_eq!(tls_cli(tls_ports[0], &["-c", "SET", "{tls}:a", "v1"]), "OK");
        let primary = cluster.primary_index_for_key("{tls}:a");
        let replica = cluster.replica_index_of(primary);
        let failover = Instant::now();
        cluster.failover(replica);
        eprintln!("manual TLS failover in {:?}", failover.elapsed());
        assert_eq!(cluster.primary_index_for_key("{tls}:a"), replica);
        assert_eq!(cluster.replica_index_of(replica), primary);
        assert_eq!(tls_cli(tls_ports[primary], &["-c", "GET", "{tls}:a"]), "v1");
        let killed = Instant::now();
        cluster.kill(replica);
        cluster.wait_until_ok();
        eprintln!("failed over a killed TLS primary in {:?}", killed.elapsed());
        assert_eq!(cluster.primary_index_for_key("{tls}:a"), primary);
        assert_eq!(tls_cli(tls_ports[primary], &["GET", "{tls}:a"]), "v1");
        cluster.node_mut(replica).restart();
        cluster.wait_until_ok();
        assert_eq!(cluster.replica_index_of(primary), replica);
        eprintln!("whole TLS test took {:?}", started.elapsed());
    }

    #[test]
    fn cluster_with_password() {
        let cluster = RedisCluster::builder().password("cluster-pw").start(3, 1);
        assert!(cluster.urls().iter().all(|u| u.contains(":cluster-pw@")));
        assert_eq!(cluster.replicas().len(), 3);
        let unauthenticated = redis::Client::open(cluster.nodes()[0].url_without_password())
            .expect("url")
            .get_connection_with_timeout(Duration::from_secs(1))
            .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c));
        assert!(unauthenticated.is_err());
    }
}
