//! Ordering under concurrency (improvements.md b, n; stream.md §8.4 step 5, §8.7): 8 worker
//! connections make 500 mixed writes each (increments, sets, deletes, sends) on 5 items of one
//! group while 50 subscribers watch it, some joined before the burst and the rest joining
//! throughout it, plus one item subscription. Every group subscriber gets consecutive `seq` values
//! right after its sync and replaying its frames onto its sync gives exactly `stream::list`; the
//! item subscriber's last value is `stream::get`; timestamps strictly increase.
//!
//! Group syncs carry values without ids, so every value embeds its own item id (`{"id": …}`).

use iii_stream_client::{EngineClient, SubscriberClient, WAIT, poll_until, start_server};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const STREAM: &str = "order";
const GROUP: &str = "room";
const WORKERS: usize = 8;
const WRITES: usize = 500;
const ITEMS: usize = 5;
const EARLY: usize = 10;
const SUBSCRIBERS: usize = 50;
/// The item of the item subscription, and the id of the final marker event.
const WATCHED: &str = "item-0";

/// A small deterministic generator (xorshift), one per worker.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % sides as u64) as usize
    }
}

/// One worker's share of the burst.
async fn write(worker: EngineClient, id: usize, done: Arc<AtomicUsize>) {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
    for n in 0..WRITES {
        let item = format!("item-{}", dice.roll(ITEMS));
        match dice.roll(20) {
            0..=11 => {
                let ops = json!([
                    {"type": "set", "path": "id", "value": item},
                    {"type": "increment", "path": "count", "by": 1},
                ]);
                worker.update(STREAM, GROUP, &item, ops).await.unwrap();
            }
            12..=16 => {
                let value = json!({"id": item, "count": 0, "by": id, "n": n});
                worker.set(STREAM, GROUP, &item, value).await.unwrap();
            }
            17..=18 => {
                worker.delete(STREAM, GROUP, &item).await.unwrap();
            }
            _ => {
                let data = json!({"by": id, "n": n});
                let target = (n % 2 == 0).then_some(item.as_str());
                worker
                    .send_event(STREAM, GROUP, target, "tick", data)
                    .await
                    .unwrap();
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Frames of a socket up to (and including) the `markers`-th copy of the final marker event.
async fn until_marker(sub: &mut SubscriberClient, markers: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut seen = 0;
    while seen < markers {
        let frame = sub.frame(WAIT).await;
        if frame["event"]["event"]["type"] == "end" {
            seen += 1;
        }
        frames.push(frame);
    }
    frames
}

/// Checks one group subscription's frames and returns the state they replay to, by item id.
fn replay(frames: &[Value]) -> BTreeMap<String, Value> {
    let sync = &frames[0];
    assert_eq!(sync["event"]["type"], "sync", "{sync}");
    let mut state: BTreeMap<String, Value> = sync["event"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
        .collect();
    let mut seq = sync["seq"].as_u64().unwrap();
    let mut timestamp = sync["timestamp"].as_u64().unwrap();
    for (n, frame) in frames[1..].iter().enumerate() {
        seq += 1;
        assert_eq!(frame["seq"], seq, "consecutive after the sync");
        assert_eq!(frame["epoch"], sync["epoch"]);
        let t = frame["timestamp"].as_u64().unwrap();
        assert!(
            t > timestamp || (n == 0 && t == timestamp),
            "timestamps increase"
        );
        timestamp = t;
        let event = &frame["event"];
        let id = frame["id"].as_str();
        match event["type"].as_str().unwrap() {
            "create" | "update" => {
                let id = id.unwrap();
                assert_eq!(event["data"]["id"], id, "{frame}");
                state.insert(id.to_owned(), event["data"].clone());
            }
            "delete" => {
                let removed = state.remove(id.unwrap());
                assert_eq!(
                    removed.as_ref(),
                    Some(&event["data"]),
                    "deleted what was there"
                );
            }
            "event" => {}
            other => panic!("unexpected {other} frame"),
        }
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_joiners_see_one_consistent_order() {
    let server = start_server!();
    let url = server.stream_url();
    let mut subscribers = Vec::new();
    for n in 0..EARLY {
        let sub = SubscriberClient::connect_dedicated(&url).await.unwrap();
        sub.join(&format!("early-{n}"), STREAM, GROUP, None);
        subscribers.push(sub);
    }
    subscribers[0].join("item", STREAM, GROUP, Some(WATCHED));

    let done = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for id in 0..WORKERS {
        let worker = server.engine().await;
        writers.push(tokio::spawn(write(worker, id, done.clone())));
    }
    // The rest join spread over the burst, each after another slice of it completed.
    let total = WORKERS * WRITES;
    let late = SUBSCRIBERS - EARLY;
    for n in 0..late {
        let due = total * n / late;
        poll_until(WAIT * 6, || async {
            (done.load(Ordering::Relaxed) >= due).then_some(())
        })
        .await
        .expect("the burst makes progress");
        let sub = SubscriberClient::connect_dedicated(&url).await.unwrap();
        sub.join(&format!("late-{n}"), STREAM, GROUP, None);
        subscribers.push(sub);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let marker = server.engine().await;
    marker
        .send_event(STREAM, GROUP, Some(WATCHED), "end", json!(null))
        .await
        .unwrap();

    let expected: BTreeMap<String, Value> = marker
        .list(STREAM, GROUP)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v))
        .collect();
    let watched = marker.get(STREAM, GROUP, WATCHED).await.unwrap();
    let mut midway = 0;
    for (n, sub) in subscribers.iter_mut().enumerate() {
        let with_item = n == 0;
        let mut frames = until_marker(sub, if with_item { 2 } else { 1 }).await;
        if with_item {
            // The item subscription's frames are interleaved with the group's on this socket.
            let (item, group): (Vec<Value>, Vec<Value>) = frames
                .drain(..)
                .partition(|f| f["subscriptionId"] == "item");
            frames = group;
            check_item(&item, &watched);
        }
        let state = replay(&frames);
        assert_eq!(state, expected, "subscriber {n} replays to stream::list");
        let sync_seq = frames[0]["seq"].as_u64().unwrap();
        if sync_seq > 0 && frames.len() > 2 {
            midway += 1;
        }
    }
    assert!(
        midway >= late / 2,
        "{midway} subscribers joined during the burst"
    );
}

/// The item subscription: only its item, `seq` increasing, last value = `stream::get`.
fn check_item(frames: &[Value], watched: &Option<Value>) {
    let sync = &frames[0];
    assert_eq!(sync["event"]["type"], "sync");
    let mut last = sync["event"]["data"].clone();
    let mut seq = sync["seq"].as_u64().unwrap();
    for frame in &frames[1..] {
        assert_eq!(frame["id"], WATCHED);
        let s = frame["seq"].as_u64().unwrap();
        assert!(s > seq, "item frames follow the group's seq order");
        seq = s;
        match frame["event"]["type"].as_str().unwrap() {
            "create" | "update" => last = frame["event"]["data"].clone(),
            "delete" => last = Value::Null,
            _ => {}
        }
    }
    assert_eq!(&last, watched.as_ref().unwrap_or(&Value::Null));
}
