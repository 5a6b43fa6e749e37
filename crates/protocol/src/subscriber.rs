//! Messages subscribers send on the stream port: `join` and `leave`.
//!
//! Anything that does not decode is ignored by the caller (no reply, the connection stays open).

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Join(Join),
    Leave { subscription_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub subscription_id: String,
    pub stream_name: String,
    pub group_id: String,
    /// The item of an item subscription; `None` for a group subscription.
    pub item_id: Option<String>,
    /// Resume position; a malformed `since` is dropped here (the join gets a full sync).
    pub since: Option<Since>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Since {
    pub epoch: String,
    pub seq: u64,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "subscriptionId")]
    subscription_id: String,
    #[serde(rename = "streamName")]
    stream_name: String,
    #[serde(rename = "groupId")]
    group_id: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, borrow)]
    since: Option<&'a RawValue>,
}

/// Decodes one subscriber message; `None` means "ignore it".
pub fn decode_client_message(text: &str) -> Option<ClientMessage> {
    let env: Envelope<'_> = serde_json::from_str(text).ok()?;
    let data: Data<'_> = serde_json::from_str(env.data.get()).ok()?;
    match env.kind {
        "join" => Some(ClientMessage::Join(Join {
            subscription_id: data.subscription_id,
            stream_name: data.stream_name,
            group_id: data.group_id,
            item_id: data.id,
            since: data
                .since
                .and_then(|raw| serde_json::from_str(raw.get()).ok()),
        })),
        "leave" => Some(ClientMessage::Leave {
            subscription_id: data.subscription_id,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_variants() {
        let m = decode_client_message(
            r#"{"type":"join","data":{"subscriptionId":"s","streamName":"chat","groupId":"g","id":null}}"#,
        );
        let Some(ClientMessage::Join(j)) = m else {
            panic!()
        };
        assert_eq!(j.item_id, None);
        assert_eq!(j.since, None);

        let Some(ClientMessage::Join(j)) = decode_client_message(
            r#"{"type":"join","data":{"subscriptionId":"s","streamName":"c","groupId":"g","id":"i","since":{"epoch":"e","seq":4}}}"#,
        ) else {
            panic!()
        };
        assert_eq!(j.item_id.as_deref(), Some("i"));
        assert_eq!(
            j.since,
            Some(Since {
                epoch: "e".into(),
                seq: 4
            })
        );
    }

    #[test]
    fn malformed_since_is_dropped_not_fatal() {
        let Some(ClientMessage::Join(j)) = decode_client_message(
            r#"{"type":"join","data":{"subscriptionId":"s","streamName":"c","groupId":"g","since":{"epoch":1,"seq":"x"}}}"#,
        ) else {
            panic!()
        };
        assert_eq!(j.since, None);
    }

    #[test]
    fn invalid_messages_are_ignored() {
        for text in [
            "",
            "{",
            r#"{"type":"ping"}"#,
            r#"{"type":"Join","data":{"subscriptionId":"s","streamName":"c","groupId":"g"}}"#,
            r#"{"type":"join","data":{"subscriptionId":1,"streamName":"c","groupId":"g"}}"#,
            r#"{"type":"join","data":{"subscriptionId":"s","groupId":"g"}}"#,
            r#"{"type":"join","data":{"subscriptionId":"s","streamName":"c","groupId":"g","id":5}}"#,
        ] {
            assert_eq!(decode_client_message(text), None, "{text}");
        }
    }
}
