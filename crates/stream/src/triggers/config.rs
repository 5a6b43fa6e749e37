//! Validation of `stream`, `stream:join` and `stream:leave` trigger configs (stream.md §7).

use serde_json::{Map, Value};
use std::sync::Arc;

/// The config of a `stream` trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamFilter {
    pub(crate) stream: Arc<str>,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) item: Option<Arc<str>>,
    pub(crate) condition: Option<Arc<str>>,
}

/// The config of a `stream:join` or `stream:leave` trigger; no filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LifecycleFilter {
    pub(crate) stream: Option<Arc<str>>,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) condition: Option<Arc<str>>,
}

impl LifecycleFilter {
    pub(crate) fn matches(&self, stream: &str, group: &str) -> bool {
        self.stream.as_deref().is_none_or(|s| s == stream)
            && self.group.as_deref().is_none_or(|g| g == group)
    }
}

impl StreamFilter {
    pub(crate) fn matches(&self, group: &str, item: Option<&str>) -> bool {
        self.group.as_deref().is_none_or(|g| g == group)
            && self.item.as_deref().is_none_or(|i| Some(i) == item)
    }
}

pub(crate) fn stream_filter(config: &Value) -> Result<StreamFilter, String> {
    const MISSING: &str = "stream trigger config requires a non-empty string 'stream_name'";
    let Value::Object(map) = config else {
        return Err(MISSING.to_owned());
    };
    let Some(Value::String(stream)) = map.get("stream_name") else {
        return Err(MISSING.to_owned());
    };
    if stream.is_empty() {
        return Err(MISSING.to_owned());
    }
    Ok(StreamFilter {
        stream: stream.as_str().into(),
        group: optional(map, "group_id", "stream")?,
        item: optional(map, "item_id", "stream")?,
        condition: optional(map, "condition_function_id", "stream")?,
    })
}

pub(crate) fn lifecycle_filter(config: &Value, kind: &str) -> Result<LifecycleFilter, String> {
    let map = match config {
        Value::Null => return Ok(LifecycleFilter::default()),
        Value::Object(map) => map,
        _ => return Err(format!("{kind} trigger config must be an object or null")),
    };
    Ok(LifecycleFilter {
        stream: optional(map, "stream_name", kind)?,
        group: optional(map, "group_id", kind)?,
        condition: optional(map, "condition_function_id", kind)?,
    })
}

/// An optional string key: absent, `null` and `""` all mean "none".
fn optional(map: &Map<String, Value>, key: &str, kind: &str) -> Result<Option<Arc<str>>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str().into())),
        Some(_) => Err(format!(
            "{kind} trigger config key '{key}' must be a string"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stream_configs() {
        assert!(stream_filter(&json!({})).is_err());
        assert!(stream_filter(&Value::Null).is_err());
        assert!(stream_filter(&json!({"stream_name": ""})).is_err());
        assert!(stream_filter(&json!({"stream_name": 3})).is_err());
        assert!(stream_filter(&json!({"stream_name": "s", "group_id": 1})).is_err());
        let f =
            stream_filter(&json!({"stream_name":"s","group_id":"","item_id":"i","x":1})).unwrap();
        assert_eq!(f.group, None);
        assert!(f.matches("any", Some("i")));
        assert!(
            !f.matches("any", None),
            "frames without id never match an item filter"
        );
    }

    #[test]
    fn lifecycle_configs() {
        assert_eq!(
            lifecycle_filter(&Value::Null, "stream:join").unwrap(),
            LifecycleFilter::default()
        );
        assert!(lifecycle_filter(&json!([]), "stream:join").is_err());
        assert!(lifecycle_filter(&json!({"group_id": false}), "stream:join").is_err());
        let f = lifecycle_filter(&json!({"stream_name": "x"}), "stream:join").unwrap();
        assert!(f.matches("x", "g"));
        assert!(!f.matches("y", "g"));
    }
}
