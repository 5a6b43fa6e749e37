//! The YAML file's raw shape (stream.md §9.1, §9.3–9.4, worker-protocol.md §14), read straight
//! from the text with serde so every error carries the parser's line and column.
//!
//! Which shape an entry's `config` has depends on the entry's `name` (and an adapter's `config`
//! on the adapter's `name`). Buffering a mapping first would lose positions, so the custom visitors
//! below read `config` with the right type as soon as `name` is known; only when a file puts
//! `config` before `name` is the mapping buffered, and its errors then point at the enclosing
//! entry. Values the server cannot use are rejected here, at their position; rules that span
//! several values live in `resolve`.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::model::MAX_DURATION_MS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with a `workers` list")]
pub(crate) struct RawDocument {
    pub workers: Option<Vec<RawEntry>>,
    /// The original's older name for `workers`.
    pub modules: Option<Vec<RawEntry>>,
    pub registration_namespace_grace_ms: Option<IgnoredAny>,
}

#[derive(Debug)]
pub(crate) struct RawEntry {
    pub name: String,
    pub config: EntryConfig,
    pub has_image: bool,
    pub unknown_keys: Vec<String>,
}

#[derive(Debug)]
pub(crate) enum EntryConfig {
    Stream(Box<RawStream>),
    Manager(Box<RawManager>),
    /// An entry iii-stream does not serve; its config is not inspected.
    Other,
}

#[derive(Debug, Clone, Copy)]
enum EntryKind {
    Stream,
    Manager,
    Other,
}

impl EntryKind {
    fn of(name: &str) -> Self {
        match name {
            "iii-stream" => EntryKind::Stream,
            "iii-worker-manager" => EntryKind::Manager,
            _ => EntryKind::Other,
        }
    }
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = RawEntry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a worker entry mapping with a `name`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
        let mut seen = BTreeSet::new();
        let mut name: Option<String> = None;
        let mut config: Option<EntryConfig> = None;
        let mut deferred: Option<serde_yaml::Value> = None;
        let mut has_image = false;
        let mut unknown_keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            match key.as_str() {
                "name" => name = Some(map.next_value::<NonEmptyString>()?.0),
                "config" => match &name {
                    Some(name) => config = Some(map.next_value_seed(EntryKind::of(name))?),
                    None => deferred = Some(map.next_value()?),
                },
                "image" => {
                    map.next_value::<IgnoredAny>()?;
                    has_image = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    unknown_keys.push(key);
                }
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        let config = match (config, deferred) {
            (Some(config), _) => config,
            (None, Some(value)) => EntryKind::of(&name)
                .deserialize(value)
                .map_err(|error| de::Error::custom(format_args!("config: {error}")))?,
            (None, None) => EntryKind::of(&name).absent(),
        };
        Ok(RawEntry {
            name,
            config,
            has_image,
            unknown_keys,
        })
    }
}

impl EntryKind {
    fn absent(self) -> EntryConfig {
        match self {
            EntryKind::Stream => EntryConfig::Stream(Box::default()),
            EntryKind::Manager => EntryConfig::Manager(Box::default()),
            EntryKind::Other => EntryConfig::Other,
        }
    }
}

impl<'de> DeserializeSeed<'de> for EntryKind {
    type Value = EntryConfig;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<EntryConfig, D::Error> {
        Ok(match self {
            EntryKind::Stream => EntryConfig::Stream(
                Option::<Box<RawStream>>::deserialize(deserializer)?.unwrap_or_default(),
            ),
            EntryKind::Manager => EntryConfig::Manager(
                Option::<Box<RawManager>>::deserialize(deserializer)?.unwrap_or_default(),
            ),
            EntryKind::Other => {
                IgnoredAny::deserialize(deserializer)?;
                EntryConfig::Other
            }
        })
    }
}

/// `config` of the `iii-stream` entry. Strict: an unknown key is almost always a typo, and
/// silently running with a default instead would be worse than refusing to start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `iii-stream` config mapping")]
pub(crate) struct RawStream {
    pub host: Option<NonEmptyString>,
    pub port: Option<u16>,
    /// Outer `Some` when the key is present, so an explicitly empty value can be reported.
    #[serde(default, deserialize_with = "present")]
    pub auth_function: Option<Option<String>>,
    pub fail_closed: Option<bool>,
    pub adapter: Option<RawAdapter>,
    pub timeouts: Option<RawTimeouts>,
    pub limits: Option<RawLimits>,
    pub history: Option<RawHistory>,
    pub triggers: Option<RawTriggers>,
    pub keepalive: Option<RawKeepalive>,
    pub metrics: Option<bool>,
    pub shutdown_timeout_ms: Option<Millis>,
}

fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `timeouts` mapping")]
pub(crate) struct RawTimeouts {
    pub auth_ms: Option<PositiveMillis>,
    pub join_ms: Option<PositiveMillis>,
    pub leave_ms: Option<PositiveMillis>,
    pub condition_ms: Option<PositiveMillis>,
    pub trigger_ms: Option<PositiveMillis>,
    pub provider_ms: Option<PositiveMillis>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `limits` mapping")]
pub(crate) struct RawLimits {
    pub max_connections: Option<PositiveCount>,
    pub max_subscriptions_per_connection: Option<PositiveCount>,
    pub max_message_bytes: Option<PositiveCount>,
    pub outbound_queue_frames: Option<PositiveCount>,
    pub outbound_queue_bytes: Option<PositiveCount>,
    pub write_timeout_ms: Option<PositiveMillis>,
    pub joins_per_second: Option<PositiveCount>,
    pub join_burst: Option<PositiveCount>,
    pub max_groups_per_stream: Option<PositiveCount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `history` mapping")]
pub(crate) struct RawHistory {
    pub max_events: Option<usize>,
    pub max_age_ms: Option<Millis>,
    pub max_total_bytes: Option<usize>,
    pub max_idle_groups: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `triggers` mapping")]
pub(crate) struct RawTriggers {
    pub max_concurrency: Option<PositiveCount>,
    pub max_pending_per_trigger: Option<PositiveCount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `keepalive` mapping")]
pub(crate) struct RawKeepalive {
    pub ping_interval_ms: Option<PositiveMillis>,
    pub idle_timeout_ms: Option<PositiveMillis>,
}

/// `config` of an `iii-worker-manager` entry. Lenient (unknown keys are reported, not fatal)
/// because this entry is the original's, which may carry options iii-stream has no use for.
#[derive(Debug, Default)]
pub(crate) struct RawManager {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub handshake_timeout_ms: Option<u64>,
    pub max_message_bytes: Option<usize>,
    pub invocation_timeout_ms: Option<u64>,
    pub max_in_flight_calls: Option<usize>,
    pub max_connections: Option<usize>,
    pub outbound_queue_frames: Option<usize>,
    pub outbound_queue_bytes: Option<usize>,
    pub ping_interval_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_calls_per_second: Option<usize>,
    pub has_middleware: bool,
    pub has_rbac: bool,
    pub unknown_keys: Vec<String>,
}

impl<'de> Deserialize<'de> for RawManager {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ManagerVisitor)
    }
}

struct ManagerVisitor;

impl<'de> Visitor<'de> for ManagerVisitor {
    type Value = RawManager;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the `iii-worker-manager` config mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawManager, A::Error> {
        let mut seen = BTreeSet::new();
        let mut raw = RawManager::default();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            match key.as_str() {
                "host" => raw.host = map.next_value::<Option<NonEmptyString>>()?.map(|s| s.0),
                "port" => raw.port = map.next_value()?,
                "handshake_timeout_ms" => {
                    raw.handshake_timeout_ms =
                        map.next_value::<Option<PositiveMillis>>()?.map(|v| v.0)
                }
                "max_message_bytes" => {
                    raw.max_message_bytes = map.next_value::<Option<PositiveCount>>()?.map(|v| v.0)
                }
                "invocation_timeout_ms" => {
                    raw.invocation_timeout_ms =
                        map.next_value::<Option<PositiveMillis>>()?.map(|v| v.0)
                }
                "ping_interval_ms" => {
                    raw.ping_interval_ms = map.next_value::<Option<PositiveMillis>>()?.map(|v| v.0)
                }
                "idle_timeout_ms" => {
                    raw.idle_timeout_ms = map.next_value::<Option<PositiveMillis>>()?.map(|v| v.0)
                }
                "max_in_flight_calls" => {
                    raw.max_in_flight_calls =
                        map.next_value::<Option<PositiveCount>>()?.map(|v| v.0)
                }
                "max_connections" => {
                    raw.max_connections = map.next_value::<Option<PositiveCount>>()?.map(|v| v.0)
                }
                "outbound_queue_frames" => {
                    raw.outbound_queue_frames =
                        map.next_value::<Option<PositiveCount>>()?.map(|v| v.0)
                }
                "outbound_queue_bytes" => {
                    raw.outbound_queue_bytes =
                        map.next_value::<Option<PositiveCount>>()?.map(|v| v.0)
                }
                "max_calls_per_second" => {
                    raw.max_calls_per_second =
                        map.next_value::<Option<PositiveCount>>()?.map(|v| v.0)
                }
                "middleware_function_id" => {
                    map.next_value::<IgnoredAny>()?;
                    raw.has_middleware = true;
                }
                "rbac" => {
                    map.next_value::<IgnoredAny>()?;
                    raw.has_rbac = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    raw.unknown_keys.push(key);
                }
            }
        }
        Ok(raw)
    }
}

/// `adapter: {name, config?}`.
#[derive(Debug)]
pub(crate) struct RawAdapter {
    pub config: RawAdapterConfig,
}

/// Keys of `adapter.config` that the chosen adapter uses; every other key is listed in
/// `unknown_keys` and only warned about, as the original accepted arbitrary adapter options.
#[derive(Debug)]
pub(crate) enum RawAdapterConfig {
    Kv {
        store_method: Option<RawStoreMethod>,
        file_path: Option<String>,
        /// Keys the original used and iii-stream accepts without effect.
        compat_keys: Vec<String>,
        unknown_keys: Vec<String>,
    },
    Redis {
        redis_url: Option<String>,
        connect_timeout_ms: Option<u64>,
        unknown_keys: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawStoreMethod {
    FileBased,
    InMemory,
}

#[derive(Debug, Clone, Copy)]
enum AdapterKind {
    Kv,
    Redis,
}

impl<'de> Deserialize<'de> for AdapterKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = AdapterKind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an adapter name (`kv` or `redis`)")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<AdapterKind, E> {
                match name {
                    "kv" => Ok(AdapterKind::Kv),
                    "redis" => Ok(AdapterKind::Redis),
                    other => Err(E::custom(format_args!(
                        "adapter `{}` is not supported; supported adapters are `kv` and `redis`",
                        other.escape_debug()
                    ))),
                }
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for RawAdapter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AdapterVisitor)
    }
}

