//! `bench resume`: N subscribers follow a group while a writer keeps writing; all of them drop
//! their connections at once, stay away for a while, and rejoin with `since` (the `(epoch, seq)`
//! of the last frame they applied), or with a plain join for comparison. Reports the time each
//! needs to converge (to hold a value at least as new as the last write acknowledged when it
//! rejoined), how many rejoins were answered by a replay and how many by a sync, the frames and
//! bytes it took, and whether a replay continued exactly where the client left off.

use super::engine::{Caller, WriteFn};
use super::output::Report;
use super::procfs::CpuMeter;
use super::stats::{self, Latency, now_ns};
use super::sub::{self, Frame, Position, Subscriber};
use super::ws::{self, OP_CLOSE, OP_PING, OP_TEXT, WsError};
use super::{Common, padding, progress, unique_stream, writer};
use anyhow::Context;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Subscribers that disconnect and rejoin.
    #[arg(long, short = 'n', default_value_t = 1000)]
    clients: usize,
    /// Groups; client i follows group i mod groups.
    #[arg(long, short = 'g', default_value_t = 1)]
    groups: usize,
    /// Writes per second (all groups together), before, during and after the outage.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Seconds of following before the disconnect.
    #[arg(long, default_value_t = 2.0)]
    warm: f64,
    /// Milliseconds the clients stay disconnected.
    #[arg(long, default_value_t = 500)]
    down_ms: u64,
    /// Seconds of writing after the rejoin starts.
    #[arg(long, default_value_t = 3.0)]
    after: f64,
    /// Rejoin with `since` (resume) or with a plain join (full sync).
    #[arg(long, value_enum, default_value_t = Mode::Since)]
    mode: Mode,
    /// Items per group the writes cycle over (the size of a full sync).
    #[arg(long, default_value_t = 100)]
    items: u64,
    /// Extra bytes of padding in each written value.
    #[arg(long, default_value_t = 0)]
    value_bytes: usize,
    /// Joins in progress at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Since,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Follow,
    Disconnect,
    /// Rejoin; converged once a value with `n >=` the group's target is held.
    Rejoin(Arc<Vec<u64>>),
    Stop,
}

/// Counters shared by the client tasks.
struct Tally {
    ready: AtomicU64,
    away: AtomicU64,
    converged: AtomicU64,
    failed: AtomicU64,
    replayed: AtomicU64,
    synced: AtomicU64,
    frames_to_converge: AtomicU64,
    bytes_to_converge: AtomicU64,
    /// Resumed clients whose first frame did not follow their last one.
    discontinuities: AtomicU64,
    /// Gaps while following live frames.
    gaps: AtomicU64,
    converge: Latency,
}

struct Client {
    addr: SocketAddr,
    bind: Option<IpAddr>,
    index: usize,
    stream: Arc<String>,
    group: String,
    mode: Mode,
    tally: Arc<Tally>,
    gate: Arc<Semaphore>,
}

/// What a client knows of its group.
struct Track {
    position: Position,
    max_n: u64,
}

