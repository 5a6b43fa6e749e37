//! The bounded outbound queue of one connection, for both ports: producers push without ever
//! waiting, the connection's writer drains it, and a peer that does not read is closed instead of
//! growing the queue.
//!
//! A message is admitted while the queue's frames and bytes stay within their bounds. Bytes count
//! from the push until the writer reports them written ([`Outbox::written`]), so a message that is
//! stuck in a socket nobody reads still counts. One message larger than the byte bound is admitted
//! only when nothing else is queued or being written (so one large sync always fits an idle
//! connection); anything pushed while it is still being written overflows. An overflow closes the
//! queue for good: it is emptied and the writer ends the connection.

use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

/// A message of known size.
pub trait Queued {
    fn byte_len(&self) -> usize;
}

/// Why an outbox stopped accepting messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The connection ended for any other reason.
    Gone,
    /// The queue overflowed: the peer does not read what it is sent.
    Overflow,
}

struct State<T> {
    items: VecDeque<T>,
    /// Queued bytes plus the bytes drained and not yet reported written.
    bytes: usize,
    /// Bytes drained and not yet reported written.
    writing: usize,
    closed: Option<Closed>,
}

pub struct Outbox<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    max_frames: usize,
    max_bytes: usize,
}

impl<T> std::fmt::Debug for Outbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("closed", &self.state.lock().closed)
            .finish_non_exhaustive()
    }
}

impl<T: Queued> Outbox<T> {
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                writing: 0,
                closed: None,
            }),
            ready: Notify::new(),
            max_frames,
            max_bytes,
        }
    }

    /// Queues a message; never waits. Returns `Err(Overflow)` the moment this push overflows the
    /// queue (the caller counts it), `Err(Gone)` when the queue was already closed.
    pub fn push(&self, item: T) -> Result<(), Closed> {
        let size = item.byte_len();
        let mut state = self.state.lock();
        if state.closed.is_some() {
            return Err(Closed::Gone);
        }
        let idle = state.items.is_empty() && state.bytes == 0;
        let fits = state.items.len() < self.max_frames && state.bytes + size <= self.max_bytes;
        if !fits && !idle {
            state.closed = Some(Closed::Overflow);
            state.items = VecDeque::new();
            state.bytes = 0;
            state.writing = 0;
            drop(state);
            self.ready.notify_one();
            return Err(Closed::Overflow);
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
        Ok(())
    }

    /// Waits for messages and takes all of them, or returns why the outbox is closed.
    pub async fn drain(&self) -> Result<VecDeque<T>, Closed> {
        let mut batch = VecDeque::new();
        self.drain_into(&mut batch).await.map(|()| batch)
    }

    /// Like [`Outbox::drain`], but swaps the queue with `batch` (emptied first): the writer's
    /// spare buffer becomes the queue, so a connection receiving one message at a time does not
    /// allocate a new queue for every message. The taken bytes keep counting until
    /// [`Outbox::written`].
    pub async fn drain_into(&self, batch: &mut VecDeque<T>) -> Result<(), Closed> {
        batch.clear();
        loop {
            {
                let mut state = self.state.lock();
                if let Some(closed) = state.closed {
                    return Err(closed);
                }
                if !state.items.is_empty() {
                    state.writing = state.bytes;
                    std::mem::swap(&mut state.items, batch);
                    return Ok(());
                }
            }
            self.ready.notified().await;
        }
    }

    /// The writer wrote everything it drained last.
    pub fn written(&self) {
        let mut state = self.state.lock();
        state.bytes -= state.writing;
        state.writing = 0;
    }

    /// Takes whatever is queued without waiting (the final flush at shutdown).
    pub fn take(&self) -> VecDeque<T> {
        let mut state = self.state.lock();
        state.bytes = state.writing;
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

    /// Bytes queued or being written (diagnostics and tests).
    pub fn bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Queued for String {
        fn byte_len(&self) -> usize {
            self.len()
        }
    }

    fn text(n: usize) -> String {
        "x".repeat(n)
    }

    #[tokio::test]
    async fn overflow_by_frames_closes_for_good() {
        let outbox = Outbox::new(2, 1000);
        assert!(outbox.push(text(1)).is_ok());
        assert!(outbox.push(text(1)).is_ok());
        assert_eq!(outbox.push(text(1)), Err(Closed::Overflow));
        assert_eq!(outbox.drain().await.unwrap_err(), Closed::Overflow);
        assert_eq!(outbox.push(text(1)), Err(Closed::Gone));
    }

    #[tokio::test]
    async fn a_large_message_fits_an_idle_queue_only() {
        let outbox = Outbox::new(10, 5);
        assert!(outbox.push(text(50)).is_ok());
        assert_eq!(outbox.drain().await.unwrap().len(), 1);
        // Still being written: it counts, and anything more overflows.
        assert_eq!(outbox.bytes(), 50);
        assert_eq!(outbox.push(text(1)), Err(Closed::Overflow));

        let outbox = Outbox::new(10, 5);
        assert!(outbox.push(text(50)).is_ok());
        outbox.drain().await.unwrap();
        outbox.written();
        assert!(outbox.push(text(3)).is_ok());
        assert_eq!(outbox.push(text(3)), Err(Closed::Overflow));
    }

    #[tokio::test]
    async fn written_bytes_stop_counting() {
        let outbox = Outbox::new(10, 10);
        outbox.push(text(6)).unwrap();
        outbox.drain().await.unwrap();
        outbox.push(text(4)).unwrap();
        assert_eq!(outbox.bytes(), 10);
        outbox.written();
        assert_eq!(outbox.bytes(), 4);
        outbox.push(text(6)).unwrap();
    }

    #[tokio::test]
    async fn drain_into_swaps_buffers_and_wakes_once_per_batch() {
        let outbox = Outbox::new(10, 100);
        let mut batch = VecDeque::with_capacity(8);
        outbox.push("a".to_owned()).unwrap();
        outbox.push("b".to_owned()).unwrap();
        outbox.drain_into(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 2);
        // The spare buffer is now the queue: pushing reuses its allocation.
        assert!(outbox.state.lock().items.capacity() >= 8);
        // A push after a drain wakes a waiting writer again.
        outbox.push("c".to_owned()).unwrap();
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
        outbox.push("a".to_owned()).unwrap();
        outbox.push("b".to_owned()).unwrap();
        let got: Vec<_> = outbox.drain().await.unwrap().into_iter().collect();
        assert_eq!(got, ["a", "b"]);
        outbox.close();
        assert_eq!(outbox.drain().await.unwrap_err(), Closed::Gone);
    }
}
