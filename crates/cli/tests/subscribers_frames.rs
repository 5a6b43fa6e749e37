//! Exact subscriber frames on the stream port (stream.md §2, §8.4, §8.7; improvements.md b, f, n):
//! item and group syncs, live `create` / `update` / `delete` / `event` frames and their keys,
//! custom events with and without an item id, isolation between groups and streams (`a:b` vs
//! `a`), and one copy per matching subscription on one socket.
//!
//! Negative checks ("this frame never arrives") use a marker write that must arrive next: frames
//! of writes that completed one after the other are queued on a connection in that order.

use iii_stream_client::{WAIT, keys, start_server, without};
use serde_json::{Value, json};

/// Keys of a sync or event frame delivered for a subscription, sorted.
const FRAME_KEYS: [&str; 9] = [
    "epoch",
    "event",
    "groupId",
    "id",
    "seq",
    "streamName",
    "subscriptionId",
    "timestamp",
    "type",
];

/// Checks the envelope of a frame delivered for `subscription` and returns its `event`.
fn envelope<'a>(
    frame: &'a Value,
    stream: &str,
    group: &str,
    id: Option<&str>,
    subscription: &str,
) -> &'a Value {
    assert_eq!(keys(frame), FRAME_KEYS, "{frame}");
    assert_eq!(frame["type"], "stream", "{frame}");
    assert!(frame["timestamp"].is_u64(), "{frame}");
    assert_eq!(frame["streamName"], stream, "{frame}");
    assert_eq!(frame["groupId"], group, "{frame}");
    assert_eq!(frame["id"], json!(id), "{frame}");
    assert!(frame["seq"].is_u64(), "{frame}");
    let epoch = frame["epoch"].as_str().unwrap_or_default();
    assert!(epoch.len() >= 16, "epoch of at least 64 bits: {frame}");
    assert_eq!(frame["subscriptionId"], subscription, "{frame}");
    &frame["event"]
}

#[tokio::test]
async fn syncs_carry_the_snapshot_with_exact_shapes() {
    let server = start_server!();
    let worker = server.engine().await;
    let (stream, group) = ("fr-sync", "room");
    worker
        .set(stream, group, "a", json!({"id": "a", "n": 1}))
        .await
        .unwrap();
    worker.set(stream, group, "b", json!(null)).await.unwrap();
    let mut sub = server.subscriber().await;

    sub.join("item", stream, group, Some("a"));
    let sync = sub.frame(WAIT).await;
    let event = envelope(&sync, stream, group, Some("a"), "item");
    assert_eq!(event, &json!({"type": "sync", "data": {"id": "a", "n": 1}}));
    assert_eq!(sync["seq"], 2, "an item sync carries the group's seq");
    let epoch = sync["epoch"].clone();

    sub.join("stored-null", stream, group, Some("b"));
    let sync = sub.frame(WAIT).await;
    let event = envelope(&sync, stream, group, Some("b"), "stored-null");
    assert_eq!(event, &json!({"type": "sync", "data": null}));

    sub.join("missing", stream, group, Some("nope"));
    let sync = sub.frame(WAIT).await;
    let event = envelope(&sync, stream, group, Some("nope"), "missing");
    assert_eq!(event, &json!({"type": "sync", "data": null}));
    assert_eq!(sync["seq"], 2);

    sub.join("group", stream, group, None);
    let sync = sub.frame(WAIT).await;
    let event = envelope(&sync, stream, group, None, "group");
    assert_eq!(
        event,
        &json!({"type": "sync", "data": [{"id": "a", "n": 1}, null]})
    );
    assert_eq!((&sync["seq"], &sync["epoch"]), (&json!(2), &epoch));

    sub.join("unknown", stream, "no-such-group", None);
    let sync = sub.frame(WAIT).await;
    let event = envelope(&sync, stream, "no-such-group", None, "unknown");
    assert_eq!(event, &json!({"type": "sync", "data": []}));
    assert_eq!(sync["seq"], 0, "a group without events is at seq 0");
}

