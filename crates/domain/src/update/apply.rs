//! Execution of an op list against a working value (stream.md §4.4, §4.5).
//!
//! No op mutates the working value until it can no longer fail, so a failed op leaves the value
//! exactly as it found it (the spec's "skipped"); a property test in `tests.rs` checks this.

use serde_json::{Map, Value};

use super::number::Delta;
use super::{Applied, Failure, OpError, UpdateOp, merge_value, path, type_name};

/// Applies `ops` in order to `current` (`None` = the item is missing).
pub fn apply_ops(current: Option<Value>, ops: &[UpdateOp]) -> Applied {
    let mut state = Working {
        missing: current.is_none(),
        value: current.unwrap_or_else(|| Value::Object(Map::new())),
    };
    let mut errors = Vec::new();
    for (op_index, op) in ops.iter().enumerate() {
        match state.apply(op) {
            Ok(Outcome::Changed) => state.missing = false,
            Ok(Outcome::Ignored) => {}
            Err(failure) => errors.push(OpError {
                op_index,
                code: format!("{}.{}", op.name(), failure.code),
                message: failure.message,
            }),
        }
    }
    Applied {
        value: state.value,
        errors,
    }
}

/// What a successful op did. `Ignored` exists for root merge onto a non-object, which the spec
/// makes neither a success (the missing flag stays) nor an error.
enum Outcome {
    Changed,
    Ignored,
}

/// The value under construction (`V`) and whether the item was missing and no op has yet
/// succeeded (`M`); `M` only matters to root increment, decrement and append.
struct Working {
    value: Value,
    missing: bool,
}

impl Working {
    fn apply(&mut self, op: &UpdateOp) -> Result<Outcome, Failure> {
        match op {
            UpdateOp::Set { path, value } => {
                path::validate_key(path)?;
                self.set(path, value)
            }
            UpdateOp::Merge { path, value } => {
                path::validate_segments(path)?;
                self.merge(path, value)
            }
            UpdateOp::Increment { path, by } => {
                path::validate_key(path)?;
                self.add("increment", path, Delta::increment(*by))
            }
            UpdateOp::Decrement { path, by } => {
                path::validate_key(path)?;
                self.add("decrement", path, Delta::decrement(*by))
            }
            UpdateOp::Append { path, value } => {
                path::validate_segments(path)?;
                self.append(path, value)
            }
            UpdateOp::Remove { path } => {
                path::validate_key(path)?;
                self.remove(path)
            }
        }
    }

    fn set(&mut self, key: &str, value: &Value) -> Result<Outcome, Failure> {
        if key.is_empty() {
            self.value = value.clone();
            return Ok(Outcome::Changed);
        }
        let members = self.object("set", key)?;
        members.insert(key.to_owned(), value.clone());
        Ok(Outcome::Changed)
    }

    fn merge(&mut self, segments: &[String], value: &Value) -> Result<Outcome, Failure> {
        let patch = merge_value::validate(value)?;
        if segments.is_empty() {
            return Ok(match &mut self.value {
                Value::Object(members) => {
                    assign(members, patch);
                    Outcome::Changed
                }
                _ => Outcome::Ignored,
            });
        }
        with_object_at(&mut self.value, segments, |members| assign(members, patch));
        Ok(Outcome::Changed)
    }

    /// Increment and decrement; `op` names the op in messages.
    fn add(&mut self, op: &str, key: &str, delta: Delta) -> Result<Outcome, Failure> {
        if key.is_empty() {
            if self.missing {
                // A missing item counts from zero rather than from its `{}` placeholder.
                self.value = Value::Number(delta.initial());
                return Ok(Outcome::Changed);
            }
            return add_to(&mut self.value, path::key_label(key), delta).map(|()| Outcome::Changed);
        }
        let members = self.object(op, key)?;
        match members.get_mut(key) {
            Some(current) => add_to(current, key, delta)?,
            None => {
                members.insert(key.to_owned(), Value::Number(delta.initial()));
            }
        }
        Ok(Outcome::Changed)
    }

