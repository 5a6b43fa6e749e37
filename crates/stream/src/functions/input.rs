//! Inputs of the `stream::*` functions (stream.md §3): decoding, name validation, and the exact
//! objects forwarded to custom providers.

use iii_stream_domain::names::{invalid_name_message, is_valid_name};
use iii_stream_domain::{GroupKey, ItemKey};
use iii_stream_protocol::{ErrorBody, ErrorCode, RawValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Decodes a function's payload; failures are `deserialization_error` with the function's id.
pub(crate) fn decode<T: DeserializeOwned>(
    function_id: &str,
    data: Option<&RawValue>,
) -> Result<T, ErrorBody> {
    let failed = |detail: &dyn std::fmt::Display| {
        ErrorBody::new(
            ErrorCode::DeserializationError,
            format!("Failed to deserialize input for {function_id}: {detail}"),
        )
    };
    // serde would also accept a positional array for a struct; the contract is an object.
    if let Some(raw) = data
        && raw.get().starts_with('[')
    {
        return Err(failed(&"invalid type: sequence, expected an object"));
    }
    iii_stream_protocol::engine::decode_payload(data).map_err(|e| failed(&e))
}

/// Decodes one field of an already decoded payload (e.g. `stream::update`'s `ops`).
pub(crate) fn decode_field<T: DeserializeOwned>(
    function_id: &str,
    raw: &RawValue,
) -> Result<T, ErrorBody> {
    serde_json::from_str(raw.get()).map_err(|e| {
        ErrorBody::new(
            ErrorCode::DeserializationError,
            format!("Failed to deserialize input for {function_id}: {e}"),
        )
    })
}

/// Checks one name; `STREAM_INVALID_NAME` names the field.
fn check(field: &str, value: &str) -> Result<(), ErrorBody> {
    if is_valid_name(value) {
        Ok(())
    } else {
        Err(ErrorBody::new(
            ErrorCode::StreamInvalidName,
            invalid_name_message(field),
        ))
    }
}

/// Names every input carries, validated before anything else happens.
pub(crate) trait Names {
    fn validate(&self) -> Result<(), ErrorBody>;
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct StreamInput {
    pub(crate) stream_name: String,
}

impl Names for StreamInput {
    fn validate(&self) -> Result<(), ErrorBody> {
        check("stream_name", &self.stream_name)
    }
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct GroupInput {
    pub(crate) stream_name: String,
    pub(crate) group_id: String,
}

impl GroupInput {
    pub(crate) fn key(&self) -> GroupKey {
        GroupKey::new(self.stream_name.as_str(), self.group_id.as_str())
    }
}

impl Names for GroupInput {
    fn validate(&self) -> Result<(), ErrorBody> {
        check("stream_name", &self.stream_name)?;
        check("group_id", &self.group_id)
    }
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct ItemInput {
    pub(crate) stream_name: String,
    pub(crate) group_id: String,
    pub(crate) item_id: String,
}

/// Inputs addressing one item.
pub(crate) trait Item {
    fn names(&self) -> (&str, &str, &str);

    fn key(&self) -> ItemKey {
        let (stream, group, item) = self.names();
        ItemKey::new(GroupKey::new(stream, group), item)
    }
}

impl<T: Item> Names for T {
    fn validate(&self) -> Result<(), ErrorBody> {
        let (stream, group, item) = self.names();
        check("stream_name", stream)?;
        check("group_id", group)?;
        check("item_id", item)
    }
}

impl Item for ItemInput {
    fn names(&self) -> (&str, &str, &str) {
        (&self.stream_name, &self.group_id, &self.item_id)
    }
}

/// Input of `stream::set`; `data` is required but may be `null`. (No `#[serde(flatten)]`:
/// raw values cannot pass through it.)
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct SetInput {
    pub(crate) stream_name: String,
    pub(crate) group_id: String,
    pub(crate) item_id: String,
    pub(crate) data: Box<RawValue>,
}

impl Item for SetInput {
    fn names(&self) -> (&str, &str, &str) {
        (&self.stream_name, &self.group_id, &self.item_id)
    }
}

/// Input of `stream::update`; `ops` is kept raw so it reaches a provider exactly as sent.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct UpdateInput {
    pub(crate) stream_name: String,
    pub(crate) group_id: String,
    pub(crate) item_id: String,
    pub(crate) ops: Box<RawValue>,
}

impl Item for UpdateInput {
    fn names(&self) -> (&str, &str, &str) {
        (&self.stream_name, &self.group_id, &self.item_id)
    }
}

/// Input of `stream::send`.
#[derive(Debug, Deserialize)]
pub(crate) struct SendInput {
    pub(crate) stream_name: String,
    pub(crate) group_id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) data: Box<RawValue>,
    #[serde(default)]
    pub(crate) id: Option<String>,
}

impl Names for SendInput {
    fn validate(&self) -> Result<(), ErrorBody> {
        check("stream_name", &self.stream_name)?;
        check("group_id", &self.group_id)?;
        match &self.id {
            Some(id) => check("id", id),
            None => Ok(()),
        }
    }
}

/// `stream::list_all` accepts any object, an array, or nothing.
pub(crate) fn check_list_all_input(data: Option<&RawValue>) -> Result<(), ErrorBody> {
    let text = data.map_or("null", RawValue::get).trim_start();
    if text.starts_with(['{', '[', 'n']) {
        return Ok(());
    }
    Err(ErrorBody::new(
        ErrorCode::DeserializationError,
        "Failed to deserialize input for stream::list_all: expected an object, an array or null",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn set_requires_data_but_accepts_null() {
        let ok: SetInput = decode(
            "stream::set",
            Some(&raw(
                r#"{"stream_name":"s","group_id":"g","item_id":"i","data":null,"x":1}"#,
            )),
        )
        .unwrap();
        assert_eq!(ok.data.get(), "null");
        let err = decode::<SetInput>(
            "stream::set",
            Some(&raw(r#"{"stream_name":"s","group_id":"g","item_id":"i"}"#)),
        )
        .unwrap_err();
        assert_eq!(err.code, "deserialization_error");
        assert!(
            err.message
                .starts_with("Failed to deserialize input for stream::set: ")
        );
    }

    #[test]
    fn wrong_types_and_null_payloads_are_decode_errors() {
        let err = decode::<ItemInput>(
            "stream::get",
            Some(&raw(r#"{"stream_name":"s","group_id":"g","item_id":5}"#)),
        )
        .unwrap_err();
        assert_eq!(err.code, "deserialization_error");
        assert!(decode::<ItemInput>("stream::get", None).is_err());
    }

    #[test]
    fn positional_arrays_are_not_objects() {
        let err = decode::<ItemInput>("stream::get", Some(&raw(r#"["s","g","i"]"#))).unwrap_err();
        assert_eq!(err.code, "deserialization_error");
    }

    #[test]
    fn names_are_validated_by_field() {
        let input = ItemInput {
            stream_name: "s".into(),
            group_id: String::new(),
            item_id: "x".repeat(4097),
        };
        let err = input.validate().unwrap_err();
        assert_eq!(err.code, "STREAM_INVALID_NAME");
        assert!(err.message.starts_with("group_id "));
    }

    #[test]
    fn list_all_accepts_objects_arrays_and_null_only() {
        assert!(check_list_all_input(None).is_ok());
        assert!(check_list_all_input(Some(&raw("{}"))).is_ok());
        assert!(check_list_all_input(Some(&raw("[1]"))).is_ok());
        assert!(check_list_all_input(Some(&raw("5"))).is_err());
        assert!(check_list_all_input(Some(&raw("\"x\""))).is_err());
    }
}
