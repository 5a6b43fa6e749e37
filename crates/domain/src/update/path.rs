//! Path validation (stream.md §4.3) and the path labels used in error messages (§4.4).

use super::Failure;

const MAX_SEGMENTS: usize = 32;
const MAX_SEGMENT_BYTES: usize = 256;

/// Keys that would let a JavaScript consumer of the value reach an object's prototype.
pub(crate) fn is_proto_key(key: &str) -> bool {
    matches!(key, "__proto__" | "constructor" | "prototype")
}

/// Validates the path of a single-key op, where `""` is the root and has no segments.
pub(crate) fn validate_key(key: &str) -> Result<(), Failure> {
    if key.is_empty() {
        Ok(())
    } else {
        validate_segments(&[key])
    }
}

/// Validates the segments of a nesting op. The depth check comes first; then each segment in
/// turn gets every check before the next segment is looked at.
pub(crate) fn validate_segments<S: AsRef<str>>(segments: &[S]) -> Result<(), Failure> {
    if segments.len() > MAX_SEGMENTS {
        return Err(Failure::new(
            "path.too_deep",
            format!(
                "Path depth {} exceeds maximum of {MAX_SEGMENTS}",
                segments.len()
            ),
        ));
    }
    segments
        .iter()
        .try_for_each(|segment| validate_segment(segment.as_ref()))
}

fn validate_segment(segment: &str) -> Result<(), Failure> {
    if segment.is_empty() {
        return Err(Failure::new(
            "path.empty_segment",
            "Path contains an empty segment".to_owned(),
        ));
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err(Failure::new(
            "path.segment_too_long",
            format!(
                "Path segment of {} bytes exceeds maximum of {MAX_SEGMENT_BYTES}",
                segment.len()
            ),
        ));
    }
    if is_proto_key(segment) {
        return Err(Failure::new(
            "path.proto_polluted",
            format!("Path segment '{segment}' is not allowed (prototype pollution)."),
        ));
    }
    Ok(())
}

/// The label of a single-key path: the key itself, or `root`.
pub(crate) fn key_label(key: &str) -> &str {
    if key.is_empty() { "root" } else { key }
}

/// The label of a nesting path: `[seg1, seg2, …]`, or `root`.
pub(crate) fn segments_label(segments: &[String]) -> String {
    if segments.is_empty() {
        "root".to_owned()
    } else {
        format!("[{}]", segments.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_message<S: AsRef<str>>(segments: &[S]) -> (&'static str, String) {
        let failure = validate_segments(segments).expect_err("path should be rejected");
        (failure.code, failure.message)
    }

    #[test]
    fn thirty_two_segments_pass_and_thirty_three_fail() {
        assert_eq!(validate_segments(&["a"; 32]), Ok(()));
        assert_eq!(
            code_and_message(&["a"; 33]),
            (
                "path.too_deep",
                "Path depth 33 exceeds maximum of 32".to_owned()
            )
        );
    }

    #[test]
    fn depth_is_checked_before_segments() {
        let mut segments = vec!["a"; 40];
        segments[0] = "";
        assert_eq!(code_and_message(&segments).0, "path.too_deep");
    }

    #[test]
    fn empty_segment_fails() {
        assert_eq!(
            code_and_message(&["a", ""]),
            (
                "path.empty_segment",
                "Path contains an empty segment".to_owned()
            )
        );
    }

    #[test]
    fn segment_length_is_counted_in_bytes() {
        assert_eq!(validate_segments(&["x".repeat(256)]), Ok(()));
        assert_eq!(
            code_and_message(&["x".repeat(257)]),
            (
                "path.segment_too_long",
                "Path segment of 257 bytes exceeds maximum of 256".to_owned()
            )
        );
        // 129 two-byte characters: 129 chars but 258 bytes.
        assert_eq!(
            code_and_message(&["é".repeat(129)]).1,
            "Path segment of 258 bytes exceeds maximum of 256"
        );
    }

    #[test]
    fn proto_segments_fail() {
        for key in ["__proto__", "constructor", "prototype"] {
            assert_eq!(
                code_and_message(&["a", key]),
                (
                    "path.proto_polluted",
                    format!("Path segment '{key}' is not allowed (prototype pollution).")
                )
            );
        }
        assert_eq!(
            validate_segments(&["Constructor", "proto", "__proto"]),
            Ok(())
        );
    }

    #[test]
    fn segments_are_checked_in_order() {
        assert_eq!(
            code_and_message(&["__proto__", ""]).0,
            "path.proto_polluted"
        );
        assert_eq!(
            code_and_message(&["ok", "", "__proto__"]).0,
            "path.empty_segment"
        );
        assert_eq!(
            code_and_message(&["x".repeat(300), String::new()]).0,
            "path.segment_too_long"
        );
    }

    #[test]
    fn key_root_has_no_segments() {
        assert_eq!(validate_key(""), Ok(()));
        assert_eq!(validate_key("a.b"), Ok(()));
        assert_eq!(
            validate_key("prototype").map_err(|f| f.code),
            Err("path.proto_polluted")
        );
        assert_eq!(
            validate_key(&"k".repeat(257)).map_err(|f| f.code),
            Err("path.segment_too_long")
        );
    }

    #[test]
    fn labels() {
        assert_eq!(key_label(""), "root");
        assert_eq!(key_label("a.b"), "a.b");
        assert_eq!(segments_label(&[]), "root");
        assert_eq!(segments_label(&["k".to_owned()]), "[k]");
        assert_eq!(
            segments_label(&["a".to_owned(), "b".to_owned(), "c".to_owned()]),
            "[a, b, c]"
        );
    }
}
