//! The stream port: subscriber WebSockets at `/` and `/stream/{stream}/{group}[/{item}]`, plus
//! `GET /healthz` and `GET /metrics`.

use crate::health::Health;
use crate::inbox::Inbox;
use crate::ws::{self, GOING_AWAY, MESSAGE_TOO_BIG, POLICY_VIOLATION, TRY_AGAIN_LATER};
use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use iii_stream_config::StreamConfig;
use iii_stream_metrics::{OutcomeLabel, metrics};
use iii_stream_protocol::RawValue;
use iii_stream_protocol::subscriber::{Join, Since};
use iii_stream_service::fanout::{Closed, Outbox};
use iii_stream_service::{AuthDecision, HandshakeRequest, StreamService};
use percent_encoding::percent_decode_str;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, interval_at, timeout};

/// Read buffer of a subscriber socket. tungstenite zero-fills its whole read buffer before every
/// read attempt, so the 128 KiB default cost a 128 KiB memset per wake-up (a third of the
/// server's CPU in a fan-out profile) and kept ~128 KiB resident per idle connection.
/// Subscribers send small join/leave messages; a larger one still arrives, over several reads.
const SUBSCRIBER_READ_BUFFER: usize = 1 << 10;

#[derive(Clone)]
pub(crate) struct Port {
    pub(crate) service: Arc<StreamService>,
    pub(crate) health: Arc<Health>,
    pub(crate) connections: Arc<AtomicUsize>,
    pub(crate) stop: watch::Receiver<bool>,
}

pub(crate) fn router(port: Port) -> Router {
    Router::new().fallback(route).with_state(port)
}

/// Routing by hand: `/stream/…` segments must be split before they are percent-decoded.
async fn route(
    State(port): State<Port>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => port.health.respond(&port.service),
        "/metrics" if port.service.config().metrics => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            metrics().render(),
        )
            .into_response(),
        "/" => handshake(port, None, addr, request).await,
        _ => match path.strip_prefix("/stream/").map(target) {
            Some(Ok(target)) => handshake(port, Some(target), addr, request).await,
            Some(Err(status)) => refuse(status, "bad_request"),
            None => refuse(StatusCode::NOT_FOUND, "bad_request"),
        },
    }
}

fn refuse(status: StatusCode, outcome: &'static str) -> Response {
    metrics()
        .handshakes
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
    status.into_response()
}

/// The subscription a `/stream/…` URL asks for.
struct Target {
    stream: String,
    group: String,
    item: Option<String>,
}

/// Parses `{stream}/{group}[/{item}][/]`: 404 for another number of segments, 400 for a segment
/// that is empty or not UTF-8 once decoded (`+` is not special).
fn target(rest: &str) -> Result<Target, StatusCode> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    if !(2..=3).contains(&segments.len()) {
        return Err(StatusCode::NOT_FOUND);
    }
    let decode = |segment: &str| match percent_decode_str(segment).decode_utf8() {
        Ok(name) if !name.is_empty() => Ok(name.into_owned()),
        _ => Err(StatusCode::BAD_REQUEST),
    };
    Ok(Target {
        stream: decode(segments[0])?,
        group: decode(segments[1])?,
        item: segments.get(2).map(|s| decode(s)).transpose()?,
    })
}

/// `since_epoch` and `since_seq` query parameters resume an auto-join.
fn since_from_query(query: Option<&str>) -> Option<Since> {
    let (mut epoch, mut seq) = (None, None);
    for piece in query?.split('&') {
        match piece.split_once('=') {
            Some(("since_epoch", value)) => {
                epoch = percent_decode_str(value)
                    .decode_utf8()
                    .ok()
                    .map(|v| v.into_owned());
            }
            Some(("since_seq", value)) => seq = value.parse().ok(),
            _ => {}
        }
    }
    Some(Since {
        epoch: epoch?,
        seq: seq?,
    })
}

/// A reserved place among the open subscriber connections.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        metrics().subscriber_connections.inc();
        Some(Self(counter.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics().subscriber_connections.dec();
    }
}

