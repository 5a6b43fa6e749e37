use super::*;
use iii_stream_domain::{Change, Stamp};
use serde_json::Value;
use serde_json::value::RawValue;
use std::time::Duration;

fn config(max_events: usize) -> HistoryConfig {
    HistoryConfig {
        max_events,
        max_age_ms: 60_000,
        max_total_bytes: 1 << 30,
        max_idle_groups: 1000,
    }
}

fn group() -> GroupKey {
    GroupKey::new("s", "g")
}

fn frame(seq: u64, item: &str) -> Arc<Frame> {
    frame_in(group(), "e1", seq, item)
}

fn frame_in(group: GroupKey, epoch: &str, seq: u64, item: &str) -> Arc<Frame> {
    let data: Arc<RawValue> = Arc::from(RawValue::from_string(format!("{seq}")).unwrap());
    Arc::new(Frame::new(
        group,
        Some(item.into()),
        &Change::Update(data),
        Stamp {
            epoch: epoch.into(),
            seq,
            timestamp: seq,
        },
    ))
}

struct Client {
    outbox: Arc<Outbox>,
}

impl Client {
    fn new() -> Self {
        Self {
            outbox: Arc::new(Outbox::new(1000, 1 << 20)),
        }
    }

    fn sub(&self, id: &str, item: Option<&str>) -> Arc<Subscription> {
        Subscription::new(id.into(), group(), item.map(Arc::from), self.outbox.clone())
    }

    /// Received frames as (seq or "sync", subscriptionId).
    fn received(&self) -> Vec<String> {
        self.outbox
            .take()
            .into_iter()
            .map(|o| {
                let v: Value = serde_json::from_str(&o.into_text()).unwrap();
                let what = match v["event"]["type"].as_str().unwrap() {
                    "sync" => "sync".to_owned(),
                    _ => v["seq"].to_string(),
                };
                format!("{what}@{}", v["subscriptionId"].as_str().unwrap())
            })
            .collect()
    }
}

/// Gives `group` a channel, as a subscription that came and went would: frames published from
/// now on are kept for resume.
fn watched(hub: &Hub, group: &GroupKey) {
    hub.open(group);
}

fn sync(id: &str, seq: u64, in_flight: bool) -> Start {
    Start::Sync {
        epoch: "e1".into(),
        seq,
        text: format!(r#"{{"event":{{"type":"sync"}},"seq":{seq},"subscriptionId":"{id}"}}"#),
        in_flight,
    }
}

#[test]
fn sync_at_the_published_seq_then_live_frames() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    watched(&hub, &group());
    hub.publish(&frame(1, "a"));
    assert_eq!(
        hub.subscribe(&c.sub("s1", None), sync("s1", 1, true)),
        Started::Synced
    );
    hub.publish(&frame(2, "a"));
    assert_eq!(c.received(), ["sync@s1", "2@s1"]);
}

#[test]
fn a_snapshot_ahead_of_publication_waits_for_its_last_frame() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    watched(&hub, &group());
    hub.publish(&frame(1, "a"));
    // Durable writes 2 and 3 are in the snapshot but not yet published.
    hub.subscribe(&c.sub("s1", None), sync("s1", 3, true));
    assert!(
        c.received().is_empty(),
        "no sync before its changes are durable"
    );
    hub.publish(&frame(2, "a"));
    hub.publish(&frame(3, "a"));
    hub.publish(&frame(4, "a"));
    assert_eq!(c.received(), ["sync@s1", "4@s1"]);
}

#[test]
fn without_in_flight_guarantee_the_sync_goes_out_at_once() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    hub.subscribe(&c.sub("s1", None), sync("s1", 7, false));
    hub.publish(&frame(7, "a"));
    hub.publish(&frame(8, "a"));
    assert_eq!(c.received(), ["sync@s1", "8@s1"]);
}

