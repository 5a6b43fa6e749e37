//! Reads: get, list, the listings (from the stream/group index, never KEYS or SCAN), join
//! snapshots and resumes (each read atomically with the group's epoch and seq).

use super::error::Error;
use super::keys::{GroupKeys, STREAMS, groups_key};
use super::registry::{Position, Recorded};
use super::relay::Command;
use super::reply;
use super::scripts::SCRIPTS;
use super::{Shared, wire};
use crate::clock::new_epoch;
use crate::{Replay, Snapshot, SnapshotData, StoreError};
use iii_stream_domain::{GroupKey, ItemKey, JsonText, Stamp};
use redis::Value;
use serde_json::value::RawValue;
use std::sync::Arc;

/// How many times a snapshot or resume is read when reconnects keep overtaking it.
const READ_ATTEMPTS: usize = 5;

/// A stored value as JSON text; an error naming the item if it is not valid JSON.
pub(crate) fn json_text(
    group: &GroupKey,
    item: &str,
    bytes: &[u8],
) -> Result<JsonText, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| RawValue::from_string(text.to_owned()).ok())
        .map(Arc::from)
        .ok_or_else(|| StoreError::CorruptValue {
            group: group.clone(),
            item: item.to_owned(),
        })
}

/// Names of a set reply, sorted by byte order; names that are not UTF-8 (written by other
/// tools) are skipped.
fn sorted_names(members: Vec<Vec<u8>>) -> Vec<Arc<str>> {
    let mut names: Vec<Arc<str>> = members
        .into_iter()
        .filter_map(|m| String::from_utf8(m).ok())
        .map(Arc::from)
        .collect();
    names.sort();
    names
}

/// A snapshot as the script returned it.
pub(crate) struct Read {
    pub(crate) stamp: Stamp,
    data: Value,
}

impl Read {
    pub(crate) fn position(&self) -> Position {
        Position {
            epoch: self.stamp.epoch.clone(),
            seq: self.stamp.seq,
        }
    }

