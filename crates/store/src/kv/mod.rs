//! The `kv` adapter: every group's state lives in process memory; with `file_based` each change
//! is also written to a redb database on disk, and acknowledged and published only once it is
//! durable there (see docs/storage.md).
//!
//! Each group has one lock. A write takes it, applies the change, numbers it with the group's
//! sequencer and hands the frame on (in memory: straight to the sink; durable: to the log, whose
//! committer publishes after the fsync), all before releasing it. So `seq` order, storage order
//! and publication order are one and the same.

mod disk;
mod group;
mod keys;
mod log;
mod probe;
mod watermark;

use crate::clock::{new_epoch, now_ms};
use crate::update::apply_to_stored;
use crate::{Deleted, EventSink, Snapshot, SnapshotData, StoreError, Updated, Written};
use group::{Group, GroupCell};
use iii_stream_domain::update::UpdateOp;
use iii_stream_domain::{Change, Frame, GroupKey, ItemKey, JsonText, Sequencer};
use iii_stream_metrics::metrics;
pub(crate) use log::{DurableLog, LoadedGroup, Mutation, Record};
use parking_lot::RwLock;
use probe::WriteProbe;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Groups = BTreeMap<Arc<str>, BTreeMap<Arc<str>, Arc<GroupCell>>>;

pub struct KvStore {
    /// stream → group → state. Sorted maps give the listings their byte order for free.
    streams: RwLock<Groups>,
    sink: Arc<dyn EventSink>,
    /// `None` for `in_memory`.
    log: Option<DurableLog>,
    /// `None` for `in_memory`.
    probe: Option<WriteProbe>,
}

impl KvStore {
    /// A volatile store: nothing survives the process.
    pub fn in_memory(sink: Arc<dyn EventSink>) -> Self {
        Self {
            streams: RwLock::new(Groups::new()),
            sink,
            log: None,
            probe: None,
        }
    }

    /// A durable store in `dir`: loads what is there, then logs every change before it is
    /// acknowledged. Fails if the directory is locked by another process or cannot be read.
    pub fn open(dir: &Path, sink: Arc<dyn EventSink>) -> Result<Self, StoreError> {
        let (log, loaded) = DurableLog::open(dir, sink.clone())?;
        Self::with_log(dir, log, loaded, sink)
    }

    /// Builds the in-memory state from what `log` loaded from `dir`.
    fn with_log(
        dir: &Path,
        log: DurableLog,
        loaded: Vec<LoadedGroup>,
        sink: Arc<dyn EventSink>,
    ) -> Result<Self, StoreError> {
        let mut streams = Groups::new();
        for group in loaded {
            // Sequencer state is not persisted: every group starts a new epoch after a restart.
            let mut state = Group::new(group.key.clone(), Sequencer::new(new_epoch()));
            for (order, item, value) in group.items {
                if state.get(&item).is_some() {
                    // Two positions for one item: the disk holds something no write produced.
                    return Err(StoreError::Open(format!(
                        "store file {} is corrupt: item {item:?} of {:?} is stored twice",
                        dir.join(disk::DB_FILE).display(),
                        group.key
                    )));
                }
                state.restore(order, item, value);
            }
            streams
                .entry(group.key.stream.clone())
                .or_default()
                .insert(group.key.group.clone(), Arc::new(GroupCell::new(state)));
        }
        Ok(Self {
            streams: RwLock::new(streams),
            sink,
            log: Some(log),
            probe: Some(WriteProbe::new(dir)),
        })
    }

    fn find(&self, key: &GroupKey) -> Option<Arc<GroupCell>> {
        self.streams
            .read()
            .get(&key.stream)
            .and_then(|groups| groups.get(&key.group))
            .cloned()
    }

    fn find_or_create(&self, key: &GroupKey) -> Arc<GroupCell> {
        if let Some(cell) = self.find(key) {
            return cell;
        }
        self.streams
            .write()
            .entry(key.stream.clone())
            .or_default()
            .entry(key.group.clone())
            .or_insert_with(|| {
                let group = Group::new(key.clone(), Sequencer::new(new_epoch()));
                Arc::new(GroupCell::new(group))
            })
            .clone()
    }

