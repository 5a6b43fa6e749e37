//! Logging can never stop the server (a stalled stderr drops and counts lines), and a peer can
//! neither forge log lines nor bloat them.

use iii_stream_client::{EngineClient, ServerProcess, WAIT, start_server};
use serde_json::json;
use std::io::Read;
use std::time::{Duration, Instant};

/// More log lines than the server's log queue holds (16,384), so lines must be dropped.
const FLOOD: usize = 20_000;

/// One INFO line per call ("worker registered"), with a name of `name_len` bytes.
fn register(name: &str) -> String {
    json!({"type":"invokefunction","function_id":"engine::workers::register",
        "data":{"name":name,"runtime":"node","version":"0.22.1"},"action":{"type":"void"}})
    .to_string()
}

/// Calls `stream::set` + `stream::get` `n` times; returns the slowest round trip.
async fn slowest_calls(engine: &EngineClient, n: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let started = Instant::now();
        let call = async {
            engine
                .set("logs", "g", &format!("i{i}"), json!({"n": i}))
                .await
                .unwrap();
            engine.get("logs", "g", &format!("i{i}")).await.unwrap()
        };
        let got = tokio::time::timeout(WAIT, call)
            .await
            .expect("the server keeps answering");
        assert_eq!(got, Some(json!({"n": i})));
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

/// A server whose stderr nobody reads, after a worker made it log more lines than its queue
/// holds.
async fn stalled_and_flooded() -> (ServerProcess, EngineClient) {
    let mut server = start_server!("      shutdown_timeout_ms: 3000");
    server.stall_stderr().unwrap();
    let flooder = server.engine().await;
    let name = "w".repeat(200);
    for _ in 0..FLOOD {
        flooder.send_raw(register(&name));
    }
    flooder.barrier().await.unwrap();
    (server, flooder)
}

#[tokio::test]
async fn a_stderr_nobody_reads_drops_lines_and_the_server_keeps_serving() {
    let (mut server, flooder) = stalled_and_flooded().await;
    let healthy = server.engine().await;
    let slowest = slowest_calls(&healthy, 50).await;
    assert!(slowest < Duration::from_secs(2), "slowest call {slowest:?}");
    let dropped = iii_stream_client::poll_until(WAIT, || async {
        let n = server.metric("iii_stream_log_lines_dropped_total");
        (n > 0.0).then_some(n)
    })
    .await
    .expect("dropped lines are counted while the sink is stalled");
    assert!(dropped >= 1.0);

    // Once somebody reads again, the writer says how much was lost before going on.
    let mut pipe = server.take_stalled_stderr().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut chunk = [0u8; 65536];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&chunk[..n]));
            if text.contains("log lines dropped") {
                break;
            }
        }
        text
    });
    let nudge = async {
        loop {
            flooder.send_raw(register("nudge"));
            tokio::time::sleep(Duration::from_millis(50)).await;
            if reader.is_finished() {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, nudge)
        .await
        .expect("the drain report appears");
    let text = reader.join().unwrap();
    let report = text
        .lines()
        .find(|l| l.contains("log lines dropped"))
        .unwrap();
    let lost: usize = report
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap();
    assert!(lost > 0, "{report}");
}

#[tokio::test]
async fn sigterm_with_a_stalled_stderr_exits_within_the_shutdown_timeout() {
    let (mut server, _flooder) = stalled_and_flooded().await;
    let started = Instant::now();
    server.signal("TERM").unwrap();
    let status = server
        .wait(Duration::from_secs(5))
        .expect("exits within shutdown_timeout_ms (3 s) and a flush bound");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn peer_chosen_strings_are_escaped_and_cut() {
    let server = start_server!();
    let engine = server.engine().await;
    let forged =
        "evil\n2026-12-02T00:00:00.000000Z  INFO iii_stream_server: admin logged in\u{1b}[2J";
    engine.send_raw(register(forged));
    // Logged with `%` (Display) and inside a message: raw before the formatter escaped them.
    engine.register_function(&format!("engine::{forged}"));
    engine.send_raw(json!({"type":"registerfunction","id":"ns::f","namespace":forged}).to_string());
    // A huge function id, logged when a second connection is refused it.
    let huge = "f".repeat(1 << 20);
    engine.register_function(&huge);
    engine.barrier().await.unwrap();
    let other = server.engine().await;
    other.register_function(&huge);
    other.barrier().await.unwrap();
    let log = iii_stream_client::poll_until(WAIT, || async {
        let log = server.log_text();
        let all = [
            "worker registered",
            "owned by another live connection",
            "namespaces are not",
            "built-in",
        ];
        all.iter().all(|l| log.contains(l)).then_some(log)
    })
    .await
    .expect("both lines are logged");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-02T00:00:00")),
        "a forged line made it into the log:\n{log}"
    );
    let escaped =
        "evil\\n2026-12-02T00:00:00.000000Z  INFO iii_stream_server: admin logged in\\u{1b}[2J";
    assert!(
        log.matches(escaped).count() >= 3,
        "the name, the id and the namespace appear escaped:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw escape reached the log");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 8192, "a {longest}-byte log line");
    assert!(log.contains("more bytes]"), "the cut is marked");
}
