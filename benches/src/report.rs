//! The tables: throughput and latency per system and route, ratios against the competitors and
//! the targets, the outage run, and the machine they were measured on.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::load::{Route, Sample};
use crate::outage::OutageResult;
use crate::system::System;

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
             around each run divided by the requests; Redis counts the commands a script runs, so \
             one `EVAL` round trip of ours shows as `eval` plus the `exists` / `hset` / `hdel` / \
             `expire` it runs.\n",
            self.mode, self.connections
        );
        self.throughput(&mut out);
        self.targets(&mut out);
        self.outage(&mut out);
        out
    }

    fn throughput(&self, out: &mut String) {
        let _ = writeln!(out, "## Throughput and latency\n");
        for route in Route::ALL {
            let _ = writeln!(out, "### {}\n", route.name());
            let _ = writeln!(
                out,
                "| system | requests/s | p50 ms | p99 ms | errors | Redis commands/request |"
            );
            let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | --- |");
            for system in System::ALL {
                let Some(sample) = self.sample(system, route) else {
                    continue;
                };
                let mut latencies = sample.latencies_us.clone();
                let p50 = percentile(&mut latencies, 0.50);
                let p99 = percentile(&mut latencies, 0.99);
                let _ = writeln!(
                    out,
                    "| {system} | {:.0} | {} | {} | {} | {} |",
                    self.rate(system, route).unwrap_or(0.0),
                    millis(p50),
                    millis(p99),
                    sample.errors,
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
            "Requests/s of ours divided by theirs, measured in the same run. Targets are printed, \
             not asserted.\n"
        );
        let _ = writeln!(out, "| route | ours | against | ratio | target | met |");
        let _ = writeln!(out, "| --- | --- | --- | ---: | ---: | :---: |");
        let competitors = [
            System::TowerSessions,
            System::TowerSessionsAlwaysSave,
            System::ActixSession,
            System::ActixSessionRolling,
        ];
        for route in Route::ALL {
            for ours in [System::OursAxum, System::OursActix] {
                let against: Vec<System> = if route == Route::Noop {
                    std::iter::once(System::Plain).chain(competitors).collect()
                } else {
                    competitors.to_vec()
                };
                for other in against {
                    let (Some(a), Some(b)) = (self.rate(ours, route), self.rate(other, route))
                    else {
                        continue;
                    };
                    let ratio = a / b;
                    let target = target(route, other);
                    let met = target.map_or("", |t| if ratio >= t { "yes" } else { "**no**" });
                    let _ = writeln!(
                        out,
                        "| {} | {ours} | {other} | {ratio:.2} | {} | {met} |",
                        route.name(),
                        target.map_or("–".into(), |t| format!("≥ {t:.2}"))
                    );
                }
            }
        }
        let _ = writeln!(out);
        if let Some(best) = self.best_write_competitor() {
            let _ = writeln!(
                out,
                "Best competitor on `POST /counter`: {best} (the `POST /counter` target is \
                 against it).\n"
            );
        }
    }

    fn best_write_competitor(&self) -> Option<System> {
        [
            System::TowerSessions,
            System::TowerSessionsAlwaysSave,
            System::ActixSession,
            System::ActixSessionRolling,
        ]
        .into_iter()
        .filter_map(|s| self.rate(s, Route::Write).map(|r| (s, r)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(s, _)| s)
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

/// The targets: `/noop` ≥ 0.95 × plain axum; `GET /counter` ≥ 1.0 × the defaults and
/// ≥ 1.3 × the rolling-expiry configurations; `POST /counter` ≥ 1.0 × each.
fn target(route: Route, other: System) -> Option<f64> {
    match (route, other) {
        (Route::Noop, System::Plain) => Some(0.95),
        (Route::Read, System::TowerSessions | System::ActixSession) => Some(1.0),
        (Route::Read, System::TowerSessionsAlwaysSave | System::ActixSessionRolling) => Some(1.3),
        (Route::Write, _) => Some(1.0),
        _ => None,
    }
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
        .map(|(command, calls)| format!("{command} {:.2}", per(*calls)))
        .collect();
    format!("{:.2} ({})", per(total), detail.join(", "))
}