pub async fn run(common: &Common, args: Args) -> anyhow::Result<()> {
    let stream_addr = common.stream_addr().await?;
    let engine_addr = common.engine_addr().await?;
    let groups = args.groups.max(1);
    let stream = Arc::new(unique_stream("resume"));
    let group_names: Vec<String> = (0..groups).map(|g| format!("g{g}")).collect();

    let mut caller = Caller::connect(engine_addr, common.bind_for(0), 64)
        .await
        .with_context(|| format!("cannot connect to the engine port at {engine_addr}"))?;
    let plan = writer::Plan {
        stream: (*stream).clone(),
        groups: group_names.clone(),
        items: args.items.max(1),
        pad: padding(args.value_bytes),
        function: WriteFn::Set,
        rate: args.rate.max(1),
    };
    let shared = Arc::new(writer::Shared::new(groups));

    let tally = Arc::new(Tally {
        ready: AtomicU64::new(0),
        away: AtomicU64::new(0),
        converged: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        replayed: AtomicU64::new(0),
        synced: AtomicU64::new(0),
        frames_to_converge: AtomicU64::new(0),
        bytes_to_converge: AtomicU64::new(0),
        discontinuities: AtomicU64::new(0),
        gaps: AtomicU64::new(0),
        converge: Latency::new(16),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Follow);
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.clients {
        let client = Client {
            addr: stream_addr,
            bind: common.bind_for(i + 1),
            index: i,
            stream: stream.clone(),
            group: group_names[i % groups].clone(),
            mode: args.mode,
            tally: tally.clone(),
            gate: gate.clone(),
        };
        let phase = phase_rx.clone();
        tasks.spawn(async move {
            let result = client.run(phase).await;
            if let Err(error) = &result {
                client.tally.failed.fetch_add(1, Ordering::Relaxed);
                return Some(error.to_string());
            }
            None
        });
    }
    let bar = progress::bar(common.quiet, args.clients as u64, "joining");
    wait_until(&bar, || {
        tally.ready.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed)
            >= args.clients as u64
    })
    .await;
    if tally.failed.load(Ordering::Relaxed) > 0 {
        let error = first_error(&mut tasks).await;
        anyhow::bail!("clients failed to join: {}", error.unwrap_or_default());
    }

    let metrics_before = scrape_resumes(stream_addr).await;
    let cpu = CpuMeter::start(common.server().as_ref());
    let total = Duration::from_secs_f64(args.warm)
        + Duration::from_millis(args.down_ms)
        + Duration::from_secs_f64(args.after);
    let until = Instant::now() + total;
    let writing = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let result = writer::run(&mut caller, &plan, &shared, until).await;
            caller.close().await;
            result
        })
    };
    tokio::time::sleep(Duration::from_secs_f64(args.warm)).await;
    let _ = phase_tx.send(Phase::Disconnect);
    bar.set_message("disconnecting");
    wait_until(&bar, || {
        tally.away.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed)
            >= args.clients as u64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(args.down_ms)).await;
    let targets: Vec<u64> = shared
        .last_n
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .collect();
    let rejoin_started = Instant::now();
    let _ = phase_tx.send(Phase::Rejoin(Arc::new(targets)));
    bar.set_message("converging");
    bar.set_position(0);
    let converged_in_time = tokio::time::timeout(
        Duration::from_secs(60),
        wait_until(&bar, || {
            tally.converged.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed)
                >= args.clients as u64
        }),
    )
    .await
    .is_ok();
    let all_converged = rejoin_started.elapsed();
    let written = writing.await.context("the writer panicked")?;
    let _ = phase_tx.send(Phase::Stop);
    let cpu_reading = cpu.finish(None);
    bar.finish_and_clear();
    let errors = first_error(&mut tasks).await;
    tasks.abort_all();
    written.context("the writer failed")?;
    let metrics_after = scrape_resumes(stream_addr).await;

    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let mut report = Report::new("resume", common);
    report
        .set("mode", format!("{:?}", args.mode).to_lowercase())
        .set("clients", args.clients)
        .set("groups", groups)
        .set("rate", args.rate)
        .set("items", args.items)
        .set("down_ms", args.down_ms)
        .set("writes", shared.total_acked())
        .set("converged", get(&tally.converged))
        .set("failed", get(&tally.failed))
        .set("first_error", errors)
        .set("all_converged", converged_in_time)
        .set(
            "time_to_converge_all_ms",
            (all_converged.as_secs_f64() * 1e6).round() / 1e3,
        )
        .set(
            "time_to_converge_ms",
            stats::summary(&tally.converge.merged()),
        )
        .set("rejoins_replayed", get(&tally.replayed))
        .set("rejoins_synced", get(&tally.synced))
        .set("frames_to_converge", get(&tally.frames_to_converge))
        .set("bytes_to_converge", get(&tally.bytes_to_converge))
        .set("discontinuities", get(&tally.discontinuities))
        .set("live_gaps", get(&tally.gaps))
        .set(
            "server_resumes",
            json!({
                "replayed": delta(&metrics_before, &metrics_after, 0),
                "resynced": delta(&metrics_before, &metrics_after, 1),
            }),
        )
        .merge(cpu_reading);
    progress::note(
        common.quiet,
        &format!(
            "resume ({:?}): {} clients converged in {:.1} ms; {} replayed, {} synced, {} frames",
            args.mode,
            get(&tally.converged),
            all_converged.as_secs_f64() * 1e3,
            get(&tally.replayed),
            get(&tally.synced),
            get(&tally.frames_to_converge)
        ),
    );
    report.emit();
    Ok(())
}

