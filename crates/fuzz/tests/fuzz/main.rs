//! The fuzz run: every target for its share of the time budget (docs/fuzzing.md). In CI each
//! target runs for a few seconds; `FUZZ_SECONDS=1800 cargo test --release -p iii-stream-fuzz
//! -- --nocapture --test-threads 1` is the long run.

use iii_stream_fuzz::inputs::{ENGINE_TYPES, json, message, mutated, seeded};
use iii_stream_fuzz::run::{budget, fuzz};
use iii_stream_fuzz::targets::{self, Server};
use proptest::prelude::*;
use std::time::Duration;

const TARGETS: u32 = 5;

fn share() -> Duration {
    budget(TARGETS, Duration::from_secs(12))
}

const ENGINE_SEEDS: &[&str] = &[
    r#"{"type":"invokefunction","invocation_id":"i1","function_id":"stream::set","data":{"stream_name":"s","group_id":"g","item_id":"i","data":{"n":1.5}}}"#,
    r#"{"type":"invokefunction","invocation_id":"i2","function_id":"stream::update","data":{"stream_name":"s","group_id":"g","item_id":"i","ops":[{"type":"increment","path":"n","by":2},{"type":"merge","path":["a","b"],"value":{"c":[1]}},{"type":"append","path":"l","value":"x"}]}}"#,
    r#"{"type":"invokefunction","invocation_id":"i3","function_id":"stream::send","data":{"stream_name":"s","group_id":"g","type":"t","data":null,"id":"x"}}"#,
    r#"{"type":"invokefunction","function_id":"stream::list_all","action":{"type":"void"}}"#,
    r#"{"type":"registertrigger","id":"t1","trigger_type":"stream","function_id":"f","config":{"stream_name":"s","group_id":"g","condition_function_id":"c"},"metadata":{"m":1}}"#,
    r#"{"type":"registertrigger","id":"t2","trigger_type":"stream:join","function_id":"gate","config":null}"#,
    r#"{"type":"registerfunction","id":"stream::set(s)"}"#,
    r#"{"type":"invocationresult","invocation_id":"00000000-0000-4000-8000-000000000000","result":{"unauthorized":true}}"#,
    r#"{"type":"reattach","previous_worker_id":"w","reattach_token":"t"}"#,
];

const SUBSCRIBER_SEEDS: &[&str] = &[
    r#"{"type":"join","data":{"subscriptionId":"a","streamName":"s","groupId":"g"}}"#,
    r#"{"type":"join","data":{"subscriptionId":"b","streamName":"s","groupId":"g","id":"i","since":{"epoch":"e","seq":3}}}"#,
    r#"{"type":"join","data":{"subscriptionId":"c","streamName":"other","groupId":"g"}}"#,
    r#"{"type":"leave","data":{"subscriptionId":"a","streamName":"s","groupId":"g"}}"#,
];

const CONFIG_SEEDS: &[&str] = &[
    "workers:\n  - name: iii-worker-manager\n    config: { host: 127.0.0.1, port: ${PORT}, max_in_flight_calls: 8 }\n  - name: iii-stream\n    config:\n      port: ${PORT:3112}\n      auth_function: ${EMPTY}\n      adapter: { name: redis, config: { redis_url: \"redis://x:1\" } }\n      limits: { max_connections: 5, joins_per_second: 3 }\n      keepalive: { ping_interval_ms: 10, idle_timeout_ms: 20 }\n",
    "modules:\n  - name: iii-stream\n    config: { adapter: { name: kv, config: { store_method: file_based, file_path: ${NESTED} } }, history: { max_events: 0 } }\n",
    "workers: []\n",
];

#[test]
fn stream_urls() {
    let inputs = prop_oneof![
        seeded(&[
            "chat/room-1/m1?since_epoch=ab&since_seq=4",
            "a%3Ab/g%2F1/%E2%9C%93/",
            "s/g?token=x&since_seq=18446744073709551616",
        ]),
        mutated(".{0,40}"),
    ];
    fuzz("stream_urls", share(), inputs, |input| {
        targets::stream_url(&input);
        Ok(())
    });
}

#[test]
fn update_ops() {
    let ops = prop_oneof![
        prop::collection::vec(
            message(&["set", "merge", "increment", "decrement", "append", "remove"]),
            0..5
        )
        .prop_map(|ops| format!("[{}]", ops.join(","))),
        mutated(json().prop_map(|v| v.to_string())),
    ];
    let value = prop_oneof![json().prop_map(|v| v.to_string()), Just(String::new())];
    fuzz("update_ops", share(), (ops, value), |(ops, value)| {
        targets::update(&ops, &value);
        Ok(())
    });
}

#[test]
fn config_text() {
    let inputs = prop_oneof![seeded(CONFIG_SEEDS), mutated(".{0,80}")];
    fuzz("config_text", share(), inputs, |input| {
        targets::config(&input);
        Ok(())
    });
}

#[test]
fn engine_messages() {
    let server = Server::start();
    let inputs = (
        0usize..2,
        prop_oneof![
            message(ENGINE_TYPES),
            seeded(ENGINE_SEEDS),
            json().prop_map(|v| v.to_string()),
        ],
    );
    fuzz("engine_messages", share(), inputs, |(which, text)| {
        server.worker_message(which, &text);
        Ok(())
    });
}

#[test]
fn subscriber_messages() {
    let server = Server::start();
    let inputs = (
        0usize..2,
        prop_oneof![message(&["join", "leave"]), seeded(SUBSCRIBER_SEEDS)],
    );
    fuzz("subscriber_messages", share(), inputs, |(which, text)| {
        server.subscriber_message(which, &text);
        Ok(())
    });
}