    fn writable(&self) -> Result<(), StoreError> {
        if let Some(log) = &self.log {
            log.check()?;
        }
        match &self.probe {
            Some(probe) => probe.check(),
            None => Ok(()),
        }
    }

    /// Numbers `change`, builds its frame and sends it on its way. Runs under the group lock.
    fn commit(
        &self,
        group: &mut Group,
        item: Option<Arc<str>>,
        change: Change,
        mutation: Option<Mutation>,
    ) -> (Arc<Frame>, Option<u64>) {
        let stamp = group.sequencer.next(now_ms());
        let frame = Arc::new(Frame::new(group.key.clone(), item, &change, stamp));
        metrics().event_serializations.inc();
        match &self.log {
            None => {
                self.sink.publish(&frame, true);
                (frame, None)
            }
            Some(log) => {
                let lsn = log.append(Record {
                    mutation,
                    frame: frame.clone(),
                });
                group.last_lsn = lsn;
                (frame, Some(lsn))
            }
        }
    }

    /// Waits until the log position is durable (and its frame published).
    async fn durable(&self, lsn: Option<u64>) -> Result<(), StoreError> {
        match (&self.log, lsn) {
            (Some(log), Some(lsn)) => log.wait(lsn).await,
            _ => Ok(()),
        }
    }

    pub async fn set(&self, key: &ItemKey, value: JsonText) -> Result<Written, StoreError> {
        self.writable()?;
        let cell = self.find_or_create(&key.group);
        let (old, frame, lsn) = {
            let mut group = cell.state.lock();
            let (order, old) = group.put(&key.item, value.clone());
            let mutation = Mutation::Put {
                group: key.group.clone(),
                order,
                item: key.item.clone(),
                value: value.clone(),
            };
            let change = Change::upsert(old.is_some(), value);
            let (frame, lsn) =
                self.commit(&mut group, Some(key.item.clone()), change, Some(mutation));
            cell.sync_len(&group);
            (old, frame, lsn)
        };
        self.durable(lsn).await?;
        Ok(Written { old, frame })
    }

    pub async fn update(&self, key: &ItemKey, ops: &[UpdateOp]) -> Result<Updated, StoreError> {
        self.writable()?;
        let cell = self.find_or_create(&key.group);
        let (updated, lsn) = {
            let mut group = cell.state.lock();
            let old = group.get(&key.item).cloned();
            let (new, errors) = apply_to_stored(key, old.as_ref(), ops)?;
            let (order, _) = group.put(&key.item, new.clone());
            let mutation = Mutation::Put {
                group: key.group.clone(),
                order,
                item: key.item.clone(),
                value: new.clone(),
            };
            let change = Change::upsert(old.is_some(), new.clone());
            let (frame, lsn) =
                self.commit(&mut group, Some(key.item.clone()), change, Some(mutation));
            cell.sync_len(&group);
            let updated = Updated {
                old,
                new,
                errors,
                frame,
            };
            (updated, lsn)
        };
        self.durable(lsn).await?;
        Ok(updated)
    }

    pub async fn delete(&self, key: &ItemKey) -> Result<Deleted, StoreError> {
        self.writable()?;
        let Some(cell) = self.find(&key.group) else {
            return Ok(Deleted {
                old: None,
                frame: None,
            });
        };
        let (deleted, lsn) = {
            let mut group = cell.state.lock();
            match group.remove(&key.item) {
                // Nothing to remove, but "missing" may be the work of a delete not yet durable:
                // like a read, the answer waits until everything it saw is.
                None => (
                    Deleted {
                        old: None,
                        frame: None,
                    },
                    Some(group.last_lsn),
                ),
                Some((order, old)) => {
                    let mutation = Mutation::Remove {
                        group: key.group.clone(),
                        order,
                    };
                    let change = Change::Delete(old.clone());
                    let (frame, lsn) =
                        self.commit(&mut group, Some(key.item.clone()), change, Some(mutation));
                    cell.sync_len(&group);
                    let deleted = Deleted {
                        old: Some(old),
                        frame: Some(frame),
                    };
                    (deleted, lsn)
                }
            }
        };
        self.durable(lsn).await?;
        Ok(deleted)
    }

