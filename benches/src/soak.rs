//! `session-bench --soak [--minutes M]`: our axum app under load for M minutes (10 by default)
//! through a fault proxy in front of a persistent Redis, with a fault every 30 s; the server's
//! RSS, its connections to Redis, Redis's clients and memory, and the logout queue printed at
//! the start and at the end, with every answer counted. Nothing may leak, and no request may
//! get a 5xx or see its counter go backwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use session_bench::system::System;
use test_redis::{FaultProxy, RedisServer};

use crate::client::Connection;
use crate::process::ServerProcess;

const LOGIN_BODY: &str = r#"{"user_id":"ada","role":"admin"}"#;

/// Between two faults.
const EVERY: Duration = Duration::from_secs(30);
/// How long a fault that has a length lasts.
const FAULT_FOR: Duration = Duration::from_secs(5);

/// What the load saw.
#[derive(Debug, Default)]
struct Tally {
    requests: AtomicU64,
    server_errors: AtomicU64,
    /// Requests that got no answer at all (connection refused or reset by our own server).
    no_answer: AtomicU64,
    /// Counters that went backwards within one login.
    lost: AtomicU64,
    logouts: AtomicU64,
}

/// One reading of the process and of Redis.
#[derive(Debug)]
struct Reading {
    rss_kib: u64,
    proxied_connections: usize,
    redis_clients: u64,
    redis_memory: u64,
    /// Logouts queued and not yet replayed nor given up, from the app's metrics.
    queued_logouts: f64,
}

pub(crate) async fn run(minutes: f64, connections: usize) -> Result<(), String> {
    let mut redis = RedisServer::builder()
        .persistent()
        .arg("--enable-debug-command")
        .arg("local")
        .start();
    let proxy = FaultProxy::start(redis.port());
    let server = ServerProcess::start(System::OursAxum, &proxy.url())?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(client(server.addr, Arc::clone(&tally), Arc::clone(&stop))))
        .collect();

    tokio::time::sleep(Duration::from_secs(10)).await;
    let start = reading(&server, &proxy, &redis).await;
    eprintln!("soak: start {start:?}");
    let end_at = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let mut faults = 0usize;
    while Instant::now() + EVERY < end_at {
        tokio::time::sleep(EVERY).await;
        let fault = fault(faults, &mut redis, &proxy).await;
        faults += 1;
        eprintln!(
            "soak: {fault}; {} requests so far, {} 5xx",
            tally.requests.load(Ordering::Relaxed),
            tally.server_errors.load(Ordering::Relaxed)
        );
    }
    let left = end_at.saturating_duration_since(Instant::now());
    tokio::time::sleep(left.max(Duration::from_secs(10))).await;
    let end = reading(&server, &proxy, &redis).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    println!("# Soak run\n");
    println!(
        "{minutes} minutes, {connections} connections (login, counting, a logout and a new login \
         every 50 requests), a fault every {} s ({faults} faults), our axum app through a fault \
         proxy to a persistent Redis.\n",
        EVERY.as_secs()
    );
    println!("| | start | end |");
    println!("| --- | ---: | ---: |");
    println!(
        "| server RSS | {} KiB | {} KiB |",
        start.rss_kib, end.rss_kib
    );
    println!(
        "| server's connections to Redis (through the proxy) | {} | {} |",
        start.proxied_connections, end.proxied_connections
    );
    println!(
        "| Redis clients | {} | {} |",
        start.redis_clients, end.redis_clients
    );
    println!(
        "| Redis used memory | {} B | {} B |",
        start.redis_memory, end.redis_memory
    );
    println!(
        "| logouts queued, not yet replayed | {} | {} |",
        start.queued_logouts, end.queued_logouts
    );
    println!();
    println!(
        "requests {}, 5xx {}, no answer {}, counters gone backwards {}, logouts {}",
        tally.requests.load(Ordering::Relaxed),
        tally.server_errors.load(Ordering::Relaxed),
        tally.no_answer.load(Ordering::Relaxed),
        tally.lost.load(Ordering::Relaxed),
        tally.logouts.load(Ordering::Relaxed),
    );
    Ok(())
}

