//! A lean engine-port caller: many `invokefunction` calls in flight on one worker connection.
//!
//! Each in-flight call occupies a slot. The invocation id is a number that encodes the slot
//! (`round × slots + slot`), so a reply is matched to its call by parsing one integer: no map,
//! no UUID, no JSON tree. Requests are formatted straight into the socket's write buffer.

use super::scan::{self, KEYS};
use super::stats::now_ns;
use super::ws::{self, OP_CLOSE, OP_PING, OP_TEXT, WsError, WsReader, WsWriter};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// The answer to one call.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// What the caller attached to the call (e.g. the group it wrote to).
    pub tag: u64,
    /// Nanoseconds from queueing the request to reading its answer.
    pub latency_ns: u64,
    /// False when the server answered with an `error`.
    pub ok: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    busy: bool,
    round: u64,
    sent_ns: u64,
    tag: u64,
}

pub struct Caller {
    reader: WsReader,
    writer: WsWriter,
    slots: Vec<Slot>,
    free: Vec<usize>,
    scratch: Vec<u8>,
}

impl Caller {
    /// Connects a worker connection that keeps up to `in_flight` calls outstanding.
    pub async fn connect(
        addr: SocketAddr,
        bind: Option<IpAddr>,
        in_flight: usize,
    ) -> Result<Self, WsError> {
        let (reader, writer) = ws::connect(addr, bind, "/", 64 << 10).await?;
        let in_flight = in_flight.max(1);
        Ok(Self {
            reader,
            writer,
            slots: vec![Slot::default(); in_flight],
            free: (0..in_flight).rev().collect(),
            scratch: Vec::with_capacity(512),
        })
    }

    /// Calls that may still be queued before the window is full.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    pub fn outstanding(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Queues one call, if a slot is free. `build` writes the complete message given the
    /// invocation id to use.
    pub fn call(&mut self, tag: u64, build: impl FnOnce(&mut Vec<u8>, u64)) -> bool {
        let Some(index) = self.free.pop() else {
            return false;
        };
        let slots = self.slots.len() as u64;
        let slot = &mut self.slots[index];
        let id = slot.round * slots + index as u64;
        slot.round += 1;
        slot.busy = true;
        slot.tag = tag;
        self.scratch.clear();
        build(&mut self.scratch, id);
        slot.sent_ns = now_ns();
        self.writer.text(&self.scratch);
        true
    }

    /// Writes the queued calls.
    pub async fn flush(&mut self) -> Result<(), WsError> {
        Ok(self.writer.flush().await?)
    }

    /// Waits for more bytes from the server. Cancel-safe (nothing is consumed).
    pub async fn fill(&mut self) -> Result<(), WsError> {
        self.reader.fill().await
    }

    /// Handles every complete message received so far, calling `on_reply` for each answer.
    /// Pings are answered (on the next flush); other messages are ignored.
    pub fn take_replies(&mut self, mut on_reply: impl FnMut(Reply)) -> Result<(), WsError> {
        let now = now_ns();
        let slots = self.slots.len() as u64;
        while let Some(message) = self.reader.try_next()? {
            match message.opcode {
                OP_TEXT => {
                    let payload = message.payload;
                    let Some(id) = scan::u64_after(payload, &KEYS.invocation_id) else {
                        continue; // workerregistered, or a call into us
                    };
                    let index = (id % slots) as usize;
                    let slot = &mut self.slots[index];
                    if !slot.busy || slot.round != id / slots + 1 {
                        continue; // not an answer we are waiting for
                    }
                    slot.busy = false;
                    self.free.push(index);
                    on_reply(Reply {
                        tag: slot.tag,
                        latency_ns: now.saturating_sub(slot.sent_ns),
                        ok: KEYS.error.find(payload).is_none(),
                    });
                }
                OP_PING => {
                    let payload = message.payload.to_vec();
                    self.writer.pong(&payload);
                }
                OP_CLOSE => {
                    return Err(WsError::Closed {
                        code: ws::close_code(message.payload),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Waits for every outstanding answer, at most `timeout`.
    pub async fn drain(
        &mut self,
        timeout: std::time::Duration,
        mut on_reply: impl FnMut(Reply),
    ) -> Result<(), WsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.flush().await?;
        while self.outstanding() > 0 {
            self.take_replies(&mut on_reply)?;
            if self.outstanding() == 0 {
                break;
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(filled) => filled?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        self.writer.close().await;
    }
}

/// Which write function a request calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteFn {
    /// `stream::set` of `{"t":…,"n":…}`.
    Set,
    /// `stream::update` setting `t` and incrementing `n`.
    Update,
}

impl WriteFn {
    pub fn id(self) -> &'static str {
        match self {
            Self::Set => "stream::set",
            Self::Update => "stream::update",
        }
    }
}

/// Where a write goes and what it carries. Names are generator-made ASCII, so they are written
/// into JSON without escaping.
pub struct WriteCall<'a> {
    pub function: WriteFn,
    pub stream: &'a str,
    pub group: &'a str,
    pub item: u64,
    /// Send time, in [`now_ns`] nanoseconds; receivers compute delivery latency from it.
    pub t: u64,
    /// A counter the generator increments per write; receivers use it to check convergence.
    pub n: u64,
    /// Padding to reach a value size.
    pub pad: &'a str,
}

impl WriteCall<'_> {
    /// Writes the complete `invokefunction` message.
    pub fn encode(&self, out: &mut Vec<u8>, invocation_id: u64) {
        let Self {
            function,
            stream,
            group,
            item,
            t,
            n,
            pad,
        } = self;
        let id = function.id();
        // Writing into a Vec cannot fail.
        let _ = match function {
            WriteFn::Set => write!(
                out,
                r#"{{"type":"invokefunction","invocation_id":"{invocation_id}","function_id":"{id}","data":{{"stream_name":"{stream}","group_id":"{group}","item_id":"i{item}","data":{{"t":{t},"n":{n},"p":"{pad}"}}}}}}"#
            ),
            WriteFn::Update => write!(
                out,
                r#"{{"type":"invokefunction","invocation_id":"{invocation_id}","function_id":"{id}","data":{{"stream_name":"{stream}","group_id":"{group}","item_id":"i{item}","ops":[{{"type":"set","path":"t","value":{t}}},{{"type":"set","path":"n","value":{n}}},{{"type":"set","path":"p","value":"{pad}"}}]}}}}"#
            ),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_valid_json_with_the_expected_fields() {
        for function in [WriteFn::Set, WriteFn::Update] {
            let mut out = Vec::new();
            WriteCall {
                function,
                stream: "s",
                group: "g1",
                item: 3,
                t: 99,
                n: 7,
                pad: "xx",
            }
            .encode(&mut out, 4242);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["type"], "invokefunction");
            assert_eq!(v["invocation_id"], "4242");
            assert_eq!(v["function_id"], function.id());
            assert_eq!(v["data"]["item_id"], "i3");
            assert_eq!(scan::u64_after(&out, &KEYS.invocation_id), Some(4242));
        }
    }
}
