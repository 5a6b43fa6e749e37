//! The engine port: workers' WebSocket at `/`, the telemetry sink at `/otel`.

use crate::ws::{self, GOING_AWAY, MESSAGE_TOO_BIG};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;
use futures_util::{SinkExt, StreamExt};
use iii_stream_config::EngineConfig;
use iii_stream_engine::{Engine, Outbound};

#[derive(Clone)]
struct Port {
    engine: Engine,
    max_message_bytes: usize,
}

pub(crate) fn router(engine: Engine, config: &EngineConfig) -> Router {
    let port = Port {
        engine,
        max_message_bytes: config.max_message_bytes,
    };
    Router::new()
        .route("/", any(worker))
        .route("/otel", any(telemetry))
        .with_state(port)
}

async fn worker(State(port): State<Port>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(port.max_message_bytes)
        .max_frame_size(port.max_message_bytes)
        .on_upgrade(move |socket| serve_worker(port.engine, socket))
}

/// Telemetry from the SDKs' OpenTelemetry exporters: accepted and discarded.
async fn telemetry(State(port): State<Port>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(port.max_message_bytes)
        .max_frame_size(port.max_message_bytes)
        .on_upgrade(|mut socket| async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Close(_) = message {
                    break;
                }
            }
        })
}

/// Messages handled in a row before the reader yields to other tasks.
const YIELD_EVERY: u32 = 64;

/// Binary messages starting with these prefixes are telemetry sent on the main socket.
const TELEMETRY_PREFIXES: [&[u8]; 3] = [b"OTLP", b"MTRC", b"LOGS"];

async fn serve_worker(engine: Engine, socket: WebSocket) {
    let (connection, mut outbound) = engine.connect();
    let (mut sink, mut stream) = socket.split();
    // Everything queued is written before one flush: one syscall for a burst of replies.
    let writer = async {
        while let Some(first) = outbound.recv().await {
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Outbound::Text(text) => {
                        if sink.feed(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    Outbound::Close => {
                        let _ = sink.flush().await;
                        ws::close(&mut sink, GOING_AWAY, "").await;
                        return;
                    }
                }
                next = outbound.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    };
    let reader = async {
        let mut handled = 0u32;
        while let Some(received) = stream.next().await {
            // A socket with a deep backlog (a worker re-registering 20,000 triggers) is ready
            // on every poll; yield now and then so the other connections on this runtime
            // thread keep their turn.
            handled = handled.wrapping_add(1);
            if handled % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
            match received {
                Ok(Message::Text(text)) => connection.handle_message(&text),
                Ok(Message::Binary(bytes)) => {
                    if TELEMETRY_PREFIXES.iter().any(|p| bytes.starts_with(p)) {
                        continue;
                    }
                    match ws::text_of(&bytes) {
                        Some(text) => connection.handle_message(text),
                        None => tracing::debug!(
                            worker = connection.worker_id(),
                            "ignoring non-UTF-8 binary message"
                        ),
                    }
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => {} // pings are answered by the WebSocket layer
                Err(error) => return ws::is_too_big(&error).then_some(MESSAGE_TOO_BIG),
            }
        }
        None
    };
    let close_code = tokio::select! {
        () = writer => None,
        code = reader => code,
    };
    // Dropping the connection cleans up: its functions and triggers go, pending calls fail.
    drop(connection);
    if let Some(code) = close_code {
        ws::close(&mut sink, code, "message too big").await;
    }
}
