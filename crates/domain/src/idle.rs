//! Which idle groups may go: a queue of (since when idle, group), with a cap.
//!
//! A group with no items and no subscriber is kept for `history.max_age_ms` after its last event
//! (so its numbering stays continuous and a client that just dropped off can still resume), then
//! discarded. The owner (the kv store for group state, the fan-out for channels) pushes a group
//! once when it becomes idle, and on each [`IdleQueue::due`] re-checks the groups handed back:
//! one that was busy meanwhile is pushed again with its new idle time, one that was not goes.
//! Beyond `cap` idle groups the oldest are handed back early (`forced`), which bounds the memory
//! a peer can tie up by touching fresh names, whatever the rate.
//!
//! Callers pass the clock in; nothing here reads it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct IdleQueue<K> {
    entries: VecDeque<(Instant, K)>,
    cap: usize,
}

/// A group handed back by [`IdleQueue::due`].
#[derive(Debug, PartialEq, Eq)]
pub struct Due<K> {
    pub key: K,
    /// Handed back because the queue was over its cap, not because it was idle long enough.
    pub forced: bool,
}

impl<K> IdleQueue<K> {
    pub fn new(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            cap,
        }
    }

    /// Records that `key` is idle since `since`. The owner pushes each group at most once until
    /// it is handed back.
    pub fn push(&mut self, since: Instant, key: K) {
        self.entries.push_back((since, key));
    }

    /// Hands back the groups idle for `linger` at `now`, and the oldest beyond the cap. Entries
    /// are in push order, which is idle order except for re-pushes, so an entry may wait behind
    /// a younger one for one more round.
    pub fn due(&mut self, now: Instant, linger: Duration) -> Vec<Due<K>> {
        let mut due = Vec::new();
        while let Some((since, _)) = self.entries.front() {
            let over_cap = self.entries.len() > self.cap;
            let old = now.saturating_duration_since(*since) >= linger;
            if !over_cap && !old {
                break;
            }
            if let Some((_, key)) = self.entries.pop_front() {
                due.push(Due { key, forced: !old });
            }
        }
        // A burst leaves a large buffer behind; an idle server should not keep it.
        if self.entries.capacity() > 1024 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_back_once_idle_long_enough_or_over_the_cap() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut queue = IdleQueue::new(3);
        queue.push(t0, "a");
        queue.push(t0 + ms(10), "b");
        assert!(queue.due(t0 + ms(50), ms(100)).is_empty());
        let due = queue.due(t0 + ms(105), ms(100));
        assert_eq!(
            due,
            [Due {
                key: "a",
                forced: false
            }]
        );
        for (i, key) in ["c", "d", "e"].into_iter().enumerate() {
            queue.push(t0 + ms(200 + i as u64), key);
        }
        // Four idle, cap three: the oldest comes back early.
        let due = queue.due(t0 + ms(150), ms(100));
        assert_eq!(
            due,
            [Due {
                key: "b",
                forced: false
            }]
        );
        queue.push(t0 + ms(300), "f");
        let due = queue.due(t0 + ms(250), ms(100));
        assert_eq!(
            due,
            [Due {
                key: "c",
                forced: true
            }]
        );
        assert_eq!(queue.len(), 3);
    }
}
