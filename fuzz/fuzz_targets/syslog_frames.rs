//! Fuzz target: syslog over TCP framing (RFC 6587 octet counting and newline framing),
//! `smtpscope::serve::syslog::read_frame` (see `smtpscope_fuzz::syslog_frames`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| smtpscope_fuzz::syslog_frames(data));
