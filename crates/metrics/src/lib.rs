//! Prometheus metrics shared by every iii-stream layer (improvements.md l).
//!
//! One process-wide set: every layer counts into it and the stream port renders it at
//! `GET /metrics`. Labels never carry stream, group or item names, so cardinality stays bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    pub function: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerCallLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

/// A bound a peer ran into (the `limit` label of `iii_stream_limit_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `limits.joins_per_second` / `join_burst`: a join refused with `rate_limited`.
    JoinsPerSecond,
    /// `limits.max_subscriptions_per_connection`: a join refused with `subscription_limit`.
    SubscriptionsPerConnection,
    /// `limits.max_groups_per_stream`: a write or join that would create one group too many.
    GroupsPerStream,
    /// A `join` message on a socket opened at a `/stream/...` path.
    PathBound,
    /// `limits.max_connections`: a subscriber handshake answered 503.
    SubscriberConnections,
    /// More unhandled messages than a subscriber connection may queue (closed with 1008).
    SubscriberInbox,
    /// `iii-worker-manager` `max_connections`: a worker handshake answered 503.
    WorkerConnections,
    /// `max_calls_per_second`: a call answered `rate_limited`.
    CallsPerSecond,
    /// `max_in_flight_calls` reached: the server stopped reading the socket until a call ended.
    InFlightCalls,
    /// A worker that does not read what it is sent (closed with 1013).
    WorkerOutbound,
}

impl Limit {
    pub const ALL: [Self; 10] = [
        Self::JoinsPerSecond,
        Self::SubscriptionsPerConnection,
        Self::GroupsPerStream,
        Self::PathBound,
        Self::SubscriberConnections,
        Self::SubscriberInbox,
        Self::WorkerConnections,
        Self::CallsPerSecond,
        Self::InFlightCalls,
        Self::WorkerOutbound,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::JoinsPerSecond => "joins_per_second",
            Self::SubscriptionsPerConnection => "subscriptions_per_connection",
            Self::GroupsPerStream => "groups_per_stream",
            Self::PathBound => "path_bound",
            Self::SubscriberConnections => "subscriber_connections",
            Self::SubscriberInbox => "subscriber_inbox",
            Self::WorkerConnections => "worker_connections",
            Self::CallsPerSecond => "calls_per_second",
            Self::InFlightCalls => "in_flight_calls",
            Self::WorkerOutbound => "worker_outbound",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: &'static str,
}

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    pub subscriber_connections: Gauge,
    pub subscriptions: Gauge,
    pub worker_connections: Gauge,
    pub function_calls: Family<FunctionLabels, Counter>,
    pub events: Family<TypeLabel, Counter>,
    pub frames_sent: Family<KindLabel, Counter>,
    pub event_serializations: Counter,
    pub slow_consumer_disconnects: Counter,
    pub handshakes: Family<OutcomeLabel, Counter>,
    pub joins: Family<OutcomeLabel, Counter>,
    pub resumes: Family<OutcomeLabel, Counter>,
    pub server_calls: Family<ServerCallLabels, Counter>,
    pub store_commit_seconds: Histogram,
    pub store_fsyncs: Counter,
    pub history_bytes: Gauge,
    pub redis_reconnects: Counter,
    pub registrations_refused: Counter,
    pub foreign_results: Counter,
    pub log_lines_dropped: Counter,
    pub limit_refusals: Family<LimitLabel, Counter>,
    /// Groups whose state is in memory (kv store) and channels the fan-out keeps.
    pub groups: Gauge,
    pub channels: Gauge,
    pub pending_invocations: Gauge,
    /// The `frames_sent` series by kind, resolved once: counted for every delivered frame, where
    /// a label lookup (hash and lock) per frame showed in fan-out profiles.
    frame_counters: [(&'static str, Counter); 4],
}

impl Metrics {
    fn new() -> Self {
        let m = Self {
            registry: Registry::default(),
            subscriber_connections: Gauge::default(),
            subscriptions: Gauge::default(),
            worker_connections: Gauge::default(),
            function_calls: Family::default(),
            events: Family::default(),
            frames_sent: Family::default(),
            event_serializations: Counter::default(),
            slow_consumer_disconnects: Counter::default(),
            handshakes: Family::default(),
            joins: Family::default(),
            resumes: Family::default(),
            server_calls: Family::default(),
            store_commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 18)),
            store_fsyncs: Counter::default(),
            history_bytes: Gauge::default(),
            redis_reconnects: Counter::default(),
            registrations_refused: Counter::default(),
            foreign_results: Counter::default(),
            log_lines_dropped: Counter::default(),
            limit_refusals: Family::default(),
            groups: Gauge::default(),
            channels: Gauge::default(),
            pending_invocations: Gauge::default(),
            frame_counters: Default::default(),
        };
        let mut m = m.register().with_known_series();
        m.frame_counters = ["event", "replay", "sync", "unauthorized"].map(|kind| {
            (
                kind,
                m.frames_sent.get_or_create(&KindLabel { kind }).clone(),
            )
        });
        m
    }

