//! `bench fanout`: N subscribers joined to G groups, one writer at a given rate or as fast as the
//! server acknowledges. Reports deliveries/s, delivery latency (from the send time embedded in
//! each value to its arrival) and loss: every acknowledged write must reach every subscriber of
//! its group, in `seq` order.

use super::delivery::{Batch, Deliveries, Pace};
use super::engine::{Caller, WriteFn};
use super::output::Report;
use super::procfs::CpuMeter;
use super::stats::{self, now_ns};
use super::sub::{self, Frame, Subscriber};
use super::ws::{self, OP_CLOSE, OP_PING, OP_TEXT, WsError, WsReader, WsWriter};
use super::{Common, padding, progress, unique_stream, writer};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pace: Pace,
    /// Subscriber connections (one group subscription each).
    #[arg(long, short = 'n', default_value_t = 1000)]
    subscribers: usize,
    /// Groups; subscriber i joins group i mod groups, writes go round-robin over them.
    #[arg(long, short = 'g', default_value_t = 1)]
    groups: usize,
    /// Items per group the writes cycle over (the size of each join's sync).
    #[arg(long, default_value_t = 16)]
    items: u64,
    /// Extra bytes of padding in each written value.
    #[arg(long, default_value_t = 0)]
    value_bytes: usize,
    /// The write function.
    #[arg(long, value_enum, default_value_t = WriteFn::Set)]
    function: WriteFn,
    /// Handshakes in progress at once while subscribers connect.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Seconds to wait for missing deliveries after the last write, once no more arrive.
    #[arg(long, default_value_t = 5.0)]
    drain_timeout: f64,
    /// Stream name [default: a fresh one].
    #[arg(long)]
    stream: Option<String>,
}

