//! Durability of the default `file_based` kv store, driven through the real binary the way an
//! operator meets it (improvements.md i): `kill -9` crash trials, SIGTERM during writes, the
//! directory lock, damaged files, restarts that keep data and order, and a store path that is
//! not a directory.
//!
//! `III_CRASH_TRIALS` sets the number of crash trials (default 20); `III_CRASH_SEED` replays a
//! run (the seed is printed). `scripts/crash-trials.sh` runs many trials in release mode.

use iii_stream_client::{CallError, EngineClient, ServerProcess};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The store lives in the server's own temporary directory and survives its restarts.
const FILE_STORE: &str =
    "      adapter: { name: kv, config: { store_method: file_based, file_path: ./store } }";
const STREAM: &str = "crash";
/// Names that a careless key encoding would mix up.
const GROUPS: [&str; 3] = ["room", "room:1", "röom 1/\u{0}"];
const ITEMS_PER_GROUP: usize = 16;
const WRITERS: usize = 32;
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_iii-stream"))
}

fn file_store(path: &Path) -> String {
    format!(
        "      adapter: {{ name: kv, config: {{ store_method: file_based, file_path: {:?} }} }}",
        path.display().to_string()
    )
}

/// xorshift64*: enough randomness for choosing ops, reproducible from a printed seed.
struct Rng(u64);

impl Rng {
    fn from_env() -> Self {
        let seed = std::env::var("III_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        println!("III_CRASH_SEED={seed}");
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Set,
    Update,
    Delete,
}

/// One write as the client saw it. Times are tickets of one shared counter: a write whose
/// `sent` is greater than another's `acked` was sent after that one was acknowledged, so the
/// server applied it later.
#[derive(Debug)]
struct Write {
    item: usize,
    kind: Kind,
    tag: String,
    sent: u64,
    outcome: Outcome,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Acked(u64),
    /// Sent, no answer: it may or may not have been applied.
    Unknown,
    /// Answered with an error: it must not have been applied.
    Refused,
}

fn item_key(item: usize) -> (&'static str, String) {
    (
        GROUPS[item / ITEMS_PER_GROUP],
        format!("item:{}", item % ITEMS_PER_GROUP),
    )
}

/// The value a set or update of `item` tagged `tag` leaves: every write replaces both fields,
/// so the result never depends on what was there before.
fn value_of(item: usize, tag: &str) -> Value {
    json!({"id": item_key(item).1, "v": tag})
}

/// What a worker connection does until the connection ends (or, with `stop_on_refusal`, until
/// the server refuses a call).
async fn writer(
    url: String,
    id: usize,
    seed: u64,
    clock: Arc<AtomicU64>,
    stop_on_refusal: bool,
) -> Result<Vec<Write>, String> {
    let client = EngineClient::connect(&url)
        .await
        .map_err(|e| format!("writer {id} cannot connect: {e}"))?;
    let mut rng = Rng(seed | 1);
    let mut writes = Vec::new();
    for n in 0.. {
        let item = rng.below((GROUPS.len() * ITEMS_PER_GROUP) as u64) as usize;
        let kind = match rng.below(10) {
            0..5 => Kind::Set,
            5..8 => Kind::Update,
            _ => Kind::Delete,
        };
        let tag = format!("w{id}-{n}");
        let (group, key) = item_key(item);
        let base = json!({"stream_name": STREAM, "group_id": group, "item_id": key});
        let (function, data) = match kind {
            Kind::Set => {
                let mut data = base;
                data["data"] = value_of(item, &tag);
                ("stream::set", data)
            }
            Kind::Update => {
                let mut data = base;
                data["ops"] = json!([
                    {"type": "set", "path": "id", "value": key},
                    {"type": "set", "path": "v", "value": tag},
                ]);
                ("stream::update", data)
            }
            Kind::Delete => ("stream::delete", base),
        };
        let sent = clock.fetch_add(1, Ordering::SeqCst);
        let answer = tokio::time::timeout(CALL_TIMEOUT, client.call(function, data)).await;
        let outcome = match answer {
            Ok(Ok(_)) => Outcome::Acked(clock.fetch_add(1, Ordering::SeqCst)),
            Ok(Err(CallError::Closed)) => Outcome::Unknown,
            Ok(Err(CallError::Remote { .. })) if stop_on_refusal => Outcome::Refused,
            Ok(Err(e)) => return Err(format!("writer {id}: {function} failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "writer {id}: {function} unanswered for {CALL_TIMEOUT:?}"
                ));
            }
        };
        let done = !matches!(outcome, Outcome::Acked(_));
        writes.push(Write {
            item,
            kind,
            tag,
            sent,
            outcome,
        });
        if done {
            break;
        }
    }
    Ok(writes)
}

/// Runs `WRITERS` writers against `server` until `interrupt` has ended their connections.
async fn write_until(
    server: &mut ServerProcess,
    rng: &mut Rng,
    stop_on_refusal: bool,
    interrupt: impl FnOnce(&mut ServerProcess),
    after: Duration,
) -> Vec<Write> {
    let clock = Arc::new(AtomicU64::new(1));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                server.engine_url(),
                id,
                rng.next(),
                clock.clone(),
                stop_on_refusal,
            ))
        })
        .collect();
    tokio::time::sleep(after).await;
    interrupt(server);
    let mut writes = Vec::new();
    for w in writers {
        match w.await {
            Ok(Ok(mut ws)) => writes.append(&mut ws),
            Ok(Err(e)) => panic!("{e}\n{}", server.log_text()),
            Err(e) => panic!("writer task: {e}"),
        }
    }
    writes
}

