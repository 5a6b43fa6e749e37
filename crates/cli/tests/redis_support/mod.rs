//! Shared by the `redis_*` end-to-end tests: servers on the shared Redis (127.0.0.1:6379, one
//! database per test file) or on a private `redis-server`, unique names, and cleanup.
//!
//! Tests of one file run concurrently in one database (or in separate processes under
//! nextest), so none flushes it: each uses names holding its own random token and deletes the
//! keys holding that token when it ends.

#![allow(dead_code)] // each test file uses a different part

use iii_stream_client::{
    EngineClient, Received, RedisServer, ServerProcess, SubscriberClient, redis_cli,
};
use serde_json::{Value, json};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);
pub const SHARED_PORT: u16 = 6379;

/// The `iii-stream` config lines of a server on the redis adapter.
pub fn redis_config(url: &str, extra: &str) -> String {
    format!(
        "      adapter: {{ name: redis, config: {{ redis_url: \"{url}\", connect_timeout_ms: 2000 }} }}\n{extra}"
    )
}

pub fn start(url: &str, extra: &str) -> ServerProcess {
    ServerProcess::start(
        env!("CARGO_BIN_EXE_iii-stream"),
        redis_config(url, extra).trim_end(),
    )
    .expect("the server starts (is redis-server running on 127.0.0.1:6379?)")
}

/// A test's unique names in a database of the shared Redis; its keys are deleted on drop.
pub struct Names {
    pub token: String,
    pub db: u32,
}

impl Names {
    pub fn new(db: u32) -> Self {
        Self {
            token: format!("t{}", &uuid_like()),
            db,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{SHARED_PORT}/{}", self.db)
    }

    /// `prefix` followed by the token: a stream name no other test uses.
    pub fn stream(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.token)
    }

    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(SHARED_PORT, self.db, args).expect("redis-cli runs")
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        let pattern = format!("*{}*", self.token);
        let Ok(keys) = redis_cli(SHARED_PORT, self.db, &["--scan", "--pattern", &pattern]) else {
            return;
        };
        for key in keys.lines().filter(|k| !k.is_empty()) {
            let _ = redis_cli(SHARED_PORT, self.db, &["DEL", key]);
        }
        let streams = redis_cli(SHARED_PORT, self.db, &["SMEMBERS", "iii-stream:streams"])
            .unwrap_or_default();
        for stream in streams.lines().filter(|s| s.contains(&self.token)) {
            let _ = redis_cli(
                SHARED_PORT,
                self.db,
                &["SREM", "iii-stream:streams", stream],
            );
        }
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

pub async fn engine(server: &ServerProcess) -> EngineClient {
    EngineClient::connect(&server.engine_url()).await.unwrap()
}

pub async fn subscriber(server: &ServerProcess) -> SubscriberClient {
    SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap()
}

/// `stream::set` of `{"id": item, "v": v}`.
pub async fn set(client: &EngineClient, stream: &str, group: &str, item: &str, v: Value) {
    client
        .call(
            "stream::set",
            json!({"stream_name": stream, "group_id": group, "item_id": item, "data": {"id": item, "v": v}}),
        )
        .await
        .unwrap();
}

/// Frames until `n` of them were received (sync frames included), failing after `WAIT`.
pub async fn frames(sub: &mut SubscriberClient, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        match sub.next(WAIT).await {
            Some(Received::Frame(frame)) => out.push(frame),
            Some(Received::Close(code)) => panic!("subscriber closed ({code:?}) after {out:?}"),
            Some(_) => {}
            None => panic!("only {} of {n} frames arrived: {out:?}", out.len()),
        }
    }
    out
}

/// Applies group frames after a sync to its state (values keyed by `data.id`), as a client
/// would; checks that their `seq` values are consecutive from the sync's.
pub fn apply(sync: &Value, events: &[Value]) -> Vec<Value> {
    assert_eq!(sync["event"]["type"], "sync");
    let mut state: Vec<Value> = sync["event"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seq = sync["seq"].as_u64().unwrap();
    for frame in events {
        seq += 1;
        assert_eq!(frame["seq"].as_u64(), Some(seq), "{frame}");
        assert_eq!(frame["epoch"], sync["epoch"]);
        let data = &frame["event"]["data"];
        let same = |v: &Value| v["id"] == data["id"];
        match frame["event"]["type"].as_str() {
            Some("create") | Some("update") => match state.iter_mut().find(|v| same(v)) {
                Some(slot) => *slot = data.clone(),
                None => state.push(data.clone()),
            },
            Some("delete") => state.retain(|v| !same(v)),
            _ => {}
        }
    }
    state
}

/// A private Redis for tests that disrupt it.
pub fn private_redis() -> RedisServer {
    RedisServer::start().expect("redis-server is installed")
}
