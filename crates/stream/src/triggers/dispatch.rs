//! Dispatch of `stream` triggers: never in the write path, one call at a time per
//! (trigger, group) in `seq` order, bounded concurrency, bounded queues, timeouts.

use super::Index;
use super::config::StreamFilter;
use crate::calls::{Call, observe};
use iii_stream_domain::{Frame, GroupKey};
use iii_stream_engine::{CallOptions, Engine, Trigger};
use iii_stream_metrics::metrics;
use iii_stream_protocol::RawValue;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

/// One `stream` binding with its per-group queues.
pub(crate) struct StreamBinding {
    pub(crate) trigger: Trigger,
    pub(crate) filter: StreamFilter,
    queues: Mutex<HashMap<GroupKey, VecDeque<Arc<Frame>>>>,
    pending: AtomicUsize,
    dropped: AtomicU64,
    /// Cleared when the binding is replaced or removed: queued frames are then dropped.
    alive: AtomicBool,
}

impl std::fmt::Debug for StreamBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBinding")
            .field("trigger", &self.trigger.id)
            .finish_non_exhaustive()
    }
}

impl StreamBinding {
    pub(crate) fn new(trigger: Trigger, filter: StreamFilter) -> Self {
        Self {
            trigger,
            filter,
            queues: Mutex::default(),
            pending: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            alive: AtomicBool::new(true),
        }
    }

    pub(crate) fn retire(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DispatchLimits {
    pub(crate) trigger_timeout: Duration,
    pub(crate) condition_timeout: Duration,
    pub(crate) max_pending_per_trigger: usize,
}

pub(crate) struct Dispatcher {
    engine: Engine,
    index: Arc<Index>,
    permits: Arc<Semaphore>,
    runtime: Handle,
    limits: DispatchLimits,
}

impl Dispatcher {
    /// Must be created inside the Tokio runtime that will run the handler calls.
    pub(crate) fn new(
        engine: Engine,
        index: Arc<Index>,
        max_concurrency: usize,
        limits: DispatchLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            index,
            permits: Arc::new(Semaphore::new(max_concurrency)),
            runtime: Handle::current(),
            limits,
        })
    }

    /// Queues `frame` for every matching binding. Never waits; callable from any thread.
    pub(crate) fn dispatch(self: &Arc<Self>, frame: &Arc<Frame>) {
        let Some(bindings) = self.index.stream_bindings(&frame.group.stream) else {
            return;
        };
        for binding in bindings
            .iter()
            .filter(|b| b.filter.matches(&frame.group.group, frame.item.as_deref()))
        {
            self.enqueue(binding, frame);
        }
    }

    fn enqueue(self: &Arc<Self>, binding: &Arc<StreamBinding>, frame: &Arc<Frame>) {
        if binding.pending.load(Ordering::Relaxed) >= self.limits.max_pending_per_trigger {
            metrics().server_call("trigger", "dropped");
            // Logged at the 1st, 2nd, 4th, 8th… drop: an overloaded handler must not also flood
            // the logs (the metric counts every drop).
            let dropped = binding.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(trigger = %binding.trigger.id, function = %binding.trigger.function_id,
                    seq = frame.seq(), dropped, "trigger queue full; frames dropped");
            }
            return;
        }
        binding.pending.fetch_add(1, Ordering::Relaxed);
        let mut queues = binding.queues.lock();
        let start = match queues.get_mut(&frame.group) {
            Some(queue) => {
                queue.push_back(frame.clone());
                false
            }
            None => {
                queues.insert(frame.group.clone(), VecDeque::from([frame.clone()]));
                true
            }
        };
        drop(queues);
        if start {
            let this = self.clone();
            let binding = binding.clone();
            let group = frame.group.clone();
            self.runtime
                .spawn(async move { this.drain(binding, group).await });
        }
    }

    /// Delivers one group's frames to one binding, one call at a time. The queue's presence in
    /// the map means a drain task runs; it removes the queue when it runs dry.
    async fn drain(&self, binding: Arc<StreamBinding>, group: GroupKey) {
        loop {
            let frame = {
                let mut queues = binding.queues.lock();
                let Some(queue) = queues.get_mut(&group) else {
                    return;
                };
                match queue.pop_front() {
                    Some(frame) => frame,
                    None => {
                        queues.remove(&group);
                        return;
                    }
                }
            };
            binding.pending.fetch_sub(1, Ordering::Relaxed);
            if !binding.is_alive() {
                continue;
            }
            let Ok(_permit) = self.permits.acquire().await else {
                return;
            };
            self.deliver(&binding, &frame).await;
        }
    }

    async fn deliver(&self, binding: &StreamBinding, frame: &Frame) {
        let payload: &RawValue = &frame.body;
        if let Some(condition) = &binding.filter.condition {
            let outcome = self
                .engine
                .invoke(
                    condition,
                    payload,
                    CallOptions::with_timeout(self.limits.condition_timeout),
                )
                .await;
            // Exactly `false` skips the handler; any other result calls it; a failure skips it.
            match observe(Call::Condition, condition, outcome) {
                Ok(Some(result)) if result.get() == "false" => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
        let options = CallOptions {
            timeout: self.limits.trigger_timeout,
            metadata: binding.trigger.metadata.clone(),
            trace: Default::default(),
        };
        let outcome = self
            .engine
            .invoke(&binding.trigger.function_id, payload, options)
            .await;
        let _ = observe(Call::Trigger, &binding.trigger.function_id, outcome);
    }
}
