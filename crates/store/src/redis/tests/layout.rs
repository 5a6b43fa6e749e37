//! The data layout seen from Redis, listings, insertion order, values that are not JSON, and
//! frame bodies byte-identical to the domain's serialiser.

use super::*;
use crate::StoreError;
use iii_stream_domain::{Change, Stamp};
use redis::Commands;

#[tokio::test]
async fn items_are_plain_json_in_the_original_hash() {
    let names = Names::new(SHARED);
    let (store, _) = open(SHARED).await;
    let key = names.item("chat", "room-1", "msg-9");
    store
        .set(&key, text(r#"{"id":"msg-9","n":12345678901234567}"#))
        .await
        .unwrap();
    let mut redis = names.redis();
    let stored: String = redis
        .hget(format!("stream:{}chat:room-1", names.token), "msg-9")
        .unwrap();
    assert_eq!(stored, r#"{"id":"msg-9","n":12345678901234567}"#);
    let meta: Vec<String> = redis
        .hkeys(format!("iii-stream:meta:{}chat:room-1", names.token))
        .unwrap();
    assert_eq!(meta.len(), 3, "epoch, seq, ts: {meta:?}");
    let history: Vec<String> = redis
        .lrange(format!("iii-stream:hist:{}chat:room-1", names.token), 0, -1)
        .unwrap();
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn listings_keep_colons_and_percents_apart() {
    let names = Names::new(SHARED);
    let (store, _) = open(SHARED).await;
    let a = names.stream("a");
    let ab = names.stream("a:b");
    store
        .set(&ItemKey::new(GroupKey::new(&*a, "g1"), "x"), text("0"))
        .await
        .unwrap();
    store
        .set(&ItemKey::new(GroupKey::new(&*ab, "g2"), "x"), text("0"))
        .await
        .unwrap();
    store
        .set(&ItemKey::new(GroupKey::new(&*a, "b:c"), "x"), text("1"))
        .await
        .unwrap();
    store
        .set(&ItemKey::new(GroupKey::new(&*ab, "c"), "x"), text("2"))
        .await
        .unwrap();
    store
        .set(&ItemKey::new(GroupKey::new(&*a, "100%"), "x"), text("3"))
        .await
        .unwrap();
    let groups = |v: Vec<Arc<str>>| v.iter().map(|g| g.to_string()).collect::<Vec<_>>();
    assert_eq!(
        groups(store.list_groups(&a).await.unwrap()),
        ["100%", "b:c", "g1"]
    );
    assert_eq!(groups(store.list_groups(&ab).await.unwrap()), ["c", "g2"]);
    let get = |s: &str, g: &str| ItemKey::new(GroupKey::new(s, g), "x");
    assert_eq!(
        store.get(&get(&a, "b:c")).await.unwrap().unwrap().get(),
        "1"
    );
    assert_eq!(store.get(&get(&ab, "c")).await.unwrap().unwrap().get(), "2");
    let all: Vec<_> = store
        .list_all()
        .await
        .unwrap()
        .into_iter()
        .filter(|(s, _)| s.contains(&names.token))
        .map(|(s, g)| (s.to_string(), groups(g)))
        .collect();
    assert_eq!(
        all,
        [
            (a.clone(), vec!["100%".into(), "b:c".into(), "g1".into()]),
            (ab.clone(), vec!["c".into(), "g2".into()])
        ]
    );
    // Deleting the last item removes the group, then the stream, from the listings at once.
    store.delete(&get(&ab, "c")).await.unwrap();
    assert_eq!(groups(store.list_groups(&ab).await.unwrap()), ["g2"]);
    store.delete(&get(&ab, "g2")).await.unwrap();
    assert!(store.list_groups(&ab).await.unwrap().is_empty());
    assert!(
        store
            .list_all()
            .await
            .unwrap()
            .iter()
            .all(|(s, _)| **s != *ab)
    );
    let mut redis = names.redis();
    let key_a_bc = format!("stream:{}a:b%3Ac", names.token);
    assert_eq!(redis.hget::<_, _, String>(key_a_bc, "x").unwrap(), "1");
}

#[tokio::test]
async fn listing_order_is_insertion_order_even_for_large_hashes() {
    let names = Names::new(SHARED);
    let (store, _) = open(SHARED).await;
    let group = GroupKey::new(names.stream("big"), "g");
    // Beyond the listpack limits, where a Redis hash forgets insertion order.
    let long = "x".repeat(100);
    for i in (0..300).rev() {
        let value = format!(r#"{{"i":{i},"pad":"{long}"}}"#);
        store
            .set(&ItemKey::new(group.clone(), format!("k{i}")), text(&value))
            .await
            .unwrap();
    }
    // Overwriting keeps the position; deleting and re-creating moves to the end.
    store
        .set(&ItemKey::new(group.clone(), "k150"), text(r#"{"i":150}"#))
        .await
        .unwrap();
    store
        .delete(&ItemKey::new(group.clone(), "k299"))
        .await
        .unwrap();
    store
        .set(&ItemKey::new(group.clone(), "k299"), text(r#"{"i":299}"#))
        .await
        .unwrap();
    let order: Vec<i64> = store
        .list(&group)
        .await
        .unwrap()
        .iter()
        .map(|v| {
            serde_json::from_str::<serde_json::Value>(v.get()).unwrap()["i"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let mut expected: Vec<i64> = (0..299).rev().collect();
    expected.push(299);
    assert_eq!(order, expected);
}

#[tokio::test]
async fn values_that_are_not_json_fail_reads_but_not_overwrites() {
    let names = Names::new(SHARED);
    let (store, recorder) = open(SHARED).await;
    let key = names.item("bad", "g", "it%em");
    store.set(&key, text("1")).await.unwrap();
    let mut redis = names.redis();
    let hash = format!("stream:{}bad:g", names.token);
    let _: () = redis.hset(&hash, "it%em", "not json").unwrap();
    let corrupt =
        |e: StoreError| matches!(e, StoreError::CorruptValue { item, .. } if item == "it%em");
    assert!(corrupt(store.get(&key).await.unwrap_err()));
    assert!(corrupt(store.list(&key.group).await.unwrap_err()));
    assert!(corrupt(store.update(&key, &[]).await.unwrap_err()));
    let written = store.set(&key, text("2")).await.unwrap();
    assert!(written.old.is_none());
    let _: () = redis.hset(&hash, "it%em", "{broken").unwrap();
    let deleted = store.delete(&key).await.unwrap();
    assert!(deleted.old.is_none());
    let frame = deleted.frame.unwrap();
    let body: serde_json::Value = serde_json::from_str(frame.body.get()).unwrap();
    assert_eq!(
        body["event"],
        serde_json::json!({"type":"delete","data":null})
    );
    assert_eq!(recorder.committed.lock().len(), 3);
}

/// The body the scripts publish is byte for byte what `Frame::new` builds from the same fields.
#[tokio::test]
async fn published_bodies_match_the_domain_serialiser() {
    let names = Names::new(SHARED);
    let (store, _) = open(SHARED).await;
    let group = GroupKey::new(names.stream("s\"\\ ✓\u{1}:%"), "g\n\u{0}é");
    let key = ItemKey::new(group.clone(), "i\t\"✓");
    let same = |frame: &Frame, change: Change| {
        let expected = Frame::new(
            frame.group.clone(),
            frame.item.clone(),
            &change,
            Stamp {
                epoch: frame.stamp.epoch.clone(),
                seq: frame.stamp.seq,
                timestamp: frame.stamp.timestamp,
            },
        );
        assert_eq!(frame.body.get(), expected.body.get());
        assert_eq!(frame.event_type, change.event_type());
    };
    let value = text(r#"{"a":[1,2.5,"x\u0000"],"b":null}"#);
    let w = store.set(&key, value.clone()).await.unwrap();
    same(&w.frame, Change::Create(value.clone()));
    let w = store.set(&key, value.clone()).await.unwrap();
    same(&w.frame, Change::Update(value.clone()));
    let d = store.delete(&key).await.unwrap();
    same(&d.frame.unwrap(), Change::Delete(value.clone()));
    let custom = Change::Custom {
        kind: "typ\"e".into(),
        data: value.clone(),
    };
    let f = store.emit(&group, None, custom.clone()).await.unwrap();
    same(&f, custom.clone());
    let f = store
        .emit(&group, Some("x".into()), custom.clone())
        .await
        .unwrap();
    same(&f, custom);
    assert_eq!(f.seq(), 5);
    assert!(f.stamp.timestamp > w.frame.stamp.timestamp);
}

/// An empty group's sequencer state expires; a group with items keeps it.
#[tokio::test]
async fn empty_groups_carry_a_ttl() {
    let names = Names::new(SHARED);
    let (store, _) = open(SHARED).await;
    let group = GroupKey::new(names.stream("ttl"), "g");
    let meta = format!("iii-stream:meta:{}ttl:g", names.token);
    let mut redis = names.redis();
    store
        .emit(
            &group,
            None,
            Change::Custom {
                kind: "k".into(),
                data: text("1"),
            },
        )
        .await
        .unwrap();
    let ttl: i64 = redis.pttl(&meta).unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    store
        .set(&ItemKey::new(group.clone(), "a"), text("1"))
        .await
        .unwrap();
    assert_eq!(redis.pttl::<_, i64>(&meta).unwrap(), -1);
    store
        .delete(&ItemKey::new(group.clone(), "a"))
        .await
        .unwrap();
    assert!(redis.pttl::<_, i64>(&meta).unwrap() > 0);
    // Snapshots report the state's epoch and seq; a lost state starts a new epoch.
    let (epoch, seq) = store
        .snapshot(&group, None, |s| (s.stamp.epoch, s.stamp.seq))
        .await
        .unwrap();
    assert_eq!(seq, 3);
    let _: () = redis.del(&meta).unwrap();
    let (epoch2, seq2) = store
        .snapshot(&group, None, |s| (s.stamp.epoch, s.stamp.seq))
        .await
        .unwrap();
    assert_ne!(epoch, epoch2);
    assert_eq!(seq2, 0);
}
