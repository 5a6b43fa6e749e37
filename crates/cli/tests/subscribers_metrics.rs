//! Health and metrics on the stream port (improvements.md l, e): `GET /healthz`, every metric
//! name of improvements.md l in `GET /metrics` once its families have been used, label values of
//! the subscriber-side families, and one serialisation per event however many subscriptions
//! receive it.

use iii_stream_client::{Answer, Handshake, Invocation, WAIT, Worker, http_get, start_server};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Every metric of improvements.md l (counters with the `_total` of their samples).
const METRICS: [&str; 16] = [
    "iii_stream_subscriber_connections",
    "iii_stream_subscriptions",
    "iii_stream_worker_connections",
    "iii_stream_function_calls_total",
    "iii_stream_events_total",
    "iii_stream_frames_sent_total",
    "iii_stream_event_serializations_total",
    "iii_stream_slow_consumer_disconnects_total",
    "iii_stream_handshakes_total",
    "iii_stream_joins_total",
    "iii_stream_resumes_total",
    "iii_stream_server_calls_total",
    "iii_stream_store_commit_seconds",
    "iii_stream_store_fsyncs_total",
    "iii_stream_history_bytes",
    "iii_stream_redis_reconnects_total",
];

/// The metric a sample belongs to: `name{labels}` → `name`, histogram parts → the histogram.
fn metric_of(series: &str) -> &str {
    let name = series.split('{').next().unwrap_or(series);
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|base| METRICS.contains(base))
        .unwrap_or(name)
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = start_server!();
    let (status, body) = http_get(server.stream_port, "/healthz").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "ok"})
    );
    let (status, _) = http_get(server.stream_port, "/healthz?probe=1").unwrap();
    assert_eq!(status, 200, "query strings are allowed on every route");
}

