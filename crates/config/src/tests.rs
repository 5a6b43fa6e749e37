//! Tests of `parse` and `load` over whole files: the shape, defaults, warnings and error locations.

use std::path::PathBuf;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn ok(text: &str) -> Config {
    match parse(text, "config.yaml", &no_env) {
        Ok(config) => config,
        Err(error) => panic!("unexpected error: {error}"),
    }
}

fn err(text: &str) -> ConfigError {
    match parse(text, "config.yaml", &no_env) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error,
    }
}

/// `(line, column, message)` of a YAML-level error.
fn yaml_err(text: &str) -> (usize, usize, String) {
    match err(text) {
        ConfigError::Yaml {
            file,
            line: Some(line),
            column: Some(column),
            message,
        } => {
            assert_eq!(file, "config.yaml");
            (line, column, message)
        }
        other => panic!("expected a located YAML error, got {other:?}"),
    }
}

/// `(key, message)` of a cross-entry error.
fn invalid_err(text: &str) -> (String, String) {
    match err(text) {
        ConfigError::Invalid { file, key, message } => {
            assert_eq!(file, "config.yaml");
            (key, message)
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

fn stream_entry(config: &str) -> String {
    let mut text = "workers:\n  - name: iii-stream\n    config:\n".to_owned();
    for line in config.lines() {
        text.push_str("      ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[test]
fn defaults() {
    let config = Config::default();
    assert_eq!(
        config,
        Config {
            engine: vec![EngineConfig {
                host: "0.0.0.0".to_owned(),
                port: 49134,
                handshake_timeout_ms: 10_000,
                max_message_bytes: 67_108_864,
                invocation_timeout_ms: 600_000,
                max_in_flight_calls: 1_024,
                max_connections: 10_000,
                outbound_queue_frames: 16_384,
                outbound_queue_bytes: 268_435_456,
                ping_interval_ms: 30_000,
                idle_timeout_ms: 90_000,
                max_calls_per_second: None,
            }],
            stream: StreamConfig {
                host: "0.0.0.0".to_owned(),
                port: 3112,
                auth_function: None,
                fail_closed: false,
                adapter: AdapterConfig::Kv {
                    store_method: StoreMethod::FileBased,
                    file_path: PathBuf::from("./data/stream_store"),
                },
                timeouts: Timeouts {
                    auth_ms: 10_000,
                    join_ms: 10_000,
                    leave_ms: 10_000,
                    condition_ms: 10_000,
                    trigger_ms: 30_000,
                    provider_ms: 30_000,
                },
                limits: Limits {
                    max_connections: 10_000,
                    max_subscriptions_per_connection: 1_000,
                    max_message_bytes: 1_048_576,
                    outbound_queue_frames: 4_096,
                    outbound_queue_bytes: 8_388_608,
                    write_timeout_ms: 30_000,
                    joins_per_second: 100,
                    join_burst: 1_000,
                    max_groups_per_stream: None,
                },
                history: History {
                    max_events: 1_000,
                    max_age_ms: 300_000,
                    max_total_bytes: 268_435_456,
                    max_idle_groups: 16_384,
                },
                triggers: Triggers {
                    max_concurrency: 256,
                    max_pending_per_trigger: 10_000,
                },
                keepalive: Keepalive {
                    ping_interval_ms: 30_000,
                    idle_timeout_ms: 90_000,
                },
                metrics: true,
                shutdown_timeout_ms: 10_000,
            },
            warnings: vec![],
        }
    );
}

#[test]
fn empty_files_mean_defaults() {
    for text in [
        "",
        "# nothing here\n",
        "workers:\n",
        "workers: []\n",
        "---\n",
    ] {
        assert_eq!(ok(text), Config::default(), "for {text:?}");
    }
}

#[test]
fn entries_without_config_use_defaults() {
    let config = ok("workers:\n  - name: iii-stream\n  - name: iii-worker-manager\n    config:\n");
    assert_eq!(config, Config::default());
}

const SAMPLE: &str = "\
workers:
  - name: iii-worker-manager          # engine port (worker-protocol.md §14)
    config:
      port: 49134
  - name: iii-stream                  # this service
    config:
      port: ${STREAM_PORT:3112}
      host: 0.0.0.0
      auth_function: my-app::auth
      adapter:
        name: kv
        config:
          store_method: file_based
          file_path: ./data/stream_store
  - name: iii-state                   # not ours: warning, ignored
    config: {}
";

#[test]
fn spec_sample_file() {
    let config = ok(SAMPLE);
    let expected = Config {
        stream: StreamConfig {
            auth_function: Some("my-app::auth".to_owned()),
            ..StreamConfig::default()
        },
        warnings: vec![
            "workers[2] `iii-state`: entry is not served by iii-stream and is ignored".to_owned(),
        ],
        ..Config::default()
    };
    assert_eq!(config, expected);
}

#[test]
fn stream_port_from_default_and_from_environment() {
    assert_eq!(ok(SAMPLE).stream.port, 3112);
    let env = |name: &str| (name == "STREAM_PORT").then(|| "4000".to_owned());
    let config = parse(SAMPLE, "config.yaml", &env).unwrap();
    assert_eq!(config.stream.port, 4000);
    assert_eq!(config.engine[0].port, 49134);
}

#[test]
fn every_stream_key() {
    let config = ok(&stream_entry(
        "\
host: 127.0.0.1
port: 4001
auth_function: app::auth
fail_closed: true
adapter:
  name: kv
  config:
    store_method: in_memory
    file_path: /var/lib/stream
timeouts: {auth_ms: 1, join_ms: 2, leave_ms: 3, condition_ms: 4, trigger_ms: 5, provider_ms: 6}
limits:
  max_connections: 7
  max_subscriptions_per_connection: 8
  max_message_bytes: 9
  outbound_queue_frames: 10
  outbound_queue_bytes: 11
  write_timeout_ms: 16
  joins_per_second: 17
  join_burst: 18
  max_groups_per_stream: 19
history: {max_events: 0, max_age_ms: 0, max_total_bytes: 0, max_idle_groups: 0}
triggers: {max_concurrency: 12, max_pending_per_trigger: 13}
keepalive: {ping_interval_ms: 14, idle_timeout_ms: 15}
metrics: false
shutdown_timeout_ms: 0
",
    ));
    assert_eq!(
        config.stream,
        StreamConfig {
            host: "127.0.0.1".to_owned(),
            port: 4001,
            auth_function: Some("app::auth".to_owned()),
            fail_closed: true,
            adapter: AdapterConfig::Kv {
                store_method: StoreMethod::InMemory,
                file_path: PathBuf::from("/var/lib/stream"),
            },
            timeouts: Timeouts {
                auth_ms: 1,
                join_ms: 2,
                leave_ms: 3,
                condition_ms: 4,
                trigger_ms: 5,
                provider_ms: 6,
            },
            limits: Limits {
                max_connections: 7,
                max_subscriptions_per_connection: 8,
                max_message_bytes: 9,
                outbound_queue_frames: 10,
                outbound_queue_bytes: 11,
                write_timeout_ms: 16,
                joins_per_second: 17,
                join_burst: 18,
                max_groups_per_stream: Some(19),
            },
            history: History {
                max_events: 0,
                max_age_ms: 0,
                max_total_bytes: 0,
                max_idle_groups: 0,
            },
            triggers: Triggers {
                max_concurrency: 12,
                max_pending_per_trigger: 13,
            },
            keepalive: Keepalive {
                ping_interval_ms: 14,
                idle_timeout_ms: 15,
            },
            metrics: false,
            shutdown_timeout_ms: 0,
        }
    );
    assert_eq!(
        config.warnings,
        vec![
            "workers[0] `iii-stream`: kv `store_method: in_memory` keeps stream data in memory \
             only; it is lost when the server stops"
        ]
    );
    assert_eq!(config.engine, vec![EngineConfig::default()]);
}

#[test]
fn partial_nested_mappings_keep_other_defaults() {
    let config = ok(&stream_entry(
        "timeouts:\n  join_ms: 500\nlimits: {}\nhistory:\n",
    ));
    assert_eq!(
        config.stream.timeouts,
        Timeouts {
            join_ms: 500,
            ..Timeouts::default()
        }
    );
    assert_eq!(config.stream.limits, Limits::default());
    assert_eq!(config.stream.history, History::default());
}

#[test]
fn modules_alias_is_appended_to_workers() {
    let config = ok("\
workers:
  - name: iii-worker-manager
    config: {port: 5000}
modules:
  - name: iii-stream
    config: {port: 5001}
  - name: iii-worker-manager
    config: {port: 5002, host: 127.0.0.1}
");
    assert_eq!(config.stream.port, 5001);
    assert_eq!(
        config.engine,
        vec![
            EngineConfig {
                port: 5000,
                ..EngineConfig::default()
            },
            EngineConfig {
                host: "127.0.0.1".to_owned(),
                port: 5002,
                ..EngineConfig::default()
            },
        ]
    );
    assert_eq!(config.warnings, Vec::<String>::new());

    let only_modules = ok("modules:\n  - name: iii-stream\n    config: {port: 7000}\n");
    assert_eq!(only_modules.stream.port, 7000);
    assert_eq!(only_modules.engine, vec![EngineConfig::default()]);
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let (line, column, message) = yaml_err("workers: []\nmodulez: []\n");
    assert_eq!((line, column), (2, 1));
    assert_eq!(
        message,
        "unknown field `modulez`, expected one of `workers`, `modules`, `registration_namespace_grace_ms`"
    );
    assert_eq!(
        err("workers: []\nmodulez: []\n").to_string(),
        "config.yaml:2:1: unknown field `modulez`, expected one of `workers`, `modules`, \
         `registration_namespace_grace_ms`"
    );
}

#[test]
fn registration_namespace_grace_ms_is_accepted_and_ignored() {
    let config = ok("registration_namespace_grace_ms: 5000\nworkers: []\n");
    assert_eq!(config.engine, Config::default().engine);
    assert_eq!(config.stream, StreamConfig::default());
    assert_eq!(
        config.warnings,
        vec!["`registration_namespace_grace_ms` is accepted for compatibility and ignored"]
    );
}

#[test]
fn two_stream_entries_are_an_error() {
    let text = "\
workers:
  - name: iii-stream
  - name: iii-state
  - name: iii-stream
    config: {port: 1}
";
    let (key, message) = invalid_err(text);
    assert_eq!(key, "workers[2] `iii-stream`");
    assert_eq!(
        message,
        "a second `iii-stream` entry (the first is workers[0] `iii-stream`); at most one is allowed"
    );
    assert_eq!(
        err(text).to_string(),
        "config.yaml: workers[2] `iii-stream`: a second `iii-stream` entry (the first is \
         workers[0] `iii-stream`); at most one is allowed"
    );

    let (key, _) = invalid_err("workers:\n  - name: iii-stream\nmodules:\n  - name: iii-stream\n");
    assert_eq!(key, "modules[0] `iii-stream`");
}

#[test]
fn other_entries_are_warned_about_and_ignored() {
    let config = ok("\
workers:
  - name: iii-stream
    config:
      port: 3200
  - name: iii-worker-manager
    config:
      port: 49200
  - name: iii-state
    config:
      adapter: {name: kv}
  - name: iii-http
    config:
      port: 3111
      cors: [whatever, 1, {x: y}]
  - name: iii-observability
");
    assert_eq!(config.stream.port, 3200);
    assert_eq!(
        config.engine,
        vec![EngineConfig {
            port: 49200,
            ..EngineConfig::default()
        }]
    );
    assert_eq!(
        config.warnings,
        vec![
            "workers[2] `iii-state`: entry is not served by iii-stream and is ignored",
            "workers[3] `iii-http`: entry is not served by iii-stream and is ignored",
            "workers[4] `iii-observability`: entry is not served by iii-stream and is ignored",
        ]
    );
}

#[test]
fn image_and_unknown_entry_keys_are_warned_about() {
    let config = ok("\
workers:
  - name: iii-stream
    image: iiidev/iii:latest
    replicas: 3
");
    assert_eq!(config.stream, StreamConfig::default());
    assert_eq!(
        config.warnings,
        vec![
            "workers[0] `iii-stream`: `image` is ignored; iii-stream does not run containers",
            "workers[0] `iii-stream`: unknown key `replicas` ignored",
        ]
    );
}

#[test]
fn entry_shape_errors() {
    let (line, column, message) = yaml_err("workers:\n  - config: {}\n");
    assert_eq!((line, column), (2, 5));
    assert_eq!(message, "workers[0]: missing field `name`");

    let (line, column, message) = yaml_err("workers:\n  - name: \"\"\n");
    assert_eq!((line, column), (2, 11));
    assert_eq!(message, "workers[0].name: must not be empty");

    let (line, column, message) = yaml_err("workers:\n  - iii-stream\n");
    assert_eq!((line, column), (2, 5));
    assert_eq!(
        message,
        "workers[0]: invalid type: string \"iii-stream\", expected a worker entry mapping with a `name`"
    );

    let (line, _, message) = yaml_err("workers:\n  - name: a\n    name: b\n");
    assert_eq!(line, 2);
    assert_eq!(message, "workers[0]: duplicate key `name`");

    let (line, column, message) = yaml_err("workers:\n  - name: iii-stream\n    config: [1]\n");
    assert_eq!((line, column), (3, 13));
    assert_eq!(
        message,
        "workers[0].config: invalid type: sequence, expected the `iii-stream` config mapping"
    );
}

#[test]
fn config_before_name_is_still_typed() {
    let config = ok("workers:\n  - config: {port: 4100}\n    name: iii-stream\n");
    assert_eq!(config.stream.port, 4100);

    // Without positions from the buffered mapping, the error points at the entry.
    let (line, column, message) =
        yaml_err("workers:\n  - config: {port: 4100, colour: red}\n    name: iii-stream\n");
    assert_eq!((line, column), (2, 5));
    assert_eq!(
        message,
        "workers[0]: config: unknown field `colour`, expected one of `host`, `port`, \
         `auth_function`, `fail_closed`, `adapter`, `timeouts`, `limits`, `history`, `triggers`, \
         `keepalive`, `metrics`, `shutdown_timeout_ms`"
    );

    let config = ok(
        "workers:\n  - config: {port: 4200, rbac: {}}\n    name: iii-worker-manager\n  - name: iii-worker-manager\n",
    );
    assert_eq!(config.engine, vec![EngineConfig::default()]);
}

#[test]
fn unset_variable_error_names_the_variable_and_line() {
    let text = "workers:\n  - name: iii-stream\n    config:\n      auth_function: ${UNSET_VAR}\n";
    match err(text) {
        ConfigError::UnsetVariable {
            file,
            name,
            line,
            column,
        } => {
            assert_eq!(file, "config.yaml");
            assert_eq!(name, "UNSET_VAR");
            assert_eq!((line, column), (4, 22));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(
        err(text).to_string(),
        "config.yaml:4:22: environment variable `UNSET_VAR` is not set and its `${...}` reference \
         has no default"
    );
    // Comments are expanded too, so a reference there must also resolve.
    assert!(matches!(
        err("# ${IN_COMMENT}\nworkers: []\n"),
        ConfigError::UnsetVariable { line: 1, .. }
    ));
}

#[test]
fn empty_default_gives_an_empty_value() {
    let config = ok(&stream_entry(
        "auth_function: ${AUTH_FN:}\nport: ${PORT:}\n",
    ));
    assert_eq!(config.stream.auth_function, None);
    // An empty plain scalar is YAML null, so the key keeps its default.
    assert_eq!(config.stream.port, 3112);
    assert_eq!(
        config.warnings,
        vec![
            "workers[0] `iii-stream`: `auth_function` is empty; subscriber connections are not \
             authenticated"
        ]
    );
}

#[test]
fn variable_set_to_empty_string_wins_over_default() {
    let text = stream_entry("auth_function: \"${AUTH_FN:app::auth}\"\n");
    assert_eq!(ok(&text).stream.auth_function, Some("app::auth".to_owned()));
    let env = |name: &str| (name == "AUTH_FN").then(String::new);
    let config = parse(&text, "config.yaml", &env).unwrap();
    assert_eq!(config.stream.auth_function, None);
    assert_eq!(
        config.warnings,
        vec![
            "workers[0] `iii-stream`: `auth_function` is empty; subscriber connections are not \
             authenticated"
        ]
    );
}

#[test]
fn bridge_adapter_is_not_supported() {
    let text = stream_entry("adapter: {name: bridge}");
    let (line, column, message) = yaml_err(&text);
    assert_eq!((line, column), (4, 23));
    assert_eq!(
        message,
        "workers[0].config.adapter.name: adapter `bridge` is not supported; supported adapters \
         are `kv` and `redis`"
    );
    assert!(err(&text).to_string().contains("not supported"));

    let (_, _, message) = yaml_err(&stream_entry("adapter: {config: {}}"));
    assert_eq!(message, "workers[0].config.adapter: missing field `name`");

    let (line, column, message) = yaml_err(&stream_entry("adapter: {name: kv, options: {}}"));
    assert_eq!((line, column), (4, 27));
    assert_eq!(
        message,
        "workers[0].config.adapter: unknown field `options`, expected `name` or `config`"
    );
}

#[test]
fn unknown_nested_key_names_the_key_and_line() {
    let text = stream_entry("limits:\n  max_connections: 5\n  max_conections: 6\n");
    let (line, column, message) = yaml_err(&text);
    assert_eq!((line, column), (6, 9));
    assert_eq!(
        message,
        "workers[0].config.limits: unknown field `max_conections`, expected one of \
         `max_connections`, `max_subscriptions_per_connection`, `max_message_bytes`, \
         `outbound_queue_frames`, `outbound_queue_bytes`, `write_timeout_ms`, `joins_per_second`, \
         `join_burst`, `max_groups_per_stream`"
    );

    for (section, key) in [
        ("timeouts", "auth"),
        ("history", "max_event"),
        ("triggers", "concurrency"),
        ("keepalive", "ping_ms"),
    ] {
        let (line, column, message) = yaml_err(&stream_entry(&format!("{section}:\n  {key}: 1\n")));
        assert_eq!((line, column), (5, 9), "{section}");
        assert!(
            message.starts_with(&format!(
                "workers[0].config.{section}: unknown field `{key}`"
            )),
            "{message}"
        );
    }

    let (line, column, message) = yaml_err(&stream_entry("port: 1\nmetric: true\n"));
    assert_eq!((line, column), (5, 7));
    assert!(message.starts_with("workers[0].config: unknown field `metric`"));
}

#[test]
fn zero_sizes_and_timeouts_are_rejected_where_they_break_the_server() {
    let cases = [
        (
            "limits: {outbound_queue_frames: 0}",
            "limits.outbound_queue_frames",
            4,
            39,
        ),
        (
            "triggers: {max_concurrency: 0}",
            "triggers.max_concurrency",
            4,
            35,
        ),
        ("timeouts: {join_ms: 0}", "timeouts.join_ms", 4, 27),
        (
            "keepalive: {ping_interval_ms: 0}",
            "keepalive.ping_interval_ms",
            4,
            37,
        ),
    ];
    for (yaml, key, line, column) in cases {
        let (got_line, got_column, message) = yaml_err(&stream_entry(yaml));
        assert_eq!((got_line, got_column), (line, column), "{yaml}");
        assert!(
            message.starts_with(&format!(
                "workers[0].config.{key}: invalid value 0: must be at least 1"
            )),
            "{message}"
        );
    }

    let (_, _, message) = yaml_err(&stream_entry("timeouts: {auth_ms: 315360000001}"));
    assert_eq!(
        message,
        "workers[0].config.timeouts.auth_ms: invalid value 315360000001: the maximum is \
         315360000000 ms (ten years)"
    );

    let (line, column, message) =
        yaml_err("workers:\n  - name: iii-worker-manager\n    config: {max_message_bytes: 0}\n");
    assert_eq!((line, column), (3, 33));
    assert!(message.starts_with("workers[0].config.max_message_bytes: invalid value 0"));
}

#[test]
fn invalid_values_report_their_location() {
    let (line, column, message) = yaml_err(&stream_entry("port: 70000"));
    assert_eq!((line, column), (4, 13));
    assert_eq!(
        message,
        "workers[0].config.port: invalid value: integer `70000`, expected u16"
    );

    let (line, column, message) = yaml_err(&stream_entry("fail_closed: maybe"));
    assert_eq!((line, column), (4, 20));
    assert_eq!(
        message,
        "workers[0].config.fail_closed: invalid type: string \"maybe\", expected a boolean"
    );

    let (_, _, message) = yaml_err(&stream_entry("limits: {max_connections: -1}"));
    assert!(message.starts_with("workers[0].config.limits.max_connections: invalid type"));

    let (line, column, message) = yaml_err(&stream_entry("host: ''"));
    assert_eq!((line, column), (4, 13));
    assert_eq!(message, "workers[0].config.host: must not be empty");
}

#[test]
fn invalid_yaml_reports_its_location() {
    let error = err("workers:\n  - name: iii-stream\n   config: {\n");
    match &error {
        ConfigError::Yaml {
            line: Some(line), ..
        } => assert_eq!(*line, 3),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(error.to_string().starts_with("config.yaml:3:"), "{error}");
}

#[test]
fn keepalive_idle_timeout_must_exceed_ping_interval() {
    let (key, message) = invalid_err(&stream_entry(
        "keepalive: {ping_interval_ms: 1000, idle_timeout_ms: 1000}",
    ));
    assert_eq!(key, "workers[0] `iii-stream`: config.keepalive");
    assert_eq!(
        message,
        "idle_timeout_ms (1000) must be greater than ping_interval_ms (1000), or quiet but \
         healthy subscribers would be closed before they are pinged"
    );
    // The rule holds against defaults too.
    let (_, message) = invalid_err(&stream_entry("keepalive: {ping_interval_ms: 100000}"));
    assert!(
        message
            .starts_with("idle_timeout_ms (90000) must be greater than ping_interval_ms (100000)")
    );
}

#[test]
fn rbac_entries_are_not_served() {
    let config = ok("\
workers:
  - name: iii-worker-manager
    config:
      port: 49134
      rbac: {rules: []}
  - name: iii-worker-manager
    config:
      port: 49135
      middleware_function_id: auth::mw
      cors: true
");
    assert_eq!(
        config.engine,
        vec![EngineConfig {
            port: 49135,
            ..EngineConfig::default()
        }]
    );
    assert_eq!(
        config.warnings,
        vec![
            "workers[0] `iii-worker-manager`: contains `rbac`, which iii-stream does not enforce; \
             this engine listener is not opened",
            "workers[1] `iii-worker-manager`: unknown key `config.cors` ignored",
            "workers[1] `iii-worker-manager`: `middleware_function_id` is not supported and is \
             ignored",
        ]
    );
}

#[test]
fn only_rbac_entries_is_an_error() {
    let text = "workers:\n  - name: iii-worker-manager\n    config:\n      rbac: {}\n";
    let (key, message) = invalid_err(text);
    assert_eq!(key, "iii-worker-manager");
    assert_eq!(
        message,
        "no engine listener can be opened: every `iii-worker-manager` entry contains `rbac`, \
         which iii-stream does not enforce; remove `rbac` from an entry to serve it"
    );
}

#[test]
fn every_engine_key() {
    let config = ok("\
workers:
  - name: iii-worker-manager
    config:
      host: 127.0.0.1
      port: 0
      handshake_timeout_ms: 1
      max_message_bytes: 2
      invocation_timeout_ms: 3
      max_in_flight_calls: 4
      max_connections: 5
      outbound_queue_frames: 6
      outbound_queue_bytes: 7
      ping_interval_ms: 8
      idle_timeout_ms: 9
      max_calls_per_second: 10
");
    assert_eq!(
        config.engine,
        vec![EngineConfig {
            host: "127.0.0.1".to_owned(),
            port: 0,
            handshake_timeout_ms: 1,
            max_message_bytes: 2,
            invocation_timeout_ms: 3,
            max_in_flight_calls: 4,
            max_connections: 5,
            outbound_queue_frames: 6,
            outbound_queue_bytes: 7,
            ping_interval_ms: 8,
            idle_timeout_ms: 9,
            max_calls_per_second: Some(10),
        }]
    );
    let (key, message) = invalid_err(
        "workers:\n  - name: iii-worker-manager\n    config: {ping_interval_ms: 9, idle_timeout_ms: 9}\n",
    );
    assert_eq!(key, "workers[0] `iii-worker-manager`: config");
    assert!(
        message.contains("must be greater than ping_interval_ms"),
        "{message}"
    );
}

#[test]
fn conflicting_listeners_are_an_error() {
    let (key, message) = invalid_err(
        "\
workers:
  - name: iii-worker-manager
    config: {port: 4000}
  - name: iii-stream
    config: {port: 4000}
",
    );
    assert_eq!(key, "workers[1] `iii-stream`");
    assert_eq!(
        message,
        "listens on 0.0.0.0:4000, which workers[0] `iii-worker-manager` already uses"
    );

    let (key, _) =
        invalid_err("workers:\n  - name: iii-worker-manager\n  - name: iii-worker-manager\n");
    assert_eq!(key, "workers[1] `iii-worker-manager`");

    let (key, message) =
        invalid_err("workers:\n  - name: iii-worker-manager\n    config: {port: 3112}\n");
    assert_eq!(key, "the default `iii-stream` service");
    assert_eq!(
        message,
        "listens on 0.0.0.0:3112, which workers[0] `iii-worker-manager` already uses"
    );

    // Port 0 never conflicts (each bind gets its own port), nor do distinct hosts.
    let config = ok("\
workers:
  - name: iii-worker-manager
    config: {port: 0}
  - name: iii-worker-manager
    config: {port: 0}
  - name: iii-worker-manager
    config: {port: 3112, host: 127.0.0.1}
");
    assert_eq!(config.engine.len(), 3);
}

#[test]
fn store_method_must_be_known() {
    let text = stream_entry("adapter:\n  name: kv\n  config:\n    store_method: memory\n");
    let (line, column, message) = yaml_err(&text);
    assert_eq!((line, column), (7, 25));
    assert_eq!(
        message,
        "workers[0].config.adapter.config.store_method: store_method `memory` is not supported; \
         expected `file_based` or `in_memory`"
    );
}

#[test]
fn kv_adapter_compat_and_unknown_keys_are_warnings() {
    let config = ok(&stream_entry(
        "\
adapter:
  name: kv
  config:
    save_interval_ms: 5000
    channel_size: 256
    redis_url: redis://x
    extra: [1, 2]
",
    ));
    assert_eq!(config.stream.adapter, AdapterConfig::default());
    assert_eq!(
        config.warnings,
        vec![
            "workers[0] `iii-stream`: `adapter.config.save_interval_ms` is accepted for \
             compatibility and ignored: every write is durable before it is acknowledged",
            "workers[0] `iii-stream`: `adapter.config.channel_size` is accepted for \
             compatibility and ignored: every write is durable before it is acknowledged",
            "workers[0] `iii-stream`: unknown key `adapter.config.redis_url` for the kv adapter \
             ignored",
            "workers[0] `iii-stream`: unknown key `adapter.config.extra` for the kv adapter ignored",
        ]
    );
}

#[test]
fn redis_adapter() {
    let config = ok(&stream_entry("adapter: {name: redis}"));
    assert_eq!(
        config.stream.adapter,
        AdapterConfig::Redis {
            redis_url: "redis://localhost:6379".to_owned(),
            connect_timeout_ms: 5_000,
        }
    );
    assert_eq!(config.warnings, Vec::<String>::new());

    let env = |name: &str| (name == "REDIS_URL").then(|| "redis://cache:6380/2".to_owned());
    let text = stream_entry(
        "\
adapter:
  config:
    connect_timeout_ms: 250
    redis_url: ${REDIS_URL:redis://localhost:6379}
    store_method: nonsense
  name: redis
",
    );
    let config = parse(&text, "config.yaml", &env).unwrap();
    assert_eq!(
        config.stream.adapter,
        AdapterConfig::Redis {
            redis_url: "redis://cache:6380/2".to_owned(),
            connect_timeout_ms: 250,
        }
    );
    assert_eq!(
        config.warnings,
        vec![
            "workers[0] `iii-stream`: unknown key `adapter.config.store_method` for the redis \
             adapter ignored"
        ]
    );

    let (line, column, message) = yaml_err(&stream_entry(
        "adapter: {name: redis, config: {connect_timeout_ms: 0}}",
    ));
    assert_eq!((line, column), (4, 59));
    assert!(message.starts_with(
        "workers[0].config.adapter.config.connect_timeout_ms: invalid value 0: must be at least 1 ms"
    ));
}

#[test]
fn adapter_config_may_be_empty() {
    let config = ok(&stream_entry("adapter:\n  name: kv\n  config:\n"));
    assert_eq!(config.stream.adapter, AdapterConfig::default());
    let config = ok(&stream_entry("adapter: {name: redis, config: {}}"));
    assert!(matches!(config.stream.adapter, AdapterConfig::Redis { .. }));
}

#[test]
fn hostile_input_never_panics() {
    let deep = format!("workers: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let aliases = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n\
                   c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n";
    let inputs = [
        deep.as_str(),
        aliases,
        "\u{0}\u{1}\u{ff}",
        "workers:\n  - name: iii-stream\n    config:\n      port: 99999999999999999999999999\n",
        "workers:\n  - name: iii-stream\n    config:\n      port: -1\n",
        "workers:\n  - name: iii-stream\n    config:\n      port: 3.5\n",
        "workers:\n  - name: [a]\n",
        "workers:\n  - {name: iii-stream, config: {adapter: [kv]}}\n",
        "workers:\n  - {name: iii-stream, config: {adapter: {name: kv, config: 5}}}\n",
        "workers:\n  - {name: iii-stream, config: {adapter: {name: kv, name: kv}}}\n",
        "workers:\n  - {name: iii-worker-manager, config: {port: x}}\n",
        "workers: !!binary aGVsbG8=\n",
        "workers: 5\n",
        "---\na: 1\n---\nb: 2\n",
        "${",
        "${}",
        "{{{{",
        "? [a]\n: b\n",
    ];
    for input in inputs {
        let result = std::panic::catch_unwind(|| parse(input, "config.yaml", &no_env));
        match result {
            Ok(Ok(config)) => panic!("expected an error for {input:?}, got {config:?}"),
            Ok(Err(error)) => assert!(!error.to_string().is_empty()),
            Err(_) => panic!("panicked on {input:?}"),
        }
    }
}

#[test]
fn load_reads_the_named_file() {
    let dir = std::env::temp_dir().join(format!("iii-stream-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stream.yaml");
    std::fs::write(
        &path,
        "workers:\n  - name: iii-stream\n    config: {port: 4321}\n",
    )
    .unwrap();
    let config = load(Some(&path)).unwrap();
    assert_eq!(config.stream.port, 4321);

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "workers:\n  - name: iii-stream\n    config: {prot: 1}\n",
    )
    .unwrap();
    let message = load(Some(&bad)).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:3:14: ", bad.display())),
        "{message}"
    );

    let missing = dir.join("missing.yaml");
    let error = load(Some(&missing)).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read config file {}: ", missing.display())),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn public_interpolate() {
    assert_eq!(
        interpolate("p: ${P:1}", &|_| Some("2".to_owned())).unwrap(),
        "p: 2"
    );
    assert_eq!(
        interpolate("p: ${P}", &no_env).unwrap_err().to_string(),
        "<config>:1:4: environment variable `P` is not set and its `${...}` reference has no default"
    );
}
