use super::*;
use serde_json::{Value, json};
use tokio::time::timeout;
use uuid::Uuid;

struct Worker {
    conn: WorkerConnection,
    outbox: Arc<WorkerOutbox>,
    received: std::collections::VecDeque<Outbound>,
}

impl Worker {
    fn new(engine: &Engine) -> Self {
        let (conn, outbox) = engine.connect(&ConnectionLimits::default());
        let mut w = Self {
            conn,
            outbox,
            received: Default::default(),
        };
        let first = w.try_next().expect("workerregistered");
        assert_eq!(first["type"], "workerregistered");
        assert!(first.get("features").is_none());
        w
    }

    async fn send(&self, v: Value) {
        self.conn.handle_message(&v.to_string()).await;
    }

    fn parse(message: Outbound) -> Value {
        match message {
            Outbound::Text(t) => serde_json::from_str(&t).unwrap(),
            Outbound::Close => json!({"type": "<close>"}),
        }
    }

    fn try_next(&mut self) -> Option<Value> {
        if self.received.is_empty() {
            self.received.extend(self.outbox.take());
            self.outbox.written();
        }
        self.received.pop_front().map(Self::parse)
    }

    async fn next(&mut self) -> Value {
        if let Some(v) = self.try_next() {
            return v;
        }
        let mut batch = Default::default();
        match timeout(Duration::from_secs(2), self.outbox.drain_into(&mut batch)).await {
            Ok(Ok(())) => {
                self.outbox.written();
                self.received.extend(batch);
                self.try_next().unwrap()
            }
            other => panic!("no message: {other:?}"),
        }
    }
}

#[tokio::test]
async fn unknown_function_sync_gets_function_not_found_and_void_gets_nothing() {
    let engine = Engine::new(EngineConfig::default());
    let mut w = Worker::new(&engine);
    w.send(json!({"type":"invokefunction","invocation_id":"i1","function_id":"audit::log","data":{"x":1}})).await;
    let reply = w.next().await;
    assert_eq!(reply["invocation_id"], "i1");
    assert_eq!(reply["function_id"], "audit::log");
    assert_eq!(reply["error"]["code"], "function_not_found");
    assert_eq!(reply["error"]["message"], "Function 'audit::log' not found");
    w.send(json!({"type":"invokefunction","function_id":"audit::log","action":{"type":"void"},"invocation_id":"i2"})).await;
    w.send(json!({"type":"invokefunction","invocation_id":"i3","function_id":"x","action":{"type":"enqueue","queue":"q"}})).await;
    let reply = w.next().await;
    assert_eq!(reply["invocation_id"], "i3");
    assert_eq!(reply["error"]["code"], "enqueue_error");
    assert!(w.try_next().is_none());
}

#[tokio::test]
async fn workers_register_answers_success_and_builtins_are_protected() {
    let engine = Engine::new(EngineConfig::default());
    let mut w = Worker::new(&engine);
    w.send(json!({"type":"invokefunction","invocation_id":"i","function_id":WORKERS_REGISTER,"data":{"runtime":"node","isolation":null}})).await;
    assert_eq!(w.next().await["result"], json!({"success": true}));
    w.send(json!({"type":"registerfunction","id":"engine::functions::list"}))
        .await;
    assert!(!engine.has_worker_function("engine::functions::list"));
}

#[tokio::test]
async fn calls_are_relayed_with_results_and_errors_unchanged() {
    let engine = Engine::new(EngineConfig::default());
    let mut callee = Worker::new(&engine);
    let mut caller = Worker::new(&engine);
    callee
        .send(json!({"type":"registerfunction","id":"math::add"}))
        .await;
    caller.send(json!({"type":"invokefunction","invocation_id":"c1","function_id":"math::add","data":{"a":1},"metadata":{"m":2},"traceparent":"00-x"})).await;
    let call = callee.next().await;
    assert_eq!(call["type"], "invokefunction");
    assert_eq!(call["data"], json!({"a":1}));
    assert_eq!(call["metadata"], json!({"m":2}));
    assert_eq!(call["traceparent"], "00-x");
    let server_id = call["invocation_id"].as_str().unwrap();
    assert!(Uuid::parse_str(server_id).is_ok());
    callee
        .send(
            json!({"type":"invocationresult","invocation_id":server_id,"function_id":"math::add"}),
        )
        .await;
    let reply = caller.next().await;
    assert_eq!(reply["invocation_id"], "c1");
    assert!(
        reply.get("result").is_none(),
        "no result stays no result: {reply}"
    );

    caller
        .send(json!({"type":"invokefunction","invocation_id":"c2","function_id":"math::add"}))
        .await;
    let call = callee.next().await;
    assert_eq!(call["data"], Value::Null);
    callee.send(json!({"type":"invocationresult","invocation_id":call["invocation_id"],"error":{"code":"invocation_failed","message":"boom"}})).await;
    let reply = caller.next().await;
    assert_eq!(
        reply["error"],
        json!({"code":"invocation_failed","message":"boom"})
    );
}

