//! Fuzz target: the smtpscope.toml loader and its validation; a configuration that passes
//! drives the detectors over a short log (see `smtpscope_fuzz::config_file`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| smtpscope_fuzz::config_file(data));
