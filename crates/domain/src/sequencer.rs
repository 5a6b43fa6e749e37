//! Per-group sequencing: `seq`, `epoch` and strictly increasing timestamps.

use std::sync::Arc;

/// The position of one event in its group's numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub epoch: Arc<str>,
    pub seq: u64,
    pub timestamp: u64,
}

/// The sequencer state of one group. Callers hold it under the same lock (or inside the same
/// transaction) that commits the write it numbers.
#[derive(Debug, Clone)]
pub struct Sequencer {
    epoch: Arc<str>,
    seq: u64,
    last_timestamp: u64,
}

impl Sequencer {
    /// A fresh numbering: the first event gets `seq` 1.
    pub fn new(epoch: Arc<str>) -> Self {
        Self::resume(epoch, 0, 0)
    }

    /// Continues an existing numbering (e.g. state read back from Redis).
    pub fn resume(epoch: Arc<str>, seq: u64, last_timestamp: u64) -> Self {
        Self {
            epoch,
            seq,
            last_timestamp,
        }
    }

    /// Numbers the next event: `seq + 1`, and `max(now, last + 1)` so timestamps strictly increase.
    pub fn next(&mut self, now_ms: u64) -> Stamp {
        self.seq += 1;
        self.last_timestamp = now_ms.max(self.last_timestamp + 1);
        Stamp {
            epoch: self.epoch.clone(),
            seq: self.seq,
            timestamp: self.last_timestamp,
        }
    }

    /// The stamp of a snapshot taken now: current `seq`, `max(now, last event timestamp)`.
    pub fn snapshot(&self, now_ms: u64) -> Stamp {
        Stamp {
            epoch: self.epoch.clone(),
            seq: self.seq,
            timestamp: now_ms.max(self.last_timestamp),
        }
    }

    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_strictly_increase_within_a_millisecond() {
        let mut s = Sequencer::new("e".into());
        let a = s.next(100);
        let b = s.next(100);
        let c = s.next(99);
        assert_eq!((a.seq, a.timestamp), (1, 100));
        assert_eq!((b.seq, b.timestamp), (2, 101));
        assert_eq!((c.seq, c.timestamp), (3, 102));
        assert_eq!(s.snapshot(50).timestamp, 102);
        assert_eq!(s.snapshot(500).timestamp, 500);
        assert_eq!(s.snapshot(500).seq, 3);
    }
}
