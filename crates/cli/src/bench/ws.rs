//! A minimal WebSocket client (RFC 6455) for the load generator.
//!
//! General-purpose clients decode every message into an owned buffer and hand it over one at a
//! time; a generator that must outpace the server on a shared machine cannot afford that. This one
//! reads large chunks into one buffer and yields borrowed payloads straight out of it, and queues
//! outgoing frames into one buffer flushed with a single write. It speaks exactly what the two
//! iii-stream ports need: a plain HTTP/1.1 upgrade, text frames, Ping/Pong and Close.

use super::readbuf::make_room;
use std::io;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest message accepted from a server: a group sync can be big, but not unbounded.
const MAX_MESSAGE: usize = 64 << 20;
/// Largest HTTP response head accepted during the upgrade.
const MAX_HEAD: usize = 16 << 10;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("upgrade refused: {0}")]
    Refused(String),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("connection closed by the server{}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Closed { code: Option<u16> },
}

/// Opens a TCP connection (from `bind`, if given) and upgrades it on `path`.
pub async fn connect(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    path: &str,
    read_capacity: usize,
) -> Result<(WsReader, WsWriter), WsError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut read, mut write) = stream.into_split();
    let key = handshake_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    write.write_all(request.as_bytes()).await?;
    let mut buf = vec![0; read_capacity.max(1024)];
    let mut end = 0;
    let head_len = loop {
        if let Some(i) = memchr::memmem::find(&buf[..end], b"\r\n\r\n") {
            break i + 4;
        }
        if end == buf.len() {
            if buf.len() >= MAX_HEAD {
                return Err(WsError::Protocol("upgrade response head too large"));
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = read.read(&mut buf[end..]).await?;
        if n == 0 {
            return Err(WsError::Closed { code: None });
        }
        end += n;
    };
    let status = buf[..head_len].split(|&b| b == b'\n').next().unwrap_or(&[]);
    if !status.starts_with(b"HTTP/1.1 101") {
        return Err(WsError::Refused(
            String::from_utf8_lossy(status).trim().to_owned(),
        ));
    }
    let reader = WsReader {
        io: read,
        buf,
        start: head_len,
        end,
        fragments: Vec::new(),
        fragment_op: None,
        ready: Ready::None,
    };
    let writer = WsWriter {
        io: write,
        out: Vec::with_capacity(1024),
        mask: rand::random(),
    };
    Ok((reader, writer))
}

/// A random base64 nonce for `Sec-WebSocket-Key`.
fn handshake_key() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let nonce: [u8; 16] = rand::random();
    let mut key = String::with_capacity(24);
    for chunk in nonce.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                key.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                key.push('=');
            }
        }
    }
    key
}

/// A complete message, borrowed from the reader's buffer until the next read.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub opcode: u8,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum Ready {
    None,
    /// A single-frame message at `buf[start..end]`.
    Buffer {
        opcode: u8,
        start: usize,
        end: usize,
    },
    /// A reassembled fragmented message in `fragments`.
    Fragments {
        opcode: u8,
    },
}

pub struct WsReader {
    io: OwnedReadHalf,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    fragments: Vec<u8>,
    fragment_op: Option<u8>,
    ready: Ready,
}

