//! The function and trigger registries, indexed by owner so that a connection's clean-up costs
//! what it owns, not what every connection owns.
//!
//! Functions belong to the first live connection that registers them (docs/worker-protocol.md,
//! "Ownership"): another connection asking for the same id while the owner lives is refused and
//! waits in line, and takes the id over when the owner goes. A worker that reconnects with
//! `reattach` closes its previous connection first, so its re-registrations simply succeed.
//! Triggers keep the protocol's rule: re-using an id replaces the binding.

use crate::connection::WorkerHandle;
use crate::trigger::{Trigger, TriggerType};
use iii_stream_protocol::engine::RegisterTrigger;
use iii_stream_protocol::{ErrorBody, ErrorCode};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

pub(crate) type TriggerTypes = HashMap<String, Arc<dyn TriggerType>>;

/// Connections that may wait in line for one function id. Beyond this a registration is refused
/// outright: the line exists for a restarted worker whose old connection still looks alive, not
/// for crowds.
const MAX_WAITING: usize = 8;

/// What became of a `registerfunction`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    /// The connection owns the id (now, or already did).
    Owned,
    /// Another live connection owns it; this one takes over when that one goes.
    Waiting { owner: Arc<str> },
    /// Another live connection owns it and the line is full.
    Refused { owner: Arc<str> },
    /// The registering connection is already closed.
    Closed,
}

#[derive(Default)]
pub(crate) struct Registry {
    functions: RwLock<Functions>,
    triggers: Mutex<Triggers>,
}

#[derive(Default)]
struct Functions {
    by_id: HashMap<Arc<str>, Claims>,
    /// Every id a connection owns or waits for.
    by_worker: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

struct Claims {
    owner: Arc<WorkerHandle>,
    /// Oldest first.
    waiting: VecDeque<Arc<WorkerHandle>>,
}

impl Claims {
    /// The connection that serves calls: the owner, or, once it closed, the first live waiter
    /// (its clean-up may still be on its way).
    fn serving(&self) -> Option<&Arc<WorkerHandle>> {
        std::iter::once(&self.owner)
            .chain(&self.waiting)
            .find(|h| !h.is_closed())
    }

    /// Hands the id to the first live waiter; false when nobody is left.
    fn promote(&mut self) -> bool {
        while let Some(next) = self.waiting.pop_front() {
            if !next.is_closed() {
                self.owner = next;
                return true;
            }
        }
        false
    }
}

#[derive(Default)]
struct Triggers {
    by_id: HashMap<Arc<str>, Trigger>,
    by_owner: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

impl Triggers {
    fn remove(&mut self, id: &str, types: &TriggerTypes) {
        if let Some(old) = self.by_id.remove(id) {
            if let Some(owned) = self.by_owner.get_mut(&old.owner) {
                owned.remove(id);
            }
            unbind(&old, types);
        }
    }
}

/// What a closed connection still held, taken out of the owner indexes in one step and released
/// in chunks (see [`Registry::release`]).
#[derive(Default)]
pub(crate) struct Owned {
    functions: Vec<Arc<str>>,
    triggers: Vec<Arc<str>>,
}

impl Owned {
    pub(crate) fn len(&self) -> usize {
        self.functions.len() + self.triggers.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits off at most `n` entries.
    pub(crate) fn split(&mut self, n: usize) -> Owned {
        let functions = self.functions.len().min(n);
        let triggers = self.triggers.len().min(n - functions);
        Owned {
            functions: self.functions.split_off(self.functions.len() - functions),
            triggers: self.triggers.split_off(self.triggers.len() - triggers),
        }
    }
}

impl Registry {
    /// The live connection serving `id`, if any.
    pub(crate) fn function_owner(&self, id: &str) -> Option<Arc<WorkerHandle>> {
        self.functions
            .read()
            .by_id
            .get(id)
            .and_then(Claims::serving)
            .cloned()
    }

