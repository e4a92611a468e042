//! A system under test in a process of its own: this very binary, `serve <system> <port> <url>`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use session_bench::system::System;

pub(crate) struct ServerProcess {
    pub(crate) system: System,
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl ServerProcess {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `system` against Redis at `redis_url` and waits until it accepts connections.
    pub(crate) fn start(system: System, redis_url: &str) -> Result<Self, String> {
        let port = test_redis::free_port();
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args(["serve", system.name(), &port.to_string(), redis_url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start {system}: {e}"))?;
        let mut server = ServerProcess {
            system,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(server.addr).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{system} exited at start: {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("{system} did not listen within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user and system, all threads) the process `pid` has used so far, from
/// `/proc/<pid>/stat`; `None` where there is no such file (not Linux, or the process is gone).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields are counted after it.
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / clock_ticks_per_second())
}

/// `getconf CLK_TCK`, once; 100, the value on every Linux seen, if it cannot be asked.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}
