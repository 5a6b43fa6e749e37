//! A first end-to-end pass over both ports with raw clients.

use iii_stream_client::{EngineClient, ServerProcess, SubscriberClient};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const IN_MEMORY: &str = "      adapter: { name: kv, config: { store_method: in_memory } }";
const WAIT: Duration = Duration::from_secs(5);

fn server() -> ServerProcess {
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_iii-stream")), IN_MEMORY).unwrap()
}

#[tokio::test]
async fn a_write_reaches_a_group_subscriber_after_its_sync() {
    let server = server();
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    worker
        .call(
            "stream::set",
            json!({"stream_name":"chat","group_id":"r1","item_id":"a","data":{"id":"a"}}),
        )
        .await
        .unwrap();
    let mut sub = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    sub.join("s1", "chat", "r1", None);
    let sync = sub.next_frame(WAIT).await.unwrap();
    assert_eq!(sync["event"], json!({"type":"sync","data":[{"id":"a"}]}));
    assert_eq!(sync["id"], serde_json::Value::Null);
    assert_eq!(sync["seq"], 1);
    assert_eq!(sync["subscriptionId"], "s1");
    worker
        .call(
            "stream::set",
            json!({"stream_name":"chat","group_id":"r1","item_id":"b","data":{"id":"b"}}),
        )
        .await
        .unwrap();
    let frame = sub.next_frame(WAIT).await.unwrap();
    assert_eq!(frame["event"], json!({"type":"create","data":{"id":"b"}}));
    assert_eq!(frame["seq"], 2);
    assert_eq!(frame["epoch"], sync["epoch"]);
    assert_eq!(frame["subscriptionId"], "s1");
}
