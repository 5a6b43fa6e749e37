//! `iii-stream`: the command line of the server.

mod bench;
mod logging;

use anyhow::Context;

/// jemalloc, with a background thread that returns freed pages to the system a second after they
/// were freed (options in .cargo/config.toml): glibc's allocator kept the RSS of a burst (a flood
/// of fresh group names, a queue of replies) long after it was freed (docs/limits.md, "Memory
/// goes back").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use clap::{Parser, Subcommand};
use iii_stream_server::Server;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "iii-stream",
    version,
    about = "Durable real-time streams for iii workers"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "III_LOG_FORMAT", default_value = "text")]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// YAML configuration file (default: ./config.yaml if it exists, else built-in defaults).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Drive a running server with load over its real protocols; one JSON line per result.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let logging = logging::init(cli.log_format);
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Bench(args) => bench::run(args),
    };
    let code = match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    };
    logging.finish();
    code
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = iii_stream_config::load(config.as_deref())?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        server.run(shutdown_signal()).await;
        anyhow::Ok(())
    })
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once (the store stays
/// consistent: every acknowledged write is already durable).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting immediately");
        std::process::exit(130);
    });
}
