//! Bad input on the engine port: the connection and the server stay up, and a caller that waits
//! for an answer gets a precise error (issue 2, worker-protocol.md §3, §6, §7, §12).

use futures_util::{SinkExt, StreamExt};
use iii_stream_client::{EngineClient, ServerProcess};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const IN_MEMORY: &str = "      adapter: { name: kv, config: { store_method: in_memory } }";

fn server() -> ServerProcess {
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_iii-stream")), IN_MEMORY).unwrap()
}

fn item(stream: &str, id: &str) -> Value {
    json!({"stream_name": stream, "group_id": "g", "item_id": id})
}

async fn still_serving(worker: &EngineClient) {
    let reply = worker.call("stream::get", item("alive", "x")).await;
    assert!(
        matches!(reply, Ok(None)),
        "the connection no longer answers: {reply:?}"
    );
}

#[tokio::test]
async fn undecodable_messages_are_ignored_and_the_connection_stays_up() {
    let server = server();
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    for garbage in [
        "{not json",
        "",
        "   ",
        "[1,2,3]",
        "42",
        r#"{"no_type":1}"#,
        r#"{"type":"observe","anything":true}"#,
        r#"{"type":"invokefunction"}"#,
        r#"{"type":"invokefunction","invocation_id":"i-1","function_id":5}"#,
        r#"{"type":"registerfunction"}"#,
        r#"{"type":"registertrigger","trigger_type":"stream"}"#,
        r#"{"type":"invocationresult","invocation_id":"unknown","result":1}"#,
    ] {
        worker.send_raw(garbage);
    }
    worker.send_binary(b"OTLP{\"resourceSpans\":[]}".to_vec());
    worker.send_binary(vec![0xff, 0xfe, 0x00]);
    still_serving(&worker).await;
    let replies = worker.take_unsolicited();
    let answered: Vec<_> = replies
        .iter()
        .filter(|m| m["type"] != "workerregistered")
        .collect();
    assert!(answered.is_empty(), "garbage was answered: {answered:?}");
}

#[tokio::test]
async fn unknown_functions_and_wrong_inputs_get_precise_errors() {
    let server = server();
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    let code = |r: Result<Option<Value>, iii_stream_client::CallError>| match r {
        Err(iii_stream_client::CallError::Remote { code, .. }) => code,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(
        code(worker.call("audit::log", json!({"x": 1})).await),
        "function_not_found"
    );
    assert_eq!(
        code(
            worker
                .call("stream::listGroups", json!({"stream_name": "s"}))
                .await
        ),
        "function_not_found"
    );
    assert_eq!(
        code(worker.call("stream::set", json!(null)).await),
        "deserialization_error"
    );
    let mistyped = json!({"stream_name": "s", "group_id": "g", "item_id": 5, "data": 1});
    assert_eq!(
        code(worker.call("stream::set", mistyped).await),
        "deserialization_error"
    );
    let empty = json!({"stream_name": "s", "group_id": "", "item_id": "i", "data": 1});
    assert_eq!(
        code(worker.call("stream::set", empty).await),
        "STREAM_INVALID_NAME"
    );
    let bad_op = json!({"stream_name": "s", "group_id": "g", "item_id": "i", "ops": [{"type": "Set", "path": "a"}]});
    assert_eq!(
        code(worker.call("stream::update", bad_op).await),
        "deserialization_error"
    );
    assert!(
        worker
            .call("stream::get", item("s", "i"))
            .await
            .unwrap()
            .is_none(),
        "nothing was written"
    );
}

#[tokio::test]
async fn a_stream_trigger_without_stream_name_is_refused_without_harm() {
    let server = server();
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    worker.send_raw(
        json!({"type": "registertrigger", "id": "t-1", "trigger_type": "stream", "function_id": "f", "config": {}})
            .to_string(),
    );
    let mut data = item("s", "i");
    data["data"] = json!(1);
    worker.call("stream::set", data).await.unwrap();
    let refusal = worker
        .take_unsolicited()
        .into_iter()
        .find(|m| m["type"] == "triggerregistrationresult")
        .expect("a refusal");
    assert_eq!(refusal["id"], "t-1");
    assert_eq!(refusal["trigger_type"], "stream");
    assert_eq!(refusal["function_id"], "f");
    assert_eq!(refusal["error"]["code"], "trigger_registration_failed");
}

#[tokio::test]
async fn a_ten_mebibyte_payload_is_stored_and_the_connection_survives() {
    let server = server();
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    let big = "x".repeat(10 << 20);
    let mut data = item("big", "i");
    data["data"] = json!({"blob": big});
    let written = worker.call("stream::set", data).await.unwrap().unwrap();
    assert_eq!(written["old_value"], Value::Null);
    let stored = worker
        .call("stream::get", item("big", "i"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored["blob"].as_str().map(str::len), Some(10 << 20));
    still_serving(&worker).await;
}

#[tokio::test]
async fn a_message_above_the_limit_closes_only_that_connection_with_1009() {
    let server = server();
    let bystander = EngineClient::connect(&server.engine_url()).await.unwrap();
    let (mut socket, _) = connect_async(server.engine_url()).await.unwrap();
    let huge = format!(
        r#"{{"type":"invokefunction","invocation_id":"i","function_id":"stream::send","data":"{}"}}"#,
        "x".repeat((64 << 20) + 1)
    );
    let _ = socket.send(Message::Text(huge.into())).await;
    let mut close_code = None;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), socket.next()).await
    {
        match message {
            Ok(Message::Close(frame)) => {
                close_code = frame.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(close_code, Some(1009));
    still_serving(&bystander).await;
}

#[tokio::test]
async fn pings_get_exactly_one_pong_and_otel_is_a_sink() {
    let server = server();
    let (mut socket, _) = connect_async(server.engine_url()).await.unwrap();
    socket
        .send(Message::Ping(b"p-1".to_vec().into()))
        .await
        .unwrap();
    socket
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    let mut pongs = Vec::new();
    let mut json_pong = false;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(500), socket.next()).await
    {
        match message {
            Message::Pong(payload) => pongs.push(payload.to_vec()),
            Message::Text(text) if text.contains(r#""type":"pong""#) => json_pong = true,
            _ => {}
        }
    }
    assert_eq!(pongs, [b"p-1".to_vec()]);
    assert!(json_pong);

    let otel = format!("ws://127.0.0.1:{}/otel", server.engine_port);
    let (mut telemetry, _) = connect_async(otel).await.unwrap();
    telemetry
        .send(Message::Binary(b"MTRC{}".to_vec().into()))
        .await
        .unwrap();
    telemetry
        .send(Message::Text("anything".into()))
        .await
        .unwrap();
    telemetry
        .send(Message::Ping(b"t".to_vec().into()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(2), telemetry.next()).await;
    assert!(
        matches!(answer, Ok(Some(Ok(Message::Pong(_))))),
        "got {answer:?}"
    );
    let (status, _) = iii_stream_client::http_get(server.engine_port, "/elsewhere").unwrap();
    assert_eq!(status, 404);
}