async fn handshake(
    port: Port,
    target: Option<Target>,
    addr: SocketAddr,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let Ok(upgrade) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        return refuse(StatusCode::UPGRADE_REQUIRED, "bad_request");
    };
    let config = port.service.config();
    let Some(slot) = Slot::take(&port.connections, config.limits.max_connections) else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "over_limit");
    };
    // Without an auth function there is nobody to show the request to: skip copying it.
    let context = match &config.auth_function {
        None => None,
        Some(_) => {
            let handshake = HandshakeRequest {
                headers: parts
                    .headers
                    .iter()
                    .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                    .collect(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                addr,
            };
            match port.service.authenticate(&handshake).await {
                AuthDecision::Accept { context } => context,
                AuthDecision::Reject => return refuse(StatusCode::UNAUTHORIZED, "unauthorized"),
            }
        }
    };
    // The Motia clients offer ['Authorization', token] and abort unless one is selected.
    let offered = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()))
        .map(str::to_owned);
    let auto_join = target.map(|t| Join {
        subscription_id: uuid::Uuid::new_v4().to_string(),
        stream_name: t.stream,
        group_id: t.group,
        item_id: t.item,
        since: since_from_query(parts.uri.query()),
    });
    let limit = config.limits.max_message_bytes;
    let mut upgrade = upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SUBSCRIBER_READ_BUFFER);
    if let Some(protocol) = offered {
        upgrade = upgrade.protocols([protocol]);
    }
    metrics()
        .handshakes
        .get_or_create(&OutcomeLabel {
            outcome: "upgraded",
        })
        .inc();
    upgrade.on_upgrade(move |socket| serve(port, socket, context, auto_join, slot))
}

/// Why a subscriber connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Gone,
    Idle,
    TooBig,
    /// More unhandled messages than the inbox holds.
    Flooded,
    SlowConsumer,
    Shutdown,
}

