//! Wire formats of iii-stream.
//!
//! Pure serde types and codecs for everything that crosses a socket: the iii worker protocol on the
//! engine port, the subscriber protocol on the stream port, the event frame shared by subscribers and
//! `stream` triggers, and the error body. No I/O lives here.
//!
//! Decoding is deliberately lenient (unknown fields and message types are ignored, `null` equals
//! absent) because the published SDKs add fields freely; encoding is exact, because some SDKs decode
//! strictly.

pub mod engine;
pub mod error;
pub mod frame;
pub mod subscriber;
pub mod url;

pub use error::{ErrorBody, ErrorCode};
pub use serde_json::value::RawValue;