    fn append(&mut self, segments: &[String], item: &Value) -> Result<Outcome, Failure> {
        let Some((last, parents)) = segments.split_last() else {
            if self.missing {
                // So that appending to a missing item starts a fresh array or string.
                self.value = Value::Null;
            }
            append_to(&mut self.value, item, "root")?;
            return Ok(Outcome::Changed);
        };
        let Value::Object(members) = &mut self.value else {
            return Err(Failure::new(
                "target_not_object",
                format!(
                    "Cannot append at path '{}': target is {}, expected object.",
                    path::segments_label(segments),
                    type_name(&self.value)
                ),
            ));
        };
        if parents.is_empty() {
            match members.get_mut(last) {
                Some(target) => append_to(target, item, last)?,
                None => {
                    members.insert(last.clone(), started(item));
                }
            }
            return Ok(Outcome::Changed);
        }
        // The walk only rewrites a parent that is missing or not an object, and then the last
        // segment is missing below it and cannot fail; so a failure here changed nothing.
        with_object_at(&mut self.value, parents, |members| {
            match members.get_mut(last) {
                Some(target) => append_to(target, item, last)?,
                None => {
                    members.insert(last.clone(), Value::Array(vec![item.clone()]));
                }
            }
            Ok(Outcome::Changed)
        })
    }

    fn remove(&mut self, key: &str) -> Result<Outcome, Failure> {
        if key.is_empty() {
            // The item stays, holding `null`; deleting is `stream::delete`'s job.
            self.value = Value::Null;
            return Ok(Outcome::Changed);
        }
        self.object("remove", key)?.remove(key);
        Ok(Outcome::Changed)
    }

    /// The working value's members, for a single-key op on `key`.
    fn object(&mut self, op: &str, key: &str) -> Result<&mut Map<String, Value>, Failure> {
        match &mut self.value {
            Value::Object(members) => Ok(members),
            other => Err(Failure::new(
                "target_not_object",
                format!(
                    "Cannot {op} at path '{key}': target is {}, expected object.",
                    type_name(other)
                ),
            )),
        }
    }
}

/// Shallow assignment: nested objects of the patch replace, they are not merged.
fn assign(members: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        members.insert(key.clone(), value.clone());
    }
}

/// Runs `f` on the object at `segments` below `node`, first turning `node` and every member on
/// the way that is missing or not an object into `{}`.
fn with_object_at<R>(
    node: &mut Value,
    segments: &[String],
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    // Taking the node out and putting it back lets a non-object be replaced without a second,
    // infallible-by-construction match.
    let mut members = match std::mem::take(node) {
        Value::Object(members) => members,
        _ => Map::new(),
    };
    let result = match segments.split_first() {
        None => f(&mut members),
        Some((first, rest)) => {
            let child = members.entry(first.as_str()).or_insert(Value::Null);
            with_object_at(child, rest, f)
        }
    };
    *node = Value::Object(members);
    result
}

/// Adds `delta` to the number at `target`, labelled `label` in messages.
fn add_to(target: &mut Value, label: &str, delta: Delta) -> Result<(), Failure> {
    let sum = match target {
        Value::Number(current) => delta.add_to(current),
        _ => None,
    };
    match sum {
        Some(sum) => {
            *target = Value::Number(sum);
            Ok(())
        }
        // An overflow lands here too and so reports "got number.".
        None => Err(Failure::new(
            "not_number",
            format!(
                "Expected number at path '{label}', got {}.",
                type_name(target)
            ),
        )),
    }
}

/// Leaf append of `item` onto `target`.
fn append_to(target: &mut Value, item: &Value, label: &str) -> Result<(), Failure> {
    match (&mut *target, item) {
        (Value::Array(items), _) => items.push(item.clone()),
        (Value::String(text), Value::String(tail)) => text.push_str(tail),
        (Value::String(_), _) => {
            return Err(Failure::new(
                "type_mismatch",
                format!(
                    "Expected string append value at path '{label}', got {}.",
                    type_name(item)
                ),
            ));
        }
        (Value::Null, _) => *target = started(item),
        (other, _) => {
            return Err(Failure::new(
                "type_mismatch",
                format!(
                    "Cannot append at path '{label}': target is {}, expected array, string, null, or missing field.",
                    type_name(other)
                ),
            ));
        }
    }
    Ok(())
}

