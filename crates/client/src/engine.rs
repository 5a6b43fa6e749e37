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

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

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
        let (socket, _) = connect_async(url).await?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::default();
        let unsolicited: Arc<Mutex<Vec<Value>>> = Arc::default();
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let (p, u) = (pending.clone(), unsolicited.clone());
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
                    .and_then(|id| p.lock().ok()?.remove(id));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(value);
                    }
                    None => u.lock().map(|mut u| u.push(value)).unwrap_or_default(),
                }
            }
            // Dropping the senders fails every pending call with `Closed`.
            if let Ok(mut p) = p.lock() {
                p.clear();
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

    /// Calls a function and returns the whole `invocationresult` message.
    pub async fn call_raw(&self, function_id: &str, data: Value) -> Result<Value, CallError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(id.clone(), tx);
        }
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

    /// Takes the unsolicited messages received so far.
    pub fn take_unsolicited(&self) -> Vec<Value> {
        self.unsolicited
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default()
    }
}
