//! Postfix log messages (the part after `postfix/<daemon>[pid]: `).

use crate::event::Event;

/// Parse the message of a Postfix daemon (`daemon` is the last component of the program name:
/// `smtpd`, `qmgr`, `smtp`, `cleanup`…). `None` when the line is not understood.
pub fn parse<'a>(daemon: &'a str, msg: &'a str) -> Option<Event<'a>> {
    let _ = (daemon, msg);
    None
}
