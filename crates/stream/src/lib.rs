//! The iii-stream service.
//!
//! It plugs the `stream::*` functions and the `stream`, `stream:join` and `stream:leave` trigger
//! types into the engine, owns the store and the fan-out hub, and runs the subscriber side of the
//! stream port (handshake authentication, join/leave) through transport-agnostic sessions.
//!
//! Data flows one way: function → store (commit, `seq`) → sink → hub (subscribers) and
//! dispatcher (triggers).

mod calls;
pub mod fanout;
mod functions;
mod service;
mod subscriber;
mod triggers;

pub use service::{OpenError, StreamService};
pub use subscriber::{AuthDecision, HandshakeRequest, Session};
