//! The error body of `invocationresult` and every error code the server puts on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error code this server sends. Each code on the wire has exactly this one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    FunctionNotFound,
    InvocationFailed,
    InvocationStopped,
    InvocationTimeout,
    EnqueueError,
    ServerShuttingDown,
    TriggerTypeNotFound,
    TriggerRegistrationFailed,
    DeserializationError,
    StreamSetError,
    StreamGetError,
    StreamDeleteError,
    StreamUpdateError,
    StreamSendError,
    StreamGetGroupError,
    StreamListGroupsError,
    StreamListAllError,
    StreamInvalidName,
    JsonError,
    /// A connection exceeded a configured rate (docs/limits.md).
    RateLimited,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FunctionNotFound => "function_not_found",
            Self::InvocationFailed => "invocation_failed",
            Self::InvocationStopped => "invocation_stopped",
            Self::InvocationTimeout => "invocation_timeout",
            Self::EnqueueError => "enqueue_error",
            Self::ServerShuttingDown => "server_shutting_down",
            Self::TriggerTypeNotFound => "trigger_type_not_found",
            Self::TriggerRegistrationFailed => "trigger_registration_failed",
            Self::DeserializationError => "deserialization_error",
            Self::StreamSetError => "STREAM_SET_ERROR",
            Self::StreamGetError => "STREAM_GET_ERROR",
            Self::StreamDeleteError => "STREAM_DELETE_ERROR",
            Self::StreamUpdateError => "STREAM_UPDATE_ERROR",
            Self::StreamSendError => "STREAM_SEND_ERROR",
            Self::StreamGetGroupError => "STREAM_GET_GROUP_ERROR",
            Self::StreamListGroupsError => "STREAM_LIST_GROUPS_ERROR",
            Self::StreamListAllError => "STREAM_LIST_ALL_ERROR",
            Self::StreamInvalidName => "STREAM_INVALID_NAME",
            Self::JsonError => "JSON_ERROR",
            Self::RateLimited => "rate_limited",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"code", "message", "stacktrace"?}` as carried by `invocationresult.error`.
///
/// `code` is a free string because workers return codes of their own; the server's codes come from
/// [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_str().to_owned(),
            message: message.into(),
            stacktrace: None,
        }
    }

    pub fn function_not_found(function_id: &str) -> Self {
        Self::new(
            ErrorCode::FunctionNotFound,
            format!("Function '{function_id}' not found"),
        )
    }

    pub fn invocation_stopped() -> Self {
        Self::new(ErrorCode::InvocationStopped, "Invocation stopped")
    }

    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code.as_str()
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacktrace_is_omitted_when_absent() {
        let body = ErrorBody::function_not_found("audit::log");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"code":"function_not_found","message":"Function 'audit::log' not found"}"#
        );
    }
}