    pub(crate) fn register_function(&self, worker: &Arc<WorkerHandle>, id: &str) -> Registration {
        let mut functions = self.functions.write();
        // Checked under the lock that `take_owned` takes after the connection was marked closed:
        // a registration either lands in the set that clean-up takes, or is not made at all.
        if worker.is_closed() {
            return Registration::Closed;
        }
        let Functions { by_id, by_worker } = &mut *functions;
        let id: Arc<str> = match by_id.get_key_value(id) {
            Some((key, _)) => key.clone(),
            None => id.into(),
        };
        let registration = match by_id.get_mut(&id) {
            None => {
                by_id.insert(
                    id.clone(),
                    Claims {
                        owner: worker.clone(),
                        waiting: VecDeque::new(),
                    },
                );
                Registration::Owned
            }
            Some(claims) if Arc::ptr_eq(&claims.owner, worker) => Registration::Owned,
            Some(claims) if claims.owner.is_closed() => {
                claims.owner = worker.clone();
                claims.waiting.retain(|w| !Arc::ptr_eq(w, worker));
                Registration::Owned
            }
            Some(claims) => {
                let owner = claims.owner.id.clone();
                if claims.waiting.iter().any(|w| Arc::ptr_eq(w, worker)) {
                    Registration::Waiting { owner }
                } else if claims.waiting.len() < MAX_WAITING {
                    claims.waiting.push_back(worker.clone());
                    Registration::Waiting { owner }
                } else {
                    return Registration::Refused { owner };
                }
            }
        };
        by_worker.entry(worker.id.clone()).or_default().insert(id);
        registration
    }

    /// Withdraws `worker`'s claim on `id`: ownership passes to the next in line, a place in line
    /// is given up, anything else is a no-op.
    pub(crate) fn unregister_function(&self, id: &str, worker: &WorkerHandle) {
        let mut functions = self.functions.write();
        let Functions { by_id, by_worker } = &mut *functions;
        if let Some(owned) = by_worker.get_mut(&worker.id) {
            owned.remove(id);
        }
        withdraw(by_id, id, &worker.id);
    }

    /// Binds a trigger, replacing any binding with the same id. On refusal the old binding is
    /// gone too, as the protocol specifies.
    pub(crate) fn register_trigger(
        &self,
        worker: &Arc<WorkerHandle>,
        message: &RegisterTrigger<'_>,
        types: &TriggerTypes,
    ) -> Result<(), ErrorBody> {
        let mut triggers = self.triggers.lock();
        triggers.remove(&message.id, types);
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
        if worker.is_closed() {
            // Clean-up has taken (or is taking) what the connection owns; nothing may be added.
            return Ok(());
        }
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
            owner: worker.id.clone(),
        };
        handler.bind(&trigger).map_err(refuse)?;
        triggers
            .by_owner
            .entry(worker.id.clone())
            .or_default()
            .insert(trigger.id.clone());
        triggers.by_id.insert(trigger.id.clone(), trigger);
        Ok(())
    }

    /// Removes a binding whatever its owner; unknown ids are a no-op.
    pub(crate) fn unregister_trigger(&self, id: &str, types: &TriggerTypes) {
        self.triggers.lock().remove(id, types);
    }

    /// Takes what a closed connection owns or waits for out of the owner indexes. O(1); the
    /// entries themselves are released by [`Registry::release`].
    pub(crate) fn take_owned(&self, worker: &str) -> Owned {
        let functions = self.functions.write().by_worker.remove(worker);
        let triggers = self.triggers.lock().by_owner.remove(worker);
        Owned {
            functions: functions.into_iter().flatten().collect(),
            triggers: triggers.into_iter().flatten().collect(),
        }
    }

    /// Releases entries taken by [`Registry::take_owned`] that `worker` still holds: entries a
    /// newer connection took over in the meantime stay.
    pub(crate) fn release(&self, worker: &str, owned: Owned, types: &TriggerTypes) {
        if !owned.functions.is_empty() {
            let mut functions = self.functions.write();
            for id in &owned.functions {
                withdraw(&mut functions.by_id, id, worker);
            }
        }
        if !owned.triggers.is_empty() {
            let mut triggers = self.triggers.lock();
            for id in &owned.triggers {
                if triggers
                    .by_id
                    .get(&**id)
                    .is_some_and(|t| &*t.owner == worker)
                {
                    triggers.remove(id, types);
                }
            }
        }
    }

    /// Registered function ids and trigger bindings (diagnostics and tests).
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (
            self.functions.read().by_id.len(),
            self.triggers.lock().by_id.len(),
        )
    }
}

/// Ends `worker`'s ownership of or place in line for `id`.
fn withdraw(by_id: &mut HashMap<Arc<str>, Claims>, id: &str, worker: &str) {
    let Some(claims) = by_id.get_mut(id) else {
        return;
    };
    if &*claims.owner.id == worker {
        if !claims.promote() {
            by_id.remove(id);
        }
    } else {
        claims.waiting.retain(|w| &*w.id != worker);
    }
}

fn unbind(trigger: &Trigger, types: &TriggerTypes) {
    if let Some(handler) = types.get(&*trigger.trigger_type) {
        handler.unbind(trigger);
    }
}
