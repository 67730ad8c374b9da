#![no_main]
//! See `meshlink_fuzz::packet_decoder` for what this target feeds and asserts.

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshlink_fuzz::packet_decoder::run(data));
