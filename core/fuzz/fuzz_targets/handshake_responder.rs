#![no_main]
//! See `meshlink_fuzz::handshake_responder` for what this target feeds and asserts.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    meshlink_fuzz::handshake_responder::run(data);
});
