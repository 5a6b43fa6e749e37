//! The in-memory state of one group: items in insertion order plus the group's sequencer.

use iii_stream_domain::{GroupKey, JsonText, Sequencer};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A group's state behind its lock, plus an item count readable without the lock (listings only
/// need to know whether a group exists).
pub(crate) struct GroupCell {
    len: AtomicUsize,
    pub(crate) state: parking_lot::Mutex<Group>,
}

impl GroupCell {
    pub(crate) fn new(group: Group) -> Self {
        Self {
            len: AtomicUsize::new(group.len()),
            state: parking_lot::Mutex::new(group),
        }
    }

    /// A group exists exactly while it has at least one item.
    pub(crate) fn exists(&self) -> bool {
        self.len.load(Ordering::Acquire) > 0
    }

    /// Publishes the item count after a change made under the lock.
    pub(crate) fn sync_len(&self, group: &Group) {
        self.len.store(group.len(), Ordering::Release);
    }
}

struct Slot {
    order: u64,
    value: JsonText,
}

pub(crate) struct Group {
    pub(crate) key: GroupKey,
    items: HashMap<Arc<str>, Slot>,
    /// Insertion order: overwriting keeps an item's position, re-creating moves it to the end.
    order: BTreeMap<u64, Arc<str>>,
    next_order: u64,
    pub(crate) sequencer: Sequencer,
    /// Log position of the group's latest write; reads wait until it is durable.
    pub(crate) last_lsn: u64,
    /// Removed from the store (it was empty and nobody needed its numbering): whoever still
    /// holds the cell must look the group up again.
    pub(crate) retired: bool,
    /// Since when the group has had no items (refreshed by each event while empty).
    pub(crate) idle_since: Option<std::time::Instant>,
    /// In the store's idle queue.
    pub(crate) queued: bool,
}

impl Group {
    pub(crate) fn new(key: GroupKey, sequencer: Sequencer) -> Self {
        Self {
            key,
            items: HashMap::new(),
            order: BTreeMap::new(),
            next_order: 0,
            sequencer,
            last_lsn: 0,
            retired: false,
            idle_since: None,
            queued: false,
        }
    }

    /// Restores an item read back from disk with its original insertion position.
    pub(crate) fn restore(&mut self, order: u64, item: Arc<str>, value: JsonText) {
        self.order.insert(order, item.clone());
        self.items.insert(item, Slot { order, value });
        self.next_order = self.next_order.max(order + 1);
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn get(&self, item: &str) -> Option<&JsonText> {
        self.items.get(item).map(|slot| &slot.value)
    }

    /// Inserts or overwrites; returns the item's insertion position and its previous value.
    pub(crate) fn put(&mut self, item: &Arc<str>, value: JsonText) -> (u64, Option<JsonText>) {
        if let Some(slot) = self.items.get_mut(&**item) {
            let old = std::mem::replace(&mut slot.value, value);
            return (slot.order, Some(old));
        }
        let order = self.next_order;
        self.next_order += 1;
        self.order.insert(order, item.clone());
        self.items.insert(item.clone(), Slot { order, value });
        (order, None)
    }

    /// Removes an item; returns its insertion position and value if it existed.
    pub(crate) fn remove(&mut self, item: &str) -> Option<(u64, JsonText)> {
        let slot = self.items.remove(item)?;
        self.order.remove(&slot.order);
        Some((slot.order, slot.value))
    }

    /// The values in insertion order.
    pub(crate) fn values(&self) -> Vec<JsonText> {
        self.order
            .values()
            .filter_map(|item| self.items.get(item).map(|slot| slot.value.clone()))
            .collect()
    }

    /// The items with their ids, in insertion order.
    pub(crate) fn entries(&self) -> Vec<(Arc<str>, JsonText)> {
        self.order
            .values()
            .filter_map(|item| {
                self.items
                    .get(item)
                    .map(|slot| (item.clone(), slot.value.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn text(s: &str) -> JsonText {
        Arc::from(RawValue::from_string(s.to_owned()).unwrap())
    }

    fn listed(g: &Group) -> Vec<String> {
        g.values().iter().map(|v| v.get().to_owned()).collect()
    }

    #[test]
    fn insertion_order_survives_overwrite_and_moves_on_recreate() {
        let mut g = Group::new(GroupKey::new("s", "g"), Sequencer::new("e".into()));
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        g.put(&a, text("1"));
        g.put(&b, text("2"));
        g.put(&c, text("3"));
        assert_eq!(g.put(&a, text("4")).1.unwrap().get(), "1");
        assert_eq!(listed(&g), ["4", "2", "3"]);
        g.remove("b");
        g.put(&b, text("5"));
        assert_eq!(listed(&g), ["4", "3", "5"]);
        assert_eq!(g.len(), 3);
    }
}
