//! The bounded outbound queue of one subscriber connection (the engine's [`Outbox`] of
//! [`Outgoing`] messages). Fan-out pushes into it without ever waiting; a push that overflows it
//! makes the connection a slow consumer, which the writer closes with 1013.

use iii_stream_domain::Frame;
use iii_stream_engine::outbox::Queued;
use iii_stream_metrics::metrics;
use iii_stream_protocol::frame::with_suffix;
use std::sync::Arc;

pub use iii_stream_engine::outbox::Closed;

/// The outbound queue of one subscriber connection.
pub type Outbox = iii_stream_engine::outbox::Outbox<Outgoing>;

/// One message waiting to be written.
#[derive(Debug)]
pub enum Outgoing {
    /// A shared event body, completed with a subscription's `subscriptionId` tail at write time.
    Event { frame: Arc<Frame>, suffix: Arc<str> },
    /// A message built for this connection alone (sync, `unauthorized`).
    Text(String),
}

impl Queued for Outgoing {
    fn byte_len(&self) -> usize {
        match self {
            Self::Event { frame, suffix } => frame.byte_len() + suffix.len(),
            Self::Text(text) => text.len(),
        }
    }
}

impl Outgoing {
    /// The text to put on the wire.
    pub fn into_text(self) -> String {
        match self {
            Self::Event { frame, suffix } => with_suffix(frame.body.get(), &suffix),
            Self::Text(text) => text,
        }
    }
}

/// Queues a message for a subscriber; false if it was not queued. The push that overflows the
/// queue is counted as a slow-consumer disconnect.
pub(crate) fn offer(outbox: &Outbox, item: Outgoing) -> bool {
    match outbox.push(item) {
        Ok(()) => true,
        Err(Closed::Overflow) => {
            metrics().slow_consumer_disconnects.inc();
            false
        }
        Err(Closed::Gone) => false,
    }
}
