//! Turns the file's raw shape into the [`Config`] the server runs with: applies defaults, picks
//! the entries iii-stream serves, enforces the rules that span several entries or values, and
//! explains everything it ignores in `Config::warnings`.

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::file::{
    EntryConfig, RawAdapter, RawAdapterConfig, RawDocument, RawEntry, RawManager, RawStoreMethod,
    RawStream,
};
use crate::model::{
    AdapterConfig, Config, DEFAULT_KV_FILE_PATH, DEFAULT_REDIS_CONNECT_TIMEOUT_MS,
    DEFAULT_REDIS_URL, EngineConfig, History, Keepalive, Limits, StoreMethod, StreamConfig,
    Timeouts, Triggers,
};

pub(crate) fn resolve(document: RawDocument, file: &str) -> Result<Config, ConfigError> {
    let invalid = |key: String, message: String| ConfigError::Invalid {
        file: file.to_owned(),
        key,
        message,
    };
    let mut warnings = Vec::new();
    if document.registration_namespace_grace_ms.is_some() {
        warnings.push(
            "`registration_namespace_grace_ms` is accepted for compatibility and ignored"
                .to_owned(),
        );
    }

    let labelled = |list: Option<Vec<RawEntry>>, key: &'static str| {
        list.unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(move |(index, entry)| (format!("{key}[{index}]"), entry))
    };
    let entries =
        labelled(document.workers, "workers").chain(labelled(document.modules, "modules"));

    let mut stream: Option<(String, StreamConfig)> = None;
    let mut engine = Vec::new();
    let mut manager_entries = 0usize;
    for (label, entry) in entries {
        let label = format!("{label} `{}`", entry.name);
        if entry.has_image {
            warnings.push(format!(
                "{label}: `image` is ignored; iii-stream does not run containers"
            ));
        }
        for key in &entry.unknown_keys {
            warnings.push(format!("{label}: unknown key `{key}` ignored"));
        }
        match entry.config {
            EntryConfig::Stream(raw) => {
                if let Some((first, _)) = &stream {
                    return Err(invalid(
                        label,
                        format!(
                            "a second `iii-stream` entry (the first is {first}); at most one is allowed"
                        ),
                    ));
                }
                let config = stream_config(*raw, &label, &mut warnings)
                    .map_err(|(key, message)| invalid(format!("{label}: config.{key}"), message))?;
                stream = Some((label, config));
            }
            EntryConfig::Manager(raw) => {
                manager_entries += 1;
                match engine_config(*raw, &label, &mut warnings) {
                    Ok(Some(listener)) => engine.push((label, listener)),
                    Ok(None) => {}
                    Err(message) => return Err(invalid(format!("{label}: config"), message)),
                }
            }
            EntryConfig::Other => warnings.push(format!(
                "{label}: entry is not served by iii-stream and is ignored"
            )),
        }
    }

    if manager_entries == 0 {
        engine.push((
            "the default engine listener".to_owned(),
            EngineConfig::default(),
        ));
    } else if engine.is_empty() {
        return Err(invalid(
            "iii-worker-manager".to_owned(),
            "no engine listener can be opened: every `iii-worker-manager` entry contains `rbac`, \
             which iii-stream does not enforce; remove `rbac` from an entry to serve it"
                .to_owned(),
        ));
    }
    let (stream_label, stream) = stream.unwrap_or_else(|| {
        (
            "the default `iii-stream` service".to_owned(),
            StreamConfig::default(),
        )
    });

    // Catch listeners that could never bind together before the server starts any of them.
    let mut listeners: Vec<(&str, &str, u16)> = engine
        .iter()
        .map(|(label, listener)| (label.as_str(), listener.host.as_str(), listener.port))
        .collect();
    listeners.push((&stream_label, &stream.host, stream.port));
    for (index, (label, host, port)) in listeners.iter().enumerate() {
        if *port == 0 {
            continue;
        }
        if let Some((earlier, _, _)) = listeners[..index]
            .iter()
            .find(|(_, other_host, other_port)| other_host == host && other_port == port)
        {
            return Err(invalid(
                (*label).to_owned(),
                format!("listens on {host}:{port}, which {earlier} already uses"),
            ));
        }
    }

    Ok(Config {
        engine: engine.into_iter().map(|(_, listener)| listener).collect(),
        stream,
        warnings,
    })
}

