//! A WebSocket handshake written by hand over TCP: any path, any headers, the exact HTTP status
//! of refused upgrades, and a socket the test fully controls afterwards (e.g. one that is never
//! read, so the server's writes back up, or that never answers Pings).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// An upgrade request to send to the stream port.
#[derive(Debug, Clone)]
pub struct Handshake {
    path: String,
    headers: Vec<(String, String)>,
    upgrade: bool,
    receive_buffer: Option<u32>,
}

/// The server's answer to a [`Handshake`].
#[derive(Debug)]
pub struct Upgraded {
    pub status: u16,
    /// Response headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The connection, positioned right after the response head.
    pub stream: TcpStream,
}

impl Handshake {
    /// A WebSocket upgrade of `path` (which may carry a query string).
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            headers: Vec::new(),
            upgrade: true,
            receive_buffer: None,
        }
    }

    /// Adds a header; repeating a name sends it several times.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A plain GET without the upgrade headers.
    pub fn without_upgrade(mut self) -> Self {
        self.upgrade = false;
        self
    }

    /// Shrinks the socket's receive buffer (a client that stops reading fills up sooner).
    pub fn receive_buffer(mut self, bytes: u32) -> Self {
        self.receive_buffer = Some(bytes);
        self
    }

    /// Sends the request to `127.0.0.1:port` and reads the response head.
    pub async fn send(self, port: u16) -> std::io::Result<Upgraded> {
        let socket = TcpSocket::new_v4()?;
        if let Some(bytes) = self.receive_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await?;
        let mut request = format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n", self.path);
        if self.upgrade {
            request.push_str(
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            );
        }
        for (name, value) in &self.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
            .await
            .map_err(|_| std::io::Error::other("no response head within 10 s"))??;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Ok(Upgraded {
            status,
            headers,
            stream,
        })
    }
}

/// Reads up to and including the blank line that ends the head, one byte at a time so that no
/// WebSocket bytes after it are consumed.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await?;
        head.push(byte);
    }
    head.truncate(head.len() - 4);
    String::from_utf8(head).map_err(std::io::Error::other)
}

/// One WebSocket frame as the server sent it (server frames are not masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    pub const TEXT: u8 = 0x1;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;

    /// The status code of a Close frame.
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (Self::CLOSE, [high, low, ..]) => Some(u16::from_be_bytes([*high, *low])),
            _ => None,
        }
    }

    /// The JSON of a text frame.
    pub fn json(&self) -> Option<serde_json::Value> {
        (self.opcode == Self::TEXT)
            .then(|| serde_json::from_slice(&self.payload).ok())
            .flatten()
    }
}

/// Splits bytes received from the server into frames; also returns how many bytes at the end
/// belong to an incomplete frame.
pub fn parse_frames(mut bytes: &[u8]) -> (Vec<RawFrame>, usize) {
    let mut frames = Vec::new();
    loop {
        let Some((frame, used)) = parse_frame(bytes) else {
            return (frames, bytes.len());
        };
        frames.push(frame);
        bytes = &bytes[used..];
    }
}

fn parse_frame(bytes: &[u8]) -> Option<(RawFrame, usize)> {
    let (&first, &second) = (bytes.first()?, bytes.get(1)?);
    let (len, mut at) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = if second & 0x80 != 0 {
        let key: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let mut payload = bytes.get(at..end)?.to_vec();
    if let Some(key) = mask {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i % 4]);
    }
    let frame = RawFrame {
        fin: first & 0x80 != 0,
        opcode: first & 0x0f,
        payload,
    };
    Some((frame, end))
}

/// How the server's side of a connection ended, seen from a raw reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// An orderly end of stream (FIN).
    Eof,
    /// A read error, e.g. `ConnectionReset` (RST).
    Error(std::io::ErrorKind),
    /// Still open when the wait ended.
    StillOpen,
}

impl Upgraded {
    /// Reads everything the server sends until it ends the connection or `within` passed,
    /// without ever writing (so Pings stay unanswered).
    pub async fn read_to_end(&mut self, within: Duration) -> (Vec<u8>, Ending) {
        let deadline = tokio::time::Instant::now() + within;
        let mut received = Vec::new();
        let mut buffer = vec![0; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await {
                Err(_) => return (received, Ending::StillOpen),
                Ok(Ok(0)) => return (received, Ending::Eof),
                Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
                Ok(Err(error)) => return (received, Ending::Error(error.kind())),
            }
        }
    }

    /// The value of a response header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Speaks WebSocket (client role) on the upgraded connection.
    pub async fn into_websocket(self) -> WebSocketStream<TcpStream> {
        WebSocketStream::from_raw_socket(self.stream, Role::Client, None).await
    }
}
