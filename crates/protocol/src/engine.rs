//! Messages of the iii worker protocol (engine port).
//!
//! Inbound messages are decoded in one pass into an envelope of raw fields, then only the fields
//! the message type needs are decoded. Unknown fields and types are ignored, `null` equals absent,
//! and a missing `data`/`config` means JSON `null` (the Python SDK drops `None` fields).

use crate::error::ErrorBody;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Why an inbound message was not understood. The connection stays open either way.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JSON object with a string 'type': {0}")]
    Envelope(serde_json::Error),
    #[error("field '{field}' is missing")]
    Missing { field: &'static str },
    #[error("field '{field}' has the wrong type: {source}")]
    WrongType {
        field: &'static str,
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    function_id: Option<&'a RawValue>,
    #[serde(borrow)]
    invocation_id: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    action: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    traceparent: Option<&'a RawValue>,
    #[serde(borrow)]
    baggage: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    #[serde(borrow)]
    trigger_type: Option<&'a RawValue>,
    #[serde(borrow)]
    config: Option<&'a RawValue>,
    #[serde(borrow)]
    invocation: Option<&'a RawValue>,
    #[serde(borrow)]
    namespace: Option<&'a RawValue>,
    #[serde(borrow)]
    previous_worker_id: Option<&'a RawValue>,
    #[serde(borrow)]
    reattach_token: Option<&'a RawValue>,
}

/// A message received from a worker, borrowing from the received text.
#[derive(Debug)]
pub enum WorkerMessage<'a> {
    RegisterFunction(RegisterFunction<'a>),
    UnregisterFunction {
        id: Cow<'a, str>,
    },
    RegisterTrigger(RegisterTrigger<'a>),
    UnregisterTrigger {
        id: Cow<'a, str>,
    },
    InvokeFunction(InvokeFunction<'a>),
    InvocationResult(InvocationResult<'a>),
    Reattach {
        previous_worker_id: Cow<'a, str>,
        reattach_token: Option<Cow<'a, str>>,
    },
    Ping,
    /// A message type that is accepted and ignored, known or not.
    Ignored {
        kind: Cow<'a, str>,
    },
}

#[derive(Debug)]
pub struct RegisterFunction<'a> {
    pub id: Cow<'a, str>,
    /// Present on HTTP-invoked functions, which this server does not serve.
    pub http_invocation: bool,
}

/// `registertrigger`. Every field but `id` is optional here so that a refusal can still name what
/// the worker sent.
#[derive(Debug)]
pub struct RegisterTrigger<'a> {
    pub id: Cow<'a, str>,
    pub trigger_type: Option<Cow<'a, str>>,
    pub function_id: Option<Cow<'a, str>>,
    pub config: Option<&'a RawValue>,
    pub metadata: Option<&'a RawValue>,
}

#[derive(Debug)]
pub struct InvokeFunction<'a> {
    pub invocation_id: Option<Cow<'a, str>>,
    pub function_id: Cow<'a, str>,
    pub data: Option<&'a RawValue>,
    pub action: Action,
    pub metadata: Option<&'a RawValue>,
    pub trace: TraceContext,
}

/// The `action` of an `invokefunction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Absent,
    Void,
    Enqueue,
    /// Any other shape: treated as sync when an id is present, else void.
    Unknown,
}

/// How an invocation must be answered, derived from its `action` and `invocation_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMode {
    /// Answer exactly once.
    Sync,
    /// Run and never answer.
    Void,
    /// Do not run; answer `enqueue_error` if an id is present.
    Enqueue,
}

impl InvokeFunction<'_> {
    pub fn mode(&self) -> CallMode {
        match (self.action, self.invocation_id.is_some()) {
            (Action::Enqueue, _) => CallMode::Enqueue,
            (Action::Void, _) => CallMode::Void,
            (Action::Absent | Action::Unknown, true) => CallMode::Sync,
            (Action::Absent | Action::Unknown, false) => CallMode::Void,
        }
    }
}

/// W3C trace context passed through calls unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
}

#[derive(Debug)]
pub struct InvocationResult<'a> {
    pub invocation_id: Cow<'a, str>,
    pub result: Option<&'a RawValue>,
    pub error: Option<&'a RawValue>,
}

impl InvocationResult<'_> {
    /// The outcome: `Ok(None)` is "no result". A malformed `error` becomes `invocation_failed`
    /// carrying the raw JSON, as the protocol requires.
    pub fn outcome(&self) -> Result<Option<Box<RawValue>>, ErrorBody> {
        if let Some(raw) = self.error {
            return Err(match serde_json::from_str::<ErrorBody>(raw.get()) {
                Ok(body) => body,
                Err(_) => ErrorBody::new(crate::ErrorCode::InvocationFailed, raw.get()),
            });
        }
        Ok(self.result.map(ToOwned::to_owned))
    }
}

