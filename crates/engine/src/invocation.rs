//! Calls sent to workers and awaiting their `invocationresult`: correlation by a fresh UUID,
//! timeouts, and failure when the callee disconnects.

use crate::Outcome;
use crate::connection::WorkerHandle;
use iii_stream_protocol::engine::{ServerMessage, TraceContext};
use iii_stream_protocol::{ErrorBody, ErrorCode, RawValue};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// How the server calls a worker's function.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub timeout: Duration,
    /// Sent as `metadata` (a trigger's metadata, or the original caller's).
    pub metadata: Option<Arc<RawValue>>,
    pub trace: TraceContext,
}

impl CallOptions {
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            metadata: None,
            trace: TraceContext::default(),
        }
    }
}

struct Pending {
    worker: Arc<str>,
    tx: oneshot::Sender<Outcome>,
}

#[derive(Default)]
pub(crate) struct Invocations {
    pending: Mutex<HashMap<String, Pending>>,
}

pub(crate) fn timed_out(after: Duration) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::InvocationTimeout,
        format!("Invocation timed out after {} ms", after.as_millis()),
    )
}

impl Invocations {
    pub(crate) async fn call_worker(
        &self,
        worker: &Arc<WorkerHandle>,
        function_id: &str,
        data: &RawValue,
        options: &CallOptions,
    ) -> Outcome {
        let id = Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(
            id.clone(),
            Pending {
                worker: worker.id.clone(),
                tx,
            },
        );
        // The worker may have gone between the lookup and the insert above; its clean-up ran
        // before our entry existed and would never fail it.
        if worker.is_closed() {
            self.pending.lock().remove(&id);
            return Err(ErrorBody::invocation_stopped());
        }
        worker.send(
            ServerMessage::InvokeFunction {
                invocation_id: &id,
                function_id,
                data,
                metadata: options.metadata.as_deref(),
                traceparent: options.trace.traceparent.as_deref(),
                baggage: options.trace.baggage.as_deref(),
            }
            .to_json(),
        );
        match tokio::time::timeout(options.timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ErrorBody::invocation_stopped()),
            Err(_) => {
                self.pending.lock().remove(&id);
                Err(timed_out(options.timeout))
            }
        }
    }

    /// Completes a pending call; late, duplicate or unknown ids are ignored.
    pub(crate) fn complete(&self, id: &str, outcome: Outcome) {
        let pending = self.pending.lock().remove(id);
        match pending {
            Some(pending) => {
                let _ = pending.tx.send(outcome);
            }
            None => tracing::debug!(invocation = id, "ignoring result of an unknown invocation"),
        }
    }

    /// Fails every call pending on `worker` with `invocation_stopped`.
    pub(crate) fn fail_worker(&self, worker: &str) {
        let failed: Vec<Pending> = {
            let mut pending = self.pending.lock();
            let ids: Vec<String> = pending
                .iter()
                .filter(|(_, p)| &*p.worker == worker)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for pending in failed {
            let _ = pending.tx.send(Err(ErrorBody::invocation_stopped()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.lock().len()
    }
}
