//! One subscriber connection's subscriptions: the join pipeline (stream.md §8.4), leave, and the
//! end of the connection.

use super::frames;
use super::gate::Lifecycle;
use crate::StreamService;
use crate::fanout::{Outbox, Start, Started, Subscription};
use crate::functions::{Function, provider_id};
use iii_stream_domain::names::is_valid_name;
use iii_stream_domain::{GroupKey, Stamp};
use iii_stream_engine::CallOptions;
use iii_stream_engine::rate::TokenBucket;
use iii_stream_metrics::{Limit, OutcomeLabel, metrics};
use iii_stream_protocol::RawValue;
use iii_stream_protocol::frame::RejectReason;
use iii_stream_protocol::subscriber::{ClientMessage, Join, Since, decode_client_message};
use iii_stream_protocol::url::StreamPath;
use iii_stream_store::{SnapshotData, StoreError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How many times a join retries a snapshot that publication overtook.
const SNAPSHOT_ATTEMPTS: usize = 3;

/// Whether a join stays inside the path a socket was opened at.
fn within(path: &StreamPath, join: &Join) -> bool {
    join.stream_name == path.stream
        && join.group_id == path.group
        && (path.item.is_none() || join.item_id == path.item)
}

pub struct Session {
    service: Arc<StreamService>,
    outbox: Arc<Outbox>,
    /// The auth function's `context`, `null` when there is none.
    context: Box<RawValue>,
    subscriptions: Mutex<HashMap<Arc<str>, Arc<Subscription>>>,
    /// Store watches taken by this connection, per group.
    watches: Mutex<HashMap<GroupKey, usize>>,
    /// Opened at a `/stream/{stream}/{group}[/{item}]` path: the auth function saw that path, so
    /// a `join` outside it (another stream or group, or another item when the path named one)
    /// is refused and cannot bypass a check of the path.
    scope: Option<StreamPath>,
    joins: Mutex<TokenBucket>,
}

impl StreamService {
    /// A session for a connection whose frames go to `outbox`; `scope` for a socket opened at a
    /// `/stream/...` path.
    pub fn session(
        self: &Arc<Self>,
        context: Option<Arc<RawValue>>,
        outbox: Arc<Outbox>,
        scope: Option<StreamPath>,
    ) -> Session {
        let limits = &self.config.limits;
        Session {
            service: self.clone(),
            outbox,
            context: context.map_or_else(|| RawValue::NULL.to_owned(), |c| (*c).to_owned()),
            subscriptions: Mutex::default(),
            watches: Mutex::default(),
            scope,
            joins: Mutex::new(TokenBucket::new(
                limits.joins_per_second,
                limits.join_burst,
                std::time::Instant::now(),
            )),
        }
    }
}

impl Session {
    /// Handles one inbound message; anything that is not a valid join or leave is ignored.
    pub async fn handle_message(&self, text: &str) {
        match decode_client_message(text) {
            Some(ClientMessage::Join(join))
                if self.scope.as_ref().is_some_and(|path| !within(path, &join)) =>
            {
                metrics().limit_refused(Limit::PathBound);
                self.refuse(&join, RejectReason::PathBound);
            }
            Some(ClientMessage::Join(join)) => self.join(join).await,
            Some(ClientMessage::Leave { subscription_id }) => self.leave(&subscription_id),
            None => tracing::debug!("ignoring an invalid subscriber message"),
        }
    }

    pub async fn join(&self, join: Join) {
        if join.subscription_id.is_empty() {
            return;
        }
        let reject = |reason| self.refuse(&join, reason);
        let names_ok = is_valid_name(&join.stream_name)
            && is_valid_name(&join.group_id)
            && join.item_id.as_deref().is_none_or(is_valid_name)
            && is_valid_name(&join.subscription_id);
        if !names_ok {
            return reject(RejectReason::InvalidName);
        }
        let id: Arc<str> = join.subscription_id.as_str().into();
        let replaced = self.subscriptions.lock().remove(&id);
        if let Some(old) = replaced {
            self.end(&old);
        }
        let limit = self.service.config.limits.max_subscriptions_per_connection;
        if self.subscriptions.lock().len() >= limit {
            metrics().limit_refused(Limit::SubscriptionsPerConnection);
            return reject(RejectReason::SubscriptionLimit);
        }
        if !self.joins.lock().take(std::time::Instant::now()) {
            metrics().limit_refused(Limit::JoinsPerSecond);
            return reject(RejectReason::RateLimited);
        }
        let payload = Lifecycle {
            subscription_id: &join.subscription_id,
            stream_name: &join.stream_name,
            group_id: &join.group_id,
            id: join.item_id.as_deref(),
            context: &self.context,
        };
        if let Err(reason) = self.service.gate(&payload).await {
            return reject(reason);
        }
        if self.outbox.closed().is_some() {
            return; // the connection ended while the handlers ran
        }
        let group = GroupKey::new(join.stream_name.as_str(), join.group_id.as_str());
        let sub = Subscription::new(
            id.clone(),
            group,
            join.item_id.as_deref().map(Arc::from),
            self.outbox.clone(),
        );
        metrics()
            .joins
            .get_or_create(&OutcomeLabel {
                outcome: "admitted",
            })
            .inc();
        // The watch belongs to the join until the subscription is registered, then to the
        // subscription (released by `end`); a join abandoned in between releases it on drop.
        *self.watches.lock().entry(sub.group.clone()).or_default() += 1;
        let watch = Watch {
            session: self,
            group: sub.group.clone(),
            kept: AtomicBool::new(false),
        };
        if let Err(error) = self.service.store.watch(&sub.group).await {
            tracing::warn!(%error, group = ?sub.group, "cannot watch group; live frames from other instances may be missing");
        }
        if let Some(since) = join.since {
            let started = self.resume(&sub, since).await;
            let outcome = if started == Started::Resumed {
                "replayed"
            } else {
                "resynced"
            };
            metrics()
                .resumes
                .get_or_create(&OutcomeLabel { outcome })
                .inc();
            if started == Started::Resumed {
                self.register(sub, &watch);
                return;
            }
        }
        self.admit(sub, &watch).await;
    }

    /// Registers a subscription that resumes after `since`, if that is possible: from the
    /// fan-out history (kv), or from the store's history (Redis, where the missed frames may have
    /// been delivered by another instance).
    async fn resume(&self, sub: &Arc<Subscription>, since: Since) -> Started {
        let service = &self.service;
        if !service.store.keeps_history() {
            return service.hub.subscribe(sub, Start::Resume(since));
        }
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let replay = service
                .store
                .replay(&sub.group, &since.epoch, since.seq)
                .await;
            let replay = match replay {
                Ok(Some(replay)) => replay,
                Ok(None) => return Started::NotResumable,
                Err(error) => {
                    tracing::warn!(%error, group = ?sub.group, "resume failed; sending a sync");
                    return Started::NotResumable;
                }
            };
            let start = Start::Replay {
                epoch: replay.epoch,
                seq: replay.seq,
                frames: replay.frames,
            };
            match service.hub.subscribe(sub, start) {
                Started::Stale => continue,
                started => return started,
            }
        }
        Started::NotResumable
    }

    /// Registers a subscription with a sync, atomically with the group's sequencer.
    async fn admit(&self, sub: Arc<Subscription>, watch: &Watch<'_>) {
        let service = &self.service;
        let function = if sub.item.is_some() {
            Function::Get
        } else {
            Function::List
        };
        let provider = provider_id(function, &sub.group.stream);
        if service.engine.has_worker_function(&provider) {
            return self.admit_through_provider(sub, &provider, watch).await;
        }
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let started = service
                .store
                .snapshot(&sub.group, sub.item.as_deref(), |snapshot| {
                    let data = sync_data(&snapshot.data);
                    let text = frames::sync(
                        &sub.group,
                        sub.item.as_deref(),
                        &snapshot.stamp,
                        &data,
                        &sub.id,
                    );
                    let started = service.hub.subscribe(
                        &sub,
                        Start::Sync {
                            epoch: snapshot.stamp.epoch.clone(),
                            seq: snapshot.stamp.seq,
                            text,
                            in_flight: !snapshot.published,
                        },
                    );
                    if started != Started::Stale {
                        self.register(sub.clone(), watch);
                    }
                    started
                })
                .await;
            match started {
                Ok(Started::Stale) => continue,
                Ok(_) => return,
                Err(StoreError::GroupLimit { .. }) => {
                    // Never registered: the join's watch goes with it.
                    self.fire_leave(&sub);
                    self.reject(&sub, RejectReason::GroupLimit);
                    return;
                }
                Err(error) if self.withdraw(&sub) => {
                    // Admitted on a snapshot whose changes cannot become durable: its sync
                    // never goes out, and the client must not wait for it in silence.
                    tracing::warn!(%error, group = ?sub.group, "join refused: the group's latest change cannot be made durable");
                    self.reject(&sub, RejectReason::StoreUnavailable);
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, group = ?sub.group, "join snapshot failed; subscribing without sync");
                    break;
                }
            }
        }
        // No usable snapshot: the subscription still receives live frames, as in the original.
        service.hub.subscribe(&sub, Start::Deferred);
        self.register(sub.clone(), watch);
        service.hub.finish_deferred(&sub, None);
    }

    /// Provider-backed streams: the sync comes from the provider, so it cannot be atomic with
    /// the sequencer; live frames are held while it is fetched and sent after it (applying them
    /// again is harmless: events carry full values).
    async fn admit_through_provider(
        &self,
        sub: Arc<Subscription>,
        provider: &str,
        watch: &Watch<'_>,
    ) {
        let service = &self.service;
        let stamp = service
            .store
            .snapshot(&sub.group, None, |snapshot| {
                let started = service.hub.subscribe(&sub, Start::Deferred);
                self.register(sub.clone(), watch);
                let seq = match started {
                    Started::Deferred { seq } => seq,
                    _ => snapshot.stamp.seq,
                };
                Stamp {
                    seq,
                    ..snapshot.stamp
                }
            })
            .await;
        let Ok(stamp) = stamp else {
            service.hub.finish_deferred(&sub, None);
            return;
        };
        let input = match &sub.item {
            Some(item) => serde_json::json!({
                "stream_name": &*sub.group.stream, "group_id": &*sub.group.group, "item_id": &**item,
            }),
            None => serde_json::json!({
                "stream_name": &*sub.group.stream, "group_id": &*sub.group.group,
            }),
        };
        let Ok(input) = serde_json::value::to_raw_value(&input) else {
            return;
        };
        let options = CallOptions::with_timeout(service.timeouts.provider);
        let outcome = service.engine.invoke(provider, &input, options).await;
        let outcome = crate::calls::observe(crate::calls::Call::Provider, provider, outcome);
        let sync = match outcome {
            Ok(value) => {
                let data = value.unwrap_or_else(|| RawValue::NULL.to_owned());
                Some(frames::sync(
                    &sub.group,
                    sub.item.as_deref(),
                    &stamp,
                    &data,
                    &sub.id,
                ))
            }
            Err(_) => None,
        };
        service.hub.finish_deferred(&sub, sync);
    }

    /// Answers a join with an `unauthorized` frame: nothing is subscribed.
    fn refuse(&self, join: &Join, reason: RejectReason) {
        let group = GroupKey::new(join.stream_name.as_str(), join.group_id.as_str());
        self.unauthorized(
            &group,
            join.item_id.as_deref(),
            &join.subscription_id,
            reason,
        );
        metrics()
            .joins
            .get_or_create(&OutcomeLabel {
                outcome: "rejected",
            })
            .inc();
    }

    /// Ends `sub` if it is still registered (its leave handlers fire); false if it is not.
    fn withdraw(&self, sub: &Arc<Subscription>) -> bool {
        let mut subscriptions = self.subscriptions.lock();
        if !subscriptions
            .get(&sub.id)
            .is_some_and(|s| Arc::ptr_eq(s, sub))
        {
            return false;
        }
        subscriptions.remove(&sub.id);
        drop(subscriptions);
        self.end(sub);
        true
    }

    /// Tells the client a subscription was refused after its join was accepted.
    fn reject(&self, sub: &Subscription, reason: RejectReason) {
        self.unauthorized(&sub.group, sub.item.as_deref(), &sub.id, reason);
    }

    fn unauthorized(&self, group: &GroupKey, item: Option<&str>, id: &str, reason: RejectReason) {
        let text = frames::unauthorized(&group.stream, &group.group, item, id, reason);
        if crate::fanout::offer(&self.outbox, crate::fanout::Outgoing::Text(text)) {
            metrics().frame_sent("unauthorized");
        }
    }

    /// Ends the subscription with this id, if any; its leave handlers fire.
    pub fn leave(&self, subscription_id: &str) {
        let sub = self.subscriptions.lock().remove(subscription_id);
        if let Some(sub) = sub {
            self.end(&sub);
        }
    }

    /// Registers an admitted subscription; from now on it owns the join's watch.
    fn register(&self, sub: Arc<Subscription>, watch: &Watch<'_>) {
        self.subscriptions.lock().insert(sub.id.clone(), sub);
        watch.kept.store(true, Ordering::SeqCst);
    }

    fn end(&self, sub: &Subscription) {
        self.service.hub.unsubscribe(sub);
        self.unwatch(&sub.group);
        self.fire_leave(sub);
    }

    fn fire_leave(&self, sub: &Subscription) {
        self.service.fire_leave(&Lifecycle {
            subscription_id: &sub.id,
            stream_name: &sub.group.stream,
            group_id: &sub.group.group,
            id: sub.item.as_deref(),
            context: &self.context,
        });
    }

    /// Ends every subscription (the connection is gone); each fires its leave handlers once.
    pub fn close(&self) {
        self.outbox.close();
        let subs: Vec<_> = self.subscriptions.lock().drain().map(|(_, s)| s).collect();
        for sub in subs {
            self.end(&sub);
        }
    }

    fn unwatch(&self, group: &GroupKey) {
        let mut watches = self.watches.lock();
        if let Some(count) = watches.get_mut(group) {
            *count -= 1;
            if *count == 0 {
                watches.remove(group);
            }
            drop(watches);
            self.service.store.unwatch(group);
        }
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.lock().len()
    }
}

/// A join's store watch of a group: released when dropped unless the join registered its
/// subscription (which then owns it, and `Session::end` releases it). So a join abandoned at
/// any await point (its connection closed) releases what the adapter holds for it.
struct Watch<'a> {
    session: &'a Session,
    group: GroupKey,
    kept: AtomicBool,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.kept.load(Ordering::SeqCst) {
            self.session.unwatch(&self.group);
        }
    }
}

/// The sync `data` of a snapshot: the item's value or `null`, or the array of values.
fn sync_data(data: &SnapshotData) -> Box<RawValue> {
    match data {
        SnapshotData::Item(value) => value
            .as_deref()
            .map_or_else(|| RawValue::NULL.to_owned(), ToOwned::to_owned),
        SnapshotData::Group(items) => {
            let values: Vec<&RawValue> = items.iter().map(|(_, v)| &**v).collect();
            serde_json::value::to_raw_value(&values).unwrap_or_else(|_| RawValue::NULL.to_owned())
        }
    }
}