/// A decoded message plus the non-default namespace it carried, if any (namespaces are ignored
/// but warned about once per connection).
pub struct Decoded<'a> {
    pub message: WorkerMessage<'a>,
    pub namespace: Option<String>,
}

pub fn decode_worker_message(text: &str) -> Result<Decoded<'_>, DecodeError> {
    let env: Envelope<'_> = serde_json::from_str(text).map_err(DecodeError::Envelope)?;
    let namespace = optional::<Cow<'_, str>>(env.namespace, "namespace")
        .ok()
        .flatten()
        .filter(|ns| ns != "default")
        .map(Cow::into_owned);
    let message = match &*env.kind {
        "registerfunction" => WorkerMessage::RegisterFunction(RegisterFunction {
            id: non_empty(required(env.id, "id")?, "id")?,
            http_invocation: env.invocation.is_some(),
        }),
        "unregisterfunction" => WorkerMessage::UnregisterFunction {
            id: required(env.id, "id")?,
        },
        "registertrigger" => WorkerMessage::RegisterTrigger(RegisterTrigger {
            id: required(env.id, "id")?,
            trigger_type: optional(env.trigger_type, "trigger_type")?,
            function_id: optional(env.function_id, "function_id")?,
            config: env.config,
            metadata: env.metadata,
        }),
        "unregistertrigger" => WorkerMessage::UnregisterTrigger {
            id: required(env.id, "id")?,
        },
        "invokefunction" => WorkerMessage::InvokeFunction(InvokeFunction {
            invocation_id: optional(env.invocation_id, "invocation_id")?,
            function_id: required(env.function_id, "function_id")?,
            data: env.data,
            action: decode_action(env.action),
            metadata: env.metadata,
            trace: TraceContext {
                traceparent: optional(env.traceparent, "traceparent")?,
                baggage: optional(env.baggage, "baggage")?,
            },
        }),
        "invocationresult" => WorkerMessage::InvocationResult(InvocationResult {
            invocation_id: required(env.invocation_id, "invocation_id")?,
            result: env.result,
            error: env.error,
        }),
        "reattach" => WorkerMessage::Reattach {
            previous_worker_id: required(env.previous_worker_id, "previous_worker_id")?,
            reattach_token: optional(env.reattach_token, "reattach_token")?,
        },
        "ping" => WorkerMessage::Ping,
        _ => WorkerMessage::Ignored { kind: env.kind },
    };
    Ok(Decoded { message, namespace })
}

fn decode_action(raw: Option<&RawValue>) -> Action {
    #[derive(Deserialize)]
    struct Tagged<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
    }
    let Some(raw) = raw else {
        return Action::Absent;
    };
    match serde_json::from_str::<Tagged<'_>>(raw.get()) {
        Ok(t) if t.kind == "void" => Action::Void,
        Ok(t) if t.kind == "enqueue" => Action::Enqueue,
        _ => Action::Unknown,
    }
}

fn optional<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Option<T>, DecodeError> {
    raw.map(|raw| {
        serde_json::from_str(raw.get()).map_err(|source| DecodeError::WrongType { field, source })
    })
    .transpose()
}

fn required<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    field: &'static str,
) -> Result<T, DecodeError> {
    optional(raw, field)?.ok_or(DecodeError::Missing { field })
}

fn non_empty<'a>(s: Cow<'a, str>, field: &'static str) -> Result<Cow<'a, str>, DecodeError> {
    if s.is_empty() {
        Err(DecodeError::Missing { field })
    } else {
        Ok(s)
    }
}

/// Decodes a payload that may be absent (absent means JSON `null`).
pub fn decode_payload<T: DeserializeOwned>(data: Option<&RawValue>) -> serde_json::Result<T> {
    serde_json::from_str(data.map_or("null", RawValue::get))
}

/// Messages the server sends to workers. Serialised exactly: some SDKs decode strictly.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage<'a> {
    WorkerRegistered {
        worker_id: &'a str,
        reattach_token: &'a str,
    },
    InvokeFunction {
        invocation_id: &'a str,
        function_id: &'a str,
        /// Always present (`null` when there is no payload): Rust workers drop frames without it.
        data: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        traceparent: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        baggage: Option<&'a str>,
    },
    InvocationResult {
        invocation_id: &'a str,
        function_id: &'a str,
        /// Omitted for "no result": Node resolves `undefined` only when the key is absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a ErrorBody>,
    },
    TriggerRegistrationResult {
        id: &'a str,
        trigger_type: &'a str,
        function_id: &'a str,
        error: &'a ErrorBody,
    },
    Pong,
}

