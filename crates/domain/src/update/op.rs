//! The `UpdateOp` type and its decoding from JSON (stream.md §4.1).
//!
//! Decoding goes through a `serde_json` map rather than a derived impl so that every rule of the
//! wire format (optional-or-null paths, `by` being an integer and not a float, lower-case tags)
//! is stated once, here, with messages that name the op and the field.

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::{Map, Value};

/// One decoded update operation.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    Set { path: String, value: Value },
    Merge { path: Vec<String>, value: Value },
    Increment { path: String, by: i64 },
    Decrement { path: String, by: i64 },
    Append { path: Vec<String>, value: Value },
    Remove { path: String },
}

const OP_TYPES: [&str; 6] = ["set", "merge", "increment", "decrement", "append", "remove"];

impl UpdateOp {
    /// The op's `type` tag, which also prefixes its error codes.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Set { .. } => "set",
            Self::Merge { .. } => "merge",
            Self::Increment { .. } => "increment",
            Self::Decrement { .. } => "decrement",
            Self::Append { .. } => "append",
            Self::Remove { .. } => "remove",
        }
    }
}

impl<'de> Deserialize<'de> for UpdateOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(fields) => decode(fields).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "invalid type: {}, expected an update op object",
                describe(&other)
            ))),
        }
    }
}

fn decode(mut fields: Map<String, Value>) -> Result<UpdateOp, String> {
    let tag = match fields.remove("type") {
        Some(Value::String(tag)) => tag,
        Some(other) => {
            return Err(format!(
                "invalid type for `type`: {}, expected a string",
                describe(&other)
            ));
        }
        None => return Err("missing field `type`".to_owned()),
    };
    let mut op = Fields {
        op: &tag,
        fields: &mut fields,
    };
    Ok(match tag.as_str() {
        "set" => UpdateOp::Set {
            path: op.single_key_path()?,
            value: op.optional_value(),
        },
        "merge" => UpdateOp::Merge {
            path: op.nesting_path()?,
            value: op.required_value()?,
        },
        "increment" => UpdateOp::Increment {
            path: op.single_key_path()?,
            by: op.amount()?,
        },
        "decrement" => UpdateOp::Decrement {
            path: op.single_key_path()?,
            by: op.amount()?,
        },
        "append" => UpdateOp::Append {
            path: op.nesting_path()?,
            value: op.required_value()?,
        },
        "remove" => UpdateOp::Remove {
            path: op.single_key_path()?,
        },
        unknown => {
            let expected = OP_TYPES.map(|t| format!("`{t}`")).join(", ");
            return Err(format!(
                "unknown op type `{unknown}`, expected one of {expected}"
            ));
        }
    })
}

/// The remaining fields of one op, named by its tag for error messages.
struct Fields<'a> {
    op: &'a str,
    fields: &'a mut Map<String, Value>,
}

impl Fields<'_> {
    fn required(&mut self, field: &str) -> Result<Value, String> {
        self.fields
            .remove(field)
            .ok_or_else(|| format!("{} op: missing field `{field}`", self.op))
    }

    fn invalid(&self, field: &str, got: &Value, expected: &str) -> String {
        format!(
            "{} op: invalid type for `{field}`: {}, expected {expected}",
            self.op,
            describe(got)
        )
    }

    fn single_key_path(&mut self) -> Result<String, String> {
        match self.required("path")? {
            Value::String(path) => Ok(path),
            other => Err(self.invalid("path", &other, "a string")),
        }
    }

    /// Absent, `null`, `""` and `[]` all mean the root; `[""]` does not (§4.2).
    fn nesting_path(&mut self) -> Result<Vec<String>, String> {
        match self.fields.remove("path") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(key)) if key.is_empty() => Ok(Vec::new()),
            Some(Value::String(key)) => Ok(vec![key]),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(segment) => Ok(segment),
                    other => Err(self.invalid(&format!("path[{i}]"), &other, "a string")),
                })
                .collect(),
            Some(other) => {
                Err(self.invalid("path", &other, "a string, an array of strings or null"))
            }
        }
    }

    fn optional_value(&mut self) -> Value {
        self.fields.remove("value").unwrap_or(Value::Null)
    }

    fn required_value(&mut self) -> Result<Value, String> {
        self.required("value")
    }

    /// `by` must be a JSON integer: `1.0` is rejected even though it is integral, because the
    /// arithmetic of §4.5 keeps integer and float results apart.
    fn amount(&mut self) -> Result<i64, String> {
        const EXPECTED: &str = "an integer in the signed 64-bit range";
        match self.required("by")? {
            Value::Number(n) => match n.as_i64() {
                Some(by) => Ok(by),
                None if n.is_f64() => Err(self.invalid("by", &Value::Number(n), EXPECTED)),
                None => Err(format!(
                    "{} op: invalid value for `by`: {n}, expected {EXPECTED}",
                    self.op
                )),
            },
            other => Err(self.invalid("by", &other, EXPECTED)),
        }
    }
}

