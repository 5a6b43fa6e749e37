//! `stream::update` gives identical results on kv and Redis: the vectors of stream.md §4.6 and
//! improvements.md k, and random op lists.

use super::*;
use crate::{KvStore, Updated};
use iii_stream_domain::update::UpdateOp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Discard;

impl EventSink for Discard {
    fn publish(&self, _: &Arc<Frame>, _: bool) {}
}

/// What an update returned, in comparable form.
#[derive(Debug, PartialEq)]
struct Outcome {
    old: Option<String>,
    new: String,
    errors: Vec<(usize, String, String)>,
    event: &'static str,
    stored: Option<String>,
}

async fn outcome(
    store: &crate::Store,
    key: &ItemKey,
    stored: &Option<Value>,
    ops: &[UpdateOp],
) -> Outcome {
    if let Some(value) = stored {
        store.set(key, text(&value.to_string())).await.unwrap();
    }
    let Updated {
        old,
        new,
        errors,
        frame,
    } = store.update(key, ops).await.unwrap();
    Outcome {
        old: old.map(|v| v.get().to_owned()),
        new: new.get().to_owned(),
        errors: errors
            .into_iter()
            .map(|e| (e.op_index, e.code, e.message))
            .collect(),
        event: frame.event_type.as_str(),
        stored: store.get(key).await.unwrap().map(|v| v.get().to_owned()),
    }
}

struct Pair {
    kv: crate::Store,
    redis: crate::Store,
    names: Names,
    n: AtomicUsize,
}

impl Pair {
    async fn new() -> Self {
        Self {
            kv: crate::Store::Kv(Box::new(KvStore::in_memory(Arc::new(Discard)))),
            redis: crate::Store::Redis(open(SHARED).await.0),
            names: Names::new(SHARED),
            n: AtomicUsize::new(0),
        }
    }

    /// Runs the same update on a fresh item of each store; returns both outcomes.
    async fn run(&self, stored: &Option<Value>, ops: &[UpdateOp]) -> (Outcome, Outcome) {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        let key = self.names.item("parity", "g", &format!("i{n}"));
        let kv = outcome(&self.kv, &key, stored, ops).await;
        let redis = outcome(&self.redis, &key, stored, ops).await;
        (kv, redis)
    }
}

fn ops(json: Value) -> Vec<UpdateOp> {
    serde_json::from_value(json).expect("vector ops decode")
}

