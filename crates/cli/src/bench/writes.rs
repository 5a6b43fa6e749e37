//! `bench writes`: C worker connections, each keeping W calls of `stream::set` (or
//! `stream::update`) in flight, closed loop. Throughput and call latency over the measured
//! window (after a warm-up).

use super::engine::{Caller, WriteCall, WriteFn};
use super::output::Report;
use super::procfs::CpuMeter;
use super::stats::{self, now_ns};
use super::{Common, padding, progress, unique_stream};
use anyhow::Context;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Worker connections.
    #[arg(long, short = 'c', default_value_t = 1)]
    connections: usize,
    /// Calls in flight per connection.
    #[arg(long, short = 'w', default_value_t = 64)]
    in_flight: usize,
    /// The function to call.
    #[arg(long, value_enum, default_value_t = WriteFn::Set)]
    function: WriteFn,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Groups written to; connection c writes group c mod groups.
    #[arg(long, default_value_t = 1)]
    groups: usize,
    /// Items per group; each connection cycles over them.
    #[arg(long, default_value_t = 1000)]
    items: u64,
    /// Extra bytes of padding in each written value.
    #[arg(long, default_value_t = 0)]
    value_bytes: usize,
    /// Stream name [default: a fresh one].
    #[arg(long)]
    stream: Option<String>,
}

struct Tally {
    calls: u64,
    errors: u64,
    latency: Histogram<u64>,
}

pub async fn run(common: &Common, args: Args) -> anyhow::Result<()> {
    let addr = common.engine_addr().await?;
    let stream = Arc::new(
        args.stream
            .clone()
            .unwrap_or_else(|| unique_stream("writes")),
    );
    let pad = Arc::new(padding(args.value_bytes));
    let groups = args.groups.max(1);
    let warmup = Duration::from_secs_f64(args.warmup);
    let measured = Duration::from_secs_f64(args.duration);
    let completed = Arc::new(AtomicU64::new(0));

    let mut callers = Vec::with_capacity(args.connections);
    for c in 0..args.connections {
        let caller = Caller::connect(addr, common.bind_for(c), args.in_flight)
            .await
            .with_context(|| format!("cannot connect to the engine port at {addr}"))?;
        callers.push(caller);
    }
    let bar = progress::bar(common.quiet, 0, "calls");
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measured;
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut caller) in callers.into_iter().enumerate() {
        let (stream, pad, completed) = (stream.clone(), pad.clone(), completed.clone());
        let function = args.function;
        let items = args.items.max(1);
        tasks.spawn(async move {
            let group = format!("g{}", c % groups);
            let mut next = 0u64;
            let mut tally = Tally {
                calls: 0,
                errors: 0,
                latency: stats::histogram(),
            };
            let mut issue = |caller: &mut Caller| {
                while caller.free_slots() > 0 {
                    let write = WriteCall {
                        function,
                        stream: &stream,
                        group: &group,
                        item: next % items,
                        t: now_ns(),
                        n: next,
                        pad: &pad,
                    };
                    caller.call(0, |out, id| write.encode(out, id));
                    next += 1;
                }
            };
            issue(&mut caller);
            let result: Result<(), super::ws::WsError> = async {
                caller.flush().await?;
                while Instant::now() < end {
                    caller.fill().await?;
                    let measuring = Instant::now() >= measure_from;
                    let mut done = 0;
                    caller.take_replies(|reply| {
                        done += 1;
                        if measuring {
                            tally.calls += 1;
                            tally.errors += u64::from(!reply.ok);
                            stats::record_ns(&mut tally.latency, reply.latency_ns);
                        }
                    })?;
                    completed.fetch_add(done, Ordering::Relaxed);
                    issue(&mut caller);
                    caller.flush().await?;
                }
                // Answers arriving after the window are not counted.
                caller.drain(Duration::from_secs(10), |_| {}).await
            }
            .await;
            caller.close().await;
            result.map(|()| tally)
        });
    }
    let mut cpu = None;
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            bar.set_position(completed.load(Ordering::Relaxed));
            if cpu.is_none() && Instant::now() >= measure_from {
                cpu = Some(CpuMeter::start(common.server().as_ref()));
            }
        }
    };
    let mut tallies = Vec::new();
    tokio::select! {
        () = ticker => {}
        () = async {
            while let Some(joined) = tasks.join_next().await {
                tallies.push(joined);
            }
        } => {}
    }
    bar.finish_and_clear();
    let cpu = cpu.unwrap_or_else(|| CpuMeter::start(common.server().as_ref()));

    let mut total = Tally {
        calls: 0,
        errors: 0,
        latency: stats::histogram(),
    };
    let mut failures = Vec::new();
    for joined in tallies {
        match joined.context("a connection task panicked")? {
            Ok(t) => {
                total.calls += t.calls;
                total.errors += t.errors;
                let _ = total.latency.add(&t.latency);
            }
            Err(error) => failures.push(error.to_string()),
        }
    }
    if !failures.is_empty() {
        anyhow::bail!("{} connection(s) failed: {}", failures.len(), failures[0]);
    }
    let cpu_reading = cpu.finish(Some(total.calls));
    let seconds = measured.as_secs_f64();
    let mut report = Report::new("writes", common);
    report
        .set("function", args.function.id())
        .set("connections", args.connections)
        .set("in_flight", args.in_flight)
        .set("groups", groups)
        .set("items", args.items)
        .set("value_bytes", args.value_bytes)
        .set("duration_s", seconds)
        .set("calls", total.calls)
        .set("errors", total.errors)
        .set("calls_per_s", stats::rate(total.calls, seconds))
        .set("latency_ms", stats::summary(&total.latency))
        .merge(cpu_reading);
    progress::note(
        common.quiet,
        &format!(
            "writes: {} × {} in flight, {}: {} calls/s, {} errors",
            args.connections,
            args.in_flight,
            args.function.id(),
            stats::rate(total.calls, seconds),
            total.errors
        ),
    );
    report.emit();
    Ok(())
}
