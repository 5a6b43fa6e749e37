//! Storage adapters of iii-stream.
//!
//! A [`Store`] commits changes together with their per-group `seq`, `epoch` and timestamp, makes
//! them durable, and hands each resulting [`Frame`] to an [`EventSink`] in `seq` order. Listings,
//! reads and join snapshots are served from here too. Adapters:
//! - `kv`: state in process memory, optionally made durable on disk before acknowledgement;
//! - `redis`: state in a shared Redis, so several processes see each other's writes.

mod clock;
mod error;
pub mod kv;
mod redis;
mod sink;
mod snapshot;
mod update;

pub use self::redis::{RedisOptions, RedisStore};
pub use error::StoreError;
pub use kv::{KvOptions, KvStore};
pub use sink::EventSink;
pub use snapshot::{Replay, Snapshot, SnapshotData};

use iii_stream_domain::update::{OpError, UpdateOp};
use iii_stream_domain::{Change, Frame, GroupKey, ItemKey, JsonText};
use std::sync::Arc;

/// The result of `set`: the previous value and the committed frame.
#[derive(Debug)]
pub struct Written {
    pub old: Option<JsonText>,
    pub frame: Arc<Frame>,
}

/// The result of `update`.
#[derive(Debug)]
pub struct Updated {
    pub old: Option<JsonText>,
    pub new: JsonText,
    pub errors: Vec<OpError>,
    pub frame: Arc<Frame>,
}

/// The result of `delete`: no frame when nothing was removed.
#[derive(Debug)]
pub struct Deleted {
    pub old: Option<JsonText>,
    pub frame: Option<Arc<Frame>>,
}

/// A storage adapter. An enum rather than a trait object: there are few adapters, and their
/// methods are async.
pub enum Store {
    Kv(Box<KvStore>),
    Redis(RedisStore),
}

impl Store {
    pub async fn set(&self, key: &ItemKey, value: JsonText) -> Result<Written, StoreError> {
        match self {
            Self::Kv(s) => s.set(key, value).await,
            Self::Redis(s) => s.set(key, value).await,
        }
    }

    pub async fn update(&self, key: &ItemKey, ops: &[UpdateOp]) -> Result<Updated, StoreError> {
        match self {
            Self::Kv(s) => s.update(key, ops).await,
            Self::Redis(s) => s.update(key, ops).await,
        }
    }

    pub async fn delete(&self, key: &ItemKey) -> Result<Deleted, StoreError> {
        match self {
            Self::Kv(s) => s.delete(key).await,
            Self::Redis(s) => s.delete(key).await,
        }
    }

    /// Numbers and publishes an event that changes nothing stored: `stream::send`, and writes
    /// performed by custom providers.
    pub async fn emit(
        &self,
        group: &GroupKey,
        item: Option<Arc<str>>,
        change: Change,
    ) -> Result<Arc<Frame>, StoreError> {
        match self {
            Self::Kv(s) => s.emit(group, item, change).await,
            Self::Redis(s) => s.emit(group, item, change).await,
        }
    }

    pub async fn get(&self, key: &ItemKey) -> Result<Option<JsonText>, StoreError> {
        match self {
            Self::Kv(s) => s.get(key).await,
            Self::Redis(s) => s.get(key).await,
        }
    }

    /// The values of a group in insertion order.
    pub async fn list(&self, group: &GroupKey) -> Result<Vec<JsonText>, StoreError> {
        match self {
            Self::Kv(s) => s.list(group).await,
            Self::Redis(s) => s.list(group).await,
        }
    }

    /// The existing groups of a stream, sorted by byte order.
    pub async fn list_groups(&self, stream: &str) -> Result<Vec<Arc<str>>, StoreError> {
        match self {
            Self::Kv(s) => s.list_groups(stream).await,
            Self::Redis(s) => s.list_groups(stream).await,
        }
    }

    /// Every existing stream with its groups, both sorted by byte order.
    pub async fn list_all(&self) -> Result<Vec<(Arc<str>, Vec<Arc<str>>)>, StoreError> {
        match self {
            Self::Kv(s) => s.list_all().await,
            Self::Redis(s) => s.list_all().await,
        }
    }

    /// Reads a join snapshot (a group's values, or one item) with the group's stamp, and runs
    /// `admit` with it atomically with respect to the group's sequencer where the adapter allows
    /// (kv: under the group lock), so that a subscription registered by `admit` misses no frame
    /// and sees none twice.
    ///
    /// An error after `admit` ran means the snapshot shows changes that cannot be made durable
    /// (kv: a failed commit); the subscription `admit` registered must be withdrawn.
    pub async fn snapshot<R>(
        &self,
        group: &GroupKey,
        item: Option<&str>,
        admit: impl FnOnce(Snapshot) -> R,
    ) -> Result<R, StoreError> {
        match self {
            Self::Kv(s) => s.snapshot(group, item, admit).await,
            Self::Redis(s) => s.snapshot(group, item, admit).await,
        }
    }

    /// Declares local interest in a group's frames committed by other processes (Redis: subscribe
    /// to the group's channel). Called before a join reads its snapshot or resumes; balanced by
    /// [`Store::unwatch`] when that subscription ends.
    pub async fn watch(&self, group: &GroupKey) -> Result<(), StoreError> {
        match self {
            Self::Kv(_) => Ok(()),
            Self::Redis(s) => s.watch(group).await,
        }
    }

    /// Ends one [`Store::watch`].
    pub fn unwatch(&self, group: &GroupKey) {
        match self {
            Self::Kv(_) => {}
            Self::Redis(s) => s.unwatch(group),
        }
    }

    /// Whether resumes are served from the store's own history ([`Store::replay`]) rather than
    /// from the in-process fan-out history (kv). True for Redis, where the frames a client missed
    /// may have been delivered by another instance.
    pub fn keeps_history(&self) -> bool {
        match self {
            Self::Kv(_) => false,
            Self::Redis(_) => true,
        }
    }

    /// The frames of `group` after `(epoch, seq)`, read atomically with the group's current
    /// `(epoch, seq)`, if the store's history can serve that resume (see [`Store::keeps_history`]);
    /// `None` means "send a full sync".
    pub async fn replay(
        &self,
        group: &GroupKey,
        epoch: &str,
        seq: u64,
    ) -> Result<Option<Replay>, StoreError> {
        match self {
            Self::Kv(_) => Ok(None),
            Self::Redis(s) => s.replay(group, epoch, seq).await,
        }
    }

    /// Drops the state of groups nobody needs any more (kv; see [`KvStore::sweep`]). Redis keeps
    /// group state in Redis, with its own expiry.
    pub fn sweep(&self) {
        match self {
            Self::Kv(s) => s.sweep(),
            Self::Redis(_) => {}
        }
    }

    /// `Err(reason)` when the store cannot serve writes.
    pub fn health(&self) -> Result<(), String> {
        match self {
            Self::Kv(s) => s.health(),
            Self::Redis(s) => s.health(),
        }
    }

    /// Flushes and releases the store. Writes after this fail.
    pub async fn close(&self) {
        match self {
            Self::Kv(s) => s.close().await,
            Self::Redis(s) => s.close().await,
        }
    }
}