    pub async fn emit(
        &self,
        key: &GroupKey,
        item: Option<Arc<str>>,
        change: Change,
    ) -> Result<Arc<Frame>, StoreError> {
        self.writable()?;
        let cell = self.find_or_create(key);
        let (frame, lsn) = {
            let mut group = cell.state.lock();
            // No mutation, but the frame still goes through the log so it is published after
            // the group's earlier writes.
            self.commit(&mut group, item, change, None)
        };
        self.durable(lsn).await?;
        Ok(frame)
    }

    /// Reads under the group lock, then waits until everything the read saw is durable, so a
    /// reader never sees a write that could still be lost.
    async fn read<R>(
        &self,
        key: &GroupKey,
        read: impl FnOnce(&Group) -> R,
    ) -> Result<Option<R>, StoreError> {
        let Some(cell) = self.find(key) else {
            return Ok(None);
        };
        let (out, lsn) = {
            let group = cell.state.lock();
            (read(&group), group.last_lsn)
        };
        self.durable(Some(lsn)).await?;
        Ok(Some(out))
    }

    pub async fn get(&self, key: &ItemKey) -> Result<Option<JsonText>, StoreError> {
        Ok(self
            .read(&key.group, |g| g.get(&key.item).cloned())
            .await?
            .flatten())
    }

    pub async fn list(&self, key: &GroupKey) -> Result<Vec<JsonText>, StoreError> {
        Ok(self.read(key, Group::values).await?.unwrap_or_default())
    }

    pub async fn list_groups(&self, stream: &str) -> Result<Vec<Arc<str>>, StoreError> {
        let groups = self
            .streams
            .read()
            .get(stream)
            .map_or_else(Vec::new, |groups| {
                groups
                    .iter()
                    .filter(|(_, cell)| cell.exists())
                    .map(|(name, _)| name.clone())
                    .collect()
            });
        self.all_durable().await?;
        Ok(groups)
    }

    pub async fn list_all(&self) -> Result<Vec<(Arc<str>, Vec<Arc<str>>)>, StoreError> {
        let all = self
            .streams
            .read()
            .iter()
            .filter_map(|(stream, groups)| {
                let existing: Vec<_> = groups
                    .iter()
                    .filter(|(_, cell)| cell.exists())
                    .map(|(name, _)| name.clone())
                    .collect();
                (!existing.is_empty()).then(|| (stream.clone(), existing))
            })
            .collect();
        self.all_durable().await?;
        Ok(all)
    }

    /// Waits until every change appended so far is durable. Called after reading a listing: a
    /// group's item count changes only after its write was appended, so this covers everything
    /// the listing saw.
    async fn all_durable(&self) -> Result<(), StoreError> {
        self.durable(self.log.as_ref().map(DurableLog::appended))
            .await
    }

    pub async fn snapshot<R>(
        &self,
        key: &GroupKey,
        item: Option<&str>,
        admit: impl FnOnce(Snapshot) -> R,
    ) -> Result<R, StoreError> {
        // The group's state is created if needed: the sync must carry the epoch its later
        // events will use.
        let cell = self.find_or_create(key);
        let (admitted, lsn) = {
            let group = cell.state.lock();
            let data = match item {
                Some(item) => SnapshotData::Item(group.get(item).cloned()),
                None => SnapshotData::Group(group.entries()),
            };
            let stamp = group.sequencer.snapshot(now_ms());
            (admit(Snapshot { stamp, data }), group.last_lsn)
        };
        // The sync goes out once the changes it shows are durable; when they never will be (a
        // failed commit), the caller must withdraw the subscription it admitted.
        self.durable(Some(lsn)).await?;
        Ok(admitted)
    }

    pub fn health(&self) -> Result<(), String> {
        self.writable().map_err(|e| e.to_string())
    }

    pub async fn close(&self) {
        if let Some(log) = &self.log {
            log.close().await;
        }
    }
}

#[cfg(test)]
mod durable_tests;
#[cfg(test)]
mod tests;
