//! Accounting of the calls the stream service makes into workers (auth, join and leave handlers,
//! conditions, triggers, providers): one place that counts and logs their outcomes.

use iii_stream_engine::Outcome;
use iii_stream_metrics::metrics;
use iii_stream_protocol::ErrorCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Counts one piece of work in progress for as long as it lives: however the work ends (done,
/// failed, or its future dropped), the count goes back down.
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Busy {
    pub(crate) fn start(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_future_gives_its_count_back() {
        let counter = Arc::new(AtomicUsize::new(0));
        let work = async {
            let _busy = Busy::start(&counter);
            std::future::pending::<()>().await;
        };
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(5), work)
                .await
                .is_err()
        );
        assert_eq!(counter.load(Ordering::SeqCst), 0);
    }
}
