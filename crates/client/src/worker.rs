//! A worker that serves functions with a closure and records every call the server makes into
//! it: auth functions, `stream:join` / `stream:leave` handlers, trigger handlers, providers.

use crate::engine::EngineClient;
use serde_json::Value;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How a function answers one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `"result": value`.
    Value(Value),
    /// An `invocationresult` without `result` ("no result").
    Nothing,
    /// An error body with this code and message.
    Error(String, String),
    /// No answer at all (the server's timeout decides).
    Never,
    /// The inner answer, after a delay.
    After(Duration, Box<Answer>),
}

impl Answer {
    pub fn error(code: &str, message: &str) -> Self {
        Self::Error(code.to_owned(), message.to_owned())
    }

    pub fn after(delay: Duration, answer: Answer) -> Self {
        Self::After(delay, Box::new(answer))
    }

    async fn deliver(self, client: &EngineClient, invocation_id: &str, function_id: &str) {
        let mut answer = self;
        while let Self::After(delay, inner) = answer {
            tokio::time::sleep(delay).await;
            answer = *inner;
        }
        match answer {
            Self::Value(value) => client.reply(invocation_id, function_id, Some(value)),
            Self::Nothing => client.reply(invocation_id, function_id, None),
            Self::Error(code, message) => {
                client.reply_error(invocation_id, function_id, &code, &message)
            }
            Self::Never | Self::After(..) => {}
        }
    }
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("registration round trip failed: {0}")]
    Register(#[from] crate::CallError),
}

/// One call the server made into the worker.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function_id: String,
    pub data: Value,
    /// The trigger's metadata, `Null` when absent.
    pub metadata: Value,
    pub received: Instant,
}

#[derive(Default)]
struct Log {
    calls: Mutex<Vec<Invocation>>,
    /// Messages other than calls (e.g. `triggerregistrationresult` refusals).
    other: Mutex<Vec<Value>>,
    changed: Notify,
}

/// An engine-port connection that answers calls with a closure. Derefs to its
/// [`EngineClient`], so it can call functions too.
pub struct Worker {
    client: EngineClient,
    log: Arc<Log>,
}

impl Worker {
    /// Connects; every call into this connection is recorded and answered with `handler`.
    pub async fn connect(
        url: &str,
        handler: impl Fn(&Invocation) -> Answer + Send + Sync + 'static,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (client, mut incoming) = EngineClient::connect_routed(url).await?;
        let log = Arc::new(Log::default());
        let (c, l) = (client.clone(), log.clone());
        tokio::spawn(async move {
            while let Some(message) = incoming.recv().await {
                let (Some("invokefunction"), Some(id), Some(function_id)) = (
                    message["type"].as_str(),
                    message["invocation_id"].as_str(),
                    message["function_id"].as_str(),
                ) else {
                    push(&l.other, message);
                    l.changed.notify_waiters();
                    continue;
                };
                let call = Invocation {
                    function_id: function_id.to_owned(),
                    data: message["data"].clone(),
                    metadata: message.get("metadata").cloned().unwrap_or_default(),
                    received: Instant::now(),
                };
                let answer = handler(&call);
                push(&l.calls, call);
                l.changed.notify_waiters();
                let (client, id, function_id) = (c.clone(), id.to_owned(), function_id.to_owned());
                tokio::spawn(async move { answer.deliver(&client, &id, &function_id).await });
            }
        });
        Ok(Self { client, log })
    }

    /// Connects, registers `functions` and `triggers` (see [`Worker::serve`]) and answers every
    /// call with `handler`.
    pub async fn start(
        url: &str,
        handler: impl Fn(&Invocation) -> Answer + Send + Sync + 'static,
        functions: &[&str],
        triggers: &[(&str, &str, &str, Value)],
    ) -> Result<Self, WorkerError> {
        let worker = Self::connect(url, handler).await?;
        worker.serve(functions, triggers).await?;
        Ok(worker)
    }

    /// A worker that only records: it binds each `(trigger type, function id, config)` to a
    /// function of its own that answers nothing.
    pub async fn recorder(
        url: &str,
        triggers: &[(&str, &str, Value)],
    ) -> Result<Self, WorkerError> {
        let functions: Vec<&str> = triggers.iter().map(|(_, function, _)| *function).collect();
        let ids: Vec<String> = (0..triggers.len())
            .map(|n| format!("recorder-{n}"))
            .collect();
        let bindings: Vec<_> = ids
            .iter()
            .zip(triggers)
            .map(|(id, (kind, function, config))| (id.as_str(), *kind, *function, config.clone()))
            .collect();
        Self::start(url, |_| Answer::Nothing, &functions, &bindings).await
    }

    /// Registers `functions`, then `(trigger id, trigger type, function id, config)` bindings,
    /// and waits until the server has applied them.
    pub async fn serve(
        &self,
        functions: &[&str],
        triggers: &[(&str, &str, &str, Value)],
    ) -> Result<(), crate::CallError> {
        for function in functions {
            self.register_function(function);
        }
        for (id, kind, function, config) in triggers {
            self.register_trigger(id, kind, function, config.clone());
        }
        self.barrier().await
    }

    /// The calls of `function_id` so far, in arrival order.
    pub fn calls(&self, function_id: &str) -> Vec<Invocation> {
        self.log
            .calls
            .lock()
            .map(|calls| {
                calls
                    .iter()
                    .filter(|c| c.function_id == function_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `function_id` was called at least `count` times, or `within` passed; returns
    /// its calls either way.
    pub async fn wait_calls(
        &self,
        function_id: &str,
        count: usize,
        within: Duration,
    ) -> Vec<Invocation> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.log.changed.notified();
            let calls = self.calls(function_id);
            if calls.len() >= count {
                return calls;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.calls(function_id);
            }
        }
    }

    /// Messages that were not calls (e.g. refusals of trigger registrations).
    pub fn other_messages(&self) -> Vec<Value> {
        self.log.other.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Deref for Worker {
    type Target = EngineClient;

    fn deref(&self) -> &EngineClient {
        &self.client
    }
}

fn push<T>(list: &Mutex<Vec<T>>, item: T) {
    if let Ok(mut list) = list.lock() {
        list.push(item);
    }
}
