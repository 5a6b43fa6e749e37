//! `bench redis-fanout`: the reference for `fanout`. N connections SUBSCRIBE to one channel of a
//! Redis server and one connection PUBLISHes `{"t":…,"n":…}` payloads at a rate or as fast as
//! Redis answers, with the same statistics as our fan-out. Run it in the same minute as `fanout`
//! so that the ratio between the two survives a noisy machine.

use super::delivery::{Batch, Deliveries, Pace};
use super::output::Report;
use super::procfs::CpuMeter;
use super::resp::{self, RespError, RespReader, Value};
use super::scan::{self, KEYS};
use super::stats::{self, now_ns};
use super::{Common, padding, progress};
use anyhow::Context;
use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pace: Pace,
    /// Redis server address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    redis: String,
    /// Subscriber connections.
    #[arg(long, short = 'n', default_value_t = 1000)]
    subscribers: usize,
    /// Payload size in bytes (at least the timestamp and counter); match it to the frame size
    /// `fanout` reports as `bytes_per_delivery` for a like-for-like comparison.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Subscriptions in progress at once while connecting.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Seconds to wait for missing deliveries once no more arrive.
    #[arg(long, default_value_t = 5.0)]
    drain_timeout: f64,
}

pub async fn run(common: &Common, args: Args) -> anyhow::Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host(&args.redis)
        .await
        .with_context(|| format!("cannot resolve {}", args.redis))?
        .next()
        .with_context(|| format!("{} has no address", args.redis))?;
    let channel = Arc::new(super::unique_stream("redis"));
    let deliveries = Arc::new(Deliveries::new());
    let ready = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let bar = progress::bar(common.quiet, args.subscribers as u64, "subscribing");
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.subscribers {
        let (deliveries, ready, failed, gate, channel) = (
            deliveries.clone(),
            ready.clone(),
            failed.clone(),
            gate.clone(),
            channel.clone(),
        );
        let bind = common.bind_for(i);
        tasks.spawn(async move {
            let (error, subscribed) =
                subscriber(addr, bind, &channel, i, &deliveries, &ready, gate).await;
            if subscribed {
                deliveries.closed.fetch_add(1, Ordering::Relaxed);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            error.to_string()
        });
    }
    loop {
        let (r, f) = (
            ready.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        );
        bar.set_position(r);
        if f > 0 {
            tasks.abort_all();
            anyhow::bail!("{f} Redis subscribers failed to subscribe");
        }
        if r >= args.subscribers as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();

    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to Redis at {addr}"))?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = RespReader::new(read, 64 << 10);
    let pad = padding(args.payload_bytes.saturating_sub(40));
    let cpu = CpuMeter::start(common.server().as_ref());
    deliveries.measure_from_ns.store(
        now_ns() + (args.pace.warmup * 1e9) as u64,
        Ordering::Relaxed,
    );
    let bar = progress::bar(common.quiet, 0, "deliveries");
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.pace.duration);
    let mut in_flight: VecDeque<u64> = VecDeque::with_capacity(args.pace.in_flight);
    let (mut sent, mut acked, mut receivers) = (0u64, 0u64, 0u64);
    let (mut first_sent, mut last_sent) = (0u64, 0u64);
    let mut latency = stats::histogram();
    let mut out = Vec::with_capacity(64 << 10);
    let mut payload = Vec::with_capacity(args.payload_bytes + 64);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let paced = args.pace.rate > 0;
    let window = args.pace.in_flight.max(1);
    let mut publish = |out: &mut Vec<u8>, in_flight: &mut VecDeque<u64>, sent: &mut u64| {
        let t = now_ns();
        payload.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(payload, r#"{{"t":{t},"n":{},"p":"{pad}"}}"#, *sent + 1);
        resp::encode(out, &[b"PUBLISH", channel.as_bytes(), &payload]);
        in_flight.push_back(t);
        if *sent == 0 {
            first_sent = t;
        }
        last_sent = t;
        *sent += 1;
    };
    let mut finishing = false;
    loop {
        if !finishing && Instant::now() >= until {
            finishing = true;
        }
        if finishing && in_flight.is_empty() {
            break;
        }
        if !paced && !finishing {
            while in_flight.len() < window {
                publish(&mut out, &mut in_flight, &mut sent);
            }
        }
        if !out.is_empty() {
            write.write_all(&out).await?;
            out.clear();
        }
        tokio::select! {
            filled = reader.fill() => {
                filled?;
                let now = now_ns();
                while let Some(value) = reader.try_next()? {
                    let Value::Integer(count) = value else {
                        anyhow::bail!("unexpected PUBLISH reply: {value:?}");
                    };
                    if let Some(t) = in_flight.pop_front() {
                        stats::record_ns(&mut latency, now.saturating_sub(t));
                    }
                    acked += 1;
                    receivers += u64::try_from(count).unwrap_or(0);
                }
                bar.set_position(deliveries.received.load(Ordering::Relaxed));
            }
            _ = tick.tick(), if paced && !finishing => {
                let due = (started.elapsed().as_secs_f64() * args.pace.rate as f64) as u64;
                while sent < due && in_flight.len() < window {
                    publish(&mut out, &mut in_flight, &mut sent);
                }
            }
            () = tokio::time::sleep_until(until), if !finishing => {}
        }
    }
    let expected = acked * args.subscribers as u64;
    let quiet = Duration::from_secs_f64(args.drain_timeout);
    deliveries.settle(expected, quiet, |_| {}, || false).await;
    let cpu_reading = cpu.finish(Some(deliveries.received.load(Ordering::Relaxed)));
    bar.finish_and_clear();
    tasks.abort_all();

    let write_seconds = last_sent.saturating_sub(first_sent) as f64 / 1e9;
    let mut report = Report::new("redis-fanout", common);
    report
        .set("target", "redis")
        .set("subscribers", args.subscribers)
        .set("groups", 1)
        .set("rate", args.pace.rate)
        .set("in_flight", args.pace.in_flight)
        .set("payload_bytes", args.payload_bytes)
        .set("duration_s", args.pace.duration)
        .set("writes", acked)
        .set("redis_receivers", receivers)
        .set("writes_per_s", stats::rate(acked, write_seconds))
        .set(
            "offered_deliveries_per_s",
            (stats::rate(acked, write_seconds) * args.subscribers as f64).round(),
        )
        .set("write_latency_ms", stats::summary(&latency))
        .merge(deliveries.report(expected, first_sent))
        .merge(cpu_reading);
    progress::note(
        common.quiet,
        &format!(
            "redis-fanout: {} subscribers, {} publishes: {} of {} delivered",
            args.subscribers,
            acked,
            deliveries.received.load(Ordering::Relaxed),
            expected
        ),
    );
    report.emit();
    Ok(())
}

/// One SUBSCRIBEd connection: counts messages until aborted or closed; returns why it ended and
/// whether it had subscribed.
async fn subscriber(
    addr: SocketAddr,
    bind: Option<std::net::IpAddr>,
    channel: &str,
    task: usize,
    deliveries: &Deliveries,
    ready: &AtomicU64,
    gate: Arc<Semaphore>,
) -> (RespError, bool) {
    let mut subscribed = false;
    let result: Result<std::convert::Infallible, RespError> = async {
        let permit = gate.acquire_owned().await;
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(ip) = bind {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut command = Vec::new();
        resp::encode(&mut command, &[b"SUBSCRIBE", channel.as_bytes()]);
        write.write_all(&command).await?;
        let mut reader = RespReader::new(read, 16 << 10);
        // The confirmation: ["subscribe", channel, 1].
        loop {
            if let Some(value) = reader.try_next()? {
                match value {
                    Value::Array(items)
                        if items.first() == Some(&Value::Bulk(Some(b"subscribe"))) =>
                    {
                        break;
                    }
                    Value::Error(e) => {
                        return Err(RespError::Server(String::from_utf8_lossy(e).into_owned()));
                    }
                    _ => continue,
                }
            }
            reader.fill().await?;
        }
        drop(permit);
        subscribed = true;
        ready.fetch_add(1, Ordering::Relaxed);
        let mut last_n = 0;
        let mut batch = Batch::default();
        loop {
            let now = now_ns();
            while let Some(value) = reader.try_next()? {
                let Value::Array(items) = value else { continue };
                let [Value::Bulk(Some(kind)), _, Value::Bulk(Some(payload))] = items.as_slice()
                else {
                    continue;
                };
                if *kind != b"message" {
                    continue;
                }
                let n = scan::u64_after(payload, &KEYS.n).unwrap_or(0);
                batch.add(
                    payload.len(),
                    scan::u64_after(payload, &KEYS.t),
                    n == last_n + 1,
                );
                last_n = n;
            }
            deliveries.batch(task, &mut batch, now);
            reader.fill().await?;
        }
    }
    .await;
    match result {
        Ok(never) => match never {},
        Err(error) => (error, subscribed),
    }
}