type State = Vec<Option<Value>>;

/// Checks that every item holds what the writes allow: the result of a write that no
/// acknowledged write provably followed (an acknowledged one, or one unanswered at the end), or
/// its state before the trial when no write to it was acknowledged. Returns the state read.
async fn verify(server: &ServerProcess, before: &State, writes: &[Write]) -> Result<State, String> {
    let client = EngineClient::connect(&server.engine_url())
        .await
        .map_err(|e| format!("cannot connect after restart: {e}"))?;
    let mut by_item: HashMap<usize, Vec<&Write>> = HashMap::new();
    for w in writes {
        by_item.entry(w.item).or_default().push(w);
    }
    let mut state = State::new();
    for (item, was) in before.iter().enumerate() {
        let (group, key) = item_key(item);
        let got = client
            .call(
                "stream::get",
                json!({"stream_name": STREAM, "group_id": group, "item_id": key}),
            )
            .await
            .map_err(|e| format!("get {group:?}/{key}: {e}"))?;
        let ws = by_item.get(&item).map_or(&[][..], Vec::as_slice);
        let last_ack = ws
            .iter()
            .filter_map(|w| match w.outcome {
                Outcome::Acked(_) => Some(w.sent),
                _ => None,
            })
            .max();
        let mut allowed: Vec<Option<Value>> = Vec::new();
        if last_ack.is_none() {
            allowed.push(was.clone());
        }
        for w in ws {
            let finished = match w.outcome {
                Outcome::Acked(at) => at,
                Outcome::Unknown => u64::MAX,
                Outcome::Refused => continue,
            };
            // A write acknowledged before another acknowledged write was sent cannot be last.
            if last_ack.is_some_and(|sent| sent > finished) {
                continue;
            }
            allowed.push(match w.kind {
                Kind::Delete => None,
                Kind::Set | Kind::Update => Some(value_of(item, &w.tag)),
            });
        }
        if !allowed.contains(&got) {
            let history: Vec<String> = ws
                .iter()
                .map(|w| format!("{:?} {} sent@{} {:?}", w.kind, w.tag, w.sent, w.outcome))
                .collect();
            return Err(format!(
                "{group:?}/{key} holds {got:?}; allowed {allowed:?}; before {was:?}; writes:\n  {}",
                history.join("\n  ")
            ));
        }
        state.push(got);
    }
    // The listings hold exactly the items read, nothing that was never written.
    for (g, group) in GROUPS.iter().enumerate() {
        let listed = client
            .call(
                "stream::list",
                json!({"stream_name": STREAM, "group_id": group}),
            )
            .await
            .map_err(|e| format!("list {group:?}: {e}"))?;
        let mut listed: Vec<Value> = listed
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        let mut expected: Vec<Value> = state[g * ITEMS_PER_GROUP..(g + 1) * ITEMS_PER_GROUP]
            .iter()
            .flatten()
            .cloned()
            .collect();
        let text = |v: &Value| v.to_string();
        listed.sort_by_key(text);
        expected.sort_by_key(text);
        if listed != expected {
            return Err(format!(
                "list {group:?} = {listed:?}, items read {expected:?}"
            ));
        }
    }
    Ok(state)
}

