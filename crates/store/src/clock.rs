//! Wall-clock time and fresh epochs, the only sources of non-determinism of the commit path.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new random epoch: 64 bits as 16 lower-case hex characters.
pub(crate) fn new_epoch() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}
