//! A stream-port client that records every frame it receives.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Frame(Value),
    /// A close frame with its code.
    Close(Option<u16>),
    Pong(Vec<u8>),
}

pub struct SubscriberClient {
    out: mpsc::UnboundedSender<Message>,
    received: mpsc::UnboundedReceiver<Received>,
}

impl SubscriberClient {
    /// Connects to `url` (e.g. `ws://127.0.0.1:3112/` or a `/stream/...` URL).
    pub async fn connect(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (socket, _) = connect_async(url.into_client_request()?).await?;
        Ok(Self::run(socket))
    }

    fn run(socket: Socket) -> Self {
        let (mut sink, mut stream) = socket.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let item = match message {
                    Message::Text(text) => match serde_json::from_str(&text) {
                        Ok(value) => Received::Frame(value),
                        Err(_) => continue,
                    },
                    Message::Close(frame) => Received::Close(frame.map(|f| f.code.into())),
                    Message::Pong(payload) => Received::Pong(payload.to_vec()),
                    _ => continue,
                };
                if tx.send(item).is_err() {
                    break;
                }
            }
        });
        Self { out, received }
    }

    pub fn send_raw(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::Text(text.into().into()));
    }

    pub fn send_message(&self, message: Message) {
        let _ = self.out.send(message);
    }

    pub fn join(&self, subscription_id: &str, stream: &str, group: &str, item: Option<&str>) {
        self.send_raw(
            json!({"type": "join", "data": {"subscriptionId": subscription_id, "streamName": stream, "groupId": group, "id": item}})
                .to_string(),
        );
    }

    pub fn leave(&self, subscription_id: &str) {
        self.send_raw(
            json!({"type": "leave", "data": {"subscriptionId": subscription_id, "streamName": "", "groupId": ""}})
                .to_string(),
        );
    }

    /// The next thing received, or `None` after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.received.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next frame (skipping pongs), or `None` after `wait` or on close.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match self.next(wait).await? {
                Received::Frame(frame) => return Some(frame),
                Received::Pong(_) => continue,
                Received::Close(_) => return None,
            }
        }
    }
}
