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

/// The `stream` bindings of one stream, in no particular order.
pub(crate) type StreamBindings = Arc<Vec<Arc<StreamBinding>>>;

/// A set of bindings readable without a lock: readers clone the `Arc` of the list and iterate it
/// at leisure. Writers change the list in place while no reader holds it (the common case, so a
/// worker binding or dropping 20,000 triggers costs O(1) each), and copy it once otherwise.
struct Bindings<T> {
    list: Arc<Vec<Arc<T>>>,
    /// Position of each binding in `list`, by trigger id.
    positions: HashMap<Arc<str>, usize>,
}

impl<T> Default for Bindings<T> {
    fn default() -> Self {
        Self {
            list: Arc::default(),
            positions: HashMap::new(),
        }
    }
}

impl<T: Bound> Bindings<T> {
    fn insert(&mut self, binding: Arc<T>) {
        let id = binding.trigger().id.clone();
        let list = Arc::make_mut(&mut self.list);
        match self.positions.get(&id) {
            Some(&at) => list[at] = binding,
            None => {
                self.positions.insert(id, list.len());
                list.push(binding);
            }
        }
    }

    fn remove(&mut self, id: &str) -> Option<Arc<T>> {
        let at = self.positions.remove(id)?;
        let list = Arc::make_mut(&mut self.list);
        let removed = list.swap_remove(at);
        if let Some(moved) = list.get(at) {
            self.positions.insert(moved.trigger().id.clone(), at);
        }
        Some(removed)
    }

    fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

trait Bound {
    fn trigger(&self) -> &Trigger;
}

impl Bound for StreamBinding {
    fn trigger(&self) -> &Trigger {
        &self.trigger
    }
}

impl Bound for LifecycleBinding {
    fn trigger(&self) -> &Trigger {
        &self.trigger
    }
}

/// Every binding of the three types, indexed for the lookups the service makes. Binding and
/// unbinding cost O(1) whatever the number of bindings.
#[derive(Default)]
pub(crate) struct Index {
    /// `stream` bindings by stream name.
    stream: RwLock<HashMap<Arc<str>, Bindings<StreamBinding>>>,
    join: RwLock<Bindings<LifecycleBinding>>,
    leave: RwLock<Bindings<LifecycleBinding>>,
}

impl Index {
    pub(crate) fn stream_bindings(&self, stream: &str) -> Option<StreamBindings> {
        self.stream.read().get(stream).map(|b| b.list.clone())
    }

    /// The join (or leave) bindings whose filters match.
    pub(crate) fn lifecycle(
        &self,
        kind: &str,
        stream: &str,
        group: &str,
    ) -> Vec<Arc<LifecycleBinding>> {
        let list = self.lifecycle_list(kind).read().list.clone();
        list.iter()
            .filter(|b| b.filter.matches(stream, group))
            .cloned()
            .collect()
    }

    fn lifecycle_list(&self, kind: &str) -> &RwLock<Bindings<LifecycleBinding>> {
        if kind == JOIN {
            &self.join
        } else {
            &self.leave
        }
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
                self.index
                    .stream
                    .write()
                    .entry(binding.filter.stream.clone())
                    .or_default()
                    .insert(binding);
            }
            kind => {
                let filter = lifecycle_filter(&trigger.config, kind)?;
                let binding = Arc::new(LifecycleBinding {
                    trigger: trigger.clone(),
                    filter,
                });
                self.index.lifecycle_list(kind).write().insert(binding);
            }
        }
        Ok(())
    }

    fn unbind(&self, trigger: &Trigger) {
        match self.name {
            STREAM => {
                // The binding is filed under the stream its config names.
                let Ok(filter) = stream_filter(&trigger.config) else {
                    return;
                };
                let mut map = self.index.stream.write();
                let Some(bindings) = map.get_mut(&*filter.stream) else {
                    return;
                };
                if let Some(removed) = bindings.remove(&trigger.id) {
                    removed.retire();
                }
                if bindings.is_empty() {
                    map.remove(&*filter.stream);
                }
            }
            kind => {
                self.index.lifecycle_list(kind).write().remove(&trigger.id);
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