/// Keys of the `adapter` mapping itself, which is as strict as the rest of the `iii-stream` entry.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum AdapterKey {
    Name,
    Config,
}

struct AdapterVisitor;

impl<'de> Visitor<'de> for AdapterVisitor {
    type Value = RawAdapter;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an adapter mapping `{name, config}`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAdapter, A::Error> {
        let mut kind: Option<AdapterKind> = None;
        let mut config: Option<RawAdapterConfig> = None;
        let mut deferred: Option<serde_yaml::Value> = None;
        while let Some(key) = map.next_key::<AdapterKey>()? {
            match key {
                AdapterKey::Name => {
                    if kind.is_some() {
                        return Err(de::Error::duplicate_field("name"));
                    }
                    kind = Some(map.next_value()?);
                }
                AdapterKey::Config => {
                    if config.is_some() || deferred.is_some() {
                        return Err(de::Error::duplicate_field("config"));
                    }
                    match kind {
                        Some(kind) => config = Some(map.next_value_seed(kind)?),
                        None => deferred = Some(map.next_value()?),
                    }
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("name"))?;
        let config = match (config, deferred) {
            (Some(config), _) => config,
            (None, Some(value)) => kind
                .deserialize(value)
                .map_err(|error| de::Error::custom(format_args!("config: {error}")))?,
            (None, None) => kind.empty(),
        };
        Ok(RawAdapter { config })
    }
}

impl AdapterKind {
    fn empty(self) -> RawAdapterConfig {
        match self {
            AdapterKind::Kv => RawAdapterConfig::Kv {
                store_method: None,
                file_path: None,
                compat_keys: Vec::new(),
                unknown_keys: Vec::new(),
            },
            AdapterKind::Redis => RawAdapterConfig::Redis {
                redis_url: None,
                connect_timeout_ms: None,
                unknown_keys: Vec::new(),
            },
        }
    }
}

impl<'de> DeserializeSeed<'de> for AdapterKind {
    type Value = RawAdapterConfig;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for AdapterKind {
    type Value = RawAdapterConfig;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the adapter's config mapping")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.empty())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.empty())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(AdapterConfigVisitor(self))
    }
}

struct AdapterConfigVisitor(AdapterKind);

impl<'de> Visitor<'de> for AdapterConfigVisitor {
    type Value = RawAdapterConfig;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the adapter's config mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAdapterConfig, A::Error> {
        let mut seen = BTreeSet::new();
        let mut config = self.0.empty();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            match (&mut config, key.as_str()) {
                (RawAdapterConfig::Kv { store_method, .. }, "store_method") => {
                    *store_method = map.next_value()?;
                }
                (RawAdapterConfig::Kv { file_path, .. }, "file_path") => {
                    *file_path = map.next_value::<Option<NonEmptyString>>()?.map(|s| s.0);
                }
                (RawAdapterConfig::Kv { compat_keys, .. }, "save_interval_ms" | "channel_size") => {
                    map.next_value::<IgnoredAny>()?;
                    compat_keys.push(key);
                }
                (RawAdapterConfig::Redis { redis_url, .. }, "redis_url") => {
                    *redis_url = map.next_value::<Option<NonEmptyString>>()?.map(|s| s.0);
                }
                (
                    RawAdapterConfig::Redis {
                        connect_timeout_ms, ..
                    },
                    "connect_timeout_ms",
                ) => {
                    *connect_timeout_ms = map.next_value::<Option<PositiveMillis>>()?.map(|v| v.0);
                }
                (
                    RawAdapterConfig::Kv { unknown_keys, .. }
                    | RawAdapterConfig::Redis { unknown_keys, .. },
                    _,
                ) => {
                    map.next_value::<IgnoredAny>()?;
                    unknown_keys.push(key);
                }
            }
        }
        Ok(config)
    }
}

