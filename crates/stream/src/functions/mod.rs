//! The eight `stream::*` functions (stream.md §3), served as engine built-ins.
//!
//! Each decodes and validates its input, consults a custom provider where one is registered, and
//! otherwise goes through the store; the store publishes frames and triggers itself, in `seq`
//! order, before the reply goes out.

mod input;
mod output;
mod provider;

pub(crate) use provider::provider_id;

use crate::StreamService;
use iii_stream_domain::event::canonical_json;
use iii_stream_domain::update::UpdateOp;
use iii_stream_domain::{Change, GroupKey};
use iii_stream_engine::{BuiltinCall, Engine, Outcome};
use iii_stream_metrics::metrics;
use iii_stream_protocol::{ErrorBody, ErrorCode, RawValue};
use iii_stream_store::StoreError;
use input::{
    GroupInput, Item, ItemInput, Names, SendInput, SetInput, StreamInput, UpdateInput,
    check_list_all_input, decode, decode_field,
};
use output::{deleted, list, raw, written};
use std::sync::Arc;

/// A built-in stream function: its id, error code and error wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Set,
    Get,
    Delete,
    Update,
    Send,
    List,
    ListGroups,
    ListAll,
}

impl Function {
    pub(crate) const ALL: [Self; 8] = [
        Self::Set,
        Self::Get,
        Self::Delete,
        Self::Update,
        Self::Send,
        Self::List,
        Self::ListGroups,
        Self::ListAll,
    ];

    pub(crate) const fn id(self) -> &'static str {
        match self {
            Self::Set => "stream::set",
            Self::Get => "stream::get",
            Self::Delete => "stream::delete",
            Self::Update => "stream::update",
            Self::Send => "stream::send",
            Self::List => "stream::list",
            Self::ListGroups => "stream::list_groups",
            Self::ListAll => "stream::list_all",
        }
    }

    /// The op name used in custom provider ids, `stream::<op>(<stream>)`.
    const fn op(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::Update => "update",
            Self::Send => "send",
            Self::List => "list",
            Self::ListGroups => "list_groups",
            Self::ListAll => "list_all",
        }
    }

    const fn error_code(self) -> ErrorCode {
        match self {
            Self::Set => ErrorCode::StreamSetError,
            Self::Get => ErrorCode::StreamGetError,
            Self::Delete => ErrorCode::StreamDeleteError,
            Self::Update => ErrorCode::StreamUpdateError,
            Self::Send => ErrorCode::StreamSendError,
            Self::List => ErrorCode::StreamGetGroupError,
            Self::ListGroups => ErrorCode::StreamListGroupsError,
            Self::ListAll => ErrorCode::StreamListAllError,
        }
    }

    /// `"Failed to <verb> …"`, the prefix of every storage error message.
    const fn failure(self) -> &'static str {
        match self {
            Self::Set => "Failed to set value",
            Self::Get => "Failed to get value",
            Self::Delete => "Failed to delete value",
            Self::Update => "Failed to update value",
            Self::Send => "Failed to send event",
            Self::List => "Failed to get group",
            Self::ListGroups => "Failed to list groups",
            Self::ListAll => "Failed to list stream",
        }
    }

    pub(crate) fn error(self, cause: impl std::fmt::Display) -> ErrorBody {
        ErrorBody::new(self.error_code(), format!("{}: {cause}", self.failure()))
    }

    fn store_error(self, error: StoreError) -> ErrorBody {
        self.error(error)
    }
}

/// Registers every function with the engine.
pub(crate) fn register(engine: &Engine, service: &Arc<StreamService>) {
    for function in Function::ALL {
        let service = Arc::downgrade(service);
        engine.register_builtin(
            function.id(),
            Arc::new(move |call: BuiltinCall| {
                let service = service.upgrade();
                Box::pin(async move {
                    let Some(service) = service else {
                        return Err(ErrorBody::new(
                            ErrorCode::ServerShuttingDown,
                            "Server is shutting down",
                        ));
                    };
                    let _busy = crate::calls::Busy::start(&service.in_flight);
                    let outcome = service.call(function, call.data.as_deref()).await;
                    metrics().function_call(function.id(), outcome.is_ok());
                    outcome
                })
            }),
        );
    }
}

fn input<T: serde::de::DeserializeOwned + Names>(
    function: Function,
    data: Option<&RawValue>,
) -> Result<T, ErrorBody> {
    let input: T = decode(function.id(), data)?;
    input.validate()?;
    Ok(input)
}

impl StreamService {
    pub(crate) async fn call(&self, function: Function, data: Option<&RawValue>) -> Outcome {
        match function {
            Function::Set => self.set(input(function, data)?).await,
            Function::Get => self.get(input(function, data)?).await,
            Function::Delete => self.delete(input(function, data)?).await,
            Function::Update => self.update(input(function, data)?).await,
            Function::Send => self.send(input(function, data)?).await,
            Function::List => self.list(input(function, data)?).await,
            Function::ListGroups => self.list_groups(input(function, data)?).await,
            Function::ListAll => {
                check_list_all_input(data)?;
                self.list_all().await
            }
        }
    }

