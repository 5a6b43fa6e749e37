//! Handshake authentication (stream.md §8.2, improvements.md h): the auth function's input, and
//! the decision taken from its outcome.

use crate::StreamService;
use crate::calls::{Call, observe};
use iii_stream_engine::CallOptions;
use iii_stream_protocol::RawValue;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the auth function is told about a handshake.
#[derive(Debug, Clone)]
pub struct HandshakeRequest {
    /// Header names (any case) and values, in arrival order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The raw request path, not decoded.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub enum AuthDecision {
    /// Upgrade; the context is attached to every join/leave payload of the connection.
    Accept { context: Option<Arc<RawValue>> },
    /// Answer HTTP 401.
    Reject,
}

#[derive(Serialize)]
struct AuthInput<'a> {
    headers: BTreeMap<String, &'a str>,
    path: &'a str,
    query_params: BTreeMap<&'a str, Vec<&'a str>>,
    addr: String,
}

impl HandshakeRequest {
    fn input(&self) -> AuthInput<'_> {
        let mut headers = BTreeMap::new();
        for (name, value) in &self.headers {
            // Only visible ASCII (and spaces inside) is passed on; a repeated header keeps its
            // last value.
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            if value
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
            {
                headers.insert(name.to_ascii_lowercase(), value);
            }
        }
        AuthInput {
            headers,
            path: &self.path,
            query_params: query_params(self.query.as_deref().unwrap_or("")),
            addr: self.addr.to_string(),
        }
    }
}

/// Splits a raw query string as the original does: on `&`, then at the first `=`; no decoding.
fn query_params(query: &str) -> BTreeMap<&str, Vec<&str>> {
    let mut params: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for piece in query.split('&') {
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        if !key.is_empty() {
            params.entry(key).or_default().push(value);
        }
    }
    params
}

impl StreamService {
    /// Runs the configured auth function for a handshake.
    pub async fn authenticate(&self, request: &HandshakeRequest) -> AuthDecision {
        let Some(function) = self.config.auth_function.as_deref() else {
            return AuthDecision::Accept { context: None };
        };
        let fail_closed = self.config.fail_closed;
        let failed = || {
            if fail_closed {
                AuthDecision::Reject
            } else {
                AuthDecision::Accept { context: None }
            }
        };
        let Ok(input) = serde_json::value::to_raw_value(&request.input()) else {
            return failed();
        };
        let options = CallOptions::with_timeout(self.timeouts.auth);
        let outcome = self.engine.invoke(function, &input, options).await;
        let Ok(Some(result)) = observe(Call::Auth, function, outcome) else {
            return failed();
        };
        #[derive(serde::Deserialize)]
        struct Output {
            #[serde(default)]
            unauthorized: serde_json::Value,
            #[serde(default)]
            context: Option<Box<RawValue>>,
        }
        if !result.get().starts_with('{') {
            return failed();
        }
        match serde_json::from_str::<Output>(result.get()) {
            Ok(output) if output.unauthorized == serde_json::Value::Bool(true) => {
                AuthDecision::Reject
            }
            Ok(output) => AuthDecision::Accept {
                context: output.context.map(Arc::from),
            },
            Err(_) => failed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_follow_the_original_split() {
        let p = query_params("token=abc&x=1&x=2&flag&=skip&e=&a=b=c&t=%20");
        assert_eq!(p["token"], ["abc"]);
        assert_eq!(p["x"], ["1", "2"]);
        assert_eq!(p["flag"], [""]);
        assert_eq!(p["e"], [""]);
        assert_eq!(p["a"], ["b=c"]);
        assert_eq!(p["t"], ["%20"]);
        assert!(!p.contains_key(""));
        assert!(query_params("").is_empty());
    }

    #[test]
    fn headers_are_lower_cased_last_wins_and_non_ascii_dropped() {
        let request = HandshakeRequest {
            headers: vec![
                ("Host".into(), b"h".to_vec()),
                ("X-A".into(), b"1".to_vec()),
                ("x-a".into(), b"2".to_vec()),
                ("x-bin".into(), vec![0xff, 0x01]),
                ("x-uni".into(), "é".as_bytes().to_vec()),
            ],
            path: "/stream/a%3Ab/g".into(),
            query: None,
            addr: "[::1]:5000".parse().unwrap(),
        };
        let json = serde_json::to_value(request.input()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"headers":{"host":"h","x-a":"2"},"path":"/stream/a%3Ab/g","query_params":{},"addr":"[::1]:5000"})
        );
    }
}
