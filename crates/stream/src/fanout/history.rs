//! Recent frames of a group, kept for resume and for catching a late snapshot up, bounded per
//! group by count and age and across all groups by a byte budget.

use iii_stream_config::History as HistoryConfig;
use iii_stream_domain::Frame;
use iii_stream_metrics::metrics;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct History {
    /// In `seq` order, with the instant each was published here (frame timestamps may run ahead
    /// of the clock, so age is measured locally).
    frames: VecDeque<(Instant, Arc<Frame>)>,
}

impl History {
    /// Appends a frame and trims by count and age. Returns (bytes added, bytes released).
    pub(crate) fn push(&mut self, frame: Arc<Frame>, config: &HistoryConfig) -> (usize, usize) {
        let added = frame.byte_len();
        self.frames.push_back((Instant::now(), frame));
        let mut released = 0;
        while self.frames.len() > config.max_events {
            released += self.pop_front();
        }
        released += self.expire(config);
        (added, released)
    }

    fn pop_front(&mut self) -> usize {
        self.frames.pop_front().map_or(0, |(_, f)| f.byte_len())
    }

    /// Drops frames older than `max_age_ms`; returns the bytes released.
    pub(crate) fn expire(&mut self, config: &HistoryConfig) -> usize {
        let max_age = Duration::from_millis(config.max_age_ms);
        let mut released = 0;
        while self
            .frames
            .front()
            .is_some_and(|(at, _)| at.elapsed() > max_age)
        {
            released += self.pop_front();
        }
        released
    }

    /// Empties the history; returns the bytes released.
    pub(crate) fn clear(&mut self) -> usize {
        let released = self.frames.iter().map(|(_, f)| f.byte_len()).sum();
        self.frames.clear();
        released
    }

    /// The frames with `since < seq <= published`, if the history holds all of them.
    pub(crate) fn after(&self, since: u64, published: u64) -> Option<Vec<Arc<Frame>>> {
        if since > published {
            return None;
        }
        if since == published {
            return Some(Vec::new());
        }
        let first = self.frames.front()?.1.seq();
        let last = self.frames.back()?.1.seq();
        if first > since + 1 || last != published {
            return None;
        }
        Some(
            self.frames
                .iter()
                .filter(|(_, f)| f.seq() > since)
                .map(|(_, f)| f.clone())
                .collect(),
        )
    }

    /// When the oldest frame was published here.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.frames.front().map(|(at, _)| *at)
    }

    /// Drops the oldest frame; returns the bytes released.
    pub(crate) fn evict_oldest(&mut self) -> usize {
        self.pop_front()
    }
}

/// The byte budget shared by every group's history.
pub(crate) struct Budget {
    max: usize,
    total: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            total: AtomicUsize::new(0),
        }
    }

    pub(crate) fn apply(&self, added: usize, released: usize) {
        let total = if added >= released {
            self.total.fetch_add(added - released, Ordering::Relaxed) + (added - released)
        } else {
            self.total.fetch_sub(released - added, Ordering::Relaxed) - (released - added)
        };
        metrics().history_bytes.set(total as i64);
    }

    pub(crate) fn exceeded(&self) -> bool {
        self.total.load(Ordering::Relaxed) > self.max
    }

    /// Where eviction stops once started, so it does not run on every publish at the limit.
    pub(crate) fn low_water(&self) -> usize {
        self.max / 10 * 9
    }

    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iii_stream_domain::{Change, GroupKey, Stamp};
    use serde_json::value::RawValue;

    fn frame(seq: u64) -> Arc<Frame> {
        let data: Arc<RawValue> = Arc::from(RawValue::from_string("1".into()).unwrap());
        Arc::new(Frame::new(
            GroupKey::new("s", "g"),
            Some("i".into()),
            &Change::Create(data),
            Stamp {
                epoch: "e".into(),
                seq,
                timestamp: seq,
            },
        ))
    }

    fn config(max_events: usize) -> HistoryConfig {
        HistoryConfig {
            max_events,
            max_age_ms: 60_000,
            max_total_bytes: usize::MAX,
            max_idle_groups: 1000,
        }
    }

    #[test]
    fn after_requires_a_contiguous_tail() {
        let mut h = History::default();
        for seq in 1..=5 {
            h.push(frame(seq), &config(3));
        }
        let seqs = |v: Vec<Arc<Frame>>| v.iter().map(|f| f.seq()).collect::<Vec<_>>();
        assert_eq!(seqs(h.after(2, 5).unwrap()), [3, 4, 5]);
        assert_eq!(seqs(h.after(4, 5).unwrap()), [5]);
        assert_eq!(seqs(h.after(5, 5).unwrap()), Vec::<u64>::new());
        assert!(h.after(1, 5).is_none(), "frame 2 was evicted");
        assert!(h.after(6, 5).is_none());
        assert!(
            h.after(2, 6).is_none(),
            "the history must reach the published seq"
        );
    }

    #[test]
    fn push_reports_released_bytes() {
        let mut h = History::default();
        let (added, released) = h.push(frame(1), &config(1));
        assert_eq!(released, 0);
        let (_, released) = h.push(frame(2), &config(1));
        assert_eq!(released, added);
        assert_eq!(h.clear(), added);
    }
}
