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
