//! Resume after reconnect (issue 6, improvements.md c): a join with `since` replays exactly the
//! missed frames or falls back to a full sync; a randomized run checks that clients which drop
//! off and resume at random always converge and never see a gap without a sync.

use iii_stream_client::{EngineClient, ServerProcess, SubscriberClient, http_get};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn server(extra: &str) -> ServerProcess {
    let config =
        format!("      adapter: {{ name: kv, config: {{ store_method: in_memory }} }}\n{extra}");
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_iii-stream")), &config).unwrap()
}

async fn set(worker: &EngineClient, group: &str, item: &str, data: Value) {
    worker
        .call(
            "stream::set",
            json!({"stream_name": "chat", "group_id": group, "item_id": item, "data": data}),
        )
        .await
        .unwrap();
}

async fn send(worker: &EngineClient, group: &str, data: Value) {
    worker
        .call(
            "stream::send",
            json!({"stream_name": "chat", "group_id": group, "type": "typing", "data": data}),
        )
        .await
        .unwrap();
}

fn join_since(client: &SubscriberClient, id: &str, group: &str, item: Option<&str>, since: &Value) {
    client.send_raw(
        json!({"type": "join", "data": {"subscriptionId": id, "streamName": "chat", "groupId": group, "id": item, "since": since}})
            .to_string(),
    );
}

/// Joins, reads the sync and returns `{epoch, seq}` of it.
async fn sync_position(
    client: &mut SubscriberClient,
    id: &str,
    group: &str,
    item: Option<&str>,
) -> Value {
    client.join(id, "chat", group, item);
    let sync = client.next_frame(WAIT).await.expect("a sync");
    assert_eq!(sync["event"]["type"], "sync");
    json!({"epoch": sync["epoch"], "seq": sync["seq"]})
}

