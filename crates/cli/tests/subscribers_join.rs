//! The join gate and leave notifications (stream.md §7.2, §7.3, §8.4–§8.6, §8.9; improvements.md
//! g, h): rejections and their exact `unauthorized` frame, non-boolean `unauthorized`, failing
//! handlers with and without `fail_closed`, `stream_name` / `group_id` filters, exactly one leave
//! per admitted subscription (leave message, replacement, connection close, never for unknown
//! ids) built from the stored subscription, and Pongs while a join handler is pending.

use iii_stream_client::{
    Answer, Invocation, Received, ServerProcess, WAIT, Worker, keys, start_server,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const JOIN: &str = "gate::join";
const LEAVE: &str = "gate::leave";
const JOIN_MS: u64 = 300;

/// A join handler deciding by group: `secret` rejects, `odd` / `num` answer a non-boolean
/// `unauthorized`, `boom` throws, `hang` never answers, `slow` answers after 2 s.
fn gate(call: &Invocation) -> Answer {
    if call.function_id != JOIN {
        return Answer::Nothing;
    }
    match call.data["group_id"].as_str().unwrap_or_default() {
        "secret" => Answer::Value(json!({"unauthorized": true})),
        "odd" => Answer::Value(json!({"unauthorized": "true"})),
        "num" => Answer::Value(json!({"unauthorized": 1})),
        "open" => Answer::Value(json!({"unauthorized": false})),
        "boom" => Answer::error("invocation_failed", "join handler exploded"),
        "hang" => Answer::Never,
        "slow" => Answer::after(Duration::from_secs(2), Answer::Nothing),
        _ => Answer::Value(json!("anything but an object")),
    }
}

async fn gated(fail_closed: bool, join_ms: u64) -> (ServerProcess, Worker) {
    let server = start_server!(&format!(
        "      fail_closed: {fail_closed}\n      timeouts: {{ join_ms: {join_ms} }}"
    ));
    let triggers = [
        ("j", "stream:join", JOIN, Value::Null),
        ("l", "stream:leave", LEAVE, Value::Null),
    ];
    let worker = Worker::start(&server.engine_url(), gate, &[JOIN, LEAVE], &triggers)
        .await
        .unwrap();
    (server, worker)
}

/// Checks an `unauthorized` frame: exact keys, no `seq` / `epoch`.
fn assert_unauthorized(
    frame: &Value,
    stream: &str,
    group: &str,
    id: Option<&str>,
    sub: &str,
    reason: &str,
) {
    assert_eq!(
        keys(frame),
        [
            "event",
            "groupId",
            "id",
            "reason",
            "streamName",
            "subscriptionId",
            "timestamp",
            "type"
        ],
        "{frame}"
    );
    assert_eq!(frame["type"], "stream");
    assert!(frame["timestamp"].is_u64());
    assert_eq!(frame["event"], json!({"type": "unauthorized"}), "{frame}");
    assert_eq!(
        (&frame["streamName"], &frame["groupId"], &frame["id"]),
        (&json!(stream), &json!(group), &json!(id)),
    );
    assert_eq!(frame["subscriptionId"], sub);
    assert_eq!(frame["reason"], reason);
}

#[tokio::test]
async fn a_rejecting_join_handler_gets_an_unauthorized_frame_and_nothing_later() {
    let (server, worker) = gated(false, JOIN_MS).await;
    let mut sub = server.subscriber().await;
    sub.join("item", "gj", "secret", Some("x"));
    assert_unauthorized(
        &sub.frame(WAIT).await,
        "gj",
        "secret",
        Some("x"),
        "item",
        "rejected",
    );
    sub.join("group", "gj", "secret", None);
    assert_unauthorized(
        &sub.frame(WAIT).await,
        "gj",
        "secret",
        None,
        "group",
        "rejected",
    );

    // Non-boolean `unauthorized`, `false` and non-object results admit.
    for (id, group) in [
        ("odd", "odd"),
        ("num", "num"),
        ("open", "open"),
        ("other", "other"),
    ] {
        sub.join(id, "gj", group, None);
        let sync = sub.frame(WAIT).await;
        assert_eq!(
            (&sync["subscriptionId"], &sync["event"]["type"]),
            (&json!(id), &json!("sync"))
        );
    }
    worker.set("gj", "secret", "x", json!(1)).await.unwrap();
    worker.set("gj", "other", "y", json!(2)).await.unwrap();
    let frame = sub.frame(WAIT).await;
    assert_eq!(
        frame["subscriptionId"], "other",
        "nothing for rejected joins: {frame}"
    );

    // A rejected join stored nothing: leaving it fires nothing; closing fires the 4 admitted.
    sub.leave("item");
    sub.close();
    let leaves = worker.wait_calls(LEAVE, 4, WAIT).await;
    let mut ids: Vec<_> = leaves
        .iter()
        .map(|c| c.data["subscription_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["num", "odd", "open", "other"]);
}

#[tokio::test]
async fn failing_join_handlers_admit_by_default() {
    let (server, _worker) = gated(false, JOIN_MS).await;
    let mut sub = server.subscriber().await;
    for group in ["boom", "hang"] {
        let started = Instant::now();
        sub.join(group, "gf", group, None);
        let sync = sub.frame(WAIT).await;
        assert_eq!(
            (&sync["subscriptionId"], &sync["event"]["type"]),
            (&json!(group), &json!("sync"))
        );
        if group == "hang" {
            assert!(started.elapsed() >= Duration::from_millis(JOIN_MS - 50));
        }
    }
}

#[tokio::test]
async fn failing_join_handlers_reject_with_join_failed_when_fail_closed() {
    let (server, worker) = gated(true, JOIN_MS).await;
    let mut sub = server.subscriber().await;
    for group in ["boom", "hang"] {
        sub.join(group, "gc", group, Some("i"));
        let frame = sub.frame(WAIT).await;
        assert_unauthorized(&frame, "gc", group, Some("i"), group, "join_failed");
    }
    sub.join("ok", "gc", "fine", None);
    assert_eq!(
        sub.frame(WAIT).await["subscriptionId"],
        "ok",
        "no sync came for the failed joins"
    );
    worker.set("gc", "boom", "i", json!(1)).await.unwrap();
    worker.set("gc", "fine", "i", json!(1)).await.unwrap();
    assert_eq!(sub.frame(WAIT).await["subscriptionId"], "ok");
}

#[tokio::test]
async fn join_and_leave_triggers_honour_stream_and_group_filters() {
    let server = start_server!();
    let triggers = [
        ("stream:join", "f::jx", json!({"stream_name": "X"})),
        (
            "stream:join",
            "f::jg",
            json!({"group_id": "g1", "stream_name": ""}),
        ),
        ("stream:join", "f::jall", json!({"stream_name": null})),
        (
            "stream:leave",
            "f::lx",
            json!({"stream_name": "X", "group_id": "g1"}),
        ),
        ("stream:leave", "f::lall", json!({})),
    ];
    let worker = Worker::recorder(&server.engine_url(), &triggers)
        .await
        .unwrap();
    let mut sub = server.subscriber().await;
    for (id, stream, group) in [
        ("a", "X", "g1"),
        ("b", "Y", "g1"),
        ("c", "X", "g2"),
        ("d", "Y", "g2"),
    ] {
        sub.join(id, stream, group, None);
        sub.frame(WAIT).await; // the sync: every matching handler has answered
    }
    let subs = |function: &str| -> Vec<String> {
        worker
            .calls(function)
            .iter()
            .map(|c| c.data["subscription_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(subs("f::jx"), ["a", "c"]);
    assert_eq!(subs("f::jg"), ["a", "b"]);
    assert_eq!(subs("f::jall"), ["a", "b", "c", "d"]);

    for id in ["b", "c", "d", "a"] {
        sub.leave(id);
    }
    worker.wait_calls("f::lall", 4, WAIT).await;
    assert_eq!(subs("f::lx"), ["a"]);
}

#[tokio::test]
async fn leave_fires_exactly_once_per_admitted_subscription() {
    let server = start_server!();
    let worker = Worker::recorder(
        &server.engine_url(),
        &[("stream:leave", LEAVE, Value::Null)],
    )
    .await
    .unwrap();
    let mut sub = server.subscriber().await;
    for (id, group, item) in [("s1", "g", None), ("s2", "g", Some("x")), ("s3", "h", None)] {
        sub.join(id, "lv", group, item);
        sub.frame(WAIT).await;
    }
    let payload = |id: &str, group: &str, item: Option<&str>| json!({"subscription_id": id, "stream_name": "lv", "group_id": group, "id": item, "context": null});

    // The payload comes from the stored subscription, not from the leave message.
    sub.send_raw(
        json!({"type": "leave", "data": {"subscriptionId": "s1", "streamName": "spoofed", "groupId": "nope", "id": "zzz"}})
            .to_string(),
    );
    assert_eq!(
        worker.wait_calls(LEAVE, 1, WAIT).await[0].data,
        payload("s1", "g", None)
    );

    // Unknown ids fire nothing; the next leave is the replacement of s2 by a new join.
    sub.leave("unknown");
    sub.leave("s1");
    sub.join("s2", "lv", "k", None);
    assert_eq!(sub.frame(WAIT).await["groupId"], "k");
    let leaves = worker.wait_calls(LEAVE, 2, WAIT).await;
    assert_eq!(
        leaves[1].data,
        payload("s2", "g", Some("x")),
        "replacement ends the old s2"
    );

    // The replaced subscription is gone: a write to item x reaches nobody, one to k reaches s2.
    worker.set("lv", "g", "x", json!(1)).await.unwrap();
    worker.set("lv", "k", "y", json!(2)).await.unwrap();
    let frame = sub.frame(WAIT).await;
    assert_eq!(
        (&frame["subscriptionId"], &frame["id"]),
        (&json!("s2"), &json!("y"))
    );

    sub.close();
    let mut leaves: Vec<_> = worker
        .wait_calls(LEAVE, 4, WAIT)
        .await
        .into_iter()
        .map(|c| c.data)
        .collect();
    let mut at_close = leaves.split_off(2);
    at_close.sort_by_key(|p| p["subscription_id"].to_string());
    assert_eq!(
        at_close,
        [payload("s2", "k", None), payload("s3", "h", None)]
    );

    // A witness: once its leave arrived, no stray leave for the subscriptions above came first.
    let mut witness = server.subscriber().await;
    witness.join("w", "lv", "w", None);
    witness.frame(WAIT).await;
    witness.leave("w");
    let leaves = worker.wait_calls(LEAVE, 5, WAIT).await;
    assert_eq!(leaves.len(), 5);
    assert_eq!(leaves[4].data["subscription_id"], "w");
}

#[tokio::test]
async fn pings_are_answered_while_a_join_handler_is_pending() {
    let (server, worker) = gated(false, 10_000).await;
    let mut sub = server.subscriber().await;
    let started = Instant::now();
    sub.join("slow", "gp", "slow", None);
    worker.wait_calls(JOIN, 1, WAIT).await;
    // A backlog of messages queued behind the pending join must not hold the Pong back either.
    for i in 0..300 {
        sub.leave(&format!("unknown-{i}"));
    }
    sub.send_message(Message::Ping(b"still there?".to_vec().into()));
    let pong = sub.next(WAIT).await;
    let answered = started.elapsed();
    assert_eq!(pong, Some(Received::Pong(b"still there?".to_vec())));
    assert!(answered < Duration::from_secs(1), "Pong after {answered:?}");
    let sync = sub.frame(WAIT).await;
    assert_eq!(sync["subscriptionId"], "slow");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the sync waited for the handler"
    );
}
