//! The in-memory kv store, and helpers shared with the durable store's tests.

use super::*;
use iii_stream_domain::EventType;
use parking_lot::Mutex;
use serde_json::value::RawValue;

#[derive(Default)]
pub(super) struct Recorder(pub(super) Mutex<Vec<Arc<Frame>>>);

impl EventSink for Recorder {
    fn publish(&self, frame: &Arc<Frame>, local: bool) {
        assert!(local);
        self.0.lock().push(frame.clone());
    }
}

pub(super) fn text(s: &str) -> JsonText {
    Arc::from(RawValue::from_string(s.to_owned()).unwrap())
}

fn store() -> (KvStore, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (KvStore::in_memory(rec.clone()), rec)
}

pub(super) fn item(s: &str, g: &str, i: &str) -> ItemKey {
    ItemKey::new(GroupKey::new(s, g), i)
}

#[tokio::test]
async fn writes_are_numbered_and_published_in_order() {
    let (store, rec) = store();
    let k = item("s", "g", "a");
    let w = store.set(&k, text("1")).await.unwrap();
    assert!(w.old.is_none());
    let w = store.set(&k, text("2")).await.unwrap();
    assert_eq!(w.old.unwrap().get(), "1");
    let d = store.delete(&k).await.unwrap();
    assert_eq!(d.old.unwrap().get(), "2");
    assert!(store.delete(&k).await.unwrap().frame.is_none());
    let frames = rec.0.lock();
    let kinds: Vec<_> = frames.iter().map(|f| (f.seq(), f.event_type)).collect();
    assert_eq!(
        kinds,
        [
            (1, EventType::Create),
            (2, EventType::Update),
            (3, EventType::Delete)
        ]
    );
    assert!(
        frames
            .windows(2)
            .all(|w| w[0].stamp.timestamp < w[1].stamp.timestamp)
    );
}

#[tokio::test]
async fn emptied_groups_vanish_from_listings_and_names_never_mix() {
    let (store, _) = store();
    store.set(&item("a", "g1", "x"), text("0")).await.unwrap();
    store.set(&item("a:b", "g2", "x"), text("0")).await.unwrap();
    store.set(&item("a", "b:c", "x"), text("1")).await.unwrap();
    store.set(&item("a:b", "c", "x"), text("2")).await.unwrap();
    let names = |v: Vec<Arc<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(names(store.list_groups("a").await.unwrap()), ["b:c", "g1"]);
    assert_eq!(names(store.list_groups("a:b").await.unwrap()), ["c", "g2"]);
    store.delete(&item("a", "g1", "x")).await.unwrap();
    assert_eq!(names(store.list_groups("a").await.unwrap()), ["b:c"]);
    store.delete(&item("a", "b:c", "x")).await.unwrap();
    let all: Vec<_> = store
        .list_all()
        .await
        .unwrap()
        .into_iter()
        .map(|(s, _)| s.to_string())
        .collect();
    assert_eq!(all, ["a:b"]);
}

#[tokio::test]
async fn snapshot_carries_the_seq_of_the_last_event() {
    let (store, _) = store();
    let g = GroupKey::new("s", "g");
    store
        .set(&ItemKey::new(g.clone(), "a"), text("1"))
        .await
        .unwrap();
    store
        .emit(
            &g,
            None,
            Change::Custom {
                kind: "t".into(),
                data: text("null"),
            },
        )
        .await
        .unwrap();
    let snap = store.snapshot(&g, None, |s| s).await.unwrap();
    assert_eq!(snap.stamp.seq, 2);
    let SnapshotData::Group(values) = snap.data else {
        panic!()
    };
    assert_eq!(values.len(), 1);
    let empty = store
        .snapshot(&GroupKey::new("s", "none"), Some("x"), |s| s)
        .await
        .unwrap();
    assert_eq!(empty.stamp.seq, 0);
    assert!(matches!(empty.data, SnapshotData::Item(None)));
}

