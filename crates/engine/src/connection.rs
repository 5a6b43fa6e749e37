//! One worker connection: its identity, its outbound queue, and the handling of each message it
//! sends, in arrival order.

use crate::invocation::CallOptions;
use crate::outbox::{Outbox, Queued};
use crate::rate::TokenBucket;
use crate::registry::Registration;
use crate::{Engine, shutting_down_error};
use iii_stream_metrics::{Limit, metrics};
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
use tokio::sync::Semaphore;
use uuid::Uuid;

/// What the transport must do next on a worker socket.
#[derive(Debug)]
pub enum Outbound {
    /// Send one text message.
    Text(String),
    /// Close the socket (shutdown, reattach elsewhere).
    Close,
}

impl Queued for Outbound {
    fn byte_len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Close => 0,
        }
    }
}

/// The outbound queue of one worker connection.
pub type WorkerOutbox = Outbox<Outbound>;

/// Bounds of one worker connection (docs/limits.md).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Calls running at once; [`WorkerConnection::handle_message`] waits for one to end beyond.
    pub max_in_flight_calls: usize,
    pub outbound_queue_frames: usize,
    pub outbound_queue_bytes: usize,
    /// Calls a second; `None` for no limit.
    pub max_calls_per_second: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_in_flight_calls: 1024,
            outbound_queue_frames: 16_384,
            outbound_queue_bytes: 256 << 20,
            max_calls_per_second: None,
        }
    }
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
    outbox: Arc<WorkerOutbox>,
    description: Mutex<Description>,
    closed: AtomicBool,
    warned_namespace: AtomicBool,
    /// Invocations sent to this connection and not answered yet, so its clean-up fails exactly
    /// those instead of scanning every pending call.
    calls: Mutex<HashSet<Uuid>>,
}

impl WorkerHandle {
    pub(crate) fn new(limits: &ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            id: Uuid::new_v4().to_string().into(),
            token: Uuid::new_v4().to_string(),
            outbox: Arc::new(Outbox::new(
                limits.outbound_queue_frames,
                limits.outbound_queue_bytes,
            )),
            description: Mutex::default(),
            closed: AtomicBool::new(false),
            warned_namespace: AtomicBool::new(false),
            calls: Mutex::default(),
        })
    }

    pub(crate) fn outbox(&self) -> &Arc<WorkerOutbox> {
        &self.outbox
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
        // On overflow the transport closes the socket (and says so); the clean-up then fails
        // what is pending on it.
        let _ = self.outbox.push(Outbound::Text(text));
    }

    pub(crate) fn close_transport(&self) {
        let _ = self.outbox.push(Outbound::Close);
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
    /// One permit per call allowed to run at once.
    calls: Arc<Semaphore>,
    rate: Option<Mutex<TokenBucket>>,
}

impl WorkerConnection {
    pub(crate) fn new(
        engine: Engine,
        handle: Arc<WorkerHandle>,
        limits: &ConnectionLimits,
    ) -> Self {
        Self {
            engine,
            handle,
            calls: Arc::new(Semaphore::new(limits.max_in_flight_calls.max(1))),
            rate: limits
                .max_calls_per_second
                .map(|rate| Mutex::new(TokenBucket::new(rate, rate, std::time::Instant::now()))),
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.handle.id
    }

    /// Handles one inbound text message. Registrations take effect before this returns;
    /// invocations run concurrently and answer through the outbound queue. While the connection
    /// has `max_in_flight_calls` calls running, a call waits here for one of them to end, so the
    /// transport stops reading the socket instead of buffering.
    pub async fn handle_message(&self, text: &str) {
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
            WorkerMessage::InvokeFunction(call) => self.invoke(call).await,
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

    async fn invoke(&self, call: InvokeFunction<'_>) {
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
        if let Some(rate) = &self.rate
            && !rate.lock().take(std::time::Instant::now())
        {
            metrics().limit_refused(Limit::CallsPerSecond);
            if let Some((id, function_id)) = &reply_to {
                let error = ErrorBody::new(
                    ErrorCode::RateLimited,
                    "Too many calls: this connection exceeds max_calls_per_second",
                );
                self.handle.reply(id, function_id, &Err(error));
            }
            return;
        }
        let permit = match self.calls.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics().limit_refused(Limit::InFlightCalls);
                match self.calls.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                }
            }
        };
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
            let _permit = permit;
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
