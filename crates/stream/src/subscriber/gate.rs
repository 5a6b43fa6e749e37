//! `stream:join` handlers as a gate on subscriptions, and `stream:leave` notifications.

use crate::StreamService;
use crate::calls::{Call, observe};
use crate::triggers::{JOIN, LEAVE, LifecycleBinding};
use futures_util::future::join_all;
use iii_stream_engine::CallOptions;
use iii_stream_protocol::RawValue;
use iii_stream_protocol::frame::RejectReason;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The payload of join and leave handlers (stream.md §7.2): every key always present.
#[derive(Debug, Serialize)]
pub(crate) struct Lifecycle<'a> {
    pub(crate) subscription_id: &'a str,
    pub(crate) stream_name: &'a str,
    pub(crate) group_id: &'a str,
    pub(crate) id: Option<&'a str>,
    pub(crate) context: &'a RawValue,
}

enum Verdict {
    Admit,
    Reject(RejectReason),
}

impl StreamService {
    /// Runs every matching join handler (concurrently) and decides the join.
    pub(crate) async fn gate(&self, payload: &Lifecycle<'_>) -> Result<(), RejectReason> {
        let bindings = self
            .index
            .lifecycle(JOIN, payload.stream_name, payload.group_id);
        if bindings.is_empty() {
            return Ok(());
        }
        let Ok(payload) = serde_json::value::to_raw_value(payload) else {
            return Ok(());
        };
        let verdicts = join_all(bindings.iter().map(|b| self.ask(b, &payload))).await;
        let mut failed = false;
        for verdict in verdicts {
            match verdict {
                Verdict::Reject(RejectReason::Rejected) => return Err(RejectReason::Rejected),
                Verdict::Reject(_) => failed = true,
                Verdict::Admit => {}
            }
        }
        if failed {
            Err(RejectReason::JoinFailed)
        } else {
            Ok(())
        }
    }

    async fn ask(&self, binding: &LifecycleBinding, payload: &RawValue) -> Verdict {
        let fail = || {
            if self.config.fail_closed {
                Verdict::Reject(RejectReason::JoinFailed)
            } else {
                Verdict::Admit
            }
        };
        match self.condition(binding, payload, Call::Condition).await {
            Some(true) => {}
            Some(false) => return Verdict::Admit,
            None => return fail(),
        }
        let outcome = self
            .engine
            .invoke(
                &binding.trigger.function_id,
                payload,
                options(self.timeouts.join, binding),
            )
            .await;
        match observe(Call::Join, &binding.trigger.function_id, outcome) {
            Ok(Some(result)) => match unauthorized(&result) {
                Some(true) => Verdict::Reject(RejectReason::Rejected),
                Some(false) | None => Verdict::Admit,
            },
            Ok(None) => Verdict::Admit,
            Err(_) => fail(),
        }
    }

    /// `Some(false)` when the binding's condition function said exactly `false`, `None` when it
    /// failed, `Some(true)` otherwise (including no condition at all).
    async fn condition(
        &self,
        binding: &LifecycleBinding,
        payload: &RawValue,
        kind: Call,
    ) -> Option<bool> {
        let Some(condition) = &binding.filter.condition else {
            return Some(true);
        };
        let outcome = self
            .engine
            .invoke(
                condition,
                payload,
                CallOptions::with_timeout(self.timeouts.condition),
            )
            .await;
        match observe(kind, condition, outcome) {
            Ok(Some(result)) => Some(result.get() != "false"),
            Ok(None) => Some(true),
            Err(_) => None,
        }
    }

    /// Calls every matching leave handler, in the background.
    pub(crate) fn fire_leave(self: &Arc<Self>, payload: &Lifecycle<'_>) {
        let bindings = self
            .index
            .lifecycle(LEAVE, payload.stream_name, payload.group_id);
        if bindings.is_empty() {
            return;
        }
        let Ok(payload) = serde_json::value::to_raw_value(payload) else {
            return;
        };
        let service = self.clone();
        // Counted before the task exists, so shutdown cannot miss a leave not yet started.
        let busy = crate::calls::Busy::start(&service.leaving);
        tokio::spawn(async move {
            let _busy = busy;
            join_all(bindings.iter().map(|binding| async {
                if service.condition(binding, &payload, Call::Condition).await != Some(true) {
                    return;
                }
                let outcome = service
                    .engine
                    .invoke(
                        &binding.trigger.function_id,
                        &payload,
                        options(service.timeouts.leave, binding),
                    )
                    .await;
                let _ = observe(Call::Leave, &binding.trigger.function_id, outcome);
            }))
            .await;
        });
    }
}

fn options(timeout: Duration, binding: &LifecycleBinding) -> CallOptions {
    CallOptions {
        timeout,
        metadata: binding.trigger.metadata.clone(),
        trace: Default::default(),
    }
}

/// The `unauthorized` flag of a join handler's result: only the JSON boolean counts.
fn unauthorized(result: &RawValue) -> Option<bool> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        unauthorized: serde_json::Value,
    }
    if !result.get().starts_with('{') {
        return None;
    }
    let answer: Answer = serde_json::from_str(result.get()).ok()?;
    match answer.unauthorized {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::Null => None,
        other => {
            tracing::warn!(value = %other, "join handler returned a non-boolean 'unauthorized'; treated as false");
            Some(false)
        }
    }
}
