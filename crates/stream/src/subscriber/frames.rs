//! Frames built for one subscription: syncs and `unauthorized` answers.

use iii_stream_domain::{GroupKey, Stamp};
use iii_stream_protocol::RawValue;
use iii_stream_protocol::frame::{EventBody, FrameBody, FrameType, RejectReason};
use std::time::{SystemTime, UNIX_EPOCH};

fn text(body: &FrameBody<'_>) -> String {
    // A frame holds only strings, integers and valid raw JSON.
    serde_json::to_string(body).unwrap_or_default()
}

/// A sync frame: `data` is the item's value (or `null`) or the group's array of values.
pub(crate) fn sync(
    group: &GroupKey,
    item: Option<&str>,
    stamp: &Stamp,
    data: &RawValue,
    subscription_id: &str,
) -> String {
    text(&FrameBody {
        kind: FrameType::Stream,
        timestamp: stamp.timestamp,
        stream_name: &group.stream,
        group_id: &group.group,
        id: item,
        event: EventBody::Sync { data },
        seq: Some(stamp.seq),
        epoch: Some(&stamp.epoch),
        subscription_id: Some(subscription_id),
        reason: None,
    })
}

/// The answer to a refused join.
pub(crate) fn unauthorized(
    stream: &str,
    group: &str,
    item: Option<&str>,
    subscription_id: &str,
    reason: RejectReason,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    text(&FrameBody {
        kind: FrameType::Stream,
        timestamp: now,
        stream_name: stream,
        group_id: group,
        id: item,
        event: EventBody::Unauthorized,
        seq: None,
        epoch: None,
        subscription_id: Some(subscription_id),
        reason: Some(reason),
    })
}
