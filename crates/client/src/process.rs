//! Runs the `iii-stream` binary with a generated configuration, on free ports.

use crate::{EngineClient, SubscriberClient};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `adapter` line of a volatile server.
const IN_MEMORY: &str = "      adapter: { name: kv, config: { store_method: in_memory } }";

/// A free TCP port on 127.0.0.1, below Linux's ephemeral range (32768–60999).
///
/// Ports handed out by the kernel for `:0` come from the ephemeral range, which every outgoing
/// connection also draws its local port from: a server restarted on such a port can find it
/// taken by some client socket. Ports below the range are only ever taken on purpose.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Spread concurrent test processes apart, then walk; bind to check the port is free now.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919) ^ NEXT.fetch_add(1, Ordering::Relaxed);
    for attempt in 0..2000u32 {
        let port = 20_000 + (seed.wrapping_mul(31).wrapping_add(attempt * 97) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            NEXT.fetch_add(1, Ordering::Relaxed);
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A running server. Killed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    binary: PathBuf,
    config: PathBuf,
    pub engine_port: u16,
    pub stream_port: u16,
    _dir: tempfile::TempDir,
    log: PathBuf,
    /// `Some` for a server whose stderr is a pipe nobody reads (see [`ServerProcess::stall_stderr`]).
    stalled: Option<Option<std::process::ChildStderr>>,
}

impl ServerProcess {
    /// Starts `binary` with `stream_config` (YAML lines of the `iii-stream` entry's `config`,
    /// indented by 6 spaces, e.g. `"      adapter: {name: kv, config: {store_method: in_memory}}"`).
    pub fn start(binary: impl AsRef<Path>, stream_config: &str) -> std::io::Result<Self> {
        let binary = binary.as_ref();
        let dir = tempfile::tempdir()?;
        let (engine_port, stream_port) = (free_port(), free_port());
        let config = dir.path().join("config.yaml");
        let text = format!(
            "workers:\n  - name: iii-worker-manager\n    config: {{ host: 127.0.0.1, port: {engine_port} }}\n  - name: iii-stream\n    config:\n      host: 127.0.0.1\n      port: {stream_port}\n{stream_config}\n"
        );
        std::fs::write(&config, text)?;
        let mut server = Self {
            child: None,
            binary: binary.to_owned(),
            config,
            engine_port,
            stream_port,
            log: dir.path().join("server.log"),
            _dir: dir,
            stalled: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Restarts the server with its stderr connected to a pipe that is never read, as a
    /// supervisor that forgot to drain it would: once the pipe's buffer is full, every write to
    /// stderr blocks. [`ServerProcess::take_stalled_stderr`] hands the pipe out to drain it.
    pub fn stall_stderr(&mut self) -> std::io::Result<()> {
        self.kill();
        self.stalled = Some(None);
        self.spawn()
    }

    /// The read end of a stalled stderr (see [`ServerProcess::stall_stderr`]).
    pub fn take_stalled_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.stalled.as_mut().and_then(Option::take)
    }

    /// Starts `binary` with the in-memory kv adapter plus `stream_config` (more lines of the
    /// `iii-stream` entry's `config`, indented by 6 spaces; may be empty).
    pub fn start_in_memory(binary: impl AsRef<Path>, stream_config: &str) -> std::io::Result<Self> {
        let config = format!("{IN_MEMORY}\n{stream_config}");
        Self::start(binary, config.trim_end())
    }

    /// A directory that lives as long as this server (for file stores).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        self.launch()?;
        self.wait_ready(Duration::from_secs(15), 200)
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let stderr = match self.stalled {
            Some(_) => Stdio::piped(),
            None => Stdio::from(log),
        };
        let mut child = Command::new(&self.binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(self._dir.path())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        if let Some(pipe) = &mut self.stalled {
            *pipe = child.stderr.take();
        }
        self.child = Some(child);
        Ok(())
    }

    /// Starts the server again after it exited (or was stopped), and waits until `/healthz`
    /// answers `status` (e.g. 503 for a server that starts on a full disk).
    pub fn start_again(&mut self, status: u16) -> std::io::Result<()> {
        self.kill();
        self.launch()?;
        self.wait_ready(Duration::from_secs(15), status)
    }

    /// Waits until `/healthz` answers `status`.
    fn wait_ready(&mut self, within: Duration, status: u16) -> std::io::Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(std::io::Error::other(format!(
                    "server exited with {status} during startup:\n{}",
                    self.log_text()
                )));
            }
            if healthz(self.stream_port) == Some(status) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(format!(
            "server not ready:\n{}",
            self.log_text()
        )))
    }

    pub fn engine_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.engine_port)
    }

    pub fn stream_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.stream_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal (e.g. "TERM", "KILL") to the server.
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| std::io::Error::other("not running"))?;
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .map(drop)
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().ok()? {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Kills (SIGKILL) and starts the server again with the same configuration.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.spawn()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ws://127.0.0.1:<stream port><path>` (`path` starts with `/`).
    pub fn stream_url_for(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.stream_port)
    }

    /// A subscriber connected to `/`. Panics if the server refuses (a test-support shortcut).
    pub async fn subscriber(&self) -> SubscriberClient {
        SubscriberClient::connect(&self.stream_url())
            .await
            .expect("a subscriber connects to the stream port")
    }

    /// A client of the engine port. Panics if the server refuses (a test-support shortcut).
    pub async fn engine(&self) -> EngineClient {
        EngineClient::connect(&self.engine_url())
            .await
            .expect("a client connects to the engine port")
    }

    /// The samples of `GET /metrics`, keyed by series (`name{labels}` as rendered). Panics if
    /// the endpoint does not answer 200.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        match http_get(self.stream_port, "/metrics") {
            Some((200, body)) => parse_metrics(&body),
            other => panic!("GET /metrics answered {other:?}"),
        }
    }

    /// One sample of `GET /metrics` (e.g. `iii_stream_joins_total{outcome="admitted"}`); 0 when
    /// absent (families with labels appear only after their first use).
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics().get(series).copied().unwrap_or(0.0)
    }

    /// `GET /healthz` status code.
    pub fn healthz(&self) -> Option<u16> {
        healthz(self.stream_port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.1 GET, returning the status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    socket.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The samples of a Prometheus / OpenMetrics text exposition, keyed by series.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn healthz(port: u16) -> Option<u16> {
    http_get(port, "/healthz").map(|(status, _)| status)
}
