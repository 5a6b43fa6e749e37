//! Per-item serialisation of `stream::update` within one instance.
//!
//! An update reads the item, applies its ops in Rust and commits with compare-and-set. Updates of
//! one item made on this instance run one at a time, so they never make each other retry: only
//! writers on other instances can, and conflicts stay rare however many local callers hammer
//! one item. (Other writes need no lock: each is one script, and `order` keeps trigger dispatch
//! in `seq` order.)
//!
//! The lock guards no memory; it is deliberately held across the read and the script call.
//! Entries are removed when the last holder or waiter lets go, so idle items cost nothing.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::OwnedMutexGuard;

type Gate = Arc<tokio::sync::Mutex<()>>;

pub(crate) struct KeyedLocks<K> {
    gates: Mutex<HashMap<K, Gate>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            gates: Mutex::default(),
        }
    }
}

/// Holds one key's lock.
pub(crate) struct KeyGuard<'a, K: Hash + Eq + Clone> {
    locks: &'a KeyedLocks<K>,
    key: K,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Hash + Eq + Clone> KeyedLocks<K> {
    pub(crate) async fn lock(&self, key: &K) -> KeyGuard<'_, K> {
        let gate = self.gates.lock().entry(key.clone()).or_default().clone();
        let guard = gate.lock_owned().await;
        KeyGuard {
            locks: self,
            key: key.clone(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.gates.lock().len()
    }
}

impl<K: Hash + Eq + Clone> Drop for KeyGuard<'_, K> {
    fn drop(&mut self) {
        let mut gates = self.locks.gates.lock();
        drop(self.guard.take());
        // Only the map's own reference left: nobody holds or awaits this gate.
        if gates
            .get(&self.key)
            .is_some_and(|gate| Arc::strong_count(gate) == 1)
        {
            gates.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_no_leftovers() {
        let locks = Arc::new(KeyedLocks::default());
        let g = "a".to_owned();
        let first = locks.lock(&g).await;
        let (l2, g2) = (locks.clone(), g.clone());
        let second = tokio::spawn(async move {
            let _guard = l2.lock(&g2).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "the second writer waits");
        // Another key is not held back.
        drop(locks.lock(&"b".to_owned()).await);
        drop(first);
        second.await.unwrap();
        assert_eq!(locks.len(), 0);
    }
}
