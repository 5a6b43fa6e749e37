//! End-to-end checks of the engine from wire JSON: the examples of stream.md §4.6, the adapter
//! parity vectors of improvements.md k, and properties over random op lists.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{Applied, UpdateOp, apply_ops};

/// Decodes `ops` as `stream::update` would and applies them; returns the value and, per error,
/// its index and code.
fn run(stored: Option<Value>, ops: &str) -> (Value, Vec<(usize, String)>) {
    let ops: Vec<UpdateOp> = serde_json::from_str(ops).expect("example ops decode");
    let Applied { value, errors } = apply_ops(stored, &ops);
    let errors = errors.into_iter().map(|e| (e.op_index, e.code)).collect();
    (value, errors)
}

fn no_errors() -> Vec<(usize, String)> {
    Vec::new()
}

// ---- §4.6 ----

#[test]
fn example_increment_root_of_missing_item() {
    assert_eq!(
        run(None, r#"[{"type":"increment","path":"","by":5}]"#),
        (json!(5), no_errors())
    );
}

#[test]
fn example_no_ops_on_missing_item() {
    assert_eq!(run(None, "[]"), (json!({}), no_errors()));
}

#[test]
fn example_increment_then_set_dotted_key() {
    assert_eq!(
        run(
            Some(json!({"n": 1})),
            r#"[{"type":"increment","path":"n","by":2},{"type":"set","path":"a.b","value":true}]"#
        ),
        (json!({"n": 3, "a.b": true}), no_errors())
    );
}

#[test]
fn example_failed_increment_does_not_stop_set() {
    assert_eq!(
        run(
            Some(json!({"n": "x"})),
            r#"[{"type":"increment","path":"n","by":1},{"type":"set","path":"ok","value":1}]"#
        ),
        (
            json!({"n": "x", "ok": 1}),
            vec![(0, "increment.not_number".to_owned())]
        )
    );
}

#[test]
fn example_merge_replaces_array_on_the_way() {
    assert_eq!(
        run(
            Some(json!({"a": [1]})),
            r#"[{"type":"merge","path":["a","b"],"value":{"c":1}}]"#
        ),
        (json!({"a": {"b": {"c": 1}}}), no_errors())
    );
}

#[test]
fn example_append_string() {
    assert_eq!(
        run(
            Some(json!({"log": "ab"})),
            r#"[{"type":"append","path":"log","value":"c"}]"#
        ),
        (json!({"log": "abc"}), no_errors())
    );
}

#[test]
fn example_nested_append_of_string_to_missing_is_array() {
    assert_eq!(
        run(
            Some(json!({})),
            r#"[{"type":"append","path":["x","y"],"value":"s"}]"#
        ),
        (json!({"x": {"y": ["s"]}}), no_errors())
    );
}

#[test]
fn example_set_on_array_fails() {
    assert_eq!(
        run(Some(json!([1])), r#"[{"type":"set","path":"k","value":1}]"#),
        (json!([1]), vec![(0, "set.target_not_object".to_owned())])
    );
}

#[test]
fn example_remove_proto_fails() {
    assert_eq!(
        run(
            Some(json!({"a": 1})),
            r#"[{"type":"remove","path":"__proto__"}]"#
        ),
        (
            json!({"a": 1}),
            vec![(0, "remove.path.proto_polluted".to_owned())]
        )
    );
}

// ---- parity vectors (improvements.md k) ----

#[test]
fn empty_arrays_stay_arrays() {
    let (value, errors) = run(
        Some(json!({"a": [], "o": {}, "n": {"e": []}})),
        r#"[{"type":"set","path":"b","value":[]},{"type":"merge","path":"m","value":{"x":[]}},
            {"type":"increment","path":"i","by":1}]"#,
    );
    assert_eq!(errors, no_errors());
    assert_eq!(
        value,
        json!({"a": [], "o": {}, "n": {"e": []}, "b": [], "m": {"x": []}, "i": 1})
    );
    assert_eq!(value["a"], Value::Array(vec![]));
    assert_eq!(value["o"], Value::Object(Map::new()));
}

#[test]
fn empty_array_stored_at_root_stays_an_array() {
    assert_eq!(run(Some(json!([])), "[]"), (json!([]), no_errors()));
    assert_eq!(
        run(Some(json!([])), r#"[{"type":"append","value":[]}]"#),
        (json!([[]]), no_errors())
    );
}

#[test]
fn big_integers_stay_exact() {
    let stored: Value = serde_json::from_str(r#"{"n":12345678901234567}"#).expect("json");
    let (value, errors) = run(
        Some(stored),
        r#"[{"type":"set","path":"m","value":12345678901234567},{"type":"increment","path":"n","by":1}]"#,
    );
    assert_eq!(errors, no_errors());
    assert_eq!(value["m"].as_u64(), Some(12_345_678_901_234_567));
    assert_eq!(value["n"].as_u64(), Some(12_345_678_901_234_568));
    assert_eq!(
        serde_json::to_string(&value).expect("serialises"),
        r#"{"m":12345678901234567,"n":12345678901234568}"#
    );
}

#[test]
fn root_increment_on_missing_item() {
    assert_eq!(
        run(
            None,
            r#"[{"type":"increment","path":"","by":12345678901234567}]"#
        ),
        (json!(12_345_678_901_234_567i64), no_errors())
    );
}

#[test]
fn root_append_of_string_on_missing_item() {
    assert_eq!(
        run(None, r#"[{"type":"append","path":"","value":"hello"}]"#),
        (json!("hello"), no_errors())
    );
}

#[test]
fn root_append_of_object_on_missing_item() {
    assert_eq!(
        run(None, r#"[{"type":"append","value":{"a":1}}]"#),
        (json!([{"a": 1}]), no_errors())
    );
}

// ---- properties ----

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(i64::MAX), Just(i64::MIN), -2i64..3].prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[ab]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[abn]".prop_map(String::from),
        1 => Just(String::new()),
        1 => Just("__proto__".to_owned()),
        1 => Just("x".repeat(257)),
    ]
}

fn segments() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        8 => prop::collection::vec(key(), 0..4),
        1 => Just(vec!["a".to_owned(); 33]),
    ]
}

