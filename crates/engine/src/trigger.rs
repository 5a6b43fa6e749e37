//! Trigger bindings and the trait through which services provide trigger types.

use iii_stream_protocol::RawValue;
use std::sync::Arc;

/// One binding of a worker's function to an event source.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub id: Arc<str>,
    pub trigger_type: Arc<str>,
    pub function_id: Arc<str>,
    /// The type-specific configuration; JSON `null` when absent.
    pub config: serde_json::Value,
    /// Sent as `metadata` on every call this trigger makes.
    pub metadata: Option<Arc<RawValue>>,
    /// The worker connection that registered it.
    pub owner: Arc<str>,
}

/// A trigger type served by some service (e.g. `stream`, `stream:join`).
///
/// Called while the engine's trigger registry is locked, so bindings and the service's own index
/// change together; implementations must not call back into the engine.
pub trait TriggerType: Send + Sync {
    /// Accepts a binding, or refuses it with a message naming the problem.
    fn bind(&self, trigger: &Trigger) -> Result<(), String>;
    /// Forgets a binding previously accepted.
    fn unbind(&self, trigger: &Trigger);
}
