//! WebSocket details shared by both ports.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use std::time::Duration;

pub(crate) const GOING_AWAY: u16 = 1001;
pub(crate) const POLICY_VIOLATION: u16 = 1008;
pub(crate) const MESSAGE_TOO_BIG: u16 = 1009;
pub(crate) const TRY_AGAIN_LATER: u16 = 1013;

/// Whether a read error means the peer sent a message above the size limit.
pub(crate) fn is_too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Sends a Close frame, giving up after a second (the peer may not be reading).
pub(crate) async fn close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(frame)).await;
}

/// A UTF-8 text out of a binary message (both ports accept JSON in binary messages).
pub(crate) fn text_of(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}
