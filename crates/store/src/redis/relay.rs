//! The relay task: the one pub/sub connection of the instance.
//!
//! It subscribes to the channels of watched groups, hands each received frame to the sink in
//! `seq` order (see `registry` for the cursor rules), fills gaps from the Redis history, and when
//! the connection drops it reconnects (100 ms doubling to 5 s), resubscribes, and for every
//! watched group either delivers the frames missed meanwhile from the history or, when the
//! history no longer covers them or the epoch changed, re-syncs the group's subscriptions.
//! Subscribers stay connected throughout. Everything happens in this one task, so frames of a
//! group reach the sink in order whichever path they took.

use super::Shared;
use super::error::Error;
use super::registry::{Decision, Position};
use super::scripts::SCRIPTS;
use super::wire;
use crate::{Snapshot, SnapshotData};
use futures_util::StreamExt;
use iii_stream_domain::{Frame, GroupKey};
use iii_stream_metrics::metrics;
use redis::Value;
use redis::aio::{PubSub, PubSubSink};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often both connections are pinged (detects a silent peer, and recovery).
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// Channels per SUBSCRIBE command when resubscribing.
const SUBSCRIBE_BATCH: usize = 512;

/// Requests from the store's methods, handled in order.
pub(crate) enum Command {
    /// SUBSCRIBE, then answer `done`.
    Subscribe {
        channel: String,
        done: oneshot::Sender<()>,
    },
    /// UNSUBSCRIBE, unless the channel was watched again meanwhile.
    Unsubscribe { channel: String },
    /// Send the group's subscriptions a fresh sync.
    Resync { group: GroupKey },
}

/// Why a connection's service ended.
enum Ended {
    Lost(String),
    Closed,
}

pub(crate) struct Relay {
    client: redis::Client,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
}

impl Relay {
    pub(crate) fn new(
        client: redis::Client,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        Self {
            client,
            shared,
            commands,
        }
    }

