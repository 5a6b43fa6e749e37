//! The groups this instance relays from Redis pub/sub, and how far each has been relayed.
//!
//! A group is watched while it has local subscriptions (refcounted). For each watched group the
//! registry keeps:
//! - `cursor`: the last frame handed to the sink, set only by the relay task. Frames reach the
//!   sink once, contiguously and in `seq` order: duplicates are dropped, a gap is filled from the
//!   Redis history, a new epoch triggers a re-sync of the group's subscriptions;
//! - `floor`: until the first frame arrives, the lowest snapshot `seq` a local subscription was
//!   started from, which is where a catch-up after a reconnect must begin.
//!
//! Snapshots race with reconnects. The `generation` counts connection losses and `live` says
//! whether the current connection is subscribed and caught up; a snapshot is recorded only if no
//! loss happened while it was read, so the catch-up after a reconnect always knows where every
//! subscription started (a snapshot that straddles a loss is simply read again).

use super::keys::GroupKeys;
use iii_stream_domain::GroupKey;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A point in a group's numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) epoch: Arc<str>,
    pub(crate) seq: u64,
}

/// What to do with a frame received for a group.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The next frame: hand it to the sink (the cursor moved).
    Forward,
    /// Already relayed (or not watched): ignore it.
    Drop,
    /// Frames after this position are missing: fill the gap from the history first.
    Gap(Position),
    /// A different numbering: re-sync the group's subscriptions.
    Resync,
}

/// The outcome of recording a snapshot's position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    Ok,
    /// The connection was lost while the snapshot was read: read it again once live.
    Retry,
    /// The snapshot is of a newer epoch than earlier subscriptions: re-sync those.
    Resync,
}

struct Watch {
    refs: usize,
    keys: Arc<GroupKeys>,
    cursor: Option<Position>,
    floor: Option<Position>,
    /// The generation whose connection confirmed the SUBSCRIBE.
    subscribed_in: Option<u64>,
}

#[derive(Default)]
struct State {
    generation: u64,
    live: bool,
    groups: HashMap<GroupKey, Watch>,
    channels: HashMap<String, GroupKey>,
}

pub(crate) struct Registry {
    state: Mutex<State>,
    live: watch::Sender<bool>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            live: watch::Sender::new(false),
        }
    }
}

impl Registry {
    /// Starts one watch of `group`. Returns the channel to SUBSCRIBE to before reading a
    /// snapshot, unless the current connection already is subscribed (or is down: the reconnect
    /// subscribes every watched group).
    pub(crate) fn acquire(&self, group: &GroupKey) -> Option<String> {
        let mut state = self.state.lock();
        let State {
            generation,
            live,
            groups,
            channels,
        } = &mut *state;
        let watch = groups.entry(group.clone()).or_insert_with(|| {
            let keys = Arc::new(GroupKeys::new(group));
            channels.insert(keys.channel.clone(), group.clone());
            Watch {
                refs: 0,
                keys,
                cursor: None,
                floor: None,
                subscribed_in: None,
            }
        });
        watch.refs += 1;
        (*live && watch.subscribed_in != Some(*generation)).then(|| watch.keys.channel.clone())
    }

    /// Ends one watch; returns the channel to UNSUBSCRIBE from when it was the last.
    pub(crate) fn release(&self, group: &GroupKey) -> Option<String> {
        let mut state = self.state.lock();
        let watch = state.groups.get_mut(group)?;
        watch.refs = watch.refs.saturating_sub(1);
        if watch.refs > 0 {
            return None;
        }
        let watch = state.groups.remove(group)?;
        state.channels.remove(&watch.keys.channel);
        Some(watch.keys.channel.clone())
    }

    pub(crate) fn watches_channel(&self, channel: &str) -> bool {
        self.state.lock().channels.contains_key(channel)
    }

    pub(crate) fn group_of(&self, channel: &str) -> Option<GroupKey> {
        self.state.lock().channels.get(channel).cloned()
    }

    pub(crate) fn keys_of(&self, group: &GroupKey) -> Option<Arc<GroupKeys>> {
        self.state.lock().groups.get(group).map(|w| w.keys.clone())
    }

    pub(crate) fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Waits until the relay is connected, subscribed and caught up.
    pub(crate) async fn wait_live(&self, within: Duration) -> bool {
        let mut live = self.live.subscribe();
        matches!(
            tokio::time::timeout(within, live.wait_for(|live| *live)).await,
            Ok(Ok(_))
        )
    }