async fn serve(
    port: Port,
    socket: WebSocket,
    context: Option<Arc<RawValue>>,
    auto_join: Option<Join>,
    _slot: Slot,
) {
    let config: &StreamConfig = port.service.config();
    let outbox = Arc::new(Outbox::new(
        config.limits.outbound_queue_frames,
        config.limits.outbound_queue_bytes,
    ));
    let session = Arc::new(port.service.session(context, outbox.clone()));
    let (mut sink, mut stream) = socket.split();
    // Room for a few maximal messages waiting behind a join that waits for its handlers.
    let inbox = Arc::new(Inbox::new(
        config.limits.max_message_bytes.saturating_mul(4),
    ));
    let idle = Duration::from_millis(config.keepalive.idle_timeout_ms);
    let ping_every = Duration::from_millis(config.keepalive.ping_interval_ms);
    let mut stop = port.stop.clone();

    // Messages are handled one at a time, in order, apart from reading: a join waiting for its
    // handlers never delays Pongs or the detection of a closed socket.
    let processing = {
        let session = session.clone();
        let inbox = inbox.clone();
        // The handling of one message (a join may wait for handlers, snapshots, providers) is a
        // large future; boxed, it takes memory only while a message is being handled instead of
        // for the whole life of every idle connection.
        async move {
            if let Some(join) = auto_join {
                Box::pin(session.join(join)).await;
            }
            loop {
                let text = inbox.pop().await;
                Box::pin(session.handle_message(&text)).await;
            }
        }
    };
    let reading = async move {
        loop {
            let message = match timeout(idle, stream.next()).await {
                Err(_) => return End::Idle,
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return End::Gone,
                Ok(Some(Err(error))) => {
                    return if ws::is_too_big(&error) {
                        End::TooBig
                    } else {
                        End::Gone
                    };
                }
                Ok(Some(Ok(message))) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Binary(bytes) => match Utf8Bytes::try_from(bytes) {
                    Ok(text) => text,
                    Err(_) => continue,
                },
                _ => continue, // Pings and Pongs only count as activity.
            };
            if !inbox.push(text) {
                return End::Flooded;
            }
        }
    };
    let writing = async {
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
                    Err(Closed::SlowConsumer) => return End::SlowConsumer,
                    Err(Closed::Gone) => return End::Gone,
                },
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return End::Gone;
                    }
                    continue;
                }
            };
            let write = async {
                for item in batch.drain(..) {
                    sink.feed(Message::Text(item.into_text().into())).await?;
                }
                sink.flush().await
            };
            tokio::select! {
                written = write => if written.is_err() { return End::Gone },
                closed = outbox.wait_closed() => return match closed {
                    Closed::SlowConsumer => End::SlowConsumer,
                    Closed::Gone => End::Gone,
                },
            }
        }
    };
    // The inbound side runs as a task of its own. In one task with the writer, every wake-up to
    // write frames also polled the reader (socket readiness, the idle timer, the inbox), which
    // cost more than the write itself when a connection receives one frame at a time.
    let mut inbound = tokio::spawn(async move {
        tokio::select! {
            end = reading => end,
            never = processing => match never {},
        }
    });
    let (end, inbound_ended) = tokio::select! {
        end = &mut inbound => (end.unwrap_or(End::Gone), true),
        end = writing => (end, false),
        _ = stop.wait_for(|s| *s) => (End::Shutdown, false),
    };
    if !inbound_ended {
        // Wait until the inbound task is gone, so that no join is still being admitted when the
        // session closes below (as when both ran in this task and were dropped together).
        inbound.abort();
        let _ = inbound.await;
    }
    match end {
        End::SlowConsumer => {
            tracing::warn!(connection = ?outbox, "subscriber too slow; closing with 1013");
            ws::close(&mut sink, TRY_AGAIN_LATER, "slow consumer").await;
        }
        End::Idle => ws::close(&mut sink, GOING_AWAY, "idle timeout").await,
        End::TooBig => ws::close(&mut sink, MESSAGE_TOO_BIG, "message too big").await,
        End::Flooded => {
            tracing::warn!(connection = ?outbox, "subscriber queued too many unhandled messages; closing with 1008");
            ws::close(&mut sink, POLICY_VIOLATION, "too many pending messages").await;
        }
        End::Shutdown => {
            // Flush what is queued (bounded), then say goodbye.
            let flush = async {
                for item in outbox.take() {
                    sink.feed(Message::Text(item.into_text().into())).await?;
                }
                sink.flush().await
            };
            let _ = timeout(Duration::from_secs(2), flush).await;
            ws::close(&mut sink, GOING_AWAY, "server shutting down").await;
        }
        End::Gone => {
            let _ = timeout(Duration::from_secs(1), sink.close()).await;
        }
    }
    session.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        let t = target("a%3Ab/g%2F1/%E2%9C%93").unwrap();
        assert_eq!((t.stream.as_str(), t.group.as_str()), ("a:b", "g/1"));
        assert_eq!(t.item.as_deref(), Some("✓"));
        let t = target("chat/room-1/").unwrap();
        assert_eq!(t.item, None);
        assert_eq!(target("chat/%20x/").unwrap().group, " x");
        assert_eq!(target("chat/a+b").unwrap().group, "a+b");
        assert_eq!(target("chat").err(), Some(StatusCode::NOT_FOUND));
        assert_eq!(target("a/b/c/d").err(), Some(StatusCode::NOT_FOUND));
        assert_eq!(target("chat//").err(), Some(StatusCode::BAD_REQUEST));
        assert_eq!(target("chat/%FF").err(), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn since_query() {
        assert_eq!(
            since_from_query(Some("token=x&since_epoch=ab&since_seq=4")),
            Some(Since {
                epoch: "ab".into(),
                seq: 4
            })
        );
        assert_eq!(since_from_query(Some("since_epoch=ab")), None);
        assert_eq!(since_from_query(Some("since_epoch=ab&since_seq=x")), None);
    }
}
