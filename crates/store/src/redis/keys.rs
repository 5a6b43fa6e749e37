//! The Redis data layout (improvements.md k): key and channel names of a group, and the
//! pre-escaped JSON fragments the write scripts splice into frame bodies.
//!
//! Names appear in keys with `%` written as `%25` and `:` as `%3A`, all other bytes unchanged, so
//! names without those two characters give exactly the original engine's keys
//! (`stream:<S>:<G>`) while `("a:b", "c")` and `("a", "b:c")` can never collide (j).

use iii_stream_domain::GroupKey;

/// Set of the raw names of every existing stream.
pub(crate) const STREAMS: &str = "iii-stream:streams";

/// `name` with `%` → `%25` and `:` → `%3A`.
pub(crate) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

/// Set of the raw ids of the existing groups of `stream`.
pub(crate) fn groups_key(stream: &str) -> String {
    format!("iii-stream:groups:{}", encode(stream))
}

/// Every Redis name belonging to one group.
#[derive(Debug, Clone)]
pub(crate) struct GroupKeys {
    /// Hash: item id (raw) → the item's JSON text. The original engine's key.
    pub(crate) data: String,
    /// Sorted set: item id → insertion rank. Redis hashes forget insertion order once they grow,
    /// and listings must keep it (stream.md §1).
    pub(crate) order: String,
    /// Hash: `epoch`, `seq`, `ts` (the sequencer).
    pub(crate) meta: String,
    /// List of recent frame bodies, oldest first.
    pub(crate) hist: String,
    /// The stream's group index (see [`groups_key`]).
    pub(crate) groups: String,
    /// Pub/sub channel carrying the group's frames.
    pub(crate) channel: String,
}

impl GroupKeys {
    pub(crate) fn new(group: &GroupKey) -> Self {
        let (s, g) = (encode(&group.stream), encode(&group.group));
        Self {
            data: format!("stream:{s}:{g}"),
            order: format!("iii-stream:order:{s}:{g}"),
            meta: format!("iii-stream:meta:{s}:{g}"),
            hist: format!("iii-stream:hist:{s}:{g}"),
            groups: groups_key(&group.stream),
            channel: format!("iii-stream:ev:{s}:{g}"),
        }
    }
}

/// A string as a JSON string literal, escaped exactly as the frame serialiser escapes it.
pub(crate) fn json_string(s: &str) -> String {
    // Serialising a &str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

/// `"streamName":…,"groupId":…,"id":…`: the part of a frame body between `timestamp` and
/// `event`, built here so that the script publishes names escaped byte for byte as
/// [`iii_stream_domain::Frame::new`] would.
pub(crate) fn frame_head(group: &GroupKey, item: Option<&str>) -> String {
    let id = item.map_or_else(|| "null".to_owned(), json_string);
    format!(
        "\"streamName\":{},\"groupId\":{},\"id\":{id}",
        json_string(&group.stream),
        json_string(&group.group)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_give_the_original_keys() {
        let keys = GroupKeys::new(&GroupKey::new("chat", "room-1"));
        assert_eq!(keys.data, "stream:chat:room-1");
        assert_eq!(keys.meta, "iii-stream:meta:chat:room-1");
        assert_eq!(keys.hist, "iii-stream:hist:chat:room-1");
        assert_eq!(keys.channel, "iii-stream:ev:chat:room-1");
        assert_eq!(keys.groups, "iii-stream:groups:chat");
    }

    #[test]
    fn colons_and_percents_cannot_collide() {
        let a = GroupKeys::new(&GroupKey::new("a:b", "c"));
        let b = GroupKeys::new(&GroupKey::new("a", "b:c"));
        assert_eq!(a.data, "stream:a%3Ab:c");
        assert_eq!(b.data, "stream:a:b%3Ac");
        assert_ne!(a.data, b.data);
        // A literal "%3A" in a name is not confused with an encoded ':'.
        let c = GroupKeys::new(&GroupKey::new("a%3Ab", "c"));
        assert_eq!(c.data, "stream:a%253Ab:c");
        assert_eq!(encode("✓ x\0*/"), "✓ x\0*/");
    }

    #[test]
    fn head_escapes_like_the_frame_serialiser() {
        let head = frame_head(&GroupKey::new("s\"1", "g\n"), None);
        assert_eq!(head, r#""streamName":"s\"1","groupId":"g\n","id":null"#);
        let head = frame_head(&GroupKey::new("s", "g"), Some("✓"));
        assert_eq!(head, r#""streamName":"s","groupId":"g","id":"✓""#);
    }
}