impl WsReader {
    /// The next complete message already in the buffer, without reading from the socket.
    pub fn try_next(&mut self) -> Result<Option<Message<'_>>, WsError> {
        if self.advance()? {
            Ok(Some(self.ready_message()))
        } else {
            Ok(None)
        }
    }

    /// The next complete message, reading from the socket as needed.
    pub async fn next(&mut self) -> Result<Message<'_>, WsError> {
        while !self.advance()? {
            self.fill().await?;
        }
        Ok(self.ready_message())
    }

    /// Reads more bytes from the socket (at least one), making room first. Messages returned
    /// earlier must no longer be borrowed.
    pub async fn fill(&mut self) -> Result<(), WsError> {
        // A frame header is at most 14 bytes.
        if !make_room(
            &mut self.buf,
            &mut self.start,
            &mut self.end,
            MAX_MESSAGE + 14,
        ) {
            return Err(WsError::Protocol("message too large"));
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(WsError::Closed { code: None });
        }
        self.end += n;
        Ok(())
    }

    fn ready_message(&self) -> Message<'_> {
        match self.ready {
            Ready::Buffer { opcode, start, end } => Message {
                opcode,
                payload: &self.buf[start..end],
            },
            Ready::Fragments { opcode } => Message {
                opcode,
                payload: &self.fragments,
            },
            Ready::None => Message {
                opcode: OP_CLOSE,
                payload: &[],
            },
        }
    }

    /// Consumes frames from the buffer until one completes a message (true) or the buffer holds
    /// no complete frame (false).
    fn advance(&mut self) -> Result<bool, WsError> {
        if let Ready::Fragments { .. } = self.ready {
            self.fragments.clear();
        }
        self.ready = Ready::None;
        loop {
            let Some(header) = parse_header(&self.buf[self.start..self.end])? else {
                return Ok(false);
            };
            let payload_start = self.start + header.header_len;
            let payload_end = payload_start + header.payload_len;
            if payload_end > self.end {
                // Make sure the buffer can hold the whole frame once more bytes arrive.
                let needed = payload_end - self.start;
                if needed > self.buf.len() {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                    self.buf.resize(needed.next_power_of_two(), 0);
                }
                return Ok(false);
            }
            if let Some(mask) = header.mask {
                // Servers must not mask, but unmasking costs nothing to support.
                for (i, b) in self.buf[payload_start..payload_end].iter_mut().enumerate() {
                    *b ^= mask[i & 3];
                }
            }
            self.start = payload_end;
            match (header.opcode, header.fin) {
                (OP_CONTINUATION, fin) => {
                    let Some(opcode) = self.fragment_op else {
                        return Err(WsError::Protocol("continuation without a first frame"));
                    };
                    if self.fragments.len() + header.payload_len > MAX_MESSAGE {
                        return Err(WsError::Protocol("message too large"));
                    }
                    self.fragments
                        .extend_from_slice(&self.buf[payload_start..payload_end]);
                    if fin {
                        self.fragment_op = None;
                        self.ready = Ready::Fragments { opcode };
                        return Ok(true);
                    }
                }
                (OP_TEXT | OP_BINARY, false) => {
                    if self.fragment_op.is_some() {
                        return Err(WsError::Protocol("new message inside a fragmented one"));
                    }
                    self.fragment_op = Some(header.opcode);
                    self.fragments.clear();
                    self.fragments
                        .extend_from_slice(&self.buf[payload_start..payload_end]);
                }
                (opcode, _) => {
                    self.ready = Ready::Buffer {
                        opcode,
                        start: payload_start,
                        end: payload_end,
                    };
                    return Ok(true);
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    header_len: usize,
    payload_len: usize,
}

/// Parses a frame header; `None` if more bytes are needed.
fn parse_header(bytes: &[u8]) -> Result<Option<Header>, WsError> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7F {
        126 => match bytes.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(b) => {
                let mut be = [0; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let payload_len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= MAX_MESSAGE)
        .ok_or(WsError::Protocol("frame too large"))?;
    let mask = if masked {
        let Some(m) = bytes.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        header_len: at,
        payload_len,
    }))
}

/// Queues masked client frames and writes them out in one go.
pub struct WsWriter {
    io: OwnedWriteHalf,
    out: Vec<u8>,
    mask: [u8; 4],
}

impl WsWriter {
    /// Queues a text message.
    pub fn text(&mut self, payload: &[u8]) {
        encode_frame(&mut self.out, OP_TEXT, payload, self.mask);
    }

    /// Queues a Pong answering a Ping.
    pub fn pong(&mut self, payload: &[u8]) {
        encode_frame(&mut self.out, OP_PONG, payload, self.mask);
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends a Close frame (best effort) and shuts the write side down.
    pub async fn close(mut self) {
        encode_frame(&mut self.out, OP_CLOSE, &1000u16.to_be_bytes(), self.mask);
        let _ = self.flush().await;
        let _ = self.io.shutdown().await;
    }
}

/// Appends one final, masked frame to `out`.
fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// The close code carried by a Close payload, if any.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_header_parser() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let payload = vec![b'a'; len];
            let mut out = Vec::new();
            encode_frame(&mut out, OP_TEXT, &payload, [1, 2, 3, 4]);
            let header = parse_header(&out).unwrap().unwrap();
            assert_eq!(header.payload_len, len);
            assert_eq!(header.opcode, OP_TEXT);
            assert!(header.fin);
            let mask = header.mask.unwrap();
            let unmasked: Vec<u8> = out[header.header_len..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i & 3])
                .collect();
            assert_eq!(unmasked, payload);
            // Any truncation of the header asks for more bytes instead of misparsing.
            for cut in 0..header.header_len {
                assert_eq!(parse_header(&out[..cut]).unwrap(), None);
            }
        }
    }

    #[test]
    fn handshake_keys_are_base64_of_sixteen_bytes() {
        let key = handshake_key();
        assert_eq!(key.len(), 24);
        assert!(key.ends_with("=="));
        assert_ne!(key, handshake_key());
    }
}
