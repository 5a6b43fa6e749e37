//! Changes and the frames that describe them.
//!
//! A [`Frame`] is built once per event: its body is serialised here, exactly once, and shared by
//! every subscriber copy, the history and the `stream` trigger payloads.

use crate::names::GroupKey;
use crate::sequencer::Stamp;
use iii_stream_protocol::frame::{CustomEvent, EventBody, FrameBody, FrameType};
use serde_json::value::RawValue;
use std::sync::Arc;

/// A stored or transmitted JSON value, kept as compact text: values are parsed once on the way in
/// and their text is reused for replies, frames, syncs and storage.
pub type JsonText = Arc<RawValue>;

/// Parses and re-serialises a value into its compact canonical text (numbers normalised the way
/// `serde_json::Value` holds them).
pub fn canonical_json(value: &serde_json::Value) -> JsonText {
    // Serialising a `Value` cannot fail.
    Arc::from(serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned()))
}

/// What happened to a group. Produced by writes, consumed by fan-out and triggers.
#[derive(Debug, Clone)]
pub enum Change {
    Create(JsonText),
    Update(JsonText),
    Delete(JsonText),
    Custom { kind: String, data: JsonText },
}

impl Change {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Create(_) => EventType::Create,
            Self::Update(_) => EventType::Update,
            Self::Delete(_) => EventType::Delete,
            Self::Custom { .. } => EventType::Event,
        }
    }

    /// `create` or `update`, depending on whether the item existed before the write.
    pub fn upsert(existed: bool, value: JsonText) -> Self {
        if existed {
            Self::Update(value)
        } else {
            Self::Create(value)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Create,
    Update,
    Delete,
    Event,
}

impl EventType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Event => "event",
        }
    }
}

/// One numbered event of a group, serialised once.
#[derive(Debug)]
pub struct Frame {
    pub group: GroupKey,
    /// The item id, or `None` for a `stream::send` without id.
    pub item: Option<Arc<str>>,
    pub event_type: EventType,
    pub stamp: Stamp,
    /// The frame body without `subscriptionId`: the trigger payload, and each subscriber copy
    /// once its `subscriptionId` is appended.
    pub body: Box<RawValue>,
}

impl Frame {
    pub fn new(group: GroupKey, item: Option<Arc<str>>, change: &Change, stamp: Stamp) -> Self {
        let event = match change {
            Change::Create(data) => EventBody::Create { data },
            Change::Update(data) => EventBody::Update { data },
            Change::Delete(data) => EventBody::Delete { data },
            Change::Custom { kind, data } => EventBody::Event {
                event: CustomEvent { kind, data },
            },
        };
        let body = FrameBody {
            kind: FrameType::Stream,
            timestamp: stamp.timestamp,
            stream_name: &group.stream,
            group_id: &group.group,
            id: item.as_deref(),
            event,
            seq: Some(stamp.seq),
            epoch: Some(&stamp.epoch),
            subscription_id: None,
            reason: None,
        }
        .to_raw();
        Self {
            group,
            item,
            event_type: change.event_type(),
            stamp,
            body,
        }
    }

    pub fn seq(&self) -> u64 {
        self.stamp.seq
    }

    /// Size accounted for in queues and history budgets.
    pub fn byte_len(&self) -> usize {
        self.body.get().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_body_is_built_once_with_stamp() {
        let value: JsonText = Arc::from(RawValue::from_string(r#"{"id":"a"}"#.into()).unwrap());
        let frame = Frame::new(
            GroupKey::new("s", "g"),
            Some("a".into()),
            &Change::Update(value),
            Stamp {
                epoch: "e1".into(),
                seq: 7,
                timestamp: 9,
            },
        );
        assert_eq!(
            frame.body.get(),
            r#"{"type":"stream","timestamp":9,"streamName":"s","groupId":"g","id":"a","event":{"type":"update","data":{"id":"a"}},"seq":7,"epoch":"e1"}"#
        );
        assert_eq!(frame.event_type, EventType::Update);
    }

    #[test]
    fn canonical_json_normalises_numbers() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"big":123456789012345678901234567890,"f":2.0}"#).unwrap();
        let text = canonical_json(&v);
        let back: serde_json::Value = serde_json::from_str(text.get()).unwrap();
        assert!(back["big"].is_f64());
        assert_eq!(back["f"], serde_json::json!(2.0));
    }

    /// Parses `text` the way a write does and returns the double the stored text denotes.
    fn stored(text: &str) -> (String, u64) {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let stored = canonical_json(&value).get().to_owned();
        let back: f64 = serde_json::from_str(&stored).unwrap();
        (stored, back.to_bits())
    }

    #[test]
    fn edge_doubles_keep_every_bit() {
        for x in [
            0.1 + 0.2,
            0.374_760_232_496_274_44,
            5e-324,
            -5e-324,
            2.225_073_858_507_201e-308,
            2.225_073_858_507_201_4e-308,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            1e21,
            1e-7,
            -0.0,
        ] {
            let text = serde_json::to_string(&x).unwrap();
            assert_eq!(stored(&text), (text.clone(), x.to_bits()), "{x:e}");
        }
        // `-0` is read as the float -0.0: its sign survives, written `-0.0`.
        assert_eq!(stored("-0"), ("-0.0".to_owned(), (-0.0f64).to_bits()));
        // Integers keep their exact text within 64 bits (above 2^53 too), floats beyond.
        for text in [
            "9007199254740993",
            "18446744073709551615",
            "-9223372036854775808",
        ] {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(canonical_json(&value).get(), text);
        }
        let value: serde_json::Value = serde_json::from_str("18446744073709551616").unwrap();
        assert_eq!(canonical_json(&value).get(), "1.8446744073709552e+19");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]

        /// Every finite double, in its shortest form and in the 17-digit form other encoders
        /// use, comes back as the same double.
        #[test]
        fn random_doubles_keep_every_bit(bits in proptest::prelude::any::<u64>()) {
            let x = f64::from_bits(bits);
            proptest::prop_assume!(x.is_finite());
            let shortest = serde_json::to_string(&x).unwrap();
            proptest::prop_assert_eq!(stored(&shortest), (shortest.clone(), bits));
            let long = format!("{x:.16e}");
            proptest::prop_assert_eq!(stored(&long).1, bits, "{}", long);
        }
    }
}
