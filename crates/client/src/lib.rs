//! Raw clients of both iii-stream ports, and a runner for the server binary.
//!
//! These speak the wire protocols directly (no SDK), so tests can check exact frames and send
//! malformed input, crash trials can count acknowledgements precisely, and the load generator
//! can keep many calls in flight on one connection.

mod engine;
mod handshake;
mod process;
mod redis;
mod subscriber;
mod worker;

pub use engine::{CallError, EngineClient};
pub use handshake::{Ending, Handshake, RawFrame, Upgraded, parse_frames};
pub use process::{ServerProcess, free_port, http_get, parse_metrics};
pub use redis::{RedisServer, redis_cli};
pub use subscriber::{Received, SubscriberClient};
pub use worker::{Answer, Invocation, Worker, WorkerError};

use std::time::Duration;

/// A generous bound for anything the server should do promptly (CI machines are slow).
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts the `iii-stream` binary of the calling integration test with the in-memory adapter
/// and the given extra `iii-stream` config lines (see [`ServerProcess::start_in_memory`]).
#[macro_export]
macro_rules! start_server {
    () => {
        $crate::start_server!("")
    };
    ($config:expr) => {
        $crate::ServerProcess::start_in_memory(env!("CARGO_BIN_EXE_iii-stream"), $config)
            .expect("the server starts")
    };
}

/// Runs `check` (every 5 ms) until it yields a value or `within` passed.
pub async fn poll_until<T, F>(within: Duration, mut check: impl FnMut() -> F) -> Option<T>
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `text` is a hyphenated UUID of version 4 (server-generated subscription ids).
pub fn is_uuid_v4(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::parse_str(text).is_ok_and(|u| u.get_version_num() == 4)
}

/// The keys of `value` (an object), sorted; empty for anything else.
pub fn keys(value: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

/// `value` (an object) without `key`: e.g. two copies of one frame compared without their
/// `subscriptionId`.
pub fn without(value: &serde_json::Value, key: &str) -> serde_json::Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.remove(key);
    }
    value
}