    pub(crate) async fn run(mut self, first: PubSub) {
        let mut connection = Some(first);
        let mut backoff = MIN_BACKOFF;
        let mut reconnect = false;
        loop {
            let pubsub = match connection.take() {
                Some(pubsub) => pubsub,
                None => match self.connect().await {
                    Ok(pubsub) => pubsub,
                    Err(e) => {
                        let e = Error::from(e);
                        if backoff <= MIN_BACKOFF * 2 {
                            tracing::warn!(error = %e, "redis is unreachable; retrying");
                        } else {
                            tracing::debug!(error = %e, ?backoff, "redis reconnect failed");
                        }
                        self.shared.health.problem(e.to_string());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            match self.serve(pubsub, reconnect).await {
                Ended::Closed => return,
                Ended::Lost(reason) => {
                    self.shared.registry.lost();
                    tracing::warn!(%reason, "redis pub/sub connection lost; reconnecting");
                    reconnect = true;
                    backoff = MIN_BACKOFF;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
    }

    async fn connect(&self) -> Result<PubSub, redis::RedisError> {
        let timeout = self.shared.options.connect_timeout;
        match tokio::time::timeout(timeout, self.client.get_async_pubsub()).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection attempt timed out",
            ))),
        }
    }

    /// Serves one connection until it is lost or the store closes.
    async fn serve(&mut self, pubsub: PubSub, reconnect: bool) -> Ended {
        let (mut sink, mut stream) = pubsub.split();
        if let Err(ended) = self.resume(&mut sink, reconnect).await {
            return ended;
        }
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let renew_every =
            Duration::from_millis((self.shared.options.empty_group_ttl_ms() / 3).max(1000));
        let mut renew = tokio::time::interval_at(Instant::now() + renew_every, renew_every);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.on_message(&message).await,
                    None => Err(Ended::Lost("connection closed".into())),
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(&mut sink, command).await,
                    None => Err(Ended::Closed),
                },
                _ = ping.tick() => self.ping(&mut sink).await,
                _ = renew.tick() => {
                    self.renew().await;
                    Ok(())
                }
            };
            if let Err(ended) = step {
                // Frames still buffered from this connection are dropped: the catch-up after
                // the reconnect delivers them from the history, in order with what follows.
                return ended;
            }
        }
    }

    /// Subscribes every watched group on a new connection, catches them up, and opens the
    /// store for snapshots again.
    async fn resume(&mut self, sink: &mut PubSubSink, reconnect: bool) -> Result<(), Ended> {
        let registry = &self.shared.registry;
        let (generation, channels) = registry.channels();
        for batch in channels.chunks(SUBSCRIBE_BATCH) {
            sink.subscribe(batch)
                .await
                .map_err(|e| Ended::Lost(e.to_string()))?;
        }
        registry.confirm(&channels, generation);
        self.prime_commands().await;
        let (mut caught_up, mut resynced) = (0, 0);
        for (group, from) in registry.catch_up_list() {
            match tolerate(self.catch_up(&group, from).await)? {
                true => caught_up += 1,
                false => resynced += 1,
            }
        }
        while let Err(late) = registry.go_live(generation) {
            for batch in late.chunks(SUBSCRIBE_BATCH) {
                sink.subscribe(batch)
                    .await
                    .map_err(|e| Ended::Lost(e.to_string()))?;
            }
            registry.confirm(&late, generation);
        }
        self.shared.health.ok();
        if reconnect {
            metrics().redis_reconnects.inc();
            tracing::info!(
                groups = channels.len(),
                caught_up,
                resynced,
                "redis pub/sub reconnected"
            );
        }
        Ok(())
    }

    /// After an outage the command connection reconnects on its first failed command; spend
    /// that failure on a ping rather than on the catch-up.
    async fn prime_commands(&self) {
        for _ in 0..3 {
            let mut conn = self.shared.conn();
            let ping = redis::cmd("PING");
            let pinged = tokio::time::timeout(PING_TIMEOUT, ping.query_async::<()>(&mut conn));
            if let Ok(Ok(())) = pinged.await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn on_message(&self, message: &redis::Msg) -> Result<(), Ended> {
        let Some(group) = self.shared.registry.group_of(message.get_channel_name()) else {
            return Ok(()); // unwatched meanwhile
        };
        let Ok(body) = String::from_utf8(message.get_payload_bytes().to_vec()) else {
            tracing::warn!(
                ?group,
                "a published frame is not UTF-8; re-syncing the group"
            );
            return tolerate(self.resync(&group).await);
        };
        match wire::parse(&group, body) {
            Ok(frame) => tolerate(self.offer(&group, frame).await),
            Err(error) => {
                tracing::warn!(%error, ?group, "re-syncing the group");
                tolerate(self.resync(&group).await)
            }
        }
    }

    /// Hands a frame to the sink if it is the group's next one; fills a gap first.
    async fn offer(&self, group: &GroupKey, frame: Frame) -> Result<(), Error> {
        let registry = &self.shared.registry;
        match registry.admit(group, &frame.stamp.epoch, frame.seq()) {
            Decision::Forward => self.shared.sink.publish(&Arc::new(frame), false),
            Decision::Drop => {}
            Decision::Resync => {
                self.resync(group).await?;
            }
            Decision::Gap(from) => {
                tracing::debug!(?group, from = from.seq, to = frame.seq(), "filling a gap");
                if self.catch_up(group, Some(from)).await? {
                    // The frame was published before the history was read, so it normally came
                    // with it; if not, it goes now.
                    if registry.admit(group, &frame.stamp.epoch, frame.seq()) == Decision::Forward {
                        self.shared.sink.publish(&Arc::new(frame), false);
                    }
                }
            }
        }
        Ok(())
    }

    /// Delivers the frames after `from` from the Redis history; re-syncs the group instead when
    /// there is no starting point, the history no longer covers the gap, or the epoch changed.
    /// Returns whether the history sufficed.
    async fn catch_up(&self, group: &GroupKey, from: Option<Position>) -> Result<bool, Error> {
        let Some(keys) = self.shared.registry.keys_of(group) else {
            return Ok(true);
        };
        let Some(from) = from else {
            self.resync(group).await?;
            return Ok(false);
        };
        let history = self.shared.read_history(&keys, from.seq).await?;
        let bodies = match history {
            Some(h) if h.at.epoch == from.epoch && h.at.seq >= from.seq => h.frames,
            _ => None,
        };
        let Some(bodies) = bodies else {
            self.resync(group).await?;
            return Ok(false);
        };
        for body in bodies {
            let decision = wire::parse(group, body).map(|frame| {
                let decision = self
                    .shared
                    .registry
                    .admit(group, &frame.stamp.epoch, frame.seq());
                (frame, decision)
            });
            match decision {
                Ok((frame, Decision::Forward)) => self.shared.sink.publish(&Arc::new(frame), false),
                Ok((_, Decision::Drop)) => {}
                _ => {
                    self.resync(group).await?;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Sends every local subscription of the group a fresh sync and restarts its cursor there.
    async fn resync(&self, group: &GroupKey) -> Result<(), Error> {
        let Some(keys) = self.shared.registry.keys_of(group) else {
            return Ok(());
        };
        let read = self.shared.read_snapshot(&keys, None).await?;
        let position = read.position();
        let stamp = read.stamp.clone();
        let items = read.group(group, true).map_err(|e| {
            tracing::warn!(error = %e, ?group, "re-sync snapshot unreadable");
            Error::Reply("re-sync snapshot unreadable")
        })?;
        self.shared.registry.reset(group, position);
        tracing::info!(?group, epoch = %stamp.epoch, seq = stamp.seq, "re-syncing subscriptions");
        self.shared.sink.resync(
            group,
            &Snapshot {
                stamp,
                data: SnapshotData::Group(items),
                published: true,
            },
        );
        Ok(())
    }

    async fn on_command(&self, sink: &mut PubSubSink, command: Command) -> Result<(), Ended> {
        match command {
            Command::Subscribe { channel, done } => {
                let generation = self.shared.registry.generation();
                if self.shared.registry.watches_channel(&channel) {
                    sink.subscribe(&channel)
                        .await
                        .map_err(|e| Ended::Lost(e.to_string()))?;
                    self.shared
                        .registry
                        .confirm(std::slice::from_ref(&channel), generation);
                }
                let _ = done.send(());
            }
            Command::Unsubscribe { channel } => {
                if !self.shared.registry.watches_channel(&channel) {
                    sink.unsubscribe(&channel)
                        .await
                        .map_err(|e| Ended::Lost(e.to_string()))?;
                }
            }
            Command::Resync { group } => tolerate(self.resync(&group).await)?,
        }
        Ok(())
    }

    /// Pings both connections: a silent pub/sub connection is dropped (and reconnected); the
    /// command connection's answer decides `/healthz`.
    async fn ping(&self, sink: &mut PubSubSink) -> Result<(), Ended> {
        match tokio::time::timeout(PING_TIMEOUT, sink.ping::<Value>()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Ended::Lost(format!("ping failed: {e}"))),
            Err(_) => return Err(Ended::Lost("ping timed out".into())),
        }
        let mut conn = self.shared.conn();
        let pinged = tokio::time::timeout(
            PING_TIMEOUT,
            redis::cmd("PING").query_async::<()>(&mut conn),
        )
        .await;
        match pinged {
            Ok(Ok(())) => self.shared.health.ok(),
            Ok(Err(e)) => self.shared.health.problem(Error::from(e).to_string()),
            Err(_) => self
                .shared
                .health
                .problem("redis is unreachable: ping timed out".into()),
        }
        Ok(())
    }

    /// Keeps the sequencer state of empty watched groups alive (k).
    async fn renew(&self) {
        let ttl = self.shared.options.empty_group_ttl_ms();
        for keys in self.shared.registry.watched_keys() {
            let renewed: Result<Value, _> = SCRIPTS
                .renew
                .key(&keys.data)
                .key(&keys.meta)
                .key(&keys.hist)
                .arg(ttl)
                .invoke_async(&mut self.shared.conn())
                .await;
            if let Err(error) = renewed {
                tracing::debug!(%error, "cannot renew an empty group's TTL");
                return;
            }
        }
    }
}

/// An error while catching up or re-syncing. If Redis is unreachable the connection is treated
/// as lost (the next one catches up again); any other error is logged and the group carries on
/// from where it is (its next gap or epoch change tries again).
fn tolerate<T: Default>(result: Result<T, Error>) -> Result<T, Ended> {
    match result {
        Ok(value) => Ok(value),
        Err(e) if e.is_unreachable() => Err(Ended::Lost(e.to_string())),
        Err(error) => {
            tracing::warn!(%error, "redis relay step failed");
            Ok(T::default())
        }
    }
}
