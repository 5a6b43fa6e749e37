//! The stream port: subscriber WebSockets at `/` and `/stream/{stream}/{group}[/{item}]`, plus
//! `GET /healthz` and `GET /metrics`.

use crate::health::Health;
use crate::inbox::Inbox;
use crate::slot::Slot;
use crate::writer::{self, Stop, ToWire};
use crate::ws::{self, GOING_AWAY, MESSAGE_TOO_BIG, POLICY_VIOLATION, TRY_AGAIN_LATER};
use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use iii_stream_config::StreamConfig;
use iii_stream_metrics::{Limit, OutcomeLabel, metrics};
use iii_stream_protocol::RawValue;
use iii_stream_protocol::subscriber::{Join, Since};
use iii_stream_protocol::url::{PathError, StreamPath, parse_stream_path, since_from_query};
use iii_stream_service::fanout::{Outbox, Outgoing};
use iii_stream_service::{AuthDecision, HandshakeRequest, StreamService};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::timeout;

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
    /// Handshakes waiting for the auth function.
    pub(crate) authenticating: Arc<AtomicUsize>,
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
        _ => match path.strip_prefix("/stream/").map(parse_stream_path) {
            Some(Ok(target)) => handshake(port, Some(target), addr, request).await,
            Some(Err(PathError::BadRequest)) => refuse(StatusCode::BAD_REQUEST, "bad_request"),
            Some(Err(PathError::NotFound)) | None => refuse(StatusCode::NOT_FOUND, "bad_request"),
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

async fn handshake(
    port: Port,
    target: Option<StreamPath>,
    addr: SocketAddr,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let Ok(upgrade) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        return refuse(StatusCode::UPGRADE_REQUIRED, "bad_request");
    };
    let config = port.service.config();
    let limit = config.limits.max_connections;
    let over_limit = || {
        metrics().limit_refused(Limit::SubscriberConnections);
        refuse(StatusCode::SERVICE_UNAVAILABLE, "over_limit")
    };
    if port.connections.load(Ordering::Acquire) >= limit {
        return over_limit();
    }
    // Without an auth function there is nobody to show the request to: skip copying it.
    let context = match &config.auth_function {
        None => None,
        Some(_) => {
            // Handshakes waiting for the auth function are bounded on their own, so a flood of
            // them can never hold the places of connected subscribers.
            let Some(_authenticating) = Slot::take(&port.authenticating, limit, None) else {
                return over_limit();
            };
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
    let Some(slot) = Slot::take(
        &port.connections,
        limit,
        Some(&metrics().subscriber_connections),
    ) else {
        return over_limit();
    };
    // The Motia clients offer ['Authorization', token] and abort unless one is selected.
    let offered = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()))
        .map(str::to_owned);
    let since = since_from_query(parts.uri.query());
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
    upgrade.on_upgrade(move |socket| serve(port, socket, context, target, since, slot))
}

impl ToWire for Outgoing {
    fn to_wire(self) -> Option<Message> {
        Some(Message::Text(self.into_text().into()))
    }
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
    /// What was queued could not be written within `write_timeout_ms`.
    WriteTimeout,
    Shutdown,
}

async fn serve(
    port: Port,
    socket: WebSocket,
    context: Option<Arc<RawValue>>,
    path: Option<StreamPath>,
    since: Option<Since>,
    _slot: Slot,
) {
    let config: &StreamConfig = port.service.config();
    let outbox = Arc::new(Outbox::new(
        config.limits.outbound_queue_frames,
        config.limits.outbound_queue_bytes,
    ));
    // A socket opened at a `/stream/...` path joins it at once, and is bound to it.
    let auto_join = path.as_ref().map(|p| Join {
        subscription_id: uuid::Uuid::new_v4().to_string(),
        stream_name: p.stream.clone(),
        group_id: p.group.clone(),
        item_id: p.item.clone(),
        since,
    });
    let session = Arc::new(port.service.session(context, outbox.clone(), path));
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
    let write_timeout = Duration::from_millis(config.limits.write_timeout_ms);
    let writing = async {
        match writer::write(&mut sink, &outbox, ping_every, write_timeout).await {
            Stop::Gone | Stop::CloseRequested => End::Gone,
            Stop::Overflow => End::SlowConsumer,
            Stop::Stalled => End::WriteTimeout,
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
        End::SlowConsumer | End::WriteTimeout => {
            if end == End::WriteTimeout {
                metrics().slow_consumer_disconnects.inc();
            }
            tracing::warn!(connection = ?outbox, ?end, "subscriber too slow; closing with 1013");
            ws::close(&mut sink, TRY_AGAIN_LATER, "slow consumer").await;
        }
        End::Idle => ws::close(&mut sink, GOING_AWAY, "idle timeout").await,
        End::TooBig => ws::close(&mut sink, MESSAGE_TOO_BIG, "message too big").await,
        End::Flooded => {
            metrics().limit_refused(Limit::SubscriberInbox);
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
