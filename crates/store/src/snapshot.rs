//! Where a join starts: a snapshot (the data a sync frame carries and the stamp it reflects), or
//! a replay of missed frames.

use iii_stream_domain::{JsonText, Stamp};
use std::sync::Arc;

/// A group's or an item's state at one `seq`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `seq`/`epoch` of the last event reflected, and the sync timestamp.
    pub stamp: Stamp,
    pub data: SnapshotData,
    /// False while frames up to `stamp.seq` are still on their way to the sink (kv: durable
    /// writes not yet committed), which will publish them after this snapshot was read; a sync
    /// must then wait for the last of them. True when every one of them has reached the sink
    /// already, or never will here (Redis: published before this instance subscribed).
    pub published: bool,
}

#[derive(Debug, Clone)]
pub enum SnapshotData {
    /// An item subscription: the value, or `None` when missing.
    Item(Option<JsonText>),
    /// A group subscription: the items in insertion order.
    Group(Vec<(Arc<str>, JsonText)>),
}

/// A resume served from a store that keeps the history itself (Redis): the frames after the
/// client's `since` up to `seq`, which the new subscription receives instead of a sync.
#[derive(Debug, Clone)]
pub struct Replay {
    pub epoch: Arc<str>,
    pub seq: u64,
    /// In `seq` order, ending at `seq`.
    pub frames: Vec<Arc<iii_stream_domain::Frame>>,
}
