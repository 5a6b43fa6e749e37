//! Cheap field extraction from JSON text the generator itself shaped.
//!
//! Parsing every reply or frame into a tree would cost the generator more than the server spends
//! producing it. The messages it reads have a known shape (the server's replies and frames, which
//! carry the values the generator wrote), so a byte search for `"key":` followed by a number or a
//! plain string is enough and exact for them. Not a JSON parser: keys inside user data that
//! collide with the searched ones would fool it, which the generator's own values never do.

use memchr::memmem::{Finder, FinderRev};
use std::sync::LazyLock;

/// Compiled searches for the keys the generator reads.
pub struct Keys {
    pub invocation_id: Finder<'static>,
    pub error: Finder<'static>,
    /// Searched from the end: top-level keys that follow the user data.
    pub seq: FinderRev<'static>,
    pub epoch: FinderRev<'static>,
    pub t: Finder<'static>,
    pub n: Finder<'static>,
    pub sync: Finder<'static>,
    pub unauthorized: Finder<'static>,
}

pub static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    invocation_id: Finder::new(b"\"invocation_id\":\""),
    error: Finder::new(b"\"error\":{"),
    seq: FinderRev::new(b"\"seq\":"),
    epoch: FinderRev::new(b"\"epoch\":\""),
    t: Finder::new(b"\"t\":"),
    n: Finder::new(b"\"n\":"),
    sync: Finder::new(b"\"event\":{\"type\":\"sync\""),
    unauthorized: Finder::new(b"\"event\":{\"type\":\"unauthorized\""),
});

/// The unsigned integer right after the first occurrence of `key`.
pub fn u64_after(hay: &[u8], key: &Finder<'_>) -> Option<u64> {
    let at = key.find(hay)? + key.needle().len();
    parse_u64(&hay[at..])
}

/// The unsigned integer right after the last occurrence of `key` (top-level keys that follow
/// user data, such as a frame's `seq`, are found from the end).
pub fn u64_after_last(hay: &[u8], key: &FinderRev<'_>) -> Option<u64> {
    let at = key.rfind(hay)? + key.needle().len();
    parse_u64(&hay[at..])
}

/// The largest unsigned integer following any occurrence of `key` (a sync carries many values).
pub fn max_u64_after_all(hay: &[u8], key: &Finder<'_>) -> Option<u64> {
    let len = key.needle().len();
    key.find_iter(hay)
        .filter_map(|at| parse_u64(&hay[at + len..]))
        .max()
}

/// The characters of a string value starting right after the last occurrence of `key` (which
/// ends with its opening quote), up to the closing quote. Escapes are not decoded: the values read
/// this way (epochs) contain none.
pub fn str_after_last<'a>(hay: &'a [u8], key: &FinderRev<'_>) -> Option<&'a [u8]> {
    let at = key.rfind(hay)? + key.needle().len();
    let len = memchr::memchr(b'"', &hay[at..])?;
    Some(&hay[at..at + len])
}

/// Leading decimal digits as a `u64`; `None` if there are none or they overflow.
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    bytes[..digits].iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: &[u8] = br#"{"type":"stream","timestamp":17,"streamName":"b","groupId":"g0","id":"i3","event":{"type":"update","data":{"t":123456789,"n":42,"p":"xx"}},"seq":981,"epoch":"a1b2","subscriptionId":"s7"}"#;

    #[test]
    fn reads_the_fields_of_an_event_frame() {
        assert_eq!(u64_after(FRAME, &KEYS.t), Some(123_456_789));
        assert_eq!(u64_after(FRAME, &KEYS.n), Some(42));
        assert_eq!(u64_after_last(FRAME, &KEYS.seq), Some(981));
        assert_eq!(str_after_last(FRAME, &KEYS.epoch), Some(&b"a1b2"[..]));
        assert!(KEYS.sync.find(FRAME).is_none());
    }

    #[test]
    fn the_last_seq_wins_over_one_inside_data() {
        let frame = br#"{"event":{"type":"create","data":{"seq":5}},"seq":6,"epoch":"e"}"#;
        assert_eq!(u64_after(frame, &Finder::new(b"\"seq\":")), Some(5));
        assert_eq!(u64_after_last(frame, &KEYS.seq), Some(6));
    }

    #[test]
    fn a_sync_yields_its_largest_counter() {
        let sync = br#"{"event":{"type":"sync","data":[{"t":1,"n":7},{"t":2,"n":19},{"t":3,"n":11}]},"seq":40}"#;
        assert!(KEYS.sync.find(sync).is_some());
        assert_eq!(max_u64_after_all(sync, &KEYS.n), Some(19));
        assert_eq!(max_u64_after_all(b"{}", &KEYS.n), None);
    }

    #[test]
    fn invocation_ids_and_errors_of_replies() {
        let ok = br#"{"type":"invocationresult","invocation_id":"4097","function_id":"stream::set","result":{"old_value":null,"new_value":{"t":1}}}"#;
        let failed = br#"{"type":"invocationresult","invocation_id":"12","function_id":"stream::set","error":{"code":"x","message":"y"}}"#;
        assert_eq!(u64_after(ok, &KEYS.invocation_id), Some(4097));
        assert!(KEYS.error.find(ok).is_none());
        assert!(KEYS.error.find(failed).is_some());
    }

    #[test]
    fn numbers_are_parsed_strictly() {
        assert_eq!(parse_u64(b"0,"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615}"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
    }
}
