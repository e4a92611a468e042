//! The example apps' metrics: one Prometheus recorder per process, whose page they serve at
//! `GET /metrics`.
//!
//! The library records through the `metrics` facade and forces no exporter on anyone
//! (`resilient_session::metrics` lists the names); an app installs the recorder it wants, once.
//! These apps use `metrics-exporter-prometheus` without its default features (an HTTP listener
//! and a push-gateway client they do not need: the page is a route of their own router).
//!
//! ```
//! use example_common::metrics::{CONTENT_TYPE, prometheus};
//!
//! let handle = prometheus()?;
//! // Any number of calls, from every app built in this process: the same recorder.
//! assert!(prometheus().is_ok());
//! println!("Content-Type: {CONTENT_TYPE}\n\n{}", handle.render());
//! # Ok::<_, example_common::metrics::MetricsUnavailable>(())
//! ```

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use resilient_session::metrics::REDIS_COMMAND_DURATION;

/// The `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Upper bounds of the Redis latency histogram's buckets, in seconds: from a loopback round trip
/// (well under a millisecond) to a retry budget running out (seconds).
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes: the recorder
/// keeps them until then.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// There is no Prometheus page in this process: another metrics recorder was installed first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsUnavailable(String);

impl fmt::Display for MetricsUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metrics unavailable: {}", self.0)
    }
}

impl std::error::Error for MetricsUnavailable {}

/// The process's Prometheus recorder, installed as the global `metrics` recorder on the first
/// call; later calls return the same handle (or the same error). Also gives the library's
/// metrics their descriptions (`# HELP`) and starts a thread that does the recorder's upkeep.
///
/// Fails, with the reason, when another recorder was installed in this process first: that one
/// receives the metrics then, and a page of this one would always be empty.
///
/// ```
/// let page = example_common::metrics::prometheus()?.render();
/// # let _ = page;
/// # Ok::<_, example_common::metrics::MetricsUnavailable>(())
/// ```
pub fn prometheus() -> Result<PrometheusHandle, MetricsUnavailable> {
    static HANDLE: OnceLock<Result<PrometheusHandle, MetricsUnavailable>> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> Result<PrometheusHandle, MetricsUnavailable> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(REDIS_COMMAND_DURATION.to_owned()),
            &LATENCY_BUCKETS,
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|err| {
            tracing::warn!(error = %err, "no Prometheus metrics: GET /metrics will answer 503");
            MetricsUnavailable(err.to_string())
        })?;
    resilient_session::metrics::describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(err) = spawned {
        // Scrapes still fold the samples in; only an unscraped process keeps them longer.
        tracing::warn!(error = %err, "no metrics upkeep thread");
    }
    Ok(handle)
}
