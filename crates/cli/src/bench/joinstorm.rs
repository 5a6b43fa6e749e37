//! `bench joinstorm`: N clients connect and join as fast as the server lets them, K at a time;
//! joins/s and the time from starting the TCP connect to receiving the sync. Joined connections
//! stay open until the end, as in a real reconnect storm.

use super::output::Report;
use super::procfs::{self, CpuMeter};
use super::stats::{self, Latency, now_ns};
use super::sub::Subscriber;
use super::{Common, progress, sub, unique_stream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Clients that connect and join.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    connections: usize,
    /// Connect+join in progress at once.
    #[arg(long, short = 'k', default_value_t = 256)]
    concurrency: usize,
    /// Groups joined round-robin.
    #[arg(long, short = 'g', default_value_t = 100)]
    groups: usize,
}

pub async fn run(common: &Common, args: Args) -> anyhow::Result<()> {
    procfs::check_open_files(args.connections).map_err(anyhow::Error::msg)?;
    let addr = common.stream_addr().await?;
    let stream = Arc::new(unique_stream("joinstorm"));
    let groups = args.groups.max(1);
    let synced = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let last_sync_ns = Arc::new(AtomicU64::new(0));
    let to_sync = Arc::new(Latency::new(16));
    let handshake = Arc::new(Latency::new(16));
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let bar = progress::bar(common.quiet, args.connections as u64, "joins");
    let cpu = CpuMeter::start(common.server().as_ref());
    let started_ns = now_ns();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let join = sub::join_message(&format!("s{i}"), &stream, &format!("g{}", i % groups), None);
        let (synced, failed, last, to_sync, handshake, gate) = (
            synced.clone(),
            failed.clone(),
            last_sync_ns.clone(),
            to_sync.clone(),
            handshake.clone(),
            gate.clone(),
        );
        let bind = common.bind_for(i);
        tasks.spawn(async move {
            let joined = async {
                let _permit = gate.acquire_owned().await;
                let mut subscriber = Subscriber::join(addr, bind, 1024, &join).await?;
                let upgraded = now_ns();
                subscriber.await_sync().await?;
                let done = now_ns();
                stats::record_ns(&mut handshake.shard(i), upgraded - subscriber.started_ns);
                stats::record_ns(&mut to_sync.shard(i), done - subscriber.started_ns);
                last.fetch_max(done, Ordering::Relaxed);
                Ok::<_, super::ws::WsError>(subscriber)
            }
            .await;
            match joined {
                Ok(subscriber) => {
                    synced.fetch_add(1, Ordering::Relaxed);
                    subscriber.hold().await.to_string()
                }
                Err(error) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    error.to_string()
                }
            }
        });
    }
    loop {
        let (s, f) = (
            synced.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        );
        bar.set_position(s);
        if s + f >= args.connections as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu_reading = cpu.finish(Some(synced.load(Ordering::Relaxed)));
    bar.finish_and_clear();
    let failed = failed.load(Ordering::Relaxed);
    let first_error = if failed > 0 {
        let mut error = String::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(message) = joined {
                error = message;
                break;
            }
        }
        Some(error)
    } else {
        None
    };
    tasks.abort_all();

    let synced = synced.load(Ordering::Relaxed);
    let seconds = last_sync_ns
        .load(Ordering::Relaxed)
        .saturating_sub(started_ns) as f64
        / 1e9;
    let mut report = Report::new("joinstorm", common);
    report
        .set("connections", args.connections)
        .set("concurrency", args.concurrency)
        .set("groups", groups)
        .set("joined", synced)
        .set("failed", failed)
        .set("first_error", first_error)
        .set("seconds", (seconds * 1000.0).round() / 1000.0)
        .set("joins_per_s", stats::rate(synced, seconds))
        .set("time_to_sync_ms", stats::summary(&to_sync.merged()))
        .set("handshake_ms", stats::summary(&handshake.merged()))
        .merge(cpu_reading);
    progress::note(
        common.quiet,
        &format!(
            "joinstorm: {synced} joins in {seconds:.2} s: {} joins/s, {failed} failed",
            stats::rate(synced, seconds)
        ),
    );
    report.emit();
    Ok(())
}
