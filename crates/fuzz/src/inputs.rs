//! Input generators: JSON built from the vocabulary of the wire formats, real messages, and byte
//! mutations of both.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys the decoders look for, across both ports and the update ops.
const KEYS: &[&str] = &[
    "type",
    "id",
    "data",
    "function_id",
    "invocation_id",
    "action",
    "metadata",
    "result",
    "error",
    "code",
    "message",
    "trigger_type",
    "config",
    "stream_name",
    "group_id",
    "item_id",
    "ops",
    "path",
    "value",
    "by",
    "subscriptionId",
    "streamName",
    "groupId",
    "since",
    "epoch",
    "seq",
    "namespace",
    "previous_worker_id",
    "reattach_token",
    "invocation",
    "condition_function_id",
    "name",
    "runtime",
    "version",
    "traceparent",
    "baggage",
    "queue",
    "message_type",
];

/// The engine-port message types.
pub const ENGINE_TYPES: &[&str] = &[
    "invokefunction",
    "invocationresult",
    "registerfunction",
    "unregisterfunction",
    "registertrigger",
    "unregistertrigger",
    "reattach",
    "ping",
];

/// Other string values that steer the decoders down their branches.
const WORDS: &[&str] = &[
    "join",
    "leave",
    "stream",
    "stream:join",
    "stream:leave",
    "stream::set",
    "stream::get",
    "stream::delete",
    "stream::update",
    "stream::send",
    "stream::list",
    "stream::list_groups",
    "stream::list_all",
    "engine::workers::register",
    "set",
    "merge",
    "increment",
    "decrement",
    "append",
    "remove",
    "void",
    "enqueue",
    "s",
    "g",
    "i",
    "a.b",
    "a..b",
    "",
    "default",
    "x:y/z%",
    "\u{0}",
    "é",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select([ENGINE_TYPES, WORDS].concat())
            .prop_map(|w| Value::String(w.to_owned())),
        "[a-z:/.%é\\\\\"]{0,12}".prop_map(Value::String),
        (1usize..6000).prop_map(|n| Value::String("n".repeat(n))),
    ]
}

/// A JSON value shaped like the messages: objects with known keys, nested a few levels.
pub fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A message of one of the `types`, with fields drawn from the vocabulary.
pub fn message(types: &'static [&'static str]) -> impl Strategy<Value = String> {
    (prop::sample::select(types), json()).prop_map(|(kind, body)| {
        let mut object = match body {
            Value::Object(object) => object,
            other => Map::from_iter([("data".to_owned(), other)]),
        };
        object.insert("type".to_owned(), Value::String(kind.to_owned()));
        Value::Object(object).to_string()
    })
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (
            any::<usize>(),
            prop::sample::select(b"{}[]\":,\\0-9.eE+-\x00\xff".to_vec())
        )
            .prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Duplicate(a, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len().max(1);
        match *edit {
            Edit::Flip(at, b) if !bytes.is_empty() => bytes[at % len] ^= b,
            Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Edit::Remove(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            Edit::Truncate(at) => bytes.truncate(at % len),
            Edit::Duplicate(from, to) if !bytes.is_empty() => {
                let (from, to) = (from % len, to % len);
                let (start, end) = (from.min(to), from.max(to));
                let piece = bytes[start..end].to_vec();
                bytes.splice(end..end, piece);
            }
            _ => {}
        }
    }
    bytes
}

/// `base` inputs, and the same with a few byte edits (kept as text, as a WebSocket text message
/// or a config file would be).
pub fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (base, prop::collection::vec(edit(), 0..4)).prop_map(|(text, edits)| {
        String::from_utf8_lossy(&apply(text.into_bytes(), &edits)).into_owned()
    })
}

/// Any of `seeds`, mutated.
pub fn seeded(seeds: &'static [&'static str]) -> impl Strategy<Value = String> {
    mutated(prop::sample::select(seeds).prop_map(str::to_owned))
}
