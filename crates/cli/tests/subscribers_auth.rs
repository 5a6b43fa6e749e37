//! Handshake authentication on the stream port (stream.md §8.2, improvements.md h, o): the exact
//! input of `auth_function`, its `context` in join and leave payloads, every outcome in the
//! default (fail-open) and `fail_closed` modes, including a missing or silent auth function under
//! `timeouts.auth_ms`, and the subprotocol echo.
//!
//! The auth function used here decides by the `mode` query parameter of the handshake, and every
//! handshake opens a `/stream/auth/<mode>` URL so that its auto-join shows the `context` the
//! connection got.

use iii_stream_client::{
    Answer, Handshake, Invocation, ServerProcess, SubscriberClient, WAIT, Worker, start_server,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const AUTH: &str = "auth::check";
const JOIN: &str = "auth::join";
const LEAVE: &str = "auth::leave";
const AUTH_MS: u64 = 300;

/// Answers an auth call according to its `mode` query parameter.
fn authenticate(call: &Invocation) -> Answer {
    if call.function_id != AUTH {
        return Answer::Nothing;
    }
    match call.data["query_params"]["mode"][0]
        .as_str()
        .unwrap_or("ok")
    {
        "reject" => Answer::Value(json!({"unauthorized": true, "context": {"user": "x"}})),
        "not-rejected" => Answer::Value(json!({"unauthorized": false, "context": {"user": "nr"}})),
        "throw" => Answer::error("invocation_failed", "auth exploded"),
        "never" => Answer::Never,
        "nothing" => Answer::Nothing,
        "scalar" => Answer::Value(json!("ok")),
        "no-context" => Answer::Value(json!({"extra": 1})),
        _ => Answer::Value(json!({"context": {"user": "u1", "roles": ["a"]}})),
    }
}

fn server(fail_closed: bool) -> ServerProcess {
    start_server!(&format!(
        "      auth_function: {AUTH}\n      fail_closed: {fail_closed}\n      timeouts: {{ auth_ms: {AUTH_MS} }}"
    ))
}

async fn worker(server: &ServerProcess) -> Worker {
    let triggers = [
        ("j", "stream:join", JOIN, Value::Null),
        ("l", "stream:leave", LEAVE, Value::Null),
    ];
    Worker::start(
        &server.engine_url(),
        authenticate,
        &[AUTH, JOIN, LEAVE],
        &triggers,
    )
    .await
    .unwrap()
}

/// Opens `/stream/auth/<mode>?mode=<mode>`: `Some(context)` of its auto-join when upgraded (after
/// how long), `None` when refused with 401.
async fn handshake(
    server: &ServerProcess,
    worker: &Worker,
    mode: &str,
) -> (Option<Value>, Duration) {
    let started = Instant::now();
    let path = format!("/stream/auth/{mode}?mode={mode}");
    let response = Handshake::new(&path)
        .send(server.stream_port)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    match response.status {
        401 => (None, elapsed),
        101 => {
            let mut sub = SubscriberClient::from_websocket(response.into_websocket().await);
            let sync = sub.frame(WAIT).await;
            let id = &sync["subscriptionId"];
            let join = worker
                .calls(JOIN)
                .into_iter()
                .find(|c| &c.data["subscription_id"] == id)
                .expect("the auto-join called the join handler");
            (Some(join.data["context"].clone()), elapsed)
        }
        other => panic!("handshake in mode {mode} answered {other}"),
    }
}

#[tokio::test]
async fn the_auth_function_gets_the_exact_handshake_and_its_context_reaches_join_and_leave() {
    let server = server(false);
    let worker = worker(&server).await;
    let port = server.stream_port;
    let request = Handshake::new("/stream/au%3Ath/g%2F1?token=a%20b&x=1&x=2&flag&=skip&e=&k=v=w")
        .header("X-Custom", "one")
        .header("x-custom", "two")
        .header("Cookie", "session=abc")
        .header("X-Unicode", "café")
        .header("Sec-WebSocket-Protocol", "Authorization, tok");
    let response = request.send(port).await.unwrap();
    assert_eq!(response.status, 101);
    assert_eq!(
        response.header("sec-websocket-protocol"),
        Some("Authorization"),
        "the first offered subprotocol is selected"
    );
    let local = response.stream.local_addr().unwrap();
    let mut sub = SubscriberClient::from_websocket(response.into_websocket().await);
    let sync = sub.frame(WAIT).await;
    let generated = sync["subscriptionId"].clone();

    let auth = worker.calls(AUTH);
    assert_eq!(auth.len(), 1);
    let mut input = auth[0].data.clone();
    let key = input["headers"]["sec-websocket-key"].take();
    assert!(key.is_string());
    assert_eq!(
        input,
        json!({
            "headers": {
                "host": format!("127.0.0.1:{port}"),
                "connection": "Upgrade",
                "upgrade": "websocket",
                "sec-websocket-version": "13",
                "sec-websocket-key": null,
                "x-custom": "two",
                "cookie": "session=abc",
                "sec-websocket-protocol": "Authorization, tok",
            },
            "path": "/stream/au%3Ath/g%2F1",
            "query_params": {
                "token": ["a%20b"], "x": ["1", "2"], "flag": [""], "e": [""], "k": ["v=w"],
            },
            "addr": format!("127.0.0.1:{}", local.port()),
        }),
        "lower-case names, last repeated value, non-ASCII values omitted, raw path and query"
    );

    let context = json!({"user": "u1", "roles": ["a"]});
    let joins = worker.calls(JOIN);
    assert_eq!(
        joins[0].data,
        json!({"subscription_id": generated, "stream_name": "au:th", "group_id": "g/1", "id": null, "context": context})
    );
    sub.join("item", "au:th", "g/1", Some("i"));
    sub.frame(WAIT).await;
    sub.leave("item");
    let leaves = worker.wait_calls(LEAVE, 1, WAIT).await;
    assert_eq!(
        leaves[0].data,
        json!({"subscription_id": "item", "stream_name": "au:th", "group_id": "g/1", "id": "i", "context": context})
    );
    sub.close();
    let leaves = worker.wait_calls(LEAVE, 2, WAIT).await;
    assert_eq!(leaves[1].data["subscription_id"], generated);
    assert_eq!(leaves[1].data["context"], context);
}

/// Every auth outcome of stream.md §8.2 in one mode: `Some(context)` = upgraded.
async fn outcomes(fail_closed: bool) {
    let server = server(fail_closed);
    // Before any worker registered it, the auth function is missing (function_not_found).
    let missing = Handshake::new("/?mode=ok")
        .send(server.stream_port)
        .await
        .unwrap();
    assert_eq!(
        missing.status,
        if fail_closed { 401 } else { 101 },
        "missing auth function"
    );

    let worker = worker(&server).await;
    let open = |context: Value| if fail_closed { None } else { Some(context) };
    for (mode, expected) in [
        ("ok", Some(json!({"user": "u1", "roles": ["a"]}))),
        ("not-rejected", Some(json!({"user": "nr"}))),
        ("no-context", Some(Value::Null)),
        ("reject", None),
        ("throw", open(Value::Null)),
        ("nothing", open(Value::Null)),
        ("scalar", open(Value::Null)),
        ("never", open(Value::Null)),
    ] {
        let (context, elapsed) = handshake(&server, &worker, mode).await;
        assert_eq!(context, expected, "mode {mode}, fail_closed {fail_closed}");
        if mode == "never" {
            let auth_ms = Duration::from_millis(AUTH_MS);
            assert!(
                elapsed >= auth_ms - Duration::from_millis(50) && elapsed < auth_ms * 10,
                "decided by the {AUTH_MS} ms auth timeout, after {elapsed:?}"
            );
        }
    }
    let timeouts = r#"iii_stream_server_calls_total{kind="auth",outcome="timeout"}"#;
    assert_eq!(server.metric(timeouts), 1.0);
}

#[tokio::test]
async fn auth_failures_fail_open_by_default() {
    outcomes(false).await;
}

#[tokio::test]
async fn auth_failures_are_refused_with_401_when_fail_closed() {
    outcomes(true).await;
}

#[tokio::test]
async fn the_first_offered_subprotocol_is_selected() {
    let server = server(false);
    let worker = worker(&server).await;
    // tungstenite fails the handshake unless the server selects one of the offered values.
    let (_sub, response) = SubscriberClient::connect_with(
        &server.stream_url(),
        &[("Sec-WebSocket-Protocol", "Authorization, tok")],
    )
    .await
    .unwrap();
    let selected = response.headers().get("sec-websocket-protocol");
    assert_eq!(
        selected.and_then(|v| v.to_str().ok()),
        Some("Authorization")
    );
    let auth = worker.calls(AUTH);
    assert_eq!(
        auth[0].data["headers"]["sec-websocket-protocol"],
        "Authorization, tok"
    );

    let plain = Handshake::new("/").send(server.stream_port).await.unwrap();
    assert_eq!(plain.status, 101);
    assert_eq!(
        plain.header("sec-websocket-protocol"),
        None,
        "no offer, no selection"
    );
}