#[test]
fn a_snapshot_behind_publication_is_caught_up_from_history_or_refused() {
    let hub = Hub::new(config(2));
    let c = Client::new();
    watched(&hub, &group());
    for seq in 1..=4 {
        hub.publish(&frame(seq, "a"));
    }
    assert_eq!(
        hub.subscribe(&c.sub("s1", None), sync("s1", 2, false)),
        Started::Synced
    );
    hub.publish(&frame(5, "a"));
    assert_eq!(c.received(), ["sync@s1", "3@s1", "4@s1", "5@s1"]);
    assert_eq!(
        hub.subscribe(&c.sub("s2", None), sync("s2", 1, false)),
        Started::Stale
    );
    assert!(c.received().is_empty());
    assert_eq!(hub.subscriber_count(&group()), 1);
}

#[test]
fn resume_replays_exactly_the_missed_frames() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    watched(&hub, &group());
    for seq in 1..=6 {
        hub.publish(&frame(seq, if seq % 2 == 0 { "a" } else { "b" }));
    }
    let since = |epoch: &str, seq| {
        Start::Resume(Since {
            epoch: epoch.into(),
            seq,
        })
    };
    assert_eq!(
        hub.subscribe(&c.sub("g", None), since("e1", 3)),
        Started::Resumed
    );
    assert_eq!(
        hub.subscribe(&c.sub("i", Some("a")), since("e1", 1)),
        Started::Resumed
    );
    assert_eq!(
        hub.subscribe(&c.sub("x", None), since("other", 3)),
        Started::NotResumable
    );
    assert_eq!(
        hub.subscribe(&c.sub("y", None), since("e1", 9)),
        Started::NotResumable
    );
    assert_eq!(
        hub.subscribe(&c.sub("z", None), since("e1", 6)),
        Started::Resumed
    );
    hub.publish(&frame(7, "a"));
    assert_eq!(
        c.received(),
        [
            "4@g", "5@g", "6@g", "2@i", "4@i", "6@i", "7@g", "7@i", "7@z"
        ]
    );
}

#[test]
fn resume_is_refused_when_history_is_disabled_or_too_short() {
    let hub = Hub::new(config(0));
    let c = Client::new();
    hub.publish(&frame(1, "a"));
    let start = Start::Resume(Since {
        epoch: "e1".into(),
        seq: 0,
    });
    assert_eq!(
        hub.subscribe(&c.sub("s", None), start),
        Started::NotResumable
    );
    let hub = Hub::new(config(2));
    for seq in 1..=5 {
        hub.publish(&frame(seq, "a"));
    }
    let start = Start::Resume(Since {
        epoch: "e1".into(),
        seq: 2,
    });
    assert_eq!(
        hub.subscribe(&c.sub("s", None), start),
        Started::NotResumable
    );
}

#[test]
fn deferred_subscriptions_hold_frames_until_their_sync() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    watched(&hub, &group());
    hub.publish(&frame(1, "a"));
    let sub = c.sub("p", None);
    assert_eq!(
        hub.subscribe(&sub, Start::Deferred),
        Started::Deferred { seq: 1 }
    );
    hub.publish(&frame(2, "a"));
    assert!(c.received().is_empty());
    hub.finish_deferred(
        &sub,
        Some(r#"{"event":{"type":"sync"},"subscriptionId":"p"}"#.into()),
    );
    hub.publish(&frame(3, "a"));
    assert_eq!(c.received(), ["sync@p", "2@p", "3@p"]);
}

#[test]
fn unsubscribed_and_other_groups_receive_nothing() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    let sub = c.sub("s", None);
    hub.subscribe(&sub, sync("s", 0, true));
    c.received();
    hub.publish(&frame_in(GroupKey::new("s", "other"), "e9", 1, "a"));
    hub.publish(&frame_in(GroupKey::new("s:g", ""), "e9", 1, "a"));
    hub.unsubscribe(&sub);
    hub.publish(&frame(1, "a"));
    assert!(c.received().is_empty());
    assert_eq!(hub.subscriber_count(&group()), 0);
}

