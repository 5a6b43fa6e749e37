//! Where committed frames go: fan-out to subscribers and `stream` trigger dispatch.

use crate::Snapshot;
use iii_stream_domain::{Frame, GroupKey};
use std::sync::Arc;

/// Receives committed frames, in `seq` order per group.
///
/// Implementations must not block: they are called from the commit path (under a group lock for
/// the in-memory store, from the committer thread for the durable one) and from the Redis relay
/// task.
pub trait EventSink: Send + Sync + 'static {
    /// Fan-out, and when `local` also [`EventSink::committed`]. The kv store publishes each frame
    /// it commits with `local = true`; the Redis relay publishes every frame received from
    /// pub/sub, including this instance's own, with `local = false`.
    fn publish(&self, frame: &Arc<Frame>, local: bool);

    /// A frame committed by this process whose fan-out arrives separately (Redis: through
    /// pub/sub): `stream` trigger dispatch only. Called in `seq` order per group.
    fn committed(&self, _frame: &Arc<Frame>) {}

    /// Frames of `group` were lost in a way that cannot be repaired from history (e.g. Redis
    /// restarted): every local subscription of the group must be sent a fresh sync from
    /// `snapshot` (which holds every item of the group) and continue after its `seq`.
    fn resync(&self, _group: &GroupKey, _snapshot: &Snapshot) {}

    /// Whether fan-out still needs the group's numbering (it has subscribers, or history a
    /// resume may still ask for): an empty group is kept in memory while this holds.
    fn retains(&self, _group: &GroupKey) -> bool {
        false
    }
}