/// The `n`th fault of the cycle; returns what it was.
async fn fault(n: usize, redis: &mut RedisServer, proxy: &FaultProxy) -> &'static str {
    let kinds = 8;
    match n % kinds {
        0 => {
            redis.kill();
            tokio::time::sleep(FAULT_FOR).await;
            redis.restart();
            "Redis killed, restarted from its AOF"
        }
        1 => {
            proxy.set_latency(Duration::from_millis(400), Duration::from_millis(100));
            tokio::time::sleep(FAULT_FOR).await;
            proxy.heal();
            "400 ms of latency"
        }
        2 => {
            proxy.blackhole(true);
            tokio::time::sleep(FAULT_FOR).await;
            proxy.heal();
            "a blackhole"
        }
        3 => {
            proxy.half_open();
            "half-open connections"
        }
        4 => {
            proxy.reset_after(Some(300));
            tokio::time::sleep(FAULT_FOR).await;
            proxy.heal();
            "connections reset after 300 bytes"
        }
        5 => {
            redis.run(&["CLIENT", "KILL", "TYPE", "normal"]);
            "CLIENT KILL TYPE normal"
        }
        6 => {
            let port = redis.port();
            let _ = tokio::task::spawn_blocking(move || {
                let url = format!("redis://127.0.0.1:{port}/");
                if let Ok(mut conn) =
                    test_redis::redis::Client::open(url).and_then(|c| c.get_connection())
                {
                    let _: Result<(), _> = test_redis::redis::cmd("DEBUG")
                        .arg("SLEEP")
                        .arg(2)
                        .query(&mut conn);
                }
            })
            .await;
            "DEBUG SLEEP 2"
        }
        _ => {
            redis.run(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
            redis.run(&["CONFIG", "SET", "maxmemory", "1"]);
            tokio::time::sleep(FAULT_FOR).await;
            redis.run(&["CONFIG", "SET", "maxmemory", "0"]);
            "maxmemory reached"
        }
    }
}

/// One connection: log in, count, every 50 requests log out and in again.
async fn client(addr: SocketAddr, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut conn = Connection::new(addr);
    let mut last = 0;
    let mut since_login = 0;
    let mut logged_in = false;
    while !stop.load(Ordering::Relaxed) {
        let (method, path, body) = if !logged_in {
            (Method::POST, "/login", Some(LOGIN_BODY))
        } else if since_login >= 50 {
            (Method::POST, "/logout", None)
        } else {
            (Method::POST, "/counter", None)
        };
        tally.requests.fetch_add(1, Ordering::Relaxed);
        match conn.send(method, path, body).await {
            Ok(answer) if answer.status >= 500 => {
                tally.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(answer) => match path {
                "/login" => {
                    logged_in = true;
                    since_login = 0;
                    last = 0;
                }
                "/logout" => {
                    logged_in = false;
                    tally.logouts.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    since_login += 1;
                    if let Some(counter) = answer.counter() {
                        if counter < last {
                            tally.lost.fetch_add(1, Ordering::Relaxed);
                        }
                        last = counter;
                    }
                }
            },
            Err(_) => {
                tally.no_answer.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn reading(server: &ServerProcess, proxy: &FaultProxy, redis: &RedisServer) -> Reading {
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let info: String = redis.query(&["INFO"]);
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut metrics = Connection::new(server.addr);
    let page = metrics
        .send(Method::GET, "/metrics", None)
        .await
        .map(|answer| String::from_utf8_lossy(&answer.body).into_owned())
        .unwrap_or_default();
    let revocations = |outcome: &str| -> f64 {
        page.lines()
            .filter(|line| {
                line.starts_with(resilient_session::metrics::REVOCATIONS)
                    && line.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Reading {
        rss_kib,
        proxied_connections: proxy.open_connections(),
        redis_clients: field("connected_clients"),
        redis_memory: field("used_memory"),
        queued_logouts: revocations("queued") - revocations("replayed") - revocations("failed"),
    }
}
