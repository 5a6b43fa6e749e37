//! One worker cannot stall the server: a worker holding 20,000 `stream` triggers (and as many
//! functions) disconnects and reconnects, re-registering the same ids as an SDK does, while a
//! healthy worker keeps calling and a subscriber keeps receiving.

use iii_stream_client::{EngineClient, ServerProcess, WAIT, start_server};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TRIGGERS: usize = 20_000;
const CYCLES: usize = 3;

/// Registers the big worker's functions and triggers on `client`, then waits until the server
/// has applied all of them.
async fn register_all(client: &EngineClient) {
    for i in 0..TRIGGERS {
        client.register_function(&format!("big::f{i}"));
        client.register_trigger(
            &format!("big-trigger-{i}"),
            "stream",
            &format!("big::f{i}"),
            json!({"stream_name": "big", "group_id": format!("g{}", i % 100)}),
        );
    }
    client.barrier().await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_thousand_trigger_worker_coming_and_going_never_stalls_anyone() {
    let server: ServerProcess = start_server!();
    let healthy = server.engine().await;
    let mut subscriber = server.subscriber().await;
    subscriber.join("s", "healthy", "g", None);
    assert_eq!(subscriber.frame(WAIT).await["event"]["type"], "sync");

    let big = server.engine().await;
    register_all(&big).await;

    // The healthy worker writes back to back, timing every call, until the cycles are over.
    let done = Arc::new(AtomicBool::new(false));
    let calling = {
        let done = done.clone();
        let healthy = healthy.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                let started = Instant::now();
                healthy
                    .set("healthy", "g", "item", json!({"n": n}))
                    .await
                    .unwrap();
                latencies.push(started.elapsed());
                n += 1;
            }
            (latencies, n)
        })
    };
    let mut cycle_costs = Vec::new();
    let mut big = big;
    for _ in 0..CYCLES {
        let started = Instant::now();
        // As an SDK does: a new socket, `reattach` naming the old one, then every registration
        // again with the same ids.
        let hello = big
            .take_unsolicited()
            .into_iter()
            .find(|m| m["type"] == "workerregistered")
            .expect("workerregistered");
        big.close();
        let again = server.engine().await;
        again.send_raw(
            json!({"type": "reattach", "previous_worker_id": hello["worker_id"],
                "reattach_token": hello["reattach_token"]})
            .to_string(),
        );
        register_all(&again).await;
        cycle_costs.push(started.elapsed());
        big = again;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.store(true, Ordering::SeqCst);
    let (mut latencies, writes) = calling.await.unwrap();

    // The subscriber got every write, in order.
    let frames = subscriber.frames(writes as usize, WAIT).await;
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame["event"]["data"]["n"], i as u64, "{frame}");
    }
    latencies.sort_unstable();
    let p99 = percentile(&latencies, 0.99);
    let max = latencies.last().copied().unwrap_or_default();
    eprintln!(
        "{} healthy calls during {CYCLES} disconnect/re-register cycles of {TRIGGERS} triggers \
         (each {:?}); p50 {:?}, p99 {p99:?}, max {max:?}",
        latencies.len(),
        cycle_costs,
        percentile(&latencies, 0.5),
    );
    assert!(
        latencies.len() > 100,
        "too few calls to judge: {}",
        latencies.len()
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    // The registrations of the closed connections are gone, the live one's are all there.
    big.barrier().await.unwrap();
    assert!(
        server.metric("iii_stream_registrations_refused_total") == 0.0,
        "a reconnect after a clean close was refused"
    );
}
