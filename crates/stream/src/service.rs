//! The service object: wiring of store, hub, triggers and engine, and its lifecycle.

use crate::fanout::Hub;
use crate::subscriber::frames;
use crate::triggers::{self, Dispatcher, Index, Kind};
use crate::{functions, triggers::dispatch_limits};
use iii_stream_config::{AdapterConfig, StoreMethod, StreamConfig};
use iii_stream_domain::{Frame, GroupKey};
use iii_stream_engine::Engine;
use iii_stream_metrics::{TypeLabel, metrics};
use iii_stream_protocol::RawValue;
use iii_stream_store::{
    EventSink, KvOptions, KvStore, RedisOptions, RedisStore, Snapshot, SnapshotData, Store,
    StoreError,
};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the store")]
    Store(#[from] StoreError),
}

/// Timeouts of the calls the service makes into workers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) auth: Duration,
    pub(crate) join: Duration,
    pub(crate) leave: Duration,
    pub(crate) condition: Duration,
    pub(crate) provider: Duration,
}

pub struct StreamService {
    pub(crate) engine: Engine,
    pub(crate) store: Store,
    pub(crate) hub: Arc<Hub>,
    pub(crate) index: Arc<Index>,
    pub(crate) timeouts: Timeouts,
    pub(crate) config: StreamConfig,
    /// Function calls running right now; shutdown lets them finish.
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// Leave notifications still being delivered; shutdown waits for them (bounded).
    pub(crate) leaving: Arc<AtomicUsize>,
}

fn kv_options(config: &StreamConfig) -> KvOptions {
    KvOptions {
        max_groups_per_stream: config.limits.max_groups_per_stream,
        idle_linger: Duration::from_millis(config.history.max_age_ms),
        max_idle_groups: config.history.max_idle_groups,
    }
}

/// A tenth of `history.max_age_ms`, between 1 and 30 seconds: channels outlive their last
/// subscriber by at most that much more than `max_age_ms`.
fn sweep_interval(config: &StreamConfig) -> Duration {
    Duration::from_millis(config.history.max_age_ms / 10)
        .clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Committed frames go to subscribers, and, when committed here, to `stream` triggers.
struct Sink {
    hub: Arc<Hub>,
    dispatcher: Arc<Dispatcher>,
}

impl EventSink for Sink {
    fn publish(&self, frame: &Arc<Frame>, local: bool) {
        self.hub.publish(frame);
        if local {
            self.committed(frame);
        }
    }

    fn committed(&self, frame: &Arc<Frame>) {
        metrics()
            .events
            .get_or_create(&TypeLabel {
                r#type: frame.event_type.as_str(),
            })
            .inc();
        self.dispatcher.dispatch(frame);
    }

    fn retains(&self, group: &GroupKey) -> bool {
        self.hub.retains(group)
    }

    fn resync(&self, group: &GroupKey, snapshot: &Snapshot) {
        let SnapshotData::Group(items) = &snapshot.data else {
            return;
        };
        // Built at most once each, and only if some subscription needs them.
        let values = OnceCell::new();
        let by_id = OnceCell::new();
        let stamp = &snapshot.stamp;
        self.hub
            .resync(group, stamp.epoch.clone(), stamp.seq, |sub| {
                match &sub.item {
                    None => {
                        let values: &RawValue = values.get_or_init(|| {
                            let values: Vec<&RawValue> = items.iter().map(|(_, v)| &**v).collect();
                            serde_json::value::to_raw_value(&values)
                                .unwrap_or_else(|_| RawValue::NULL.to_owned())
                        });
                        frames::sync(group, None, stamp, values, &sub.id)
                    }
                    Some(item) => {
                        let by_id: &HashMap<&str, &RawValue> = by_id
                            .get_or_init(|| items.iter().map(|(id, v)| (&**id, &**v)).collect());
                        let value = by_id.get(&**item).copied().unwrap_or(RawValue::NULL);
                        frames::sync(group, Some(item), stamp, value, &sub.id)
                    }
                }
            });
    }
}

impl StreamService {
    /// Opens the configured store and registers the functions and trigger types with `engine`.
    /// Must run inside the Tokio runtime that will serve the service.
    pub async fn open(engine: Engine, config: StreamConfig) -> Result<Arc<Self>, OpenError> {
        let hub = Arc::new(Hub::new(config.history.clone()));
        let index = Arc::new(Index::default());
        let dispatcher = Dispatcher::new(
            engine.clone(),
            index.clone(),
            config.triggers.max_concurrency,
            dispatch_limits(&config),
        );
        let sink: Arc<dyn EventSink> = Arc::new(Sink {
            hub: hub.clone(),
            dispatcher,
        });
        let store = match &config.adapter {
            AdapterConfig::Kv {
                store_method: StoreMethod::InMemory,
                ..
            } => Store::Kv(Box::new(
                KvStore::in_memory(sink).with_options(kv_options(&config)),
            )),
            AdapterConfig::Kv {
                store_method: StoreMethod::FileBased,
                file_path,
            } => Store::Kv(Box::new(
                KvStore::open(file_path, sink)?.with_options(kv_options(&config)),
            )),
            AdapterConfig::Redis {
                redis_url,
                connect_timeout_ms,
            } => {
                let options = RedisOptions {
                    url: redis_url.clone(),
                    connect_timeout: Duration::from_millis(*connect_timeout_ms),
                    max_events: config.history.max_events,
                    max_age_ms: config.history.max_age_ms,
                };
                Store::Redis(RedisStore::open(options, sink).await?)
            }
        };
        let t = &config.timeouts;
        let service = Arc::new(Self {
            engine: engine.clone(),
            store,
            hub,
            index: index.clone(),
            timeouts: Timeouts {
                auth: Duration::from_millis(t.auth_ms),
                join: Duration::from_millis(t.join_ms),
                leave: Duration::from_millis(t.leave_ms),
                condition: Duration::from_millis(t.condition_ms),
                provider: Duration::from_millis(t.provider_ms),
            },
            config,
            in_flight: Arc::default(),
            leaving: Arc::default(),
        });
        functions::register(&engine, &service);
        service.clone().sweep_periodically();
        for name in [triggers::STREAM, triggers::JOIN, triggers::LEAVE] {
            let kind = Kind {
                index: index.clone(),
                name,
            };
            engine.register_trigger_type(name, Arc::new(kind));
        }
        Ok(service)
    }

    /// `Err(reason)` when the service cannot serve (store failed or unreachable).
    pub fn health(&self) -> Result<(), String> {
        self.store.health()
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Function calls still running.
    pub fn calls_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// `stream:leave` notifications still being delivered.
    pub fn leaves_in_flight(&self) -> usize {
        self.leaving.load(Ordering::SeqCst)
    }

    /// Every `sweep` interval: drops aged history and the state of groups nobody needs any more
    /// (docs/limits.md). The task holds the service weakly and ends with it.
    fn sweep_periodically(self: Arc<Self>) {
        let every = sweep_interval(&self.config);
        let service = Arc::downgrade(&self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(service) = service.upgrade() else {
                    return;
                };
                service.hub.sweep();
                service.store.sweep();
            }
        });
    }

    /// Flushes and closes the store.
    pub async fn close(&self) {
        self.store.close().await;
    }
}
