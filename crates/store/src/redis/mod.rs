//! The `redis` adapter: state shared through one Redis server, so that several iii-stream
//! processes serve the same streams (improvements.md k; layout and behaviour in docs/redis.md).
//!
//! - Writes run one Lua script each (`lua/`) that applies the change, numbers it, appends it to
//!   the group's history, maintains the listing index and publishes the frame on the group's
//!   channel, atomically. The writing instance hands the frame to `stream` trigger dispatch
//!   ([`EventSink::committed`]); fan-out to subscribers, on every instance including the writer,
//!   comes from pub/sub.
//! - The relay task ([`relay`]) owns the pub/sub connection: it subscribes to the channels of
//!   groups with local subscribers, forwards their frames to the sink in `seq` order, and after a
//!   reconnect catches up from the history or re-syncs the affected subscriptions.
//! - Commands use one multiplexed, self-reconnecting connection: no lock serialises them. Writes
//!   are pipelined; [`order`] hands their frames to trigger dispatch in `seq` order, and
//!   [`locks`] keeps local updates of one item from competing with each other.

mod error;
mod health;
pub(crate) mod keys;
mod locks;
mod order;
mod reads;
mod registry;
mod relay;
mod reply;
mod scripts;
mod wire;
mod writes;

#[cfg(test)]
mod tests;