    /// Creates every series whose labels are known up front, so a scrape shows them at zero
    /// instead of omitting them until first use.
    fn with_known_series(self) -> Self {
        for outcome in ["ok", "error"] {
            for function in [
                "stream::set",
                "stream::get",
                "stream::delete",
                "stream::update",
                "stream::send",
                "stream::list",
                "stream::list_groups",
                "stream::list_all",
            ] {
                drop(
                    self.function_calls
                        .get_or_create(&FunctionLabels { function, outcome }),
                );
            }
        }
        for r#type in ["create", "update", "delete", "event"] {
            drop(self.events.get_or_create(&TypeLabel { r#type }));
        }
        for kind in ["sync", "event", "replay", "unauthorized"] {
            drop(self.frames_sent.get_or_create(&KindLabel { kind }));
        }
        for outcome in ["upgraded", "unauthorized", "over_limit", "bad_request"] {
            drop(self.handshakes.get_or_create(&OutcomeLabel { outcome }));
        }
        for outcome in ["admitted", "rejected"] {
            drop(self.joins.get_or_create(&OutcomeLabel { outcome }));
        }
        for outcome in ["replayed", "resynced"] {
            drop(self.resumes.get_or_create(&OutcomeLabel { outcome }));
        }
        for limit in Limit::ALL {
            drop(self.limit_refusals.get_or_create(&LimitLabel {
                limit: limit.as_str(),
            }));
        }
        for kind in ["auth", "join", "leave", "condition", "trigger", "provider"] {
            for outcome in ["ok", "error", "timeout", "dropped"] {
                drop(
                    self.server_calls
                        .get_or_create(&ServerCallLabels { kind, outcome }),
                );
            }
        }
        self
    }

    fn register(mut self) -> Self {
        // Counters get their `_total` suffix from the encoder.
        let r = &mut self.registry;
        r.register(
            "iii_stream_subscriber_connections",
            "Open subscriber connections",
            self.subscriber_connections.clone(),
        );
        r.register(
            "iii_stream_subscriptions",
            "Active subscriptions",
            self.subscriptions.clone(),
        );
        r.register(
            "iii_stream_worker_connections",
            "Open worker connections",
            self.worker_connections.clone(),
        );
        r.register(
            "iii_stream_function_calls",
            "Built-in function calls",
            self.function_calls.clone(),
        );
        r.register("iii_stream_events", "Events committed", self.events.clone());
        r.register(
            "iii_stream_frames_sent",
            "Frames queued to subscribers",
            self.frames_sent.clone(),
        );
        r.register(
            "iii_stream_event_serializations",
            "Event bodies serialised",
            self.event_serializations.clone(),
        );
        r.register(
            "iii_stream_slow_consumer_disconnects",
            "Subscriber connections closed for overflowing their queue",
            self.slow_consumer_disconnects.clone(),
        );
        r.register(
            "iii_stream_handshakes",
            "Subscriber handshakes",
            self.handshakes.clone(),
        );
        r.register("iii_stream_joins", "Join requests", self.joins.clone());
        r.register(
            "iii_stream_resumes",
            "Joins with since",
            self.resumes.clone(),
        );
        r.register(
            "iii_stream_server_calls",
            "Calls the server made into workers",
            self.server_calls.clone(),
        );
        r.register(
            "iii_stream_store_commit_seconds",
            "Duration of durable store commits",
            self.store_commit_seconds.clone(),
        );
        r.register(
            "iii_stream_store_fsyncs",
            "Durable store commits (each one fsync)",
            self.store_fsyncs.clone(),
        );
        r.register(
            "iii_stream_history_bytes",
            "Bytes of frames retained for resume",
            self.history_bytes.clone(),
        );
        r.register(
            "iii_stream_redis_reconnects",
            "Redis pub/sub reconnections",
            self.redis_reconnects.clone(),
        );
        r.register(
            "iii_stream_registrations_refused",
            "Function registrations refused because another live connection owns the id",
            self.registrations_refused.clone(),
        );
        r.register(
            "iii_stream_foreign_results",
            "Invocation results ignored because they came from a connection the call was not sent to",
            self.foreign_results.clone(),
        );
        r.register(
            "iii_stream_log_lines_dropped",
            "Log lines dropped because the log sink did not keep up",
            self.log_lines_dropped.clone(),
        );
        r.register(
            "iii_stream_limit_refusals",
            "Requests refused, throttled or closed because a peer ran into a bound",
            self.limit_refusals.clone(),
        );
        r.register(
            "iii_stream_groups",
            "Groups whose state is held in memory (kv store)",
            self.groups.clone(),
        );
        r.register(
            "iii_stream_channels",
            "Groups the fan-out keeps subscribers or resume history for",
            self.channels.clone(),
        );
        r.register(
            "iii_stream_pending_invocations",
            "Calls into workers waiting for their answer",
            self.pending_invocations.clone(),
        );
        self
    }

    /// Counts one request a bound refused (or throttled, or closed).
    pub fn limit_refused(&self, limit: Limit) {
        self.limit_refusals
            .get_or_create(&LimitLabel {
                limit: limit.as_str(),
            })
            .inc();
    }

    /// Counts one call of a built-in function.
    pub fn function_call(&self, function: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.function_calls
            .get_or_create(&FunctionLabels { function, outcome })
            .inc();
    }

    /// Counts one call the server made into a worker.
    pub fn server_call(&self, kind: &'static str, outcome: &'static str) {
        self.server_calls
            .get_or_create(&ServerCallLabels { kind, outcome })
            .inc();
    }

    pub fn frame_sent(&self, kind: &'static str) {
        match self.frame_counters.iter().find(|(k, _)| *k == kind) {
            Some((_, counter)) => counter.inc(),
            None => self.frames_sent.get_or_create(&KindLabel { kind }).inc(),
        };
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_every_metric() {
        let m = metrics();
        m.function_call("stream::set", true);
        m.server_call("trigger", "timeout");
        m.events
            .get_or_create(&TypeLabel { r#type: "create" })
            .inc();
        let text = m.render();
        for name in [
            "iii_stream_subscriber_connections",
            "iii_stream_function_calls_total{function=\"stream::set\",outcome=\"ok\"}",
            "iii_stream_server_calls_total{kind=\"trigger\",outcome=\"timeout\"}",
            "iii_stream_events_total{type=\"create\"}",
            "iii_stream_store_commit_seconds_bucket",
            "iii_stream_redis_reconnects_total",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
