//! Delivery accounting shared by the fan-out scenarios (ours and the Redis reference): counts,
//! sequence gaps, latency from the timestamp embedded in each value, and the final report fields.

use super::stats::{self, Latency};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How the writer of a fan-out scenario (a `stream::set` caller, or the Redis `PUBLISH`er)
/// paces itself.
#[derive(clap::Args, Debug)]
pub struct Pace {
    /// Writes per second over all groups; 0 writes as fast as the server acknowledges.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Writes in flight (pipelined).
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Seconds of writing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds at the start whose deliveries count but are not timed.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

pub struct Deliveries {
    pub received: AtomicU64,
    pub bytes: AtomicU64,
    /// Frames whose sequence number did not follow the previous one of the same subscriber.
    pub gaps: AtomicU64,
    /// Subscriber connections the server closed (e.g. slow consumer) or that failed.
    pub closed: AtomicU64,
    pub last_rx_ns: AtomicU64,
    /// Values written before this instant (warm-up) do not count towards latency.
    pub measure_from_ns: AtomicU64,
    pub latency: Latency,
}

impl Deliveries {
    pub fn new() -> Self {
        Self {
            received: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            last_rx_ns: AtomicU64::new(0),
            measure_from_ns: AtomicU64::new(u64::MAX),
            latency: Latency::new(64),
        }
    }

    /// Accounts for the messages of one socket read of subscriber `task`.
    pub fn batch(&self, task: usize, batch: &mut Batch, now_ns: u64) {
        if batch.count == 0 {
            return;
        }
        self.received.fetch_add(batch.count, Ordering::Relaxed);
        self.bytes.fetch_add(batch.bytes, Ordering::Relaxed);
        if batch.gaps > 0 {
            self.gaps.fetch_add(batch.gaps, Ordering::Relaxed);
        }
        self.last_rx_ns.fetch_max(now_ns, Ordering::Relaxed);
        let from = self.measure_from_ns.load(Ordering::Relaxed);
        if batch.sent_ns.iter().any(|&t| t >= from) {
            let mut histogram = self.latency.shard(task);
            for &t in batch.sent_ns.iter().filter(|&&t| t >= from) {
                stats::record_ns(&mut histogram, now_ns.saturating_sub(t));
            }
        }
        batch.clear();
    }

    /// Waits for the deliveries still in flight: until `expected` arrived, or nothing arrived
    /// for `quiet`, or `done()` says the subscribers are gone. `progress` sees the count.
    pub async fn settle(
        &self,
        expected: u64,
        quiet: Duration,
        progress: impl Fn(u64),
        done: impl Fn() -> bool,
    ) {
        let mut last_change = Instant::now();
        let mut last_seen = self.received.load(Ordering::Relaxed);
        loop {
            let seen = self.received.load(Ordering::Relaxed);
            progress(seen);
            if seen >= expected || done() {
                return;
            }
            if seen != last_seen {
                last_seen = seen;
                last_change = Instant::now();
            } else if last_change.elapsed() > quiet {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The fields every fan-out result carries.
    pub fn report(&self, expected: u64, first_sent_ns: u64) -> Value {
        let received = self.received.load(Ordering::Relaxed);
        let last = self.last_rx_ns.load(Ordering::Relaxed);
        let seconds = last.saturating_sub(first_sent_ns) as f64 / 1e9;
        json!({
            "expected": expected,
            "received": received,
            "loss": expected.saturating_sub(received),
            "extra": received.saturating_sub(expected),
            "gaps": self.gaps.load(Ordering::Relaxed),
            "closed_connections": self.closed.load(Ordering::Relaxed),
            "deliveries_per_s": stats::rate(received, seconds),
            "bytes_per_delivery": self.bytes.load(Ordering::Relaxed).checked_div(received).unwrap_or(0),
            "delivery_latency_ms": stats::summary(&self.latency.merged()),
        })
    }
}

/// What one subscriber read in one socket read.
#[derive(Default)]
pub struct Batch {
    pub count: u64,
    pub bytes: u64,
    pub gaps: u64,
    /// Send times of the values received.
    pub sent_ns: Vec<u64>,
}

impl Batch {
    /// One delivered message; `in_order` is false when its sequence number skipped or repeated.
    pub fn add(&mut self, bytes: usize, sent_ns: Option<u64>, in_order: bool) {
        self.count += 1;
        self.bytes += bytes as u64;
        self.gaps += u64::from(!in_order);
        if let Some(t) = sent_ns {
            self.sent_ns.push(t);
        }
    }

    fn clear(&mut self) {
        self.count = 0;
        self.bytes = 0;
        self.gaps = 0;
        self.sent_ns.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_expected_minus_received() {
        let d = Deliveries::new();
        d.measure_from_ns.store(0, Ordering::Relaxed);
        let mut batch = Batch::default();
        batch.add(100, Some(1_000_000), true);
        batch.add(100, Some(2_000_000), false);
        d.batch(0, &mut batch, 3_000_000);
        assert_eq!(batch.count, 0, "the batch is emptied");
        let r = d.report(5, 0);
        assert_eq!(r["received"], 2);
        assert_eq!(r["loss"], 3);
        assert_eq!(r["gaps"], 1);
        assert_eq!(r["bytes_per_delivery"], 100);
        assert_eq!(r["delivery_latency_ms"]["max"], 2.0);
        assert_eq!(r["deliveries_per_s"], 667.0);
    }

    #[test]
    fn warm_up_values_count_but_are_not_timed() {
        let d = Deliveries::new();
        d.measure_from_ns.store(10, Ordering::Relaxed);
        let mut batch = Batch::default();
        batch.add(1, Some(5), true);
        d.batch(0, &mut batch, 20);
        let r = d.report(1, 0);
        assert_eq!(r["loss"], 0);
        assert_eq!(r["delivery_latency_ms"]["count"], 0);
    }
}