pub async fn run(common: &Common, args: Args) -> anyhow::Result<()> {
    let stream_addr = common.stream_addr().await?;
    let engine_addr = common.engine_addr().await?;
    let groups = args.groups.max(1);
    let stream = args
        .stream
        .clone()
        .unwrap_or_else(|| unique_stream("fanout"));
    let group_names: Vec<String> = (0..groups).map(|g| format!("g{g}")).collect();
    let deliveries = Arc::new(Deliveries::new());
    let ready = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let per_group: Vec<u64> = (0..groups)
        .map(|g| (args.subscribers + groups - 1 - g) as u64 / groups as u64)
        .collect();

    // Subscribers: connect and sync first, so that every write reaches all of them.
    let bar = progress::bar(common.quiet, args.subscribers as u64, "subscribing");
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.subscribers {
        let join = sub::join_message(&format!("s{i}"), &stream, &group_names[i % groups], None);
        let context = Task {
            addr: stream_addr,
            bind: common.bind_for(i),
            task: i,
            deliveries: deliveries.clone(),
            ready: ready.clone(),
        };
        let (gate, failed) = (gate.clone(), failed.clone());
        tasks.spawn(async move {
            if let Err(error) = subscribe(context, &join, gate).await {
                failed.fetch_add(1, Ordering::Relaxed);
                return Some(error.to_string());
            }
            None
        });
    }
    let mut first_failure = None;
    loop {
        let (r, f) = (
            ready.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        );
        bar.set_position(r);
        if r + f >= args.subscribers as u64 {
            break;
        }
        if f > 0 && first_failure.is_none() {
            // Collect one error message for the report.
            if let Some(Ok(Some(error))) = tasks.try_join_next() {
                first_failure = Some(error);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        while first_failure.is_none() {
            match tasks.join_next().await {
                Some(Ok(Some(error))) => first_failure = Some(error),
                Some(_) => continue,
                None => break,
            }
        }
        tasks.abort_all();
        anyhow::bail!(
            "{failed} of {} subscribers failed to join: {}",
            args.subscribers,
            first_failure.unwrap_or_default()
        );
    }

    // The writer.
    let mut caller = Caller::connect(engine_addr, common.bind_for(0), args.pace.in_flight)
        .await
        .with_context(|| format!("cannot connect to the engine port at {engine_addr}"))?;
    let plan = writer::Plan {
        stream: stream.clone(),
        groups: group_names,
        items: args.items.max(1),
        pad: padding(args.value_bytes),
        function: args.function,
        rate: args.pace.rate,
    };
    let shared = Arc::new(writer::Shared::new(groups));
    let cpu = CpuMeter::start(common.server().as_ref());
    deliveries.measure_from_ns.store(
        now_ns() + (args.pace.warmup * 1e9) as u64,
        Ordering::Relaxed,
    );
    let bar = progress::bar(common.quiet, 0, "deliveries");
    let until = Instant::now() + Duration::from_secs_f64(args.pace.duration);
    let writing = writer::run(&mut caller, &plan, &shared, until);
    let ticking = async {
        loop {
            bar.set_position(deliveries.received.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        written = writing => written.context("the writer failed")?,
        () = ticking => {}
    }
    caller.close().await;

    // Wait for the deliveries still in flight, as long as they keep coming.
    let expected: u64 = shared
        .acked
        .iter()
        .zip(&per_group)
        .map(|(acked, subs)| acked.load(Ordering::Relaxed) * subs)
        .sum();
    let quiet = Duration::from_secs_f64(args.drain_timeout);
    deliveries
        .settle(
            expected,
            quiet,
            |seen| bar.set_position(seen),
            || tasks.is_empty(),
        )
        .await;
    let cpu_reading = cpu.finish(Some(deliveries.received.load(Ordering::Relaxed)));
    bar.finish_and_clear();
    tasks.abort_all();

    let first_sent = shared.first_sent_ns.load(Ordering::Relaxed);
    let last_sent = shared.last_sent_ns.load(Ordering::Relaxed);
    let acked = shared.total_acked();
    let write_seconds = last_sent.saturating_sub(first_sent) as f64 / 1e9;
    let subs_per_write = args.subscribers as f64 / groups as f64;
    let mut report = Report::new("fanout", common);
    report
        .set("target", "iii-stream")
        .set("subscribers", args.subscribers)
        .set("groups", groups)
        .set("rate", args.pace.rate)
        .set("in_flight", args.pace.in_flight)
        .set("function", args.function.id())
        .set("value_bytes", args.value_bytes)
        .set("duration_s", args.pace.duration)
        .set("writes", acked)
        .set("write_errors", shared.failed.load(Ordering::Relaxed))
        .set("writes_per_s", stats::rate(acked, write_seconds))
        .set(
            "offered_deliveries_per_s",
            (stats::rate(acked, write_seconds) * subs_per_write).round(),
        )
        .set(
            "write_latency_ms",
            stats::summary(&shared.call_latency.lock()),
        )
        .merge(deliveries.report(expected, first_sent))
        .merge(cpu_reading);
    let received = deliveries.received.load(Ordering::Relaxed);
    progress::note(
        common.quiet,
        &format!(
            "fanout: {} subscribers / {} groups, {} writes: {} of {} delivered",
            args.subscribers, groups, acked, received, expected
        ),
    );
    report.emit();
    Ok(())
}

struct Task {
    addr: SocketAddr,
    bind: Option<std::net::IpAddr>,
    task: usize,
    deliveries: Arc<Deliveries>,
    ready: Arc<AtomicU64>,
}

/// One subscriber: join, sync, then count every frame until aborted or closed.
async fn subscribe(context: Task, join: &[u8], gate: Arc<Semaphore>) -> Result<(), WsError> {
    let permit = gate.acquire_owned().await;
    let mut subscriber = Subscriber::join(context.addr, context.bind, 16 << 10, join).await?;
    let (position, _) = subscriber.await_sync().await?;
    drop(permit);
    context.ready.fetch_add(1, Ordering::Relaxed);
    let Subscriber {
        mut reader,
        mut writer,
        ..
    } = subscriber;
    let error = match count(&context, &mut reader, &mut writer, position.seq).await {
        Ok(never) => match never {},
        Err(error) => error,
    };
    context.deliveries.closed.fetch_add(1, Ordering::Relaxed);
    Err(error)
}

/// Counts every event frame until the connection ends. Frames read by one socket read are
/// accounted for together, with one timestamp.
async fn count(
    context: &Task,
    reader: &mut WsReader,
    writer: &mut WsWriter,
    synced_seq: u64,
) -> Result<std::convert::Infallible, WsError> {
    let mut last_seq = synced_seq;
    let mut batch = Batch::default();
    loop {
        let now = now_ns();
        while let Some(message) = reader.try_next()? {
            match message.opcode {
                OP_TEXT => {
                    if let Frame::Event { seq, t, .. } = sub::classify(message.payload) {
                        batch.add(message.payload.len(), t, seq == last_seq + 1);
                        last_seq = seq;
                    }
                }
                OP_PING => writer.pong(message.payload),
                OP_CLOSE => {
                    let code = ws::close_code(message.payload);
                    context.deliveries.batch(context.task, &mut batch, now);
                    return Err(WsError::Closed { code });
                }
                _ => {}
            }
        }
        context.deliveries.batch(context.task, &mut batch, now);
        if writer.pending() > 0 {
            writer.flush().await?;
        }
        reader.fill().await?;
    }
}
