//! [`RedisManagerBuilder`]: the settings of the Redis client manager, with defaults
//! for a request path.
//!
//! # How we chose the defaults
//!
//! A session lookup sits on every request, so a Redis that is dead or stalled must cost a request
//! milliseconds, not seconds (bb8 alone would wait 30 s for a connection). The numbers below
//! bound the worst case for one operation to [`retry_budget`](RedisManagerBuilder::retry_budget)
//! (600 ms); after [`failure_threshold`](RedisManagerBuilder::failure_threshold) failed operations
//! the breaker opens and requests stop waiting at all. A refused connection (Redis killed) fails
//! at once: only stalls (Redis paused, network black hole) reach the timeouts.

use std::time::Duration;

use bb8_redis::bb8;
use bb8_redis::redis::{self, AsyncConnectionConfig, IntoConnectionInfo};

use super::backoff::Backoff;
use super::breaker::{Breaker, BreakerConfig};
use super::connection::{Connector, PoolSignals, Target};
use super::manager::{RedisManager, Settings};
use super::status::Status;
use crate::ConfigError;

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The URL used when none is given and `REDIS_URL` is unset or empty.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Builds a [`RedisManager`]; start from [`RedisManager::builder`].
///
/// ```no_run
/// # async fn run() -> Result<(), resilient_session::ConfigError> {
/// use std::time::Duration;
/// use resilient_session::RedisManager;
///
/// let manager = RedisManager::builder()
///     .url("redis://127.0.0.1:6379")
///     .command_timeout(Duration::from_millis(100))
///     .max_retries(1)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisManagerBuilder {
    url: String,
    /// Where the URL came from, for error messages.
    url_setting: &'static str,
    /// A manager that never contacts Redis, for cookie-only engines.
    not_used: bool,
    pool_size: u32,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_retries: u32,
    retry_interval: Duration,
    retry_budget: Duration,
    failure_threshold: u32,
    breaker_backoff: Duration,
    breaker_max_backoff: Duration,
    tls_root_certificate: Option<Vec<u8>>,
    tls_client_certificate: Option<(Vec<u8>, Vec<u8>)>,
    accept_invalid_certificates: bool,
    sentinel: Option<(Vec<String>, String)>,
    cluster: Option<Vec<String>>,
}

impl Default for RedisManagerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisManagerBuilder {
    /// All defaults; the URL is [`DEFAULT_REDIS_URL`].
    pub fn new() -> Self {
        Self {
            url: DEFAULT_REDIS_URL.to_owned(),
            url_setting: "the URL of RedisManagerBuilder::url",
            not_used: false,
            pool_size: 16,
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(250),
            max_retries: 2,
            retry_interval: Duration::from_millis(25),
            retry_budget: Duration::from_millis(600),
            failure_threshold: 5,
            breaker_backoff: Duration::from_millis(500),
            breaker_max_backoff: Duration::from_secs(2),
            tls_root_certificate: None,
            tls_client_certificate: None,
            accept_invalid_certificates: false,
            sentinel: None,
            cluster: None,
        }
    }

    /// All defaults, with the URL in the environment variable `REDIS_URL` (read now; unset or
    /// empty: [`DEFAULT_REDIS_URL`]). An error about the URL names the variable.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), resilient_session::ConfigError> {
    /// let manager = resilient_session::RedisManagerBuilder::from_env().pool_size(32).build()?;
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Self {
        let mut builder = Self::new();
        if let Some(url) = std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
        {
            builder.url = url;
        }
        builder.url_setting = "REDIS_URL";
        builder
    }

