//! Decoding of script replies into plain Rust values.

use super::error::Error;
use redis::Value;
use std::sync::Arc;

pub(crate) fn array(value: Value) -> Result<Vec<Value>, Error> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(Error::Reply("expected an array")),
    }
}

/// A bulk string, or `None` for nil.
pub(crate) fn bytes(value: Value) -> Result<Option<Vec<u8>>, Error> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        _ => Err(Error::Reply("expected a string")),
    }
}

pub(crate) fn text(value: Value) -> Result<String, Error> {
    bytes(value)?
        .ok_or(Error::Reply("expected a string, got nil"))
        .and_then(|b| String::from_utf8(b).map_err(|_| Error::Reply("string is not UTF-8")))
}

/// An integer sent as a Redis integer or as decimal text.
pub(crate) fn uint(value: Value) -> Result<u64, Error> {
    match value {
        Value::Int(n) => u64::try_from(n).map_err(|_| Error::Reply("negative integer")),
        other => text(other)?
            .parse()
            .map_err(|_| Error::Reply("expected an integer")),
    }
}

/// The numbering of a committed event, as every write script returns it.
#[derive(Debug)]
pub(crate) struct Committed {
    pub(crate) seq: u64,
    pub(crate) timestamp: u64,
    pub(crate) epoch: Arc<str>,
    /// The frame body the script published.
    pub(crate) body: String,
    /// The item's previous text (set, update, delete).
    pub(crate) old: Option<Vec<u8>>,
}

/// Decodes `{seq, timestamp, epoch, body[, old]}`; `None` for a nil reply (a delete of a missing
/// item, a lost compare-and-set).
pub(crate) fn committed(value: Value) -> Result<Option<Committed>, Error> {
    if value == Value::Nil {
        return Ok(None);
    }
    let mut items = array(value)?.into_iter();
    let mut next = || items.next().ok_or(Error::Reply("short write reply"));
    let seq = uint(next()?)?;
    let timestamp = uint(next()?)?;
    let epoch = text(next()?)?.into();
    let body = text(next()?)?;
    let old = next().map_or(Ok(None), bytes)?;
    Ok(Some(Committed {
        seq,
        timestamp,
        epoch,
        body,
        old,
    }))
}

/// A flat `{id, value, id, value, …}` list as (id, text) pairs; ids that are not UTF-8 (written
/// by other tools; never by us) are skipped.
pub(crate) fn pairs(value: Value) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let items = array(value)?;
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(id), Some(v)) = (items.next(), items.next()) {
        let (Some(id), Some(v)) = (bytes(id)?, bytes(v)?) else {
            return Err(Error::Reply("nil in an item list"));
        };
        if let Ok(id) = String::from_utf8(id) {
            out.push((id, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn write_replies_decode_with_and_without_old_value() {
        let reply = Value::Array(vec![Value::Int(3), bulk("17"), bulk("e"), bulk("{}")]);
        let c = committed(reply).unwrap().unwrap();
        assert_eq!((c.seq, c.timestamp, &*c.epoch, c.old), (3, 17, "e", None));
        let reply = Value::Array(vec![
            Value::Int(3),
            bulk("17"),
            bulk("e"),
            bulk("{}"),
            bulk("1"),
        ]);
        assert_eq!(committed(reply).unwrap().unwrap().old.unwrap(), b"1");
        assert!(committed(Value::Nil).unwrap().is_none());
        assert!(committed(Value::Array(vec![Value::Int(1)])).is_err());
    }

    #[test]
    fn item_pairs() {
        let reply = Value::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]);
        assert_eq!(
            pairs(reply).unwrap(),
            [("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
        );
    }
}
