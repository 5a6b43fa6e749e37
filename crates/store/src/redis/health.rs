//! Whether Redis is usable right now, as `/healthz` reports it.
//!
//! Set unhealthy by failed connection attempts, failed pings and commands that could not reach
//! Redis; set healthy again by the relay once its connection is back and caught up and a ping
//! on the command connection succeeds. No restart is needed.

use parking_lot::Mutex;

#[derive(Default)]
pub(crate) struct Health {
    problem: Mutex<Option<String>>,
}

impl Health {
    pub(crate) fn check(&self) -> Result<(), String> {
        self.problem.lock().clone().map_or(Ok(()), Err)
    }

    pub(crate) fn ok(&self) {
        *self.problem.lock() = None;
    }

    pub(crate) fn problem(&self, reason: String) {
        *self.problem.lock() = Some(reason);
    }
}
