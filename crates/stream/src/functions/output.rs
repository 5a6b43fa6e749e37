//! Result shapes of the `stream::*` functions, exact to the key (clients compare them with deep
//! equality). Stored values are already JSON text and are embedded without re-serialising.

use iii_stream_protocol::RawValue;
use serde::Serialize;
use std::sync::Arc;

fn to_raw(value: &impl Serialize) -> Box<RawValue> {
    // These shapes hold only strings, numbers and already-valid raw JSON.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// A copy of a stored value as a function result.
pub(crate) fn raw(value: &RawValue) -> Box<RawValue> {
    value.to_owned()
}

/// `{"old_value", "new_value", "errors"?}` of set and update.
pub(crate) fn written(
    old: Option<&RawValue>,
    new: &RawValue,
    errors: Option<&RawValue>,
) -> Box<RawValue> {
    #[derive(Serialize)]
    struct Written<'a> {
        old_value: &'a RawValue,
        new_value: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        errors: Option<&'a RawValue>,
    }
    to_raw(&Written {
        old_value: old.unwrap_or(RawValue::NULL),
        new_value: new,
        errors,
    })
}

/// `{"old_value"}` of delete.
pub(crate) fn deleted(old: Option<&RawValue>) -> Box<RawValue> {
    #[derive(Serialize)]
    struct Deleted<'a> {
        old_value: &'a RawValue,
    }
    to_raw(&Deleted {
        old_value: old.unwrap_or(RawValue::NULL),
    })
}

/// A bare JSON array.
pub(crate) fn list(items: &[impl Serialize]) -> Box<RawValue> {
    to_raw(&items)
}

/// `{"stream": [{"id", "groups"}], "count"}` of list_all.
pub(crate) fn list_all(streams: &[(Arc<str>, Vec<Arc<str>>)]) -> Box<RawValue> {
    #[derive(Serialize)]
    struct Entry<'a> {
        id: &'a str,
        groups: &'a [Arc<str>],
    }
    #[derive(Serialize)]
    struct All<'a> {
        stream: Vec<Entry<'a>>,
        count: usize,
    }
    to_raw(&All {
        stream: streams
            .iter()
            .map(|(id, groups)| Entry { id, groups })
            .collect(),
        count: streams.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let one = RawValue::from_string("1".into()).unwrap();
        assert_eq!(
            written(None, &one, None).get(),
            r#"{"old_value":null,"new_value":1}"#
        );
        assert_eq!(deleted(Some(&one)).get(), r#"{"old_value":1}"#);
        let streams = vec![(Arc::from("a:b"), vec![Arc::from("g")])];
        assert_eq!(
            list_all(&streams).get(),
            r#"{"stream":[{"id":"a:b","groups":["g"]}],"count":1}"#
        );
    }
}