async fn wait_until(bar: &indicatif::ProgressBar, mut done: impl FnMut() -> bool) {
    while !done() {
        bar.tick();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn first_error(tasks: &mut tokio::task::JoinSet<Option<String>>) -> Option<String> {
    while let Some(Ok(result)) = tasks.try_join_next() {
        if result.is_some() {
            return result;
        }
    }
    None
}

impl Client {
    async fn run(&self, mut phase: watch::Receiver<Phase>) -> Result<(), WsError> {
        let tally = &*self.tally;
        let id = format!("s{}", self.index);
        let join = sub::join_message(&id, &self.stream, &self.group, None);
        let permit = self.gate.acquire().await;
        let mut subscriber = Subscriber::join(self.addr, self.bind, 16 << 10, &join).await?;
        let (position, max_n) = subscriber.await_sync().await?;
        drop(permit);
        let mut track = Track {
            position,
            max_n: max_n.unwrap_or(0),
        };
        tally.ready.fetch_add(1, Ordering::Relaxed);
        self.follow(&mut subscriber, &mut track, &mut phase, |p| {
            *p != Phase::Follow
        })
        .await?;
        // An abrupt end, as a network failure would be: no Close handshake.
        drop(subscriber);
        tally.away.fetch_add(1, Ordering::Relaxed);
        let targets = match phase.wait_for(|p| matches!(p, Phase::Rejoin(_))).await {
            Ok(p) => match &*p {
                Phase::Rejoin(targets) => targets.clone(),
                _ => return Ok(()),
            },
            Err(_) => return Ok(()),
        };
        let target = targets[self.index % targets.len()];
        let since = (self.mode == Mode::Since).then(|| track.position.clone());
        let join = sub::join_message(&id, &self.stream, &self.group, since.as_ref());
        let permit = self.gate.acquire().await;
        let mut subscriber = Subscriber::join(self.addr, self.bind, 16 << 10, &join).await?;
        drop(permit);
        let (mut frames, mut bytes, mut first) = (0u64, 0u64, true);
        while track.max_n < target {
            let message = subscriber.reader.next().await?;
            match message.opcode {
                OP_TEXT => {
                    frames += 1;
                    bytes += message.payload.len() as u64;
                    match sub::classify(message.payload) {
                        Frame::Sync { seq, max_n } => {
                            if first {
                                tally.synced.fetch_add(1, Ordering::Relaxed);
                            }
                            track.position = Position {
                                epoch: sub::epoch(message.payload).unwrap_or_default(),
                                seq,
                            };
                            track.max_n = track.max_n.max(max_n.unwrap_or(0));
                        }
                        Frame::Event { seq, n, .. } => {
                            if first {
                                tally.replayed.fetch_add(1, Ordering::Relaxed);
                                if seq != track.position.seq + 1 {
                                    tally.discontinuities.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            track.position.seq = seq;
                            track.max_n = track.max_n.max(n.unwrap_or(0));
                        }
                        _ => continue,
                    }
                    first = false;
                }
                OP_PING => {
                    let payload = message.payload.to_vec();
                    subscriber.writer.pong(&payload);
                    subscriber.writer.flush().await?;
                }
                OP_CLOSE => {
                    return Err(WsError::Closed {
                        code: ws::close_code(message.payload),
                    });
                }
                _ => {}
            }
        }
        stats::record_ns(
            &mut tally.converge.shard(self.index),
            now_ns() - subscriber.started_ns,
        );
        tally
            .frames_to_converge
            .fetch_add(frames, Ordering::Relaxed);
        tally.bytes_to_converge.fetch_add(bytes, Ordering::Relaxed);
        tally.converged.fetch_add(1, Ordering::Relaxed);
        self.follow(&mut subscriber, &mut track, &mut phase, |p| {
            *p == Phase::Stop
        })
        .await
    }

    /// Applies live frames until the phase satisfies `leave`.
    async fn follow(
        &self,
        subscriber: &mut Subscriber,
        track: &mut Track,
        phase: &mut watch::Receiver<Phase>,
        leave: impl Fn(&Phase) -> bool,
    ) -> Result<(), WsError> {
        loop {
            while let Some(message) = subscriber.reader.try_next()? {
                match message.opcode {
                    OP_TEXT => {
                        if let Frame::Event { seq, n, .. } = sub::classify(message.payload) {
                            if seq != track.position.seq + 1 {
                                self.tally.gaps.fetch_add(1, Ordering::Relaxed);
                            }
                            track.position.seq = seq;
                            track.max_n = track.max_n.max(n.unwrap_or(0));
                        }
                    }
                    OP_PING => subscriber.writer.pong(message.payload),
                    OP_CLOSE => {
                        return Err(WsError::Closed {
                            code: ws::close_code(message.payload),
                        });
                    }
                    _ => {}
                }
            }
            subscriber.writer.flush().await?;
            if leave(&phase.borrow()) {
                return Ok(());
            }
            tokio::select! {
                filled = subscriber.reader.fill() => filled?,
                changed = phase.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }
}

/// `iii_stream_resumes_total` by outcome (replayed, resynced) from the server's `/metrics`, if
/// it serves them.
async fn scrape_resumes(addr: SocketAddr) -> Option<[f64; 2]> {
    let text = http_get(addr, "/metrics").await.ok()?;
    let value = |outcome: &str| {
        let prefix = format!("iii_stream_resumes_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Some([value("replayed"), value("resynced")])
}

fn delta(before: &Option<[f64; 2]>, after: &Option<[f64; 2]>, i: usize) -> Option<f64> {
    Some(after.as_ref()?[i] - before.as_ref()?[i])
}

/// A plain HTTP/1.1 GET; the body as text.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let text = String::from_utf8_lossy(&response);
    Ok(text
        .split_once("\r\n\r\n")
        .map_or_else(String::new, |(_, body)| body.to_owned()))
}
