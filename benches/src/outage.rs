//! The outage run: connections on `GET` / `POST /counter`, Redis killed, then restarted with its
//! data; what each system answered meanwhile, and whether any session lost its counter.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::Method;
use test_redis::RedisServer;

use crate::client::Connection;
use crate::report::percentile;

/// A request still waiting when the run ends counts as unanswered if it waited this long.
const HUNG: Duration = Duration::from_secs(1);

/// When Redis goes down and comes back, from the start of the run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeline {
    pub(crate) healthy: Duration,
    pub(crate) down: Duration,
    /// How long the run goes on after Redis is back.
    pub(crate) after: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct OutageResult {
    pub(crate) requests: u64,
    pub(crate) server_errors: u64,
    /// Requests that failed without an answer (connection errors), or were still waiting when
    /// the run ended after more than a second.
    pub(crate) no_answer: u64,
    pub(crate) p99_healthy_us: Option<u32>,
    pub(crate) p99_outage_us: Option<u32>,
    /// Seconds from Redis's return to the first answer served from Redis (ours say so in
    /// `source`; for the others, the first 2xx).
    pub(crate) recovered_after: Option<f64>,
    pub(crate) sessions: u64,
    /// Sessions whose counter went backwards (or restarted).
    pub(crate) lost_sessions: u64,
}

#[derive(Debug, Default)]
struct Trace {
    /// (sent, latency µs, status) for each request; status 0: no answer.
    requests: Vec<(Instant, u32, u16)>,
    /// Completion times of answers served from Redis.
    from_redis: Vec<Instant>,
    lost: bool,
}

/// Runs the outage on the system at `addr`; `ours` systems report their session source.
pub(crate) async fn run(
    addr: SocketAddr,
    ours: bool,
    connections: usize,
    timeline: Timeline,
    redis: &mut RedisServer,
) -> OutageResult {
    let started = Instant::now();
    let kill_at = started + timeline.healthy;
    let restart_at = kill_at + timeline.down;
    let end = restart_at + timeline.after;
    let mut tasks = Vec::new();
    for i in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::new(addr);
            let mut trace = Trace::default();
            let mut highest = 0;
            let mut n = i;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                n += 1;
                let method = if n % 2 == 0 { Method::GET } else { Method::POST };
                let cookie_before = conn.cookie.clone();
                let answer =
                    tokio::time::timeout_at(end.into(), conn.send(method.clone(), "/counter", None)).await;
                let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                let answer = match answer {
                    Ok(Ok(answer)) => answer,
                    // Cut by the end of the run after a short wait: not a missing answer.
                    Err(_) if sent.elapsed() < HUNG => break,
                    Ok(Err(_)) | Err(_) => {
                        trace.requests.push((sent, micros, 0));
                        // A refused connection answers at once: do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                trace.requests.push((sent, micros, answer.status));
                if (200..300).contains(&answer.status) {
                    if let Some(counter) = answer.counter() {
                        if counter < highest {
                            if !trace.lost && std::env::var_os("SESSION_BENCH_DEBUG").is_some() {
                                eprintln!(
                                    "counter went back from {highest} to {counter} at {:?} (kill at {:?}): {} {method} cookie before: {:?}",
                                    sent - started,
                                    kill_at - started,
                                    String::from_utf8_lossy(&answer.body),
                                    cookie_before.map(|c| c.len())
                                );
                            }
                            trace.lost = true;
                        }
                        highest = highest.max(counter);
                    }
                    let from_redis = if ours {
                        answer.source().as_deref() == Some("redis")
                    } else {
                        true
                    };
                    if from_redis {
                        trace.from_redis.push(Instant::now());
                    }
                }
            }
            trace
        }));
    }
    tokio::time::sleep_until(kill_at.into()).await;
    tokio::task::block_in_place(|| redis.kill());
    tokio::time::sleep_until(restart_at.into()).await;
    tokio::task::block_in_place(|| redis.restart());
    let back = Instant::now();

    let mut result = OutageResult::default();
    let mut healthy = Vec::new();
    let mut outage = Vec::new();
    let mut first_from_redis: Option<Instant> = None;
    for task in tasks {
        let Ok(trace) = task.await else { continue };
        result.sessions += 1;
        result.lost_sessions += u64::from(trace.lost);
        for (sent, micros, status) in trace.requests {
            result.requests += 1;
            match status {
                0 => result.no_answer += 1,
                500..=599 => result.server_errors += 1,
                _ => {}
            }
            if sent < kill_at {
                healthy.push(micros);
            } else if sent < restart_at {
                outage.push(micros);
            }
        }
        if let Some(first) = trace.from_redis.into_iter().find(|at| *at >= back) {
            first_from_redis = Some(first_from_redis.map_or(first, |f| f.min(first)));
        }
    }
    result.p99_healthy_us = percentile(&mut healthy, 0.99);
    result.p99_outage_us = percentile(&mut outage, 0.99);
    result.recovered_after = first_from_redis.map(|at| (at - back).as_secs_f64());
    result
}
