//! Room-making for the socket read buffers of the lean clients, whose unread bytes are
//! `buf[start..end]` and are consumed from the front.

/// Makes room after `end` for at least one more byte: rewinds an empty buffer, moves unread bytes
/// to the front, or (when a single unread value fills the buffer) doubles it up to `max` bytes.
/// False when the buffer is full at `max`.
pub fn make_room(buf: &mut Vec<u8>, start: &mut usize, end: &mut usize, max: usize) -> bool {
    if *start == *end {
        *start = 0;
        *end = 0;
    } else if *end == buf.len() {
        if *start > 0 {
            buf.copy_within(*start..*end, 0);
            *end -= *start;
            *start = 0;
        } else {
            let grown = (buf.len() * 2).min(max);
            if grown == buf.len() {
                return false;
            }
            buf.resize(grown, 0);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_then_grows_up_to_the_limit() {
        let mut buf = b"abcd".to_vec();
        let (mut start, mut end) = (2, 4);
        assert!(make_room(&mut buf, &mut start, &mut end, 8));
        assert_eq!((&buf[start..end], start, end), (&b"cd"[..], 0, 2));
        let (mut start, mut end) = (0, 4);
        assert!(make_room(&mut buf, &mut start, &mut end, 8));
        assert_eq!(buf.len(), 8);
        let (mut start, mut end) = (0, 8);
        assert!(!make_room(&mut buf, &mut start, &mut end, 8));
        let (mut start, mut end) = (3, 3);
        assert!(make_room(&mut buf, &mut start, &mut end, 8));
        assert_eq!((start, end), (0, 0));
    }
}
