//! Fan-out through pub/sub: frames from other instances in `seq` order, triggers on the writer,
//! resume from the Redis history, gaps after a killed pub/sub connection, a Redis restart, and
//! contended updates across instances.

use super::*;
use crate::SnapshotData;
use iii_stream_domain::Change;
use iii_stream_domain::update::UpdateOp;

/// Watches `group` on `store` and takes a snapshot, as a join does; returns its seq.
async fn join(store: &RedisStore, group: &GroupKey) -> (Arc<str>, u64) {
    store.watch(group).await.unwrap();
    store
        .snapshot(group, None, |s| (s.stamp.epoch, s.stamp.seq))
        .await
        .unwrap()
}

fn consecutive(seqs: &[u64], after: u64) {
    let expected: Vec<u64> = (after + 1..=after + seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
}

#[tokio::test]
async fn writes_on_one_instance_reach_watchers_on_another_in_order() {
    let names = Names::new(SHARED);
    let (a, a_rec) = open(SHARED).await;
    let (b, b_rec) = open(SHARED).await;
    let a = Arc::new(a);
    let group = GroupKey::new(names.stream("fan"), "g");
    a.set(&ItemKey::new(group.clone(), "pre"), text("0"))
        .await
        .unwrap();
    let (_, from) = join(&b, &group).await;
    assert_eq!(from, 1);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (a, group) = (a.clone(), group.clone());
            tokio::spawn(async move {
                for i in 0..25 {
                    let key = ItemKey::new(group.clone(), format!("w{w}"));
                    a.set(&key, text(&i.to_string())).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    b_rec
        .wait_published(&group, 100, Duration::from_secs(5))
        .await;
    consecutive(&b_rec.seqs(&group), 1);
    // Triggers fire on the writer only, in seq order; the writer does not watch the group.
    let committed: Vec<u64> = a_rec.committed.lock().iter().map(|f| f.seq()).collect();
    consecutive(&committed, 0);
    assert!(b_rec.committed.lock().is_empty());
    assert!(a_rec.published.lock().is_empty());
    // Bodies are relayed byte for byte.
    let sent = a_rec.committed.lock()[5].body.get().to_owned();
    assert_eq!(b_rec.published.lock()[4].body.get(), sent);
    b.unwatch(&group);
}

#[tokio::test]
async fn resume_is_served_from_the_redis_history() {
    let names = Names::new(SHARED);
    let (a, _) = open(SHARED).await;
    let (b, _) = open(SHARED).await;
    let group = GroupKey::new(names.stream("resume"), "g");
    for i in 0..3 {
        a.set(&ItemKey::new(group.clone(), "x"), text(&i.to_string()))
            .await
            .unwrap();
    }
    let (epoch, seq) = b
        .snapshot(&group, None, |s| (s.stamp.epoch, s.stamp.seq))
        .await
        .unwrap();
    a.emit(
        &group,
        None,
        Change::Custom {
            kind: "t".into(),
            data: text("null"),
        },
    )
    .await
    .unwrap();
    a.delete(&ItemKey::new(group.clone(), "x")).await.unwrap();
    let replay = b.replay(&group, &epoch, seq).await.unwrap().unwrap();
    assert_eq!(replay.seq, 5);
    let seqs: Vec<u64> = replay.frames.iter().map(|f| f.seq()).collect();
    assert_eq!(seqs, [4, 5]);
    assert!(
        b.replay(&group, &epoch, 5)
            .await
            .unwrap()
            .unwrap()
            .frames
            .is_empty()
    );
    assert!(b.replay(&group, "other", 3).await.unwrap().is_none());
    assert!(b.replay(&group, &epoch, 6).await.unwrap().is_none());
    // A history shorter than the gap: a full sync instead.
    let short = RedisStore::open(
        RedisOptions {
            max_events: 2,
            ..options(SHARED)
        },
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    for i in 0..3 {
        short
            .set(&ItemKey::new(group.clone(), "y"), text(&i.to_string()))
            .await
            .unwrap();
    }
    assert!(short.replay(&group, &epoch, 5).await.unwrap().is_none());
    assert!(short.replay(&group, &epoch, 6).await.unwrap().is_some());
}

#[tokio::test]
async fn concurrent_updates_from_two_instances_never_lose_an_increment() {
    let names = Names::new(SHARED);
    let (a, _) = open(SHARED).await;
    let (b, _) = open(SHARED).await;
    let key = names.item("count", "g", "n");
    let increment: Vec<UpdateOp> =
        serde_json::from_str(r#"[{"type":"increment","path":"v","by":1}]"#).unwrap();
    let run = |store: Arc<RedisStore>| {
        let (key, ops) = (key.clone(), increment.clone());
        (0..8)
            .map(move |_| {
                let (store, key, ops) = (store.clone(), key.clone(), ops.clone());
                tokio::spawn(async move {
                    for _ in 0..25 {
                        store.update(&key, &ops).await.unwrap();
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let tasks: Vec<_> = run(Arc::new(a))
        .into_iter()
        .chain(run(Arc::new(b)))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let (store, _) = open(SHARED).await;
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().get(),
        r#"{"v":400}"#
    );
}

#[tokio::test]
async fn a_killed_pubsub_connection_loses_no_frame() {
    let redis = PrivateRedis::start();
    let (a, _) = open(&redis.url()).await;
    let (b, b_rec) = open(&redis.url()).await;
    let group = GroupKey::new("s", "g");
    let (_, from) = join(&b, &group).await;
    let key = ItemKey::new(group.clone(), "x");
    for i in 0..300 {
        a.set(&key, text(&i.to_string())).await.unwrap();
        if i % 100 == 50 {
            redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        }
    }
    b_rec
        .wait_published(&group, 300, Duration::from_secs(10))
        .await;
    consecutive(&b_rec.seqs(&group), from);
    assert!(
        b_rec.resyncs.lock().is_empty(),
        "the history covered the gaps"
    );
    assert!(b.health().is_ok());
}

#[tokio::test]
async fn a_restarted_redis_resyncs_watchers_and_recovers_health() {
    let mut redis = PrivateRedis::start();
    let (store, rec) = open(&redis.url()).await;
    let group = GroupKey::new("s", "g");
    store
        .set(&ItemKey::new(group.clone(), "x"), text("1"))
        .await
        .unwrap();
    let (epoch, _) = join(&store, &group).await;
    redis.stop();
    let deadline = Instant::now() + Duration::from_secs(3);
    while store.health().is_ok() {
        assert!(Instant::now() < deadline, "health must report the outage");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = store
        .set(&ItemKey::new(group.clone(), "y"), text("2"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("redis is unreachable"),
        "{error}"
    );
    redis.spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.health().is_err() || rec.resyncs.lock().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no recovery: {:?}",
            store.health()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The restarted Redis kept nothing: the watchers get a fresh, empty sync in a new epoch.
    let (resynced, snapshot) = rec.resyncs.lock()[0].clone();
    assert_eq!(resynced, group);
    assert_ne!(snapshot.stamp.epoch, epoch);
    assert!(matches!(snapshot.data, SnapshotData::Group(ref items) if items.is_empty()));
    // Writes work again without a restart, and keep flowing to the watcher.
    store
        .set(&ItemKey::new(group.clone(), "z"), text("3"))
        .await
        .unwrap();
    rec.wait_published(&group, 1, Duration::from_secs(5)).await;
    let last = rec.published.lock().last().unwrap().clone();
    assert_eq!((last.seq(), &last.stamp.epoch), (1, &snapshot.stamp.epoch));
}
