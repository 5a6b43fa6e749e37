//! `stream` trigger dispatch in `seq` order for pipelined writes.
//!
//! Writes of one group are sent to Redis concurrently (the multiplexed connection pipelines
//! them) and Redis numbers them in the order it runs their scripts, but their replies complete on
//! different tasks in no guaranteed order, and this instance cannot tell which `seq` values in
//! between belong to other instances. So completed frames wait here until they are safe to hand
//! to trigger dispatch:
//!
//! every write takes a ticket before its script is sent; a completed frame records the next
//! ticket number at its completion (its *barrier*) and is released, lowest `seq` first, once
//! every write whose ticket is below its barrier has finished. Any local write with a lower `seq`
//! ran in Redis before this one, hence was sent before this one completed, hence holds a ticket
//! below the barrier: it is released first. No frame waits longer than the writes that were in
//! flight when it completed.

use crate::EventSink;
use iii_stream_domain::{Frame, GroupKey};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Default)]
struct Pending {
    next_ticket: u64,
    in_flight: BTreeSet<u64>,
    /// Completed frames by `seq`, with their barrier.
    done: BTreeMap<u64, (Arc<Frame>, u64)>,
}

impl Pending {
    /// Hands every releasable frame to `sink`, in `seq` order.
    fn release(&mut self, sink: &dyn EventSink) {
        while let Some(entry) = self.done.first_entry() {
            let barrier = entry.get().1;
            if self.in_flight.first().is_some_and(|&t| t < barrier) {
                return;
            }
            let (frame, _) = entry.remove();
            sink.committed(&frame);
        }
    }

    fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.done.is_empty()
    }
}

#[derive(Default)]
pub(crate) struct CommitOrder {
    groups: Mutex<HashMap<GroupKey, Pending>>,
}

/// One write in flight. Dropping it without [`Ticket::commit`] (failure, conflict, cancelled
/// call) withdraws it.
pub(crate) struct Ticket<'a> {
    order: &'a CommitOrder,
    sink: &'a dyn EventSink,
    group: GroupKey,
    ticket: Option<u64>,
}

impl CommitOrder {
    /// Takes a ticket; call before sending the write's script.
    pub(crate) fn start<'a>(&'a self, sink: &'a dyn EventSink, group: &GroupKey) -> Ticket<'a> {
        let mut groups = self.groups.lock();
        let pending = groups.entry(group.clone()).or_default();
        let ticket = pending.next_ticket;
        pending.next_ticket += 1;
        pending.in_flight.insert(ticket);
        Ticket {
            order: self,
            sink,
            group: group.clone(),
            ticket: Some(ticket),
        }
    }

    fn finish(
        &self,
        group: &GroupKey,
        ticket: u64,
        frame: Option<&Arc<Frame>>,
        sink: &dyn EventSink,
    ) {
        let mut groups = self.groups.lock();
        let Some(pending) = groups.get_mut(group) else {
            return;
        };
        pending.in_flight.remove(&ticket);
        if let Some(frame) = frame {
            let barrier = pending.next_ticket;
            pending.done.insert(frame.seq(), (frame.clone(), barrier));
        }
        // The sink only enqueues: calling it under the lock keeps the group's order.
        pending.release(sink);
        if pending.idle() {
            groups.remove(group);
        }
    }

    #[cfg(test)]
    fn groups(&self) -> usize {
        self.groups.lock().len()
    }
}

impl Ticket<'_> {
    /// The write committed `frame`: dispatch it once every earlier local write has been.
    pub(crate) fn commit(mut self, frame: &Arc<Frame>) {
        if let Some(ticket) = self.ticket.take() {
            self.order
                .finish(&self.group, ticket, Some(frame), self.sink);
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.order.finish(&self.group, ticket, None, self.sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iii_stream_domain::{Change, Stamp};
    use serde_json::value::RawValue;

    #[derive(Default)]
    struct Seqs(Mutex<Vec<u64>>);

    impl EventSink for Seqs {
        fn publish(&self, _: &Arc<Frame>, _: bool) {}
        fn committed(&self, frame: &Arc<Frame>) {
            self.0.lock().push(frame.seq());
        }
    }

    fn frame(seq: u64) -> Arc<Frame> {
        let data: Arc<RawValue> = Arc::from(RawValue::from_string("1".into()).unwrap());
        Arc::new(Frame::new(
            GroupKey::new("s", "g"),
            None,
            &Change::Create(data),
            Stamp {
                epoch: "e".into(),
                seq,
                timestamp: seq,
            },
        ))
    }

    #[test]
    fn frames_are_released_in_seq_order_whatever_the_completion_order() {
        let (order, sink) = (CommitOrder::default(), Seqs::default());
        let g = GroupKey::new("s", "g");
        let (a, b, c) = (
            order.start(&sink, &g),
            order.start(&sink, &g),
            order.start(&sink, &g),
        );
        // Redis ran them as b (seq 4), a (seq 5) and c (seq 7; seq 6 was another instance's).
        c.commit(&frame(7));
        assert!(
            sink.0.lock().is_empty(),
            "a and b may still have lower seqs"
        );
        a.commit(&frame(5));
        assert!(sink.0.lock().is_empty());
        // d starts before b completes, so it might have run before b: b waits for it...
        let d = order.start(&sink, &g);
        b.commit(&frame(4));
        assert!(sink.0.lock().is_empty());
        // ...until it is known (here: it failed, or its call was cancelled).
        drop(d);
        assert_eq!(*sink.0.lock(), [4, 5, 7]);
        assert_eq!(order.groups(), 0);
        // A write started after a frame completed never holds that frame back.
        let e = order.start(&sink, &g);
        let f = order.start(&sink, &g);
        e.commit(&frame(8));
        assert_eq!(*sink.0.lock(), [4, 5, 7], "f might have run first");
        let late = order.start(&sink, &g);
        f.commit(&frame(9));
        assert_eq!(
            *sink.0.lock(),
            [4, 5, 7, 8],
            "late started after e completed"
        );
        late.commit(&frame(10));
        assert_eq!(*sink.0.lock(), [4, 5, 7, 8, 9, 10]);
    }

    #[test]
    fn a_withdrawn_write_releases_what_waited_for_it() {
        let (order, sink) = (CommitOrder::default(), Seqs::default());
        let g = GroupKey::new("s", "g");
        let (a, b) = (order.start(&sink, &g), order.start(&sink, &g));
        b.commit(&frame(2));
        drop(a);
        assert_eq!(*sink.0.lock(), [2]);
        assert_eq!(order.groups(), 0);
    }
}
