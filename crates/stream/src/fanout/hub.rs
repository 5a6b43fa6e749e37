//! The subscription index and per-group publication.
//!
//! Each (stream, group) has a channel holding its subscribers, the last published `seq` and the
//! recent frames (history). Frames arrive in `seq` order; each is matched against the group's own
//! subscribers only and queued, without waiting, on each matching connection. Registering a
//! subscription happens under the same channel lock as publication, so a subscriber receives
//! exactly the frames after its sync (or resume point), in order.

use super::history::{Budget, History};
use super::outbox::{Outbox, Outgoing, offer};
use iii_stream_config::History as HistoryConfig;
use iii_stream_domain::idle::{Due, IdleQueue};
use iii_stream_domain::{Frame, GroupKey};
use iii_stream_metrics::metrics;
use iii_stream_protocol::frame::subscription_suffix;
use iii_stream_protocol::subscriber::Since;
use parking_lot::{Mutex, RwLock};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One admitted subscription of one connection.
#[derive(Debug)]
pub struct Subscription {
    /// Unique across the process; identifies the entry in its channel.
    key: u64,
    pub id: Arc<str>,
    pub group: GroupKey,
    pub item: Option<Arc<str>>,
    suffix: Arc<str>,
    outbox: Arc<Outbox>,
}

impl Subscription {
    pub fn new(
        id: Arc<str>,
        group: GroupKey,
        item: Option<Arc<str>>,
        outbox: Arc<Outbox>,
    ) -> Arc<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Arc::new(Self {
            key: NEXT.fetch_add(1, Ordering::Relaxed),
            suffix: subscription_suffix(&id).into(),
            id,
            group,
            item,
            outbox,
        })
    }

    fn matches(&self, frame: &Frame) -> bool {
        match &self.item {
            None => true,
            Some(item) => frame.item.as_deref() == Some(&**item),
        }
    }

    fn deliver(&self, frame: &Arc<Frame>, kind: &'static str) {
        if offer(
            &self.outbox,
            Outgoing::Event {
                frame: frame.clone(),
                suffix: self.suffix.clone(),
            },
        ) {
            metrics().frame_sent(kind);
        }
    }

    fn send_text(&self, text: String, kind: &'static str) {
        if offer(&self.outbox, Outgoing::Text(text)) {
            metrics().frame_sent(kind);
        }
    }
}

/// How a new subscription starts.
pub enum Start {
    /// With a sync frame reflecting every event up to `seq` of `epoch`.
    Sync {
        epoch: Arc<str>,
        seq: u64,
        text: String,
        /// True when every frame up to `seq` is guaranteed to reach [`Hub::publish`] (the kv
        /// store, whose durable writes may still be in flight): the sync then waits for the last
        /// of them, so it never shows a change before that change is durable. False when some
        /// may never arrive here (Redis: published before this instance subscribed).
        in_flight: bool,
    },
    /// Resume after `since`, if the history allows.
    Resume(Since),
    /// Resume with frames the store kept (Redis: possibly published by other instances): they
    /// are replayed, then the subscription continues live after `seq` of `epoch`.
    Replay {
        epoch: Arc<str>,
        seq: u64,
        /// The frames after the client's `since`, up to `seq`, in order.
        frames: Vec<Arc<Frame>>,
    },
    /// The sync is being fetched elsewhere (custom provider); hold live frames until
    /// [`Hub::finish_deferred`].
    Deferred,
}

/// What [`Hub::subscribe`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// Live, with its sync sent (or scheduled right after the frame it reflects).
    Synced,
    /// Live, with the missed frames replayed.
    Resumed,
    /// Registered; waiting for `finish_deferred`. Carries the `seq` the sync must reflect.
    Deferred { seq: u64 },
    /// Not registered: `since` cannot be served; take a snapshot and subscribe with a sync.
    NotResumable,
    /// Not registered: the snapshot is older than what was already published and the history no
    /// longer holds the difference; take a new snapshot.
    Stale,
}

struct Entry {
    sub: Arc<Subscription>,
    /// Frames up to this `seq` are already reflected in what the subscriber got.
    from_seq: u64,
    /// A sync to send once the frame with `seq == from_seq` is published (durable writes still
    /// in flight when the snapshot was read).
    pending_sync: Option<String>,
    /// Frames held back while a deferred sync is fetched.
    held: Option<Vec<Arc<Frame>>>,
}