use crate::{Deleted, EventSink, Replay, Snapshot, StoreError, Updated, Written};
use error::Error;
use health::Health;
use iii_stream_domain::update::UpdateOp;
use iii_stream_domain::{Change, Frame, GroupKey, ItemKey, JsonText};
use locks::KeyedLocks;
use order::CommitOrder;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use registry::Registry;
use relay::{Command, Relay};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How to reach Redis and how much history to keep there.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port][/db]`.
    pub url: String,
    /// Startup fails if Redis cannot be reached within this time; also bounds each connection
    /// attempt and how long a join waits for the pub/sub connection to come back.
    pub connect_timeout: Duration,
    /// `history.max_events`: frames kept per group for resume and catch-up (0: none).
    pub max_events: usize,
    /// `history.max_age_ms`: older frames are not replayed; also the TTL of an empty group's
    /// sequencer state.
    pub max_age_ms: u64,
}

impl RedisOptions {
    /// TTL of the sequencer state and history of a group without items.
    fn empty_group_ttl_ms(&self) -> u64 {
        self.max_age_ms.max(1)
    }
}

/// Commands wait at most this long for a reply before failing (a Redis that stopped answering
/// must not hang function calls).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RedisStore {
    shared: Arc<Shared>,
    relay: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

/// What the store's methods and the relay task share.
pub(crate) struct Shared {
    conn: ConnectionManager,
    sink: Arc<dyn EventSink>,
    registry: Registry,
    health: Health,
    /// Local `stream::update`s of one item run one at a time.
    item_locks: KeyedLocks<ItemKey>,
    order: CommitOrder,
    commands: mpsc::UnboundedSender<Command>,
    options: RedisOptions,
    closed: AtomicBool,
}

impl RedisStore {
    /// Connects the command and pub/sub connections and starts the relay. Fails with a clear
    /// message if Redis cannot be reached within `connect_timeout`.
    pub async fn open(options: RedisOptions, sink: Arc<dyn EventSink>) -> Result<Self, StoreError> {
        let client = redis::Client::open(options.url.as_str())
            .map_err(|e| StoreError::Open(format!("invalid redis_url: {e}")))?;
        let info = client.get_connection_info();
        let target = format!("{}/{}", info.addr(), info.redis_settings().db());
        let within = options.connect_timeout.as_millis();
        let unreachable = |e: &dyn std::fmt::Display| {
            StoreError::Open(format!(
                "cannot reach redis at {target} within {within} ms: {e}"
            ))
        };
        // Commands fail fast while Redis is down (one connection attempt, no retry loop): the
        // relay reports the outage and a later command reconnects.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connect = async {
            let mut conn = ConnectionManager::new_with_config(client.clone(), config).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            let pubsub = client.get_async_pubsub().await?;
            Ok::<_, redis::RedisError>((conn, pubsub))
        };
        let (conn, pubsub) = tokio::time::timeout(options.connect_timeout, connect)
            .await
            .map_err(|_| unreachable(&"timed out"))?
            .map_err(|e| unreachable(&e))?;
        let (commands, received) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            conn,
            sink,
            registry: Registry::default(),
            health: Health::default(),
            item_locks: KeyedLocks::default(),
            order: CommitOrder::default(),
            commands,
            options,
            closed: AtomicBool::new(false),
        });
        let relay = Relay::new(client, shared.clone(), received);
        let task = tokio::spawn(relay.run(pubsub));
        if !shared
            .registry
            .wait_live(shared.options.connect_timeout)
            .await
        {
            task.abort();
            return Err(unreachable(&"the pub/sub connection did not come up"));
        }
        tracing::info!(redis = %target, "redis adapter connected");
        Ok(Self {
            shared,
            relay: parking_lot::Mutex::new(Some(task)),
        })
    }

    pub async fn set(&self, key: &ItemKey, value: JsonText) -> Result<Written, StoreError> {
        self.shared.set(key, value).await
    }

    pub async fn update(&self, key: &ItemKey, ops: &[UpdateOp]) -> Result<Updated, StoreError> {
        self.shared.update(key, ops).await
    }

    pub async fn delete(&self, key: &ItemKey) -> Result<Deleted, StoreError> {
        self.shared.delete(key).await
    }

    pub async fn emit(
        &self,
        group: &GroupKey,
        item: Option<Arc<str>>,
        change: Change,
    ) -> Result<Arc<Frame>, StoreError> {
        self.shared.emit(group, item, change).await
    }

    pub async fn get(&self, key: &ItemKey) -> Result<Option<JsonText>, StoreError> {
        self.shared.get(key).await
    }

    pub async fn list(&self, group: &GroupKey) -> Result<Vec<JsonText>, StoreError> {
        self.shared.list(group).await
    }

    pub async fn list_groups(&self, stream: &str) -> Result<Vec<Arc<str>>, StoreError> {
        self.shared.list_groups(stream).await
    }

    pub async fn list_all(&self) -> Result<Vec<(Arc<str>, Vec<Arc<str>>)>, StoreError> {
        self.shared.list_all().await
    }

    pub async fn snapshot<R>(
        &self,
        group: &GroupKey,
        item: Option<&str>,
        admit: impl FnOnce(Snapshot) -> R,
    ) -> Result<R, StoreError> {
        self.shared.snapshot(group, item, admit).await
    }

    pub async fn replay(
        &self,
        group: &GroupKey,
        epoch: &str,
        seq: u64,
    ) -> Result<Option<Replay>, StoreError> {
        self.shared.replay(group, epoch, seq).await
    }

    /// Subscribes to the group's channel (refcounted) and waits until Redis confirmed it, so a
    /// snapshot read afterwards misses no frame. While the connection is down this returns at
    /// once: the reconnect subscribes every watched group before snapshots may be read.
    pub async fn watch(&self, group: &GroupKey) -> Result<(), StoreError> {
        let Some(channel) = self.shared.registry.acquire(group) else {
            return Ok(());
        };
        let (done, confirmed) = tokio::sync::oneshot::channel();
        if self
            .shared
            .commands
            .send(Command::Subscribe { channel, done })
            .is_err()
        {
            return Err(StoreError::Closed);
        }
        // A connection lost meanwhile drops `done`; the reconnect then covers this group.
        let _ = tokio::time::timeout(self.shared.options.connect_timeout, confirmed).await;
        Ok(())
    }

    pub fn unwatch(&self, group: &GroupKey) {
        if let Some(channel) = self.shared.registry.release(group) {
            let _ = self.shared.commands.send(Command::Unsubscribe { channel });
        }
    }

    pub fn health(&self) -> Result<(), String> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err("store is closed".into());
        }
        self.shared.health.check()
    }

    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(task) = self.relay.lock().take() {
            task.abort();
        }
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(task) = self.relay.lock().take() {
            task.abort();
        }
    }
}

impl Shared {
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Converts an error for the caller, noting an outage for `/healthz`.
    fn failed(&self, e: impl Into<Error>) -> StoreError {
        let e = e.into();
        if e.is_unreachable() {
            self.health.problem(e.to_string());
        }
        e.into()
    }
}
