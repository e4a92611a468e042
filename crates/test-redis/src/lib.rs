//! Test support: a private `redis-server` per test.
//!
//! Each [`RedisServer`] runs its own `redis-server` process on a free loopback port, in its own
//! temporary directory, so a test can kill it, pause it (`SIGSTOP`), resume it and restart it on the
//! same port without disturbing any other test or the machine's own Redis.
//!
//! ```no_run
//! let mut server = test_redis::RedisServer::start();
//! let url = server.url(); // redis://127.0.0.1:<port>/
//! server.kill();
//! server.restart();
//! ```
//!
//! Everything here panics with a message on failure: it is meant for tests only.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod proxy;

/// The Redis client these helpers speak, for tests that send their own commands.
pub use bb8_redis::redis;
pub use cluster::RedisCluster;
pub use proxy::FaultProxy;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long a started server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for a [`RedisServer`]; see [`RedisServer::builder`].
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct Builder {
    password: Option<String>,
    persistent: bool,
    extra_args: Vec<String>,
    tls: Option<Tls>,
    sentinel: Option<(u16, String)>,
    cluster: bool,
}

#[derive(Debug, Clone)]
struct Tls {
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    require_client_certificate: bool,
}

impl Tls {
    /// `redis-cli` options to reach a node's TLS port: the CA, and the client certificate when
    /// the nodes require one.
    fn redis_cli_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = vec!["--tls".into(), "--cacert".into(), self.ca.clone().into()];
        if self.require_client_certificate {
            args.extend([
                "--cert".into(),
                self.client_cert.clone().into(),
                "--key".into(),
                self.client_key.clone().into(),
            ]);
        }
        args
    }
}

impl Builder {
    /// Require this password (`requirepass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Keep data across [`RedisServer::kill`] + [`RedisServer::restart`] (append-only file,
    /// `fsync` on every write). Without it a restarted server starts empty.
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// Also listen with TLS (on a port of its own, see [`RedisServer::tls_url`]), with the
    /// server certificate of `certificates`; with `require_client_certificate`, clients must
    /// present one signed by its CA. The plain port stays open for the test's own commands.
    /// A [`cluster`](Self::cluster) node also speaks TLS on the cluster bus and for
    /// replication (`tls-cluster`, `tls-replication`), and tells TLS clients its TLS port.
    pub fn tls(
        mut self,
        certificates: &TestCertificates,
        require_client_certificate: bool,
    ) -> Self {
        self.tls = Some(Tls {
            // Chosen by `start`, one per server.
            port: 0,
            cert: certificates.path("server.crt"),
            key: certificates.path("server.key"),
            ca: certificates.path("ca.crt"),
            client_cert: certificates.path("client.crt"),
            client_key: certificates.path("client.key"),
            require_client_certificate,
        });
        self
    }

    /// Run a Sentinel (not a Redis) that monitors the primary on `primary_port` as
    /// `master_name`, with a quorum of one, declaring it down after one second.
    pub fn sentinel(mut self, primary_port: u16, master_name: impl Into<String>) -> Self {
        self.sentinel = Some((primary_port, master_name.into()));
        self
    }

    /// Replicate the primary on `primary_port` (`--replicaof`).
    pub fn replica_of(self, primary_port: u16) -> Self {
        self.arg("--replicaof")
            .arg("127.0.0.1")
            .arg(primary_port.to_string())
    }

    /// Run as a Redis Cluster node (`cluster-enabled yes`, its own `nodes.conf` in its
    /// directory, a node timeout of one second, `masterauth` = the password if one is set) on a
    /// port whose cluster bus port (port + 10000) is free too; with [`tls`](Self::tls), the bus
    /// port is the TLS port + 10000. The node starts alone: see
    /// [`RedisCluster`] for a whole cluster. It keeps its cluster identity across
    /// [`RedisServer::restart`], not across [`RedisServer::restart_empty`].
    pub fn cluster(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// Pass one more `--name value` style argument to `redis-server`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Start the server; panics with a message if it cannot.
    pub fn start(self) -> RedisServer {
        let dir = tempfile::tempdir().expect("create a temporary directory for redis-server");
        let mut last_failure = String::new();
        // A free port found by binding :0 can be taken by someone else before redis-server binds
        // it: try a few ports before giving up.
        for _ in 0..5 {
            let mut options = self.clone();
            // Redis derives the cluster bus port from the TLS port when the bus speaks TLS.
            let (plain_port, tls_port) = match (self.cluster, self.tls.is_some()) {
                (true, true) => (free_port(), free_cluster_port()),
                (true, false) => (free_cluster_port(), 0),
                (false, true) => (free_port(), free_port()),
                (false, false) => (free_port(), 0),
            };
            if let Some(tls) = &mut options.tls {
                tls.port = tls_port;
            }
            let mut server = RedisServer {
                child: None,
                port: plain_port,
                dir: dir.path().to_path_buf(),
                _dir: None,
                options,
            };
            match server.spawn() {
                Ok(()) => {
                    server._dir = Some(dir);
                    return server;
                }
                Err(failure) => last_failure = failure,
            }
        }
        panic!("redis-server did not start: {last_failure}");
    }
}

/// A private `redis-server` process, stopped when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    options: Builder,
}

