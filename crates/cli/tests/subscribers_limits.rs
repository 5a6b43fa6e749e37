//! Subscriber limits and keepalive (stream.md §8.2, §8.4 step 3, §8.8, §9.3; improvements.md h,
//! p): `limits.max_message_bytes` (close 1009), `limits.max_subscriptions_per_connection`
//! (`unauthorized` with reason `subscription_limit`, no handler called), `limits.max_connections`
//! (HTTP 503), and `keepalive` (a silent peer is closed and its leave fires; a client that answers
//! Pings stays connected).

use iii_stream_client::{
    Ending, Handshake, RawFrame, Received, SubscriberClient, WAIT, Worker, parse_frames,
    poll_until, start_server,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_message_over_max_message_bytes_closes_with_1009() {
    let server = start_server!();
    let mut sub = server.subscriber().await;
    // Just under the 1 MiB default: ignored (not JSON), the connection stays open.
    sub.send_raw("x".repeat(1024 * 1024 - 16));
    sub.join("still-open", "lim", "g", None);
    assert_eq!(sub.frame(WAIT).await["subscriptionId"], "still-open");

    sub.send_raw(format!("\"{}\"", "x".repeat(2 * 1024 * 1024)));
    assert_eq!(sub.close_code(WAIT).await, Some(1009));
}

#[tokio::test]
async fn joins_beyond_max_subscriptions_per_connection_are_refused_without_calling_handlers() {
    let server = start_server!("      limits: { max_subscriptions_per_connection: 3 }");
    let worker = Worker::recorder(
        &server.engine_url(),
        &[("stream:join", "lim::join", Value::Null)],
    )
    .await
    .unwrap();
    let mut sub = server.subscriber().await;
    for id in ["s1", "s2", "s3"] {
        sub.join(id, "lim", id, None);
        assert_eq!(sub.frame(WAIT).await["event"]["type"], "sync");
    }
    sub.join("s4", "lim", "s4", Some("i"));
    let frame = sub.frame(WAIT).await;
    assert_eq!(frame["event"], json!({"type": "unauthorized"}));
    assert_eq!(
        (&frame["subscriptionId"], &frame["reason"], &frame["id"]),
        (&json!("s4"), &json!("subscription_limit"), &json!("i"))
    );
    assert_eq!(
        worker.calls("lim::join").len(),
        3,
        "no handler runs for a refused join"
    );

    // Replacing an existing id ends it first, so it fits; a leave makes room for another.
    sub.join("s3", "lim", "s3b", None);
    assert_eq!(sub.frame(WAIT).await["groupId"], "s3b");
    sub.leave("s1");
    sub.join("s5", "lim", "s5", None);
    assert_eq!(sub.frame(WAIT).await["event"]["type"], "sync");
    sub.join("s6", "lim", "s6", None);
    assert_eq!(sub.frame(WAIT).await["reason"], "subscription_limit");
    // The limit is per connection.
    let mut other = server.subscriber().await;
    other.join("s6", "lim", "s6", None);
    assert_eq!(other.frame(WAIT).await["event"]["type"], "sync");
}

#[tokio::test]
async fn handshakes_beyond_max_connections_get_503() {
    let server = start_server!("      limits: { max_connections: 2 }");
    let port = server.stream_port;
    let first = server.subscriber().await;
    let _second = server.subscriber().await;
    let third = Handshake::new("/stream/lim/g").send(port).await.unwrap();
    assert_eq!(third.status, 503);
    assert_eq!(Handshake::new("/").send(port).await.unwrap().status, 503);
    // Refusals hold no slot, and a closed connection frees its slot.
    first.close();
    let freed = poll_until(WAIT, || async {
        let upgraded = Handshake::new("/").send(port).await.ok()?;
        (upgraded.status == 101).then_some(upgraded)
    })
    .await;
    assert!(freed.is_some(), "a slot frees up once a connection closes");
}

#[tokio::test]
async fn keepalive_closes_silent_peers_and_keeps_responsive_ones() {
    const IDLE: Duration = Duration::from_millis(400);
    let server = start_server!("      keepalive: { ping_interval_ms: 100, idle_timeout_ms: 400 }");
    let worker = Worker::recorder(
        &server.engine_url(),
        &[("stream:leave", "ka::leave", Value::Null)],
    )
    .await
    .unwrap();
    let mut normal = SubscriberClient::connect(&server.stream_url_for("/stream/ka/normal"))
        .await
        .unwrap();
    normal.frame(WAIT).await;
    let normal_since = Instant::now();

    // A peer that completes the handshake, is auto-joined, and then never reads or answers.
    let silent = Handshake::new("/stream/ka/silent")
        .send(server.stream_port)
        .await
        .unwrap();
    assert_eq!(silent.status, 101);
    let silent_since = Instant::now();
    let leaves = worker.wait_calls("ka::leave", 1, WAIT).await;
    let closed_after = silent_since.elapsed();
    assert_eq!(leaves[0].data["group_id"], "silent");
    assert!(
        closed_after >= IDLE - Duration::from_millis(50) && closed_after < IDLE * 10,
        "closed {closed_after:?} after the handshake"
    );
    // What the silent peer finds in its socket: the sync, Pings, a Close with 1001, the end.
    let mut silent = silent;
    let (bytes, ending) = silent.read_to_end(WAIT).await;
    let (frames, partial) = parse_frames(&bytes);
    assert_eq!((ending, partial), (Ending::Eof, 0), "{frames:?}");
    assert_eq!(frames[0].json().unwrap()["event"]["type"], "sync");
    let pings = frames.iter().filter(|f| f.opcode == RawFrame::PING).count();
    assert!(pings >= 2, "pinged every 100 ms until closed: {frames:?}");
    let last = frames.last().unwrap();
    assert_eq!(last.close_code(), Some(1001), "{frames:?}");

    // The responsive client has now been idle (apart from Pongs) for well over the timeout.
    tokio::time::sleep_until((normal_since + IDLE * 3).into()).await;
    worker.set("ka", "normal", "i", json!(1)).await.unwrap();
    let mut pings = 0;
    let frame = loop {
        match normal.next(WAIT).await {
            Some(Received::Ping(_)) => pings += 1,
            Some(Received::Frame(frame)) => break frame,
            other => panic!("the responsive client was disconnected: {other:?}"),
        }
    };
    assert_eq!(frame["groupId"], "normal");
    assert!(pings >= 5, "{pings} Pings in {:?}", IDLE * 3);
    assert_eq!(worker.calls("ka::leave").len(), 1);
}
