//! Exim main-log messages (after the time stamp and optional `[pid]`).

use crate::event::Event;

/// Parse an Exim main-log message. `None` when the line is not understood.
pub fn parse(msg: &str) -> Option<Event<'_>> {
    let _ = msg;
    None
}