    /// The Redis URL: `redis://[user:password@]host[:port][/db]`, or `redis+unix:///path`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self.url_setting = "the URL of RedisManagerBuilder::url";
        self
    }

    /// Connect to the primary that Sentinel names for `master_name`, asking the Sentinels at
    /// `sentinel_urls` (`redis://host:26379`) for every new connection: after a failover the
    /// pool's connections are replaced and follow the new primary, without a restart. The
    /// credentials and database of [`url`](Self::url) are used for the primary; its host is
    /// not.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), resilient_session::ConfigError> {
    /// let manager = resilient_session::RedisManager::builder()
    ///     .sentinel(["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"], "sessions")
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn sentinel<I, S>(mut self, sentinel_urls: I, master_name: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls = sentinel_urls.into_iter().map(Into::into).collect();
        self.sentinel = Some((urls, master_name.into()));
        self
    }

    /// Connect to a Redis Cluster through its seed nodes (`redis://host:port` or
    /// `rediss://host:port`, any few of its nodes; the rest are found from them). Commands go to
    /// the primary of their key's slot; `MOVED`/`ASK` redirects are followed and the slot map
    /// re-read after a failover or a resharding, without a restart. Session keys are hash-tagged
    /// so that everything one session operation touches lives in one slot.
    ///
    /// The credentials of the seed URLs are used for every node. Do not combine with
    /// [`sentinel`](Self::sentinel); [`url`](Self::url) is not used.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), resilient_session::ConfigError> {
    /// let manager = resilient_session::RedisManager::builder()
    ///     .cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000", "redis://10.0.0.3:7000"])
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn cluster<I, S>(mut self, seed_urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cluster = Some(seed_urls.into_iter().map(Into::into).collect());
        self
    }

    /// Most connections the pool opens. Default 16. Connections are multiplexed and shared: a
    /// command borrows one only long enough to clone its handle, so a few connections carry any
    /// number of concurrent commands; more open when checkouts overlap.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// Longest wait for a connection, including opening a new one (TCP, TLS, `AUTH`). Default
    /// 500 ms: room for a TLS handshake to a managed Redis, not for a dead host.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest wait for one command's (or pipeline's) answer. Default 250 ms: a session command
    /// takes under a millisecond; one that takes 250 ms means Redis is stalled.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Retries after a connection error or timeout (never after an answer such as `WRONGPASS`,
    /// `OOM` or `WRONGTYPE`). Default 2: enough to ride over a dropped connection.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Base of the exponential backoff between retries (full jitter: retry `n` waits a random
    /// time up to `interval × 2ⁿ`). Default 25 ms.
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// Longest time one operation may take, every attempt and wait included. A retry that would
    /// not fit is not made. Default 600 ms.
    pub fn retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = budget;
        self
    }

    /// Consecutive failed operations that open the circuit breaker. Default 5: a lone timeout
    /// does not send everyone to the fallback, a dead Redis is found within a handful of requests.
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// Wait before the first probe once the breaker opened; it doubles (with jitter) after each
    /// failed probe, up to [`breaker_max_backoff`](Self::breaker_max_backoff). Default 500 ms.
    pub fn breaker_backoff(mut self, backoff: Duration) -> Self {
        self.breaker_backoff = backoff;
        self
    }

    /// Cap of the breaker's back-off: the longest a recovered Redis waits to be used again.
    /// Default 2 s: sessions are back in Redis within seconds of its return, at the cost of one
    /// connection attempt every two seconds during an outage.
    pub fn breaker_max_backoff(mut self, max: Duration) -> Self {
        self.breaker_max_backoff = max;
        self
    }

    /// Trust only this CA (PEM) for `rediss://` connections, instead of the system's roots.
    /// Needs the `tls` feature.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificate = Some(ca_pem.into());
        self
    }

    /// Present this client certificate and key (PEM) on `rediss://` connections (mutual TLS).
    /// Needs the `tls` feature.
    #[cfg(feature = "tls")]
    pub fn tls_client_certificate(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_client_certificate = Some((certificate_pem.into(), key_pem.into()));
        self
    }

    /// **Development only.** Allow a `rediss://…#insecure` URL, which skips the check of the
    /// server's certificate and host name. Without this, such a URL is refused at start-up, so
    /// that certificate checks cannot be turned off by accident (a copied URL, a stray
    /// fragment). Needs the `tls` feature.
    #[cfg(feature = "tls")]
    pub fn danger_accept_invalid_certificates(mut self, accept: bool) -> Self {
        self.accept_invalid_certificates = accept;
        self
    }

    /// A manager that never contacts Redis: every operation fails with
    /// [`Error::NotUsed`](crate::Error::NotUsed) at once, without a connection or a reconnect
    /// task.
    pub(crate) fn not_used() -> Result<RedisManager> {
        Self {
            not_used: true,
            ..Self::new()
        }
        .build()
    }

    /// Build the manager. It does not wait for Redis: the pool connects in the background, so
    /// the application starts even while Redis is down.
    ///
    /// Must be called within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for a URL that does not parse (naming where it came from),
    /// [`ConfigError::Invalid`] for a zero size or timeout, Sentinel with Cluster, or a
    /// `rediss://` URL without the `tls` feature, and [`ConfigError::NoRuntime`] outside a Tokio
    /// runtime.
    pub fn build(self) -> Result<RedisManager> {
        self.validate()?;
        let urls = match &self.cluster {
            Some(seeds) => seeds.iter().map(String::as_str).collect(),
            None => vec![self.url.as_str()],
        };
        if urls.iter().any(|url| url.starts_with("rediss:")) && !cfg!(feature = "tls") {
            return Err(ConfigError::Invalid(
                "rediss:// URLs need the `tls` feature of resilient-session".into(),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        // The first URL's password is the one to keep out of health reports.
        let first = urls.first().ok_or_else(|| {
            ConfigError::Invalid("Redis Cluster mode needs at least one seed URL".into())
        })?;
        let setting = match self.cluster {
            Some(_) => CLUSTER_SETTING,
            None => self.url_setting,
        };
        let info = first
            .into_connection_info()
            .map_err(|source| invalid_url(setting, source))?;
        let secret = info.redis_settings().password().map(str::to_owned);
        let target = match (&self.sentinel, &self.cluster) {
            (None, None) => Target::Node(self.client(info)?),
            (Some((urls, master_name)), None) => Target::Sentinel(tokio::sync::Mutex::new(
                sentinel_client(urls, master_name.clone(), &info)?,
            )),
            (None, Some(seeds)) => Target::Cluster(self.cluster_client(seeds)?),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "choose either Sentinel or Redis Cluster, not both".into(),
                ));
            }
        };
        let cluster = matches!(target, Target::Cluster(_));
        // Every command runs under the manager's own timeout (command timeout, retry budget);
        // the client's would only add a second timer per command.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        let signals = PoolSignals::new();
        let pool = bb8::Pool::builder()
            .max_size(self.pool_size)
            // A PING per checkout is a round trip per request: broken connections are found by
            // their errors instead (see `connection.rs`).
            .test_on_check_out(false)
            .connection_timeout(self.connect_timeout)
            // Our retries decide; bb8's would keep a caller waiting on a refused connection.
            .retry_connection(false)
            .build_unchecked(Connector::new(
                target,
                config,
                self.connect_timeout,
                signals.clone(),
            ));
        let breaker = Breaker::new(BreakerConfig {
            failure_threshold: self.failure_threshold,
            open_backoff: Backoff {
                base: self.breaker_backoff,
                max: self.breaker_max_backoff,
            },
        });
        let settings = Settings {
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            max_retries: self.max_retries,
            retry: Backoff {
                base: self.retry_interval,
                max: self.retry_budget,
            },
            retry_budget: self.retry_budget,
            reconnect: Backoff {
                base: self.breaker_backoff,
                max: self.breaker_max_backoff,
            },
        };
        Ok(RedisManager::start(
            pool,
            self.pool_size,
            cluster,
            signals,
            breaker,
            Status::new(secret),
            settings,
            &runtime,
            self.not_used,
        ))
    }

    /// The client for `info`: plain, or TLS with the configured CA and client certificate.
    fn client(&self, info: redis::ConnectionInfo) -> Result<redis::Client> {
        self.check_tls(&info)?;
        #[cfg(feature = "tls")]
        if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
            && let Some(certificates) = self.tls_certificates()
        {
            return redis::Client::build_with_tls(info, certificates).map_err(|source| {
                ConfigError::Tls {
                    source: crate::error::RedisClientError(source),
                }
            });
        }
        redis::Client::open(info).map_err(|source| invalid_url(self.url_setting, source))
    }

    /// Refuses a URL that turns certificate checks off, unless that was asked for.
    fn check_tls(&self, info: &redis::ConnectionInfo) -> Result<()> {
        #[cfg(feature = "tls")]
        self.check_certificates()?;
        #[cfg(feature = "tls")]
        if let redis::ConnectionAddr::TcpTls { insecure, .. } = info.addr() {
            if *insecure && !self.accept_invalid_certificates {
                return Err(ConfigError::Invalid(
                    "the Redis URL turns certificate checks off (#insecure); that is refused \
                     unless RedisManagerBuilder::danger_accept_invalid_certificates(true) says \
                     so, for development"
                        .into(),
                ));
            }
            // One process-wide crypto provider for rustls; another one already set wins.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        #[cfg(not(feature = "tls"))]
        let _ = info;
        Ok(())
    }

    /// Refuses certificates and keys that are not PEM at start-up: the client would only find
    /// out at every connection attempt.
    #[cfg(feature = "tls")]
    fn check_certificates(&self) -> Result<()> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let certificates = |pem: &[u8]| {
            let parsed: Vec<_> = CertificateDer::pem_slice_iter(pem).collect();
            !parsed.is_empty() && parsed.iter().all(std::result::Result::is_ok)
        };
        let refused = |what: &str| {
            Err(ConfigError::Invalid(format!(
                "{what} is not PEM (expected -----BEGIN ...----- blocks)"
            )))
        };
        if let Some(ca) = &self.tls_root_certificate
            && !certificates(ca)
        {
            return refused("the CA certificate of RedisManagerBuilder::tls_root_certificate");
        }
        if let Some((cert, key)) = &self.tls_client_certificate {
            if !certificates(cert) {
                return refused(
                    "the client certificate of RedisManagerBuilder::tls_client_certificate",
                );
            }
            if PrivateKeyDer::from_pem_slice(key).is_err() {
                return refused("the client key of RedisManagerBuilder::tls_client_certificate");
            }
        }
        Ok(())
    }

    /// The private CA and client certificate, when any is configured.
    #[cfg(feature = "tls")]
    fn tls_certificates(&self) -> Option<redis::TlsCertificates> {
        if self.tls_root_certificate.is_none() && self.tls_client_certificate.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self.tls_client_certificate.clone().map(|(cert, key)| {
                redis::ClientTlsConfig {
                    client_cert: cert,
                    client_key: key,
                }
            }),
            root_cert: self.tls_root_certificate.clone(),
        })
    }

    /// The cluster client for `seeds`: our timeouts, TLS settings and few retries of its own
    /// (ours decide; its own would keep a caller waiting through a failover).
    fn cluster_client(&self, seeds: &[String]) -> Result<redis::cluster::ClusterClient> {
        let mut infos = Vec::with_capacity(seeds.len());
        for seed in seeds {
            let info = seed
                .as_str()
                .into_connection_info()
                .map_err(|source| invalid_url(CLUSTER_SETTING, source))?;
            self.check_tls(&info)?;
            infos.push(info);
        }
        #[allow(unused_mut)]
        let mut builder = redis::cluster::ClusterClient::builder(infos)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.command_timeout)
            .retries(1)
            .min_retry_wait(10)
            .max_retry_wait(100);
        #[cfg(feature = "tls")]
        if let Some(certificates) = self.tls_certificates() {
            builder = builder.certs(certificates);
        }
        builder
            .build()
            .map_err(|source| invalid_url(CLUSTER_SETTING, source))
    }

    fn validate(&self) -> Result<()> {
        let durations = [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("retry_budget", self.retry_budget),
            ("breaker_backoff", self.breaker_backoff),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::Invalid(format!(
                "{name} must be greater than zero"
            )));
        }
        if self.pool_size == 0 {
            return Err(ConfigError::Invalid("pool_size must be at least 1".into()));
        }
        if self.failure_threshold == 0 {
            return Err(ConfigError::Invalid(
                "failure_threshold must be at least 1".into(),
            ));
        }
        if self.breaker_max_backoff < self.breaker_backoff {
            return Err(ConfigError::Invalid(
                "breaker_max_backoff must not be shorter than breaker_backoff".into(),
            ));
        }
        Ok(())
    }
}

