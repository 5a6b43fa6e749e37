//! Redis for end-to-end tests of the `redis` adapter: a private `redis-server` process (for
//! tests that stop Redis or kill its connections without disturbing anyone else) and `redis-cli`.

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a free port of 127.0.0.1 that keeps nothing on disk. Killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> io::Result<Self> {
        let mut server = Self {
            port: crate::free_port(),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Starts the server again on the same port (empty: nothing was persisted).
    pub fn spawn(&mut self) -> io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while redis_cli(self.port, 0, &["PING"]).ok().as_deref() != Some("PONG") {
            if Instant::now() > deadline {
                return Err(io::Error::other("redis-server did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills the server (SIGKILL): every connection drops at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        redis_cli(self.port, 0, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p <port> -n <db> <args…>`; returns its trimmed output.
pub fn redis_cli(port: u16, db: u32, args: &[&str]) -> io::Result<String> {
    let output = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-n",
            &db.to_string(),
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned())
}