#[tokio::test]
async fn callee_disconnect_stops_pending_calls_and_drops_its_functions() {
    let engine = Engine::new(EngineConfig::default());
    let mut callee = Worker::new(&engine);
    let mut caller = Worker::new(&engine);
    callee
        .send(json!({"type":"registerfunction","id":"slow::fn"}))
        .await;
    caller
        .send(json!({"type":"invokefunction","invocation_id":"c1","function_id":"slow::fn"}))
        .await;
    callee.next().await;
    drop(callee);
    let reply = caller.next().await;
    assert_eq!(reply["error"]["code"], "invocation_stopped");
    assert!(!engine.has_worker_function("slow::fn"));
    assert_eq!(engine.pending_invocations(), 0);
}

#[tokio::test]
async fn a_live_owner_keeps_its_function_and_the_next_in_line_takes_over() {
    let engine = Engine::new(EngineConfig::default());
    let mut owner = Worker::new(&engine);
    let mut other = Worker::new(&engine);
    let mut caller = Worker::new(&engine);
    owner
        .send(json!({"type":"registerfunction","id":"f"}))
        .await;
    other
        .send(json!({"type":"registerfunction","id":"f"}))
        .await;
    caller
        .send(json!({"type":"invokefunction","invocation_id":"c1","function_id":"f"}))
        .await;
    assert_eq!(owner.next().await["type"], "invokefunction");
    assert!(
        other.try_next().is_none(),
        "the refused connection got the call"
    );
    // Withdrawing a place in line leaves the owner alone.
    other
        .send(json!({"type":"unregisterfunction","id":"f"}))
        .await;
    other
        .send(json!({"type":"registerfunction","id":"f"}))
        .await;
    drop(owner);
    assert_eq!(caller.next().await["error"]["code"], "invocation_stopped");
    assert!(
        engine.has_worker_function("f"),
        "the waiting connection took over"
    );
    caller
        .send(json!({"type":"invokefunction","invocation_id":"c2","function_id":"f"}))
        .await;
    assert_eq!(other.next().await["type"], "invokefunction");
    drop(other);
    assert!(!engine.has_worker_function("f"));
}

#[tokio::test]
async fn reattach_closes_the_old_connection_so_its_functions_move() {
    let engine = Engine::new(EngineConfig::default());
    let mut old = Worker::new(&engine);
    old.send(json!({"type":"registerfunction","id":"f"})).await;
    let old_id = old.conn.worker_id().to_owned();
    let token = old.conn.handle.token.clone();
    let mut new = Worker::new(&engine);
    new.send(json!({"type":"reattach","previous_worker_id":old_id,"reattach_token":"wrong"}))
        .await;
    new.send(json!({"type":"registerfunction","id":"g"})).await;
    new.send(json!({"type":"reattach","previous_worker_id":old_id,"reattach_token":token}))
        .await;
    assert_eq!(old.next().await["type"], "<close>");
    new.send(json!({"type":"registerfunction","id":"f"})).await;
    let caller = Worker::new(&engine);
    caller
        .send(json!({"type":"invokefunction","invocation_id":"c","function_id":"f"}))
        .await;
    assert_eq!(new.next().await["function_id"], "f");
}

#[tokio::test]
async fn results_count_only_from_the_connection_the_call_went_to() {
    let engine = Engine::new(EngineConfig::default());
    let mut callee = Worker::new(&engine);
    let mut intruder = Worker::new(&engine);
    let mut caller = Worker::new(&engine);
    callee
        .send(json!({"type":"registerfunction","id":"f"}))
        .await;
    caller
        .send(json!({"type":"invokefunction","invocation_id":"c","function_id":"f"}))
        .await;
    let call = callee.next().await;
    let id = call["invocation_id"].clone();
    intruder
        .send(json!({"type":"invocationresult","invocation_id":id,"result":"forged"}))
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(caller.try_next().is_none(), "a forged result was accepted");
    assert_eq!(engine.pending_invocations(), 1);
    callee
        .send(json!({"type":"invocationresult","invocation_id":id,"result":"real"}))
        .await;
    assert_eq!(caller.next().await["result"], "real");
    assert!(intruder.try_next().is_none());
}

