//! The event frame: the JSON object subscribers receive and `stream` triggers are called with.
//!
//! A frame body is serialised once, without `subscriptionId`; each subscriber copy appends its
//! `subscriptionId` to the shared text ([`with_subscription_id`]) instead of re-serialising.

use serde::Serialize;
use serde_json::value::RawValue;

/// The body of an event frame, in the key order of the spec.
#[derive(Debug, Serialize)]
pub struct FrameBody<'a> {
    #[serde(rename = "type")]
    pub kind: FrameType,
    pub timestamp: u64,
    #[serde(rename = "streamName")]
    pub stream_name: &'a str,
    #[serde(rename = "groupId")]
    pub group_id: &'a str,
    /// Always present: `null` for group syncs and for sends without an id.
    pub id: Option<&'a str>,
    pub event: EventBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<&'a str>,
    #[serde(rename = "subscriptionId", skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
}

/// The constant `"type": "stream"` of every frame.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameType {
    Stream,
}

/// `event`, internally tagged by `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventBody<'a> {
    Create {
        data: &'a RawValue,
    },
    Update {
        data: &'a RawValue,
    },
    Delete {
        data: &'a RawValue,
    },
    Event {
        event: CustomEvent<'a>,
    },
    /// A value (item subscription) or an array of values (group subscription).
    Sync {
        data: &'a RawValue,
    },
    Unauthorized,
}

/// The inner event of a `stream::send`.
#[derive(Debug, Serialize)]
pub struct CustomEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub data: &'a RawValue,
}

/// Why a join was refused, carried by `unauthorized` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    Rejected,
    JoinFailed,
    InvalidName,
    SubscriptionLimit,
    /// The group's latest change cannot be made durable (e.g. the disk is full): a sync would
    /// show data that may be lost.
    StoreUnavailable,
    /// A `join` on a socket opened at a `/stream/...` path: such a socket carries that one
    /// subscription only.
    PathBound,
    /// The connection joins faster than `limits.joins_per_second` allows.
    RateLimited,
    /// The join would create more groups in the stream than `limits.max_groups_per_stream`.
    GroupLimit,
}

impl FrameBody<'_> {
    pub fn to_raw(&self) -> Box<RawValue> {
        // A frame holds only strings, integers and already-valid raw JSON: serialising cannot fail.
        serde_json::value::to_raw_value(self).unwrap_or_else(|_| RawValue::NULL.to_owned())
    }
}

/// The tail `,"subscriptionId":"<id>"}` that turns a shared body into one subscriber's copy.
/// Computed once per subscription.
pub fn subscription_suffix(subscription_id: &str) -> String {
    // Serialising a &str cannot fail.
    let id = serde_json::to_string(subscription_id).unwrap_or_default();
    format!(",\"subscriptionId\":{id}}}")
}

/// The text of one subscriber copy: `body` (a JSON object) with its closing brace replaced by
/// `suffix` (from [`subscription_suffix`]).
pub fn with_suffix(body: &str, suffix: &str) -> String {
    let open = body.strip_suffix('}').unwrap_or(body);
    let mut out = String::with_capacity(open.len() + suffix.len());
    out.push_str(open);
    out.push_str(suffix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn create_frame_has_spec_key_order() {
        let data = raw(r#"{"id":"msg-9","text":"hi"}"#);
        let body = FrameBody {
            kind: FrameType::Stream,
            timestamp: 1766000000123,
            stream_name: "chat",
            group_id: "room-1",
            id: Some("msg-9"),
            event: EventBody::Create { data: &data },
            seq: Some(42),
            epoch: Some("f3a9c0d17b2e4e55"),
            subscription_id: None,
            reason: None,
        };
        assert_eq!(
            body.to_raw().get(),
            r#"{"type":"stream","timestamp":1766000000123,"streamName":"chat","groupId":"room-1","id":"msg-9","event":{"type":"create","data":{"id":"msg-9","text":"hi"}},"seq":42,"epoch":"f3a9c0d17b2e4e55"}"#
        );
    }

    #[test]
    fn custom_event_and_unauthorized() {
        let data = raw("null");
        let body = FrameBody {
            kind: FrameType::Stream,
            timestamp: 1,
            stream_name: "s",
            group_id: "g",
            id: None,
            event: EventBody::Event {
                event: CustomEvent {
                    kind: "typing",
                    data: &data,
                },
            },
            seq: Some(1),
            epoch: Some("e"),
            subscription_id: None,
            reason: None,
        };
        assert_eq!(
            body.to_raw().get(),
            r#"{"type":"stream","timestamp":1,"streamName":"s","groupId":"g","id":null,"event":{"type":"event","event":{"type":"typing","data":null}},"seq":1,"epoch":"e"}"#
        );
        let body = FrameBody {
            kind: FrameType::Stream,
            timestamp: 1,
            stream_name: "s",
            group_id: "g",
            id: None,
            event: EventBody::Unauthorized,
            seq: None,
            epoch: None,
            subscription_id: Some("sub-9"),
            reason: Some(RejectReason::SubscriptionLimit),
        };
        assert_eq!(
            body.to_raw().get(),
            r#"{"type":"stream","timestamp":1,"streamName":"s","groupId":"g","id":null,"event":{"type":"unauthorized"},"subscriptionId":"sub-9","reason":"subscription_limit"}"#
        );
    }

    #[test]
    fn subscription_id_is_appended_and_escaped() {
        let out = with_suffix(r#"{"a":1}"#, &subscription_suffix("s\"1"));
        assert_eq!(out, r#"{"a":1,"subscriptionId":"s\"1"}"#);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["subscriptionId"], "s\"1");
    }
}
