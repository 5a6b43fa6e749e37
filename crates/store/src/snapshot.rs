//! Join snapshots: the data a sync frame carries and the stamp it reflects.

use iii_stream_domain::{JsonText, Stamp};
use std::sync::Arc;

/// A group's or an item's state at one `seq`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `seq`/`epoch` of the last event reflected, and the sync timestamp.
    pub stamp: Stamp,
    pub data: SnapshotData,
}

#[derive(Debug, Clone)]
pub enum SnapshotData {
    /// An item subscription: the value, or `None` when missing.
    Item(Option<JsonText>),
    /// A group subscription: the items in insertion order.
    Group(Vec<(Arc<str>, JsonText)>),
}
