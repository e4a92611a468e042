//! [`FaultProxy`]: a TCP proxy between an app and Redis that a test drives to look like the
//! network outages real deployments have: latency (fixed and jittered), a bandwidth limit, a
//! blackhole, connections reset after some bytes, refused connections, half-open connections.
//! In-process (threads), no external tool.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use socket2::SockRef;

/// How often a stalled pump looks at the faults again, and the accept loop at its listener.
const POLL: Duration = Duration::from_millis(5);

/// The faults in force; see [`FaultProxy`]'s methods.
#[derive(Debug, Clone, Default)]
struct Faults {
    latency: Duration,
    jitter: Duration,
    bytes_per_second: Option<u64>,
    blackhole: bool,
    reset_after: Option<u64>,
    refuse: bool,
}

#[derive(Debug, Default)]
struct Shared {
    faults: Mutex<Faults>,
    /// Bumped by [`FaultProxy::half_open`]: connections opened before it stop forwarding.
    generation: AtomicU64,
    open: AtomicUsize,
    stop: AtomicBool,
    /// A counter for the jitter (no randomness needed beyond spreading delays).
    jitter_seed: AtomicU64,
}

impl Shared {
    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// A TCP proxy in front of a Redis on `127.0.0.1:<upstream>`, healthy until told otherwise.
/// Point the app at [`url`](Self::url); the faults apply to connections already open and to new
/// ones, from the moment they are set.
///
/// ```no_run
/// use std::time::Duration;
/// use test_redis::{FaultProxy, RedisServer};
///
/// let redis = RedisServer::start();
/// let proxy = FaultProxy::start(redis.port());
/// proxy.set_latency(Duration::from_millis(200), Duration::from_millis(50));
/// // ... requests through an app on proxy.url() ...
/// proxy.heal();
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts the proxy on a free loopback port, forwarding to `127.0.0.1:<upstream>`.
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || accept(listener, port, upstream, &accepting))
            .expect("a thread");
        Self { port, shared }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Connections open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Delays every chunk of data by `latency`, plus up to `jitter` more.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        self.shared.set(|f| {
            f.latency = latency;
            f.jitter = jitter;
        });
    }

    /// Forwards at most `bytes_per_second` in each direction of each connection (`None`: no
    /// limit).
    pub fn set_bandwidth(&self, bytes_per_second: Option<u64>) {
        self.shared.set(|f| f.bytes_per_second = bytes_per_second);
    }

    /// Accepts connections but forwards nothing, either way, on new and open connections: a
    /// load balancer dropping packets. Nothing is closed.
    pub fn blackhole(&self, on: bool) {
        self.shared.set(|f| f.blackhole = on);
    }

    /// Resets (RST) each connection once it has forwarded `bytes` in either direction (`None`:
    /// never): a connection dropped in the middle of a pipeline.
    pub fn reset_after(&self, bytes: Option<u64>) {
        self.shared.set(|f| f.reset_after = bytes);
    }

    /// Refuses new connections (the port stops listening); open ones are left alone.
    pub fn refuse(&self, on: bool) {
        self.shared.set(|f| f.refuse = on);
    }

    /// The connections open now stop forwarding and are never closed, as after a NAT or a load
    /// balancer forgot them; new connections work.
    pub fn half_open(&self) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Every fault off (half-open connections stay dead).
    pub fn heal(&self) {
        self.shared.set(|f| *f = Faults::default());
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

fn accept(listener: TcpListener, port: u16, upstream: u16, shared: &Arc<Shared>) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::Acquire) {
        if shared.faults().refuse {
            // Not listening: connections are refused.
            listener = None;
            sleep(POLL);
            continue;
        }
        let Some(open) = listener.as_ref() else {
            listener = rebind(port);
            continue;
        };
        if open.set_nonblocking(true).is_err() {
            return;
        }
        match open.accept() {
            Ok((client, _)) => connect(client, upstream, shared),
            Err(err) if err.kind() == ErrorKind::WouldBlock => sleep(POLL),
            Err(_) => sleep(POLL),
        }
    }
}

/// Listens on `port` again once refusing is over.
fn rebind(port: u16) -> Option<TcpListener> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.set_reuse_address(true).ok()?;
    socket.bind(&address.into()).ok()?;
    socket.listen(128).ok()?;
    Some(socket.into())
}

fn connect(client: TcpStream, upstream: u16, shared: &Arc<Shared>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        reset(&client);
        return;
    };
    let generation = shared.generation.load(Ordering::Acquire);
    let forwarded = Arc::new(AtomicU64::new(0));
    shared.open.fetch_add(1, Ordering::AcqRel);
    let closed = Arc::new(AtomicUsize::new(0));
    for (from, to) in [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ] {
        let (Ok(from), Ok(to)) = (from, to) else {
            continue;
        };
        let pump = Pump {
            shared: Arc::clone(shared),
            generation,
            forwarded: Arc::clone(&forwarded),
            closed: Arc::clone(&closed),
        };
        let _ = thread::Builder::new()
            .name("fault-proxy-pump".into())
            .spawn(move || pump.run(from, to));
    }
}

/// Closes `stream` with a reset (RST), not a FIN.
fn reset(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(Shutdown::Both);
}

