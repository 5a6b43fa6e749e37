//! A stream-port client that records every frame it receives.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{WebSocketStream, client_async, connect_async};

/// What the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Frame(Value),
    /// A close frame with its code.
    Close(Option<u16>),
    Pong(Vec<u8>),
    Ping(Vec<u8>),
}

pub struct SubscriberClient {
    out: mpsc::UnboundedSender<Message>,
    received: mpsc::UnboundedReceiver<Received>,
}

impl SubscriberClient {
    /// Connects to `url` (e.g. `ws://127.0.0.1:3112/` or a `/stream/...` URL).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, &[]).await.map(|(client, _)| client)
    }

    /// Connects with extra request headers (e.g. `Sec-WebSocket-Protocol`, `Cookie`) and returns
    /// the handshake response too. The client checks the subprotocol the server selects.
    pub async fn connect_with(
        url: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<(Self, Response), Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| Error::HttpFormat(e.into()))?;
            request.headers_mut().append(*name, value);
        }
        let (socket, response) = connect_async(request).await?;
        Ok((Self::from_websocket(socket), response))
    }

    /// Connects like a healthy subscriber on a fast network: on a thread of its own, with its own
    /// runtime, and with a 4 MiB socket receive buffer. A busy test process (many writer tasks on
    /// few cores) then never makes it fall behind, so only the server can.
    pub async fn connect_dedicated(url: &str) -> Result<Self, Error> {
        const RECEIVE_BUFFER: u32 = 4 << 20;
        let request = url.into_client_request()?;
        let host = request.uri().host().unwrap_or("127.0.0.1").to_owned();
        let port = request.uri().port_u16().unwrap_or(80);
        let (ready, connected) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => return drop(ready.send(Err(Error::Io(error)))),
            };
            runtime.block_on(async move {
                let connect = async {
                    let address = tokio::net::lookup_host((host.as_str(), port))
                        .await?
                        .next()
                        .ok_or_else(|| std::io::Error::other("no address"))?;
                    let socket = if address.is_ipv4() {
                        TcpSocket::new_v4()?
                    } else {
                        TcpSocket::new_v6()?
                    };
                    socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
                    socket.connect(address).await
                };
                let stream = match connect.await {
                    Ok(stream) => stream,
                    Err(error) => return drop(ready.send(Err(Error::Io(error)))),
                };
                match client_async(request, stream).await {
                    Ok((socket, _)) => {
                        let (client, run) = Self::start(socket);
                        if ready.send(Ok(client)).is_ok() {
                            run.await;
                        }
                    }
                    Err(error) => drop(ready.send(Err(error))),
                }
            });
        });
        connected
            .await
            .map_err(|_| Error::Io(std::io::Error::other("the client thread ended")))?
    }

    /// Takes over an already upgraded WebSocket (e.g. from [`crate::Handshake`]).
    pub fn from_websocket<S>(socket: WebSocketStream<S>) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (client, run) = Self::start(socket);
        tokio::spawn(run);
        client
    }

    /// The client, and the future that moves messages between it and the socket until the
    /// connection ends.
    fn start<S>(socket: WebSocketStream<S>) -> (Self, impl Future<Output = ()> + Send + 'static)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = socket.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        let (tx, received) = mpsc::unbounded_channel();
        let writing = async move {
            while let Some(message) = rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        };
        let reading = async move {
            while let Some(Ok(message)) = stream.next().await {
                let item = match message {
                    Message::Text(text) => match serde_json::from_str(&text) {
                        Ok(value) => Received::Frame(value),
                        Err(_) => continue,
                    },
                    Message::Close(frame) => Received::Close(frame.map(|f| f.code.into())),
                    Message::Pong(payload) => Received::Pong(payload.to_vec()),
                    Message::Ping(payload) => Received::Ping(payload.to_vec()),
                    Message::Binary(_) | Message::Frame(_) => continue,
                };
                if tx.send(item).is_err() {
                    break;
                }
            }
        };
        let run = async move {
            // The reader ends with the connection; the writer once the client is dropped.
            tokio::join!(writing, reading);
        };
        (Self { out, received }, run)
    }

    /// Starts the closing handshake (also done on drop).
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
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

    /// The next frame (skipping control frames), or `None` after `wait` or on close.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Received::Frame(frame) => return Some(frame),
                Received::Pong(_) | Received::Ping(_) => continue,
                Received::Close(_) => return None,
            }
        }
    }

    /// The next `count` frames, each within `wait`; panics naming what was missing.
    pub async fn frames(&mut self, count: usize, wait: Duration) -> Vec<Value> {
        let mut frames = Vec::with_capacity(count);
        while frames.len() < count {
            match self.next_frame(wait).await {
                Some(frame) => frames.push(frame),
                None => panic!(
                    "expected {count} frames, got {} within {wait:?}: {frames:#?}",
                    frames.len()
                ),
            }
        }
        frames
    }

    /// The next frame, which must arrive within `wait`.
    pub async fn frame(&mut self, wait: Duration) -> Value {
        self.frames(1, wait).await.remove(0)
    }

    /// Skips frames and control frames until a Close arrives; returns its code, or `None` when
    /// the connection ended without one or nothing came within `wait`.
    pub async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Received::Close(code) = self.next(left).await? {
                return code;
            }
        }
    }
}

impl Drop for SubscriberClient {
    fn drop(&mut self) {
        self.close();
    }
}