/// A short description of an offending value; scalars other than strings are shown because they
/// are short and often the point (`1.0` vs `1`).
fn describe(value: &Value) -> String {
    match value {
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number `{n}`"),
        other => super::type_name(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::UpdateOp;
    use serde_json::{Value, json};

    fn decode(v: Value) -> UpdateOp {
        match serde_json::from_value(v.clone()) {
            Ok(op) => op,
            Err(e) => panic!("{v} should decode: {e}"),
        }
    }

    fn reject(v: Value) -> String {
        match serde_json::from_value::<UpdateOp>(v.clone()) {
            Ok(op) => panic!("{v} should not decode, got {op:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn segs(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn set_decodes_with_value() {
        assert_eq!(
            decode(json!({"type": "set", "path": "k", "value": {"a": [1]}})),
            UpdateOp::Set {
                path: "k".into(),
                value: json!({"a": [1]})
            }
        );
    }

    #[test]
    fn set_value_absent_or_null_is_null() {
        let expected = UpdateOp::Set {
            path: "".into(),
            value: Value::Null,
        };
        assert_eq!(decode(json!({"type": "set", "path": ""})), expected);
        assert_eq!(
            decode(json!({"type": "set", "path": "", "value": null})),
            expected
        );
    }

    #[test]
    fn set_path_array_is_rejected() {
        assert_eq!(
            reject(json!({"type": "set", "path": ["k"], "value": 1})),
            "set op: invalid type for `path`: array, expected a string"
        );
    }

    #[test]
    fn set_path_missing_is_rejected() {
        assert_eq!(
            reject(json!({"type": "set", "value": 1})),
            "set op: missing field `path`"
        );
    }

    #[test]
    fn single_key_path_null_or_number_is_rejected() {
        assert_eq!(
            reject(json!({"type": "remove", "path": null})),
            "remove op: invalid type for `path`: null, expected a string"
        );
        assert_eq!(
            reject(json!({"type": "increment", "path": 3, "by": 1})),
            "increment op: invalid type for `path`: number `3`, expected a string"
        );
    }

    #[test]
    fn merge_root_path_forms() {
        for op in [
            json!({"type": "merge", "value": {}}),
            json!({"type": "merge", "path": null, "value": {}}),
            json!({"type": "merge", "path": "", "value": {}}),
            json!({"type": "merge", "path": [], "value": {}}),
        ] {
            assert_eq!(
                decode(op),
                UpdateOp::Merge {
                    path: vec![],
                    value: json!({})
                }
            );
        }
    }

    #[test]
    fn nesting_path_string_is_one_segment_and_array_is_literal() {
        assert_eq!(
            decode(json!({"type": "append", "path": "a.b", "value": 1})),
            UpdateOp::Append {
                path: segs(&["a.b"]),
                value: json!(1)
            }
        );
        assert_eq!(
            decode(json!({"type": "merge", "path": ["a", "b.c"], "value": 5})),
            UpdateOp::Merge {
                path: segs(&["a", "b.c"]),
                value: json!(5)
            }
        );
    }

    #[test]
    fn array_with_empty_string_is_not_root() {
        assert_eq!(
            decode(json!({"type": "merge", "path": [""], "value": {}})),
            UpdateOp::Merge {
                path: segs(&[""]),
                value: json!({})
            }
        );
    }

    #[test]
    fn nesting_path_with_non_string_element_is_rejected() {
        assert_eq!(
            reject(json!({"type": "append", "path": ["a", 5], "value": 1})),
            "append op: invalid type for `path[1]`: number `5`, expected a string"
        );
    }

    #[test]
    fn nesting_path_of_other_type_is_rejected() {
        assert_eq!(
            reject(json!({"type": "merge", "path": {"a": 1}, "value": {}})),
            "merge op: invalid type for `path`: object, expected a string, an array of strings or null"
        );
        assert_eq!(
            reject(json!({"type": "merge", "path": true, "value": {}})),
            "merge op: invalid type for `path`: boolean `true`, expected a string, an array of strings or null"
        );
    }

    #[test]
    fn merge_and_append_value_is_required_but_may_be_null() {
        assert_eq!(
            reject(json!({"type": "merge", "path": "k"})),
            "merge op: missing field `value`"
        );
        assert_eq!(
            reject(json!({"type": "append", "path": "k"})),
            "append op: missing field `value`"
        );
        assert_eq!(
            decode(json!({"type": "append", "value": null})),
            UpdateOp::Append {
                path: vec![],
                value: Value::Null
            }
        );
    }

    #[test]
    fn increment_and_decrement_decode() {
        assert_eq!(
            decode(json!({"type": "increment", "path": "n", "by": -3})),
            UpdateOp::Increment {
                path: "n".into(),
                by: -3
            }
        );
        assert_eq!(
            decode(json!({"type": "decrement", "path": "", "by": i64::MIN})),
            UpdateOp::Decrement {
                path: "".into(),
                by: i64::MIN
            }
        );
        let max: UpdateOp =
            serde_json::from_str(r#"{"type":"increment","path":"n","by":9223372036854775807}"#)
                .expect("i64::MAX is in range");
        assert_eq!(
            max,
            UpdateOp::Increment {
                path: "n".into(),
                by: i64::MAX
            }
        );
    }

    #[test]
    fn by_float_is_rejected() {
        assert_eq!(
            reject(json!({"type": "increment", "path": "n", "by": 1.0})),
            "increment op: invalid type for `by`: number `1.0`, expected an integer in the signed 64-bit range"
        );
    }

    #[test]
    fn by_string_or_null_is_rejected() {
        assert_eq!(
            reject(json!({"type": "decrement", "path": "n", "by": "1"})),
            "decrement op: invalid type for `by`: string, expected an integer in the signed 64-bit range"
        );
        assert_eq!(
            reject(json!({"type": "increment", "path": "n", "by": null})),
            "increment op: invalid type for `by`: null, expected an integer in the signed 64-bit range"
        );
    }

    #[test]
    fn by_out_of_range_is_rejected() {
        assert_eq!(
            reject(json!({"type": "increment", "path": "n", "by": 9223372036854775808u64})),
            "increment op: invalid value for `by`: 9223372036854775808, expected an integer in the signed 64-bit range"
        );
        // Below i64::MIN serde_json can only parse a float, so it is rejected as one.
        let below: Result<UpdateOp, _> =
            serde_json::from_str(r#"{"type":"decrement","path":"n","by":-9223372036854775809}"#);
        assert!(below.is_err());
    }

    #[test]
    fn by_missing_is_rejected() {
        assert_eq!(
            reject(json!({"type": "increment", "path": "n"})),
            "increment op: missing field `by`"
        );
    }

    #[test]
    fn remove_decodes() {
        assert_eq!(
            decode(json!({"type": "remove", "path": "k"})),
            UpdateOp::Remove { path: "k".into() }
        );
        assert_eq!(
            reject(json!({"type": "remove"})),
            "remove op: missing field `path`"
        );
    }

    #[test]
    fn extra_keys_are_ignored() {
        assert_eq!(
            decode(json!({"type": "remove", "path": "k", "value": 1, "doc": "x", "by": 2.5})),
            UpdateOp::Remove { path: "k".into() }
        );
    }

    #[test]
    fn unknown_or_capitalised_type_is_rejected() {
        let expected = |t: &str| {
            format!(
                "unknown op type `{t}`, expected one of `set`, `merge`, `increment`, `decrement`, `append`, `remove`"
            )
        };
        assert_eq!(reject(json!({"type": "Set", "path": "k"})), expected("Set"));
        assert_eq!(
            reject(json!({"type": "push", "path": "k"})),
            expected("push")
        );
    }

    #[test]
    fn type_missing_or_not_a_string_is_rejected() {
        assert_eq!(reject(json!({"path": "k"})), "missing field `type`");
        assert_eq!(
            reject(json!({"type": 1, "path": "k"})),
            "invalid type for `type`: number `1`, expected a string"
        );
    }

    #[test]
    fn op_that_is_not_an_object_is_rejected() {
        assert_eq!(
            reject(json!(["set", "k"])),
            "invalid type: array, expected an update op object"
        );
        assert_eq!(
            reject(Value::Null),
            "invalid type: null, expected an update op object"
        );
    }

    #[test]
    fn one_bad_op_fails_the_whole_list() {
        let list: Result<Vec<UpdateOp>, _> = serde_json::from_str(
            r#"[{"type":"set","path":"a","value":1},{"type":"increment","path":"n","by":1.5}]"#,
        );
        let err = list.expect_err("second op is malformed").to_string();
        assert!(
            err.starts_with("increment op: invalid type for `by`: number `1.5`"),
            "{err}"
        );
    }

    #[test]
    fn name_is_the_type_tag() {
        for tag in super::OP_TYPES {
            let op = decode(json!({"type": tag, "path": "k", "value": 1, "by": 1}));
            assert_eq!(op.name(), tag);
        }
    }
}
