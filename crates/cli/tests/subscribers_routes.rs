//! Stream-port routes (stream.md §8.1, improvements.md a): auto-joining
//! `/stream/{stream}/{group}[/{item}]` URLs with a generated UUID `subscriptionId` (trailing
//! slash, percent-decoded segments, query strings), join and leave messages on such a socket,
//! and the HTTP statuses of every other path: 404, 400 and 426.

use iii_stream_client::{Handshake, SubscriberClient, WAIT, Worker, is_uuid_v4, start_server};
use serde_json::{Value, json};

#[tokio::test]
async fn a_group_url_auto_joins_with_a_generated_subscription_id() {
    let server = start_server!();
    let worker = server.engine().await;
    worker
        .set("rt-chat", "room-1", "a", json!({"id": "a"}))
        .await
        .unwrap();
    let mut sub = SubscriberClient::connect(&server.stream_url_for("/stream/rt-chat/room-1"))
        .await
        .unwrap();
    let sync = sub.frame(WAIT).await;
    assert_eq!(
        sync["event"],
        json!({"type": "sync", "data": [{"id": "a"}]})
    );
    assert_eq!(sync["id"], Value::Null);
    assert_eq!(
        (&sync["streamName"], &sync["groupId"]),
        (&json!("rt-chat"), &json!("room-1"))
    );
    assert_eq!(sync["seq"], 1);
    let id = sync["subscriptionId"].as_str().unwrap().to_owned();
    assert!(is_uuid_v4(&id), "generated subscriptionId {id}");

    worker
        .set("rt-chat", "room-1", "b", json!({"id": "b"}))
        .await
        .unwrap();
    let frame = sub.frame(WAIT).await;
    assert_eq!(
        frame["event"],
        json!({"type": "create", "data": {"id": "b"}})
    );
    assert_eq!(frame["subscriptionId"], id.as_str());
}

#[tokio::test]
async fn an_item_url_with_trailing_slash_and_query_auto_joins_the_item() {
    let server = start_server!();
    let worker = server.engine().await;
    let url = server.stream_url_for("/stream/rt-chat/room-1/msg-9/?token=abc");
    let mut sub = SubscriberClient::connect(&url).await.unwrap();
    let sync = sub.frame(WAIT).await;
    assert_eq!(sync["event"], json!({"type": "sync", "data": null}));
    assert_eq!(sync["id"], "msg-9");
    assert!(is_uuid_v4(sync["subscriptionId"].as_str().unwrap()));

    worker
        .set("rt-chat", "room-1", "other", json!(1))
        .await
        .unwrap();
    worker
        .set("rt-chat", "room-1", "msg-9", json!(2))
        .await
        .unwrap();
    let frame = sub.frame(WAIT).await;
    assert_eq!(frame["id"], "msg-9", "only the item's frames: {frame}");
    assert_eq!(frame["event"], json!({"type": "create", "data": 2}));
    assert_eq!(frame["subscriptionId"], sync["subscriptionId"]);
}

#[tokio::test]
async fn url_segments_are_split_then_percent_decoded() {
    let server = start_server!();
    let worker = server.engine().await;
    let url = server.stream_url_for("/stream/a%3Ab/g%2F1/%E2%9C%93");
    let mut item = SubscriberClient::connect(&url).await.unwrap();
    let sync = item.frame(WAIT).await;
    assert_eq!(
        (&sync["streamName"], &sync["groupId"], &sync["id"]),
        (&json!("a:b"), &json!("g/1"), &json!("✓"))
    );
    let mut spaced = SubscriberClient::connect(&server.stream_url_for("/stream/rt-space/%20x/"))
        .await
        .unwrap();
    let sync = spaced.frame(WAIT).await;
    assert_eq!(sync["groupId"], " x");
    let mut plus = SubscriberClient::connect(&server.stream_url_for("/stream/rt-plus/a+b"))
        .await
        .unwrap();
    assert_eq!(
        plus.frame(WAIT).await["groupId"],
        "a+b",
        "`+` is not special"
    );

    // The decoded names are the ones workers write.
    worker.set("a:b", "g/1", "✓", json!("tick")).await.unwrap();
    let frame = item.frame(WAIT).await;
    assert_eq!(frame["event"], json!({"type": "create", "data": "tick"}));
    worker.set("rt-space", " x", "i", json!(1)).await.unwrap();
    assert_eq!(spaced.frame(WAIT).await["id"], "i");
    worker.set("rt-plus", "a+b", "i", json!(1)).await.unwrap();
    assert_eq!(plus.frame(WAIT).await["id"], "i");
}

