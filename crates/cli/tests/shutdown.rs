//! Graceful shutdown (improvements.md l): on SIGTERM the server stops accepting, says goodbye to
//! subscribers with 1001 after their leave handlers are called, closes workers, and exits 0
//! within `shutdown_timeout_ms` + 1 s.

use futures_util::StreamExt;
use iii_stream_client::{Answer, WAIT, Worker, start_server};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn sigterm_closes_everyone_in_order_and_exits_zero() {
    let mut server = start_server!("      shutdown_timeout_ms: 3000");
    let leaves = Worker::start(
        &server.engine_url(),
        |_| Answer::Nothing,
        &["t::left"],
        &[(
            "l-1",
            "stream:leave",
            "t::left",
            json!({"stream_name": "room"}),
        )],
    )
    .await
    .unwrap();
    let (mut raw_worker, _) = connect_async(server.engine_url()).await.unwrap();
    let mut subscriber = server.subscriber().await;
    subscriber.join("s-1", "room", "g", None);
    assert_eq!(subscriber.frame(WAIT).await["event"]["type"], "sync");

    let started = Instant::now();
    server.signal("TERM").unwrap();

    assert_eq!(subscriber.close_code(WAIT).await, Some(1001));
    let mut worker_close = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, raw_worker.next()).await {
        if let Message::Close(frame) = message {
            worker_close = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(
        worker_close,
        Some(1001),
        "workers are told the server is going away"
    );
    let status = server
        .wait(Duration::from_secs(4))
        .expect("exited within the deadline + 1 s");
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.log_text()
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    let calls = leaves.wait_calls("t::left", 1, WAIT).await;
    assert_eq!(calls[0].function_id, "t::left");
    assert_eq!(calls[0].data["subscription_id"], "s-1");
    assert_eq!(calls[0].data["stream_name"], "room");
}
