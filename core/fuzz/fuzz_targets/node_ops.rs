#![no_main]
//! See `meshlink_fuzz::node_ops` for what this target feeds and asserts.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    meshlink_fuzz::node_ops::run(data);
});
