//! The tables: throughput and latency per system and route, ratios against the peers and
//! the targets, the outage run, and the machine they were measured on.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::load::{Route, Sample};
use crate::outage::OutageResult;
use session_bench::system::System;

/// The `q` quantile of `values` (sorted in place), if any.
pub(crate) fn percentile(values: &mut [u32], q: f64) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((values.len() as f64 - 1.0) * q).round() as usize;
    values.get(rank).copied()
}

fn millis(micros: Option<u32>) -> String {
    micros.map_or("–".into(), |us| format!("{:.2}", f64::from(us) / 1000.0))
}

pub(crate) struct Results {
    pub(crate) samples: BTreeMap<(usize, Route), Sample>,
    pub(crate) outages: Vec<(System, OutageResult)>,
    pub(crate) connections: usize,
    pub(crate) mode: String,
}

fn index(system: System) -> usize {
    System::ALL.iter().position(|s| *s == system).unwrap_or(0)
}

impl Results {
    pub(crate) fn sample(&self, system: System, route: Route) -> Option<&Sample> {
        self.samples.get(&(index(system), route))
    }

    fn rate(&self, system: System, route: Route) -> Option<f64> {
        self.sample(system, route)
            .filter(|s| s.seconds > 0.0)
            .map(|s| s.requests as f64 / s.seconds)
    }

    /// Everything, as Markdown.
    pub(crate) fn markdown(&self, machine: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmark results\n");
        let _ = writeln!(out, "{machine}\n");
        let _ = writeln!(
            out,
            "Mode: {}; {} connections, each with its own session cookie; systems interleaved \
             (A B A B …) in every round. Redis commands per request are `INFO commandstats` \
             around each run divided by the requests, with the microseconds Redis spent in each; \
             Redis counts the commands a script runs, so one `EVALSHA` round trip of ours shows as \
             `evalsha` (its time includes theirs) plus the `exists` / `hincrby` / `hset` / \
             `expire` it runs. CPU per request is the process's user and system time \
             (`/proc/<pid>/stat`) over the measured window divided by its requests: the server's, \
             and Redis's (commands, network and all).\n",
            self.mode, self.connections
        );
        self.throughput(&mut out);
        self.targets(&mut out);
        self.misses(&mut out);
        self.outage(&mut out);
        out
    }

    fn throughput(&self, out: &mut String) {
        let _ = writeln!(out, "## Throughput and latency\n");
        for route in Route::ALL {
            if !System::ALL.iter().any(|s| self.sample(*s, route).is_some()) {
                continue;
            }
            let _ = writeln!(out, "### {}\n", route.name());
            let _ = writeln!(
                out,
                "| system | requests/s | p50 ms | p99 ms | errors | app CPU µs/request | Redis CPU µs/request | Redis commands/request (µs in Redis each) |"
            );
            let _ = writeln!(
                out,
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
            );
            for system in System::ALL {
                let Some(sample) = self.sample(system, route) else {
                    continue;
                };
                let mut latencies = sample.latencies_us.clone();
                let p50 = percentile(&mut latencies, 0.50);
                let p99 = percentile(&mut latencies, 0.99);
                let _ = writeln!(
                    out,
                    "| {system} | {:.0} | {} | {} | {} | {} | {} | {} |",
                    self.rate(system, route).unwrap_or(0.0),
                    millis(p50),
                    millis(p99),
                    sample.errors,
                    per_request(sample, sample.app_cpu),
                    per_request(sample, sample.redis_cpu),
                    commands(sample)
                );
            }
            let _ = writeln!(out);
        }
    }

    fn targets(&self, out: &mut String) {
        let _ = writeln!(out, "## Ours against the others\n");
        let _ = writeln!(
            out,
            "Requests/s of ours divided by theirs, and p99 latency of ours divided by theirs (at the \
             same load: {} connections each), measured in the same run; each of ours against the \
             peer on its own framework, in the peer's default and its rolling-expiry \
             configuration, and against the same app without a metrics recorder. Targets are \
             printed, not asserted.\n",
            self.connections
        );
        let _ = writeln!(
            out,
            "| route | ours | against | requests/s ratio | target | met | p99 ratio | met |"
        );
        let _ = writeln!(
            out,
            "| --- | --- | --- | ---: | ---: | :---: | ---: | :---: |"
        );
        for route in Route::ALL {
            for ours in [System::OursAxum, System::OursActix] {
                for other in comparisons(ours, route) {
                    let (Some(a), Some(b)) = (self.rate(ours, route), self.rate(other, route))
                    else {
                        continue;
                    };
                    let ratio = a / b;
                    let target = target(ours, route, other);
                    let met = target.map_or("", |t| verdict(ratio >= t));
                    let p99 = match (self.p99(ours, route), self.p99(other, route)) {
                        (Some(a), Some(b)) if b > 0 => Some(f64::from(a) / f64::from(b)),
                        _ => None,
                    };
                    let p99_met = if ours.peers().is_some_and(|(peer, _)| peer == other) {
                        p99.map_or("", |p| verdict(p <= 1.0))
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {ours} | {other} | {ratio:.2} | {} | {met} | {} | {p99_met} |",
                        route.name(),
                        target.map_or("–".into(), |t| format!("≥ {t:.2}")),
                        p99.map_or("–".into(), |p| format!("{p:.2}")),
                    );
                }
            }
        }
        let _ = writeln!(out);
    }

