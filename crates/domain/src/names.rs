//! Stream, group and item names, and the keys built from them.
//!
//! Names are arbitrary Unicode compared byte for byte; keys are tuples, never joined strings, so
//! `("a:b", "c")` and `("a", "b:c")` can never collide.

use std::fmt;
use std::sync::Arc;

/// Longest accepted name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 4096;

/// Whether `name` is acceptable as a stream, group or item name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_BYTES
}

/// The message of `STREAM_INVALID_NAME` for a field.
pub fn invalid_name_message(field: &str) -> String {
    format!("{field} must be a non-empty string of at most {MAX_NAME_BYTES} bytes")
}

/// A (stream, group) pair: the unit of ordering, history and subscription.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub stream: Arc<str>,
    pub group: Arc<str>,
}

impl GroupKey {
    pub fn new(stream: impl Into<Arc<str>>, group: impl Into<Arc<str>>) -> Self {
        Self {
            stream: stream.into(),
            group: group.into(),
        }
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:?}, {:?})", self.stream, self.group)
    }
}

/// A (stream, group, item) triple.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ItemKey {
    pub group: GroupKey,
    pub item: Arc<str>,
}

impl ItemKey {
    pub fn new(group: GroupKey, item: impl Into<Arc<str>>) -> Self {
        Self {
            group,
            item: item.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_bounds() {
        assert!(!is_valid_name(""));
        assert!(is_valid_name("\0"));
        assert!(is_valid_name(&"é".repeat(2048)));
        assert!(!is_valid_name(&"é".repeat(2049)));
    }

    #[test]
    fn keys_with_colons_do_not_collide() {
        assert_ne!(GroupKey::new("a:b", "c"), GroupKey::new("a", "b:c"));
    }
}