#[tokio::test]
async fn live_frames_have_exact_shapes_and_increasing_seq_and_timestamps() {
    let server = start_server!();
    let worker = server.engine().await;
    let (stream, group) = ("fr-live", "room");
    let mut sub = server.subscriber().await;
    sub.join("g", stream, group, None);
    let sync = sub.frame(WAIT).await;
    assert_eq!(sync["seq"], 0);

    let set = worker
        .set(stream, group, "a", json!({"id": "a", "n": 1}))
        .await
        .unwrap();
    assert_eq!(
        set,
        json!({"old_value": null, "new_value": {"id": "a", "n": 1}})
    );
    worker
        .set(stream, group, "a", json!({"id": "a", "n": 2}))
        .await
        .unwrap();
    worker
        .update(
            stream,
            group,
            "a",
            json!([{"type": "increment", "path": "n", "by": 5}]),
        )
        .await
        .unwrap();
    worker.delete(stream, group, "a").await.unwrap();
    // Deleting a missing item emits nothing and consumes no seq.
    worker.delete(stream, group, "a").await.unwrap();
    worker
        .send_event(stream, group, Some("a"), "typing", json!({"x": 1}))
        .await
        .unwrap();
    worker
        .send_event(stream, group, None, "", json!(null))
        .await
        .unwrap();

    let expected = [
        (
            Some("a"),
            json!({"type": "create", "data": {"id": "a", "n": 1}}),
        ),
        (
            Some("a"),
            json!({"type": "update", "data": {"id": "a", "n": 2}}),
        ),
        (
            Some("a"),
            json!({"type": "update", "data": {"id": "a", "n": 7}}),
        ),
        (
            Some("a"),
            json!({"type": "delete", "data": {"id": "a", "n": 7}}),
        ),
        (
            Some("a"),
            json!({"type": "event", "event": {"type": "typing", "data": {"x": 1}}}),
        ),
        (
            None,
            json!({"type": "event", "event": {"type": "", "data": null}}),
        ),
    ];
    let frames = sub.frames(expected.len(), WAIT).await;
    // A sync is stamped max(now, last event); events max(now, previous event + 1): the first
    // event may share the sync's millisecond, later ones strictly increase (improvements.md n).
    let mut timestamp = sync["timestamp"].as_u64().unwrap();
    for (n, (frame, (id, event))) in frames.iter().zip(&expected).enumerate() {
        assert_eq!(envelope(frame, stream, group, *id, "g"), event);
        assert_eq!(frame["seq"], n + 1, "{frame}");
        assert_eq!(frame["epoch"], sync["epoch"], "{frame}");
        let t = frame["timestamp"].as_u64().unwrap();
        assert!(t > timestamp || (n == 0 && t == timestamp), "{frame}");
        timestamp = t;
    }
}

#[tokio::test]
async fn custom_events_without_id_reach_only_group_subscriptions() {
    let server = start_server!();
    let worker = server.engine().await;
    let (stream, group) = ("fr-send", "room");
    let mut both = server.subscriber().await;
    both.join("g", stream, group, None);
    both.frame(WAIT).await;
    both.join("i", stream, group, Some("a"));
    both.frame(WAIT).await;
    let mut item_only = server.subscriber().await;
    item_only.join("i", stream, group, Some("a"));
    item_only.frame(WAIT).await;

    worker
        .send_event(stream, group, None, "everyone", json!(1))
        .await
        .unwrap();
    worker
        .send_event(stream, group, Some("b"), "other-item", json!(2))
        .await
        .unwrap();
    worker
        .send_event(stream, group, Some("a"), "item-a", json!(3))
        .await
        .unwrap();

    let inner = |frame: &Value| {
        (
            frame["subscriptionId"].clone(),
            frame["event"]["event"]["type"].clone(),
        )
    };
    let frames: Vec<_> = both.frames(4, WAIT).await.iter().map(inner).collect();
    assert_eq!(frames[0], (json!("g"), json!("everyone")));
    assert_eq!(frames[1], (json!("g"), json!("other-item")));
    let mut last_two = frames[2..].to_vec();
    last_two.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(
        last_two,
        [(json!("g"), json!("item-a")), (json!("i"), json!("item-a"))]
    );
    let frame = item_only.frame(WAIT).await;
    assert_eq!(
        inner(&frame),
        (json!("i"), json!("item-a")),
        "an item subscription gets neither id-less sends nor other items' sends"
    );
    assert_eq!(frame["id"], "a");
    assert_eq!(frame["seq"], 3);
}

