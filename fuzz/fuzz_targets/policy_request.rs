//! Fuzz target: the Postfix policy delegation request parser,
//! `smtpscope::serve::policy::Request` (see `smtpscope_fuzz::policy_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| smtpscope_fuzz::policy_request(data));
