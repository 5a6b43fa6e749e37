//! What each target does with one input. Every target must return normally for every input:
//! decoders answer errors, never panic; the stateful targets run real engine connections and
//! subscriber sessions against an in-memory stream service.

use iii_stream_engine::outbox::Outbox;
use iii_stream_engine::{ConnectionLimits, Engine, EngineConfig, WorkerConnection, WorkerOutbox};
use iii_stream_protocol::url::{StreamPath, parse_stream_path, since_from_query};
use iii_stream_service::fanout::Outbox as SubscriberOutbox;
use iii_stream_service::{Session, StreamService};
use serde_json::Value;
use std::sync::Arc;

/// A `/stream/...` path with its query string.
pub fn stream_url(input: &str) {
    let (path, query) = match input.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (input, None),
    };
    if let Ok(parsed) = parse_stream_path(path) {
        assert!(!parsed.stream.is_empty() && !parsed.group.is_empty());
        assert!(parsed.item.as_deref().is_none_or(|i| !i.is_empty()));
    }
    let _ = since_from_query(query);
}

/// A `stream::update` op list applied to a stored value, both as text.
pub fn update(ops: &str, value: &str) {
    let Ok(ops) = serde_json::from_str::<Vec<iii_stream_domain::update::UpdateOp>>(ops) else {
        return;
    };
    let current = serde_json::from_str::<Value>(value).ok();
    let applied = iii_stream_domain::update::apply_ops(current.clone(), &ops);
    // Applying is a function of its inputs.
    let again = iii_stream_domain::update::apply_ops(current, &ops);
    assert_eq!(applied.value, again.value);
}

/// Configuration text, with a few variables set.
pub fn config(text: &str) {
    let env = |name: &str| match name {
        "PORT" => Some("4000".to_owned()),
        "EMPTY" => Some(String::new()),
        "NESTED" => Some("${PORT}".to_owned()),
        _ => None,
    };
    if let Ok(config) = iii_stream_config::parse(text, "fuzz.yaml", &env) {
        assert!(!config.engine.is_empty());
        assert!(config.stream.keepalive.idle_timeout_ms > config.stream.keepalive.ping_interval_ms);
    }
    let _ = iii_stream_config::interpolate(text, &env);
}

/// An in-memory stream service on an engine, with two worker connections and a subscriber
/// session, driven one message at a time.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    _service: Arc<StreamService>,
    workers: Vec<(WorkerConnection, Arc<WorkerOutbox>)>,
    sessions: Vec<(Session, Arc<SubscriberOutbox>)>,
}

/// Short timeouts: a join gated by a handler that never answers must not stall the run.
const CONFIG: &str = "workers:
  - name: iii-stream
    config:
      adapter: { name: kv, config: { store_method: in_memory } }
      timeouts: { auth_ms: 1, join_ms: 1, leave_ms: 1, condition_ms: 1, trigger_ms: 1, provider_ms: 1 }
      limits: { max_subscriptions_per_connection: 64, joins_per_second: 1000000, join_burst: 1000000 }
      history: { max_events: 16, max_age_ms: 1000 }
";

impl Server {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let config = iii_stream_config::parse(CONFIG, "fuzz.yaml", &|_| None).expect("config");
        let engine = Engine::new(EngineConfig {
            invocation_timeout: std::time::Duration::from_millis(1),
        });
        let service = runtime
            .block_on(StreamService::open(engine.clone(), config.stream))
            .expect("an in-memory service");
        let limits = ConnectionLimits::default();
        let workers = (0..2).map(|_| engine.connect(&limits)).collect();
        let outbox = |_| Arc::new(Outbox::new(4096, 8 << 20));
        let sessions = vec![
            {
                let o = outbox(0);
                (service.session(None, o.clone(), None), o)
            },
            {
                let o = outbox(1);
                let scope = StreamPath {
                    stream: "s".into(),
                    group: "g".into(),
                    item: None,
                };
                (service.session(None, o.clone(), Some(scope)), o)
            },
        ];
        Self {
            runtime,
            _service: service,
            workers,
            sessions,
        }
    }

    /// One engine-port message on worker connection `which`.
    pub fn worker_message(&self, which: usize, text: &str) {
        let (connection, outbox) = &self.workers[which % self.workers.len()];
        self.runtime.block_on(async {
            connection.handle_message(text).await;
            // Let calls that wait (relayed, timed out) make progress.
            tokio::task::yield_now().await;
        });
        drop(outbox.take());
        outbox.written();
    }

    /// One subscriber message on session `which`.
    pub fn subscriber_message(&self, which: usize, text: &str) {
        let (session, outbox) = &self.sessions[which % self.sessions.len()];
        self.runtime.block_on(session.handle_message(text));
        drop(outbox.take());
        outbox.written();
    }
}