fn bounded(linger_ms: u64, max_idle_groups: usize) -> (KvStore, Arc<Recorder>) {
    let (store, rec) = store();
    let store = store.with_options(KvOptions {
        max_groups_per_stream: None,
        idle_linger: std::time::Duration::from_millis(linger_ms),
        max_idle_groups,
    });
    (store, rec)
}

#[tokio::test]
async fn empty_groups_go_once_idle_for_the_linger_and_names_leave_nothing_behind() {
    let (store, _) = bounded(1_000, 100_000);
    for i in 0..500 {
        let k = item("s", &format!("g{i}"), "a");
        store.set(&k, text("1")).await.unwrap();
        store.delete(&k).await.unwrap();
        let g = GroupKey::new("s", format!("e{i}"));
        let custom = Change::Custom {
            kind: "t".into(),
            data: text("1"),
        };
        store.emit(&g, None, custom).await.unwrap();
        // Reads of fresh names create nothing.
        assert!(
            store
                .get(&item("s", &format!("r{i}"), "a"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .list(&GroupKey::new("s", format!("r{i}")))
                .await
                .unwrap()
                .is_empty()
        );
    }
    store.set(&item("s", "kept", "a"), text("1")).await.unwrap();
    assert_eq!(store.group_count(), 1001);
    store.sweep();
    assert_eq!(
        store.group_count(),
        1001,
        "kept while their last event is recent"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    store.sweep();
    assert_eq!(
        store.group_count(),
        1,
        "only the group with an item is left"
    );
    assert_eq!(store.list_groups("s").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_lingering_empty_group_keeps_its_numbering() {
    let (store, rec) = bounded(60_000, 100);
    let g = GroupKey::new("s", "typing");
    for _ in 0..3 {
        let custom = Change::Custom {
            kind: "t".into(),
            data: text("1"),
        };
        store.emit(&g, None, custom).await.unwrap();
        store.sweep();
    }
    let frames = rec.0.lock();
    let seqs: Vec<_> = frames
        .iter()
        .map(|f| (f.seq(), f.stamp.epoch.clone()))
        .collect();
    assert_eq!(seqs.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(seqs.iter().all(|s| s.1 == seqs[0].1), "one epoch");
}

#[tokio::test]
async fn beyond_max_idle_groups_the_oldest_go_early() {
    let (store, _) = bounded(60_000, 10);
    for i in 0..50 {
        let k = item("s", &format!("g{i}"), "a");
        store.set(&k, text("1")).await.unwrap();
        store.delete(&k).await.unwrap();
    }
    store.sweep();
    assert_eq!(store.group_count(), 10);
    assert!(
        store.find(&GroupKey::new("s", "g49")).is_some(),
        "the newest stay"
    );
}

#[tokio::test]
async fn a_writer_holding_a_removed_group_writes_to_its_successor() {
    let (store, _) = bounded(0, 100);
    let g = GroupKey::new("s", "g");
    let k = item("s", "g", "a");
    store.set(&k, text("1")).await.unwrap();
    store.delete(&k).await.unwrap();
    let stale = store.find(&g).unwrap();
    store.sweep();
    assert!(stale.state.lock().retired);
    store.set(&k, text("2")).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().unwrap().get(), "2");
    assert_eq!(store.list_groups("s").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_full_stream_refuses_one_more_group_and_nothing_else() {
    let (store, _) = store();
    let store = store.with_options(KvOptions {
        max_groups_per_stream: Some(1_000),
        ..KvOptions::default()
    });
    for i in 0..1000 {
        store
            .set(&item("s", &format!("g{i}"), "a"), text("1"))
            .await
            .unwrap();
    }
    let error = store
        .set(&item("s", "one-more", "a"), text("1"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::GroupLimit { limit: 1000, .. }),
        "{error}"
    );
    // Existing groups and other streams are fine.
    store.set(&item("s", "g1", "b"), text("2")).await.unwrap();
    store.set(&item("t", "g", "a"), text("3")).await.unwrap();
}