fn trials() -> usize {
    std::env::var("III_CRASH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_trials_keep_every_acknowledged_write() {
    let trials = trials();
    let mut rng = Rng::from_env();
    let mut server = ServerProcess::start(binary(), FILE_STORE).unwrap();
    let mut state: State = vec![None; GROUPS.len() * ITEMS_PER_GROUP];
    let (mut acked, mut unknown) = (0, 0);
    let started = Instant::now();
    for trial in 0..trials {
        let after = Duration::from_millis(50 + rng.below(451));
        let writes = write_until(&mut server, &mut rng, false, ServerProcess::kill, after).await;
        let n_acked = writes
            .iter()
            .filter(|w| matches!(w.outcome, Outcome::Acked(_)))
            .count();
        acked += n_acked;
        unknown += writes.len() - n_acked;
        if let Err(e) = server.restart() {
            panic!("trial {trial}: the store did not reopen after kill -9: {e}");
        }
        let log = server.log_text();
        match verify(&server, &state, &writes).await {
            Ok(read) => state = read,
            Err(e) => panic!("trial {trial} (killed after {after:?}): {e}\n{log}"),
        }
        println!(
            "trial {trial}: killed after {after:?}, {n_acked} acknowledged, {} unanswered",
            writes.len() - n_acked
        );
    }
    println!(
        "crash trials: {trials} passed, 0 failed; {acked} acknowledged writes verified, \
         {unknown} unanswered at the kill; {:.1?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_writes_exits_0_and_keeps_acknowledged_writes() {
    let mut rng = Rng::from_env();
    let mut server = ServerProcess::start(binary(), FILE_STORE).unwrap();
    let term = |server: &mut ServerProcess| server.signal("TERM").unwrap();
    let writes = write_until(
        &mut server,
        &mut rng,
        true,
        term,
        Duration::from_millis(400),
    )
    .await;
    let status = server.wait(Duration::from_secs(20));
    let log = server.log_text();
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "exit status {status:?}\n{log}"
    );
    let acked = writes
        .iter()
        .filter(|w| matches!(w.outcome, Outcome::Acked(_)))
        .count();
    assert!(acked > 0, "no write was acknowledged before SIGTERM\n{log}");
    server.restart().unwrap();
    let before = vec![None; GROUPS.len() * ITEMS_PER_GROUP];
    if let Err(e) = verify(&server, &before, &writes).await {
        panic!("{e}\n{log}");
    }
}

fn start_err(config: &str) -> String {
    match ServerProcess::start(binary(), config) {
        Ok(_) => panic!("the server started with {config}"),
        Err(e) => e.to_string(),
    }
}

async fn call(client: &EngineClient, function: &str, data: Value) -> Option<Value> {
    client.call(function, data).await.unwrap()
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_fails_with_the_lock_error() {
    let server = ServerProcess::start(binary(), FILE_STORE).unwrap();
    let client = EngineClient::connect(&server.engine_url()).await.unwrap();
    let item = json!({"stream_name": "s", "group_id": "g", "item_id": "a"});
    let mut data = item.clone();
    data["data"] = json!(1);
    call(&client, "stream::set", data).await;
    let dir = server.dir().join("store");
    let error = start_err(&file_store(&dir));
    assert!(
        error.contains(&format!(
            "store directory {} is locked by another process",
            dir.display()
        )),
        "{error}"
    );
    assert_eq!(server.healthz(), Some(200));
    assert_eq!(call(&client, "stream::get", item).await, Some(json!(1)));
}

#[tokio::test]
async fn overwritten_bytes_in_the_store_file_stop_the_restart() {
    let mut server = ServerProcess::start(binary(), FILE_STORE).unwrap();
    let client = EngineClient::connect(&server.engine_url()).await.unwrap();
    let marker = "DAMAGE-ME-7c2e";
    for i in 0..40 {
        let data = json!({"stream_name": "s", "group_id": format!("g{}", i % 4),
            "item_id": i.to_string(), "data": {"m": format!("{marker}{i:03}")}});
        call(&client, "stream::set", data).await;
    }
    server.signal("TERM").unwrap();
    let status = server.wait(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let file: PathBuf = server.dir().join("store/store.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let mut hits = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..]
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
    {
        let start = at + found;
        bytes[start..start + marker.len()].fill(b'#');
        at = start + marker.len();
        hits += 1;
    }
    assert!(hits >= 40, "the marker was found {hits} times");
    std::fs::write(&file, &bytes).unwrap();
    let error = match server.restart() {
        Ok(()) => panic!("the server started on a damaged store"),
        Err(e) => e.to_string(),
    };
    // The relative path of the configuration, as the operator wrote it.
    assert!(
        error.contains("store/store.redb is corrupt")
            && error.contains("exited with exit status: 1"),
        "{error}"
    );
}

#[tokio::test]
async fn a_restart_keeps_items_listing_order_and_emptied_groups_gone() {
    let mut server = ServerProcess::start(binary(), FILE_STORE).unwrap();
    let client = EngineClient::connect(&server.engine_url()).await.unwrap();
    let group = "chat:1/\u{0}é";
    let set = |item: &str, v: i64| json!({"stream_name": "s", "group_id": group, "item_id": item, "data": {"id": item, "v": v}});
    let key = |item: &str| json!({"stream_name": "s", "group_id": group, "item_id": item});
    for (item, v) in [("a", 1), ("b", 2), ("c", 3), ("a", 4)] {
        call(&client, "stream::set", set(item, v)).await;
    }
    call(&client, "stream::delete", key("b")).await;
    call(&client, "stream::set", set("b", 5)).await;
    let ops = json!([{"type": "increment", "path": "v", "by": 10}]);
    let mut update = key("c");
    update["ops"] = ops;
    call(&client, "stream::update", update).await;
    let emptied = json!({"stream_name": "s", "group_id": "emptied", "item_id": "x", "data": 0});
    call(&client, "stream::set", emptied.clone()).await;
    call(
        &client,
        "stream::delete",
        json!({"stream_name": "s", "group_id": "emptied", "item_id": "x"}),
    )
    .await;
    let expected = json!([{"id": "a", "v": 4}, {"id": "c", "v": 13}, {"id": "b", "v": 5}]);
    let list = json!({"stream_name": "s", "group_id": group});

    // Once after a crash, once after a clean stop.
    for stop in ["KILL", "TERM"] {
        server.signal(stop).unwrap();
        assert!(server.wait(Duration::from_secs(20)).is_some());
        server.restart().unwrap();
        let client = EngineClient::connect(&server.engine_url()).await.unwrap();
        assert_eq!(
            call(&client, "stream::list", list.clone()).await,
            Some(expected.clone()),
            "after SIG{stop}"
        );
        let groups = call(&client, "stream::list_groups", json!({"stream_name": "s"})).await;
        assert_eq!(groups, Some(json!([group])), "after SIG{stop}");
        assert_eq!(
            call(&client, "stream::get", key("b")).await,
            Some(json!({"id": "b", "v": 5}))
        );
    }
}

#[tokio::test]
async fn a_store_path_that_is_a_regular_file_stops_startup() {
    let file = std::env::temp_dir().join(format!("iii-stream-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    let error = start_err(&file_store(&file));
    let kept = std::fs::read(&file);
    let _ = std::fs::remove_file(&file);
    assert!(
        error.contains(&format!(
            "store path {} exists and is not a directory",
            file.display()
        )),
        "{error}"
    );
    assert_eq!(kept.unwrap(), b"x");
}
