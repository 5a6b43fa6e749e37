//! The `stream::update` operation engine (stream.md §4): decoding of op lists and their
//! application to a working value. Shared by every storage adapter so results are identical.

mod apply;
mod merge_value;
mod number;
mod op;
mod path;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::Value;

pub use apply::apply_ops;
pub use op::UpdateOp;

/// The error of one failed op, as listed in `stream::update`'s `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpError {
    pub op_index: usize,
    pub code: String,
    pub message: String,
}

/// The result of applying an op list.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub value: Value,
    pub errors: Vec<OpError>,
}

/// Why one op failed, before it is tied to its index. `code` lacks the `<op>.` prefix so the
/// checks shared by several ops (paths, arithmetic) need not know which op they serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: &'static str, message: String) -> Self {
        Self { code, message }
    }
}

/// The name of a value's JSON type, as error messages spell it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
