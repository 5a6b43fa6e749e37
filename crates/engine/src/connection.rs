//! One worker connection: its identity, its outbound queue, and the handling of each message it
//! sends, in arrival order.

use crate::invocation::CallOptions;
use crate::registry::Registration;
use crate::{Engine, shutting_down_error};
use iii_stream_metrics::metrics;
use iii_stream_protocol::engine::{
    CallMode, Decoded, InvokeFunction, ServerMessage, WorkerMessage, decode_worker_message,
};
use iii_stream_protocol::{ErrorBody, ErrorCode, RawValue};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};
use tokio::sync::mpsc;
use uuid::Uuid;

/// What the transport must do next on a worker socket.
#[derive(Debug)]
pub enum Outbound {
    /// Send one text message.
    Text(String),
    /// Close the socket (shutdown, reattach elsewhere).
    Close,
}

/// Python SDK 0.23 closes its socket on messages above 1 MiB.
const PYTHON_RECEIVE_LIMIT: usize = 1 << 20;

#[derive(Default)]
struct Description {
    name: Option<String>,
    runtime: Option<String>,
}

/// The engine's view of a connection, shared by registries and pending invocations.
pub(crate) struct WorkerHandle {
    pub(crate) id: Arc<str>,
    pub(crate) token: String,
    tx: mpsc::UnboundedSender<Outbound>,
    description: Mutex<Description>,
    closed: AtomicBool,
    warned_namespace: AtomicBool,
    /// Invocations sent to this connection and not answered yet, so its clean-up fails exactly
    /// those instead of scanning every pending call.
    calls: Mutex<HashSet<Uuid>>,
}

impl WorkerHandle {
    pub(crate) fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Arc::new(Self {
            id: Uuid::new_v4().to_string().into(),
            token: Uuid::new_v4().to_string(),
            tx,
            description: Mutex::default(),
            closed: AtomicBool::new(false),
            warned_namespace: AtomicBool::new(false),
            calls: Mutex::default(),
        });
        (handle, rx)
    }

    pub(crate) fn send(&self, text: String) {
        if text.len() > PYTHON_RECEIVE_LIMIT
            && self.description.lock().runtime.as_deref() == Some("python")
        {
            tracing::warn!(
                worker = %self.id,
                bytes = text.len(),
                "sending a message above 1 MiB to a Python worker; iii-sdk 0.23 will drop its connection"
            );
        }
        // A closed receiver means the connection is gone; its clean-up handles the rest.
        let _ = self.tx.send(Outbound::Text(text));
    }

    pub(crate) fn close_transport(&self) {
        let _ = self.tx.send(Outbound::Close);
    }

    /// Marks the connection closed; true the first time only.
    pub(crate) fn mark_closed(&self) -> bool {
        !self.closed.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn remember_call(&self, id: Uuid) {
        self.calls.lock().insert(id);
    }

    pub(crate) fn forget_call(&self, id: &Uuid) {
        self.calls.lock().remove(id);
    }

    pub(crate) fn take_calls(&self) -> HashSet<Uuid> {
        std::mem::take(&mut *self.calls.lock())
    }

    pub(crate) fn name(&self) -> Option<String> {
        self.description.lock().name.clone()
    }

    /// Records the `engine::workers::register` metadata (for logs). Never rejects.
    pub(crate) fn describe(&self, data: Option<&RawValue>) {
        #[derive(serde::Deserialize)]
        struct Meta {
            name: Option<String>,
            runtime: Option<String>,
            version: Option<String>,
        }
        let meta = data.and_then(|raw| serde_json::from_str::<Meta>(raw.get()).ok());
        let Some(meta) = meta else { return };
        tracing::info!(
            worker = %self.id,
            name = meta.name.as_deref(),
            runtime = meta.runtime.as_deref(),
            version = meta.version.as_deref(),
            "worker registered"
        );
        *self.description.lock() = Description {
            name: meta.name,
            runtime: meta.runtime,
        };
    }

    fn reply(&self, invocation_id: &str, function_id: &str, outcome: &crate::Outcome) {
        let (result, error) = match outcome {
            Ok(result) => (result.as_deref(), None),
            Err(error) => (None, Some(error)),
        };
        self.send(
            ServerMessage::InvocationResult {
                invocation_id,
                function_id,
                result,
                error,
            }
            .to_json(),
        );
    }
}

/// A worker connection, owned by its transport. Dropping it disconnects the worker.
pub struct WorkerConnection {
    engine: Engine,
    pub(crate) handle: Arc<WorkerHandle>,
}

impl WorkerConnection {
    pub(crate) fn new(engine: Engine, handle: Arc<WorkerHandle>) -> Self {
        Self { engine, handle }
    }

    pub fn worker_id(&self) -> &str {
        &self.handle.id
    }

