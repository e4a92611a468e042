//! `cargo run -p session-bench --release -- [--quick]`: our example apps beside axum +
//! tower-sessions and actix-web + actix-session (each in its default and its rolling-expiry
//! configuration) and plain axum, each a process of its own on one private redis-server; then an
//! outage run. Prints one table and, in full mode, writes it to `benches/RESULTS.md`.
//!
//! Options: `--quick` (a few seconds per case), `--rounds N`, `--seconds S` (measured per case),
//! `--connections N` (default 64), `--systems a,b` (names as in the table), `--routes r,s`
//! (`noop`, `read`, `write`, `new-visitor`, `login`), `--no-throughput`,
//! `--no-outage`, `--out PATH`; `--soak [--minutes M]` runs the soak run instead (see
//! `soak.rs`: faults every 30 s for M minutes, 10 by default).

mod client;
mod load;
mod outage;
mod process;
mod report;
mod soak;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use load::{Route, Sample};
use outage::Timeline;
use process::ServerProcess;
use report::Results;
use session_bench::servers;
use session_bench::system::System;
use test_redis::RedisServer;

struct Options {
    quick: bool,
    rounds: usize,
    seconds: f64,
    connections: usize,
    outage: bool,
    throughput: bool,
    systems: Vec<System>,
    routes: Vec<Route>,
    out: Option<String>,
    /// Minutes of the soak run, when it is the one asked for.
    soak: Option<f64>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let result = match (args.get(1), args.get(2), args.get(3)) {
            (Some(system), Some(port), Some(url)) => {
                match (System::from_name(system), port.parse()) {
                    (Some(system), Ok(port)) => servers::serve(system, port, url),
                    _ => Err(format!("unknown system or port: {system} {port}")),
                }
            }
            _ => Err("usage: session-bench serve <system> <port> <redis-url>".into()),
        };
        if let Err(err) = result {
            eprintln!("serve: {err}");
            std::process::exit(1);
        }
        return;
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!(
                "{err}\nusage: session-bench [--quick] [--rounds N] [--seconds S] \
                 [--connections N] [--systems a,b] [--routes r,s] [--no-throughput] [--no-outage] [--out PATH] \
                 | --soak [--minutes M]"
            );
            std::process::exit(2);
        }
    };
    if let Err(missing) = check_tools() {
        eprintln!("{missing}");
        std::process::exit(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start a runtime: {err}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(run(options)) {
        eprintln!("benchmark failed: {err}");
        std::process::exit(1);
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        rounds: 3,
        seconds: 10.0,
        connections: 64,
        outage: true,
        throughput: true,
        systems: System::ALL.to_vec(),
        routes: Route::ALL.to_vec(),
        out: None,
        soak: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .cloned()
        };
        match arg.as_str() {
            "--quick" => {
                options.quick = true;
                options.rounds = 1;
                options.seconds = 2.0;
            }
            "--rounds" => {
                options.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--seconds" => {
                options.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--connections" => {
                options.connections = value("--connections")?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?;
            }
            "--no-outage" => options.outage = false,
            "--no-throughput" => options.throughput = false,
            "--routes" => {
                options.routes = value("--routes")?
                    .split(',')
                    .map(|name| Route::from_name(name).ok_or(format!("unknown route {name}")))
                    .collect::<Result<_, _>>()?;
            }
            "--systems" => {
                options.systems = value("--systems")?
                    .split(',')
                    .map(|name| System::from_name(name).ok_or(format!("unknown system {name}")))
                    .collect::<Result<_, _>>()?;
            }
            "--out" => options.out = Some(value("--out")?),
            "--soak" => options.soak = Some(options.soak.unwrap_or(10.0)),
            "--minutes" => {
                options.soak = Some(
                    value("--minutes")?
                        .parse()
                        .map_err(|e| format!("--minutes: {e}"))?,
                );
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

/// redis-server is the one tool the benchmark needs besides cargo.
fn check_tools() -> Result<(), String> {
    match std::process::Command::new("redis-server")
        .arg("--version")
        .output()
    {
        Ok(_) => Ok(()),
        Err(_) => Err(
            "redis-server is not installed. Debian/Ubuntu: `sudo apt-get install \
                       redis-server`; macOS: `brew install redis`."
                .into(),
        ),
    }
}

async fn run(options: Options) -> Result<(), String> {
    if let Some(minutes) = options.soak {
        return soak::run(minutes, options.connections).await;
    }
    let redis = Arc::new(RedisServer::start());
    let mut servers = Vec::new();
    for system in options
        .systems
        .iter()
        .copied()
        .filter(|_| options.throughput)
    {
        servers.push(ServerProcess::start(system, &redis.url())?);
    }
    let warmup = Duration::from_secs_f64((options.seconds / 4.0).min(2.0));
    let duration = Duration::from_secs_f64(options.seconds);
    let mut samples: BTreeMap<(usize, Route), Sample> = BTreeMap::new();
    for round in 0..options.rounds {
        for route in options.routes.iter().copied() {
            // Interleaved, and each round starts with another system, so drift hits all alike.
            for k in 0..servers.len() {
                let index = (k + round) % servers.len();
                let server = &servers[index];
                if route != Route::Noop && !server.system.has_sessions() {
                    continue;
                }
                let sample = load::measure(
                    server.addr,
                    server.pid(),
                    route,
                    server.system.has_sessions(),
                    options.connections,
                    warmup,
                    duration,
                    &redis,
                )
                .await;
                eprintln!(
                    "round {} {:28} {:30} {:>8.0} req/s",
                    round + 1,
                    route.name(),
                    server.system.name(),
                    sample.requests as f64 / sample.seconds
                );
                let key = System::ALL
                    .iter()
                    .position(|s| *s == server.system)
                    .unwrap_or(index);
                samples.entry((key, route)).or_default().merge(sample);
            }
        }
    }
    drop(servers);
    drop(redis);

    let mut outages = Vec::new();
    if options.outage {
        let timeline = if options.quick {
            Timeline {
                healthy: Duration::from_secs(3),
                down: Duration::from_secs(3),
                after: Duration::from_secs(6),
            }
        } else {
            Timeline {
                healthy: Duration::from_secs(5),
                down: Duration::from_secs(5),
                after: Duration::from_secs(15),
            }
        };
        for system in options.systems.iter().copied().filter(|s| s.has_sessions()) {
            let mut redis = RedisServer::builder().persistent().start();
            let server = ServerProcess::start(system, &redis.url())?;
            let result = outage::run(
                server.addr,
                system.is_ours(),
                options.connections,
                timeline,
                &mut redis,
            )
            .await;
            eprintln!(
                "outage {:30} 5xx {:>6}  no answer {:>6}  back on Redis after {:?}  lost {}",
                system.name(),
                result.server_errors,
                result.no_answer,
                result.recovered_after,
                result.lost_sessions
            );
            outages.push((system, result));
        }
    }

    let results = Results {
        samples,
        outages,
        connections: options.connections,
        mode: if options.quick {
            format!(
                "quick ({} round, {} s per case)",
                options.rounds, options.seconds
            )
        } else {
            format!(
                "full ({} rounds, {} s per case)",
                options.rounds, options.seconds
            )
        },
    };
    let markdown = results.markdown(&machine());
    println!("{markdown}");
    let out = options.out.or_else(|| {
        (!options.quick).then(|| concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md").to_owned())
    });
    if let Some(path) = out {
        std::fs::write(&path, markdown).map_err(|e| format!("write {path}: {e}"))?;
        eprintln!("written to {path}");
    }
    Ok(())
}

/// The machine, the date and the versions measured.
fn machine() -> String {
    let command = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let date = time::OffsetDateTime::now_utc().date();
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .unwrap_or_default();
    let versions: Vec<String> = [
        "axum",
        "actix-web",
        "tower-sessions",
        "tower-sessions-redis-store",
        "fred",
        "actix-session",
        "redis",
        "bb8",
    ]
    .iter()
    .flat_map(|name| {
        locked_versions(&lock, name)
            .into_iter()
            .map(move |v| format!("{name} {v}"))
    })
    .collect();
    format!(
        "Measured {date} on {} ({cpu}, {cores} cores), {}, {}; release build; {}.",
        command("uname", &["-sm"]),
        command("rustc", &["--version"]),
        command("redis-server", &["--version"])
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        versions.join(", ")
    )
}

fn locked_versions(lock: &str, name: &str) -> Vec<String> {
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &lock[at + needle.len()..];
            rest.split('"').next().map(str::to_owned)
        })
        .collect()
}