impl Entry {
    fn offer(&mut self, frame: &Arc<Frame>) {
        let seq = frame.seq();
        if seq <= self.from_seq {
            if seq == self.from_seq
                && let Some(sync) = self.pending_sync.take()
            {
                self.sub.send_text(sync, "sync");
            }
            return;
        }
        if !self.sub.matches(frame) {
            return;
        }
        match &mut self.held {
            Some(held) => held.push(frame.clone()),
            None => self.sub.deliver(frame, "event"),
        }
    }
}

struct ChannelState {
    epoch: Option<Arc<str>>,
    published: u64,
    history: History,
    entries: Vec<Entry>,
    /// Since when the channel has had no subscriber (refreshed by frames published meanwhile).
    idle_since: Option<Instant>,
    /// In the hub's idle queue.
    queued: bool,
    /// Removed from the hub: look the group up again.
    retired: bool,
}

impl ChannelState {
    fn new() -> Self {
        Self {
            epoch: None,
            published: 0,
            history: History::default(),
            entries: Vec::new(),
            idle_since: Some(Instant::now()),
            queued: true,
            retired: false,
        }
    }
}

struct Channel {
    state: Mutex<ChannelState>,
}

pub struct Hub {
    channels: RwLock<HashMap<GroupKey, Arc<Channel>>>,
    config: HistoryConfig,
    /// False when any history bound is zero: no frame is kept and nothing costs per publish.
    keeps_history: bool,
    /// How long a channel outlives its last subscriber, so its history can serve a resume.
    linger: Duration,
    /// Channels without subscribers, oldest first (see `iii_stream_domain::idle`).
    idle: Mutex<IdleQueue<GroupKey>>,
    budget: Budget,
    evicting: Mutex<()>,
}

impl Hub {
    pub fn new(config: HistoryConfig) -> Self {
        let keeps_history =
            config.max_events > 0 && config.max_total_bytes > 0 && config.max_age_ms > 0;
        Self {
            channels: RwLock::default(),
            budget: Budget::new(config.max_total_bytes),
            evicting: Mutex::new(()),
            linger: if keeps_history {
                Duration::from_millis(config.max_age_ms)
            } else {
                Duration::ZERO
            },
            keeps_history,
            idle: Mutex::new(IdleQueue::new(config.max_idle_groups)),
            config,
        }
    }

    fn existing(&self, group: &GroupKey) -> Option<Arc<Channel>> {
        self.channels.read().get(group).cloned()
    }

    /// The group's channel, created if needed (subscriptions only).
    fn open(&self, group: &GroupKey) -> Arc<Channel> {
        if let Some(channel) = self.existing(group) {
            return channel;
        }
        self.channels
            .write()
            .entry(group.clone())
            .or_insert_with(|| {
                metrics().channels.inc();
                // Queued from the start: a subscription that is then not registered (a resume
                // that cannot be served) must not leave the channel behind for ever.
                self.idle.lock().push(Instant::now(), group.clone());
                Arc::new(Channel {
                    state: Mutex::new(ChannelState::new()),
                })
            })
            .clone()
    }

    /// Runs `f` under the lock of the group's live channel: created first when `open`, else
    /// `None` when the group has none.
    fn with_channel<R>(
        &self,
        group: &GroupKey,
        open: bool,
        f: impl FnOnce(&mut ChannelState) -> R,
    ) -> Option<R> {
        loop {
            let channel = if open {
                self.open(group)
            } else {
                self.existing(group)?
            };
            let mut state = channel.state.lock();
            if !state.retired {
                return Some(f(&mut state));
            }
        }
    }

    /// Whether the group has a channel: subscribers, or history a resume may still need.
    pub fn retains(&self, group: &GroupKey) -> bool {
        self.channels.read().contains_key(group)
    }

    /// Publishes a frame to the group's subscribers. Frames of one group arrive in `seq` order.
    pub fn publish(&self, frame: &Arc<Frame>) {
        let (mut added, mut released) = (0, 0);
        let published = self.with_channel(&frame.group, false, |state| {
            if state.epoch.as_deref() != Some(&*frame.stamp.epoch) {
                // A new numbering (e.g. Redis lost the group's state): history of the old one
                // can never be resumed into the new one.
                state.epoch = Some(frame.stamp.epoch.clone());
                released += state.history.clear();
            } else if frame.seq() <= state.published {
                // Already published (a relay may offer a frame twice around a reconnect).
                return;
            }
            state.published = frame.seq();
            if self.keeps_history {
                let (a, r) = state.history.push(frame.clone(), &self.config);
                added += a;
                released += r;
            }
            if state.entries.is_empty() {
                state.idle_since = Some(Instant::now());
            }
            for entry in &mut state.entries {
                entry.offer(frame);
            }
        });
        if published.is_none() || added + released == 0 {
            return;
        }
        self.budget.apply(added, released);
        if self.budget.exceeded() {
            self.evict_to_budget();
        }
    }

