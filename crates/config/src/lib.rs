//! The iii-stream configuration file (stream.md §9, worker-protocol.md §14, improvements.md m).
//!
//! The file keeps the original iii engine's shape so existing config files start unchanged:
//! `iii-stream` configures this service, `iii-worker-manager` entries open engine listeners, and
//! every other entry is reported in [`Config::warnings`] and ignored. Loading never panics: every
//! problem becomes a [`ConfigError`] naming the file and, where known, the key or variable, line
//! and column. Accepted-but-ignored settings (including informational ones such as the kv
//! adapter's `save_interval_ms`) all go to `warnings`, for the binary to log at startup.
//!
//! # Validation
//!
//! Besides the types the YAML itself enforces (`u16` ports, unsigned integers), the loader rejects
//! values that would leave the server unable to do its job:
//!
//! - every timeout (`timeouts.*`, `handshake_timeout_ms`, `invocation_timeout_ms`,
//!   `connect_timeout_ms`) and both keepalive intervals must be at least 1 ms, because a zero
//!   deadline fails every call or closes every connection at once;
//! - `keepalive.idle_timeout_ms` must exceed `keepalive.ping_interval_ms`, otherwise a healthy but
//!   quiet subscriber is closed before it is ever pinged;
//! - every `limits.*` value, both `triggers.*` values and the engine's `max_message_bytes` must be
//!   at least 1, because zero would refuse every connection, subscription, message or trigger;
//! - no duration may exceed [`MAX_DURATION_MS`] (ten years), so deadline arithmetic
//!   (`Instant + Duration`) can never overflow;
//! - host names, `file_path` and `redis_url` must not be empty;
//! - two listeners (engine or stream) may not name the same host and non-zero port.
//!
//! Zero stays valid where it has a useful meaning: port `0` lets the OS pick a free port (handy in
//! tests), `history.max_events: 0` disables resume, `history.max_age_ms`/`max_total_bytes: 0` keep
//! no history, and `shutdown_timeout_ms: 0` skips the drain wait.

mod error;
mod file;
mod interpolate;
mod model;
mod resolve;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::ConfigError;
pub use model::{
    AdapterConfig, Config, EngineConfig, History, Keepalive, Limits, MAX_DURATION_MS, StoreMethod,
    StreamConfig, Timeouts, Triggers,
};

/// The file read when no path is given, relative to the working directory.
const DEFAULT_FILE: &str = "config.yaml";

/// Loads `path`; with None, `config.yaml` in the working directory if it exists, else defaults.
///
/// Variables are read from the process environment; a value that is not valid UTF-8 is used
/// with its invalid bytes replaced, since a config file is text.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let path = match path {
        Some(path) => path,
        None => {
            let path = Path::new(DEFAULT_FILE);
            match path.try_exists() {
                Ok(true) => path,
                Ok(false) => return Ok(Config::default()),
                Err(source) => {
                    return Err(ConfigError::Read {
                        file: DEFAULT_FILE.to_owned(),
                        source,
                    });
                }
            }
        }
    };
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&text, &file, &process_env)
}

/// Parses config text (for tests): `source` names the file in errors; `env` looks up variables.
pub fn parse(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let expanded = interpolate::expand(text, source, env)?;
    let document: file::RawDocument =
        serde_yaml::from_str(&expanded).map_err(|error| ConfigError::from_yaml(source, &error))?;
    resolve::resolve(document, source)
}

/// Expands `${NAME}` / `${NAME:default}` references in `text` (stream.md §9.2). Errors name the
/// file as `<config>`; [`parse`] and [`load`] name the real one.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    interpolate::expand(text, "<config>", env)
}

fn process_env(name: &str) -> Option<String> {
    // The platform cannot hold such names, and some lookups reject them abruptly.
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}