#[tokio::test]
async fn groups_and_streams_are_isolated() {
    let server = start_server!();
    let worker = server.engine().await;
    // ("a", "b:c") and ("a:b", "c") are different groups, and so are ("a", "c") and ("a:b", "c").
    let mut sub = server.subscriber().await;
    for (id, stream, group) in [("s1", "a", "b:c"), ("s2", "a:b", "c")] {
        sub.join(id, stream, group, None);
        let sync = sub.frame(WAIT).await;
        assert_eq!(
            (&sync["streamName"], &sync["groupId"]),
            (&json!(stream), &json!(group))
        );
    }
    let writes = [
        ("a", "c", "x"),
        ("a:b", "c", "x"),
        ("a", "b", "c:x"),
        ("a", "b:c", "x"),
        ("a:b:c", "x", "x"),
        ("b", "c", "x"),
        ("a", "b:c:x", "x"),
        ("a:b", "c", "marker"),
    ];
    for (stream, group, item) in writes {
        worker
            .set(stream, group, item, json!({"at": [stream, group, item]}))
            .await
            .unwrap();
    }
    let got: Vec<_> = sub
        .frames(3, WAIT)
        .await
        .iter()
        .map(|f| {
            (
                f["subscriptionId"].clone(),
                f["event"]["data"]["at"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (json!("s2"), json!(["a:b", "c", "x"])),
            (json!("s1"), json!(["a", "b:c", "x"])),
            (json!("s2"), json!(["a:b", "c", "marker"])),
        ]
    );
}

#[tokio::test]
async fn one_copy_per_matching_subscription_differing_only_in_subscription_id() {
    let server = start_server!();
    let worker = server.engine().await;
    let (stream, group) = ("fr-dup", "room");
    let mut sub = server.subscriber().await;
    sub.join("g1", stream, group, None);
    sub.frame(WAIT).await;
    sub.join("i1", stream, group, Some("a"));
    sub.frame(WAIT).await;

    worker
        .set(stream, group, "a", json!({"v": 1}))
        .await
        .unwrap();
    worker
        .set(stream, group, "b", json!({"v": 2}))
        .await
        .unwrap();
    worker
        .set(stream, group, "a", json!({"v": 3}))
        .await
        .unwrap();
    let frames = sub.frames(5, WAIT).await;

    let pair = |a: &Value, b: &Value| {
        assert_eq!(without(a, "subscriptionId"), without(b, "subscriptionId"));
        let mut ids = [a["subscriptionId"].clone(), b["subscriptionId"].clone()];
        ids.sort_by_key(Value::to_string);
        assert_eq!(ids, [json!("g1"), json!("i1")]);
    };
    pair(&frames[0], &frames[1]);
    assert_eq!(frames[0]["event"]["data"], json!({"v": 1}));
    assert_eq!(frames[2]["subscriptionId"], "g1");
    assert_eq!(frames[2]["id"], "b");
    pair(&frames[3], &frames[4]);
    assert_eq!(frames[3]["event"]["data"], json!({"v": 3}));
    let seqs: Vec<_> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 1, 2, 3, 3]);
}
