//! Invalid and unusual subscriber input (stream.md §8.3, §8.4 step 1, §8.8; improvements.md j;
//! clients.md §2.6): malformed messages are ignored and the connection stays open, binary joins
//! work, a WebSocket Ping gets exactly one Pong with its payload, an empty `subscriptionId` is
//! ignored, and empty or oversized names get `unauthorized` with reason `invalid_name`.

use iii_stream_client::{Received, WAIT, start_server};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// The longest valid name (stream.md §1) and one byte more.
const MAX_NAME: usize = 4096;

#[tokio::test]
async fn malformed_messages_are_ignored_and_the_connection_stays_open() {
    let server = start_server!();
    let mut sub = server.subscriber().await;
    let data = json!({"subscriptionId": "s", "streamName": "in", "groupId": "g"});
    let garbage = [
        "not json".to_owned(),
        String::new(),
        " ".to_owned(),
        "null".to_owned(),
        "[]".to_owned(),
        "42".to_owned(),
        json!({"type": "ping"}).to_string(),
        json!({"type": "pong"}).to_string(),
        json!({"type": "subscribe", "data": data}).to_string(),
        json!({"type": "Join", "data": data}).to_string(),
        json!({"type": "join"}).to_string(),
        json!({"type": "join", "data": null}).to_string(),
        json!({"data": data}).to_string(),
        json!({"type": "join", "data": {"streamName": "in", "groupId": "g"}}).to_string(),
        json!({"type": "join", "data": {"subscriptionId": "s", "groupId": "g"}}).to_string(),
        json!({"type": "join", "data": {"subscriptionId": "s", "streamName": "in"}}).to_string(),
        json!({"type": "join", "data": {"subscriptionId": 1, "streamName": "in", "groupId": "g"}})
            .to_string(),
        json!({"type": "join", "data": {"subscriptionId": "s", "streamName": ["in"], "groupId": "g"}})
            .to_string(),
        json!({"type": "join", "data": {"subscriptionId": "s", "streamName": "in", "groupId": "g", "id": 5}})
            .to_string(),
        json!({"type": "leave", "data": {}}).to_string(),
        "{\"type\":\"join\",\"data\":{\"subscriptionId\":\"s\"".to_owned(),
    ];
    for text in garbage {
        sub.send_raw(text);
    }
    sub.send_message(Message::Binary(vec![0xff, 0xfe, b'{'].into()));
    sub.join("ok", "in", "g", None);
    let frame = sub.frame(WAIT).await;
    assert_eq!(
        (&frame["subscriptionId"], &frame["event"]["type"]),
        (&json!("ok"), &json!("sync")),
        "the first reply is the valid join's sync: {frame}"
    );
}

#[tokio::test]
async fn a_binary_message_containing_a_join_works() {
    let server = start_server!();
    let mut sub = server.subscriber().await;
    let join = json!({"type": "join", "data": {"subscriptionId": "bin", "streamName": "in", "groupId": "g", "id": "i"}});
    sub.send_message(Message::Binary(join.to_string().into_bytes().into()));
    let sync = sub.frame(WAIT).await;
    assert_eq!(
        (&sync["subscriptionId"], &sync["id"]),
        (&json!("bin"), &json!("i"))
    );
}

#[tokio::test]
async fn a_ping_gets_exactly_one_pong_with_the_same_payload() {
    let server = start_server!();
    let mut sub = server.subscriber().await;
    sub.send_message(Message::Ping(b"hello \x00 ping".to_vec().into()));
    sub.send_message(Message::Ping(Vec::new().into()));
    sub.send_message(Message::Pong(b"unsolicited".to_vec().into()));
    sub.join("after", "in", "g", None);
    assert_eq!(
        sub.next(WAIT).await,
        Some(Received::Pong(b"hello \x00 ping".to_vec()))
    );
    assert_eq!(sub.next(WAIT).await, Some(Received::Pong(Vec::new())));
    let Some(Received::Frame(sync)) = sub.next(WAIT).await else {
        panic!("one Pong per Ping, nothing for a Pong, then the sync");
    };
    assert_eq!(sync["subscriptionId"], "after");
}

#[tokio::test]
async fn an_empty_subscription_id_is_ignored() {
    let server = start_server!();
    let mut sub = server.subscriber().await;
    sub.join("", "in", "g", None);
    sub.join("", "", "", None);
    sub.join("next", "in", "g", None);
    assert_eq!(sub.frame(WAIT).await["subscriptionId"], "next");
}

#[tokio::test]
async fn empty_or_oversized_names_are_refused_with_invalid_name() {
    let server = start_server!();
    let mut sub = server.subscriber().await;
    let long = "n".repeat(MAX_NAME + 1);
    let longest = "é".repeat(MAX_NAME / 2);
    let refused: [(&str, &str, Option<&str>); 5] = [
        ("", "g", None),
        ("in", "", None),
        ("in", "g", Some("")),
        (&long, "g", None),
        ("in", "g", Some(&long)),
    ];
    for (n, (stream, group, item)) in refused.into_iter().enumerate() {
        let id = format!("bad-{n}");
        sub.join(&id, stream, group, item);
        let frame = sub.frame(WAIT).await;
        assert_eq!(frame["event"], json!({"type": "unauthorized"}), "{n}");
        assert_eq!(
            (&frame["subscriptionId"], &frame["reason"]),
            (&json!(id), &json!("invalid_name"))
        );
        assert_eq!(frame["id"], json!(item));
        assert!(frame.get("seq").is_none() && frame.get("epoch").is_none());
    }
    // 4096 bytes of UTF-8 is still a valid name.
    sub.join("longest", &longest, &longest, Some(&longest));
    let sync = sub.frame(WAIT).await;
    assert_eq!(
        (&sync["subscriptionId"], &sync["event"]["type"]),
        (&json!("longest"), &json!("sync"))
    );
}