    /// The connection was lost: frames may have been missed from now on.
    pub(crate) fn lost(&self) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.live = false;
        self.live.send_replace(false);
    }

    /// A new connection: the current generation and every channel to subscribe to.
    pub(crate) fn channels(&self) -> (u64, Vec<String>) {
        let state = self.state.lock();
        (state.generation, state.channels.keys().cloned().collect())
    }

    /// Records that `channels` are subscribed on the connection of `generation`.
    pub(crate) fn confirm(&self, channels: &[String], generation: u64) {
        let mut state = self.state.lock();
        let State {
            groups,
            channels: by_channel,
            ..
        } = &mut *state;
        for channel in channels {
            if let Some(watch) = by_channel.get(channel).and_then(|g| groups.get_mut(g)) {
                watch.subscribed_in = Some(generation);
            }
        }
    }

    /// Every watched group with the position a catch-up must start from (`None`: no
    /// subscription of it has a known starting point).
    pub(crate) fn catch_up_list(&self) -> Vec<(GroupKey, Option<Position>)> {
        let state = self.state.lock();
        state
            .groups
            .iter()
            .map(|(group, w)| (group.clone(), w.cursor.clone().or_else(|| w.floor.clone())))
            .collect()
    }

    /// Every watched group's keys (for TTL renewal).
    pub(crate) fn watched_keys(&self) -> Vec<Arc<GroupKeys>> {
        let state = self.state.lock();
        state.groups.values().map(|w| w.keys.clone()).collect()
    }

    /// Subscribed and caught up: snapshots may be read again. Refused, with the channels still
    /// to subscribe, if groups were first watched while the connection was being resumed (after
    /// its channel list was taken); they need no catch-up, as none of their snapshots was read.
    pub(crate) fn go_live(&self, generation: u64) -> Result<(), Vec<String>> {
        let mut state = self.state.lock();
        let late: Vec<String> = state
            .groups
            .values()
            .filter(|w| w.subscribed_in != Some(generation))
            .map(|w| w.keys.channel.clone())
            .collect();
        if !late.is_empty() {
            return Err(late);
        }
        state.live = true;
        self.live.send_replace(true);
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn set_live(&self) {
        let generation = self.generation();
        let channels: Vec<String> = self.channels().1;
        self.confirm(&channels, generation);
        assert!(self.go_live(generation).is_ok());
    }

    /// Decides what to do with a received frame, moving the cursor when it is forwarded.
    pub(crate) fn admit(&self, group: &GroupKey, epoch: &Arc<str>, seq: u64) -> Decision {
        let mut state = self.state.lock();
        let Some(watch) = state.groups.get_mut(group) else {
            return Decision::Drop;
        };
        let decision = match (&watch.cursor, &watch.floor) {
            (Some(c), _) if c.epoch != *epoch => Decision::Resync,
            (Some(c), _) if seq <= c.seq => Decision::Drop,
            (Some(c), _) if seq > c.seq + 1 => Decision::Gap(c.clone()),
            (Some(_), _) => Decision::Forward,
            (None, Some(f)) if f.epoch != *epoch => Decision::Resync,
            (None, Some(f)) if seq > f.seq + 1 => Decision::Gap(f.clone()),
            // Frames at or below the floor still go to the sink: a subscription whose snapshot
            // is older may still be registering, and fan-out skips what a sync already covers.
            (None, _) => Decision::Forward,
        };
        if decision == Decision::Forward {
            watch.cursor = Some(Position {
                epoch: epoch.clone(),
                seq,
            });
        }
        decision
    }

    /// The group's subscriptions were re-synced at `position`.
    pub(crate) fn reset(&self, group: &GroupKey, position: Position) {
        if let Some(watch) = self.state.lock().groups.get_mut(group) {
            watch.cursor = Some(position);
            watch.floor = None;
        }
    }

    /// Records the position a snapshot (or resume) of `group` was read at, if no connection loss
    /// happened since `generation` was read before it.
    pub(crate) fn record(&self, group: &GroupKey, generation: u64, at: &Position) -> Recorded {
        let mut state = self.state.lock();
        if state.generation != generation || !state.live {
            return Recorded::Retry;
        }
        let Some(watch) = state.groups.get_mut(group) else {
            return Recorded::Ok;
        };
        match (&watch.cursor, &mut watch.floor) {
            (Some(c), _) if c.epoch != at.epoch => Recorded::Resync,
            (Some(_), _) => Recorded::Ok,
            (None, Some(f)) if f.epoch == at.epoch => {
                f.seq = f.seq.min(at.seq);
                Recorded::Ok
            }
            (None, floor) => {
                let resync = floor.is_some();
                *floor = Some(at.clone());
                if resync {
                    Recorded::Resync
                } else {
                    Recorded::Ok
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(epoch: &str, seq: u64) -> Position {
        Position {
            epoch: epoch.into(),
            seq,
        }
    }

    fn live() -> (Registry, GroupKey) {
        let r = Registry::default();
        r.set_live();
        (r, GroupKey::new("s", "g"))
    }

    #[test]
    fn refcounted_subscription() {
        let (r, g) = live();
        let channel = r.acquire(&g).unwrap();
        assert_eq!(channel, "iii-stream:ev:s:g");
        r.confirm(std::slice::from_ref(&channel), r.generation());
        assert_eq!(r.acquire(&g), None, "already subscribed on this connection");
        assert_eq!(r.release(&g), None);
        assert_eq!(r.release(&g), Some(channel.clone()));
        assert!(!r.watches_channel(&channel));
        assert_eq!(r.release(&g), None);
    }

    #[test]
    fn frames_flow_contiguously() {
        let (r, g) = live();
        let e: Arc<str> = "e".into();
        r.acquire(&g);
        assert_eq!(r.record(&g, r.generation(), &pos("e", 5)), Recorded::Ok);
        assert_eq!(r.record(&g, r.generation(), &pos("e", 3)), Recorded::Ok);
        assert_eq!(r.catch_up_list(), [(g.clone(), Some(pos("e", 3)))]);
        assert_eq!(r.admit(&g, &e, 2), Decision::Forward);
        assert_eq!(r.admit(&g, &e, 2), Decision::Drop);
        assert_eq!(r.admit(&g, &e, 3), Decision::Forward);
        assert_eq!(r.admit(&g, &e, 6), Decision::Gap(pos("e", 3)));
        assert_eq!(r.admit(&g, &"f".into(), 1), Decision::Resync);
        r.reset(&g, pos("f", 1));
        assert_eq!(r.admit(&g, &"f".into(), 2), Decision::Forward);
        assert_eq!(r.admit(&g, &"f".into(), 2), Decision::Drop);
        assert_eq!(r.admit(&GroupKey::new("s", "x"), &e, 1), Decision::Drop);
    }

    #[test]
    fn the_first_frame_after_the_floor_must_be_contiguous() {
        let (r, g) = live();
        r.acquire(&g);
        r.record(&g, r.generation(), &pos("e", 5));
        assert_eq!(r.admit(&g, &"e".into(), 7), Decision::Gap(pos("e", 5)));
        assert_eq!(r.admit(&g, &"e".into(), 4), Decision::Forward);
    }

    #[test]
    fn groups_watched_while_resuming_are_subscribed_before_going_live() {
        let r = Registry::default();
        let (generation, channels) = r.channels();
        assert!(channels.is_empty());
        let g = GroupKey::new("s", "late");
        assert_eq!(r.acquire(&g), None, "not live: the resume subscribes it");
        let late = r.go_live(generation).unwrap_err();
        assert_eq!(late, ["iii-stream:ev:s:late"]);
        r.confirm(&late, generation);
        assert!(r.go_live(generation).is_ok());
    }

    #[test]
    fn snapshots_across_a_loss_are_read_again() {
        let (r, g) = live();
        r.acquire(&g);
        let before = r.generation();
        r.lost();
        assert_eq!(r.record(&g, before, &pos("e", 1)), Recorded::Retry);
        let (generation, channels) = r.channels();
        assert_eq!(channels.len(), 1);
        r.set_live();
        assert_eq!(r.record(&g, generation, &pos("e", 1)), Recorded::Ok);
        assert_eq!(
            r.record(&g, generation, &pos("new", 0)),
            Recorded::Resync,
            "a new epoch under older subscriptions"
        );
    }

    #[tokio::test]
    async fn waiting_for_live() {
        let r = Registry::default();
        assert!(!r.wait_live(Duration::from_millis(10)).await);
        r.set_live();
        assert!(r.wait_live(Duration::from_millis(10)).await);
    }
}