impl ServerMessage<'_> {
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail: every key is a string and every number finite.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// JSON `null` as a raw value, for payload-less calls.
pub fn null_raw() -> &'static RawValue {
    RawValue::NULL
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> WorkerMessage<'_> {
        decode_worker_message(text).unwrap().message
    }

    #[test]
    fn missing_data_is_null_and_unknown_fields_are_ignored() {
        let WorkerMessage::InvokeFunction(call) = decode(
            r#"{"type":"invokefunction","invocation_id":"a","function_id":"stream::list_all","caller":{"x":1}}"#,
        ) else {
            panic!("not an invocation")
        };
        assert!(call.data.is_none());
        assert_eq!(call.mode(), CallMode::Sync);
    }

    #[test]
    fn void_with_null_invocation_id() {
        let WorkerMessage::InvokeFunction(call) = decode(
            r#"{"type":"invokefunction","invocation_id":null,"function_id":"engine::workers::register","action":{"type":"void"},"data":{}}"#,
        ) else {
            panic!("not an invocation")
        };
        assert_eq!(call.invocation_id, None);
        assert_eq!(call.mode(), CallMode::Void);
    }

    #[test]
    fn call_modes() {
        let mode = |t: &str| match decode(t) {
            WorkerMessage::InvokeFunction(c) => c.mode(),
            _ => panic!(),
        };
        assert_eq!(
            mode(r#"{"type":"invokefunction","function_id":"f"}"#),
            CallMode::Void
        );
        assert_eq!(
            mode(
                r#"{"type":"invokefunction","invocation_id":"1","function_id":"f","action":{"type":"enqueue","queue":"q"}}"#
            ),
            CallMode::Enqueue
        );
        assert_eq!(
            mode(r#"{"type":"invokefunction","invocation_id":"1","function_id":"f","action":7}"#),
            CallMode::Sync
        );
        assert_eq!(
            mode(r#"{"type":"invokefunction","function_id":"f","action":"weird"}"#),
            CallMode::Void
        );
    }

    #[test]
    fn node_message_type_field_is_ignored() {
        let WorkerMessage::RegisterTrigger(t) = decode(
            r#"{"type":"registertrigger","id":"t1","trigger_type":"stream","function_id":"f","message_type":"registertrigger"}"#,
        ) else {
            panic!()
        };
        assert!(t.config.is_none());
        assert_eq!(t.function_id.as_deref(), Some("f"));
    }

    #[test]
    fn unknown_types_are_ignored_and_bad_messages_are_errors() {
        assert!(matches!(
            decode(r#"{"type":"observe","x":1}"#),
            WorkerMessage::Ignored { .. }
        ));
        assert!(decode_worker_message("[1]").is_err());
        assert!(decode_worker_message(r#"{"type":"invokefunction"}"#).is_err());
        assert!(decode_worker_message(r#"{"type":"invokefunction","function_id":5}"#).is_err());
        assert!(decode_worker_message(r#"{"type":"registerfunction","id":""}"#).is_err());
    }

    #[test]
    fn namespace_other_than_default_is_reported() {
        let d =
            decode_worker_message(r#"{"type":"registerfunction","id":"f","namespace":"default"}"#)
                .unwrap();
        assert_eq!(d.namespace, None);
        let d = decode_worker_message(r#"{"type":"registerfunction","id":"f","namespace":""}"#)
            .unwrap();
        assert_eq!(d.namespace.as_deref(), Some(""));
    }

    #[test]
    fn malformed_error_becomes_invocation_failed() {
        let WorkerMessage::InvocationResult(r) =
            decode(r#"{"type":"invocationresult","invocation_id":"1","error":"boom"}"#)
        else {
            panic!()
        };
        let err = r.outcome().unwrap_err();
        assert_eq!(err.code, "invocation_failed");
        assert_eq!(err.message, "\"boom\"");
    }

    #[test]
    fn server_messages_serialise_exactly() {
        let msg = ServerMessage::InvocationResult {
            invocation_id: "i",
            function_id: "stream::get",
            result: None,
            error: None,
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"invocationresult","invocation_id":"i","function_id":"stream::get"}"#
        );
        let msg = ServerMessage::InvokeFunction {
            invocation_id: "u",
            function_id: "f",
            data: null_raw(),
            metadata: None,
            traceparent: None,
            baggage: None,
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"invokefunction","invocation_id":"u","function_id":"f","data":null}"#
        );
        assert_eq!(ServerMessage::Pong.to_json(), r#"{"type":"pong"}"#);
    }
}
