//! `bench idle`: N subscriber connections held open, each with one group subscription (or none);
//! the server's resident memory per connection, from its `/proc/<pid>/status` before and after.

use super::output::Report;
use super::procfs::{self, CpuMeter};
use super::sub::{self, Subscriber};
use super::{Common, progress, unique_stream};
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Connections to hold open.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    connections: usize,
    /// Groups joined round-robin (one subscription per connection); 0 joins nothing.
    #[arg(long, short = 'g', default_value_t = 100)]
    groups: usize,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Seconds to let the server settle before reading its memory.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds to keep the connections open after measuring (e.g. to profile the server).
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
}

pub async fn run(common: &Common, args: Args) -> anyhow::Result<()> {
    let server = common
        .server()
        .context("idle measures the server's memory: pass --server-pid")?;
    procfs::check_open_files(args.connections).map_err(anyhow::Error::msg)?;
    let addr = common.stream_addr().await?;
    let stream = unique_stream("idle");
    let rss_before = server.rss_bytes()?;
    let ready = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let bar = progress::bar(common.quiet, args.connections as u64, "connecting");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let join = (args.groups > 0).then(|| {
            sub::join_message(
                &format!("s{i}"),
                &stream,
                &format!("g{}", i % args.groups),
                None,
            )
        });
        let (ready, failed, dropped, gate) =
            (ready.clone(), failed.clone(), dropped.clone(), gate.clone());
        let bind = common.bind_for(i);
        tasks.spawn(async move {
            let connected = async {
                let _permit = gate.acquire_owned().await;
                let mut subscriber = match &join {
                    Some(join) => {
                        let mut s = Subscriber::join(addr, bind, 1024, join).await?;
                        s.await_sync().await?;
                        s
                    }
                    None => {
                        let (reader, writer) = super::ws::connect(addr, bind, "/", 1024).await?;
                        Subscriber {
                            reader,
                            writer,
                            started_ns: 0,
                        }
                    }
                };
                subscriber.writer.flush().await?;
                Ok::<_, super::ws::WsError>(subscriber)
            }
            .await;
            match connected {
                Ok(subscriber) => {
                    ready.fetch_add(1, Ordering::Relaxed);
                    let ended = subscriber.hold().await;
                    dropped.fetch_add(1, Ordering::Relaxed);
                    ended.to_string()
                }
                Err(error) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    error.to_string()
                }
            }
        });
    }
    loop {
        let (r, f) = (
            ready.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        );
        bar.set_position(r);
        if f > 0 {
            let error = tasks
                .join_next()
                .await
                .and_then(Result::ok)
                .unwrap_or_default();
            tasks.abort_all();
            anyhow::bail!("{f} connections failed: {error}");
        }
        if r >= args.connections as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let cpu = CpuMeter::start(Some(&server));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_cpu = cpu.finish(None);
    let rss_after = server.rss_bytes()?;
    // Connections the server closed while they were held.
    let open = args.connections as u64 - dropped.load(Ordering::Relaxed);
    if args.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed = server.rss_bytes()?;

    let grown = rss_after.saturating_sub(rss_before);
    let per_connection = grown / args.connections.max(1) as u64;
    let mut report = Report::new("idle", common);
    report
        .set("connections", args.connections)
        .set("groups", args.groups)
        .set("server_rss_before_bytes", rss_before)
        .set("server_rss_after_bytes", rss_after)
        .set("server_rss_after_close_bytes", rss_closed)
        .set("server_rss_per_connection_bytes", per_connection)
        .set("open_at_measurement", open)
        .set(
            "idle_server_cores",
            idle_cpu.get("server_cores").cloned().unwrap_or_default(),
        );
    progress::note(
        common.quiet,
        &format!(
            "idle: {} connections: server RSS {} → {} KiB, {} bytes per connection",
            args.connections,
            rss_before / 1024,
            rss_after / 1024,
            per_connection
        ),
    );
    report.emit();
    Ok(())
}