impl<'de> Deserialize<'de> for RawStoreMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MethodVisitor;
        impl Visitor<'_> for MethodVisitor {
            type Value = RawStoreMethod;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`file_based` or `in_memory`")
            }
            fn visit_str<E: de::Error>(self, method: &str) -> Result<RawStoreMethod, E> {
                match method {
                    "file_based" => Ok(RawStoreMethod::FileBased),
                    "in_memory" => Ok(RawStoreMethod::InMemory),
                    // The original fell back to in-memory here, silently losing durability.
                    other => Err(E::custom(format_args!(
                        "store_method `{}` is not supported; expected `file_based` or `in_memory`",
                        other.escape_debug()
                    ))),
                }
            }
        }
        deserializer.deserialize_str(MethodVisitor)
    }
}

/// A string that must not be empty (host names, paths, URLs, entry names).
#[derive(Debug)]
pub(crate) struct NonEmptyString(pub String);

impl<'de> Deserialize<'de> for NonEmptyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringVisitor;
        impl Visitor<'_> for StringVisitor {
            type Value = NonEmptyString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-empty string")
            }
            // Raised inside the visitor so serde_yaml attaches the value's own position.
            fn visit_str<E: de::Error>(self, value: &str) -> Result<NonEmptyString, E> {
                if value.is_empty() {
                    Err(E::custom("must not be empty"))
                } else {
                    Ok(NonEmptyString(value.to_owned()))
                }
            }
        }
        deserializer.deserialize_str(StringVisitor)
    }
}

/// A duration in milliseconds, `0..=MAX_DURATION_MS`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Millis(pub u64);

/// A duration in milliseconds, `1..=MAX_DURATION_MS`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PositiveMillis(pub u64);

/// A count or size of at least 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PositiveCount(pub usize);

/// Checks an unsigned integer inside the visitor, where serde_yaml still knows the value's
/// position; a check after deserialization could only point at the enclosing mapping.
struct Bounded<T> {
    min: u64,
    max: u64,
    expecting: &'static str,
    zero_reason: &'static str,
    unit: &'static str,
    into: PhantomData<T>,
}

impl<T: TryFrom<u64>> Visitor<'_> for Bounded<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        if value < self.min {
            return Err(E::custom(format_args!(
                "invalid value {value}: {}",
                self.zero_reason
            )));
        }
        if value > self.max {
            return Err(E::custom(format_args!(
                "invalid value {value}: the maximum is {}{}",
                self.max, self.unit
            )));
        }
        T::try_from(value).map_err(|_| {
            E::custom(format_args!(
                "invalid value {value}: too large for this platform"
            ))
        })
    }
}

const ZERO_DURATION: &str =
    "must be at least 1 ms; a zero deadline would expire before any work could finish";

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_u64(Bounded::<u64> {
                min: 0,
                max: MAX_DURATION_MS,
                expecting: "a duration in milliseconds",
                zero_reason: "",
                unit: " ms (ten years)",
                into: PhantomData,
            })
            .map(Millis)
    }
}

impl<'de> Deserialize<'de> for PositiveMillis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_u64(Bounded::<u64> {
                min: 1,
                max: MAX_DURATION_MS,
                expecting: "a positive duration in milliseconds",
                zero_reason: ZERO_DURATION,
                unit: " ms (ten years)",
                into: PhantomData,
            })
            .map(PositiveMillis)
    }
}

impl<'de> Deserialize<'de> for PositiveCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_u64(Bounded::<usize> {
                min: 1,
                max: u64::MAX,
                expecting: "a positive integer",
                zero_reason: "must be at least 1; zero would refuse everything this limit governs",
                unit: "",
                into: PhantomData,
            })
            .map(PositiveCount)
    }
}