    /// Evicts the oldest history frames across all groups until the budget has room again.
    fn evict_to_budget(&self) {
        let Some(_only_one) = self.evicting.try_lock() else {
            return;
        };
        let channels: Vec<Arc<Channel>> = self.channels.read().values().cloned().collect();
        let mut oldest: BinaryHeap<Reverse<(Instant, usize)>> = channels
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.state.lock().history.oldest().map(|at| Reverse((at, i))))
            .collect();
        while self.budget.total() > self.budget.low_water() {
            let Some(Reverse((_, i))) = oldest.pop() else {
                break;
            };
            let (released, next) = {
                let mut state = channels[i].state.lock();
                (state.history.evict_oldest(), state.history.oldest())
            };
            self.budget.apply(0, released);
            if let Some(at) = next {
                oldest.push(Reverse((at, i)));
            }
        }
    }

    /// Registers a subscription under the channel lock. See [`Start`] and [`Started`].
    pub fn subscribe(&self, sub: &Arc<Subscription>, start: Start) -> Started {
        let started = self.with_channel(&sub.group, true, |state| self.start(state, sub, start));
        let started = started.unwrap_or(Started::Stale);
        if matches!(
            started,
            Started::Synced | Started::Resumed | Started::Deferred { .. }
        ) {
            metrics().subscriptions.inc();
        }
        started
    }

    fn start(&self, state: &mut ChannelState, sub: &Arc<Subscription>, start: Start) -> Started {
        let entry = |from_seq| Entry {
            sub: sub.clone(),
            from_seq,
            pending_sync: None,
            held: None,
        };
        let started = match start {
            Start::Sync {
                epoch,
                seq,
                text,
                in_flight,
            } => {
                if state.epoch.as_deref() != Some(&*epoch) {
                    // Nothing of this numbering was published here yet.
                    state.epoch = Some(epoch);
                    let released = state.history.clear();
                    self.budget.apply(0, released);
                    state.published = if in_flight { 0 } else { seq };
                }
                if seq >= state.published {
                    let mut e = entry(seq);
                    if seq > state.published && in_flight {
                        e.pending_sync = Some(text);
                    } else {
                        sub.send_text(text, "sync");
                    }
                    state.entries.push(e);
                    Started::Synced
                } else {
                    let Some(missed) = state.history.after(seq, state.published) else {
                        return Started::Stale;
                    };
                    sub.send_text(text, "sync");
                    for frame in missed.iter().filter(|f| sub.matches(f)) {
                        sub.deliver(frame, "event");
                    }
                    let published = state.published;
                    state.entries.push(entry(published));
                    Started::Synced
                }
            }
            Start::Resume(since) => {
                let released = state.history.expire(&self.config);
                self.budget.apply(0, released);
                let same_epoch = state.epoch.as_deref() == Some(since.epoch.as_str());
                let missed = if !same_epoch || !self.keeps_history {
                    None
                } else {
                    state.history.after(since.seq, state.published)
                };
                let Some(missed) = missed else {
                    return Started::NotResumable;
                };
                for frame in missed.iter().filter(|f| sub.matches(f)) {
                    sub.deliver(frame, "replay");
                }
                let published = state.published;
                state.entries.push(entry(published));
                Started::Resumed
            }
            Start::Replay { epoch, seq, frames } => {
                let mut missed = frames;
                if state.epoch.as_deref() != Some(&*epoch) {
                    state.epoch = Some(epoch);
                    let released = state.history.clear();
                    self.budget.apply(0, released);
                    state.published = seq;
                } else if seq < state.published {
                    // Frames after the store's read were already published here.
                    let Some(more) = state.history.after(seq, state.published) else {
                        return Started::Stale;
                    };
                    missed.extend(more);
                }
                for frame in missed.iter().filter(|f| sub.matches(f)) {
                    sub.deliver(frame, "replay");
                }
                let from = seq.max(state.published);
                state.entries.push(entry(from));
                Started::Resumed
            }
            Start::Deferred => {
                let published = state.published;
                let mut e = entry(published);
                e.held = Some(Vec::new());
                state.entries.push(e);
                Started::Deferred { seq: published }
            }
        };
        state.idle_since = None;
        started
    }

    /// Restarts every subscription of a group from a fresh snapshot at `seq` of `epoch` (frames
    /// were lost in a way history cannot repair): each gets the sync `sync_for` builds for it and
    /// then the frames after `seq`. Subscribers stay connected.
    pub fn resync(
        &self,
        group: &GroupKey,
        epoch: Arc<str>,
        seq: u64,
        sync_for: impl Fn(&Subscription) -> String,
    ) {
        self.with_channel(group, false, |state| {
            state.epoch = Some(epoch);
            state.published = seq;
            let released = state.history.clear();
            self.budget.apply(0, released);
            for entry in &mut state.entries {
                entry.from_seq = seq;
                entry.pending_sync = None;
                entry.held = None;
                entry.sub.send_text(sync_for(&entry.sub), "sync");
            }
        });
    }

    /// The epoch of the group as last seen here, if any frame or snapshot was seen.
    pub fn epoch(&self, group: &GroupKey) -> Option<Arc<str>> {
        self.with_channel(group, false, |state| state.epoch.clone())
            .flatten()
    }

    /// Completes a deferred subscription: sends `sync` (if any) then the frames held meanwhile.
    pub fn finish_deferred(&self, sub: &Arc<Subscription>, sync: Option<String>) {
        self.with_channel(&sub.group, false, |state| {
            let Some(entry) = state.entries.iter_mut().find(|e| e.sub.key == sub.key) else {
                return;
            };
            if let Some(sync) = sync {
                sub.send_text(sync, "sync");
            }
            for frame in entry.held.take().unwrap_or_default() {
                sub.deliver(&frame, "event");
            }
        });
    }

    /// Removes a subscription; no frame is queued for it afterwards. Without history the
    /// channel goes with its last subscriber; otherwise it lingers (see [`Hub::sweep`]).
    pub fn unsubscribe(&self, sub: &Subscription) {
        let emptied = self.with_channel(&sub.group, false, |state| {
            if let Some(i) = state.entries.iter().position(|e| e.sub.key == sub.key) {
                state.entries.swap_remove(i);
                metrics().subscriptions.dec();
            }
            if !state.entries.is_empty() {
                return false;
            }
            let now = Instant::now();
            state.idle_since = Some(now);
            if !state.queued {
                state.queued = true;
                self.idle.lock().push(now, sub.group.clone());
            }
            true
        });
        if emptied == Some(true) && self.linger.is_zero() {
            self.remove_idle(&[Due {
                key: sub.group.clone(),
                forced: false,
            }]);
        }
    }

    /// Drops history older than `max_age_ms` of the channels it removes, and removes the
    /// channels that had no subscriber for that long (or that are the oldest beyond
    /// `history.max_idle_groups`). Run periodically by the service.
    pub fn sweep(&self) {
        let due = self.idle.lock().due(Instant::now(), self.linger);
        for chunk in due.chunks(1024) {
            self.remove_idle(chunk);
        }
    }

    /// Removes the channels handed back by the idle queue that are still idle; pushes back the
    /// ones that were busy meanwhile.
    fn remove_idle(&self, due: &[Due<GroupKey>]) {
        let now = Instant::now();
        let mut channels = self.channels.write();
        for Due { key, forced } in due {
            let Some(channel) = channels.get(key) else {
                continue;
            };
            let mut state = channel.state.lock();
            state.queued = false;
            let Some(since) = state.idle_since.filter(|_| state.entries.is_empty()) else {
                continue; // subscribed again; queued anew when it next goes idle
            };
            if !forced && now.saturating_duration_since(since) < self.linger {
                state.queued = true;
                self.idle.lock().push(since, key.clone());
                continue;
            }
            state.retired = true;
            let released = state.history.clear();
            drop(state);
            self.budget.apply(0, released);
            channels.remove(key);
            metrics().channels.dec();
        }
        let len = channels.len();
        if channels.capacity() > 1024 && len < channels.capacity() / 4 {
            channels.shrink_to(len * 2);
        }
    }

    /// Number of subscriptions on a group (for tests and diagnostics).
    pub fn subscriber_count(&self, group: &GroupKey) -> usize {
        self.with_channel(group, false, |state| state.entries.len())
            .unwrap_or(0)
    }

    /// Number of channels (for tests and diagnostics).
    pub fn channel_count(&self) -> usize {
        self.channels.read().len()
    }
}

#[cfg(test)]
mod tests;