#[tokio::test]
async fn dropping_a_call_mid_flight_leaves_nothing_behind() {
    let engine = Engine::new(EngineConfig::default());
    let mut w = Worker::new(&engine);
    w.send(json!({"type":"registerfunction","id":"never"}))
        .await;
    for _ in 0..100 {
        let call = engine.invoke(
            "never",
            RawValue::NULL,
            CallOptions::with_timeout(Duration::from_secs(60)),
        );
        // Polled until it waits for the answer, then dropped (a join abandoned by its socket).
        assert!(timeout(Duration::from_millis(1), call).await.is_err());
    }
    assert_eq!(engine.pending_invocations(), 0);
    assert!(w.conn.handle.take_calls().is_empty());
    let mut sent = 0;
    while w.try_next().is_some() {
        sent += 1;
    }
    assert_eq!(sent, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_twenty_thousand_triggers_comes_and_goes_cheaply() {
    const N: usize = 20_000;
    let engine = Engine::new(EngineConfig::default());
    let rec = Arc::new(Counting::default());
    engine.register_trigger_type("stream", rec.clone());
    async fn register(w: &Worker) {
        for i in 0..N {
            w.send(
                json!({"type":"registertrigger","id":format!("t{i}"),"trigger_type":"stream",
                "function_id":format!("f{i}"),"config":{"stream_name":"s"}}),
            )
            .await;
            w.send(json!({"type":"registerfunction","id":format!("f{i}")}))
                .await;
        }
    }
    let first = Worker::new(&engine);
    let started = std::time::Instant::now();
    register(&first).await;
    let bound = started.elapsed();
    let started = std::time::Instant::now();
    drop(first);
    let dropped = started.elapsed();
    let again = Worker::new(&engine);
    let started = std::time::Instant::now();
    register(&again).await;
    let rebound = started.elapsed();
    // Generous for debug builds on a loaded machine; the quadratic version took seconds here.
    for (what, took) in [("bind", bound), ("drop", dropped), ("re-bind", rebound)] {
        assert!(took < Duration::from_millis(1500), "{what} took {took:?}");
    }
    timeout(Duration::from_secs(10), async {
        while engine.releasing() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(engine.registrations(), (N, N));
    assert_eq!(rec.bound.load(Ordering::SeqCst), N);
    drop(again);
    timeout(Duration::from_secs(10), async {
        while engine.releasing() || engine.registrations() != (0, 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(rec.bound.load(Ordering::SeqCst), 0);
}

#[derive(Default)]
struct Counting {
    bound: std::sync::atomic::AtomicUsize,
}

impl TriggerType for Counting {
    fn bind(&self, _: &Trigger) -> Result<(), String> {
        self.bound.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn unbind(&self, _: &Trigger) {
        self.bound.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Recording(parking_lot::Mutex<Vec<String>>);

impl TriggerType for Recording {
    fn bind(&self, trigger: &Trigger) -> Result<(), String> {
        if trigger
            .config
            .get("stream_name")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err("needs stream_name".into());
        }
        self.0.lock().push(format!("bind {}", trigger.id));
        Ok(())
    }
    fn unbind(&self, trigger: &Trigger) {
        self.0.lock().push(format!("unbind {}", trigger.id));
    }
}

#[tokio::test]
async fn trigger_registration_refusals_and_replacement() {
    let engine = Engine::new(EngineConfig::default());
    let rec = Arc::new(Recording::default());
    engine.register_trigger_type("stream", rec.clone());
    let mut w = Worker::new(&engine);
    w.send(json!({"type":"registertrigger","id":"t1","trigger_type":"stream","function_id":"f","config":{"stream_name":"a"}})).await;
    w.send(json!({"type":"registertrigger","id":"t1","trigger_type":"stream","function_id":"f","config":{"stream_name":"b"}})).await;
    assert!(w.try_next().is_none(), "success is never acknowledged");
    w.send(json!({"type":"registertrigger","id":"t1","trigger_type":"stream","function_id":"f","config":{}})).await;
    let refusal = w.next().await;
    assert_eq!(refusal["type"], "triggerregistrationresult");
    assert_eq!(refusal["id"], "t1");
    assert_eq!(refusal["function_id"], "f");
    assert_eq!(refusal["error"]["code"], "trigger_registration_failed");
    w.send(json!({"type":"registertrigger","id":"t2","trigger_type":"cron","function_id":"f"}))
        .await;
    let refusal = w.next().await;
    assert_eq!(refusal["error"]["code"], "trigger_type_not_found");
    assert_eq!(refusal["trigger_type"], "cron");
    assert_eq!(
        *rec.0.lock(),
        ["bind t1", "unbind t1", "bind t1", "unbind t1"]
    );
}

#[tokio::test]
async fn shutdown_refuses_new_sync_calls() {
    let engine = Engine::new(EngineConfig::default());
    let mut w = Worker::new(&engine);
    engine.begin_shutdown();
    w.send(json!({"type":"invokefunction","invocation_id":"i","function_id":"x"}))
        .await;
    assert_eq!(w.next().await["error"]["code"], "server_shutting_down");
}

#[tokio::test]
async fn server_invocations_time_out_and_ignore_late_results() {
    let engine = Engine::new(EngineConfig::default());
    let mut w = Worker::new(&engine);
    w.send(json!({"type":"registerfunction","id":"never"}))
        .await;
    let options = CallOptions::with_timeout(Duration::from_millis(50));
    let outcome = engine.invoke("never", RawValue::NULL, options).await;
    assert_eq!(outcome.unwrap_err().code, "invocation_timeout");
    let call = w.next().await;
    w.send(json!({"type":"invocationresult","invocation_id":call["invocation_id"],"result":1}))
        .await;
    assert_eq!(engine.pending_invocations(), 0);
}

fn limited(engine: &Engine, limits: ConnectionLimits) -> Worker {
    let (conn, outbox) = engine.connect(&limits);
    let mut w = Worker {
        conn,
        outbox,
        received: Default::default(),
    };
    assert_eq!(w.try_next().unwrap()["type"], "workerregistered");
    w
}

#[tokio::test]
async fn a_connection_at_its_in_flight_bound_waits_before_taking_another_call() {
    let engine = Engine::new(EngineConfig::default());
    let mut callee = Worker::new(&engine);
    callee
        .send(json!({"type":"registerfunction","id":"slow"}))
        .await;
    let limits = ConnectionLimits {
        max_in_flight_calls: 2,
        ..ConnectionLimits::default()
    };
    let caller = limited(&engine, limits);
    let call = |id: &str| json!({"type":"invokefunction","invocation_id":id,"function_id":"slow"});
    caller.send(call("c1")).await;
    caller.send(call("c2")).await;
    // The third waits for a permit: the transport would stop reading the socket here.
    let text = call("c3").to_string();
    let third = caller.conn.handle_message(&text);
    tokio::pin!(third);
    assert!(
        timeout(Duration::from_millis(50), &mut third)
            .await
            .is_err()
    );
    let first = callee.next().await;
    callee.next().await;
    callee
        .send(json!({"type":"invocationresult","invocation_id":first["invocation_id"],"result":1}))
        .await;
    timeout(Duration::from_secs(1), third)
        .await
        .expect("a permit came back");
    assert_eq!(callee.next().await["type"], "invokefunction");
}

#[tokio::test]
async fn a_worker_that_does_not_read_is_closed_and_its_callers_told() {
    let engine = Engine::new(EngineConfig::default());
    let limits = ConnectionLimits {
        outbound_queue_frames: 10,
        ..ConnectionLimits::default()
    };
    let callee = limited(&engine, limits);
    callee
        .send(json!({"type":"registerfunction","id":"f"}))
        .await;
    let mut caller = Worker::new(&engine);
    for i in 0..20 {
        caller
            .send(
                json!({"type":"invokefunction","invocation_id":format!("c{i}"),"function_id":"f"}),
            )
            .await;
    }
    // The callee never drained its queue: it overflowed, and the transport ends the connection.
    assert_eq!(callee.outbox.closed(), Some(outbox::Closed::Overflow));
    drop(callee);
    let mut stopped = 0;
    while let Ok(reply) = timeout(Duration::from_millis(500), caller.next()).await {
        if reply["error"]["code"] == "invocation_stopped" {
            stopped += 1;
        }
        if stopped == 20 {
            break;
        }
    }
    assert_eq!(stopped, 20, "every caller learns its call stopped");
    assert_eq!(engine.pending_invocations(), 0);
}

#[tokio::test]
async fn calls_beyond_the_rate_are_answered_rate_limited() {
    let engine = Engine::new(EngineConfig::default());
    let limits = ConnectionLimits {
        max_calls_per_second: Some(5),
        ..ConnectionLimits::default()
    };
    let mut w = limited(&engine, limits);
    for i in 0..8 {
        w.send(json!({"type":"invokefunction","invocation_id":format!("c{i}"),"function_id":"missing"})).await;
    }
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(w.next().await["error"]["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        codes.iter().filter(|c| *c == "function_not_found").count(),
        5
    );
    assert_eq!(codes.iter().filter(|c| *c == "rate_limited").count(), 3);
}
