//! # maillog
//!
//! Mail-server log lines to normalized [`Event`]s, and events to [`record::MessageRecord`]s.
//!
//! This crate owns the knowledge of what Postfix, Exim, Dovecot and Sendmail write. It does no
//! I/O beyond what a caller hands it (`&str` lines), never panics on any input, and counts what it
//! does not understand ([`Stats`]). Everything above it (detectors, reports, the service) sees
//! only the normalized shapes.
//!
//! The flow: [`LineParser::parse`] splits the syslog-style [`header`] (time, host, program, pid)
//! from the message, picks the family by program name, and hands the message to that family's
//! parser ([`postfix`], [`exim`], [`dovecot`], [`sendmail`], and the spam filters' verdict
//! lines, [`filter`]). The [`record::Correlator`] then joins
//! the events of one queue id into a message record.
#![deny(missing_docs)]

pub mod bytes;
pub mod dovecot;
pub mod event;
pub mod exim;
pub mod filter;
pub mod hash;
pub mod header;
pub mod ip;
pub mod parse;
pub mod postfix;
pub mod recipient;
pub mod record;
pub mod sendmail;
#[cfg(test)]
mod testing;
pub mod time;

pub use event::{
    Action, Delay, DeliveryStatus, Event, Filter, Format, NoticeKind, Peer, Service, Verdict,
};
pub use header::Header;
pub use parse::{parse_line, LineParser, Parsed, Stats};
pub use time::{TimeContext, Ts};
