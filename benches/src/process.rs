//! A system under test in a process of its own: this very binary, `serve <system> <port> <url>`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::system::System;

pub(crate) struct ServerProcess {
    pub(crate) system: System,
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl ServerProcess {
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