    /// For every missed throughput target against a peer: where the request's time goes, ours
    /// beside theirs (CPU of the server and of Redis, and the Redis commands).
    fn misses(&self, out: &mut String) {
        let mut lines = Vec::new();
        for route in Route::ALL {
            for ours in [System::OursAxum, System::OursActix] {
                for other in comparisons(ours, route) {
                    let (Some(target), Some(a), Some(b)) = (
                        target(ours, route, other),
                        self.rate(ours, route),
                        self.rate(other, route),
                    ) else {
                        continue;
                    };
                    let (Some(mine), Some(theirs)) =
                        (self.sample(ours, route), self.sample(other, route))
                    else {
                        continue;
                    };
                    if a / b >= target {
                        continue;
                    }
                    lines.push(format!(
                        "- `{}`, {ours} against {other}: {:.2} × (target {target:.2}). Per \
                         request, server CPU {} µs against {}, Redis CPU {} µs against {}; Redis \
                         commands {} against {}.",
                        route.name(),
                        a / b,
                        per_request(mine, mine.app_cpu),
                        per_request(theirs, theirs.app_cpu),
                        per_request(mine, mine.redis_cpu),
                        per_request(theirs, theirs.redis_cpu),
                        commands(mine),
                        commands(theirs),
                    ));
                }
            }
        }
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Where the time goes, per miss\n");
        let _ = writeln!(
            out,
            "Each missed target, with the costs this run measured for both sides. How the \
             server's CPU splits (Redis client, engine, cookie, framework, kernel) is profiled in \
             [PROFILE.md](PROFILE.md).\n"
        );
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
    }

    fn p99(&self, system: System, route: Route) -> Option<u32> {
        let mut latencies = self.sample(system, route)?.latencies_us.clone();
        percentile(&mut latencies, 0.99)
    }

    fn outage(&self, out: &mut String) {
        if self.outages.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Redis outage\n");
        let _ = writeln!(
            out,
            "{} connections alternating `GET` and `POST /counter`; Redis (persistent) killed, then \
             restarted with its data. \"No answer\": refused connections, or requests still \
             waiting when the run ended, after more than a second. \"Back on Redis\": from Redis's return to the first \
             answer served from it (ours say so in `source`; for the others, the first 2xx). \
             \"Sessions lost\": connections whose counter went backwards.\n",
            self.connections
        );
        let _ = writeln!(
            out,
            "| system | requests | 5xx | no answer | p99 healthy ms | p99 during outage ms | back on Redis after | sessions lost |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (system, r) in &self.outages {
            let _ = writeln!(
                out,
                "| {system} | {} | {} | {} | {} | {} | {} | {} / {} |",
                r.requests,
                r.server_errors,
                r.no_answer,
                millis(r.p99_healthy_us),
                millis(r.p99_outage_us),
                r.recovered_after
                    .map_or("not within the run".into(), |s| format!("{s:.1} s")),
                r.lost_sessions,
                r.sessions
            );
        }
        let _ = writeln!(out);
    }
}

/// What each of ours is measured against on `route`: plain axum on `/noop`, the peer on the same
/// framework in its two configurations, and the same app without a metrics recorder.
fn comparisons(ours: System, route: Route) -> Vec<System> {
    let mut against = Vec::new();
    if route == Route::Noop {
        against.push(System::Plain);
    }
    if let Some((peer, rolling)) = ours.peers() {
        against.extend([peer, rolling]);
    }
    against.push(match ours {
        System::OursActix => System::OursActixNoMetrics,
        _ => System::OursAxumNoMetrics,
    });
    against
}

/// The targets: `/noop` ≥ 0.97 × plain axum; on the same framework, every session route
/// ≥ 1.0 × the peer's default and reads ≥ 1.1 ×; reads ≥ 1.3 × the peer's rolling-expiry
/// configuration (ours touches once per interval); the Prometheus recorder costs ≤ 3 %.
fn target(ours: System, route: Route, other: System) -> Option<f64> {
    let (peer, rolling) = ours.peers()?;
    match route {
        Route::Noop if other == System::Plain => Some(0.97),
        _ if other.is_ours() => Some(0.97),
        Route::Noop => None,
        Route::Read if other == rolling => Some(1.3),
        Route::Read if other == peer => Some(1.1),
        _ if other == peer => Some(1.0),
        _ => None,
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

fn commands(sample: &Sample) -> String {
    if sample.requests == 0 {
        return "–".into();
    }
    let total: u64 = sample.commands.values().sum();
    if total == 0 {
        return "0".into();
    }
    let per = |calls: u64| calls as f64 / sample.requests as f64;
    let detail: Vec<String> = sample
        .commands
        .iter()
        .map(|(command, calls)| {
            let usec = sample.command_usec.get(command).copied().unwrap_or(0);
            format!(
                "{command} {:.2} ({:.1} µs)",
                per(*calls),
                usec as f64 / sample.requests as f64
            )
        })
        .collect();
    format!("{:.2} ({})", per(total), detail.join(", "))
}

/// `cpu_seconds` over the sample's requests, in microseconds.
fn per_request(sample: &Sample, cpu_seconds: f64) -> String {
    if sample.requests == 0 {
        return "–".into();
    }
    format!("{:.1}", cpu_seconds * 1e6 / sample.requests as f64)
}
