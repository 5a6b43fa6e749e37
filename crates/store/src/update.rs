//! `stream::update` applied to stored text, the one way every adapter does it (so kv and Redis
//! give identical results).

use crate::StoreError;
use iii_stream_domain::event::canonical_json;
use iii_stream_domain::update::{OpError, UpdateOp, apply_ops};
use iii_stream_domain::{ItemKey, JsonText};

/// Applies `ops` to the item's current value (`None`: missing) and returns the new value's text
/// and the errors of the ops that failed.
pub(crate) fn apply_to_stored(
    key: &ItemKey,
    old: Option<&JsonText>,
    ops: &[UpdateOp],
) -> Result<(JsonText, Vec<OpError>), StoreError> {
    let current = old
        .map(|text| serde_json::from_str(text.get()))
        .transpose()
        .map_err(|_| StoreError::CorruptValue {
            group: key.group.clone(),
            item: key.item.to_string(),
        })?;
    let applied = apply_ops(current, ops);
    Ok((canonical_json(&applied.value), applied.errors))
}
