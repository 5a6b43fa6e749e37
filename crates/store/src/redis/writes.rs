//! set, update, delete and emit: one script each (see `lua/`), pipelined on the command
//! connection; each frame goes to trigger dispatch through `order`, in `seq` order.

use super::error::Error;
use super::keys::{GroupKeys, STREAMS, frame_head};
use super::reply::{self, Committed};
use super::scripts::SCRIPTS;
use super::{Shared, reads::json_text};
use crate::clock::new_epoch;
use crate::update::apply_to_stored;
use crate::{Deleted, StoreError, Updated, Written};
use iii_stream_domain::update::UpdateOp;
use iii_stream_domain::{Change, EventType, Frame, GroupKey, ItemKey, JsonText, Stamp};
use iii_stream_metrics::metrics;
use iii_stream_protocol::frame::{CustomEvent, EventBody};
use redis::{Script, ScriptInvocation, Value};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `stream::update` fails after this many lost compare-and-set rounds in a row.
const MAX_CONFLICTS: usize = 100;

impl Shared {
    /// A write script invocation with the common keys and arguments (`lua/commit.lua`).
    fn write<'a>(
        &self,
        script: &'a Script,
        keys: &GroupKeys,
        group: &GroupKey,
        item: Option<&str>,
    ) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.data)
            .key(&keys.order)
            .key(&keys.meta)
            .key(&keys.hist)
            .key(STREAMS)
            .key(&keys.groups)
            .arg(&keys.channel)
            .arg(&*new_epoch())
            .arg(self.options.max_events)
            .arg(self.options.empty_group_ttl_ms())
            .arg(&*group.stream)
            .arg(&*group.group)
            .arg(frame_head(group, item));
        invocation
    }

    async fn run(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<Option<Committed>, StoreError> {
        let started = Instant::now();
        let value: Value = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.failed(e))?;
        metrics()
            .store_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        reply::committed(value).map_err(|e| self.failed(e))
    }

    /// The frame of a committed event, with the body exactly as the script published it.
    fn frame(
        &self,
        group: &GroupKey,
        item: Option<Arc<str>>,
        event_type: EventType,
        committed: Committed,
    ) -> Arc<Frame> {
        metrics().event_serializations.inc();
        let stamp = Stamp {
            epoch: committed.epoch,
            seq: committed.seq,
            timestamp: committed.timestamp,
        };
        let frame = match RawValue::from_string(committed.body) {
            Ok(body) => Frame {
                group: group.clone(),
                item,
                event_type,
                stamp,
                body,
            },
            Err(error) => {
                // Only a delete of a value another tool stored can get here (the script checks
                // JSON syntax less strictly than serde); triggers then see `data: null`.
                tracing::warn!(%error, ?group, "published frame is not valid JSON");
                let null: JsonText = Arc::from(RawValue::NULL.to_owned());
                let change = match event_type {
                    EventType::Create => Change::Create(null),
                    EventType::Update => Change::Update(null),
                    EventType::Delete => Change::Delete(null),
                    EventType::Event => Change::Custom {
                        kind: String::new(),
                        data: null,
                    },
                };
                Frame::new(group.clone(), item, &change, stamp)
            }
        };
        Arc::new(frame)
    }

    pub(crate) async fn set(&self, key: &ItemKey, value: JsonText) -> Result<Written, StoreError> {
        self.writable()?;
        let keys = GroupKeys::new(&key.group);
        let mut invocation = self.write(&SCRIPTS.set, &keys, &key.group, Some(&key.item));
        invocation.arg(&*key.item).arg(value.get());
        let ticket = self.order.start(&*self.sink, &key.group);
        let committed = self
            .run(&invocation)
            .await?
            .ok_or_else(|| self.failed(Error::Reply("set returned nil")))?;
        let existed = committed.old.is_some();
        // A previous value that is not JSON is overwritten and reported as null (k).
        let old = committed
            .old
            .as_deref()
            .and_then(|old| json_text(&key.group, &key.item, old).ok());
        let event = if existed {
            EventType::Update
        } else {
            EventType::Create
        };
        let frame = self.frame(&key.group, Some(key.item.clone()), event, committed);
        ticket.commit(&frame);
        Ok(Written { old, frame })
    }

    pub(crate) async fn update(
        &self,
        key: &ItemKey,
        ops: &[UpdateOp],
    ) -> Result<Updated, StoreError> {
        self.writable()?;
        let keys = GroupKeys::new(&key.group);
        let _lock = self.item_locks.lock(key).await;
        let mut conflicts = 0;
        loop {
            let stored: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(&keys.data)
                .arg(&*key.item)
                .query_async(&mut self.conn())
                .await
                .map_err(|e| self.failed(e))?;
            let old = stored
                .as_deref()
                .map(|text| json_text(&key.group, &key.item, text))
                .transpose()?;
            // The one implementation of the ops, shared with kv: results are identical.
            let (new, errors) = apply_to_stored(key, old.as_ref(), ops)?;
            let mut invocation = self.write(&SCRIPTS.update, &keys, &key.group, Some(&key.item));
            invocation.arg(&*key.item).arg(new.get());
            match &stored {
                None => invocation.arg("absent").arg(""),
                Some(text) => invocation.arg("equals").arg(text.as_slice()),
            };
            let ticket = self.order.start(&*self.sink, &key.group);
            if let Some(committed) = self.run(&invocation).await? {
                let event = if old.is_some() {
                    EventType::Update
                } else {
                    EventType::Create
                };
                let frame = self.frame(&key.group, Some(key.item.clone()), event, committed);
                ticket.commit(&frame);
                return Ok(Updated {
                    old,
                    new,
                    errors,
                    frame,
                });
            }
            // Another instance wrote the item between our read and our compare-and-set.
            conflicts += 1;
            if conflicts >= MAX_CONFLICTS {
                return Err(Error::Contended {
                    item: key.item.to_string(),
                    attempts: conflicts,
                }
                .into());
            }
            tokio::time::sleep(backoff(conflicts)).await;
        }
    }

    pub(crate) async fn delete(&self, key: &ItemKey) -> Result<Deleted, StoreError> {
        self.writable()?;
        let keys = GroupKeys::new(&key.group);
        let mut invocation = self.write(&SCRIPTS.delete, &keys, &key.group, Some(&key.item));
        invocation.arg(&*key.item);
        let ticket = self.order.start(&*self.sink, &key.group);
        let Some(committed) = self.run(&invocation).await? else {
            return Ok(Deleted {
                old: None,
                frame: None,
            });
        };
        let old = committed
            .old
            .as_deref()
            .and_then(|old| json_text(&key.group, &key.item, old).ok());
        let frame = self.frame(
            &key.group,
            Some(key.item.clone()),
            EventType::Delete,
            committed,
        );
        ticket.commit(&frame);
        Ok(Deleted {
            old,
            frame: Some(frame),
        })
    }

    pub(crate) async fn emit(
        &self,
        group: &GroupKey,
        item: Option<Arc<str>>,
        change: Change,
    ) -> Result<Arc<Frame>, StoreError> {
        self.writable()?;
        let event = match &change {
            Change::Create(data) => EventBody::Create { data },
            Change::Update(data) => EventBody::Update { data },
            Change::Delete(data) => EventBody::Delete { data },
            Change::Custom { kind, data } => EventBody::Event {
                event: CustomEvent { kind, data },
            },
        };
        // Serialising borrowed strings and valid raw JSON cannot fail.
        let event = serde_json::to_string(&event).unwrap_or_default();
        let keys = GroupKeys::new(group);
        let mut invocation = self.write(&SCRIPTS.emit, &keys, group, item.as_deref());
        invocation.arg(event);
        let ticket = self.order.start(&*self.sink, group);
        let committed = self
            .run(&invocation)
            .await?
            .ok_or_else(|| self.failed(Error::Reply("emit returned nil")))?;
        let frame = self.frame(group, item, change.event_type(), committed);
        ticket.commit(&frame);
        Ok(frame)
    }
}

/// Jittered, growing pause after the `n`th lost compare-and-set (up to ~3 ms).
fn backoff(n: usize) -> Duration {
    let cap_us = 50u64 << n.min(6);
    Duration::from_micros(rand::random_range(0..=cap_us))
}
