//! The load generator: N connections, each with its own cookie, hammering one route of one
//! system, with Redis `INFO commandstats` and the CPU time of the server and of Redis read around
//! the measured window.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use test_redis::RedisServer;

use crate::client::Connection;
use crate::process::cpu_seconds;

const LOGIN_BODY: &str = r#"{"user_id":"ada","role":"admin"}"#;

/// What the connections do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Route {
    /// `GET /noop` with a session cookie: a route that never uses the session.
    Noop,
    /// `GET /counter` with a session cookie.
    Read,
    /// `POST /counter` with a session cookie.
    Write,
    /// `POST /counter` without a cookie: a new visitor whose session is written.
    NewVisitor,
    /// `POST /login`: a new session id and the user stored.
    Login,
}

impl Route {
    pub(crate) const ALL: [Route; 5] = [
        Route::Noop,
        Route::Read,
        Route::Write,
        Route::NewVisitor,
        Route::Login,
    ];

    /// The short name used on the command line.
    pub(crate) fn from_name(name: &str) -> Option<Route> {
        Route::ALL
            .into_iter()
            .find(|route| route.short_name() == name)
    }

    pub(crate) fn short_name(self) -> &'static str {
        match self {
            Route::Noop => "noop",
            Route::Read => "read",
            Route::Write => "write",
            Route::NewVisitor => "new-visitor",
            Route::Login => "login",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Route::Noop => "GET /noop",
            Route::Read => "GET /counter",
            Route::Write => "POST /counter",
            Route::NewVisitor => "new visitor POST /counter",
            Route::Login => "POST /login",
        }
    }

    /// Prepares a connection: a session to use.
    async fn setup(self, conn: &mut Connection) -> Result<(), String> {
        match self {
            Route::Noop | Route::Read | Route::Write => {
                conn.send(Method::POST, "/login", Some(LOGIN_BODY)).await?;
                conn.send(Method::POST, "/counter", None).await.map(drop)
            }
            Route::NewVisitor | Route::Login => Ok(()),
        }
    }

    async fn request(self, conn: &mut Connection) -> Result<u16, String> {
        let answer = match self {
            Route::Noop => conn.send(Method::GET, "/noop", None).await?,
            Route::Read => conn.send(Method::GET, "/counter", None).await?,
            Route::Write => conn.send(Method::POST, "/counter", None).await?,
            Route::NewVisitor => {
                conn.cookie = None;
                conn.send(Method::POST, "/counter", None).await?
            }
            Route::Login => conn.send(Method::POST, "/login", Some(LOGIN_BODY)).await?,
        };
        Ok(answer.status)
    }
}

/// One measured run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sample {
    pub(crate) requests: u64,
    /// Answers other than 2xx, and failed requests.
    pub(crate) errors: u64,
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) seconds: f64,
    pub(crate) commands: BTreeMap<String, u64>,
    /// Microseconds Redis spent per command (`usec` of `INFO commandstats`).
    pub(crate) command_usec: BTreeMap<String, u64>,
    /// CPU seconds the server process used in the measured window.
    pub(crate) app_cpu: f64,
    /// CPU seconds the Redis process used in the measured window (commands, network, all).
    pub(crate) redis_cpu: f64,
}

impl Sample {
    pub(crate) fn merge(&mut self, other: Sample) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        self.seconds += other.seconds;
        for (command, calls) in other.commands {
            *self.commands.entry(command).or_default() += calls;
        }
        for (command, usec) in other.command_usec {
            *self.command_usec.entry(command).or_default() += usec;
        }
        self.app_cpu += other.app_cpu;
        self.redis_cpu += other.redis_cpu;
    }
}

/// Runs `route` on the system at `addr` with `connections` connections: `warmup`, then
/// `duration` measured. Without sessions (the plain server), connections skip the setup.
/// `server_pid` is the process whose CPU time is read.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn measure(
    addr: SocketAddr,
    server_pid: u32,
    route: Route,
    with_sessions: bool,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    redis: &Arc<RedisServer>,
) -> Sample {
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::new(addr);
            let mut sample = Sample::default();
            if with_sessions && route.setup(&mut conn).await.is_err() {
                sample.errors += 1;
            }
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = route.request(&mut conn).await;
                if sent < start {
                    continue;
                }
                sample.requests += 1;
                match result {
                    Ok(status) if (200..300).contains(&status) => {}
                    _ => sample.errors += 1,
                }
                let micros = sent.elapsed().as_micros();
                sample
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            sample
        }));
    }
    let stats = {
        let redis = Arc::clone(redis);
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let reset = Arc::clone(&redis);
            let _ = tokio::task::spawn_blocking(move || reset.reset_stats()).await;
            let cpu = |pid| cpu_seconds(pid).unwrap_or(0.0);
            let (app, db) = (cpu(server_pid), cpu(redis.pid()));
            tokio::time::sleep_until(end.into()).await;
            let (app, db) = (cpu(server_pid) - app, cpu(redis.pid()) - db);
            let (commands, usec) =
                tokio::task::spawn_blocking(move || (redis.commandstats(), redis.command_usec()))
                    .await
                    .unwrap_or_default();
            (commands, usec, app, db)
        })
    };
    let mut total = Sample::default();
    for task in tasks {
        if let Ok(sample) = task.await {
            total.merge(sample);
        }
    }
    total.seconds = duration.as_secs_f64();
    (
        total.commands,
        total.command_usec,
        total.app_cpu,
        total.redis_cpu,
    ) = stats.await.unwrap_or_default();
    total
}
