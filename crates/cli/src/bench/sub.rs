//! Lean stream-port subscribers: connect, join, wait for the sync, classify frames by byte search.

use super::scan::{self, KEYS};
use super::stats::now_ns;
use super::ws::{self, OP_CLOSE, OP_PING, OP_TEXT, WsError, WsReader, WsWriter};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// A resume position: the `(epoch, seq)` of the last frame applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub seq: u64,
}

/// What a received frame is, as far as the generator cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A sync: its `seq`, and the largest `n` among the values it carries.
    Sync { seq: u64, max_n: Option<u64> },
    /// An event (live or replayed): its `seq`, and the `t` and `n` of the value written.
    Event {
        seq: u64,
        t: Option<u64>,
        n: Option<u64>,
    },
    /// A refused join.
    Unauthorized,
    /// Anything else (not a frame the generator asked for).
    Other,
}

/// Classifies a text message from the stream port.
pub fn classify(payload: &[u8]) -> Frame {
    if KEYS.sync.find(payload).is_some() {
        let Some(seq) = scan::u64_after_last(payload, &KEYS.seq) else {
            return Frame::Other;
        };
        return Frame::Sync {
            seq,
            max_n: scan::max_u64_after_all(payload, &KEYS.n),
        };
    }
    if KEYS.unauthorized.find(payload).is_some() {
        return Frame::Unauthorized;
    }
    match scan::u64_after_last(payload, &KEYS.seq) {
        Some(seq) => Frame::Event {
            seq,
            t: scan::u64_after(payload, &KEYS.t),
            n: scan::u64_after(payload, &KEYS.n),
        },
        None => Frame::Other,
    }
}

/// The epoch carried by a frame.
pub fn epoch(payload: &[u8]) -> Option<String> {
    scan::str_after_last(payload, &KEYS.epoch).map(|e| String::from_utf8_lossy(e).into_owned())
}

/// The join message of a group subscription, with an optional resume position.
pub fn join_message(
    subscription: &str,
    stream: &str,
    group: &str,
    since: Option<&Position>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    // Writing into a Vec cannot fail; the names are generator-made ASCII.
    let _ = write!(
        out,
        r#"{{"type":"join","data":{{"subscriptionId":"{subscription}","streamName":"{stream}","groupId":"{group}""#
    );
    if let Some(Position { epoch, seq }) = since {
        let _ = write!(out, r#","since":{{"epoch":"{epoch}","seq":{seq}}}"#);
    }
    out.extend_from_slice(b"}}");
    out
}

/// A connected subscriber whose join was sent.
pub struct Subscriber {
    pub reader: WsReader,
    pub writer: WsWriter,
    /// When the TCP connect started, in [`now_ns`] nanoseconds.
    pub started_ns: u64,
}

impl Subscriber {
    /// Connects to `/` and sends one join.
    pub async fn join(
        addr: SocketAddr,
        bind: Option<IpAddr>,
        read_capacity: usize,
        join: &[u8],
    ) -> Result<Self, WsError> {
        let started_ns = now_ns();
        let (reader, mut writer) = ws::connect(addr, bind, "/", read_capacity).await?;
        writer.text(join);
        writer.flush().await?;
        Ok(Self {
            reader,
            writer,
            started_ns,
        })
    }

    /// Waits for the sync answering the join; returns its position and largest `n`.
    pub async fn await_sync(&mut self) -> Result<(Position, Option<u64>), WsError> {
        loop {
            let message = self.reader.next().await?;
            match message.opcode {
                OP_TEXT => match classify(message.payload) {
                    Frame::Sync { seq, max_n } => {
                        let epoch = epoch(message.payload).unwrap_or_default();
                        return Ok((Position { epoch, seq }, max_n));
                    }
                    Frame::Unauthorized => {
                        return Err(WsError::Refused("join refused (unauthorized frame)".into()));
                    }
                    _ => {}
                },
                OP_PING => {
                    let payload = message.payload.to_vec();
                    self.writer.pong(&payload);
                    self.writer.flush().await?;
                }
                OP_CLOSE => {
                    return Err(WsError::Closed {
                        code: ws::close_code(message.payload),
                    });
                }
                _ => {}
            }
        }
    }

    /// Holds the connection open, answering Pings, until the server closes it.
    pub async fn hold(mut self) -> WsError {
        loop {
            let pong = match self.reader.next().await {
                Ok(message) if message.opcode == OP_PING => Some(message.payload.to_vec()),
                Ok(message) if message.opcode == OP_CLOSE => {
                    return WsError::Closed {
                        code: ws::close_code(message.payload),
                    };
                }
                Ok(_) => None,
                Err(error) => return error,
            };
            if let Some(payload) = pong {
                self.writer.pong(&payload);
                if let Err(error) = self.writer.flush().await {
                    return error.into();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_frames() {
        let sync = br#"{"type":"stream","timestamp":1,"streamName":"s","groupId":"g","id":null,"event":{"type":"sync","data":[{"t":5,"n":3}]},"seq":12,"epoch":"ab12","subscriptionId":"x"}"#;
        assert_eq!(
            classify(sync),
            Frame::Sync {
                seq: 12,
                max_n: Some(3)
            }
        );
        assert_eq!(epoch(sync).as_deref(), Some("ab12"));
        let event = br#"{"type":"stream","timestamp":1,"streamName":"s","groupId":"g","id":"i1","event":{"type":"create","data":{"t":77,"n":8,"p":""}},"seq":13,"epoch":"ab12","subscriptionId":"x"}"#;
        assert_eq!(
            classify(event),
            Frame::Event {
                seq: 13,
                t: Some(77),
                n: Some(8)
            }
        );
        let refused = br#"{"type":"stream","timestamp":1,"streamName":"s","groupId":"g","id":null,"event":{"type":"unauthorized"},"subscriptionId":"x","reason":"rejected"}"#;
        assert_eq!(classify(refused), Frame::Unauthorized);
        assert_eq!(classify(br#"{"type":"other"}"#), Frame::Other);
    }

    #[test]
    fn join_messages_are_valid_json() {
        let since = Position {
            epoch: "e1".into(),
            seq: 9,
        };
        let plain: serde_json::Value =
            serde_json::from_slice(&join_message("s1", "st", "g", None)).unwrap();
        assert_eq!(plain["data"]["groupId"], "g");
        assert!(plain["data"].get("since").is_none());
        let resumed: serde_json::Value =
            serde_json::from_slice(&join_message("s1", "st", "g", Some(&since))).unwrap();
        assert_eq!(resumed["data"]["since"]["seq"], 9);
        assert_eq!(resumed["data"]["since"]["epoch"], "e1");
    }
}
