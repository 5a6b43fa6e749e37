//! The resolved configuration the server runs with, and its built-in defaults
//! (stream.md §9.3–9.4, worker-protocol.md §14, improvements.md i).
//!
//! Every value here has already been checked by the loader (see the crate documentation for
//! the rules), so the server can use it without re-validating.

use std::path::PathBuf;

/// Longest accepted duration: ten years in milliseconds.
pub const MAX_DURATION_MS: u64 = 10 * 365 * 24 * 60 * 60 * 1000;

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// One entry per engine listener to open; never empty.
    pub engine: Vec<EngineConfig>,
    pub stream: StreamConfig,
    /// Human-readable notes about parts of the file that were accepted but ignored or that change
    /// behaviour; the binary logs each one at startup.
    pub warnings: Vec<String>,
}

impl Default for Config {
    /// The configuration used when there is no file: one engine listener on `0.0.0.0:49134`.
    fn default() -> Self {
        Config {
            engine: vec![EngineConfig::default()],
            stream: StreamConfig::default(),
            warnings: Vec::new(),
        }
    }
}

/// One engine (worker) listener, from an `iii-worker-manager` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub host: String,
    pub port: u16,
    pub handshake_timeout_ms: u64,
    pub max_message_bytes: usize,
    pub invocation_timeout_ms: u64,
    /// Calls one connection may have running at once; beyond it the server stops reading that
    /// socket until one finishes (docs/limits.md).
    pub max_in_flight_calls: usize,
    /// Open worker connections, across every engine listener.
    pub max_connections: usize,
    /// Messages queued for one connection before it is closed for not reading them.
    pub outbound_queue_frames: usize,
    pub outbound_queue_bytes: usize,
    pub ping_interval_ms: u64,
    /// A connection silent for longer is closed.
    pub idle_timeout_ms: u64,
    /// Calls per second one connection may make; `None` for no limit.
    pub max_calls_per_second: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            host: "0.0.0.0".to_owned(),
            port: 49134,
            handshake_timeout_ms: 10_000,
            max_message_bytes: 67_108_864,
            invocation_timeout_ms: 600_000,
            max_in_flight_calls: 1_024,
            max_connections: 10_000,
            outbound_queue_frames: 16_384,
            outbound_queue_bytes: 268_435_456,
            ping_interval_ms: 30_000,
            idle_timeout_ms: 90_000,
            max_calls_per_second: None,
        }
    }
}

/// The stream service, from the `iii-stream` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    pub host: String,
    pub port: u16,
    pub auth_function: Option<String>,
    pub fail_closed: bool,
    pub adapter: AdapterConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub history: History,
    pub triggers: Triggers,
    pub keepalive: Keepalive,
    pub metrics: bool,
    pub shutdown_timeout_ms: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            host: "0.0.0.0".to_owned(),
            port: 3112,
            auth_function: None,
            fail_closed: false,
            adapter: AdapterConfig::default(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            history: History::default(),
            triggers: Triggers::default(),
            keepalive: Keepalive::default(),
            metrics: true,
            shutdown_timeout_ms: 10_000,
        }
    }
}

/// The storage backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterConfig {
    Kv {
        store_method: StoreMethod,
        file_path: PathBuf,
    },
    Redis {
        redis_url: String,
        connect_timeout_ms: u64,
    },
}

/// Durable on disk by default (improvements.md i), unlike the original's in-memory default.
impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig::Kv {
            store_method: StoreMethod::FileBased,
            file_path: PathBuf::from(DEFAULT_KV_FILE_PATH),
        }
    }
}

pub(crate) const DEFAULT_KV_FILE_PATH: &str = "./data/stream_store";
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://localhost:6379";
pub(crate) const DEFAULT_REDIS_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// How the kv adapter keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMethod {
    FileBased,
    InMemory,
}

/// Deadlines for calls the stream service makes to workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub auth_ms: u64,
    pub join_ms: u64,
    pub leave_ms: u64,
    pub condition_ms: u64,
    pub trigger_ms: u64,
    pub provider_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            auth_ms: 10_000,
            join_ms: 10_000,
            leave_ms: 10_000,
            condition_ms: 10_000,
            trigger_ms: 30_000,
            provider_ms: 30_000,
        }
    }
}

/// Per-server and per-connection bounds on subscriber traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_subscriptions_per_connection: usize,
    pub max_message_bytes: usize,
    pub outbound_queue_frames: usize,
    pub outbound_queue_bytes: usize,
    /// A connection whose queued frames cannot be written for this long is a slow consumer.
    pub write_timeout_ms: u64,
    /// Joins per second one connection may make (a token bucket refilled at this rate)...
    pub joins_per_second: usize,
    /// ...holding at most this many tokens.
    pub join_burst: usize,
    /// Groups with state in memory per stream (kv adapter); `None` for no limit.
    pub max_groups_per_stream: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_subscriptions_per_connection: 1_000,
            max_message_bytes: 1_048_576,
            outbound_queue_frames: 4_096,
            outbound_queue_bytes: 8_388_608,
            write_timeout_ms: 30_000,
            joins_per_second: 100,
            join_burst: 1_000,
            max_groups_per_stream: None,
        }
    }
}

/// How much of each group's recent frames is kept for resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub max_events: usize,
    pub max_age_ms: u64,
    pub max_total_bytes: usize,
    /// Groups without items or subscribers kept for `max_age_ms` (for resume and a continuous
    /// numbering) at most; beyond it the oldest go early (docs/limits.md).
    pub max_idle_groups: usize,
}

impl Default for History {
    fn default() -> Self {
        History {
            max_events: 1_000,
            max_age_ms: 300_000,
            max_total_bytes: 268_435_456,
            max_idle_groups: 16_384,
        }
    }
}

/// Bounds on `stream` trigger delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggers {
    pub max_concurrency: usize,
    pub max_pending_per_trigger: usize,
}

impl Default for Triggers {
    fn default() -> Self {
        Triggers {
            max_concurrency: 256,
            max_pending_per_trigger: 10_000,
        }
    }
}

/// Subscriber connection liveness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keepalive {
    pub ping_interval_ms: u64,
    pub idle_timeout_ms: u64,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            ping_interval_ms: 30_000,
            idle_timeout_ms: 90_000,
        }
    }
}