const CLUSTER_SETTING: &str = "a seed URL of RedisManagerBuilder::cluster";

fn invalid_url(setting: &'static str, source: redis::RedisError) -> ConfigError {
    ConfigError::InvalidUrl {
        setting,
        source: crate::error::RedisClientError(source),
    }
}

/// A Sentinel client for `master_name`, connecting to the primary with the settings of `node`.
fn sentinel_client(
    urls: &[String],
    master_name: String,
    node: &redis::ConnectionInfo,
) -> Result<redis::sentinel::SentinelClient> {
    if urls.is_empty() {
        return Err(ConfigError::Invalid(
            "Sentinel mode needs at least one Sentinel URL".into(),
        ));
    }
    let node = redis::sentinel::SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(node.redis_settings().clone());
    redis::sentinel::SentinelClient::build(
        urls.to_vec(),
        master_name,
        Some(node),
        redis::sentinel::SentinelServerType::Master,
    )
    .map_err(|source| invalid_url("a Sentinel URL of RedisManagerBuilder::sentinel", source))
}

impl std::fmt::Debug for RedisManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: it is left out.
        f.debug_struct("RedisManagerBuilder")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_interval", &self.retry_interval)
            .field("retry_budget", &self.retry_budget)
            .field("failure_threshold", &self.failure_threshold)
            .field("breaker_backoff", &self.breaker_backoff)
            .field("breaker_max_backoff", &self.breaker_max_backoff)
            .field("tls_root_certificate", &self.tls_root_certificate.is_some())
            .field(
                "tls_client_certificate",
                &self.tls_client_certificate.is_some(),
            )
            .field(
                "accept_invalid_certificates",
                &self.accept_invalid_certificates,
            )
            .field(
                "sentinel_master",
                &self.sentinel.as_ref().map(|(_, name)| name),
            )
            .field("cluster_seeds", &self.cluster.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_zero_sizes_and_timeouts() {
        let err = RedisManagerBuilder::new()
            .command_timeout(Duration::ZERO)
            .build()
            .expect_err("zero timeout refused");
        assert!(err.to_string().contains("command_timeout"), "{err}");
        let err = RedisManagerBuilder::new()
            .pool_size(0)
            .build()
            .expect_err("empty pool refused");
        assert!(matches!(err, ConfigError::Invalid(_)));
    }

    #[tokio::test]
    async fn invalid_url_is_refused_without_echoing_it() {
        let err = RedisManagerBuilder::new()
            .url("http://user:topsecret@example.com:notaport")
            .build()
            .expect_err("invalid URL refused");
        assert!(matches!(err, ConfigError::InvalidUrl { .. }));
        let text = format!("{err} {err:?}");
        assert!(!text.contains("topsecret"), "{text}");
    }

    #[tokio::test]
    async fn cluster_needs_seeds_and_excludes_sentinel() {
        let no_seeds = RedisManagerBuilder::new()
            .cluster(Vec::<String>::new())
            .build();
        assert!(matches!(no_seeds, Err(ConfigError::Invalid(_))));
        let both = RedisManagerBuilder::new()
            .cluster(["redis://127.0.0.1:7000"])
            .sentinel(["redis://127.0.0.1:26379"], "sessions")
            .build();
        assert!(matches!(both, Err(ConfigError::Invalid(_))));
        let bad_seed = RedisManagerBuilder::new()
            .cluster(["redis://127.0.0.1:7000", "http://x:secret@nowhere:port"])
            .build()
            .expect_err("a bad seed is refused");
        assert!(matches!(bad_seed, ConfigError::InvalidUrl { .. }));
        assert!(!format!("{bad_seed:?}").contains("secret"));
        let manager = RedisManagerBuilder::new()
            .cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
            .build()
            .expect("builds without reaching the cluster");
        assert!(manager.is_cluster());
    }

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn certificate_checks_cannot_be_turned_off_by_accident() {
        let cluster = RedisManagerBuilder::new()
            .cluster(["rediss://127.0.0.1:7000/#insecure"])
            .build();
        assert!(
            matches!(cluster, Err(ConfigError::Invalid(_))),
            "cluster seeds too"
        );
        let err = RedisManagerBuilder::new()
            .url("rediss://127.0.0.1:6380/#insecure")
            .build()
            .expect_err("refused");
        assert!(err.to_string().contains("#insecure"), "{err}");
        RedisManagerBuilder::new()
            .url("rediss://127.0.0.1:6380/#insecure")
            .danger_accept_invalid_certificates(true)
            .build()
            .expect("allowed when asked");
    }

    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn tls_urls_say_which_feature_they_need() {
        let err = RedisManagerBuilder::new()
            .url("rediss://127.0.0.1:6380/")
            .build()
            .expect_err("refused");
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn certificates_that_are_not_pem_are_refused_at_start_up() {
        let err = RedisManagerBuilder::new()
            .url("rediss://127.0.0.1:6380/")
            .tls_root_certificate(b"not a certificate".to_vec())
            .build()
            .expect_err("refused");
        assert!(matches!(err, ConfigError::Invalid(_)), "{err:?}");
        assert!(
            err.to_string().contains("tls_root_certificate is not PEM"),
            "{err}"
        );
    }

    #[test]
    fn needs_a_runtime() {
        let err = RedisManagerBuilder::new().build().expect_err("no runtime");
        assert!(matches!(err, ConfigError::NoRuntime));
    }

    #[test]
    fn debug_leaves_out_the_url() {
        let builder = RedisManagerBuilder::new().url("redis://:topsecret@127.0.0.1/");
        assert!(!format!("{builder:?}").contains("topsecret"));
    }
}