#[tokio::test]
async fn update_vectors_agree() {
    let pair = Pair::new().await;
    let vectors: Vec<(Option<Value>, Value, Value)> = vec![
        // stream.md §4.6
        (
            None,
            json!([{"type":"increment","path":"","by":5}]),
            json!(5),
        ),
        (None, json!([]), json!({})),
        (
            Some(json!({"n":1})),
            json!([{"type":"increment","path":"n","by":2},{"type":"set","path":"a.b","value":true}]),
            json!({"n":3,"a.b":true}),
        ),
        (
            Some(json!({"n":"x"})),
            json!([{"type":"increment","path":"n","by":1},{"type":"set","path":"ok","value":1}]),
            json!({"n":"x","ok":1}),
        ),
        (
            Some(json!({"a":[1]})),
            json!([{"type":"merge","path":["a","b"],"value":{"c":1}}]),
            json!({"a":{"b":{"c":1}}}),
        ),
        (
            Some(json!({"log":"ab"})),
            json!([{"type":"append","path":"log","value":"c"}]),
            json!({"log":"abc"}),
        ),
        (
            Some(json!({})),
            json!([{"type":"append","path":["x","y"],"value":"s"}]),
            json!({"x":{"y":["s"]}}),
        ),
        (
            Some(json!([1])),
            json!([{"type":"set","path":"k","value":1}]),
            json!([1]),
        ),
        (
            Some(json!({"a":1})),
            json!([{"type":"remove","path":"__proto__"}]),
            json!({"a":1}),
        ),
        // improvements.md k: empty arrays, big integers, root ops on a missing item.
        (Some(json!([])), json!([]), json!([])),
        (
            Some(json!({"a":[],"b":{}})),
            json!([{"type":"set","path":"c","value":[]},{"type":"merge","value":{"d":[]}}]),
            json!({"a":[],"b":{},"c":[],"d":[]}),
        ),
        (
            None,
            json!([{"type":"set","path":"","value":[]}]),
            json!([]),
        ),
        (
            Some(json!({"n":12345678901234567_u64})),
            json!([{"type":"increment","path":"n","by":1}]),
            json!({"n":12345678901234568_u64}),
        ),
        (
            Some(json!(12345678901234567_u64)),
            json!([{"type":"increment","path":"","by":0}]),
            json!(12345678901234567_u64),
        ),
        (
            None,
            json!([{"type":"increment","path":"","by":12345678901234567_u64}]),
            json!(12345678901234567_u64),
        ),
        (
            None,
            json!([{"type":"append","path":"","value":"hello"}]),
            json!("hello"),
        ),
        (
            None,
            json!([{"type":"append","path":null,"value":{"a":1}}]),
            json!([{"a":1}]),
        ),
        (
            None,
            json!([{"type":"decrement","path":"","by":i64::MIN}]),
            json!(9223372036854775808_u64),
        ),
        (
            Some(json!({"n":i64::MAX})),
            json!([{"type":"increment","path":"n","by":1}]),
            json!({"n":9223372036854775808_u64}),
        ),
        (
            Some(json!({"f":2.0})),
            json!([{"type":"increment","path":"f","by":1}]),
            json!({"f":3.0}),
        ),
        (
            Some(json!(null)),
            json!([{"type":"remove","path":""}]),
            json!(null),
        ),
    ];
    for (stored, ops_json, expected) in vectors {
        let (kv, redis) = pair.run(&stored, &ops(ops_json.clone())).await;
        assert_eq!(kv, redis, "{stored:?} {ops_json}");
        let new: Value = serde_json::from_str(&redis.new).unwrap();
        assert_eq!(new, expected, "{stored:?} {ops_json}");
        let expected_event = if stored.is_some() { "update" } else { "create" };
        assert_eq!(redis.event, expected_event);
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::from),
        (-3i64..4).prop_map(Value::from),
        prop_oneof![
            Just(json!(i64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(u64::MAX)),
            Just(json!(12345678901234567_u64)),
            Just(json!(2.0)),
            Just(json!(-0.5)),
        ],
        prop_oneof![Just(""), Just("a"), Just("xy")].prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a"),
        Just("b"),
        Just("n"),
        Just("log"),
        Just("a.b"),
        Just(""),
        Just("__proto__"),
    ]
    .prop_map(str::to_owned)
}

fn nesting_path() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        key().prop_map(Value::from),
        prop::collection::vec(key(), 0..3).prop_map(Value::from),
    ]
}

fn by() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2i64..3).prop_map(Value::from),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
    ]
}

fn op() -> impl Strategy<Value = Value> {
    prop_oneof![
        (key(), json_value()).prop_map(|(p, v)| json!({"type":"set","path":p,"value":v})),
        (nesting_path(), json_value())
            .prop_map(|(p, v)| json!({"type":"merge","path":p,"value":v})),
        (key(), by()).prop_map(|(p, b)| json!({"type":"increment","path":p,"by":b})),
        (key(), by()).prop_map(|(p, b)| json!({"type":"decrement","path":p,"by":b})),
        (nesting_path(), json_value())
            .prop_map(|(p, v)| json!({"type":"append","path":p,"value":v})),
        key().prop_map(|p| json!({"type":"remove","path":p})),
    ]
}

#[test]
fn random_op_lists_agree() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pair = runtime.block_on(Pair::new());
    let strategy = (
        prop::option::of(json_value()),
        prop::collection::vec(op(), 0..6),
    );
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(stored, ops_json)| {
            let ops: Vec<UpdateOp> = serde_json::from_value(Value::Array(ops_json.clone()))
                .map_err(|e| TestCaseError::reject(e.to_string()))?;
            let (kv, redis) = runtime.block_on(pair.run(&stored, &ops));
            prop_assert_eq!(kv, redis, "{:?} {:?}", stored, ops_json);
            Ok(())
        })
        .unwrap();
}
