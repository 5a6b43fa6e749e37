//! The function and trigger registries. Last writer wins; a connection's clean-up removes only
//! what it still owns.

use crate::connection::WorkerHandle;
use crate::trigger::{Trigger, TriggerType};
use iii_stream_protocol::engine::RegisterTrigger;
use iii_stream_protocol::{ErrorBody, ErrorCode};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;

type TriggerTypes = HashMap<String, Arc<dyn TriggerType>>;

#[derive(Default)]
pub(crate) struct Registry {
    functions: RwLock<HashMap<String, Arc<WorkerHandle>>>,
    triggers: Mutex<HashMap<Arc<str>, Trigger>>,
}

impl Registry {
    pub(crate) fn function_owner(&self, id: &str) -> Option<Arc<WorkerHandle>> {
        self.functions.read().get(id).cloned()
    }

    pub(crate) fn register_function(&self, owner: &Arc<WorkerHandle>, id: &str) {
        let previous = self.functions.write().insert(id.to_owned(), owner.clone());
        if let Some(previous) = previous
            && !Arc::ptr_eq(&previous, owner)
            && !previous.is_closed()
        {
            tracing::warn!(function = id, previous = %previous.id, worker = %owner.id,
                "function re-registered by another connection; the newer registration wins");
        }
    }

    pub(crate) fn unregister_function(&self, id: &str, owner: &str) {
        let mut functions = self.functions.write();
        if functions.get(id).is_some_and(|h| &*h.id == owner) {
            functions.remove(id);
        }
    }

    /// Binds a trigger, replacing any binding with the same id. On refusal the old binding is
    /// gone too, as the protocol specifies.
    pub(crate) fn register_trigger(
        &self,
        owner: &Arc<WorkerHandle>,
        message: &RegisterTrigger<'_>,
        types: &TriggerTypes,
    ) -> Result<(), ErrorBody> {
        let mut triggers = self.triggers.lock();
        if let Some(old) = triggers.remove(&*message.id) {
            unbind(&old, types);
        }
        let trigger_type = message.trigger_type.as_deref().unwrap_or("");
        let Some(handler) = types.get(trigger_type) else {
            return Err(ErrorBody::new(
                ErrorCode::TriggerTypeNotFound,
                format!("Trigger type '{trigger_type}' is not supported by this server"),
            ));
        };
        let refuse =
            |message: String| ErrorBody::new(ErrorCode::TriggerRegistrationFailed, message);
        let Some(function_id) = message.function_id.as_deref().filter(|f| !f.is_empty()) else {
            return Err(refuse(
                "registertrigger requires a non-empty string 'function_id'".to_owned(),
            ));
        };
        let config = match message.config {
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|e| refuse(format!("invalid trigger config: {e}")))?,
            None => serde_json::Value::Null,
        };
        let trigger = Trigger {
            id: message.id.as_ref().into(),
            trigger_type: trigger_type.into(),
            function_id: function_id.into(),
            config,
            metadata: message.metadata.map(|m| Arc::from(m.to_owned())),
            owner: owner.id.clone(),
        };
        handler.bind(&trigger).map_err(refuse)?;
        triggers.insert(trigger.id.clone(), trigger);
        Ok(())
    }

    /// Removes a binding whatever its owner; unknown ids are a no-op.
    pub(crate) fn unregister_trigger(&self, id: &str, types: &TriggerTypes) {
        if let Some(old) = self.triggers.lock().remove(id) {
            unbind(&old, types);
        }
    }

    pub(crate) fn remove_owned_by(&self, owner: &str, types: &TriggerTypes) {
        self.functions.write().retain(|_, h| &*h.id != owner);
        let mut triggers = self.triggers.lock();
        let owned: Vec<Arc<str>> = triggers
            .values()
            .filter(|t| &*t.owner == owner)
            .map(|t| t.id.clone())
            .collect();
        for id in owned {
            if let Some(old) = triggers.remove(&id) {
                unbind(&old, types);
            }
        }
    }
}

fn unbind(trigger: &Trigger, types: &TriggerTypes) {
    if let Some(handler) = types.get(&*trigger.trigger_type) {
        handler.unbind(trigger);
    }
}
