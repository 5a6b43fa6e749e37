//! The redis adapter seen from Redis and from the listings (improvements.md j, k, l): the data
//! layout `redis-cli` shows, names with `:` and `%`, startup without Redis, health and metrics.
//! Shared Redis, database 10.

mod redis_support;

use iii_stream_client::{ServerProcess, free_port, http_get};
use redis_support::*;
use serde_json::{Value, json};

const DB: u32 = 10;

#[tokio::test]
async fn redis_cli_shows_the_json_text_in_the_original_hash() {
    let names = Names::new(DB);
    let server = start(&names.url(), "");
    let worker = engine(&server).await;
    let chat = names.stream("chat");
    let value = json!({"id": "msg-9", "text": "hi", "n": 12345678901234567_u64, "list": []});
    worker
        .call(
            "stream::set",
            json!({"stream_name": chat, "group_id": "room-1", "item_id": "msg-9", "data": value}),
        )
        .await
        .unwrap();
    let text = names.cli(&["HGET", &format!("stream:{chat}:room-1"), "msg-9"]);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    assert!(text.contains("12345678901234567"), "{text}");
    let meta = names.cli(&["HGETALL", &format!("iii-stream:meta:{chat}:room-1")]);
    assert!(meta.starts_with("epoch\n"), "{meta}");
    assert_eq!(
        names.cli(&["SISMEMBER", &format!("iii-stream:groups:{chat}"), "room-1"]),
        "1"
    );
}

#[tokio::test]
async fn names_with_colons_and_percents_list_correctly() {
    let names = Names::new(DB);
    let server = start(&names.url(), "");
    let worker = engine(&server).await;
    let a = names.stream("a");
    let ab = format!("{a}:b");
    let pct = format!("{a}%3Ab");
    for (stream, group, v) in [
        (&a, "g1", 0),
        (&ab, "g2", 0),
        (&a, "b:c", 1),
        (&ab, "c", 2),
        (&pct, "50%", 3),
    ] {
        set(&worker, stream, group, "x", json!(v)).await;
    }
    let groups = |stream: &str| {
        let worker = &worker;
        let stream = stream.to_owned();
        async move {
            worker
                .call("stream::list_groups", json!({"stream_name": stream}))
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(groups(&a).await, json!(["b:c", "g1"]));
    assert_eq!(groups(&ab).await, json!(["c", "g2"]));
    assert_eq!(groups(&pct).await, json!(["50%"]));
    let get = |stream: &str, group: &str| json!({"stream_name": stream, "group_id": group, "item_id": "x"});
    let value = worker
        .call("stream::get", get(&a, "b:c"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value["v"], 1);
    let value = worker
        .call("stream::get", get(&ab, "c"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value["v"], 2);
    // The keys encode `:` and `%`, so the two `b:c`s cannot collide.
    let text = names.cli(&["HGET", &format!("stream:{a}:b%3Ac"), "x"]);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["v"], 1);
    let text = names.cli(&["HGET", &format!("stream:{a}%253Ab:50%25"), "x"]);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["v"], 3);
    let all = worker
        .call("stream::list_all", json!({}))
        .await
        .unwrap()
        .unwrap();
    let ours: Vec<&Value> = all["stream"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"].as_str().unwrap().contains(&names.token))
        .collect();
    assert_eq!(
        ours,
        [
            &json!({"id": a, "groups": ["b:c", "g1"]}),
            &json!({"id": pct, "groups": ["50%"]}),
            &json!({"id": ab, "groups": ["c", "g2"]}),
        ]
    );
    // Deleting the last item removes the group, and an emptied stream, at once.
    for (stream, group) in [(&ab, "c"), (&ab, "g2")] {
        worker
            .call("stream::delete", get(stream, group))
            .await
            .unwrap();
    }
    assert_eq!(groups(&ab).await, json!([]));
    let all = worker
        .call("stream::list_all", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(
        all["stream"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != json!(ab))
    );
}

#[tokio::test]
async fn startup_fails_clearly_without_redis() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let config =
        redis_config(&url, "").replace("connect_timeout_ms: 2000", "connect_timeout_ms: 300");
    let started = std::time::Instant::now();
    let error = ServerProcess::start(env!("CARGO_BIN_EXE_iii-stream"), config.trim_end())
        .err()
        .expect("the server must not start");
    let text = error.to_string();
    assert!(text.contains("cannot reach redis at 127.0.0.1:"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn health_and_metrics() {
    let names = Names::new(DB);
    let server = start(&names.url(), "");
    assert_eq!(server.healthz(), Some(200));
    let (status, body) = http_get(server.stream_port, "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(server.metric("iii_stream_redis_reconnects_total"), 0.0);
    assert!(
        server
            .metrics()
            .contains_key("iii_stream_redis_reconnects_total")
    );
}
