//! The subscriber URLs of the stream port: `/stream/{stream}/{group}[/{item}]` and the resume
//! position in the query string (`?since_epoch=<epoch>&since_seq=<seq>`).
//!
//! Segments are split before they are percent-decoded, so an encoded `/` (`%2F`) stays inside a
//! name; `+` is not special.

use crate::subscriber::Since;
use percent_encoding::percent_decode_str;

/// The subscription a `/stream/...` URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPath {
    pub stream: String,
    pub group: String,
    pub item: Option<String>,
}

/// Why a `/stream/...` path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not two or three segments (HTTP 404).
    NotFound,
    /// A segment that is empty or not UTF-8 once decoded (HTTP 400).
    BadRequest,
}

/// Parses what follows `/stream/`: `{stream}/{group}[/{item}][/]`.
pub fn parse_stream_path(rest: &str) -> Result<StreamPath, PathError> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    if !(2..=3).contains(&segments.len()) {
        return Err(PathError::NotFound);
    }
    let decode = |segment: &str| match percent_decode_str(segment).decode_utf8() {
        Ok(name) if !name.is_empty() => Ok(name.into_owned()),
        _ => Err(PathError::BadRequest),
    };
    Ok(StreamPath {
        stream: decode(segments[0])?,
        group: decode(segments[1])?,
        item: segments.get(2).map(|s| decode(s)).transpose()?,
    })
}

/// `since_epoch` and `since_seq` query parameters; `None` unless both are present and valid.
pub fn since_from_query(query: Option<&str>) -> Option<Since> {
    let (mut epoch, mut seq) = (None, None);
    for piece in query?.split('&') {
        match piece.split_once('=') {
            Some(("since_epoch", value)) => {
                epoch = percent_decode_str(value)
                    .decode_utf8()
                    .ok()
                    .map(|v| v.into_owned());
            }
            Some(("since_seq", value)) => seq = value.parse().ok(),
            _ => {}
        }
    }
    Some(Since {
        epoch: epoch?,
        seq: seq?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        let t = parse_stream_path("a%3Ab/g%2F1/%E2%9C%93").unwrap();
        assert_eq!((t.stream.as_str(), t.group.as_str()), ("a:b", "g/1"));
        assert_eq!(t.item.as_deref(), Some("✓"));
        let t = parse_stream_path("chat/room-1/").unwrap();
        assert_eq!(t.item, None);
        assert_eq!(parse_stream_path("chat/%20x/").unwrap().group, " x");
        assert_eq!(parse_stream_path("chat/a+b").unwrap().group, "a+b");
        assert_eq!(parse_stream_path("chat"), Err(PathError::NotFound));
        assert_eq!(parse_stream_path("a/b/c/d"), Err(PathError::NotFound));
        assert_eq!(parse_stream_path("chat//"), Err(PathError::BadRequest));
        assert_eq!(parse_stream_path("chat/%FF"), Err(PathError::BadRequest));
    }

    #[test]
    fn since_query() {
        assert_eq!(
            since_from_query(Some("token=x&since_epoch=ab&since_seq=4")),
            Some(Since {
                epoch: "ab".into(),
                seq: 4
            })
        );
        assert_eq!(since_from_query(Some("since_epoch=ab")), None);
        assert_eq!(since_from_query(Some("since_epoch=ab&since_seq=x")), None);
    }
}
