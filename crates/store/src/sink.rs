//! Where committed frames go: fan-out to subscribers and `stream` trigger dispatch.

use iii_stream_domain::Frame;
use std::sync::Arc;

/// Receives every frame once its change is durable, in `seq` order per group.
///
/// Implementations must not block: they are called from the commit path (under a group lock for
/// the in-memory store, from the committer thread for the durable one).
pub trait EventSink: Send + Sync + 'static {
    /// `local` is true when this process committed the change (it then owns trigger dispatch);
    /// false for frames relayed from another process through a shared backend.
    fn publish(&self, frame: &Arc<Frame>, local: bool);
}