fn kinds(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["seq"],
                f["event"]["type"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

async fn frames(client: &mut SubscriberClient, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(client.next_frame(WAIT).await.expect("a frame"));
    }
    out
}

#[tokio::test]
async fn missed_writes_and_sends_are_replayed_with_their_original_stamps() {
    let server = server("");
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    set(&worker, "r1", "a", json!({"id": "a"})).await;
    let mut first = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    let since = sync_position(&mut first, "s1", "r1", None).await;
    drop(first);

    // The live copies recorded by another subscriber are the reference for the replay.
    let mut witness = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    sync_position(&mut witness, "w", "r1", None).await;
    for i in 0..5 {
        set(
            &worker,
            "r1",
            &format!("m{i}"),
            json!({"id": format!("m{i}")}),
        )
        .await;
    }
    send(&worker, "r1", json!({"user": "u1"})).await;
    let live = frames(&mut witness, 6).await;

    let mut back = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    join_since(&back, "s2", "r1", None, &since);
    let replayed = frames(&mut back, 6).await;
    assert!(
        back.next_frame(QUIET).await.is_none(),
        "no sync after a replay"
    );
    assert_eq!(
        kinds(&replayed),
        [
            "2:create", "3:create", "4:create", "5:create", "6:create", "7:event"
        ]
    );
    for (r, l) in replayed.iter().zip(&live) {
        let strip = |f: &Value| {
            let mut f = f.clone();
            f.as_object_mut().unwrap().remove("subscriptionId");
            f
        };
        assert_eq!(
            strip(r),
            strip(l),
            "a replayed frame differs from the live one"
        );
        assert_eq!(r["subscriptionId"], "s2");
    }
    set(&worker, "r1", "z", json!({"id": "z"})).await;
    assert_eq!(back.next_frame(WAIT).await.unwrap()["seq"], 8);

    let (_, metrics) = http_get(server.stream_port, "/metrics").unwrap();
    assert!(
        metrics.contains("iii_stream_resumes_total{outcome=\"replayed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("iii_stream_history_bytes "));
}

#[tokio::test]
async fn since_at_the_current_seq_replays_nothing_and_goes_live() {
    let server = server("");
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    set(&worker, "r2", "a", json!({"id": "a"})).await;
    let mut client = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    let since = sync_position(&mut client, "s1", "r2", None).await;
    client.leave("s1");
    join_since(&client, "s2", "r2", None, &since);
    assert!(
        client.next_frame(QUIET).await.is_none(),
        "nothing to replay, no sync"
    );
    set(&worker, "r2", "b", json!({"id": "b"})).await;
    let next = client.next_frame(WAIT).await.unwrap();
    assert_eq!(
        (next["seq"].as_u64(), next["subscriptionId"].as_str()),
        (Some(2), Some("s2"))
    );
}

#[tokio::test]
async fn wrong_epoch_short_history_and_malformed_since_get_a_full_sync() {
    let server = server("      history: { max_events: 3 }");
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    set(&worker, "r3", "a", json!({"id": "a"})).await;
    let mut first = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    let since = sync_position(&mut first, "s0", "r3", None).await;
    drop(first);
    for i in 0..5 {
        set(&worker, "r3", &format!("m{i}"), json!({"id": i})).await;
    }
    let mut client = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    for (id, since) in [
        ("too-old", since.clone()),
        (
            "wrong-epoch",
            json!({"epoch": "0000000000000000", "seq": 1}),
        ),
        ("malformed", json!({"epoch": 5, "seq": "x"})),
        ("ahead", json!({"epoch": since["epoch"], "seq": 99})),
    ] {
        join_since(&client, id, "r3", None, &since);
        let frame = client.next_frame(WAIT).await.unwrap();
        assert_eq!(frame["event"]["type"], "sync", "{id}");
        assert_eq!(frame["seq"], 6, "{id}");
        assert_eq!(
            frame["event"]["data"].as_array().map(Vec::len),
            Some(6),
            "{id}"
        );
    }
}

#[tokio::test]
async fn an_item_subscription_resumes_with_its_own_frames_only() {
    let server = server("");
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    set(&worker, "r4", "a", json!({"id": "a", "v": 0})).await;
    let mut client = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    let since = sync_position(&mut client, "i1", "r4", Some("a")).await;
    drop(client);
    for v in 1..=3 {
        set(&worker, "r4", "a", json!({"id": "a", "v": v})).await;
        set(&worker, "r4", "b", json!({"id": "b", "v": v})).await;
    }
    send(&worker, "r4", json!("no id: group subscriptions only")).await;
    let mut back = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    join_since(&back, "i2", "r4", Some("a"), &since);
    let replayed = frames(&mut back, 3).await;
    assert_eq!(kinds(&replayed), ["2:update", "4:update", "6:update"]);
    assert!(replayed.iter().all(|f| f["id"] == "a"));
    assert!(back.next_frame(QUIET).await.is_none());
}

#[tokio::test]
async fn stream_urls_resume_with_query_parameters() {
    let server = server("");
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    set(&worker, "r5", "a", json!({"id": "a"})).await;
    let url = format!("ws://127.0.0.1:{}/stream/chat/r5", server.stream_port);
    let mut client = SubscriberClient::connect(&url).await.unwrap();
    let sync = client.next_frame(WAIT).await.unwrap();
    drop(client);
    set(&worker, "r5", "b", json!({"id": "b"})).await;
    let epoch = sync["epoch"].as_str().unwrap();
    let resume = format!(
        "{url}?token=t&since_epoch={epoch}&since_seq={}",
        sync["seq"]
    );
    let mut back = SubscriberClient::connect(&resume).await.unwrap();
    let frame = back.next_frame(WAIT).await.unwrap();
    assert_eq!(
        (frame["seq"].as_u64(), frame["event"]["type"].as_str()),
        (Some(2), Some("create"))
    );
}

#[tokio::test]
async fn a_restarted_in_memory_server_answers_an_old_since_with_a_new_epoch() {
    let mut server = server("");
    let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
    set(&worker, "r6", "a", json!({"id": "a"})).await;
    let mut client = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    let since = sync_position(&mut client, "s1", "r6", None).await;
    drop((client, worker));
    server.restart().unwrap();
    let mut back = SubscriberClient::connect(&server.stream_url())
        .await
        .unwrap();
    join_since(&back, "s2", "r6", None, &since);
    let frame = back.next_frame(WAIT).await.unwrap();
    assert_eq!(frame["event"], json!({"type": "sync", "data": []}));
    assert_ne!(frame["epoch"], since["epoch"]);
}

/// One client's view: the state rebuilt from its sync and frames, and its resume position.
#[derive(Default)]
struct View {
    items: HashMap<String, Value>,
    position: Option<(String, u64)>,
}

impl View {
    /// Applies one frame; panics on a gap in `seq` that no sync explains.
    fn apply(&mut self, frame: &Value) {
        let epoch = frame["epoch"].as_str().unwrap().to_owned();
        let seq = frame["seq"].as_u64().unwrap();
        let event = &frame["event"];
        if event["type"] == "sync" {
            self.items = event["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
                .collect();
        } else {
            let (last_epoch, last_seq) = self.position.clone().expect("a frame before any sync");
            assert_eq!(epoch, last_epoch, "epoch changed without a sync");
            assert_eq!(seq, last_seq + 1, "gap in seq without a sync: {frame}");
            let id = frame["id"].as_str().map(str::to_owned);
            match event["type"].as_str().unwrap() {
                "create" | "update" => {
                    self.items.insert(id.unwrap(), event["data"].clone());
                }
                "delete" => {
                    self.items.remove(&id.unwrap());
                }
                _ => {}
            }
        }
        self.position = Some((epoch, seq));
    }
}

#[tokio::test]
async fn clients_that_drop_and_resume_at_random_converge() {
    let seconds: u64 = std::env::var("III_RESUME_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let server = server("      history: { max_events: 64 }");
    let groups = ["g0", "g1", "g2"];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let worker = EngineClient::connect(&server.engine_url()).await.unwrap();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut n = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let group = ["g0", "g1", "g2"][(n >> 33) as usize % 3];
                let id = format!("i{}", (n >> 40) % 8);
                let item = json!({"stream_name": "chat", "group_id": group, "item_id": id});
                let mut data = item.clone();
                let result = match (n >> 50) % 4 {
                    0 => {
                        data["data"] = json!({"id": id, "w": w, "n": n % 1000});
                        worker.call("stream::set", data).await
                    }
                    1 => {
                        data["ops"] = json!([{"type": "set", "path": "id", "value": id}, {"type": "increment", "path": "c", "by": 1}]);
                        worker.call("stream::update", data).await
                    }
                    2 => worker.call("stream::delete", item).await,
                    _ => {
                        let send = json!({"stream_name": "chat", "group_id": group, "type": "t", "data": n % 7});
                        worker.call("stream::send", send).await
                    }
                };
                result.unwrap();
            }
        }));
    }

    // Clients run until the writers have finished, then drain what is left.
    let settled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..20usize {
        let url = server.stream_url();
        let settled = settled.clone();
        clients.push(tokio::spawn(async move {
            let group = ["g0", "g1", "g2"][c % 3];
            let mut view = View::default();
            let mut rng = c as u64 + 1;
            let (mut resumed, mut synced) = (0, 0);
            for round in 0.. {
                let done = settled.load(std::sync::atomic::Ordering::SeqCst);
                let mut client = SubscriberClient::connect(&url).await.unwrap();
                let id = format!("c{c}-{round}");
                match &view.position {
                    Some((epoch, seq)) => {
                        join_since(
                            &client,
                            &id,
                            group,
                            None,
                            &json!({"epoch": epoch, "seq": seq}),
                        );
                    }
                    None => client.join(&id, "chat", group, None),
                }
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                let until =
                    tokio::time::Instant::now() + Duration::from_millis(50 + (rng >> 33) % 300);
                let mut first = true;
                loop {
                    let wait = if done {
                        QUIET
                    } else {
                        until.saturating_duration_since(tokio::time::Instant::now())
                    };
                    let Some(frame) = client.next_frame(wait).await else {
                        break;
                    };
                    if first && round > 0 {
                        if frame["event"]["type"] == "sync" {
                            synced += 1;
                        } else {
                            resumed += 1;
                        }
                    }
                    first = false;
                    view.apply(&frame);
                }
                if done {
                    break;
                }
                drop(client);
                // Offline for a while: short absences resume, long ones outlive the history.
                tokio::time::sleep(Duration::from_millis((rng >> 40) % 150)).await;
            }
            (group, view.items, resumed, synced)
        }));
    }

    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    settled.store(true, std::sync::atomic::Ordering::SeqCst);
    let checker = EngineClient::connect(&server.engine_url()).await.unwrap();
    let mut expected = HashMap::new();
    for group in groups {
        let list = checker
            .call(
                "stream::list",
                json!({"stream_name": "chat", "group_id": group}),
            )
            .await
            .unwrap()
            .unwrap();
        let items: HashMap<String, Value> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
            .collect();
        expected.insert(group, items);
    }
    let (mut resumed, mut synced) = (0, 0);
    for client in clients {
        let (group, items, r, s) = client.await.unwrap();
        assert_eq!(
            items, expected[group],
            "a client of {group} did not converge"
        );
        resumed += r;
        synced += s;
    }
    assert!(resumed > 0, "no rejoin was ever served by a replay");
    assert!(synced > 0, "no rejoin ever needed a full sync");
    eprintln!("convergence: {resumed} rejoins replayed, {synced} rejoins resynced");
}
