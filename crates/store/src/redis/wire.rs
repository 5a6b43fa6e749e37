//! Frames read back from Redis (pub/sub messages and history entries): the body text the write
//! script published, parsed once per receiving instance for the fields fan-out needs.

use iii_stream_domain::{EventType, Frame, GroupKey, Stamp};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[error("malformed frame from redis: {0}")]
pub(crate) struct MalformedFrame(String);

#[derive(Deserialize)]
struct Head<'a> {
    timestamp: u64,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event: EventHead<'a>,
    seq: u64,
    #[serde(borrow)]
    epoch: Cow<'a, str>,
}

#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

fn event_type(kind: &str) -> Option<EventType> {
    Some(match kind {
        "create" => EventType::Create,
        "update" => EventType::Update,
        "delete" => EventType::Delete,
        "event" => EventType::Event,
        _ => return None,
    })
}

/// Parses a published frame body of `group`. The body is kept byte for byte: subscribers and
/// triggers on every instance see exactly what the writer published.
pub(crate) fn parse(group: &GroupKey, body: String) -> Result<Frame, MalformedFrame> {
    let head: Head<'_> = serde_json::from_str(&body).map_err(|e| MalformedFrame(e.to_string()))?;
    let event_type = event_type(&head.event.kind)
        .ok_or_else(|| MalformedFrame(format!("event type {:?}", head.event.kind)))?;
    let item = head.id.map(|id| Arc::from(&*id));
    let stamp = Stamp {
        epoch: Arc::from(&*head.epoch),
        seq: head.seq,
        timestamp: head.timestamp,
    };
    let body = RawValue::from_string(body).map_err(|e| MalformedFrame(e.to_string()))?;
    Ok(Frame {
        group: group.clone(),
        item,
        event_type,
        stamp,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iii_stream_domain::Change;

    #[test]
    fn a_frame_survives_the_round_trip() {
        let group = GroupKey::new("s:1", "g");
        let data: Arc<RawValue> = Arc::from(RawValue::from_string(r#"{"n":1}"#.into()).unwrap());
        let original = Frame::new(
            group.clone(),
            Some("✓".into()),
            &Change::Delete(data),
            Stamp {
                epoch: "00ff".into(),
                seq: 12,
                timestamp: 99,
            },
        );
        let back = parse(&group, original.body.get().to_owned()).unwrap();
        assert_eq!(back.body.get(), original.body.get());
        assert_eq!(back.stamp, original.stamp);
        assert_eq!(back.item, original.item);
        assert_eq!(back.event_type, EventType::Delete);
    }

    #[test]
    fn garbage_is_refused() {
        let group = GroupKey::new("s", "g");
        assert!(parse(&group, "nope".into()).is_err());
        assert!(
            parse(
                &group,
                r#"{"timestamp":1,"id":null,"event":{"type":"sync"},"seq":1,"epoch":"e"}"#.into()
            )
            .is_err()
        );
    }
}
