//! Tests of the Redis adapter against a real Redis server: the shared one on 127.0.0.1:6379
//! (database 9), or a private `redis-server` for tests that disrupt connections.
//!
//! Tests run concurrently in one database, so each uses names containing its own random token
//! and deletes the keys holding that token when it ends.

mod layout;
mod parity;
mod relay;

use super::{RedisOptions, RedisStore};
use crate::{EventSink, Snapshot};
use iii_stream_domain::{Frame, GroupKey, ItemKey, JsonText};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shared server and this test file's database.
pub(super) const SHARED: &str = "redis://127.0.0.1:6379/9";

pub(super) fn text(s: &str) -> JsonText {
    Arc::from(RawValue::from_string(s.to_owned()).unwrap())
}

pub(super) fn options(url: &str) -> RedisOptions {
    RedisOptions {
        url: url.to_owned(),
        connect_timeout: Duration::from_secs(2),
        max_events: 1000,
        max_age_ms: 60_000,
    }
}

/// Everything a store handed to its sink.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) published: Mutex<Vec<Arc<Frame>>>,
    pub(super) committed: Mutex<Vec<Arc<Frame>>>,
    pub(super) resyncs: Mutex<Vec<(GroupKey, Snapshot)>>,
}

impl EventSink for Recorder {
    fn publish(&self, frame: &Arc<Frame>, local: bool) {
        assert!(!local, "the redis relay never publishes as local");
        self.published.lock().push(frame.clone());
    }

    fn committed(&self, frame: &Arc<Frame>) {
        self.committed.lock().push(frame.clone());
    }

    fn resync(&self, group: &GroupKey, snapshot: &Snapshot) {
        self.resyncs.lock().push((group.clone(), snapshot.clone()));
    }
}

impl Recorder {
    /// `(epoch, seq)` of the published frames of `group`.
    pub(super) fn seqs(&self, group: &GroupKey) -> Vec<u64> {
        self.published
            .lock()
            .iter()
            .filter(|f| f.group == *group)
            .map(|f| f.seq())
            .collect()
    }

    /// Waits until `group` has `n` published frames (or more).
    pub(super) async fn wait_published(&self, group: &GroupKey, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.seqs(group).len() < n {
            assert!(
                Instant::now() < deadline,
                "only {:?} of {n} frames arrived",
                self.seqs(group)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A test's unique names, and cleanup of every key that holds them.
pub(super) struct Names {
    pub(super) token: String,
    url: String,
}

impl Names {
    pub(super) fn new(url: &str) -> Self {
        Self {
            token: format!("t{:016x}", rand::random::<u64>()),
            url: url.to_owned(),
        }
    }

    /// A stream name unique to this test (with `suffix` appended as is).
    pub(super) fn stream(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.token)
    }

    pub(super) fn item(&self, suffix: &str, group: &str, item: &str) -> ItemKey {
        ItemKey::new(GroupKey::new(self.stream(suffix), group), item)
    }

    /// A synchronous connection for inspecting Redis directly.
    pub(super) fn redis(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("redis is reachable on 127.0.0.1:6379 (tests need a real server)")
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let pattern = format!("*{}*", self.token);
        let keys: Vec<String> = redis::Commands::scan_match(&mut conn, &pattern)
            .map(|keys| keys.filter_map(Result::ok).collect())
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut conn);
        }
        let streams: Vec<String> = redis::cmd("SMEMBERS")
            .arg(super::keys::STREAMS)
            .query(&mut conn)
            .unwrap_or_default();
        let ours: Vec<&String> = streams.iter().filter(|s| s.contains(&self.token)).collect();
        if !ours.is_empty() {
            let _: Result<(), _> = redis::cmd("SREM")
                .arg(super::keys::STREAMS)
                .arg(ours)
                .query(&mut conn);
        }
    }
}

pub(super) async fn open(url: &str) -> (RedisStore, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let store = RedisStore::open(options(url), recorder.clone())
        .await
        .expect("redis is reachable (tests need a real server)");
    (store, recorder)
}

/// A private `redis-server` (no persistence) for tests that kill connections or the server.
pub(super) struct PrivateRedis {
    pub(super) port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub(super) fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut server = Self { port, child: None };
        server.spawn();
        server
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub(super) fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        let client = redis::Client::open(self.url()).unwrap();
        while client
            .get_connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(super) fn command(&self, args: &[&str]) -> redis::Value {
        let mut conn = redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .unwrap();
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn).unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
