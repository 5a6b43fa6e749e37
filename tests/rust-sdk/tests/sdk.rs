//! The server as seen by crates.io `iii-sdk =0.23.0`: every stream function the issue names,
//! remote errors, and a `stream` trigger calling back into a Rust worker (whose decoder is
//! strict about server-sent messages).

use iii_sdk::protocol::{RegisterTriggerInput, TriggerRequest};
use iii_sdk::{Error, IIIClient, InitOptions, RegisterFunction, register_worker};
use iii_stream_client::ServerProcess;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn binary() -> PathBuf {
    std::env::var_os("III_STREAM_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/iii-stream"),
        PathBuf::from,
    )
}

struct Fixture {
    _server: ServerProcess,
    worker: IIIClient,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.worker.shutdown();
    }
}

fn fixture() -> Fixture {
    let server = ServerProcess::start(
        &binary(),
        "      adapter: { name: kv, config: { store_method: in_memory } }",
    )
    .expect("server starts");
    let worker = register_worker(&server.engine_url(), InitOptions::default());
    Fixture {
        _server: server,
        worker,
    }
}

async fn call(worker: &IIIClient, function_id: &str, payload: Value) -> Result<Value, Error> {
    worker
        .trigger(TriggerRequest {
            function_id: function_id.to_owned(),
            payload,
            action: None,
            timeout_ms: Some(10_000),
        })
        .await
}

fn remote_code(result: Result<Value, Error>) -> String {
    match result {
        Err(Error::Remote { code, .. }) => code,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn set_get_list_delete_update() {
    let f = fixture();
    let w = &f.worker;
    let item = |id: &str| json!({"stream_name": "rs", "group_id": "g", "item_id": id});
    let with = |id: &str, extra: (&str, Value)| {
        let mut v = item(id);
        v[extra.0] = extra.1;
        v
    };

    let created = call(w, "stream::set", with("a", ("data", json!({"id": "a", "n": 1})))).await;
    assert_eq!(created.unwrap(), json!({"old_value": null, "new_value": {"id": "a", "n": 1}}));
    let replaced = call(w, "stream::set", with("a", ("data", json!({"id": "a", "n": 2})))).await;
    assert_eq!(replaced.unwrap()["old_value"], json!({"id": "a", "n": 1}));
    call(w, "stream::set", with("b", ("data", json!({"id": "b"})))).await.unwrap();

    assert_eq!(call(w, "stream::get", item("a")).await.unwrap(), json!({"id": "a", "n": 2}));
    assert_eq!(call(w, "stream::get", item("missing")).await.unwrap(), Value::Null);

    let list = call(w, "stream::list", json!({"stream_name": "rs", "group_id": "g"})).await;
    assert_eq!(list.unwrap(), json!([{"id": "a", "n": 2}, {"id": "b"}]));

    let ops = json!([
        {"type": "increment", "path": "n", "by": 40},
        {"type": "set", "path": "tag", "value": "x"},
        {"type": "append", "path": "id", "value": 1}
    ]);
    let updated = call(w, "stream::update", with("a", ("ops", ops))).await.unwrap();
    assert_eq!(updated["old_value"], json!({"id": "a", "n": 2}));
    assert_eq!(updated["new_value"], json!({"id": "a", "n": 42, "tag": "x"}));
    assert_eq!(updated["errors"][0]["op_index"], 2);
    assert_eq!(updated["errors"][0]["code"], "append.type_mismatch");

    let deleted = call(w, "stream::delete", item("b")).await.unwrap();
    assert_eq!(deleted, json!({"old_value": {"id": "b"}}));
    let again = call(w, "stream::delete", item("b")).await.unwrap();
    assert_eq!(again, json!({"old_value": null}));

    let groups = call(w, "stream::list_groups", json!({"stream_name": "rs"})).await;
    assert_eq!(groups.unwrap(), json!(["g"]));
    let all = call(w, "stream::list_all", json!({})).await.unwrap();
    assert_eq!(all, json!({"stream": [{"id": "rs", "groups": ["g"]}], "count": 1}));
}

#[tokio::test]
async fn remote_errors_carry_their_codes() {
    let f = fixture();
    let w = &f.worker;
    let wrong_type = json!({"stream_name": "rs", "group_id": "g", "item_id": 5});
    assert_eq!(remote_code(call(w, "stream::get", wrong_type).await), "deserialization_error");
    let empty_group = json!({"stream_name": "rs", "group_id": "", "item_id": "x", "data": 1});
    assert_eq!(remote_code(call(w, "stream::set", empty_group).await), "STREAM_INVALID_NAME");
    assert_eq!(remote_code(call(w, "no::such", json!({})).await), "function_not_found");
}

#[tokio::test]
async fn a_stream_trigger_calls_a_rust_handler() {
    let f = fixture();
    let w = &f.worker;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = seen.clone();
    w.register_function(
        "rs::on-change",
        RegisterFunction::new(move |event: Value| -> Result<Value, Error> {
            sink.lock().map(|mut s| s.push(event)).ok();
            Ok(Value::Null)
        }),
    );
    w.register_trigger(RegisterTriggerInput::new(
        "stream",
        "rs::on-change",
        json!({"stream_name": "rs-trig"}),
    ))
    .expect("trigger registered");
    // Registrations are not acknowledged; one round trip on the same connection orders them.
    call(w, "stream::get", json!({"stream_name": "x", "group_id": "g", "item_id": "i"}))
        .await
        .unwrap();
    let set = json!({"stream_name": "rs-trig", "group_id": "g", "item_id": "i", "data": {"v": 1}});
    call(w, "stream::set", set).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        if let Some(event) = seen.lock().ok().and_then(|s| s.first().cloned()) {
            break event;
        }
        assert!(Instant::now() < deadline, "the trigger never fired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(event["type"], "stream");
    assert_eq!(event["streamName"], "rs-trig");
    assert_eq!(event["id"], "i");
    assert_eq!(event["event"], json!({"type": "create", "data": {"v": 1}}));
    assert_eq!(event["seq"], 1);
    assert!(event["epoch"].is_string());
    assert!(event.get("subscriptionId").is_none());
}
