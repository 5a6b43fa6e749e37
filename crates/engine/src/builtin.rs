//! Built-in functions: served inside the server instead of by a worker.

use crate::Outcome;
use iii_stream_protocol::RawValue;
use iii_stream_protocol::engine::TraceContext;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future of an [`Outcome`].
pub type BoxOutcome = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// A built-in function. Whatever it can do synchronously should happen before its future first
/// yields: the engine polls it once inline, so cheap calls never pay for a task, and calls from
/// one connection take effect in the order they arrived.
pub type BuiltinFn = Arc<dyn Fn(BuiltinCall) -> BoxOutcome + Send + Sync>;

/// The input of one built-in call.
#[derive(Debug)]
pub struct BuiltinCall {
    /// The payload; `None` when absent or `null`.
    pub data: Option<Box<RawValue>>,
    /// The caller's trace context, for calls the function makes in turn.
    pub trace: TraceContext,
}

/// `{"success": true}`, the sync answer of `engine::workers::register`.
pub(crate) fn success() -> Box<RawValue> {
    // A constant, valid JSON text.
    RawValue::from_string(r#"{"success":true}"#.to_owned())
        .unwrap_or_else(|_| RawValue::NULL.to_owned())
}
