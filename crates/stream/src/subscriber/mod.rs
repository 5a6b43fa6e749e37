//! The subscriber side of the stream port, independent of the transport: handshake
//! authentication and the join/leave sessions of connections.

mod auth;
pub(crate) mod frames;
mod gate;
mod session;

pub use auth::{AuthDecision, HandshakeRequest};
pub use session::Session;