#[test]
fn the_byte_budget_evicts_the_oldest_frames_across_groups() {
    let one = frame(1, "a").byte_len();
    let hub = Hub::new(HistoryConfig {
        max_events: 100,
        max_age_ms: 60_000,
        max_total_bytes: one * 4,
        max_idle_groups: 1000,
    });
    watched(&hub, &GroupKey::new("s", "old"));
    watched(&hub, &GroupKey::new("s", "new"));
    for seq in 1..=3 {
        hub.publish(&frame_in(GroupKey::new("s", "old"), "e", seq, "a"));
    }
    for seq in 1..=3 {
        hub.publish(&frame_in(GroupKey::new("s", "new"), "e", seq, "a"));
    }
    assert!(hub.budget.total() <= one * 4);
    let c = Client::new();
    let resume = |group: &str, seq| {
        let sub = Subscription::new(
            "r".into(),
            GroupKey::new("s", group),
            None,
            c.outbox.clone(),
        );
        hub.subscribe(
            &sub,
            Start::Resume(Since {
                epoch: "e".into(),
                seq,
            }),
        )
    };
    assert_eq!(
        resume("old", 0),
        Started::NotResumable,
        "oldest frames went first"
    );
    assert_eq!(
        resume("new", 0),
        Started::Resumed,
        "newest frames were kept"
    );
}

#[test]
fn publishing_a_frame_twice_delivers_it_once() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    hub.subscribe(&c.sub("s", None), sync("s", 0, false));
    hub.publish(&frame(1, "a"));
    hub.publish(&frame(1, "a"));
    hub.publish(&frame(2, "a"));
    hub.publish(&frame(1, "a"));
    assert_eq!(c.received(), ["sync@s", "1@s", "2@s"]);
}

fn replay(seq: u64, frames: &[u64]) -> Start {
    Start::Replay {
        epoch: "e1".into(),
        seq,
        frames: frames.iter().map(|&s| frame(s, "a")).collect(),
    }
}

#[test]
fn a_store_replay_is_sent_then_live_frames_follow() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    // Nothing of this group was published here yet (another instance wrote it).
    assert_eq!(
        hub.subscribe(&c.sub("r", None), replay(5, &[4, 5])),
        Started::Resumed
    );
    hub.publish(&frame(5, "a"));
    hub.publish(&frame(6, "a"));
    let item = c.sub("i", Some("b"));
    assert_eq!(hub.subscribe(&item, replay(6, &[])), Started::Resumed);
    hub.publish(&frame_in(group(), "e1", 7, "b"));
    assert_eq!(c.received(), ["4@r", "5@r", "6@r", "7@r", "7@i"]);
}

#[test]
fn a_replay_overtaken_by_publication_is_completed_or_refused() {
    let hub = Hub::new(config(2));
    let c = Client::new();
    watched(&hub, &group());
    for seq in 1..=4 {
        hub.publish(&frame(seq, "a"));
    }
    // Read from the store at seq 3 while frame 4 was already published here.
    assert_eq!(
        hub.subscribe(&c.sub("r", None), replay(3, &[2, 3])),
        Started::Resumed
    );
    hub.publish(&frame(5, "a"));
    assert_eq!(c.received(), ["2@r", "3@r", "4@r", "5@r"]);
    // The local history (2 frames) no longer reaches back to seq 2.
    assert_eq!(
        hub.subscribe(&c.sub("x", None), replay(2, &[2])),
        Started::Stale
    );
}

#[test]
fn resync_restarts_every_subscription_from_a_fresh_snapshot() {
    let hub = Hub::new(config(10));
    let c = Client::new();
    hub.subscribe(&c.sub("g", None), sync("g", 0, false));
    hub.subscribe(&c.sub("i", Some("a")), sync("i", 0, false));
    hub.publish(&frame(1, "a"));
    assert_eq!(c.received(), ["sync@g", "sync@i", "1@g", "1@i"]);
    // The group's state was lost and recreated with a new epoch.
    hub.resync(&group(), "e2".into(), 0, |sub| {
        format!(
            r#"{{"event":{{"type":"sync"}},"seq":0,"subscriptionId":"{}"}}"#,
            sub.id
        )
    });
    hub.publish(&frame_in(group(), "e2", 1, "a"));
    assert_eq!(c.received(), ["sync@g", "sync@i", "1@g", "1@i"]);
    assert_eq!(hub.epoch(&group()).as_deref(), Some("e2"));
    let resume = Start::Resume(Since {
        epoch: "e1".into(),
        seq: 1,
    });
    assert_eq!(
        hub.subscribe(&c.sub("old", None), resume),
        Started::NotResumable,
        "the old numbering's history is gone"
    );
}

