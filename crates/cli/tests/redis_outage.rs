//! Redis hiccups (improvements.md k, l): pub/sub connections killed during a stream of writes,
//! and Redis stopped for 3 s then restarted empty. Subscribers stay connected and end with the
//! right state; `/healthz` follows Redis; no restart is needed. Each test runs its own
//! `redis-server`, so stopping it disturbs nobody else.

mod redis_support;

use iii_stream_client::{Received, SubscriberClient, http_get};
use redis_support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Waits until `/healthz` answers `status`; returns how long that took.
async fn healthz_becomes(server: &iii_stream_client::ServerProcess, status: u16) -> Duration {
    let started = Instant::now();
    while server.healthz() != Some(status) {
        assert!(
            started.elapsed() < WAIT,
            "healthz never became {status}:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Every frame received so far without waiting more than `quiet` for the next one.
async fn drain(sub: &mut SubscriberClient, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(received) = sub.next(quiet).await {
        match received {
            Received::Frame(frame) => out.push(frame),
            Received::Close(code) => panic!("the subscriber was disconnected ({code:?})"),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn killed_pubsub_connections_lose_no_frame() {
    let redis = private_redis();
    let (a, b) = (start(&redis.url(0), ""), start(&redis.url(0), ""));
    let worker = engine(&a).await;
    let mut on_b = subscriber(&b).await;
    on_b.join("sb", "chat", "room", None);
    let mut on_a = subscriber(&a).await;
    on_a.join("sa", "chat", "room", None);
    let sync_b = frames(&mut on_b, 1).await.remove(0);
    let sync_a = frames(&mut on_a, 1).await.remove(0);
    let mut kills = 0.0;
    for i in 0..300 {
        set(&worker, "chat", "room", &format!("m{}", i % 7), json!(i)).await;
        if i % 100 == 50 {
            redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap();
            kills += 1.0;
        }
        if i % 100 == 99 {
            // The next kill must hit live connections, not servers still reconnecting.
            for server in [&a, &b] {
                let deadline = Instant::now() + WAIT;
                while server.metric("iii_stream_redis_reconnects_total") < kills {
                    assert!(Instant::now() < deadline, "no reconnect after kill {kills}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    for (sub, sync) in [(&mut on_b, &sync_b), (&mut on_a, &sync_a)] {
        let events = frames(sub, 300).await;
        // Consecutive seq, no second sync: the gaps were filled from the Redis history.
        let state = apply(sync, &events);
        let listed = worker
            .call(
                "stream::list",
                json!({"stream_name": "chat", "group_id": "room"}),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Value::from(state), listed);
    }
    assert!(
        drain(&mut on_b, Duration::from_millis(200))
            .await
            .is_empty()
    );
    for server in [&a, &b] {
        assert!(server.metric("iii_stream_redis_reconnects_total") >= kills);
        assert_eq!(server.healthz(), Some(200));
    }
}

#[tokio::test]
async fn a_three_second_outage_fails_writes_then_recovers_without_restart() {
    let mut redis = private_redis();
    let server = start(&redis.url(0), "");
    let worker = engine(&server).await;
    set(&worker, "chat", "room", "a", json!(1)).await;
    let mut sub = subscriber(&server).await;
    sub.join("s", "chat", "room", None);
    let mut item = subscriber(&server).await;
    item.join("i", "chat", "room", Some("a"));
    let sync = frames(&mut sub, 1).await.remove(0);
    frames(&mut item, 1).await;

    redis.stop();
    let stopped = Instant::now();
    healthz_becomes(&server, 503).await;
    let (_, body) = http_get(server.stream_port, "/healthz").unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(body["reason"].as_str().unwrap().contains("redis"), "{body}");
    let failed = worker
        .call(
            "stream::set",
            json!({"stream_name": "chat", "group_id": "room", "item_id": "b", "data": {"id": "b"}}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failed.starts_with("STREAM_SET_ERROR: Failed to set value: redis is unreachable"),
        "{failed}"
    );
    let failed = worker
        .call(
            "stream::list",
            json!({"stream_name": "chat", "group_id": "room"}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(failed.starts_with("STREAM_GET_GROUP_ERROR"), "{failed}");
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(stopped.elapsed())).await;

    redis.spawn().unwrap();
    healthz_becomes(&server, 200).await;
    // The restarted Redis is empty: the subscriptions get a fresh sync in a new epoch, on the
    // same connections.
    let resync = frames(&mut sub, 1).await.remove(0);
    assert_eq!(resync["event"], json!({"type": "sync", "data": []}));
    assert_eq!(resync["subscriptionId"], "s");
    assert_ne!(resync["epoch"], sync["epoch"]);
    let item_resync = frames(&mut item, 1).await.remove(0);
    assert_eq!(item_resync["event"], json!({"type": "sync", "data": null}));
    assert_eq!(item_resync["id"], "a");
    // Writes work again and reach the same subscribers.
    set(&worker, "chat", "room", "a", json!(2)).await;
    let events = frames(&mut sub, 1).await;
    let state = apply(&resync, &events);
    assert_eq!(state, [json!({"id": "a", "v": 2})]);
    assert_eq!(frames(&mut item, 1).await[0]["event"]["data"]["v"], 2);
    assert!(server.metric("iii_stream_redis_reconnects_total") >= 1.0);
}
