//! Fuzz target: the spam filters' verdict lines (amavis, spamd, rspamd), through
//! `maillog::LineParser` and the message correlator (which joins verdicts to messages by queue
//! id and Message-ID), and each message straight into `maillog::filter::parse`
//! (see `smtpscope_fuzz::mail_log`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| smtpscope_fuzz::mail_log(data, maillog::Format::Filter));
