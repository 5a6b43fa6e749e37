//! The iii worker-protocol engine.
//!
//! Workers connect, register functions and triggers, and call functions; the engine routes each
//! call to a built-in function or to the worker that registered it, correlates results, enforces
//! timeouts and cleans up after disconnects. It knows nothing about streams: services plug in
//! through [`Engine::register_builtin`] and [`Engine::register_trigger_type`], like any other
//! service would, and call into workers with [`Engine::invoke`].
//!
//! The engine is transport-agnostic: a listener hands each received text message to a
//! [`WorkerConnection`] and writes out what its [`Outbound`] receiver yields.

mod builtin;
mod connection;
mod invocation;
pub mod outbox;
pub mod rate;
mod registry;
mod trigger;

pub use builtin::{BoxOutcome, BuiltinCall, BuiltinFn};
pub use connection::{ConnectionLimits, Outbound, WorkerConnection, WorkerOutbox};
pub use invocation::CallOptions;
pub use trigger::{Trigger, TriggerType};

use connection::WorkerHandle;
use iii_stream_metrics::metrics;
use iii_stream_protocol::engine::ServerMessage;
use iii_stream_protocol::{ErrorBody, ErrorCode, RawValue};
use invocation::Invocations;
use parking_lot::RwLock;
use registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What a function call produced: a value, "no result" (`Ok(None)`), or an error.
pub type Outcome = Result<Option<Box<RawValue>>, ErrorBody>;

/// The id the SDKs call on every (re)connect to describe themselves.
pub const WORKERS_REGISTER: &str = "engine::workers::register";

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Server-side timeout of calls relayed from one worker to another.
    pub invocation_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            invocation_timeout: Duration::from_secs(600),
        }
    }
}

/// The engine: cheap to clone, shared by every listener and service.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

