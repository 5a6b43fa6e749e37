//! Two server processes on one Redis (improvements.md k, b, c): every write reaches subscribers
//! on both, in `seq` order; listings agree; resume works across instances; `stream` triggers
//! fire on the writing instance; concurrent updates on both instances lose nothing.
//! Shared Redis, database 11.

mod redis_support;

use iii_stream_client::{Answer, Worker};
use redis_support::*;
use serde_json::{Value, json};
use std::sync::Arc;

const DB: u32 = 11;

#[tokio::test]
async fn writes_on_one_instance_reach_subscribers_on_both_in_order() {
    let names = Names::new(DB);
    let (a, b) = (start(&names.url(), ""), start(&names.url(), ""));
    let stream = names.stream("fan");
    let worker = Arc::new(engine(&a).await);
    set(&worker, &stream, "g", "before", json!(0)).await;
    let mut on_b = subscriber(&b).await;
    on_b.join("sb", &stream, "g", None);
    let mut on_a = subscriber(&a).await;
    on_a.join("sa", &stream, "g", None);
    let (sync_b, sync_a) = (frames(&mut on_b, 1).await, frames(&mut on_a, 1).await);
    // 4 concurrent writers, 40 writes each: sets, updates, deletes and sends.
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let (worker, stream) = (worker.clone(), stream.clone());
            tokio::spawn(async move {
                for i in 0..10 {
                    let item = format!("w{w}-{}", i % 3);
                    set(&worker, &stream, "g", &item, json!(i)).await;
                    let ops = json!([{"type": "increment", "path": "v", "by": 1}]);
                    worker
                        .call("stream::update", json!({"stream_name": stream, "group_id": "g", "item_id": item, "ops": ops}))
                        .await
                        .unwrap();
                    worker
                        .call("stream::send", json!({"stream_name": stream, "group_id": "g", "type": "ping", "data": i}))
                        .await
                        .unwrap();
                    worker
                        .call("stream::delete", json!({"stream_name": stream, "group_id": "g", "item_id": item}))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let events_b = frames(&mut on_b, 160).await;
    let events_a = frames(&mut on_a, 160).await;
    let state_b = apply(&sync_b[0], &events_b);
    let state_a = apply(&sync_a[0], &events_a);
    assert_eq!(sync_a[0]["epoch"], sync_b[0]["epoch"]);
    let without_ids = |frames: &[Value]| {
        frames
            .iter()
            .map(|f| iii_stream_client::without(f, "subscriptionId"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        without_ids(&events_a),
        without_ids(&events_b),
        "same frames, byte for byte"
    );
    // Listings agree on both instances, and with what the subscribers built.
    let reader = engine(&b).await;
    let list = json!({"stream_name": stream, "group_id": "g"});
    let listed_a = worker
        .call("stream::list", list.clone())
        .await
        .unwrap()
        .unwrap();
    let listed_b = reader.call("stream::list", list).await.unwrap().unwrap();
    assert_eq!(listed_a, listed_b);
    assert_eq!(Value::from(state_b.clone()), listed_b);
    assert_eq!(state_a, state_b);
    let groups = json!({"stream_name": stream});
    assert_eq!(
        worker
            .call("stream::list_groups", groups.clone())
            .await
            .unwrap(),
        reader.call("stream::list_groups", groups).await.unwrap()
    );
}

#[tokio::test]
async fn resume_works_across_instances() {
    let names = Names::new(DB);
    let (a, b) = (start(&names.url(), ""), start(&names.url(), ""));
    let stream = names.stream("resume");
    let worker = engine(&b).await;
    set(&worker, &stream, "g", "x", json!(0)).await;
    let mut first = subscriber(&a).await;
    first.join("s1", &stream, "g", None);
    let sync = frames(&mut first, 1).await.remove(0);
    first.close();
    for i in 1..=5 {
        set(&worker, &stream, "g", "x", json!(i)).await;
    }
    worker
        .call(
            "stream::send",
            json!({"stream_name": stream, "group_id": "g", "type": "t", "data": null}),
        )
        .await
        .unwrap();
    let mut again = subscriber(&b).await;
    let since = json!({"epoch": sync["epoch"], "seq": sync["seq"]});
    again.send_raw(
        json!({"type": "join", "data": {"subscriptionId": "s2", "streamName": stream, "groupId": "g", "since": since}})
            .to_string(),
    );
    let replayed = frames(&mut again, 6).await;
    let seqs: Vec<u64> = replayed
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    let first_seq = sync["seq"].as_u64().unwrap() + 1;
    assert_eq!(seqs, (first_seq..first_seq + 6).collect::<Vec<_>>());
    assert!(replayed.iter().all(|f| f["event"]["type"] != "sync"));
    assert_eq!(replayed[5]["event"]["type"], "event");
    assert_eq!(
        b.metric(r#"iii_stream_resumes_total{outcome="replayed"}"#),
        1.0
    );
    // Live frames follow the replay.
    set(&worker, &stream, "g", "x", json!(6)).await;
    let live = frames(&mut again, 1).await.remove(0);
    assert_eq!(live["seq"].as_u64(), Some(first_seq + 6));
    // A wrong epoch gets a full sync.
    let mut other = subscriber(&a).await;
    other.send_raw(
        json!({"type": "join", "data": {"subscriptionId": "s3", "streamName": stream, "groupId": "g", "since": {"epoch": "nope", "seq": 1}}})
            .to_string(),
    );
    assert_eq!(frames(&mut other, 1).await[0]["event"]["type"], "sync");
}

#[tokio::test]
async fn stream_triggers_fire_on_the_writing_instance_only() {
    let names = Names::new(DB);
    let (a, b) = (start(&names.url(), ""), start(&names.url(), ""));
    let stream = names.stream("trig");
    let config = json!({"stream_name": stream});
    let on_a = Worker::connect(&a.engine_url(), |_| Answer::Value(Value::Null))
        .await
        .unwrap();
    let on_b = Worker::connect(&b.engine_url(), |_| Answer::Value(Value::Null))
        .await
        .unwrap();
    on_a.serve(&["h"], &[("t", "stream", "h", config.clone())])
        .await
        .unwrap();
    on_b.serve(&["h"], &[("t", "stream", "h", config)])
        .await
        .unwrap();
    // A subscriber on B makes B relay the group's frames; triggers must still not fire there.
    let mut sub = subscriber(&b).await;
    sub.join("s", &stream, "g", None);
    frames(&mut sub, 1).await;
    for i in 0..5 {
        set(&on_a, &stream, "g", "x", json!(i)).await;
    }
    frames(&mut sub, 5).await;
    let calls = on_a.wait_calls("h", 5, WAIT).await;
    let seqs: Vec<u64> = calls
        .iter()
        .map(|c| c.data["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(calls.iter().all(|c| c.data.get("subscriptionId").is_none()));
    assert!(on_b.calls("h").is_empty());
    set(&on_b, &stream, "g", "x", json!(9)).await;
    assert_eq!(on_b.wait_calls("h", 1, WAIT).await[0].data["seq"], 6);
    assert_eq!(on_a.calls("h").len(), 5);
}

#[tokio::test]
async fn concurrent_increments_on_two_instances_add_up() {
    let names = Names::new(DB);
    let (a, b) = (start(&names.url(), ""), start(&names.url(), ""));
    let stream = names.stream("count");
    let (on_a, on_b) = (Arc::new(engine(&a).await), Arc::new(engine(&b).await));
    let input = json!({"stream_name": stream, "group_id": "g", "item_id": "n",
        "ops": [{"type": "increment", "path": "", "by": 1}]});
    let tasks: Vec<_> = [on_a.clone(), on_b.clone()]
        .into_iter()
        .flat_map(|client| {
            let input = input.clone();
            (0..10).map(move |_| {
                let (client, input) = (client.clone(), input.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        client.call("stream::update", input.clone()).await.unwrap();
                    }
                })
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let get = json!({"stream_name": stream, "group_id": "g", "item_id": "n"});
    assert_eq!(
        on_b.call("stream::get", get).await.unwrap(),
        Some(json!(400))
    );
}
