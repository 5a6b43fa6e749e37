//! The engine port: workers' WebSocket at `/`, the telemetry sink at `/otel`.
//!
//! Every connection is bounded (docs/limits.md): a connection limit, a small read buffer, calls in
//! flight (the reader waits when the limit is reached, so TCP pushes back), an outbound queue (a
//! worker that does not read is closed with 1013), a write deadline, server pings and an idle
//! timeout.

use crate::slot::Slot;
use crate::writer::{self, Stop, ToWire};
use crate::ws::{self, GOING_AWAY, MESSAGE_TOO_BIG, TRY_AGAIN_LATER};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::StreamExt;
use iii_stream_config::EngineConfig;
use iii_stream_engine::{ConnectionLimits, Engine, Outbound};
use iii_stream_metrics::{Limit, metrics};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tokio::time::timeout;

/// Read buffer of a worker socket: tungstenite's 128 KiB default made an idle worker connection
/// cost 125 KB. Messages larger than the buffer still arrive, over several reads.
const WORKER_READ_BUFFER: usize = 4 << 10;

#[derive(Clone)]
struct Port {
    engine: Engine,
    max_message_bytes: usize,
    limits: ConnectionLimits,
    max_connections: usize,
    /// Open worker connections across every engine listener.
    connections: Arc<AtomicUsize>,
    ping_interval: Duration,
    idle_timeout: Duration,
}

pub(crate) fn router(
    engine: Engine,
    config: &EngineConfig,
    connections: Arc<AtomicUsize>,
) -> Router {
    let port = Port {
        engine,
        max_message_bytes: config.max_message_bytes,
        limits: ConnectionLimits {
            max_in_flight_calls: config.max_in_flight_calls,
            outbound_queue_frames: config.outbound_queue_frames,
            outbound_queue_bytes: config.outbound_queue_bytes,
            max_calls_per_second: config.max_calls_per_second,
        },
        max_connections: config.max_connections,
        connections,
        ping_interval: Duration::from_millis(config.ping_interval_ms),
        idle_timeout: Duration::from_millis(config.idle_timeout_ms),
    };
    Router::new()
        .route("/", any(worker))
        .route("/otel", any(telemetry))
        .with_state(port)
}

async fn worker(State(port): State<Port>, upgrade: WebSocketUpgrade) -> Response {
    let Some(slot) = Slot::take(&port.connections, port.max_connections, None) else {
        metrics().limit_refused(Limit::WorkerConnections);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    upgrade
        .max_message_size(port.max_message_bytes)
        .max_frame_size(port.max_message_bytes)
        .read_buffer_size(WORKER_READ_BUFFER)
        .on_upgrade(move |socket| serve_worker(port, socket, slot))
}

/// Telemetry from the SDKs' OpenTelemetry exporters: accepted and discarded.
async fn telemetry(State(port): State<Port>, upgrade: WebSocketUpgrade) -> Response {
    let Some(slot) = Slot::take(&port.connections, port.max_connections, None) else {
        metrics().limit_refused(Limit::WorkerConnections);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let idle = port.idle_timeout;
    upgrade
        .max_message_size(port.max_message_bytes)
        .max_frame_size(port.max_message_bytes)
        .read_buffer_size(WORKER_READ_BUFFER)
        .on_upgrade(move |mut socket| async move {
            let _slot = slot;
            while let Ok(Some(Ok(message))) = timeout(idle, socket.next()).await {
                if let Message::Close(_) = message {
                    break;
                }
            }
        })
}

impl ToWire for Outbound {
    fn to_wire(self) -> Option<Message> {
        match self {
            Self::Text(text) => Some(Message::Text(text.into())),
            Self::Close => None,
        }
    }
}

/// Binary messages starting with these prefixes are telemetry sent on the main socket.
const TELEMETRY_PREFIXES: [&[u8]; 3] = [b"OTLP", b"MTRC", b"LOGS"];

/// Messages handled in a row before the reader yields to other tasks.
const YIELD_EVERY: u32 = 64;

/// Why a worker connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Gone,
    Idle,
    TooBig,
    /// The worker does not read what it is sent: its queue overflowed or a write stalled.
    NotReading,
}

async fn serve_worker(port: Port, socket: WebSocket, _slot: Slot) {
    let (connection, outbox) = port.engine.connect(&port.limits);
    let (mut sink, mut stream) = socket.split();
    let idle = port.idle_timeout;
    let writer = async {
        match writer::write(&mut sink, &outbox, port.ping_interval, idle).await {
            Stop::Gone => End::Gone,
            Stop::Overflow | Stop::Stalled => End::NotReading,
            Stop::CloseRequested => {
                ws::close(&mut sink, GOING_AWAY, "").await;
                End::Gone
            }
        }
    };
    let reader = async {
        let mut handled = 0u32;
        loop {
            let received = match timeout(idle, stream.next()).await {
                Err(_) => return End::Idle,
                Ok(None) => return End::Gone,
                Ok(Some(received)) => received,
            };
            // A socket with a deep backlog (a worker re-registering 20,000 triggers) is ready
            // on every poll; yield now and then so the other connections on this runtime
            // thread keep their turn.
            handled = handled.wrapping_add(1);
            if handled.is_multiple_of(YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
            match received {
                Ok(Message::Text(text)) => connection.handle_message(&text).await,
                Ok(Message::Binary(bytes)) => {
                    if TELEMETRY_PREFIXES.iter().any(|p| bytes.starts_with(p)) {
                        continue;
                    }
                    match ws::text_of(&bytes) {
                        Some(text) => connection.handle_message(text).await,
                        None => tracing::debug!(
                            worker = connection.worker_id(),
                            "ignoring non-UTF-8 binary message"
                        ),
                    }
                }
                Ok(Message::Close(_)) => return End::Gone,
                Ok(_) => {} // pings are answered by the WebSocket layer
                Err(error) if ws::is_too_big(&error) => return End::TooBig,
                Err(_) => return End::Gone,
            }
        }
    };
    let end = tokio::select! {
        end = writer => end,
        end = reader => end,
    };
    // Dropping the connection cleans up: its functions and triggers go, pending calls fail.
    let worker = connection.worker_id().to_owned();
    drop(connection);
    match end {
        End::TooBig => ws::close(&mut sink, MESSAGE_TOO_BIG, "message too big").await,
        End::Idle => ws::close(&mut sink, GOING_AWAY, "idle timeout").await,
        End::NotReading => {
            metrics().limit_refused(Limit::WorkerOutbound);
            tracing::warn!(%worker, "worker does not read what it is sent; closed with 1013");
            ws::close(&mut sink, TRY_AGAIN_LATER, "not reading").await;
        }
        End::Gone => {}
    }
}
