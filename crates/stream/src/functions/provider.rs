//! Custom providers (stream.md §5): worker functions named `stream::<op>(<stream>)` that take
//! over storage for one stream.

use super::Function;
use crate::StreamService;
use crate::calls::{Call, observe};
use iii_stream_domain::JsonText;
use iii_stream_domain::event::canonical_json;
use iii_stream_engine::{CallOptions, Outcome};
use iii_stream_protocol::{ErrorBody, ErrorCode, RawValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

impl StreamService {
    /// Calls the provider of `function` for `stream` if one is registered; `None` otherwise.
    pub(crate) async fn provide(
        &self,
        function: Function,
        stream: &str,
        input: &impl Serialize,
    ) -> Option<Outcome> {
        let id = provider_id(function, stream);
        if !self.engine.has_worker_function(&id) {
            return None;
        }
        let payload = match serde_json::value::to_raw_value(input) {
            Ok(payload) => payload,
            Err(e) => return Some(Err(function.error(e))),
        };
        let options = CallOptions::with_timeout(self.timeouts.provider);
        let outcome = self.engine.invoke(&id, &payload, options).await;
        Some(observe(Call::Provider, &id, outcome))
    }
}

pub(crate) fn provider_id(function: Function, stream: &str) -> String {
    format!("stream::{}({stream})", function.op())
}

/// The provider's result of a write, as the JSON it must decode from.
fn result_of(function: Function, outcome: Outcome) -> Result<Box<RawValue>, ErrorBody> {
    match outcome {
        Ok(Some(result)) => Ok(result),
        Ok(None) => Err(function.error("Function returned no result")),
        Err(e) => Err(function.error(format_args!(
            "Failed to invoke function: {}: {}",
            e.code, e.message
        ))),
    }
}

fn convert<T: for<'de> Deserialize<'de>>(result: &RawValue) -> Result<T, ErrorBody> {
    let failed = |detail: &dyn std::fmt::Display| {
        ErrorBody::new(
            ErrorCode::JsonError,
            format!("Failed to convert result to value: {detail}"),
        )
    };
    // serde would also accept a positional array for a struct; the contract is an object.
    if !result.get().starts_with('{') {
        return Err(failed(&"expected an object"));
    }
    serde_json::from_str(result.get()).map_err(|e| failed(&e))
}

/// A present, non-`null` `old_value` means the item existed.
fn existing(old: Option<Value>) -> Option<JsonText> {
    old.filter(|v| !v.is_null()).map(|v| canonical_json(&v))
}

/// `{"old_value"?, "new_value"}` of a set.
pub(crate) fn decode_write(
    function: Function,
    outcome: Outcome,
) -> Result<(Option<JsonText>, JsonText), ErrorBody> {
    #[derive(Deserialize)]
    struct Write {
        #[serde(default)]
        old_value: Option<Value>,
        new_value: Value,
    }
    let write: Write = convert(&result_of(function, outcome)?)?;
    Ok((existing(write.old_value), canonical_json(&write.new_value)))
}

/// `{"old_value"?}` of a delete.
pub(crate) fn decode_delete(
    function: Function,
    outcome: Outcome,
) -> Result<Option<JsonText>, ErrorBody> {
    #[derive(Deserialize)]
    struct Delete {
        #[serde(default)]
        old_value: Option<Value>,
    }
    let delete: Delete = convert(&result_of(function, outcome)?)?;
    Ok(existing(delete.old_value))
}

/// A provider's update result, normalised.
pub(crate) struct ProvidedUpdate {
    pub(crate) old: Option<JsonText>,
    pub(crate) new: JsonText,
    /// `None` when the provider reported no errors.
    pub(crate) errors: Option<Box<RawValue>>,
}

/// `{"old_value"?, "new_value", "errors"?}` of an update; empty `errors` become absent.
pub(crate) fn decode_update(
    function: Function,
    outcome: Outcome,
) -> Result<ProvidedUpdate, ErrorBody> {
    #[derive(Deserialize)]
    struct Update {
        #[serde(default)]
        old_value: Option<Value>,
        new_value: Value,
        #[serde(default)]
        errors: Option<Vec<Value>>,
    }
    let update: Update = convert(&result_of(function, outcome)?)?;
    let errors = update
        .errors
        .filter(|e| !e.is_empty())
        .and_then(|e| serde_json::value::to_raw_value(&e).ok());
    Ok(ProvidedUpdate {
        old: existing(update.old_value),
        new: canonical_json(&update.new_value),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Outcome {
        Ok(Some(RawValue::from_string(s.into()).unwrap()))
    }

    #[test]
    fn write_results_are_decoded_or_refused_precisely() {
        let (old, new) = decode_write(Function::Set, ok(r#"{"new_value":{"a":1}}"#)).unwrap();
        assert!(old.is_none());
        assert_eq!(new.get(), r#"{"a":1}"#);
        let (old, _) =
            decode_write(Function::Set, ok(r#"{"old_value":null,"new_value":1}"#)).unwrap();
        assert!(old.is_none(), "null old_value means created");
        let err = decode_write(Function::Set, ok(r#""garbage""#)).unwrap_err();
        assert_eq!(err.code, "JSON_ERROR");
        assert!(
            err.message
                .starts_with("Failed to convert result to value: ")
        );
        let err = decode_write(Function::Set, Ok(None)).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.message.as_str()),
            (
                "STREAM_SET_ERROR",
                "Failed to set value: Function returned no result"
            )
        );
        let err = decode_delete(
            Function::Delete,
            Err(ErrorBody::new(ErrorCode::InvocationFailed, "boom")),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Failed to delete value: Failed to invoke function: invocation_failed: boom"
        );
    }

    #[test]
    fn provider_ids() {
        assert_eq!(
            provider_id(Function::ListGroups, "chat"),
            "stream::list_groups(chat)"
        );
    }
}