fn lingering(max_age_ms: u64) -> HistoryConfig {
    HistoryConfig {
        max_events: 10,
        max_age_ms,
        max_total_bytes: 1 << 20,
        max_idle_groups: 1000,
    }
}

#[test]
fn frames_of_a_group_nobody_subscribed_to_cost_nothing() {
    let hub = Hub::new(config(10));
    for seq in 1..=3 {
        hub.publish(&frame(seq, "a"));
    }
    assert_eq!(hub.channel_count(), 0);
    assert_eq!(hub.budget.total(), 0);
    assert!(!hub.retains(&group()));
}

#[test]
fn without_history_the_last_unsubscribe_removes_the_channel() {
    for history in [
        config(0),
        HistoryConfig {
            max_total_bytes: 0,
            ..config(10)
        },
        lingering(0),
    ] {
        let hub = Hub::new(history);
        let c = Client::new();
        let (a, b) = (c.sub("a", None), c.sub("b", None));
        hub.subscribe(&a, sync("a", 0, false));
        hub.subscribe(&b, sync("b", 0, false));
        hub.publish(&frame(1, "x"));
        assert_eq!(hub.budget.total(), 0, "no history kept");
        hub.unsubscribe(&a);
        assert_eq!(hub.channel_count(), 1, "b still subscribed");
        hub.unsubscribe(&b);
        assert_eq!(hub.channel_count(), 0);
        assert!(!hub.retains(&group()));
    }
}

#[test]
fn a_channel_lingers_for_max_age_then_the_sweep_removes_it() {
    let hub = Hub::new(lingering(50));
    let c = Client::new();
    let sub = c.sub("s", None);
    hub.subscribe(&sub, sync("s", 0, false));
    hub.publish(&frame(1, "a"));
    hub.unsubscribe(&sub);
    assert_eq!(hub.channel_count(), 1, "kept for a resume");
    hub.publish(&frame(2, "a"));
    hub.sweep();
    assert_eq!(hub.channel_count(), 1, "not idle for max_age yet");
    // A client that dropped off resumes within max_age: it gets what it missed.
    let back = c.sub("s", None);
    let since = Start::Resume(Since {
        epoch: "e1".into(),
        seq: 1,
    });
    assert_eq!(hub.subscribe(&back, since), Started::Resumed);
    c.received();
    hub.unsubscribe(&back);
    std::thread::sleep(Duration::from_millis(60));
    hub.sweep();
    assert_eq!(hub.channel_count(), 0);
    assert_eq!(hub.budget.total(), 0, "its history went with it");
    // The group can be subscribed again at once (a new channel).
    let again = c.sub("t", None);
    assert_eq!(hub.subscribe(&again, sync("t", 2, false)), Started::Synced);
    hub.publish(&frame(3, "a"));
    assert_eq!(c.received(), ["sync@t", "3@t"]);
}

#[test]
fn a_retired_channel_is_never_used() {
    let hub = Hub::new(lingering(0));
    let c = Client::new();
    let sub = c.sub("s", None);
    hub.subscribe(&sub, sync("s", 0, false));
    let channel = hub.existing(&group()).unwrap();
    hub.unsubscribe(&sub);
    assert!(channel.state.lock().retired);
    // Whoever still held the old channel finds the group anew.
    let next = c.sub("n", None);
    assert_eq!(hub.subscribe(&next, sync("n", 0, false)), Started::Synced);
    assert!(!Arc::ptr_eq(&channel, &hub.existing(&group()).unwrap()));
    assert_eq!(channel.state.lock().entries.len(), 0);
}

#[test]
fn beyond_max_idle_groups_the_oldest_idle_channels_go_early() {
    let hub = Hub::new(HistoryConfig {
        max_idle_groups: 2,
        ..lingering(60_000)
    });
    let c = Client::new();
    for g in ["a", "b", "c", "d"] {
        let sub = Subscription::new(g.into(), GroupKey::new("s", g), None, c.outbox.clone());
        hub.subscribe(&sub, sync(g, 0, false));
        hub.unsubscribe(&sub);
    }
    hub.sweep();
    assert_eq!(hub.channel_count(), 2);
    assert!(!hub.retains(&GroupKey::new("s", "a")));
    assert!(hub.retains(&GroupKey::new("s", "d")));
}
