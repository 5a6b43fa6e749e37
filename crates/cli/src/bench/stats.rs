//! Latency recording and summaries.
//!
//! Latencies are recorded in microseconds into HDR histograms (3 significant digits). Thousands
//! of connection tasks record concurrently, and a histogram per task would cost hundreds of
//! megabytes, so tasks share a fixed set of shards: each task locks its shard once per batch of
//! messages (one socket read), which keeps the locks uncontended and cheap.

use hdrhistogram::Histogram;
use parking_lot::{Mutex, MutexGuard};
use serde_json::{Value, json};
use std::sync::LazyLock;
use std::time::Instant;

/// Largest latency recorded exactly: one hour, in microseconds. Larger values are clamped.
const MAX_US: u64 = 3_600_000_000;

/// Nanoseconds since the generator started, on the monotonic clock. Timestamps embedded in
/// written values use it, so a receiving task of the same process can compute a delivery latency.
pub fn now_ns() -> u64 {
    static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);
    BASE.elapsed().as_nanos() as u64
}

/// A new empty latency histogram.
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low 1, high ≥ 2 × low, 3 digits).
    Histogram::new_with_max(MAX_US, 3).unwrap_or_else(|_| unreachable!("valid constant bounds"))
}

/// Records a latency given in nanoseconds.
pub fn record_ns(histogram: &mut Histogram<u64>, ns: u64) {
    histogram.saturating_record(ns / 1_000);
}

/// A latency histogram shared by many tasks.
pub struct Latency {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

impl Latency {
    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(histogram()))
                .collect(),
        }
    }

    /// The shard task `task` records into.
    pub fn shard(&self, task: usize) -> MutexGuard<'_, Histogram<u64>> {
        self.shards[task % self.shards.len()].lock()
    }

    /// All shards added together.
    pub fn merged(&self) -> Histogram<u64> {
        let mut total = histogram();
        for shard in &*self.shards {
            // Shards have identical bounds, so adding cannot fail.
            let _ = total.add(&*shard.lock());
        }
        total
    }
}

/// `{"count", "p50", "p90", "p99", "p999", "max", "mean"}` in milliseconds.
pub fn summary(histogram: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64) / 1_000.0;
    if histogram.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": histogram.len(),
        "p50": ms(histogram.value_at_quantile(0.50)),
        "p90": ms(histogram.value_at_quantile(0.90)),
        "p99": ms(histogram.value_at_quantile(0.99)),
        "p999": ms(histogram.value_at_quantile(0.999)),
        "max": ms(histogram.max()),
        "mean": (histogram.mean() / 1_000.0 * 1_000.0).round() / 1_000.0,
    })
}

/// Events per second over `seconds`, 0 for an empty interval.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (count as f64 / seconds).round()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_quantiles_in_milliseconds() {
        let mut h = histogram();
        for us in 1..=1_000u64 {
            record_ns(&mut h, us * 1_000);
        }
        let s = summary(&h);
        assert_eq!(s["count"], 1_000);
        let p50 = s["p50"].as_f64().unwrap();
        let p99 = s["p99"].as_f64().unwrap();
        assert!((0.499..=0.501).contains(&p50), "p50 = {p50}");
        assert!((0.989..=0.991).contains(&p99), "p99 = {p99}");
        assert!((s["max"].as_f64().unwrap() - 1.0).abs() < 0.002);
    }

    #[test]
    fn empty_and_huge_values() {
        assert_eq!(summary(&histogram())["count"], 0);
        let mut h = histogram();
        record_ns(&mut h, u64::MAX);
        assert_eq!(h.len(), 1);
        assert!(h.max() >= MAX_US - MAX_US / 1_000);
    }

    #[test]
    fn shards_merge_into_one_histogram() {
        let latency = Latency::new(4);
        for task in 0..10 {
            record_ns(&mut latency.shard(task), 2_000_000);
        }
        let merged = latency.merged();
        assert_eq!(merged.len(), 10);
        assert_eq!(summary(&merged)["p50"].as_f64().unwrap(), 2.0);
    }

    #[test]
    fn rates() {
        assert_eq!(rate(1_000, 0.5), 2_000.0);
        assert_eq!(rate(5, 0.0), 0.0);
    }
}
