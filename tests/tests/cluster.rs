//! A Redis Cluster (3 primaries, 3 replicas, built with `redis-cli --cluster create`) under
//! load: sessions spread over every primary, and a `CLUSTER FAILOVER` then a killed primary cost
//! no 5xx; afterwards every session is served from Redis again, the ones the killed primary
//! took with it re-seeded from their cookies. (The conformance scenarios run on a cluster too:
//! `conformance::cluster::*`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use conformance::{ACL, Client, Framework, TestApp, TestRedis, decrypt_cookie, redis_key_of};
use test_redis::RedisCluster;
use test_redis::redis;

conformance::scenarios!(
    failover_and_a_killed_primary_under_load,
    sessions_a_dead_primary_took_with_it_are_re_seeded,
    everything_works_under_the_acl_user_on_a_cluster,
    a_stalled_shard_leaves_the_other_shards_on_redis,
    sessions_work_on_a_tls_cluster_and_a_wrong_ca_falls_back,
);

const CLIENTS: usize = 20;

/// What the load saw.
#[derive(Default)]
struct Load {
    requests: AtomicU64,
    server_errors: AtomicU64,
    /// Answers that did not carry the client's own user (a session lost in the app's eyes).
    logged_out: AtomicU64,
}

/// Each client increments its counter and reads its user until `stop`; returns the clients
/// (their cookie jars) and each one's last counter.
async fn load(clients: Vec<Client>, stop: Arc<AtomicBool>, seen: Arc<Load>) -> Vec<(Client, i64)> {
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            tokio::spawn(async move {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let counter = client.post("/counter").await;
                    let me = client.get("/me").await;
                    seen.requests.fetch_add(2, Ordering::Relaxed);
                    for reply in [&counter, &me] {
                        if reply.status >= 500 {
                            seen.server_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if me.json["user_id"] != format!("user{i}") {
                        seen.logged_out.fetch_add(1, Ordering::Relaxed);
                    }
                    last = counter.json["counter"].as_i64().unwrap_or(last);
                }
                (client, last)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("a load task"));
    }
    out
}

/// Runs `step` (a blocking cluster operation) while the load goes on, on the other worker.
fn during_load<T>(step: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(step)
}

async fn failover_and_a_killed_primary_under_load(framework: Framework) {
    let mut cluster = RedisCluster::start(3, 1);
    let app = TestApp::start(framework, &cluster, |c| c).await;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut client = app.client();
        client.login(&format!("user{i}"), "user").await;
        clients.push(client);
    }
    // Ids are random: should a primary hold none of the 20 (rare), logging in again gives a
    // session a new id, until every primary holds some.
    for attempt in 0.. {
        let spread = cluster.keys_per_primary("session:{*");
        if spread.iter().all(|(_, keys)| *keys > 0) {
            break;
        }
        assert!(attempt < 60, "sessions on every primary: {spread:?}");
        let i = attempt % CLIENTS;
        clients[i].login(&format!("user{i}"), "user").await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Load::default());
    let running = tokio::spawn(load(clients, Arc::clone(&stop), Arc::clone(&seen)));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A controlled failover of the first primary's shard: no data lost.
    let promoted = during_load(|| {
        let primary = cluster.primary_indexes()[0];
        let replica = cluster.replica_index_of(primary);
        cluster.failover(replica);
        replica
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Then the new primary dies: its replica (the old primary) takes over once the cluster
    // notices (node timeout 1 s); writes it had not received yet are lost.
    during_load(|| {
        cluster.kill(promoted);
        cluster.wait_until_ok();
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let clients = running.await.expect("the load");

    let requests = seen.requests.load(Ordering::Relaxed);
    let logged_out = seen.logged_out.load(Ordering::Relaxed);
    assert_eq!(
        seen.server_errors.load(Ordering::Relaxed),
        0,
        "no 5xx in {requests} requests"
    );
    assert_eq!(logged_out, 0, "nobody was logged out ({requests} requests)");

    // Sessions whose hash went with the killed primary (asynchronous replication: acknowledged
    // by the primary, not yet copied to its replica when it died).
    let cookie_name = app.store.cookie_name().to_owned();
    let lost = {
        clients
            .iter()
            .filter(|(client, _)| {
                let payload = decrypt_cookie(&cookie_name, &client.cookie().expect("a cookie"));
                payload["i"].as_str().is_some_and(|id| {
                    let key = redis_key_of(id);
                    let node = cluster.primary_index_for_key(&key);
                    cluster.nodes()[node].query::<i64>(&["EXISTS", &key]) == 0
                })
            })
            .count()
    };
    println!(
        "{framework:?}: {requests} requests, 0 errors; {lost} of {CLIENTS} sessions were lost \
         with the killed primary (asynchronous replication) and are re-seeded from their cookies"
    );

    // Afterwards: everyone is served from Redis again, with their user and counter.
    let mut regressed = 0;
    for (i, (mut client, last)) in clients.into_iter().enumerate() {
        // The same cookie jar throughout: a re-seed gives the session a new cookie.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while client.get("/me").await.json["source"] != "redis" {
            assert!(
                std::time::Instant::now() < deadline,
                "user{i} is served from Redis again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let me = client.get("/me").await;
        assert_eq!(me.status, 200, "{}", me.text);
        assert_eq!(me.json["user_id"], format!("user{i}"));
        assert_eq!(me.json["source"], "redis");
        let counter = client.get("/counter").await.json["counter"]
            .as_i64()
            .expect("a counter");
        if counter < last {
            regressed += 1;
        }
    }
    println!(
        "{framework:?}: {regressed} counters lost their last increments with the killed primary"
    );
}

/// The Redis key of the session in `client`'s cookie.
fn session_key(app: &TestApp, client: &Client) -> String {
    let payload = decrypt_cookie(app.store.cookie_name(), &client.cookie().expect("a cookie"));
    redis_key_of(payload["i"].as_str().expect("a session in Redis"))
}

/// Whether the node holds `key` (a node that does not serve its slot answers `MOVED`).
fn holds(node: &test_redis::RedisServer, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(&mut node.connection())
        .is_ok_and(|n| n == 1)
}

/// Asynchronous replication loses what a primary acknowledged but had not sent to its replica
/// yet when it died. Made certain here by pausing the replica while sessions are written: the
/// promoted replica has a new replication id, hence a new data epoch, and each lost session is
/// re-seeded from its cookie (user and mirrored counter) on its next request.
async fn sessions_a_dead_primary_took_with_it_are_re_seeded(framework: Framework) {
    let mut cluster = RedisCluster::start(3, 1);
    let app = TestApp::start(framework, &cluster, |c| c).await;
    let primary = cluster.primary_indexes()[0];
    let replica = cluster.replica_index_of(primary);

    // The replica stops, and the primary drops its link to it: nothing written from now on
    // reaches the replica.
    cluster.nodes()[replica].pause();
    cluster.nodes()[primary].run(&["CLIENT", "KILL", "TYPE", "replica"]);
    let mut doomed = Vec::new();
    for i in 0.. {
        if doomed.len() == 3 {
            break;
        }
        assert!(i < 200, "sessions land on the first primary");
        let mut client = app.client();
        client.login(&format!("user{i}"), "user").await;
        for expected in 1..=2 {
            assert_eq!(client.post("/counter").await.json["counter"], expected);
        }
        if holds(&cluster.nodes()[primary], &session_key(&app, &client)) {
            doomed.push((i, client));
        }
    }
    cluster.kill(primary);
    cluster.nodes()[replica].resume();
    tokio::task::block_in_place(|| cluster.wait_until_ok());

    let mut lost = 0;
    for (i, mut client) in doomed {
        if !holds(&cluster.nodes()[replica], &session_key(&app, &client)) {
            lost += 1;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let me = loop {
            let me = client.get("/me").await;
            assert_eq!(me.json["user_id"], format!("user{i}"), "{}", me.text);
            if me.json["source"] == "redis" {
                break me;
            }
            assert!(std::time::Instant::now() < deadline, "back on Redis");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(me.status, 200);
        let counter = client.get("/counter").await;
        assert_eq!(counter.json["counter"], 2, "the mirrored counter survived");
        assert_eq!(counter.json["source"], "redis");
        let key = session_key(&app, &client);
        assert!(
            holds(&cluster.nodes()[cluster.primary_index_for_key(&key)], &key),
            "re-seeded into Redis under a new id"
        );
    }
    assert_eq!(lost, 3, "the paused replica never received those sessions");
    println!(
        "{framework:?}: {lost} sessions lost with the killed primary (its replica was behind: \
         asynchronous replication); all {lost} re-seeded from their cookies"
    );
}

/// README's ACL line, plus `+cluster|slots` for the slot map, on every node of a cluster.
async fn everything_works_under_the_acl_user_on_a_cluster(framework: Framework) {
    let cluster = ACL
        .iter()
        .fold(RedisCluster::builder(), |builder, arg| builder.arg(*arg))
        .arg("+ping")
        .arg("+cluster|slots")
        .start(3, 1);
    let seeds: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|node| {
            format!(
                "redis://sessions:sessions-password@127.0.0.1:{}/",
                node.port()
            )
        })
        .collect();
    let manager = cluster.manager().cluster(seeds);
    let app = TestApp::start_with(framework, manager, &cluster, |c| c).await;

    let mut clients = Vec::new();
    for i in 0..6 {
        let mut client = app.client();
        client.login(&format!("user{i}"), "user").await;
        for expected in 1..=2 {
            let counter = client.post("/counter").await;
            assert_eq!(counter.json["counter"], expected);
            assert_eq!(counter.json["source"], "redis");
        }
        clients.push(client);
    }
    for mut client in clients {
        let copy = client.fork();
        assert_eq!(client.post("/logout").await.status, 204);
        assert_eq!(copy.clone().get("/me").await.status, 401);
    }
    for node in cluster.nodes() {
        let log: Vec<redis::Value> = node.query(&["ACL", "LOG"]);
        assert!(log.is_empty(), "refused on port {}: {log:?}", node.port());
    }
}

/// One primary stops answering (paused, no replica takes over: the cluster is told to keep
/// serving the slots it still has). Its sessions are served from their cookies; the other
/// shards' sessions stay on Redis; nobody is logged out; all come back when it resumes.
async fn a_stalled_shard_leaves_the_other_shards_on_redis(framework: Framework) {
    let cluster = RedisCluster::builder()
        .arg("--cluster-require-full-coverage")
        .arg("no")
        .arg("--cluster-replica-no-failover")
        .arg("yes")
        .start(3, 1);
    let app = TestApp::start(framework, &cluster, |c| c).await;
    let stalled = cluster.primary_indexes()[0];
    // A dozen sessions, and more until some are on that shard and some elsewhere (ids are
    // random).
    let mut clients = Vec::new();
    for i in 0.. {
        let mut client = app.client();
        client.login(&format!("user{i}"), "user").await;
        assert_eq!(client.post("/counter").await.json["counter"], 1);
        let on_stalled = holds(&cluster.nodes()[stalled], &session_key(&app, &client));
        clients.push((i, client, on_stalled));
        let both = clients.iter().any(|(_, _, on)| *on) && clients.iter().any(|(_, _, on)| !*on);
        if i >= 11 && both {
            break;
        }
        assert!(i < 60, "sessions on the stalled shard and elsewhere");
    }

    cluster.nodes()[stalled].pause();
    // Past the cluster's node timeout (1 s), and a few rounds of requests.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let mut rounds = 0;
    while std::time::Instant::now() < until {
        rounds += 1;
        for (i, client, on_stalled) in &mut clients {
            let me = client.get("/me").await;
            assert_eq!(me.status, 200, "{}", me.text);
            assert_eq!(me.json["user_id"], format!("user{i}"));
            if !*on_stalled && rounds > 1 {
                assert_eq!(me.json["source"], "redis", "user{i} is on a healthy shard");
            }
        }
    }
    cluster.nodes()[stalled].resume();
    for (i, client, _) in &mut clients {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while client.get("/me").await.json["source"] != "redis" {
            assert!(
                std::time::Instant::now() < deadline,
                "user{i} back on Redis"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(client.get("/counter").await.json["counter"], 1);
    }
}

/// Every node speaks TLS only to clients that present a certificate of the test CA, on the
/// cluster bus and for replication too; the app reaches it through `rediss://` seeds with the CA
/// and a client certificate. With another CA the handshake fails: sessions fall back to the
/// cookie, nothing is sent in plain text.
async fn sessions_work_on_a_tls_cluster_and_a_wrong_ca_falls_back(framework: Framework) {
    let certificates = test_redis::TestCertificates::generate(&["IP:127.0.0.1", "DNS:localhost"]);
    let cluster = RedisCluster::builder().tls(&certificates, true).start(3, 1);
    let (cert, key) = certificates.client_pem();
    let manager = cluster
        .manager()
        .cluster(cluster.tls_urls())
        .tls_root_certificate(certificates.ca_pem())
        .tls_client_certificate(cert.clone(), key.clone());
    let app = TestApp::start_with(framework, manager, &cluster, |c| c).await;
    // Sessions until every primary holds some (ids are random: a few dozen at most).
    let mut clients = Vec::new();
    for i in 0.. {
        let mut client = app.client();
        client.login(&format!("user{i}"), "user").await;
        let counter = client.post("/counter").await;
        assert_eq!(counter.json["source"], "redis", "{}", counter.text);
        clients.push(client);
        let spread = cluster.keys_per_primary("session:{*");
        if spread.iter().all(|(_, keys)| *keys > 0) {
            break;
        }
        assert!(i < 60, "sessions on every primary: {spread:?}");
    }
    assert_eq!(clients[0].post("/logout").await.status, 204);

    let stranger = test_redis::TestCertificates::generate(&["IP:127.0.0.1"]);
    cluster.reset_stats();
    let wrong = cluster
        .manager()
        .cluster(cluster.tls_urls())
        .tls_root_certificate(stranger.ca_pem())
        .tls_client_certificate(cert, key);
    let refused = TestApp::start_unconnected(framework, wrong, |c| c).await;
    let mut client = refused.client();
    client.login("eve", "user").await;
    let counter = client.post("/counter").await;
    assert_eq!(counter.status, 200);
    assert_eq!(counter.json["source"], "cookie");
    assert_eq!(cluster.total_commands(), 0, "{:?}", cluster.commandstats());
}
