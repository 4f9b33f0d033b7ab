//! Fuzz target: the Sendmail line parser, through `maillog::LineParser` (header, dispatch) and the
//! message correlator, and each message straight into `maillog::sendmail::parse`
//! (see `smtpscope_fuzz::mail_log`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| smtpscope_fuzz::mail_log(data, maillog::Format::Sendmail));
