//! Accounting of the calls the stream service makes into workers (auth, join and leave handlers,
//! conditions, triggers, providers): one place that counts and logs their outcomes.

use iii_stream_engine::Outcome;
use iii_stream_metrics::metrics;
use iii_stream_protocol::ErrorCode;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    Auth,
    Join,
    Leave,
    Condition,
    Trigger,
    Provider,
}

impl Call {
    fn label(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Condition => "condition",
            Self::Trigger => "trigger",
            Self::Provider => "provider",
        }
    }
}

/// Counts and logs the outcome of a server-to-worker call; returns it unchanged.
pub(crate) fn observe(kind: Call, function_id: &str, outcome: Outcome) -> Outcome {
    let label = match &outcome {
        Ok(_) => "ok",
        Err(e) if e.is(ErrorCode::InvocationTimeout) => "timeout",
        Err(_) => "error",
    };
    metrics().server_call(kind.label(), label);
    if let Err(error) = &outcome {
        tracing::warn!(kind = kind.label(), function = function_id, code = %error.code,
            message = %error.message, "call into a worker failed");
    }
    outcome
}
