//! The `kv` adapter: every group's state lives in process memory; with `file_based` each change
//! is also written to a redb database on disk, and acknowledged and published only once it is
//! durable there (see docs/storage.md).
//!
//! Each group has one lock. A write takes it, applies the change, numbers it with the group's
//! sequencer and hands the frame on (in memory: straight to the sink; durable: to the log, whose
//! committer publishes after the fsync), all before releasing it. So `seq` order, storage order
//! and publication order are one and the same.
//!
//! A group is in memory while it has items, while fan-out still needs its numbering
//! ([`EventSink::retains`]: subscribers, or resume history), and for `history.max_age_ms` after
//! its last event (so its numbering stays continuous); then [`KvStore::sweep`] removes it. At most
//! `history.max_idle_groups` empty groups are kept that way; beyond it the oldest go early. A
//! removed group is marked retired under its lock before it leaves the map, and every writer that
//! finds a retired group looks it up again, so no write ever lands in a removed group. Its next
//! write starts a new epoch. Memory thus follows live data and live subscriptions, not every name
//! a peer ever used (docs/limits.md).

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
use iii_stream_domain::idle::{Due, IdleQueue};
use iii_stream_domain::update::UpdateOp;
use iii_stream_domain::{Change, Frame, GroupKey, ItemKey, JsonText, Sequencer};
use iii_stream_metrics::{Limit, metrics};
pub(crate) use log::{DurableLog, LoadedGroup, Mutation, Record};
use parking_lot::{Mutex, RwLock};
use probe::WriteProbe;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Groups = BTreeMap<Arc<str>, BTreeMap<Arc<str>, Arc<GroupCell>>>;

/// How the kv store bounds the groups it keeps (docs/limits.md).
#[derive(Debug, Clone)]
pub struct KvOptions {
    /// `limits.max_groups_per_stream`: creating one more group in a full stream is refused.
    pub max_groups_per_stream: Option<usize>,
    /// `history.max_age_ms`: how long an empty group outlives its last event.
    pub idle_linger: Duration,
    /// `history.max_idle_groups`.
    pub max_idle_groups: usize,
}

impl Default for KvOptions {
    fn default() -> Self {
        Self {
            max_groups_per_stream: None,
            idle_linger: Duration::ZERO,
            max_idle_groups: 16_384,
        }
    }
}

