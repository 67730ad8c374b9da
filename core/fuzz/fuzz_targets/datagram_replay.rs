#![no_main]
//! See `meshlink_fuzz::datagram_replay` for what this target feeds and asserts.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    meshlink_fuzz::datagram_replay::run(data);
});
