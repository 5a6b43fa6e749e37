//! The writing side of the fan-out and resume scenarios: one worker connection writing
//! `{"t":…,"n":…}` values round-robin over groups, either at a fixed rate (open loop, paced every
//! millisecond) or as fast as the server acknowledges with a fixed number of calls in flight.

use super::engine::{Caller, Reply, WriteCall, WriteFn};
use super::stats::{self, now_ns};
use super::ws::WsError;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// What to write.
pub struct Plan {
    pub stream: String,
    pub groups: Vec<String>,
    /// Items per group; writes cycle over them.
    pub items: u64,
    pub pad: String,
    pub function: WriteFn,
    /// Writes per second over all groups; 0 writes as fast as acknowledged.
    pub rate: u64,
}

/// Counters the writer updates while it runs, read by the scenario concurrently.
pub struct Shared {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    /// Acknowledged writes per group.
    pub acked: Vec<AtomicU64>,
    /// Largest acknowledged `n` per group.
    pub last_n: Vec<AtomicU64>,
    /// `now_ns` of the first and last write sent.
    pub first_sent_ns: AtomicU64,
    pub last_sent_ns: AtomicU64,
    pub call_latency: Mutex<Histogram<u64>>,
}

impl Shared {
    pub fn new(groups: usize) -> Self {
        Self {
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            acked: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            last_n: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            first_sent_ns: AtomicU64::new(0),
            last_sent_ns: AtomicU64::new(0),
            call_latency: Mutex::new(stats::histogram()),
        }
    }

    pub fn total_acked(&self) -> u64 {
        self.acked.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }

    /// The write numbered `n` (from 1) went to this group.
    pub fn group_of(&self, n: u64) -> usize {
        ((n - 1) % self.acked.len() as u64) as usize
    }

    fn on_reply(&self, reply: Reply, latency: &mut Histogram<u64>) {
        stats::record_ns(latency, reply.latency_ns);
        if !reply.ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let group = self.group_of(reply.tag);
        self.acked[group].fetch_add(1, Ordering::Relaxed);
        self.last_n[group].fetch_max(reply.tag, Ordering::Relaxed);
    }
}

/// Writes until `until`, then waits (bounded) for the outstanding answers.
pub async fn run(
    caller: &mut Caller,
    plan: &Plan,
    shared: &Shared,
    until: Instant,
) -> Result<(), WsError> {
    let started = Instant::now();
    let mut n = 0u64;
    let mut latency = stats::histogram();
    let paced = plan.rate > 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    if !paced {
        while send(plan, shared, caller, &mut n) {}
        caller.flush().await?;
    }
    loop {
        tokio::select! {
            filled = caller.fill() => {
                filled?;
                caller.take_replies(|reply| shared.on_reply(reply, &mut latency))?;
                if !paced && Instant::now() < until {
                    while send(plan, shared, caller, &mut n) {}
                }
                caller.flush().await?;
            }
            _ = tick.tick(), if paced => {
                let due = (started.elapsed().as_secs_f64() * plan.rate as f64) as u64;
                while n < due && send(plan, shared, caller, &mut n) {}
                caller.flush().await?;
            }
            () = tokio::time::sleep_until(until) => break,
        }
        if Instant::now() >= until {
            break;
        }
    }
    caller
        .drain(Duration::from_secs(30), |reply| {
            shared.on_reply(reply, &mut latency)
        })
        .await?;
    let _ = shared.call_latency.lock().add(&latency);
    Ok(())
}

/// Queues the write numbered `*n + 1`, if the window has room.
fn send(plan: &Plan, shared: &Shared, caller: &mut Caller, n: &mut u64) -> bool {
    let groups = plan.groups.len() as u64;
    let group = (*n % groups) as usize;
    let write = WriteCall {
        function: plan.function,
        stream: &plan.stream,
        group: &plan.groups[group],
        item: (*n / groups) % plan.items.max(1),
        t: now_ns(),
        n: *n + 1,
        pad: &plan.pad,
    };
    if !caller.call(*n + 1, |out, id| write.encode(out, id)) {
        return false;
    }
    if *n == 0 {
        shared.first_sent_ns.store(write.t, Ordering::Relaxed);
    }
    shared.last_sent_ns.store(write.t, Ordering::Relaxed);
    *n += 1;
    shared.sent.store(*n, Ordering::Relaxed);
    true
}