    /// Handles one inbound text message. Registrations take effect before this returns;
    /// invocations run concurrently and answer through the outbound queue.
    pub fn handle_message(&self, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let Decoded { message, namespace } = match decode_worker_message(text) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::debug!(worker = %self.handle.id, %error, "ignoring undecodable message");
                return;
            }
        };
        if let Some(namespace) = namespace
            && !self.handle.warned_namespace.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                worker = %self.handle.id,
                "namespaces are not supported; treating '{namespace}' as the single namespace"
            );
        }
        let engine = &self.engine;
        match message {
            WorkerMessage::RegisterFunction(function) => {
                if function.http_invocation {
                    tracing::warn!(worker = %self.handle.id, function = %function.id,
                        "HTTP-invoked functions are not supported; registration ignored");
                } else if engine.is_reserved(&function.id) {
                    tracing::warn!(worker = %self.handle.id, function = %function.id,
                        "a built-in function cannot be registered by a worker; ignored");
                } else {
                    self.register_function(&function.id);
                }
            }
            WorkerMessage::UnregisterFunction { id } => {
                engine.0.registry.unregister_function(&id, &self.handle);
            }
            WorkerMessage::RegisterTrigger(trigger) => {
                let types = engine.0.trigger_types.read();
                if let Err(error) =
                    engine
                        .0
                        .registry
                        .register_trigger(&self.handle, &trigger, &types)
                {
                    tracing::warn!(worker = %self.handle.id, trigger = %trigger.id, %error,
                        "trigger registration refused");
                    self.handle.send(
                        ServerMessage::TriggerRegistrationResult {
                            id: &trigger.id,
                            trigger_type: trigger.trigger_type.as_deref().unwrap_or(""),
                            function_id: trigger.function_id.as_deref().unwrap_or(""),
                            error: &error,
                        }
                        .to_json(),
                    );
                }
            }
            WorkerMessage::UnregisterTrigger { id } => {
                let types = engine.0.trigger_types.read();
                engine.0.registry.unregister_trigger(&id, &types);
            }
            WorkerMessage::InvokeFunction(call) => self.invoke(call),
            WorkerMessage::InvocationResult(result) => {
                engine.0.invocations.complete(
                    &self.handle,
                    &result.invocation_id,
                    result.outcome(),
                );
            }
            WorkerMessage::Reattach {
                previous_worker_id,
                reattach_token,
            } => {
                if *previous_worker_id != *self.handle.id {
                    engine.reattach(&previous_worker_id, reattach_token.as_deref());
                }
            }
            WorkerMessage::Ping => self.handle.send(ServerMessage::Pong.to_json()),
            WorkerMessage::Ignored { kind } => {
                tracing::debug!(worker = %self.handle.id, %kind, "ignoring message type");
            }
        }
    }

    fn register_function(&self, id: &str) {
        match self.engine.0.registry.register_function(&self.handle, id) {
            Registration::Owned | Registration::Closed => {}
            Registration::Waiting { owner } => {
                metrics().registrations_refused.inc();
                tracing::warn!(worker = %self.handle.id, function = id, %owner,
                    "function is owned by another live connection; registration refused, \
                     waiting to take over when that connection closes");
            }
            Registration::Refused { owner } => {
                metrics().registrations_refused.inc();
                tracing::warn!(worker = %self.handle.id, function = id, %owner,
                    "function is owned by another live connection; registration refused");
            }
        }
    }

    fn invoke(&self, call: InvokeFunction<'_>) {
        let mode = call.mode();
        let reply_to = match (mode, call.invocation_id.as_deref()) {
            (CallMode::Enqueue, Some(id)) => {
                let error = ErrorBody::new(
                    ErrorCode::EnqueueError,
                    "enqueue is not supported by this server",
                );
                self.handle.reply(id, &call.function_id, &Err(error));
                return;
            }
            (CallMode::Enqueue, None) => return,
            (CallMode::Sync, Some(id)) => Some((id.to_owned(), call.function_id.to_string())),
            _ => None,
        };
        if let Some((id, function_id)) = &reply_to
            && self.engine.shutting_down()
        {
            self.handle
                .reply(id, function_id, &Err(shutting_down_error()));
            return;
        }
        let options = CallOptions {
            timeout: self.engine.relay_timeout(),
            metadata: call.metadata.map(|m| Arc::from(m.to_owned())),
            trace: call.trace,
        };
        let outcome = self
            .engine
            .route(&self.handle, &call.function_id, call.data, options);
        let caller = self.handle.clone();
        let function_id = call.function_id.into_owned();
        run_eagerly(async move {
            let outcome = outcome.await;
            match reply_to {
                Some((id, function_id)) => caller.reply(&id, &function_id, &outcome),
                None => {
                    if let Err(error) = outcome {
                        tracing::debug!(worker = %caller.id, function = %function_id, %error,
                            "void call failed");
                    }
                }
            }
        });
    }
}

impl Drop for WorkerConnection {
    fn drop(&mut self) {
        self.engine.disconnect(&self.handle);
    }
}

/// Polls `future` once right here and spawns it only if it has to wait. Cheap built-in calls thus
/// complete without a task, in arrival order.
fn run_eagerly(future: impl Future<Output = ()> + Send + 'static) {
    let mut future = Box::pin(future);
    let mut cx = Context::from_waker(Waker::noop());
    if future.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(future);
    }
}