/// What appending `item` to nothing gives: the string itself, or a one-element array.
fn started(item: &Value) -> Value {
    match item {
        Value::String(_) => item.clone(),
        _ => Value::Array(vec![item.clone()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Decodes `ops` from JSON and applies them.
    fn run(current: Option<Value>, ops: Value) -> Applied {
        let ops: Vec<UpdateOp> = serde_json::from_value(ops).expect("test ops decode");
        apply_ops(current, &ops)
    }

    /// Applies `ops`, asserting that every op succeeded.
    fn ok(current: Option<Value>, ops: Value) -> Value {
        let applied = run(current, ops);
        assert_eq!(applied.errors, vec![], "unexpected errors");
        applied.value
    }

    /// Applies one failing op, asserting the value is unchanged; returns (code, message).
    fn fails(current: Option<Value>, op: Value) -> (String, String) {
        let before = current.clone().unwrap_or_else(|| json!({}));
        let applied = run(current, json!([op]));
        assert_eq!(
            applied.value, before,
            "a failed op must not change the value"
        );
        match <[OpError; 1]>::try_from(applied.errors) {
            Ok([error]) => {
                assert_eq!(error.op_index, 0);
                (error.code, error.message)
            }
            Err(errors) => panic!("expected exactly one error, got {errors:?}"),
        }
    }

    fn err(code: &str, message: &str) -> (String, String) {
        (code.to_owned(), message.to_owned())
    }

    // ---- execution model (§4.4) ----

    #[test]
    fn type_names() {
        let names = [
            json!(null),
            json!(true),
            json!(1.5),
            json!("s"),
            json!([]),
            json!({}),
        ]
        .map(|v| type_name(&v));
        assert_eq!(
            names,
            ["null", "boolean", "number", "string", "array", "object"]
        );
    }

    #[test]
    fn no_ops_on_missing_item_gives_empty_object() {
        assert_eq!(ok(None, json!([])), json!({}));
    }

    #[test]
    fn no_ops_on_stored_item_keeps_it() {
        assert_eq!(ok(Some(json!([1, "a"])), json!([])), json!([1, "a"]));
        assert_eq!(ok(Some(Value::Null), json!([])), Value::Null);
    }

    #[test]
    fn failed_ops_are_skipped_and_listed_in_order() {
        let applied = run(
            Some(json!({"n": "x"})),
            json!([
                {"type": "increment", "path": "n", "by": 1},
                {"type": "set", "path": "a", "value": 1},
                {"type": "remove", "path": "constructor"},
                {"type": "set", "path": "b", "value": 2},
            ]),
        );
        assert_eq!(applied.value, json!({"n": "x", "a": 1, "b": 2}));
        let errors: Vec<_> = applied
            .errors
            .iter()
            .map(|e| (e.op_index, e.code.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (0, "increment.not_number"),
                (2, "remove.path.proto_polluted")
            ]
        );
    }

    #[test]
    fn later_ops_see_earlier_results() {
        assert_eq!(
            ok(
                None,
                json!([
                    {"type": "set", "path": "n", "value": 1},
                    {"type": "increment", "path": "n", "by": 4},
                    {"type": "append", "path": "log", "value": "a"},
                    {"type": "append", "path": "log", "value": "b"},
                    {"type": "remove", "path": "n"},
                ])
            ),
            json!({"log": "ab"})
        );
    }

    #[test]
    fn failed_op_keeps_missing_flag() {
        let applied = run(
            None,
            json!([
                {"type": "set", "path": "__proto__", "value": 1},
                {"type": "increment", "path": "", "by": 5},
            ]),
        );
        assert_eq!(applied.value, json!(5));
        assert_eq!(applied.errors.len(), 1);
    }

    #[test]
    fn successful_op_clears_missing_flag() {
        let applied = run(
            None,
            json!([
                {"type": "set", "path": "a", "value": 1},
                {"type": "increment", "path": "", "by": 5},
                {"type": "append", "path": "", "value": "x"},
            ]),
        );
        assert_eq!(applied.value, json!({"a": 1}));
        let codes: Vec<_> = applied.errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["increment.not_number", "append.type_mismatch"]);
    }

    #[test]
    fn path_errors_carry_the_op_name() {
        let long = "k".repeat(257);
        assert_eq!(
            fails(
                Some(json!({})),
                json!({"type": "set", "path": long, "value": 1})
            ),
            err(
                "set.path.segment_too_long",
                "Path segment of 257 bytes exceeds maximum of 256"
            )
        );
        assert_eq!(
            fails(
                Some(json!({"n": 1})),
                json!({"type": "increment", "path": "prototype", "by": 1})
            ),
            err(
                "increment.path.proto_polluted",
                "Path segment 'prototype' is not allowed (prototype pollution)."
            )
        );
        assert_eq!(
            fails(
                Some(json!({})),
                json!({"type": "decrement", "path": "__proto__", "by": 1})
            )
            .0,
            "decrement.path.proto_polluted"
        );
        assert_eq!(
            fails(
                Some(json!({})),
                json!({"type": "merge", "path": vec!["a"; 33], "value": {}})
            ),
            err("merge.path.too_deep", "Path depth 33 exceeds maximum of 32")
        );
        assert_eq!(
            fails(
                Some(json!({})),
                json!({"type": "append", "path": ["a", ""], "value": 1})
            ),
            err(
                "append.path.empty_segment",
                "Path contains an empty segment"
            )
        );
    }

    #[test]
    fn path_is_validated_before_the_op_runs() {
        // The merge value is invalid too, but the path error is the one reported.
        assert_eq!(
            fails(
                Some(json!({})),
                json!({"type": "merge", "path": [""], "value": 1})
            )
            .0,
            "merge.path.empty_segment"
        );
    }

    #[test]
    fn dots_are_literal() {
        assert_eq!(
            ok(
                Some(json!({"a": {"b": 1}})),
                json!([{"type": "set", "path": "a.b", "value": 2}])
            ),
            json!({"a": {"b": 1}, "a.b": 2})
        );
    }

    // ---- set ----

    #[test]
    fn set_root_replaces_the_value() {
        assert_eq!(
            ok(
                Some(json!({"a": 1})),
                json!([{"type": "set", "path": "", "value": [1]}])
            ),
            json!([1])
        );
        assert_eq!(
            ok(Some(json!(5)), json!([{"type": "set", "path": ""}])),
            Value::Null
        );
    }

    #[test]
    fn set_key_inserts_or_overwrites() {
        assert_eq!(
            ok(
                Some(json!({"a": 1, "b": 2})),
                json!([
                    {"type": "set", "path": "a", "value": {"x": []}},
                    {"type": "set", "path": "c", "value": null},
                ])
            ),
            json!({"a": {"x": []}, "b": 2, "c": null})
        );
    }

    #[test]
    fn set_key_on_non_object_fails() {
        assert_eq!(
            fails(
                Some(json!("s")),
                json!({"type": "set", "path": "k", "value": 1})
            ),
            err(
                "set.target_not_object",
                "Cannot set at path 'k': target is string, expected object."
            )
        );
        assert_eq!(
            fails(Some(Value::Null), json!({"type": "set", "path": "k"})).1,
            "Cannot set at path 'k': target is null, expected object."
        );
    }

    // ---- merge ----

    #[test]
    fn merge_value_errors() {
        let stored = Some(json!({"a": 1}));
        assert_eq!(
            fails(stored.clone(), json!({"type": "merge", "value": [1]})),
            err(
                "merge.value.not_an_object",
                "Merge value must be a JSON object"
            )
        );
        let many: Map<String, Value> = (0..1025).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            fails(
                stored.clone(),
                json!({"type": "merge", "path": "x", "value": many})
            ),
            err(
                "merge.value.too_many_keys",
                "Merge value has 1025 top-level keys, exceeds maximum of 1024"
            )
        );
        assert_eq!(
            fails(
                stored.clone(),
                json!({"type": "merge", "value": {"prototype": 1}})
            ),
            err(
                "merge.value.proto_polluted",
                "Merge value top-level key \"prototype\" is a prototype-pollution sink"
            )
        );
        let deep = (1..17).fold(json!({}), |inner, _| json!({ "k": inner }));
        assert_eq!(
            fails(stored, json!({"type": "merge", "value": deep})),
            err(
                "merge.value.too_deep",
                "Merge value JSON nesting depth 17 exceeds maximum of 16"
            )
        );
    }

    #[test]
    fn merge_value_is_checked_even_when_root_merge_would_be_ignored() {
        assert_eq!(
            fails(Some(json!(5)), json!({"type": "merge", "value": "x"})).0,
            "merge.value.not_an_object"
        );
    }

    #[test]
    fn root_merge_is_shallow() {
        assert_eq!(
            ok(
                Some(json!({"a": {"x": 1, "y": 2}, "b": 1})),
                json!([{"type": "merge", "value": {"a": {"z": 3}, "c": []}}])
            ),
            json!({"a": {"z": 3}, "b": 1, "c": []})
        );
    }

    #[test]
    fn root_merge_onto_non_object_is_silently_ignored() {
        for stored in [json!(5), json!([1]), json!("s"), Value::Null] {
            let applied = run(
                Some(stored.clone()),
                json!([{"type": "merge", "path": null, "value": {"a": 1}}]),
            );
            assert_eq!(
                applied,
                Applied {
                    value: stored,
                    errors: vec![]
                }
            );
        }
    }

    #[test]
    fn root_merge_onto_missing_item_merges_into_empty_object() {
        assert_eq!(
            ok(None, json!([{"type": "merge", "value": {"a": 1}}])),
            json!({"a": 1})
        );
    }

    #[test]
    fn nested_merge_replaces_non_object_value() {
        assert_eq!(
            ok(
                Some(json!([1, 2])),
                json!([{"type": "merge", "path": "a", "value": {"b": 1}}])
            ),
            json!({"a": {"b": 1}})
        );
    }

    #[test]
    fn nested_merge_walk_creates_and_replaces_members() {
        assert_eq!(
            ok(
                Some(json!({"a": {"keep": 1, "b": "s"}, "z": 0})),
                json!([
                    {"type": "merge", "path": ["a", "b", "c"], "value": {"x": 1}},
                    {"type": "merge", "path": ["a", "n"], "value": {"y": 2}},
                    {"type": "merge", "path": ["z", "w"], "value": {}},
                ])
            ),
            json!({"a": {"keep": 1, "b": {"c": {"x": 1}}, "n": {"y": 2}}, "z": {"w": {}}})
        );
    }

    #[test]
    fn nested_merge_is_shallow_at_the_final_node() {
        assert_eq!(
            ok(
                Some(json!({"a": {"b": {"x": 1}, "c": 2}})),
                json!([{"type": "merge", "path": "a", "value": {"b": {"y": 2}}}])
            ),
            json!({"a": {"b": {"y": 2}, "c": 2}})
        );
    }

    // ---- increment / decrement ----

    #[test]
    fn root_increment_of_missing_item_starts_from_by() {
        assert_eq!(
            ok(None, json!([{"type": "increment", "path": "", "by": 5}])),
            json!(5)
        );
        assert_eq!(
            ok(None, json!([{"type": "decrement", "path": "", "by": 5}])),
            json!(-5)
        );
    }

    #[test]
    fn root_decrement_of_missing_item_by_min_is_unsigned() {
        let value = ok(
            None,
            json!([{"type": "decrement", "path": "", "by": i64::MIN}]),
        );
        assert_eq!(value, json!(9_223_372_036_854_775_808u64));
        assert_eq!(value.as_u64(), Some(1 << 63));
    }

    #[test]
    fn root_increment_of_stored_number() {
        assert_eq!(
            ok(
                Some(json!(10)),
                json!([{"type": "decrement", "path": "", "by": 3}])
            ),
            json!(7)
        );
        assert_eq!(
            ok(
                Some(json!(0.5)),
                json!([{"type": "increment", "path": "", "by": 1}])
            ),
            json!(1.5)
        );
    }

    #[test]
    fn root_increment_of_non_number_fails() {
        assert_eq!(
            fails(
                Some(json!({})),
                json!({"type": "increment", "path": "", "by": 1})
            ),
            err(
                "increment.not_number",
                "Expected number at path 'root', got object."
            )
        );
        assert_eq!(
            fails(
                Some(Value::Null),
                json!({"type": "decrement", "path": "", "by": 1})
            ),
            err(
                "decrement.not_number",
                "Expected number at path 'root', got null."
            )
        );
    }

    #[test]
    fn root_increment_overflow_fails_with_got_number() {
        assert_eq!(
            fails(
                Some(json!(u64::MAX)),
                json!({"type": "increment", "path": "", "by": 1})
            ),
            err(
                "increment.not_number",
                "Expected number at path 'root', got number."
            )
        );
    }

    #[test]
    fn increment_on_non_object_fails() {
        assert_eq!(
            fails(
                Some(json!([1])),
                json!({"type": "increment", "path": "n", "by": 1})
            ),
            err(
                "increment.target_not_object",
                "Cannot increment at path 'n': target is array, expected object."
            )
        );
        assert_eq!(
            fails(
                Some(json!(true)),
                json!({"type": "decrement", "path": "n", "by": 1})
            ),
            err(
                "decrement.target_not_object",
                "Cannot decrement at path 'n': target is boolean, expected object."
            )
        );
    }

    #[test]
    fn increment_of_missing_key_sets_by() {
        assert_eq!(
            ok(
                Some(json!({})),
                json!([
                    {"type": "increment", "path": "a", "by": 2},
                    {"type": "decrement", "path": "b", "by": 2},
                    {"type": "decrement", "path": "c", "by": i64::MIN},
                ])
            ),
            json!({"a": 2, "b": -2, "c": 9_223_372_036_854_775_808u64})
        );
    }

    #[test]
    fn increment_of_number_adds() {
        assert_eq!(
            ok(
                Some(json!({"a": 1, "b": 1, "f": 2.0})),
                json!([
                    {"type": "increment", "path": "a", "by": 41},
                    {"type": "decrement", "path": "b", "by": 3},
                    {"type": "increment", "path": "f", "by": 1},
                ])
            ),
            json!({"a": 42, "b": -2, "f": 3.0})
        );
    }

    #[test]
    fn increment_keeps_number_kinds() {
        let value = ok(
            Some(json!({"i": 1, "f": 2.0})),
            json!([
                {"type": "increment", "path": "i", "by": 1},
                {"type": "increment", "path": "f", "by": 1},
            ]),
        );
        assert_eq!(value["i"].as_i64(), Some(2));
        assert!(value["f"].is_f64());
        assert_eq!(value["f"].as_f64(), Some(3.0));
    }

    #[test]
    fn increment_past_i64_max_becomes_unsigned() {
        assert_eq!(
            ok(
                Some(json!({"n": i64::MAX})),
                json!([{"type": "increment", "path": "n", "by": 1}])
            ),
            json!({"n": 9_223_372_036_854_775_808u64})
        );
    }

    #[test]
    fn increment_of_non_number_member_fails() {
        let cases = [
            (json!(null), "null"),
            (json!("x"), "string"),
            (json!(false), "boolean"),
            (json!([1]), "array"),
            (json!({"a": 1}), "object"),
        ];
        for (member, type_name) in cases {
            assert_eq!(
                fails(
                    Some(json!({ "n": member })),
                    json!({"type": "increment", "path": "n", "by": 1})
                ),
                err(
                    "increment.not_number",
                    &format!("Expected number at path 'n', got {type_name}.")
                )
            );
        }
    }

    #[test]
    fn increment_by_zero_still_type_checks() {
        assert_eq!(
            fails(
                Some(json!({"n": "1"})),
                json!({"type": "decrement", "path": "n", "by": 0})
            ),
            err(
                "decrement.not_number",
                "Expected number at path 'n', got string."
            )
        );
        assert_eq!(
            ok(
                Some(json!({"n": 4})),
                json!([{"type": "increment", "path": "n", "by": 0}])
            ),
            json!({"n": 4})
        );
    }

    #[test]
    fn increment_overflow_fails_with_got_number() {
        assert_eq!(
            fails(
                Some(json!({"n": u64::MAX})),
                json!({"type": "increment", "path": "n", "by": 1})
            ),
            err(
                "increment.not_number",
                "Expected number at path 'n', got number."
            )
        );
        assert_eq!(
            fails(
                Some(json!({"n": i64::MIN})),
                json!({"type": "decrement", "path": "n", "by": 1})
            ),
            err(
                "decrement.not_number",
                "Expected number at path 'n', got number."
            )
        );
    }

    // ---- append ----

    #[test]
    fn append_to_array_pushes_one_element() {
        assert_eq!(
            ok(
                Some(json!({"l": [1]})),
                json!([
                    {"type": "append", "path": "l", "value": 2},
                    {"type": "append", "path": "l", "value": [3, 4]},
                ])
            ),
            json!({"l": [1, 2, [3, 4]]})
        );
    }

    #[test]
    fn append_to_string_concatenates_strings() {
        assert_eq!(
            ok(
                Some(json!({"s": "ab"})),
                json!([{"type": "append", "path": "s", "value": "cd"}])
            ),
            json!({"s": "abcd"})
        );
    }

    #[test]
    fn append_non_string_to_string_fails() {
        assert_eq!(
            fails(
                Some(json!({"s": "ab"})),
                json!({"type": "append", "path": "s", "value": 1})
            ),
            err(
                "append.type_mismatch",
                "Expected string append value at path 's', got number."
            )
        );
        assert_eq!(
            fails(
                Some(json!({"s": "ab"})),
                json!({"type": "append", "path": "s", "value": null})
            )
            .1,
            "Expected string append value at path 's', got null."
        );
    }

    #[test]
    fn append_to_null_starts_string_or_array() {
        assert_eq!(
            ok(
                Some(json!({"a": null, "b": null})),
                json!([
                    {"type": "append", "path": "a", "value": "x"},
                    {"type": "append", "path": "b", "value": {"k": 1}},
                ])
            ),
            json!({"a": "x", "b": [{"k": 1}]})
        );
    }

    #[test]
    fn append_to_other_target_fails() {
        for (member, type_name) in [
            (json!(1), "number"),
            (json!(true), "boolean"),
            (json!({}), "object"),
        ] {
            assert_eq!(
                fails(
                    Some(json!({ "t": member })),
                    json!({"type": "append", "path": ["t"], "value": 1})
                ),
                err(
                    "append.type_mismatch",
                    &format!(
                        "Cannot append at path 't': target is {type_name}, expected array, string, null, or missing field."
                    )
                )
            );
        }
    }

    #[test]
    fn root_append_to_missing_item() {
        assert_eq!(
            ok(None, json!([{"type": "append", "value": "hello"}])),
            json!("hello")
        );
        assert_eq!(
            ok(
                None,
                json!([{"type": "append", "path": "", "value": {"a": 1}}])
            ),
            json!([{"a": 1}])
        );
        assert_eq!(
            ok(None, json!([{"type": "append", "path": [], "value": null}])),
            json!([null])
        );
    }

    #[test]
    fn root_append_to_stored_values() {
        assert_eq!(
            ok(Some(json!([1])), json!([{"type": "append", "value": 2}])),
            json!([1, 2])
        );
        assert_eq!(
            ok(Some(json!("ab")), json!([{"type": "append", "value": "c"}])),
            json!("abc")
        );
        assert_eq!(
            ok(Some(Value::Null), json!([{"type": "append", "value": "c"}])),
            json!("c")
        );
        assert_eq!(
            ok(Some(Value::Null), json!([{"type": "append", "value": 1}])),
            json!([1])
        );
    }

    #[test]
    fn root_append_to_stored_object_fails() {
        assert_eq!(
            fails(Some(json!({})), json!({"type": "append", "value": 1})),
            err(
                "append.type_mismatch",
                "Cannot append at path 'root': target is object, expected array, string, null, or missing field."
            )
        );
        assert_eq!(
            fails(Some(json!("s")), json!({"type": "append", "value": [1]})).1,
            "Expected string append value at path 'root', got array."
        );
    }

    #[test]
    fn nested_append_on_non_object_fails_with_segments_label() {
        assert_eq!(
            fails(
                Some(json!([1])),
                json!({"type": "append", "path": "k", "value": 1})
            ),
            err(
                "append.target_not_object",
                "Cannot append at path '[k]': target is array, expected object."
            )
        );
        assert_eq!(
            fails(
                Some(json!("s")),
                json!({"type": "append", "path": ["a", "b"], "value": 1})
            )
            .1,
            "Cannot append at path '[a, b]': target is string, expected object."
        );
    }

    #[test]
    fn one_segment_append_to_missing_key() {
        assert_eq!(
            ok(
                Some(json!({})),
                json!([
                    {"type": "append", "path": "s", "value": "x"},
                    {"type": "append", "path": ["l"], "value": 1},
                ])
            ),
            json!({"s": "x", "l": [1]})
        );
    }

    #[test]
    fn two_segment_append_to_missing_key_is_always_an_array() {
        assert_eq!(
            ok(
                Some(json!({"a": {}})),
                json!([
                    {"type": "append", "path": ["a", "s"], "value": "x"},
                    {"type": "append", "path": ["a", "s"], "value": "y"},
                ])
            ),
            json!({"a": {"s": ["x", "y"]}})
        );
    }

    #[test]
    fn deep_append_walk_creates_and_replaces_parents() {
        assert_eq!(
            ok(
                Some(json!({"a": 5, "b": {"c": [1]}})),
                json!([
                    {"type": "append", "path": ["a", "x", "y"], "value": 1},
                    {"type": "append", "path": ["b", "c", "d"], "value": {"k": 1}},
                ])
            ),
            json!({"a": {"x": {"y": [1]}}, "b": {"c": {"d": [{"k": 1}]}}})
        );
    }

    #[test]
    fn deep_append_onto_existing_leaf() {
        assert_eq!(
            ok(
                Some(json!({"a": {"b": "x", "n": null}})),
                json!([
                    {"type": "append", "path": ["a", "b"], "value": "y"},
                    {"type": "append", "path": ["a", "n"], "value": "z"},
                ])
            ),
            json!({"a": {"b": "xy", "n": "z"}})
        );
    }

    #[test]
    fn deep_append_leaf_error_uses_last_segment_and_changes_nothing() {
        assert_eq!(
            fails(
                Some(json!({"a": {"b": {"c": 1}}})),
                json!({"type": "append", "path": ["a", "b", "c"], "value": 2})
            ),
            err(
                "append.type_mismatch",
                "Cannot append at path 'c': target is number, expected array, string, null, or missing field."
            )
        );
    }

    // ---- remove ----

    #[test]
    fn remove_root_gives_null() {
        assert_eq!(
            ok(
                Some(json!({"a": 1})),
                json!([{"type": "remove", "path": ""}])
            ),
            Value::Null
        );
        assert_eq!(
            ok(None, json!([{"type": "remove", "path": ""}])),
            Value::Null
        );
    }

    #[test]
    fn remove_key() {
        assert_eq!(
            ok(
                Some(json!({"a": 1, "b": 2})),
                json!([
                    {"type": "remove", "path": "a"},
                    {"type": "remove", "path": "missing"},
                ])
            ),
            json!({"b": 2})
        );
    }

    #[test]
    fn remove_on_non_object_fails() {
        assert_eq!(
            fails(Some(json!("s")), json!({"type": "remove", "path": "k"})),
            err(
                "remove.target_not_object",
                "Cannot remove at path 'k': target is string, expected object."
            )
        );
    }
}
