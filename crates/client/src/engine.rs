//! A worker-protocol client: pipelined sync calls correlated by `invocation_id`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error body.
    #[error("{code}: {message}")]
    Remote { code: String, message: String },
    /// The connection closed before the answer arrived.
    #[error("connection closed")]
    Closed,
}

/// Calls awaiting their answer; `None` once the connection ended, so later calls fail at once
/// instead of waiting for an answer that cannot come.
type Pending = Arc<Mutex<Option<HashMap<String, oneshot::Sender<Value>>>>>;

/// Where messages that answer none of our calls go.
enum Unsolicited {
    /// Kept for [`EngineClient::take_unsolicited`].
    Log(Arc<Mutex<Vec<Value>>>),
    /// Handed to whoever serves calls into this client (see [`crate::Worker`]).
    Channel(mpsc::UnboundedSender<Value>),
}

impl Unsolicited {
    fn push(&self, value: Value) {
        match self {
            Self::Log(log) => log.lock().map(|mut l| l.push(value)).unwrap_or_default(),
            Self::Channel(tx) => {
                let _ = tx.send(value);
            }
        }
    }
}

/// One engine-port connection. Cheap to clone; calls may be issued concurrently.
#[derive(Clone)]
pub struct EngineClient {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    /// Every message that was not the answer to one of our calls (calls into us, refusals).
    pub unsolicited: Arc<Mutex<Vec<Value>>>,
}

impl EngineClient {
    pub async fn connect(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let unsolicited: Arc<Mutex<Vec<Value>>> = Arc::default();
        Self::open(url, unsolicited.clone(), Unsolicited::Log(unsolicited)).await
    }

