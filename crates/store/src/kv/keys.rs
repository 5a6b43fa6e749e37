//! The on-disk encoding of the kv store's one table.
//!
//! Key: `u32 BE len(stream) ++ stream ++ u32 BE len(group) ++ group ++ u64 BE order`. The length
//! prefixes make the encoding injective whatever bytes names contain (`("a:b", "c")` and
//! `("a", "b:c")` share no key), and the big-endian position sorts a group's items by insertion
//! order, so every group is one contiguous key range scanned in the order `stream::list` needs.
//!
//! Value: `u32 BE len(item) ++ item ++ value JSON ++ u32 BE crc32(key ++ everything before)`.
//! The checksum covers the key too, so a value that ended up under the wrong key is caught as
//! surely as a flipped bit.

use iii_stream_domain::GroupKey;

const LEN: usize = 4;
const ORDER: usize = 8;
const CRC: usize = 4;

/// Why a stored key or value cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FormatError {
    #[error("key is malformed")]
    Key,
    #[error("value is truncated")]
    Truncated,
    #[error("checksum mismatch")]
    Checksum,
    #[error("a name is not UTF-8")]
    Utf8,
}

/// A decoded key, borrowing from the stored bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Key<'a> {
    pub(crate) stream: &'a str,
    pub(crate) group: &'a str,
    pub(crate) order: u64,
}

/// Replaces `buf` with the key of the item at `order` in `group`.
pub(crate) fn encode_key(buf: &mut Vec<u8>, group: &GroupKey, order: u64) {
    buf.clear();
    push_name(buf, &group.stream);
    push_name(buf, &group.group);
    buf.extend_from_slice(&order.to_be_bytes());
}

pub(crate) fn decode_key(bytes: &[u8]) -> Result<Key<'_>, FormatError> {
    let (stream, rest) = take_name(bytes).ok_or(FormatError::Key)?;
    let (group, rest) = take_name(rest).ok_or(FormatError::Key)?;
    let order: [u8; ORDER] = rest.try_into().map_err(|_| FormatError::Key)?;
    Ok(Key {
        stream: std::str::from_utf8(stream).map_err(|_| FormatError::Utf8)?,
        group: std::str::from_utf8(group).map_err(|_| FormatError::Utf8)?,
        order: u64::from_be_bytes(order),
    })
}

/// Replaces `buf` with the stored form of `item` holding the JSON text `value`, sealed for `key`.
pub(crate) fn encode_value(buf: &mut Vec<u8>, key: &[u8], item: &str, value: &str) {
    buf.clear();
    push_name(buf, item);
    buf.extend_from_slice(value.as_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(key);
    crc.update(buf);
    buf.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// The item id and JSON text of a stored value, after checking it belongs to `key`. The JSON
/// itself is validated by the caller, which owns the text.
pub(crate) fn decode_value<'a>(
    key: &[u8],
    bytes: &'a [u8],
) -> Result<(&'a str, &'a [u8]), FormatError> {
    let split = bytes.len().checked_sub(CRC).ok_or(FormatError::Truncated)?;
    let (body, stored) = bytes.split_at(split);
    let mut crc = crc32fast::Hasher::new();
    crc.update(key);
    crc.update(body);
    if crc.finalize().to_be_bytes() != stored {
        return Err(FormatError::Checksum);
    }
    let (item, value) = take_name(body).ok_or(FormatError::Truncated)?;
    let item = std::str::from_utf8(item).map_err(|_| FormatError::Utf8)?;
    Ok((item, value))
}

fn push_name(buf: &mut Vec<u8>, name: &str) {
    // Names are at most 4096 bytes (stream.md §1); u32 leaves room for any future limit.
    buf.extend_from_slice(&(name.len() as u32).to_be_bytes());
    buf.extend_from_slice(name.as_bytes());
}

fn take_name(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<LEN>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The key range holding exactly the items of `group`, in insertion order.
#[cfg(test)]
pub(crate) fn group_range(group: &GroupKey) -> std::ops::RangeInclusive<Vec<u8>> {
    let (mut start, mut end) = (Vec::new(), Vec::new());
    encode_key(&mut start, group, 0);
    encode_key(&mut end, group, u64::MAX);
    start..=end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stream: &str, group: &str, order: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_key(&mut buf, &GroupKey::new(stream, group), order);
        buf
    }

    #[test]
    fn names_never_collide_whatever_they_contain() {
        let pairs = [
            ("a:b", "c"),
            ("a", "b:c"),
            ("a", "bc"),
            ("ab", "c"),
            ("", "abc"),
            ("a\0", "b"),
            ("a", "\0b"),
            ("\u{0}\u{0}\u{0}\u{1}a", ""),
        ];
        let mut keys: Vec<_> = pairs.iter().map(|(s, g)| key(s, g, 7)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), pairs.len());
        for (s, g) in pairs {
            let k = key(s, g, 7);
            assert_eq!(
                decode_key(&k).unwrap(),
                Key {
                    stream: s,
                    group: g,
                    order: 7
                }
            );
        }
    }

    #[test]
    fn a_group_is_one_range_sorted_by_insertion_order() {
        let g = GroupKey::new("s", "g");
        let mut keys = [
            key("s", "g", 256),
            key("s", "g", 1),
            key("s", "g:x", 0),
            key("s", "g", u64::MAX),
            key("s", "", 5),
            key("s", "g", 0),
            key("s:g", "", 2),
        ];
        keys.sort();
        let range = group_range(&g);
        let inside: Vec<_> = keys
            .iter()
            .filter(|k| range.contains(*k))
            .map(|k| decode_key(k).unwrap().order)
            .collect();
        assert_eq!(inside, [0, 1, 256, u64::MAX]);
        // The group's keys are contiguous in the sorted table.
        let first = keys.iter().position(|k| range.contains(k)).unwrap();
        assert!(keys[first..first + 4].iter().all(|k| range.contains(k)));
    }

    #[test]
    fn values_round_trip_and_detect_any_damage() {
        let k = key("s", "g", 3);
        let mut v = Vec::new();
        encode_value(&mut v, &k, "item:1", r#"{"a":1}"#);
        assert_eq!(
            decode_value(&k, &v).unwrap(),
            ("item:1", &br#"{"a":1}"#[..])
        );
        for i in 0..v.len() {
            let mut bad = v.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_value(&k, &bad).is_err(),
                "flip at byte {i} not detected"
            );
        }
        // A sound value under another key is damage too.
        assert_eq!(
            decode_value(&key("s", "g", 4), &v),
            Err(FormatError::Checksum)
        );
        assert_eq!(decode_value(&k, &v[..3]), Err(FormatError::Truncated));
        assert!(decode_key(&k[..k.len() - 1]).is_err());
        assert!(decode_key(&[0, 0, 0, 9, b'a']).is_err());
    }
}