pub struct KvStore {
    /// stream → group → state. Sorted maps give the listings their byte order for free.
    streams: RwLock<Groups>,
    options: KvOptions,
    /// Empty groups, oldest first.
    idle: Mutex<IdleQueue<GroupKey>>,
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
            idle: Mutex::new(IdleQueue::new(KvOptions::default().max_idle_groups)),
            options: KvOptions::default(),
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
        metrics()
            .groups
            .set(streams.values().map(|g| g.len() as i64).sum());
        Ok(Self {
            streams: RwLock::new(streams),
            idle: Mutex::new(IdleQueue::new(KvOptions::default().max_idle_groups)),
            options: KvOptions::default(),
            sink,
            log: Some(log),
            probe: Some(WriteProbe::new(dir)),
        })
    }

    pub fn with_options(mut self, options: KvOptions) -> Self {
        self.idle = Mutex::new(IdleQueue::new(options.max_idle_groups));
        self.options = options;
        self
    }

    fn find(&self, key: &GroupKey) -> Option<Arc<GroupCell>> {
        self.streams
            .read()
            .get(&key.stream)
            .and_then(|groups| groups.get(&key.group))
            .cloned()
    }

    fn find_or_create(&self, key: &GroupKey) -> Result<Arc<GroupCell>, StoreError> {
        if let Some(cell) = self.find(key) {
            return Ok(cell);
        }
        let mut streams = self.streams.write();
        let groups = streams.entry(key.stream.clone()).or_default();
        if let Some(cell) = groups.get(&key.group) {
            return Ok(cell.clone());
        }
        if let Some(limit) = self.options.max_groups_per_stream
            && groups.len() >= limit
        {
            metrics().limit_refused(Limit::GroupsPerStream);
            return Err(StoreError::GroupLimit {
                stream: key.stream.to_string(),
                limit,
            });
        }
        let mut group = Group::new(key.clone(), Sequencer::new(new_epoch()));
        // Queued from the start: a group created for something that then adds nothing (a join
        // that is refused, an event) must not stay for ever.
        let now = Instant::now();
        group.idle_since = Some(now);
        group.queued = true;
        self.idle.lock().push(now, key.clone());
        let cell = Arc::new(GroupCell::new(group));
        groups.insert(key.group.clone(), cell.clone());
        metrics().groups.inc();
        Ok(cell)
    }

    /// After a change under the group lock: an empty group is idle from now on.
    fn touch(&self, group: &mut Group) {
        if group.len() > 0 {
            group.idle_since = None;
            return;
        }
        let now = Instant::now();
        group.idle_since = Some(now);
        if !group.queued {
            group.queued = true;
            self.idle.lock().push(now, group.key.clone());
        }
    }

    /// Runs `f` under the lock of the group's live state, creating the group if needed.
    fn with_group<R>(
        &self,
        key: &GroupKey,
        f: impl FnOnce(&GroupCell, &mut Group) -> R,
    ) -> Result<R, StoreError> {
        loop {
            let cell = self.find_or_create(key)?;
            let mut group = cell.state.lock();
            if !group.retired {
                return Ok(f(&cell, &mut group));
            }
        }
    }

    /// Runs `f` under the lock of the group's live state; `None` if the group has none.
    fn with_existing_group<R>(
        &self,
        key: &GroupKey,
        f: impl FnOnce(&GroupCell, &mut Group) -> R,
    ) -> Option<R> {
        loop {
            let cell = self.find(key)?;
            let mut group = cell.state.lock();
            if !group.retired {
                return Some(f(&cell, &mut group));
            }
        }
    }

    /// Removes the empty groups idle for `history.max_age_ms` (or the oldest beyond
    /// `history.max_idle_groups`) that are durable and that fan-out no longer needs. Run
    /// periodically by the service.
    pub fn sweep(&self) {
        let due = self
            .idle
            .lock()
            .due(Instant::now(), self.options.idle_linger);
        for chunk in due.chunks(1024) {
            self.remove_idle(chunk);
        }
    }

    fn remove_idle(&self, due: &[Due<GroupKey>]) {
        let now = Instant::now();
        let mut streams = self.streams.write();
        for Due { key, forced } in due {
            let Some(groups) = streams.get_mut(&key.stream) else {
                continue;
            };
            let Some(cell) = groups.get(&key.group) else {
                continue;
            };
            let mut group = cell.state.lock();
            group.queued = false;
            let Some(since) = group.idle_since.filter(|_| group.len() == 0) else {
                continue; // it has items again; queued anew when it next empties
            };
            let durable = self
                .log
                .as_ref()
                .is_none_or(|log| log.is_durable(group.last_lsn));
            let young = !forced && now.saturating_duration_since(since) < self.options.idle_linger;
            if young || !durable || self.sink.retains(key) {
                let again = if young { since } else { now };
                group.queued = true;
                self.idle.lock().push(again, key.clone());
                continue;
            }
            group.retired = true;
            drop(group);
            groups.remove(&key.group);
            if groups.is_empty() {
                streams.remove(&key.stream);
            }
            metrics().groups.dec();
        }
    }

    /// Groups with state in memory (diagnostics and tests).
    pub fn group_count(&self) -> usize {
        self.streams.read().values().map(BTreeMap::len).sum()
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
        self.touch(group);
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
        let (old, frame, lsn) = self.with_group(&key.group, |cell, group| {
            let (order, old) = group.put(&key.item, value.clone());
            let mutation = Mutation::Put {
                group: key.group.clone(),
                order,
                item: key.item.clone(),
                value: value.clone(),
            };
            let change = Change::upsert(old.is_some(), value);
            let (frame, lsn) = self.commit(group, Some(key.item.clone()), change, Some(mutation));
            cell.sync_len(group);
            (old, frame, lsn)
        })?;
        self.durable(lsn).await?;
        Ok(Written { old, frame })
    }

    pub async fn update(&self, key: &ItemKey, ops: &[UpdateOp]) -> Result<Updated, StoreError> {
        self.writable()?;
        let (updated, lsn) = self.with_group(&key.group, |cell, group| {
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
            let (frame, lsn) = self.commit(group, Some(key.item.clone()), change, Some(mutation));
            cell.sync_len(group);
            let updated = Updated {
                old,
                new,
                errors,
                frame,
            };
            Ok::<_, StoreError>((updated, lsn))
        })??;
        self.durable(lsn).await?;
        Ok(updated)
    }

    pub async fn delete(&self, key: &ItemKey) -> Result<Deleted, StoreError> {
        self.writable()?;
        let deleted = self.with_existing_group(&key.group, |cell, group| {
            match group.remove(&key.item) {
                // Nothing to remove, but "missing" may be the work of a delete not yet durable:
                // like a read, the answer waits until everything it saw is.
                None => (None, Some(group.last_lsn)),
                Some((order, old)) => {
                    let mutation = Mutation::Remove {
                        group: key.group.clone(),
                        order,
                    };
                    let change = Change::Delete(old.clone());
                    let (frame, lsn) =
                        self.commit(group, Some(key.item.clone()), change, Some(mutation));
                    cell.sync_len(group);
                    (Some((old, frame)), lsn)
                }
            }
        });
        let Some((removed, lsn)) = deleted else {
            return Ok(Deleted {
                old: None,
                frame: None,
            });
        };
        self.durable(lsn).await?;
        let (old, frame) = removed.unzip();
        Ok(Deleted { old, frame })
    }

    pub async fn emit(
        &self,
        key: &GroupKey,
        item: Option<Arc<str>>,
        change: Change,
    ) -> Result<Arc<Frame>, StoreError> {
        self.writable()?;
        // No mutation, but the frame still goes through the log so it is published after the
        // group's earlier writes.
        let (frame, lsn) =
            self.with_group(key, |_, group| self.commit(group, item, change, None))?;
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
        // events will use. It stays while the subscription keeps the group's channel.
        let (admitted, lsn) = self.with_group(key, |_, group| {
            let data = match item {
                Some(item) => SnapshotData::Item(group.get(item).cloned()),
                None => SnapshotData::Group(group.entries()),
            };
            let stamp = group.sequencer.snapshot(now_ms());
            let published = self
                .log
                .as_ref()
                .is_none_or(|log| log.is_durable(group.last_lsn));
            let snapshot = Snapshot {
                stamp,
                data,
                published,
            };
            (admit(snapshot), group.last_lsn)
        })?;
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
