//! Raw clients of both iii-stream ports, and a runner for the server binary.
//!
//! These speak the wire protocols directly (no SDK), so tests can check exact frames and send
//! malformed input, crash trials can count acknowledgements precisely, and the load generator
//! can keep many calls in flight on one connection.

mod engine;
mod process;
mod subscriber;

pub use engine::{CallError, EngineClient};
pub use process::{ServerProcess, free_port, http_get};
pub use subscriber::{Received, SubscriberClient};