#[tokio::test]
async fn metrics_name_every_required_metric_with_their_labels() {
    let server =
        start_server!("      auth_function: m::auth\n      limits: { max_connections: 3 }");
    // Rejects handshakes with `?mode=reject` and joins of group `secret`.
    let decide = |call: &Invocation| {
        let reject =
            call.data["query_params"]["mode"][0] == "reject" || call.data["group_id"] == "secret";
        if reject {
            Answer::Value(json!({"unauthorized": true}))
        } else {
            Answer::Nothing
        }
    };
    let triggers = [("j", "stream:join", "m::join", Value::Null)];
    let worker = Worker::start(
        &server.engine_url(),
        decide,
        &["m::auth", "m::join"],
        &triggers,
    )
    .await
    .unwrap();

    // Handshakes: upgraded, unauthorized, bad_request, over_limit.
    let port = server.stream_port;
    let mut sub = server.subscriber().await;
    assert_eq!(
        Handshake::new("/?mode=reject")
            .send(port)
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        Handshake::new("/nope").send(port).await.unwrap().status,
        404
    );
    let _second = server.subscriber().await;
    let _third = server.subscriber().await;
    assert_eq!(Handshake::new("/").send(port).await.unwrap().status, 503);

    // Joins admitted and rejected, frames of every kind, events of every type, a resume.
    sub.join("g", "m", "room", None);
    let sync = sub.frame(WAIT).await;
    sub.join("no", "m", "secret", None);
    assert_eq!(sub.frame(WAIT).await["reason"], "rejected");
    worker.set("m", "room", "a", json!(1)).await.unwrap();
    worker.set("m", "room", "a", json!(2)).await.unwrap();
    worker.delete("m", "room", "a").await.unwrap();
    worker
        .send_event("m", "room", None, "t", json!(null))
        .await
        .unwrap();
    let bad = worker
        .call("stream::set", json!({"stream_name": "m"}))
        .await;
    assert!(bad.is_err());
    sub.frames(4, WAIT).await;
    for (id, since) in [
        ("resumed", &sync["epoch"]),
        ("resynced", &json!("other-epoch")),
    ] {
        sub.send_raw(
            json!({"type": "join", "data": {"subscriptionId": id, "streamName": "m", "groupId": "room",
                "since": {"epoch": since, "seq": sync["seq"]}}})
            .to_string(),
        );
    }
    let replayed = sub.frames(5, WAIT).await;
    assert!(
        replayed[..4]
            .iter()
            .all(|f| f["subscriptionId"] == "resumed")
    );
    assert_eq!(replayed[4]["event"]["type"], "sync");

    let metrics = server.metrics();
    let present: Vec<&str> = metrics.keys().map(|s| metric_of(s)).collect();
    let missing: Vec<&&str> = METRICS.iter().filter(|m| !present.contains(m)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in {metrics:#?}");

    let sample = |series: &str| metrics.get(series).copied().unwrap_or(0.0);
    let expected: BTreeMap<&str, f64> = [
        ("iii_stream_subscriber_connections", 3.0),
        ("iii_stream_subscriptions", 3.0),
        ("iii_stream_worker_connections", 1.0),
        (r#"iii_stream_handshakes_total{outcome="upgraded"}"#, 3.0),
        (
            r#"iii_stream_handshakes_total{outcome="unauthorized"}"#,
            1.0,
        ),
        (r#"iii_stream_handshakes_total{outcome="bad_request"}"#, 1.0),
        (r#"iii_stream_handshakes_total{outcome="over_limit"}"#, 1.0),
        (r#"iii_stream_joins_total{outcome="admitted"}"#, 3.0),
        (r#"iii_stream_joins_total{outcome="rejected"}"#, 1.0),
        (r#"iii_stream_resumes_total{outcome="replayed"}"#, 1.0),
        (r#"iii_stream_resumes_total{outcome="resynced"}"#, 1.0),
        (r#"iii_stream_events_total{type="create"}"#, 1.0),
        (r#"iii_stream_events_total{type="update"}"#, 1.0),
        (r#"iii_stream_events_total{type="delete"}"#, 1.0),
        (r#"iii_stream_events_total{type="event"}"#, 1.0),
        (r#"iii_stream_frames_sent_total{kind="sync"}"#, 2.0),
        (r#"iii_stream_frames_sent_total{kind="event"}"#, 4.0),
        (r#"iii_stream_frames_sent_total{kind="replay"}"#, 4.0),
        (r#"iii_stream_frames_sent_total{kind="unauthorized"}"#, 1.0),
        (
            r#"iii_stream_function_calls_total{function="stream::set",outcome="ok"}"#,
            2.0,
        ),
        (
            r#"iii_stream_function_calls_total{function="stream::set",outcome="error"}"#,
            1.0,
        ),
        (
            r#"iii_stream_server_calls_total{kind="auth",outcome="ok"}"#,
            4.0,
        ),
        (
            r#"iii_stream_server_calls_total{kind="join",outcome="ok"}"#,
            4.0,
        ),
        ("iii_stream_event_serializations_total", 4.0),
        ("iii_stream_slow_consumer_disconnects_total", 0.0),
    ]
    .into_iter()
    .collect();
    let actual: BTreeMap<&str, f64> = expected.keys().map(|s| (*s, sample(s))).collect();
    assert_eq!(actual, expected);
    let labels_leak = metrics
        .keys()
        .find(|s| s.contains("\"room\"") || s.contains("\"m\""));
    assert_eq!(
        labels_leak, None,
        "labels never carry stream or group names"
    );
}

#[tokio::test]
async fn each_event_is_serialised_once_for_a_thousand_subscriptions() {
    const CONNECTIONS: usize = 50;
    const PER_CONNECTION: usize = 20;
    const WRITES: usize = 100;
    let server = start_server!();
    let worker = server.engine().await;
    let mut subscribers = Vec::new();
    for c in 0..CONNECTIONS {
        let mut sub = server.subscriber().await;
        for s in 0..PER_CONNECTION {
            sub.join(&format!("s{c}-{s}"), "fan", "room", None);
        }
        sub.frames(PER_CONNECTION, WAIT).await;
        subscribers.push(sub);
    }
    assert_eq!(server.metric("iii_stream_subscriptions"), 1000.0);
    let serializations = "iii_stream_event_serializations_total";
    let events_sent = r#"iii_stream_frames_sent_total{kind="event"}"#;
    let before = (server.metric(serializations), server.metric(events_sent));
    for n in 0..WRITES {
        worker
            .set("fan", "room", &format!("i{}", n % 10), json!({"n": n}))
            .await
            .unwrap();
    }
    let after = (server.metric(serializations), server.metric(events_sent));
    assert_eq!(
        after.0 - before.0,
        WRITES as f64,
        "one serialisation per event"
    );
    assert_eq!(
        after.1 - before.1,
        (WRITES * 1000) as f64,
        "one copy per subscription"
    );
    for sub in &mut subscribers {
        let frames = sub.frames(WRITES * PER_CONNECTION, WAIT).await;
        let last = frames.last().unwrap();
        assert_eq!(last["event"]["data"], json!({"n": WRITES - 1}));
    }
}