struct Pump {
    shared: Arc<Shared>,
    generation: u64,
    forwarded: Arc<AtomicU64>,
    /// How many of the connection's two pumps ended.
    closed: Arc<AtomicUsize>,
}

impl Pump {
    fn run(self, mut from: TcpStream, mut to: TcpStream) {
        let _ = from.set_read_timeout(Some(POLL * 10));
        let mut buffer = [0u8; 16 * 1024];
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                break;
            }
            if self.held() {
                // Hold the data where it is: nothing read, nothing sent, nothing closed.
                sleep(POLL);
                continue;
            }
            let read = match from.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(_) => break,
            };
            // The faults as they are now that data came: set while this pump waited, they apply.
            while self.held() && !self.shared.stop.load(Ordering::Acquire) {
                sleep(POLL);
            }
            let faults = self.shared.faults();
            self.delay(&faults, read);
            let total = self.forwarded.fetch_add(read as u64, Ordering::AcqRel) + read as u64;
            if let Some(limit) = faults.reset_after
                && total >= limit
            {
                // What fits under the limit goes through, then both ends are reset.
                let before = total - read as u64;
                let allowed = usize::try_from(limit.saturating_sub(before)).unwrap_or(read);
                let _ = to.write_all(&buffer[..allowed.min(read)]);
                reset(&from);
                reset(&to);
                break;
            }
            if to.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        if self.closed.fetch_add(1, Ordering::AcqRel) == 1 {
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Nothing goes through: a blackhole, or this connection was made half-open.
    fn held(&self) -> bool {
        self.shared.faults().blackhole
            || self.shared.generation.load(Ordering::Acquire) != self.generation
    }

    /// The latency, the jitter and the bandwidth limit, for `bytes` about to be forwarded.
    fn delay(&self, faults: &Faults, bytes: usize) {
        let mut wait = faults.latency;
        if !faults.jitter.is_zero() {
            // A spread of delays, not a secret: a counter through a multiplicative hash.
            let n = self.shared.jitter_seed.fetch_add(1, Ordering::Relaxed);
            let spread = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            let nanos = u64::try_from(faults.jitter.as_nanos()).unwrap_or(u64::MAX);
            wait += Duration::from_nanos(spread % nanos.max(1));
        }
        if let Some(rate) = faults.bytes_per_second.filter(|rate| *rate > 0) {
            wait += Duration::from_secs_f64(bytes as f64 / rate as f64);
        }
        if !wait.is_zero() {
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.shared.stop.load(Ordering::Acquire) {
                sleep((until - Instant::now()).min(POLL * 10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisServer;

    fn connection(proxy: &FaultProxy) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(proxy.url())?;
        let connection = client.get_connection_with_timeout(Duration::from_millis(500))?;
        connection.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(connection)
    }

    fn ping(connection: &mut redis::Connection) -> redis::RedisResult<String> {
        redis::cmd("PING").query(connection)
    }

    use bb8_redis::redis;

    #[test]
    fn forwards_and_each_fault_does_what_it_says() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis.port());
        let mut conn = connection(&proxy).expect("a connection");
        assert_eq!(ping(&mut conn).expect("healthy"), "PONG");
        assert_eq!(proxy.open_connections(), 1);

        proxy.set_latency(Duration::from_millis(150), Duration::from_millis(20));
        let started = Instant::now();
        assert_eq!(ping(&mut conn).expect("slow"), "PONG");
        assert!(started.elapsed() >= Duration::from_millis(150), "delayed");
        proxy.heal();

        proxy.blackhole(true);
        assert!(
            ping(&mut conn).is_err(),
            "no answer within the read timeout"
        );
        proxy.heal();

        let mut fresh = connection(&proxy).expect("a connection");
        proxy.half_open();
        assert!(ping(&mut fresh).is_err(), "an open connection is dead");
        let mut after = connection(&proxy).expect("new connections work");
        assert_eq!(ping(&mut after).expect("healthy"), "PONG");

        let mut reset = connection(&proxy).expect("a connection");
        proxy.reset_after(Some(3));
        assert!(
            ping(&mut reset).is_err(),
            "reset: it forwarded more than 3 bytes already"
        );
        proxy.heal();

        proxy.refuse(true);
        sleep(POLL * 4);
        assert!(connection(&proxy).is_err(), "refused");
        proxy.refuse(false);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut again = loop {
            match connection(&proxy) {
                Ok(conn) => break conn,
                Err(_) if Instant::now() < deadline => sleep(POLL),
                Err(err) => panic!("listening again: {err}"),
            }
        };
        assert_eq!(ping(&mut again).expect("healthy"), "PONG");
    }

    #[test]
    fn a_bandwidth_limit_slows_large_answers() {
        let redis = RedisServer::start();
        let _: () = redis.query(&["SET", "big", &"x".repeat(20_000)]);
        let proxy = FaultProxy::start(redis.port());
        let mut conn = connection(&proxy).expect("a connection");
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a timeout");
        proxy.set_bandwidth(Some(50_000));
        let started = Instant::now();
        let big: String = redis::cmd("GET").arg("big").query(&mut conn).expect("GET");
        assert_eq!(big.len(), 20_000);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "20 kB at 50 kB/s: {:?}",
            started.elapsed()
        );
    }
}
