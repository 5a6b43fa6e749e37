//! Errors of the storage layer. The stream service maps them to `STREAM_*_ERROR` codes, using the
//! `Display` text as the cause.

use iii_stream_domain::names::GroupKey;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store failed earlier (e.g. an fsync error) and refuses writes until restarted, because
    /// memory and disk may disagree.
    #[error("store unavailable: {0}")]
    Failed(String),
    /// The store could not be opened at startup (locked, unreadable or corrupt). The text names
    /// the path and the cause.
    #[error("{0}")]
    Open(String),
    /// The store is closed (shutdown in progress).
    #[error("store is closed")]
    Closed,
    /// The backend could not be reached or answered with an error.
    #[error("{0}")]
    Backend(String),
    /// Creating the group would give its stream more groups than `limits.max_groups_per_stream`.
    #[error("stream {stream:?} already has {limit} groups (limits.max_groups_per_stream)")]
    GroupLimit { stream: String, limit: usize },
    /// A stored value is not valid JSON.
    #[error("stored value of item {item:?} in {group:?} is not valid JSON")]
    CorruptValue { group: GroupKey, item: String },
}