    async fn set(&self, input: SetInput) -> Outcome {
        let function = Function::Set;
        if let Some(result) = self.provide(function, &input.stream_name, &input).await {
            let (old, new) = provider::decode_write(function, result)?;
            let change = Change::upsert(old.is_some(), new.clone());
            self.emit_provided(function, &input.key().group, Some(&input.item_id), change)
                .await?;
            return Ok(Some(written(old.as_deref(), &new, None)));
        }
        let value: serde_json::Value = serde_json::from_str(input.data.get()).map_err(|e| {
            ErrorBody::new(
                ErrorCode::DeserializationError,
                format!("Failed to deserialize input for stream::set: {e}"),
            )
        })?;
        let value = canonical_json(&value);
        let written_ = self
            .store
            .set(&input.key(), value.clone())
            .await
            .map_err(|e| function.store_error(e))?;
        Ok(Some(written(written_.old.as_deref(), &value, None)))
    }

    async fn get(&self, input: ItemInput) -> Outcome {
        let function = Function::Get;
        if let Some(result) = self.provide(function, &input.stream_name, &input).await {
            return result;
        }
        let value = self
            .store
            .get(&input.key())
            .await
            .map_err(|e| function.store_error(e))?;
        Ok(value.map(|v| raw(&v)))
    }

    async fn delete(&self, input: ItemInput) -> Outcome {
        let function = Function::Delete;
        if let Some(result) = self.provide(function, &input.stream_name, &input).await {
            let old = provider::decode_delete(function, result)?;
            if let Some(old) = &old {
                let change = Change::Delete(old.clone());
                self.emit_provided(function, &input.key().group, Some(&input.item_id), change)
                    .await?;
            }
            return Ok(Some(deleted(old.as_deref())));
        }
        let outcome = self
            .store
            .delete(&input.key())
            .await
            .map_err(|e| function.store_error(e))?;
        Ok(Some(deleted(outcome.old.as_deref())))
    }

    async fn update(&self, input: UpdateInput) -> Outcome {
        let function = Function::Update;
        let ops: Vec<UpdateOp> = decode_field(function.id(), &input.ops)?;
        if let Some(result) = self.provide(function, &input.stream_name, &input).await {
            let update = provider::decode_update(function, result)?;
            let change = Change::upsert(update.old.is_some(), update.new.clone());
            self.emit_provided(function, &input.key().group, Some(&input.item_id), change)
                .await?;
            let errors = update.errors.as_deref();
            return Ok(Some(written(update.old.as_deref(), &update.new, errors)));
        }
        let updated = self
            .store
            .update(&input.key(), &ops)
            .await
            .map_err(|e| function.store_error(e))?;
        let errors = (!updated.errors.is_empty())
            .then(|| serde_json::value::to_raw_value(&updated.errors).ok())
            .flatten();
        Ok(Some(written(
            updated.old.as_deref(),
            &updated.new,
            errors.as_deref(),
        )))
    }

    async fn send(&self, input: SendInput) -> Outcome {
        let function = Function::Send;
        let data: serde_json::Value = serde_json::from_str(input.data.get()).map_err(|e| {
            ErrorBody::new(
                ErrorCode::DeserializationError,
                format!("Failed to deserialize input for stream::send: {e}"),
            )
        })?;
        let change = Change::Custom {
            kind: input.kind,
            data: canonical_json(&data),
        };
        let group = GroupKey::new(input.stream_name, input.group_id);
        self.store
            .emit(&group, input.id.map(Arc::from), change)
            .await
            .map_err(|e| function.store_error(e))?;
        Ok(Some(RawValue::NULL.to_owned()))
    }

    async fn list(&self, input: GroupInput) -> Outcome {
        let function = Function::List;
        if let Some(result) = self.provide(function, &input.stream_name, &input).await {
            return result;
        }
        let values = self
            .store
            .list(&input.key())
            .await
            .map_err(|e| function.store_error(e))?;
        Ok(Some(list(&values)))
    }

    async fn list_groups(&self, input: StreamInput) -> Outcome {
        let function = Function::ListGroups;
        if let Some(result) = self.provide(function, &input.stream_name, &input).await {
            return result;
        }
        let groups = self
            .store
            .list_groups(&input.stream_name)
            .await
            .map_err(|e| function.store_error(e))?;
        Ok(Some(list(&groups)))
    }

    async fn list_all(&self) -> Outcome {
        let function = Function::ListAll;
        let streams = self
            .store
            .list_all()
            .await
            .map_err(|e| function.store_error(e))?;
        Ok(Some(output::list_all(&streams)))
    }

    /// Numbers and publishes the event of a write a custom provider performed.
    async fn emit_provided(
        &self,
        function: Function,
        group: &GroupKey,
        item: Option<&str>,
        change: Change,
    ) -> Result<(), ErrorBody> {
        self.store
            .emit(group, item.map(Arc::from), change)
            .await
            .map(drop)
            .map_err(|e| function.store_error(e))
    }
}