impl RedisServer {
    /// Start a server with default options (no password, nothing persisted).
    pub fn start() -> Self {
        Builder::default().start()
    }

    /// Options for a server: password, persistence, extra arguments.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` URL for the server, with its password when it has one.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The `rediss://` URL of the TLS port, with the password when there is one; see
    /// [`Builder::tls`].
    pub fn tls_url(&self) -> String {
        let port = self.tls_port().expect("a server started with Builder::tls");
        match &self.options.password {
            Some(password) => format!("rediss://:{password}@127.0.0.1:{port}/"),
            None => format!("rediss://127.0.0.1:{port}/"),
        }
    }

    /// The TLS port on 127.0.0.1, for a server started with [`Builder::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.options.tls.as_ref().map(|tls| tls.port)
    }

    /// A `redis://` URL for the server without any password.
    pub fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the server process runs (it may be paused).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("redis-server is not running")
            .id()
    }

    /// Kill the server with `SIGKILL` (no shutdown, no save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // It may be paused: a stopped process still dies of SIGKILL.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server with `SIGSTOP`: its socket stays open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resume a server paused with [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Start the server again on the same port (killing it first if it runs). A
    /// [`persistent`](Builder::persistent) server comes back with its data.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(failure) if Instant::now() > deadline => {
                    panic!(
                        "redis-server did not restart on port {}: {failure}",
                        self.port
                    )
                }
                Err(_) => sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Start the server again on the same port with no data at all.
    pub fn restart_empty(&mut self) {
        self.kill();
        for entry in std::fs::read_dir(&self.dir).expect("read the server directory") {
            let path = entry.expect("read a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name != "redis.log" {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.expect("remove persisted Redis data");
            }
        }
        self.restart();
    }

    /// A synchronous connection for the test's own checks.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("test server URL parses")
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect to the test redis-server")
    }

    /// Run one command on the server and return its reply.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.connection())
            .unwrap_or_else(|e| panic!("{args:?} on the test server failed: {e}"))
    }

    /// Run one command on the server, ignoring its reply (panics on an error reply).
    pub fn run(&self, args: &[&str]) {
        let _: redis::Value = self.query(args);
    }

    /// Reset `INFO commandstats` (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) {
        let _: () = self.query(&["CONFIG", "RESETSTAT"]);
    }

    /// Calls per command since the last [`reset_stats`](Self::reset_stats), from
    /// `INFO commandstats`, keyed by lower-case command name (`get`, `hset`, …). The `info` and
    /// `config` calls the test itself makes are left out; on a server with a password the
    /// test's own connection adds one `auth` per call (see [`failed_calls`](Self::failed_calls)).
    pub fn commandstats(&self) -> BTreeMap<String, u64> {
        self.stats()
            .into_iter()
            .map(|(name, stat)| (name, stat.calls))
            .collect()
    }

    /// Microseconds Redis spent in each command since the last [`reset_stats`](Self::reset_stats)
    /// (`usec` in `INFO commandstats`). A script's time includes the commands it runs, which are
    /// listed with their own time too.
    pub fn command_usec(&self) -> BTreeMap<String, u64> {
        self.stats()
            .into_iter()
            .map(|(name, stat)| (name, stat.usec))
            .collect()
    }

    /// Calls per command that Redis answered with an error (`failed_calls` in
    /// `INFO commandstats`), e.g. `auth` with a wrong password.
    pub fn failed_calls(&self) -> BTreeMap<String, u64> {
        self.stats()
            .into_iter()
            .filter(|(_, stat)| stat.failed_calls > 0)
            .map(|(name, stat)| (name, stat.failed_calls))
            .collect()
    }

    /// Total calls of every command since the last [`reset_stats`](Self::reset_stats), not
    /// counting the test's own `INFO` and `CONFIG` calls.
    pub fn total_commands(&self) -> u64 {
        self.commandstats().values().sum()
    }

    fn stats(&self) -> BTreeMap<String, Stat> {
        let info: String = self.query(&["INFO", "commandstats"]);
        parse_commandstats(&info)
            .into_iter()
            .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
            .collect()
    }

    /// Starts `MONITOR` on the server: every command any client sends from now on, as
    /// `redis-cli monitor` prints it, until [`Monitor::stop`].
    pub fn monitor(&self) -> Monitor {
        let path = self.dir.join(format!("monitor-{}.log", std::process::id()));
        let out = File::create(&path).expect("create the monitor log");
        let child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(
                self.options
                    .password
                    .iter()
                    .flat_map(|p| ["-a", p.as_str()]),
            )
            .args(["--no-auth-warning", "monitor"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli monitor");
        // MONITOR answers OK once it is on: wait for it.
        let deadline = Instant::now() + START_TIMEOUT;
        while std::fs::metadata(&path).map_or(0, |m| m.len()) == 0 {
            assert!(Instant::now() < deadline, "MONITOR did not start");
            sleep(Duration::from_millis(10));
        }
        Monitor { child, path }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill {signal} failed");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("redis.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let mut command = Command::new("redis-server");
        if let Some((primary, name)) = &self.options.sentinel {
            let conf = self.dir.join("sentinel.conf");
            let text = format!(
                "sentinel monitor {name} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n"
            );
            // Sentinel rewrites its configuration: written once, kept across restarts.
            if !conf.exists() {
                std::fs::write(&conf, text).map_err(|e| format!("write sentinel.conf: {e}"))?;
            }
            command.arg(&conf).arg("--sentinel");
        }
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir);
        // A Sentinel takes no persistence options.
        if self.options.sentinel.is_none() {
            command.args(["--save", ""]);
            if self.options.persistent {
                command.args(["--appendonly", "yes", "--appendfsync", "always"]);
            } else {
                command.args(["--appendonly", "no"]);
            }
        }
        if let Some(password) = &self.options.password {
            command.args(["--requirepass", password]);
        }
        if self.options.cluster {
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                // A replica may take over however long it has been cut off from its primary.
                "--cluster-replica-validity-factor",
                "0",
                // Replicas sync at once rather than after the default 5 s.
                "--repl-diskless-sync-delay",
                "0",
            ]);
            if let Some(password) = &self.options.password {
                command.args(["--masterauth", password]);
            }
        }
        if let Some(tls) = &self.options.tls {
            command
                .args(["--tls-port", &tls.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args([
                    "--tls-auth-clients",
                    if tls.require_client_certificate {
                        "yes"
                    } else {
                        "no"
                    },
                ]);
            if self.options.cluster {
                // Cluster bus and replication over TLS too; TLS clients are told the TLS ports
                // (in CLUSTER SLOTS, CLUSTER NODES, MOVED), plain ones the plain ports.
                command.args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
            }
        }
        command.args(&self.options.extra_args);
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!(
                    "redis-server was not found on PATH. The tests start their own Redis: install \
                     it (Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: `brew install \
                     redis`), or run `bash scripts/test`, which installs it when missing."
                )
            }
            format!("spawn redis-server: {e}")
        })?;
        self.child = Some(child);
        self.wait_until_ready(&log_path)
    }

    fn wait_until_ready(&mut self, log_path: &std::path::Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("exited with {status}; log:\n{}", tail(log_path)));
            }
            if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "no PONG within {START_TIMEOUT:?}; log:\n{}",
                    tail(log_path)
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused server would not die of SIGTERM; SIGKILL works in every state.
            self.kill();
        }
    }
}

