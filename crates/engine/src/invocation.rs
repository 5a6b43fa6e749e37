//! Calls sent to workers and awaiting their `invocationresult`: correlation by a fresh UUID,
//! timeouts, and failure when the callee disconnects.

use crate::Outcome;
use crate::connection::WorkerHandle;
use iii_stream_metrics::metrics;
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

/// Calls awaiting a worker's answer, by the invocation id the server generated.
#[derive(Default)]
pub(crate) struct Invocations {
    pending: Mutex<HashMap<Uuid, Pending>>,
}

pub(crate) fn timed_out(after: Duration) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::InvocationTimeout,
        format!("Invocation timed out after {} ms", after.as_millis()),
    )
}

/// Removes a call's entries when its future ends, however it ends: answered, timed out, or
/// dropped by a caller that stopped waiting (a closed subscriber's join, a cancelled task).
struct PendingGuard<'a> {
    invocations: &'a Invocations,
    worker: &'a WorkerHandle,
    id: Uuid,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.invocations.pending.lock().remove(&self.id).is_some() {
            metrics().pending_invocations.dec();
        }
        self.worker.forget_call(&self.id);
    }
}

impl Invocations {
    pub(crate) async fn call_worker(
        &self,
        worker: &Arc<WorkerHandle>,
        function_id: &str,
        data: &RawValue,
        options: &CallOptions,
    ) -> Outcome {
        let id = Uuid::new_v4();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(
            id,
            Pending {
                worker: worker.id.clone(),
                tx,
            },
        );
        metrics().pending_invocations.inc();
        worker.remember_call(id);
        let _guard = PendingGuard {
            invocations: self,
            worker,
            id,
        };
        // The worker may have gone between the lookup and the inserts above; its clean-up ran
        // before our entries existed and would never fail them.
        if worker.is_closed() {
            return Err(ErrorBody::invocation_stopped());
        }
        let mut buffer = Uuid::encode_buffer();
        worker.send(
            ServerMessage::InvokeFunction {
                invocation_id: id.hyphenated().encode_lower(&mut buffer),
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
            Err(_) => Err(timed_out(options.timeout)),
        }
    }

    /// Completes a pending call with the answer `from` sent. Late, duplicate and unknown ids are
    /// ignored, and so is an answer from any connection but the one the call was sent to: no
    /// worker can answer for another (docs/worker-protocol.md, "Ownership").
    pub(crate) fn complete(&self, from: &WorkerHandle, id: &str, outcome: Outcome) {
        let Ok(key) = Uuid::parse_str(id) else {
            tracing::debug!(worker = %from.id, "ignoring a result for an invocation id the server never issued");
            return;
        };
        let pending = {
            let mut pending = self.pending.lock();
            match pending.get(&key) {
                Some(p) if p.worker == from.id => pending.remove(&key),
                Some(_) => {
                    drop(pending);
                    metrics().foreign_results.inc();
                    tracing::warn!(worker = %from.id, invocation = %key,
                        "ignoring a result for an invocation sent to another connection");
                    return;
                }
                None => None,
            }
        };
        match pending {
            Some(pending) => {
                metrics().pending_invocations.dec();
                from.forget_call(&key);
                let _ = pending.tx.send(outcome);
            }
            None => tracing::debug!(worker = %from.id, invocation = %key,
                "ignoring result of an unknown or finished invocation"),
        }
    }

    /// Fails every call pending on `worker` with `invocation_stopped`.
    pub(crate) fn fail_worker(&self, worker: &WorkerHandle) {
        let ids = worker.take_calls();
        if ids.is_empty() {
            return;
        }
        let failed: Vec<Pending> = {
            let mut pending = self.pending.lock();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        metrics().pending_invocations.dec_by(failed.len() as i64);
        for pending in failed {
            let _ = pending.tx.send(Err(ErrorBody::invocation_stopped()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.lock().len()
    }
}
