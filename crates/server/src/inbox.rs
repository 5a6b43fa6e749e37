//! Messages read from a subscriber and waiting to be handled, in order.
//!
//! Reading never waits for handling: a join may wait seconds for its handlers, and meanwhile
//! Pings must still be answered and a closed socket noticed. So the backlog is bounded instead:
//! a client that piles up more unhandled messages than the bound is closed (policy violation).

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

/// Most unhandled messages a connection may queue, whatever their size.
const MAX_MESSAGES: usize = 1024;

#[derive(Default)]
struct State {
    items: VecDeque<Utf8Bytes>,
    bytes: usize,
}

pub(crate) struct Inbox {
    state: Mutex<State>,
    ready: Notify,
    max_bytes: usize,
}

impl Inbox {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::default(),
            ready: Notify::new(),
            max_bytes,
        }
    }

    /// Queues a message; false when the backlog bound would be exceeded.
    pub(crate) fn push(&self, text: Utf8Bytes) -> bool {
        let mut state = self.state.lock();
        let over = state.items.len() >= MAX_MESSAGES
            || (!state.items.is_empty() && state.bytes + text.len() > self.max_bytes);
        if over {
            return false;
        }
        state.bytes += text.len();
        state.items.push_back(text);
        drop(state);
        self.ready.notify_one();
        true
    }

    /// The next message, waiting for one.
    pub(crate) async fn pop(&self) -> Utf8Bytes {
        loop {
            {
                let mut state = self.state.lock();
                if let Some(text) = state.items.pop_front() {
                    state.bytes -= text.len();
                    return text;
                }
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_come_out_in_order() {
        let inbox = Inbox::new(100);
        assert!(inbox.push("a".into()));
        assert!(inbox.push("b".into()));
        assert_eq!(inbox.pop().await.as_str(), "a");
        assert_eq!(inbox.pop().await.as_str(), "b");
    }

    #[test]
    fn the_backlog_is_bounded_by_bytes_and_count() {
        let inbox = Inbox::new(10);
        assert!(inbox.push("x".repeat(50).into()), "one message always fits");
        assert!(!inbox.push("y".into()));
        let inbox = Inbox::new(usize::MAX);
        for _ in 0..MAX_MESSAGES {
            assert!(inbox.push("m".into()));
        }
        assert!(!inbox.push("m".into()));
    }
}