/// A CA, a server certificate and a client certificate, made with `openssl` in a temporary
/// directory, for TLS tests.
#[derive(Debug)]
pub struct TestCertificates {
    dir: tempfile::TempDir,
}

impl TestCertificates {
    /// New certificates; the server's is valid for `server_names` (`subjectAltName` entries
    /// such as `IP:127.0.0.1` or `DNS:localhost`).
    pub fn generate(server_names: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a directory for certificates");
        let run = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| {
                    panic!("openssl is needed for TLS tests (apt-get install openssl): {e}")
                });
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &key,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat());
        // Extensions make version 3 certificates, the only kind TLS libraries accept.
        let san = format!("subjectAltName={}", server_names.join(","));
        std::fs::write(dir.path().join("server.ext"), san).expect("write server.ext");
        std::fs::write(dir.path().join("client.ext"), "extendedKeyUsage=clientAuth")
            .expect("write client.ext");
        for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
            let (key_file, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            run(&[
                &["req"][..],
                &key,
                &[
                    "-keyout",
                    &key_file,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={name}"),
                ],
            ]
            .concat());
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                ext,
            ]);
        }
        Self { dir }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.read("ca.crt")
    }

    /// The client certificate and its key, PEM.
    pub fn client_pem(&self) -> (Vec<u8>, Vec<u8>) {
        (self.read("client.crt"), self.read("client.key"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read a generated certificate")
    }
}

/// A running `MONITOR`; see [`RedisServer::monitor`].
#[derive(Debug)]
pub struct Monitor {
    child: Child,
    path: PathBuf,
}

impl Monitor {
    /// Stops monitoring and returns what was seen, one command per line.
    pub fn stop(mut self) -> String {
        // Let the last commands reach the log.
        sleep(Duration::from_millis(100));
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something listens on loopback `port` (an app process the test started); panics
/// naming `what` after `limit`.
pub fn wait_for_listener(port: u16, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {limit:?}"
        );
        sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A loopback port nobody listens on right now whose cluster bus port (port + 10000) is free
/// too.
fn free_cluster_port() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        if let Some(bus) = port.checked_add(10_000)
            && TcpListener::bind(("127.0.0.1", bus)).is_ok()
        {
            return port;
        }
    }
    panic!("found no free loopback port whose cluster bus port (+10000) is free too");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    calls: u64,
    usec: u64,
    failed_calls: u64,
}

fn parse_commandstats(info: &str) -> BTreeMap<String, Stat> {
    // Lines look like `cmdstat_get:calls=3,usec=12,usec_per_call=4.00,...,failed_calls=0`.
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|line| {
            let (name, fields) = line.split_once(':')?;
            let field = |key: &str| -> Option<u64> {
                fields
                    .split(',')
                    .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            let stat = Stat {
                calls: field("calls")?,
                usec: field("usec").unwrap_or(0),
                failed_calls: field("failed_calls").unwrap_or(0),
            };
            Some((name.to_ascii_lowercase(), stat))
        })
        .collect()
}

fn tail(path: &std::path::Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commandstats() {
        let info = "# Commandstats\r\ncmdstat_get:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=1\r\ncmdstat_hset:calls=10,usec=1\r\n";
        let stats = parse_commandstats(info);
        let get = Stat {
            calls: 3,
            usec: 12,
            failed_calls: 1,
        };
        let hset = Stat {
            calls: 10,
            usec: 1,
            failed_calls: 0,
        };
        assert_eq!(stats.get("get"), Some(&get));
        assert_eq!(stats.get("hset"), Some(&hset));
        assert_eq!(stats.len(), 2);
    }

    #[test]
    fn kill_pause_resume_restart() {
        let mut server = RedisServer::builder().persistent().start();
        let _: () = server.query(&["SET", "k", "v"]);
        server.pause();
        let paused = redis::Client::open(server.url())
            .expect("url")
            .get_connection_with_timeout(Duration::from_millis(300))
            .and_then(|mut c| {
                c.set_read_timeout(Some(Duration::from_millis(300)))?;
                redis::cmd("PING").query::<String>(&mut c)
            });
        assert!(paused.is_err(), "a paused server must not answer");
        server.resume();
        assert_eq!(server.query::<String>(&["GET", "k"]), "v");
        server.kill();
        assert!(
            redis::Client::open(server.url())
                .expect("url")
                .get_connection_with_timeout(Duration::from_millis(300))
                .is_err(),
            "a killed server must refuse connections"
        );
        server.restart();
        assert_eq!(
            server.query::<String>(&["GET", "k"]),
            "v",
            "persistent data survives"
        );
        server.restart_empty();
        assert_eq!(server.query::<Option<String>>(&["GET", "k"]), None);
    }

    #[test]
    fn password_is_required() {
        let server = RedisServer::builder().password("s3cret-pw").start();
        let unauthenticated = redis::Client::open(server.url_without_password())
            .expect("url")
            .get_connection_with_timeout(Duration::from_secs(1))
            .and_then(|mut c| redis::cmd("GET").arg("k").query::<Option<String>>(&mut c));
        assert!(unauthenticated.is_err());
        assert_eq!(server.query::<Option<String>>(&["GET", "k"]), None);
    }
}
