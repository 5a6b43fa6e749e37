//! The bounded outbound queue of one subscriber connection.
//!
//! Fan-out pushes into it without ever waiting; the connection's writer task drains it. When a
//! push would exceed the frame or byte bound the connection is declared a slow consumer: the
//! queue is dropped and the writer closes the socket with 1013.

use iii_stream_domain::Frame;
use iii_stream_metrics::metrics;
use iii_stream_protocol::frame::with_suffix;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;

/// One message waiting to be written.
#[derive(Debug)]
pub enum Outgoing {
    /// A shared event body, completed with a subscription's `subscriptionId` tail at write time.
    Event { frame: Arc<Frame>, suffix: Arc<str> },
    /// A message built for this connection alone (sync, `unauthorized`).
    Text(String),
}

impl Outgoing {
    fn byte_len(&self) -> usize {
        match self {
            Self::Event { frame, suffix } => frame.byte_len() + suffix.len(),
            Self::Text(text) => text.len(),
        }
    }

    /// The text to put on the wire.
    pub fn into_text(self) -> String {
        match self {
            Self::Event { frame, suffix } => with_suffix(frame.body.get(), &suffix),
            Self::Text(text) => text,
        }
    }
}

/// Why an outbox stopped accepting messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The connection ended for any other reason.
    Gone,
    /// The queue overflowed.
    SlowConsumer,
}

#[derive(Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    closed: Option<Closed>,
}

pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    max_frames: usize,
    max_bytes: usize,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("closed", &self.closed())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            max_frames,
            max_bytes,
        }
    }

    /// Queues a message. Never waits. A message is admitted if both bounds still hold after it,
    /// or if the queue is empty (so one large sync always fits). Returns false if the message
    /// was not queued.
    pub fn push(&self, item: Outgoing) -> bool {
        let size = item.byte_len();
        let mut state = self.state.lock();
        if state.closed.is_some() {
            return false;
        }
        let fits = state.items.len() < self.max_frames && state.bytes + size <= self.max_bytes;
        if !fits && !state.items.is_empty() {
            state.closed = Some(Closed::SlowConsumer);
            state.items = VecDeque::new();
            state.bytes = 0;
            drop(state);
            metrics().slow_consumer_disconnects.inc();
            self.ready.notify_one();
            return false;
        }
        // Only the push that makes the queue non-empty wakes the writer: the writer takes
        // everything queued when it runs, so later pushes would only cause spurious wake-ups.
        let wake = state.items.is_empty();
        state.bytes += size;
        state.items.push_back(item);
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// Waits for messages and takes all of them, or returns why the outbox is closed.
    pub async fn drain(&self) -> Result<VecDeque<Outgoing>, Closed> {
        let mut batch = VecDeque::new();
        self.drain_into(&mut batch).await.map(|()| batch)
    }

    /// Like [`Outbox::drain`], but swaps the queue with `batch` (emptied first): the writer's
    /// spare buffer becomes the queue, so a connection receiving one frame at a time does not
    /// allocate a new queue for every frame.
    pub async fn drain_into(&self, batch: &mut VecDeque<Outgoing>) -> Result<(), Closed> {
        batch.clear();
        loop {
            {
                let mut state = self.state.lock();
                if let Some(closed) = state.closed {
                    return Err(closed);
                }
                if !state.items.is_empty() {
                    state.bytes = 0;
                    std::mem::swap(&mut state.items, batch);
                    return Ok(());
                }
            }
            self.ready.notified().await;
        }
    }

    /// Takes whatever is queued without waiting (the final flush at shutdown).
    pub fn take(&self) -> VecDeque<Outgoing> {
        let mut state = self.state.lock();
        state.bytes = 0;
        std::mem::take(&mut state.items)
    }

    /// Resolves once the outbox is closed, with the reason.
    pub async fn wait_closed(&self) -> Closed {
        loop {
            if let Some(closed) = self.closed() {
                return closed;
            }
            self.ready.notified().await;
        }
    }

    /// Stops accepting messages (the connection is ending).
    pub fn close(&self) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.closed = Some(Closed::Gone);
        }
        drop(state);
        self.ready.notify_one();
    }

    pub fn closed(&self) -> Option<Closed> {
        self.state.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Outgoing {
        Outgoing::Text("x".repeat(n))
    }

    #[tokio::test]
    async fn overflow_by_frames_closes_as_slow_consumer() {
        let outbox = Outbox::new(2, 1000);
        assert!(outbox.push(text(1)));
        assert!(outbox.push(text(1)));
        assert!(!outbox.push(text(1)));
        assert_eq!(outbox.drain().await.unwrap_err(), Closed::SlowConsumer);
        assert!(!outbox.push(text(1)));
    }

    #[tokio::test]
    async fn a_large_message_fits_an_empty_queue_only() {
        let outbox = Outbox::new(10, 5);
        assert!(outbox.push(text(50)));
        assert_eq!(outbox.drain().await.unwrap().len(), 1);
        assert!(outbox.push(text(3)));
        assert!(!outbox.push(text(3)));
        assert_eq!(outbox.closed(), Some(Closed::SlowConsumer));
    }

    #[tokio::test]
    async fn drain_into_swaps_buffers_and_wakes_once_per_batch() {
        let outbox = Outbox::new(10, 100);
        let mut batch = VecDeque::with_capacity(8);
        outbox.push(Outgoing::Text("a".into()));
        outbox.push(Outgoing::Text("b".into()));
        outbox.drain_into(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 2);
        // The spare buffer is now the queue: pushing reuses its allocation.
        assert!(outbox.state.lock().items.capacity() >= 8);
        // A push after a drain wakes a waiting writer again.
        outbox.push(Outgoing::Text("c".into()));
        let next = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            outbox.drain_into(&mut batch),
        );
        next.await.unwrap().unwrap();
        assert_eq!(batch.len(), 1);
    }

    #[tokio::test]
    async fn drain_takes_everything_in_order() {
        let outbox = Outbox::new(10, 100);
        outbox.push(Outgoing::Text("a".into()));
        outbox.push(Outgoing::Text("b".into()));
        let got: Vec<_> = outbox
            .drain()
            .await
            .unwrap()
            .into_iter()
            .map(Outgoing::into_text)
            .collect();
        assert_eq!(got, ["a", "b"]);
        outbox.close();
        assert_eq!(outbox.drain().await.unwrap_err(), Closed::Gone);
    }
}