    /// Connects and hands every message that answers none of our calls (calls into us,
    /// refusals) to the returned receiver instead of [`Self::unsolicited`].
    pub async fn connect_routed(
        url: &str,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Value>), tokio_tungstenite::tungstenite::Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Self::open(url, Arc::default(), Unsolicited::Channel(tx)).await?;
        Ok((client, rx))
    }

    async fn open(
        url: &str,
        unsolicited: Arc<Mutex<Vec<Value>>>,
        route: Unsolicited,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (socket, _) = connect_async(url).await?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let p = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let waiter = (value["type"] == "invocationresult")
                    .then(|| value["invocation_id"].as_str())
                    .flatten()
                    .and_then(|id| p.lock().ok()?.as_mut()?.remove(id));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(value);
                    }
                    None => route.push(value),
                }
            }
            // Dropping the senders fails every pending call with `Closed`.
            if let Ok(mut p) = p.lock() {
                *p = None;
            }
        });
        Ok(Self {
            out,
            pending,
            unsolicited,
        })
    }

    /// Sends a raw text message as is.
    pub fn send_raw(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::Text(text.into().into()));
    }

    /// Starts the closing handshake: the server ends the connection (its registrations go).
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }

    /// Sends a raw binary message as is.
    pub fn send_binary(&self, bytes: Vec<u8>) {
        let _ = self.out.send(Message::Binary(bytes.into()));
    }

    /// Calls a function synchronously; `Ok(None)` is "no result".
    pub async fn call(&self, function_id: &str, data: Value) -> Result<Option<Value>, CallError> {
        let reply = self.call_raw(function_id, data).await?;
        if let Some(error) = reply.get("error") {
            return Err(CallError::Remote {
                code: error["code"].as_str().unwrap_or_default().to_owned(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(reply.get("result").cloned())
    }

    /// `stream::set`; returns its result.
    pub async fn set(
        &self,
        stream: &str,
        group: &str,
        item: &str,
        data: Value,
    ) -> Result<Value, CallError> {
        let input =
            json!({"stream_name": stream, "group_id": group, "item_id": item, "data": data});
        Ok(self.call("stream::set", input).await?.unwrap_or_default())
    }

    /// `stream::get`; `None` when the item is missing ("no result").
    pub async fn get(
        &self,
        stream: &str,
        group: &str,
        item: &str,
    ) -> Result<Option<Value>, CallError> {
        let input = json!({"stream_name": stream, "group_id": group, "item_id": item});
        self.call("stream::get", input).await
    }

    /// `stream::delete`; returns its result.
    pub async fn delete(&self, stream: &str, group: &str, item: &str) -> Result<Value, CallError> {
        let input = json!({"stream_name": stream, "group_id": group, "item_id": item});
        Ok(self
            .call("stream::delete", input)
            .await?
            .unwrap_or_default())
    }

    /// `stream::update` with `ops`; returns its result.
    pub async fn update(
        &self,
        stream: &str,
        group: &str,
        item: &str,
        ops: Value,
    ) -> Result<Value, CallError> {
        let input = json!({"stream_name": stream, "group_id": group, "item_id": item, "ops": ops});
        Ok(self
            .call("stream::update", input)
            .await?
            .unwrap_or_default())
    }

    /// `stream::send` of a custom event, to one item id or (`None`) to the whole group.
    pub async fn send_event(
        &self,
        stream: &str,
        group: &str,
        id: Option<&str>,
        kind: &str,
        data: Value,
    ) -> Result<(), CallError> {
        let mut input =
            json!({"stream_name": stream, "group_id": group, "type": kind, "data": data});
        if let Some(id) = id {
            input["id"] = json!(id);
        }
        self.call("stream::send", input).await.map(drop)
    }

    /// `stream::list`: the group's values.
    pub async fn list(&self, stream: &str, group: &str) -> Result<Vec<Value>, CallError> {
        let input = json!({"stream_name": stream, "group_id": group});
        let result = self.call("stream::list", input).await?;
        Ok(match result {
            Some(Value::Array(values)) => values,
            _ => Vec::new(),
        })
    }

    /// Calls a function and returns the whole `invocationresult` message.
    pub async fn call_raw(&self, function_id: &str, data: Value) -> Result<Value, CallError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        match self
            .pending
            .lock()
            .ok()
            .as_deref_mut()
            .and_then(Option::as_mut)
        {
            Some(pending) => pending.insert(id.clone(), tx),
            None => return Err(CallError::Closed),
        };
        let message = json!({"type": "invokefunction", "invocation_id": id, "function_id": function_id, "data": data});
        self.send_raw(message.to_string());
        rx.await.map_err(|_| CallError::Closed)
    }

    /// Answers a call the server made into this client.
    pub fn reply(&self, invocation_id: &str, function_id: &str, result: Option<Value>) {
        let mut message = json!({"type": "invocationresult", "invocation_id": invocation_id, "function_id": function_id});
        if let Some(result) = result {
            message["result"] = result;
        }
        self.send_raw(message.to_string());
    }

    /// Answers a call the server made into this client with an error body.
    pub fn reply_error(&self, invocation_id: &str, function_id: &str, code: &str, message: &str) {
        let message = json!({"type": "invocationresult", "invocation_id": invocation_id, "function_id": function_id,
            "error": {"code": code, "message": message}});
        self.send_raw(message.to_string());
    }

    /// Registers a function served by this connection (no acknowledgement exists).
    pub fn register_function(&self, id: &str) {
        self.send_raw(json!({"type": "registerfunction", "id": id}).to_string());
    }

    /// Registers a trigger (no acknowledgement on success; a refusal arrives unsolicited).
    pub fn register_trigger(&self, id: &str, trigger_type: &str, function_id: &str, config: Value) {
        let message = json!({"type": "registertrigger", "id": id, "trigger_type": trigger_type,
            "function_id": function_id, "config": config});
        self.send_raw(message.to_string());
    }

    /// Resolves once the server has processed everything sent before it on this connection
    /// (registrations are applied in order, and never acknowledged).
    pub async fn barrier(&self) -> Result<(), CallError> {
        self.call("stream::list_all", Value::Null).await.map(drop)
    }

    /// Takes the unsolicited messages received so far.
    pub fn take_unsolicited(&self) -> Vec<Value> {
        self.unsolicited
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default()
    }
}
