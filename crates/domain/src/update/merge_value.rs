//! Validation of a merge op's `value` (stream.md §4.5, merge), which bounds the work a merge can
//! do and keeps prototype-pollution keys out of stored objects.

use serde_json::{Map, Value};

use super::{Failure, path::is_proto_key};

const MAX_KEYS: usize = 1024;
const MAX_DEPTH: usize = 16;

/// Checks `value` in the spec's order and returns its members.
pub(crate) fn validate(value: &Value) -> Result<&Map<String, Value>, Failure> {
    let Value::Object(members) = value else {
        return Err(Failure::new(
            "value.not_an_object",
            "Merge value must be a JSON object".to_owned(),
        ));
    };
    if members.len() > MAX_KEYS {
        return Err(Failure::new(
            "value.too_many_keys",
            format!(
                "Merge value has {} top-level keys, exceeds maximum of {MAX_KEYS}",
                members.len()
            ),
        ));
    }
    if let Some(key) = members.keys().find(|key| is_proto_key(key)) {
        return Err(Failure::new(
            "value.proto_polluted",
            format!("Merge value top-level key \"{key}\" is a prototype-pollution sink"),
        ));
    }
    let depth = depth(value);
    if depth > MAX_DEPTH {
        return Err(Failure::new(
            "value.too_deep",
            format!("Merge value JSON nesting depth {depth} exceeds maximum of {MAX_DEPTH}"),
        ));
    }
    Ok(members)
}

/// Nesting depth: 0 for a scalar, else 1 + the deepest member (1 for an empty container).
/// Iterative, so a value built deeper than any parser would allow cannot exhaust the stack.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 1)];
    while let Some((node, level)) = pending.pop() {
        match node {
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, level + 1))),
            Value::Object(members) => {
                pending.extend(members.values().map(|member| (member, level + 1)));
            }
            _ => continue,
        }
        deepest = deepest.max(level);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reject(value: Value) -> (&'static str, String) {
        let failure = validate(&value).expect_err("value should be rejected");
        (failure.code, failure.message)
    }

    /// An object of depth `d` (d >= 1): `{"k": {"k": ... {}}}`.
    fn nested(d: usize) -> Value {
        (1..d).fold(json!({}), |inner, _| json!({ "k": inner }))
    }

    #[test]
    fn depth_definition() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!("s")), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": 1, "b": "x"})), 1);
        assert_eq!(depth(&json!({"a": []})), 2);
        assert_eq!(depth(&json!({"a": 1, "b": {"c": [[]]}})), 4);
        assert_eq!(depth(&json!([1, [2, [3]], {}])), 3);
        assert_eq!(depth(&nested(16)), 16);
    }

    #[test]
    fn non_object_is_rejected() {
        for value in [
            json!(null),
            json!(1),
            json!("s"),
            json!([{"a": 1}]),
            json!(true),
        ] {
            assert_eq!(
                reject(value),
                (
                    "value.not_an_object",
                    "Merge value must be a JSON object".to_owned()
                )
            );
        }
    }

    fn with_keys(n: usize) -> Map<String, Value> {
        (0..n).map(|i| (format!("k{i}"), json!(i))).collect()
    }

    #[test]
    fn at_most_1024_keys() {
        assert!(validate(&Value::Object(with_keys(1024))).is_ok());
        assert_eq!(
            reject(Value::Object(with_keys(1025))),
            (
                "value.too_many_keys",
                "Merge value has 1025 top-level keys, exceeds maximum of 1024".to_owned()
            )
        );
    }

    #[test]
    fn proto_top_level_keys_are_rejected() {
        for key in ["__proto__", "constructor", "prototype"] {
            assert_eq!(
                reject(json!({ "a": 1, key: {} })),
                (
                    "value.proto_polluted",
                    format!("Merge value top-level key \"{key}\" is a prototype-pollution sink")
                )
            );
        }
        // Only top-level keys are checked.
        assert!(validate(&json!({"a": {"__proto__": 1}})).is_ok());
    }

    #[test]
    fn at_most_16_levels() {
        assert!(validate(&nested(16)).is_ok());
        assert_eq!(
            reject(nested(17)),
            (
                "value.too_deep",
                "Merge value JSON nesting depth 17 exceeds maximum of 16".to_owned()
            )
        );
        let arrays = json!({"a": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]});
        assert_eq!(
            reject(arrays).1,
            "Merge value JSON nesting depth 17 exceeds maximum of 16"
        );
    }

    #[test]
    fn checks_run_in_order() {
        let mut many = with_keys(1025);
        many.insert("__proto__".into(), nested(20));
        assert_eq!(reject(Value::Object(many)).0, "value.too_many_keys");
        assert_eq!(
            reject(json!({"constructor": nested(20)})).0,
            "value.proto_polluted"
        );
    }
}
