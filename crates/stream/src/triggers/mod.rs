//! The three trigger types of the stream service and their index: `stream` (dispatched per
//! event), `stream:join` (a gate on subscriptions) and `stream:leave`.

mod config;
mod dispatch;

pub(crate) use config::LifecycleFilter;
pub(crate) use dispatch::Dispatcher;

use config::{lifecycle_filter, stream_filter};
use dispatch::StreamBinding;
use iii_stream_engine::{Trigger, TriggerType};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) const STREAM: &str = "stream";
pub(crate) const JOIN: &str = "stream:join";
pub(crate) const LEAVE: &str = "stream:leave";

/// A `stream:join` or `stream:leave` binding.
#[derive(Debug)]
pub(crate) struct LifecycleBinding {
    pub(crate) trigger: Trigger,
    pub(crate) filter: LifecycleFilter,
}

/// The `stream` bindings of one stream.
pub(crate) type StreamBindings = Arc<[Arc<StreamBinding>]>;

/// Every binding of the three types, indexed for the lookups the service makes.
#[derive(Default)]
pub(crate) struct Index {
    /// `stream` bindings by stream name; each list is replaced, never mutated, so dispatch can
    /// hold it without a lock.
    stream: RwLock<HashMap<Arc<str>, StreamBindings>>,
    join: RwLock<Vec<Arc<LifecycleBinding>>>,
    leave: RwLock<Vec<Arc<LifecycleBinding>>>,
}

impl Index {
    pub(crate) fn stream_bindings(&self, stream: &str) -> Option<StreamBindings> {
        self.stream.read().get(stream).cloned()
    }

    /// The join (or leave) bindings whose filters match.
    pub(crate) fn lifecycle(
        &self,
        kind: &str,
        stream: &str,
        group: &str,
    ) -> Vec<Arc<LifecycleBinding>> {
        let list = if kind == JOIN {
            &self.join
        } else {
            &self.leave
        };
        list.read()
            .iter()
            .filter(|b| b.filter.matches(stream, group))
            .cloned()
            .collect()
    }
}

/// Adapts the index to the engine's trigger-type interface, one instance per type.
pub(crate) struct Kind {
    pub(crate) index: Arc<Index>,
    pub(crate) name: &'static str,
}

impl TriggerType for Kind {
    fn bind(&self, trigger: &Trigger) -> Result<(), String> {
        match self.name {
            STREAM => {
                let filter = stream_filter(&trigger.config)?;
                let binding = Arc::new(StreamBinding::new(trigger.clone(), filter));
                let mut map = self.index.stream.write();
                let list = map
                    .entry(binding.filter.stream.clone())
                    .or_insert_with(|| Arc::new([]));
                *list = list.iter().cloned().chain([binding]).collect();
            }
            kind => {
                let filter = lifecycle_filter(&trigger.config, kind)?;
                let binding = Arc::new(LifecycleBinding {
                    trigger: trigger.clone(),
                    filter,
                });
                let list = if kind == JOIN {
                    &self.index.join
                } else {
                    &self.index.leave
                };
                list.write().push(binding);
            }
        }
        Ok(())
    }

    fn unbind(&self, trigger: &Trigger) {
        match self.name {
            STREAM => {
                let mut map = self.index.stream.write();
                map.retain(|_, list| {
                    if list.iter().any(|b| b.trigger.id == trigger.id) {
                        for b in list.iter().filter(|b| b.trigger.id == trigger.id) {
                            b.retire();
                        }
                        *list = list
                            .iter()
                            .filter(|b| b.trigger.id != trigger.id)
                            .cloned()
                            .collect();
                    }
                    !list.is_empty()
                });
            }
            kind => {
                let list = if kind == JOIN {
                    &self.index.join
                } else {
                    &self.index.leave
                };
                list.write().retain(|b| b.trigger.id != trigger.id);
            }
        }
    }
}

pub(crate) fn dispatch_limits(
    config: &iii_stream_config::StreamConfig,
) -> dispatch::DispatchLimits {
    dispatch::DispatchLimits {
        trigger_timeout: std::time::Duration::from_millis(config.timeouts.trigger_ms),
        condition_timeout: std::time::Duration::from_millis(config.timeouts.condition_ms),
        max_pending_per_trigger: config.triggers.max_pending_per_trigger,
    }
}