/// `None` when the entry must not be served.
fn engine_config(
    raw: RawManager,
    label: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<EngineConfig>, String> {
    for key in &raw.unknown_keys {
        warnings.push(format!("{label}: unknown key `config.{key}` ignored"));
    }
    if raw.has_middleware {
        warnings.push(format!(
            "{label}: `middleware_function_id` is not supported and is ignored"
        ));
    }
    if raw.has_rbac {
        // Serving the port without its access rules would widen access, so it stays closed.
        warnings.push(format!(
            "{label}: contains `rbac`, which iii-stream does not enforce; this engine listener is not opened"
        ));
        return Ok(None);
    }
    let defaults = EngineConfig::default();
    let config = EngineConfig {
        host: raw.host.unwrap_or(defaults.host),
        port: raw.port.unwrap_or(defaults.port),
        handshake_timeout_ms: raw
            .handshake_timeout_ms
            .unwrap_or(defaults.handshake_timeout_ms),
        max_message_bytes: raw.max_message_bytes.unwrap_or(defaults.max_message_bytes),
        invocation_timeout_ms: raw
            .invocation_timeout_ms
            .unwrap_or(defaults.invocation_timeout_ms),
        max_in_flight_calls: raw
            .max_in_flight_calls
            .unwrap_or(defaults.max_in_flight_calls),
        max_connections: raw.max_connections.unwrap_or(defaults.max_connections),
        outbound_queue_frames: raw
            .outbound_queue_frames
            .unwrap_or(defaults.outbound_queue_frames),
        outbound_queue_bytes: raw
            .outbound_queue_bytes
            .unwrap_or(defaults.outbound_queue_bytes),
        ping_interval_ms: raw.ping_interval_ms.unwrap_or(defaults.ping_interval_ms),
        idle_timeout_ms: raw.idle_timeout_ms.unwrap_or(defaults.idle_timeout_ms),
        max_calls_per_second: raw.max_calls_per_second.or(defaults.max_calls_per_second),
    };
    if config.idle_timeout_ms <= config.ping_interval_ms {
        return Err(format!(
            "idle_timeout_ms ({}) must be greater than ping_interval_ms ({}), or quiet but healthy \
             workers would be closed before they are pinged",
            config.idle_timeout_ms, config.ping_interval_ms
        ));
    }
    Ok(Some(config))
}

/// Errors are `(key path inside config, message)`.
fn stream_config(
    raw: RawStream,
    label: &str,
    warnings: &mut Vec<String>,
) -> Result<StreamConfig, (String, String)> {
    let defaults = StreamConfig::default();
    let auth_function = match raw.auth_function {
        Some(Some(function)) if !function.is_empty() => Some(function),
        // Empty is how `${AUTH_FN:}` switches authentication off; say so, since it is a security
        // decision that should never pass unnoticed.
        Some(_) => {
            warnings.push(format!(
                "{label}: `auth_function` is empty; subscriber connections are not authenticated"
            ));
            None
        }
        None => None,
    };
    let adapter = match raw.adapter {
        Some(adapter) => adapter_config(adapter, label, warnings),
        None => defaults.adapter,
    };

    let timeouts = match raw.timeouts {
        Some(t) => {
            let d = defaults.timeouts;
            Timeouts {
                auth_ms: t.auth_ms.map_or(d.auth_ms, |v| v.0),
                join_ms: t.join_ms.map_or(d.join_ms, |v| v.0),
                leave_ms: t.leave_ms.map_or(d.leave_ms, |v| v.0),
                condition_ms: t.condition_ms.map_or(d.condition_ms, |v| v.0),
                trigger_ms: t.trigger_ms.map_or(d.trigger_ms, |v| v.0),
                provider_ms: t.provider_ms.map_or(d.provider_ms, |v| v.0),
            }
        }
        None => defaults.timeouts,
    };
    let limits = match raw.limits {
        Some(l) => {
            let d = defaults.limits;
            Limits {
                max_connections: l.max_connections.map_or(d.max_connections, |v| v.0),
                max_subscriptions_per_connection: l
                    .max_subscriptions_per_connection
                    .map_or(d.max_subscriptions_per_connection, |v| v.0),
                max_message_bytes: l.max_message_bytes.map_or(d.max_message_bytes, |v| v.0),
                outbound_queue_frames: l
                    .outbound_queue_frames
                    .map_or(d.outbound_queue_frames, |v| v.0),
                outbound_queue_bytes: l
                    .outbound_queue_bytes
                    .map_or(d.outbound_queue_bytes, |v| v.0),
                write_timeout_ms: l.write_timeout_ms.map_or(d.write_timeout_ms, |v| v.0),
                joins_per_second: l.joins_per_second.map_or(d.joins_per_second, |v| v.0),
                join_burst: l.join_burst.map_or(d.join_burst, |v| v.0),
                max_groups_per_stream: l
                    .max_groups_per_stream
                    .map(|v| v.0)
                    .or(d.max_groups_per_stream),
            }
        }
        None => defaults.limits,
    };
    let history = match raw.history {
        Some(h) => {
            let d = defaults.history;
            History {
                max_events: h.max_events.unwrap_or(d.max_events),
                max_age_ms: h.max_age_ms.map_or(d.max_age_ms, |v| v.0),
                max_total_bytes: h.max_total_bytes.unwrap_or(d.max_total_bytes),
                max_idle_groups: h.max_idle_groups.unwrap_or(d.max_idle_groups),
            }
        }
        None => defaults.history,
    };
    let triggers = match raw.triggers {
        Some(t) => {
            let d = defaults.triggers;
            Triggers {
                max_concurrency: t.max_concurrency.map_or(d.max_concurrency, |v| v.0),
                max_pending_per_trigger: t
                    .max_pending_per_trigger
                    .map_or(d.max_pending_per_trigger, |v| v.0),
            }
        }
        None => defaults.triggers,
    };
    let keepalive = match raw.keepalive {
        Some(k) => {
            let d = defaults.keepalive;
            Keepalive {
                ping_interval_ms: k.ping_interval_ms.map_or(d.ping_interval_ms, |v| v.0),
                idle_timeout_ms: k.idle_timeout_ms.map_or(d.idle_timeout_ms, |v| v.0),
            }
        }
        None => defaults.keepalive,
    };
    if keepalive.idle_timeout_ms <= keepalive.ping_interval_ms {
        return Err((
            "keepalive".to_owned(),
            format!(
                "idle_timeout_ms ({}) must be greater than ping_interval_ms ({}), or quiet but \
                 healthy subscribers would be closed before they are pinged",
                keepalive.idle_timeout_ms, keepalive.ping_interval_ms
            ),
        ));
    }

    Ok(StreamConfig {
        host: raw.host.map_or(defaults.host, |s| s.0),
        port: raw.port.unwrap_or(defaults.port),
        auth_function,
        fail_closed: raw.fail_closed.unwrap_or(defaults.fail_closed),
        adapter,
        timeouts,
        limits,
        history,
        triggers,
        keepalive,
        metrics: raw.metrics.unwrap_or(defaults.metrics),
        shutdown_timeout_ms: raw
            .shutdown_timeout_ms
            .map_or(defaults.shutdown_timeout_ms, |v| v.0),
    })
}

fn adapter_config(raw: RawAdapter, label: &str, warnings: &mut Vec<String>) -> AdapterConfig {
    match raw.config {
        RawAdapterConfig::Kv {
            store_method,
            file_path,
            compat_keys,
            unknown_keys,
        } => {
            for key in compat_keys {
                warnings.push(format!(
                    "{label}: `adapter.config.{key}` is accepted for compatibility and ignored: \
                     every write is durable before it is acknowledged"
                ));
            }
            push_unknown(warnings, label, "kv", &unknown_keys);
            let store_method = match store_method.unwrap_or(RawStoreMethod::FileBased) {
                RawStoreMethod::FileBased => StoreMethod::FileBased,
                RawStoreMethod::InMemory => {
                    warnings.push(format!(
                        "{label}: kv `store_method: in_memory` keeps stream data in memory only; \
                         it is lost when the server stops"
                    ));
                    StoreMethod::InMemory
                }
            };
            AdapterConfig::Kv {
                store_method,
                file_path: PathBuf::from(file_path.as_deref().unwrap_or(DEFAULT_KV_FILE_PATH)),
            }
        }
        RawAdapterConfig::Redis {
            redis_url,
            connect_timeout_ms,
            unknown_keys,
        } => {
            push_unknown(warnings, label, "redis", &unknown_keys);
            AdapterConfig::Redis {
                redis_url: redis_url.unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
                connect_timeout_ms: connect_timeout_ms.unwrap_or(DEFAULT_REDIS_CONNECT_TIMEOUT_MS),
            }
        }
    }
}

fn push_unknown(warnings: &mut Vec<String>, label: &str, adapter: &str, keys: &[String]) {
    for key in keys {
        warnings.push(format!(
            "{label}: unknown key `adapter.config.{key}` for the {adapter} adapter ignored"
        ));
    }
}
