//! The durable log of the `file_based` kv store (placeholder until the on-disk store lands).

use crate::{EventSink, StoreError};
use iii_stream_domain::{Frame, GroupKey, JsonText};
use std::path::Path;
use std::sync::Arc;

/// A change to persist, with the frame to publish once it is durable.
pub(crate) struct Record {
    pub(crate) mutation: Option<Mutation>,
    pub(crate) frame: Arc<Frame>,
}

pub(crate) enum Mutation {
    Put {
        group: GroupKey,
        order: u64,
        item: Arc<str>,
        value: JsonText,
    },
    Remove {
        group: GroupKey,
        order: u64,
    },
}

/// A group read back from disk: items with their insertion positions.
pub(crate) struct LoadedGroup {
    pub(crate) key: GroupKey,
    pub(crate) items: Vec<(u64, Arc<str>, JsonText)>,
}

pub(crate) struct DurableLog {}

impl DurableLog {
    pub(crate) fn open(
        dir: &Path,
        _sink: Arc<dyn EventSink>,
    ) -> Result<(Self, Vec<LoadedGroup>), StoreError> {
        Err(StoreError::Backend(format!(
            "file_based store at {} is not available in this build",
            dir.display()
        )))
    }

    pub(crate) fn append(&self, _record: Record) -> u64 {
        0
    }

    pub(crate) async fn wait(&self, _lsn: u64) -> Result<(), StoreError> {
        Ok(())
    }

    pub(crate) fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    pub(crate) async fn close(&self) {}
}