#[tokio::test]
async fn other_paths_answer_404_400_or_426() {
    let server = start_server!();
    let port = server.stream_port;
    for (path, status) in [
        ("/stream/chat", 404),
        ("/stream/chat/", 404),
        ("/stream/", 404),
        ("/stream", 404),
        ("/stream/a/b/c/d", 404),
        ("/stream/a/b/c/d/", 404),
        ("/other", 404),
        ("/streams/a/b", 404),
        ("/stream/chat//", 400),
        ("/stream//g", 400),
        ("/stream/chat/%FF", 400),
        ("/stream/chat/g/%C3", 400),
        ("/stream/chat/room?token=x", 101),
        ("/?token=x", 101),
    ] {
        let response = Handshake::new(path).send(port).await.unwrap();
        assert_eq!(response.status, status, "upgrade of {path}");
    }
    for (path, status) in [("/", 426), ("/stream/chat/room", 426), ("/other", 404)] {
        let response = Handshake::new(path)
            .without_upgrade()
            .send(port)
            .await
            .unwrap();
        assert_eq!(response.status, status, "GET {path} without upgrade");
    }
}

#[tokio::test]
async fn join_and_leave_messages_work_on_an_auto_joined_socket() {
    let server = start_server!();
    let triggers = [
        ("stream:join", "rt::join", Value::Null),
        ("stream:leave", "rt::leave", Value::Null),
    ];
    let worker = Worker::recorder(&server.engine_url(), &triggers)
        .await
        .unwrap();
    let mut sub = SubscriberClient::connect(&server.stream_url_for("/stream/rt-auto/g"))
        .await
        .unwrap();
    let generated = sub.frame(WAIT).await["subscriptionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let joins = worker.calls("rt::join");
    assert_eq!(
        joins[0].data,
        json!({"subscription_id": generated, "stream_name": "rt-auto", "group_id": "g", "id": null, "context": null}),
        "the join handler saw the generated id before the sync"
    );

    // The socket is bound to its path (docs/limits.md): a join outside it is refused...
    sub.join("outside", "rt-auto", "g2", None);
    let refused = sub.frame(WAIT).await;
    assert_eq!(refused["event"]["type"], "unauthorized", "{refused}");
    assert_eq!(refused["reason"], "path_bound");
    assert_eq!(refused["subscriptionId"], "outside");
    // ...and one inside it (an item of the path's group) works.
    sub.join("extra", "rt-auto", "g", Some("i"));
    assert_eq!(sub.frame(WAIT).await["subscriptionId"], "extra");
    worker.set("rt-auto", "g", "i", json!(1)).await.unwrap();
    worker.set("rt-auto", "g2", "i", json!(2)).await.unwrap();
    let ids: Vec<_> = sub
        .frames(2, WAIT)
        .await
        .iter()
        .map(|f| f["subscriptionId"].clone())
        .collect();
    assert_eq!(ids, [json!(generated), json!("extra")]);

    sub.leave(&generated);
    let leaves = worker.wait_calls("rt::leave", 1, WAIT).await;
    assert_eq!(
        leaves[0].data,
        json!({"subscription_id": generated, "stream_name": "rt-auto", "group_id": "g", "id": null, "context": null})
    );
    worker.set("rt-auto", "g", "j", json!(3)).await.unwrap();
    worker.set("rt-auto", "g", "i", json!(4)).await.unwrap();
    let frame = sub.frame(WAIT).await;
    assert_eq!(
        (&frame["subscriptionId"], &frame["event"]["data"]),
        (&json!("extra"), &json!(4)),
        "nothing is delivered for the left subscription"
    );

    drop(sub);
    let leaves = worker.wait_calls("rt::leave", 2, WAIT).await;
    let ids: Vec<_> = leaves
        .iter()
        .map(|c| c.data["subscription_id"].clone())
        .collect();
    assert_eq!(
        ids,
        [json!(generated), json!("extra")],
        "each leave fires once"
    );
}