struct Inner {
    config: EngineConfig,
    builtins: RwLock<HashMap<String, BuiltinFn>>,
    trigger_types: RwLock<HashMap<String, Arc<dyn TriggerType>>>,
    registry: Registry,
    invocations: Invocations,
    workers: RwLock<HashMap<Arc<str>, Arc<WorkerHandle>>>,
    shutting_down: AtomicBool,
    /// Clean-ups of closed connections still running in the background.
    releasing: AtomicUsize,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Self(Arc::new(Inner {
            config,
            builtins: RwLock::default(),
            trigger_types: RwLock::default(),
            registry: Registry::default(),
            invocations: Invocations::default(),
            workers: RwLock::default(),
            shutting_down: AtomicBool::new(false),
            releasing: AtomicUsize::new(0),
        }))
    }

    /// Adds a built-in function. Workers cannot take its id over.
    pub fn register_builtin(&self, id: &str, function: BuiltinFn) {
        self.0.builtins.write().insert(id.to_owned(), function);
    }

    /// Adds a trigger type that workers may bind their functions to.
    pub fn register_trigger_type(&self, name: &str, handler: Arc<dyn TriggerType>) {
        self.0
            .trigger_types
            .write()
            .insert(name.to_owned(), handler);
    }

    fn is_reserved(&self, id: &str) -> bool {
        id.starts_with("engine::") || self.0.builtins.read().contains_key(id)
    }

    /// Whether a worker currently provides `id` (custom stream providers are looked up this way).
    pub fn has_worker_function(&self, id: &str) -> bool {
        self.0.registry.function_owner(id).is_some()
    }

    /// A new worker connection. `workerregistered` is already queued on the returned outbox,
    /// which the transport drains.
    pub fn connect(&self, limits: &ConnectionLimits) -> (WorkerConnection, Arc<WorkerOutbox>) {
        let handle = WorkerHandle::new(limits);
        handle.send(
            ServerMessage::WorkerRegistered {
                worker_id: &handle.id,
                reattach_token: &handle.token,
            }
            .to_json(),
        );
        self.0
            .workers
            .write()
            .insert(handle.id.clone(), handle.clone());
        metrics().worker_connections.inc();
        tracing::debug!(worker = %handle.id, "worker connected");
        let outbox = handle.outbox().clone();
        (WorkerConnection::new(self.clone(), handle, limits), outbox)
    }

    /// Ends a worker connection: fails what is pending on it, releases what it still owns, and
    /// asks its transport to close. Idempotent.
    fn disconnect(&self, handle: &Arc<WorkerHandle>) {
        if !handle.mark_closed() {
            return;
        }
        {
            let mut workers = self.0.workers.write();
            if workers
                .get(&handle.id)
                .is_some_and(|w| Arc::ptr_eq(w, handle))
            {
                workers.remove(&handle.id);
            }
        }
        self.0.invocations.fail_worker(handle);
        let owned = self.0.registry.take_owned(&handle.id);
        handle.close_transport();
        metrics().worker_connections.dec();
        tracing::debug!(worker = %handle.id, name = handle.name().as_deref(),
            registrations = owned.len(), "worker disconnected");
        self.release(handle.id.clone(), owned);
    }

    /// Releases a closed connection's registrations. Lookups already skip a closed owner, so
    /// this is bookkeeping: a worker with tens of thousands of triggers is released in chunks,
    /// off the disconnecting task, yielding between chunks, so no lock is held for long and no
    /// runtime thread is taken for long (docs/worker-protocol.md, "Disconnect").
    fn release(&self, worker: Arc<str>, mut owned: registry::Owned) {
        const CHUNK: usize = 256;
        if owned.len() <= CHUNK || tokio::runtime::Handle::try_current().is_err() {
            let types = self.0.trigger_types.read();
            self.0.registry.release(&worker, owned, &types);
            return;
        }
        let engine = self.clone();
        self.0.releasing.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let types = engine.0.trigger_types.read().clone();
            while !owned.is_empty() {
                let chunk = owned.split(CHUNK);
                engine.0.registry.release(&worker, chunk, &types);
                tokio::task::yield_now().await;
            }
            engine.0.releasing.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// `reattach`: closes the previous connection if the token proves ownership.
    fn reattach(&self, previous: &str, token: Option<&str>) {
        let old = self.0.workers.read().get(previous).cloned();
        if let Some(old) = old
            && token == Some(old.token.as_str())
        {
            tracing::info!(worker = %old.id, "worker reattached; closing its previous connection");
            self.disconnect(&old);
        }
    }

    /// Calls a function on behalf of the server (triggers, auth, join/leave handlers, providers).
    pub async fn invoke(
        &self,
        function_id: &str,
        data: &RawValue,
        options: CallOptions,
    ) -> Outcome {
        let builtin = self.0.builtins.read().get(function_id).cloned();
        if let Some(builtin) = builtin {
            let call = BuiltinCall {
                data: Some(data.to_owned()),
                trace: options.trace.clone(),
            };
            return match tokio::time::timeout(options.timeout, builtin(call)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(invocation::timed_out(options.timeout)),
            };
        }
        match self.0.registry.function_owner(function_id) {
            Some(owner) => {
                self.0
                    .invocations
                    .call_worker(&owner, function_id, data, &options)
                    .await
            }
            None => Err(ErrorBody::function_not_found(function_id)),
        }
    }

    /// Routes a worker's call: built-in, relayed to another worker, or not found.
    fn route(
        &self,
        caller: &Arc<WorkerHandle>,
        function_id: &str,
        data: Option<&RawValue>,
        options: CallOptions,
    ) -> BoxOutcome {
        if function_id == WORKERS_REGISTER {
            caller.describe(data);
            return Box::pin(std::future::ready(Ok(Some(builtin::success()))));
        }
        let builtin = self.0.builtins.read().get(function_id).cloned();
        if let Some(builtin) = builtin {
            return builtin(BuiltinCall {
                data: data.map(ToOwned::to_owned),
                trace: options.trace,
            });
        }
        let Some(owner) = self.0.registry.function_owner(function_id) else {
            return Box::pin(std::future::ready(Err(ErrorBody::function_not_found(
                function_id,
            ))));
        };
        let engine = self.clone();
        let function_id = function_id.to_owned();
        let data = data.map_or_else(|| RawValue::NULL.to_owned(), ToOwned::to_owned);
        Box::pin(async move {
            engine
                .0
                .invocations
                .call_worker(&owner, &function_id, &data, &options)
                .await
        })
    }

    fn relay_timeout(&self) -> Duration {
        self.0.config.invocation_timeout
    }

    /// From now on, new sync calls are answered `server_shutting_down`.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
    }

    fn shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::SeqCst)
    }

    /// Asks every worker connection to close (graceful shutdown).
    pub fn close_all(&self) {
        let workers: Vec<_> = self.0.workers.read().values().cloned().collect();
        for worker in workers {
            worker.close_transport();
        }
    }

    /// Open worker connections.
    pub fn worker_count(&self) -> usize {
        self.0.workers.read().len()
    }

    /// Calls the server made that still wait for a worker's answer.
    pub fn pending_invocations(&self) -> usize {
        self.0.invocations.len()
    }

    /// Registered function ids and trigger bindings, counting those of closed connections whose
    /// release is still running.
    pub fn registrations(&self) -> (usize, usize) {
        self.0.registry.sizes()
    }

    /// Whether closed connections are still being released in the background.
    pub fn releasing(&self) -> bool {
        self.0.releasing.load(Ordering::SeqCst) > 0
    }
}

fn shutting_down_error() -> ErrorBody {
    ErrorBody::new(ErrorCode::ServerShuttingDown, "Server is shutting down")
}

#[cfg(test)]
mod tests;
