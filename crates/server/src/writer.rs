//! The writer of a connection on either port: drains the connection's bounded outbox into the
//! socket, one flush per batch, pings on schedule, and gives up on a peer that takes nothing for
//! the write deadline (docs/limits.md).

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use iii_stream_engine::outbox::{Closed, Outbox, Queued};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::{Instant, interval_at, timeout};

/// A queued message as it goes on the wire.
pub(crate) trait ToWire {
    /// The message to send, or `None` to close the connection after what came before.
    fn to_wire(self) -> Option<Message>;
}

/// Why [`write`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The socket failed or the outbox was closed.
    Gone,
    /// The outbox overflowed: the peer does not take what it is sent.
    Overflow,
    /// A write or a ping did not complete within the deadline.
    Stalled,
    /// A queued message asked for the connection to close; everything before it was written.
    CloseRequested,
}

/// Writes everything queued on `outbox` to `sink` until the connection has to end.
pub(crate) async fn write<T: Queued + ToWire>(
    sink: &mut SplitSink<WebSocket, Message>,
    outbox: &Outbox<T>,
    ping_every: Duration,
    deadline: Duration,
) -> Stop {
    let mut ping = interval_at(Instant::now() + ping_every, ping_every);
    let mut batch = VecDeque::new();
    loop {
        // Bursts leave a large buffer behind; an idle connection should not keep it.
        if batch.capacity() > 256 {
            batch = VecDeque::new();
        }
        tokio::select! {
            drained = outbox.drain_into(&mut batch) => match drained {
                Ok(()) => {}
                Err(closed) => return stopped(closed),
            },
            _ = ping.tick() => {
                match timeout(deadline, sink.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return Stop::Gone,
                    Err(_) => return Stop::Stalled,
                }
            }
        }
        // Everything queued is written before one flush: one syscall for a burst.
        let written = async {
            for item in batch.drain(..) {
                match item.to_wire() {
                    Some(message) => sink.feed(message).await?,
                    None => return sink.flush().await.map(|()| false),
                }
            }
            sink.flush().await.map(|()| true)
        };
        // A peer that takes nothing for the deadline is closed, even when nothing more is queued
        // behind what it does not take; an overflow meanwhile ends the write at once.
        tokio::select! {
            written = timeout(deadline, written) => match written {
                Ok(Ok(true)) => outbox.written(),
                Ok(Ok(false)) => return Stop::CloseRequested,
                Ok(Err(_)) => return Stop::Gone,
                Err(_) => return Stop::Stalled,
            },
            closed = outbox.wait_closed() => return stopped(closed),
        }
    }
}

fn stopped(closed: Closed) -> Stop {
    match closed {
        Closed::Overflow => Stop::Overflow,
        Closed::Gone => Stop::Gone,
    }
}