    /// The group's items; with `lenient`, values that are not JSON are skipped (re-syncs)
    /// instead of failing the read (joins, as `stream::list` does).
    pub(crate) fn group(
        self,
        group: &GroupKey,
        lenient: bool,
    ) -> Result<Vec<(Arc<str>, JsonText)>, StoreError> {
        let pairs = reply::pairs(self.data)?;
        let mut items = Vec::with_capacity(pairs.len());
        for (id, value) in pairs {
            match json_text(group, &id, &value) {
                Ok(value) => items.push((Arc::from(id), value)),
                Err(error) if lenient => {
                    tracing::warn!(%error, "skipping a stored value that is not JSON");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(items)
    }

    fn item(self, group: &GroupKey, item: &str) -> Result<Option<JsonText>, StoreError> {
        reply::bytes(self.data)?
            .map(|value| json_text(group, item, &value))
            .transpose()
    }
}

impl Shared {
    pub(crate) async fn get(&self, key: &ItemKey) -> Result<Option<JsonText>, StoreError> {
        let keys = GroupKeys::new(&key.group);
        let stored: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(&keys.data)
            .arg(&*key.item)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        stored
            .map(|value| json_text(&key.group, &key.item, &value))
            .transpose()
    }

    pub(crate) async fn list(&self, group: &GroupKey) -> Result<Vec<JsonText>, StoreError> {
        let keys = GroupKeys::new(group);
        let value: Value = SCRIPTS
            .list
            .key(&keys.data)
            .key(&keys.order)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        let mut values = Vec::new();
        for (id, value) in reply::pairs(value)? {
            values.push(json_text(group, &id, &value)?);
        }
        Ok(values)
    }

    pub(crate) async fn list_groups(&self, stream: &str) -> Result<Vec<Arc<str>>, StoreError> {
        let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
            .arg(groups_key(stream))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(sorted_names(members))
    }

    pub(crate) async fn list_all(&self) -> Result<Vec<(Arc<str>, Vec<Arc<str>>)>, StoreError> {
        let mut conn = self.conn();
        let streams: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
            .arg(STREAMS)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        let streams = sorted_names(streams);
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for stream in &streams {
            pipe.cmd("SMEMBERS").arg(groups_key(stream));
        }
        let groups: Vec<Vec<Vec<u8>>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(streams
            .into_iter()
            .zip(groups)
            .map(|(stream, groups)| (stream, sorted_names(groups)))
            .filter(|(_, groups)| !groups.is_empty())
            .collect())
    }

    /// Reads a snapshot with its stamp (creating the group's sequencer state if it has none).
    pub(crate) async fn read_snapshot(
        &self,
        keys: &GroupKeys,
        item: Option<&str>,
    ) -> Result<Read, Error> {
        let mut invocation = SCRIPTS.snapshot.prepare_invoke();
        invocation
            .key(&keys.data)
            .key(&keys.order)
            .key(&keys.meta)
            .key(&keys.hist)
            .arg(&*new_epoch())
            .arg(self.options.empty_group_ttl_ms());
        match item {
            Some(item) => invocation.arg("item").arg(item),
            None => invocation.arg("group").arg(""),
        };
        let value: Value = invocation.invoke_async(&mut self.conn()).await?;
        let mut parts = reply::array(value)?.into_iter();
        let mut next = || parts.next().ok_or(Error::Reply("short snapshot reply"));
        let epoch: Arc<str> = reply::text(next()?)?.into();
        let seq = reply::uint(next()?)?;
        let timestamp = reply::uint(next()?)?;
        let data = next()?;
        Ok(Read {
            stamp: Stamp {
                epoch,
                seq,
                timestamp,
            },
            data,
        })
    }

    /// Waits until the relay is live; returns the connection generation a read starts in.
    async fn begin_read(&self) -> Result<u64, StoreError> {
        if self.registry.wait_live(self.options.connect_timeout).await {
            Ok(self.registry.generation())
        } else {
            Err(self.failed(Error::NotLive))
        }
    }

    /// Records the position a read of `group` returned; false if a reconnect happened meanwhile
    /// and the read must be repeated (see `registry`).
    fn finish_read(&self, group: &GroupKey, generation: u64, at: &Position) -> bool {
        match self.registry.record(group, generation, at) {
            Recorded::Retry => return false,
            Recorded::Resync => {
                let _ = self.commands.send(Command::Resync {
                    group: group.clone(),
                });
            }
            Recorded::Ok => {}
        }
        true
    }

    pub(crate) async fn snapshot<R>(
        &self,
        group: &GroupKey,
        item: Option<&str>,
        admit: impl FnOnce(Snapshot) -> R,
    ) -> Result<R, StoreError> {
        let keys = GroupKeys::new(group);
        let mut attempts = 0;
        let read = loop {
            let generation = self.begin_read().await?;
            let read = self
                .read_snapshot(&keys, item)
                .await
                .map_err(|e| self.failed(e))?;
            if self.finish_read(group, generation, &read.position()) {
                break read;
            }
            attempts += 1;
            if attempts == READ_ATTEMPTS {
                return Err(self.failed(Error::NotLive));
            }
        };
        let stamp = read.stamp.clone();
        let data = match item {
            Some(item) => SnapshotData::Item(read.item(group, item)?),
            None => SnapshotData::Group(read.group(group, false)?),
        };
        Ok(admit(Snapshot {
            stamp,
            data,
            published: true,
        }))
    }

    /// The frames after `after` with the group's current epoch and seq, or `None` if the group
    /// has no sequencer state (`Some((epoch, seq, now, None))` if the history no longer holds
    /// them all).
    pub(crate) async fn read_history(
        &self,
        keys: &GroupKeys,
        after: u64,
    ) -> Result<Option<History>, Error> {
        let value: Value = SCRIPTS
            .history
            .key(&keys.meta)
            .key(&keys.hist)
            .arg(after)
            .invoke_async(&mut self.conn())
            .await?;
        if value == Value::Nil {
            return Ok(None);
        }
        let mut parts = reply::array(value)?.into_iter();
        let mut next = || parts.next().ok_or(Error::Reply("short history reply"));
        let epoch: Arc<str> = reply::text(next()?)?.into();
        let seq = reply::uint(next()?)?;
        let now = reply::uint(next()?)?;
        let frames = match next()? {
            Value::Nil => None,
            list => Some(
                reply::array(list)?
                    .into_iter()
                    .map(reply::text)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Some(History {
            at: Position { epoch, seq },
            now,
            frames,
        }))
    }

    /// A resume from `(epoch, seq)`: the missed frames, if the Redis history still holds all of
    /// them and none is older than `history.max_age_ms`; `None` means "send a full sync".
    pub(crate) async fn replay(
        &self,
        group: &GroupKey,
        epoch: &str,
        since: u64,
    ) -> Result<Option<Replay>, StoreError> {
        if self.options.max_events == 0 {
            return Ok(None);
        }
        let keys = GroupKeys::new(group);
        let mut attempts = 0;
        let history = loop {
            let generation = self.begin_read().await?;
            let history = self
                .read_history(&keys, since)
                .await
                .map_err(|e| self.failed(e))?;
            let Some(history) = history else {
                return Ok(None);
            };
            if self.finish_read(group, generation, &history.at) {
                break history;
            }
            attempts += 1;
            if attempts == READ_ATTEMPTS {
                return Err(self.failed(Error::NotLive));
            }
        };
        let History { at, now, frames } = history;
        if &*at.epoch != epoch || since > at.seq {
            return Ok(None);
        }
        let Some(bodies) = frames else {
            return Ok(None);
        };
        let mut frames = Vec::with_capacity(bodies.len());
        for (expected, body) in (since + 1..).zip(bodies) {
            let Ok(frame) = wire::parse(group, body) else {
                return Ok(None);
            };
            if frame.seq() != expected || frame.stamp.epoch != at.epoch {
                return Ok(None);
            }
            frames.push(Arc::new(frame));
        }
        if frames.len() as u64 != at.seq - since {
            return Ok(None);
        }
        if frames
            .first()
            .is_some_and(|f| f.stamp.timestamp.saturating_add(self.options.max_age_ms) < now)
        {
            return Ok(None);
        }
        Ok(Some(Replay {
            epoch: at.epoch,
            seq: at.seq,
            frames,
        }))
    }
}

/// What `read_history` found.
pub(crate) struct History {
    pub(crate) at: Position,
    /// Redis server time (ms).
    pub(crate) now: u64,
    pub(crate) frames: Option<Vec<String>>,
}
