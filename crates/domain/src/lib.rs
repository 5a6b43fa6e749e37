//! Pure domain logic of iii-stream: names and keys, the `stream::update` operation engine, change
//! events, frames and per-group sequencing.
//!
//! Nothing here touches sockets, clocks or disks; callers pass in the current time and random
//! epochs, so every rule is testable with plain values.

pub mod event;
pub mod idle;
pub mod names;
pub mod sequencer;
pub mod update;

pub use event::{Change, EventType, Frame, JsonText};
pub use names::{GroupKey, ItemKey, MAX_NAME_BYTES};
pub use sequencer::{Sequencer, Stamp};
