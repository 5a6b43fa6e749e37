//! Fan-out: the subscription index, per-group publication with history, and the bounded
//! per-connection outbound queues.

mod history;
mod hub;
mod outbox;

pub use hub::{Hub, Start, Started, Subscription};
pub(crate) use outbox::offer;
pub use outbox::{Closed, Outbox, Outgoing};