fn by() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -3i64..3]
}

fn update_op() -> impl Strategy<Value = UpdateOp> {
    prop_oneof![
        (key(), json_value()).prop_map(|(path, value)| UpdateOp::Set { path, value }),
        (segments(), json_value()).prop_map(|(path, value)| UpdateOp::Merge { path, value }),
        (key(), by()).prop_map(|(path, by)| UpdateOp::Increment { path, by }),
        (key(), by()).prop_map(|(path, by)| UpdateOp::Decrement { path, by }),
        (segments(), json_value()).prop_map(|(path, value)| UpdateOp::Append { path, value }),
        key().prop_map(|path| UpdateOp::Remove { path }),
    ]
}

/// The canonical wire form of an op.
fn wire(op: &UpdateOp) -> Value {
    match op {
        UpdateOp::Set { path, value } => json!({"type": "set", "path": path, "value": value}),
        UpdateOp::Merge { path, value } => json!({"type": "merge", "path": path, "value": value}),
        UpdateOp::Increment { path, by } => json!({"type": "increment", "path": path, "by": by}),
        UpdateOp::Decrement { path, by } => json!({"type": "decrement", "path": path, "by": by}),
        UpdateOp::Append { path, value } => json!({"type": "append", "path": path, "value": value}),
        UpdateOp::Remove { path } => json!({"type": "remove", "path": path}),
    }
}

proptest! {
    #[test]
    fn errors_are_ordered_in_range_and_prefixed(
        stored in prop::option::of(json_value()),
        ops in prop::collection::vec(update_op(), 0..8),
    ) {
        let applied = apply_ops(stored, &ops);
        let mut previous = None;
        for error in &applied.errors {
            prop_assert!(error.op_index < ops.len());
            prop_assert!(previous < Some(error.op_index));
            previous = Some(error.op_index);
            let prefix = format!("{}.", ops[error.op_index].name());
            prop_assert!(error.code.starts_with(&prefix), "{} vs {}", error.code, prefix);
            prop_assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn a_failed_op_changes_nothing(stored in json_value(), op in update_op()) {
        let applied = apply_ops(Some(stored.clone()), std::slice::from_ref(&op));
        if !applied.errors.is_empty() {
            prop_assert_eq!(applied.value, stored);
        }
    }

    #[test]
    fn wire_form_decodes_to_the_same_op(op in update_op()) {
        let decoded: UpdateOp = serde_json::from_value(wire(&op)).map_err(|e| {
            TestCaseError::fail(format!("{op:?} did not decode: {e}"))
        })?;
        // Nesting paths of [] and [""] differ, but a wire array keeps them apart, so equality holds.
        prop_assert_eq!(decoded, op);
    }
}
