//! Just enough RESP (the Redis protocol) for the pub/sub reference: commands out, replies and
//! pushed messages in, parsed in place from one read buffer like [`super::ws`] does for frames.

use super::readbuf::make_room;
use std::io;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("malformed reply from Redis")]
    Malformed,
    #[error("Redis closed the connection")]
    Closed,
    #[error("Redis error: {0}")]
    Server(String),
}

/// One RESP value, borrowing from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Integer(i64),
    Bulk(Option<&'a [u8]>),
    Array(Vec<Value<'a>>),
}

/// Appends a command as an array of bulk strings.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one value at the start of `buf`: `Ok(None)` if it is not complete yet, else the value
/// and the bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Value<'_>, usize)>, RespError> {
    let Some(line_end) = memchr::memmem::find(buf, b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..line_end].split_first() else {
        return Err(RespError::Malformed);
    };
    let after = line_end + 2;
    let number = || -> Result<i64, RespError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(RespError::Malformed)
    };
    match kind {
        b'+' => Ok(Some((Value::Simple(line), after))),
        b'-' => Ok(Some((Value::Error(line), after))),
        b':' => Ok(Some((Value::Integer(number()?), after))),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Value::Bulk(None), after)));
            };
            let end = after + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some((Value::Bulk(Some(&buf[after..end])), end + 2)))
        }
        b'*' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Value::Array(Vec::new()), after)));
            };
            let mut items = Vec::with_capacity(len.min(16));
            let mut at = after;
            for _ in 0..len {
                let Some((item, used)) = parse(&buf[at..])? else {
                    return Ok(None);
                };
                items.push(item);
                at += used;
            }
            Ok(Some((Value::Array(items), at)))
        }
        _ => Err(RespError::Malformed),
    }
}

/// A buffered reader of RESP values.
pub struct RespReader {
    io: OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl RespReader {
    pub fn new(io: OwnedReadHalf, capacity: usize) -> Self {
        Self {
            io,
            buf: vec![0; capacity.max(64)],
            start: 0,
            end: 0,
        }
    }

    /// The next complete value already buffered.
    pub fn try_next(&mut self) -> Result<Option<Value<'_>>, RespError> {
        match parse(&self.buf[self.start..self.end])? {
            Some((value, used)) => {
                self.start += used;
                Ok(Some(value))
            }
            None => Ok(None),
        }
    }

    /// Reads more bytes, making room first (growing for a value larger than the buffer).
    pub async fn fill(&mut self) -> Result<(), RespError> {
        make_room(&mut self.buf, &mut self.start, &mut self.end, usize::MAX);
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(RespError::Closed);
        }
        self.end += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&mut out, &[b"PUBLISH", b"ch", b"{\"t\":1}"]);
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$7\r\n{\"t\":1}\r\n"
        );
    }

    #[test]
    fn parses_pushed_messages_and_replies() {
        let push = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n:12\r\n";
        let (value, used) = parse(push).unwrap().unwrap();
        assert_eq!(
            value,
            Value::Array(vec![
                Value::Bulk(Some(b"message")),
                Value::Bulk(Some(b"ch")),
                Value::Bulk(Some(b"hello")),
            ])
        );
        let (reply, _) = parse(&push[used..]).unwrap().unwrap();
        assert_eq!(reply, Value::Integer(12));
        // Every strict prefix is incomplete, never an error or a wrong value.
        for cut in 0..used {
            assert_eq!(parse(&push[..cut]).unwrap(), None);
        }
        assert!(parse(b"?x\r\n").is_err());
        assert_eq!(parse(b"$-1\r\n").unwrap().unwrap().0, Value::Bulk(None));
    }
}
