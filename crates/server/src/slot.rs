//! A reserved place among a bounded number of open connections, released when dropped.

use iii_stream_metrics::Gauge;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct Slot {
    counter: Arc<AtomicUsize>,
    gauge: Option<&'static Gauge>,
}

impl Slot {
    /// A place if fewer than `max` are taken; `gauge` (if any) counts the places taken.
    pub(crate) fn take(
        counter: &Arc<AtomicUsize>,
        max: usize,
        gauge: Option<&'static Gauge>,
    ) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        if let Some(gauge) = gauge {
            gauge.inc();
        }
        Some(Self {
            counter: counter.clone(),
            gauge,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
        if let Some(gauge) = self.gauge {
            gauge.dec();
        }
    }
}
