//! `iii-stream bench`: a load generator speaking the real protocols (the engine port's worker
//! protocol and the stream port's subscriber protocol), in the spirit of `redis-benchmark`.
//!
//! Each scenario drives a running server and prints one JSON object per result on stdout;
//! progress goes to stderr. The hot paths avoid general-purpose clients and JSON trees (see
//! [`ws`], [`engine`], [`scan`]) so that the generator, which shares the machine with the server,
//! costs less than what it measures.

mod delivery;
mod engine;
mod fanout;
mod idle;
mod joinstorm;
mod output;
mod procfs;
mod progress;
mod readbuf;
mod redis_fanout;
mod resp;
mod resume;
mod scan;
mod stats;
mod sub;
mod writer;
mod writes;
mod ws;

use anyhow::Context;
use std::net::{IpAddr, SocketAddr};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Options shared by every scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Host of the server under test (both ports).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: String,
    /// Engine (worker protocol) port.
    #[arg(long, global = true, default_value_t = 49134)]
    engine_port: u16,
    /// Stream (subscriber) port.
    #[arg(long, global = true, default_value_t = 3112)]
    stream_port: u16,
    /// Pid of the server: its CPU use is reported (and its memory, for `idle`).
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Generator runtime threads [default: the CPUs this process may run on].
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Local source addresses used round-robin by connections (one address gives about 28,000
    /// ephemeral ports towards one server port), e.g. `127.0.0.2,127.0.0.3`.
    #[arg(long, global = true, value_delimiter = ',')]
    bind: Vec<IpAddr>,
    /// Free text copied into every result (e.g. `pinned`, `file_based`).
    #[arg(long, global = true, default_value = "")]
    label: String,
    /// No progress on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
}

impl Common {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            // Honours `taskset`: the affinity mask, not the machine's CPU count.
            std::thread::available_parallelism().map_or(1, |n| n.get())
        })
    }

    async fn resolve(&self, port: u16) -> anyhow::Result<SocketAddr> {
        tokio::net::lookup_host((self.host.as_str(), port))
            .await
            .with_context(|| format!("cannot resolve {}", self.host))?
            .next()
            .with_context(|| format!("{} has no address", self.host))
    }

    pub async fn engine_addr(&self) -> anyhow::Result<SocketAddr> {
        self.resolve(self.engine_port).await
    }

    pub async fn stream_addr(&self) -> anyhow::Result<SocketAddr> {
        self.resolve(self.stream_port).await
    }

    /// The source address of connection number `i`.
    pub fn bind_for(&self, i: usize) -> Option<IpAddr> {
        (!self.bind.is_empty()).then(|| self.bind[i % self.bind.len()])
    }

    pub fn server(&self) -> Option<procfs::Pid> {
        self.server_pid.map(|p| procfs::Pid(p.to_string()))
    }
}

#[derive(clap::Subcommand, Debug)]
enum Scenario {
    /// Write throughput: C worker connections × W calls in flight of stream::set or
    /// stream::update.
    Writes(writes::Args),
    /// Fan-out: N subscribers on G groups and one writer at a rate or as fast as possible;
    /// deliveries/s, delivery latency and loss.
    Fanout(fanout::Args),
    /// Idle subscribers: N connections held open; server memory per connection.
    Idle(idle::Args),
    /// Join storm: N connect+join as fast as possible; joins/s and time to sync.
    Joinstorm(joinstorm::Args),
    /// Resume: N subscribers disconnected and rejoined with `since` while writes continue;
    /// time to converge, frames replayed and syncs sent.
    Resume(resume::Args),
    /// Reference: Redis pub/sub fan-out (PUBLISH to N SUBSCRIBEd connections), same statistics
    /// as `fanout`.
    RedisFanout(redis_fanout::Args),
}

/// Runs one scenario on a runtime of its own.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs { common, scenario } = args;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common.threads())
        .enable_all()
        .build()
        .context("cannot start the generator runtime")?;
    // Start the shared clock before any timestamp is taken.
    stats::now_ns();
    runtime.block_on(async move {
        match scenario {
            Scenario::Writes(args) => writes::run(&common, args).await,
            Scenario::Fanout(args) => fanout::run(&common, args).await,
            Scenario::Idle(args) => idle::run(&common, args).await,
            Scenario::Joinstorm(args) => joinstorm::run(&common, args).await,
            Scenario::Resume(args) => resume::run(&common, args).await,
            Scenario::RedisFanout(args) => redis_fanout::run(&common, args).await,
        }
    })
}

/// A stream name no earlier run used, so syncs stay small and runs do not interfere.
fn unique_stream(scenario: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bench-{scenario}-{}-{nanos:x}", std::process::id())
}

/// A string of `n` filler characters, to pad written values to a size.
fn padding(n: usize) -> String {
    "x".repeat(n)
}
