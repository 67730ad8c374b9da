#![no_main]
//! The RPC value decoder (PROTOCOL.md §15.5.1) on arbitrary bytes: never panics, and a
//! value that decodes is canonical (writing it back gives the same bytes), under the
//! default limits and under tight ones. The same bytes go to the streaming decoders.

use meshlink_core::messaging::rpc::stream::StreamPacket;
use meshlink_core::messaging::rpc::{Limits, OwnedValue, Value, ValueWriter};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let tight = Limits { max_depth: 3, max_len: 8, max_total: 32, max_size: 256 };
    for lim in [Limits::DEFAULT, tight] {
        let Ok(v) = Value::decode_with(data, &lim) else { continue };
        let mut out = vec![0u8; data.len()];
        let mut w = ValueWriter::new(&mut out);
        v.write(&mut w).expect("a decoded value fits its own size");
        assert_eq!(w.as_bytes(), data, "decode then write is the identity");
        let owned = OwnedValue::from_value(&v);
        assert_eq!(owned.to_vec().unwrap(), data, "the owned copy writes the same bytes");
    }
    // The streaming packets (PROTOCOL.md §15.5.3): never a panic, and a decoded packet
    // encodes to bytes that decode to it again.
    for k in 0x20..=0x22u8 {
        let Ok(p) = StreamPacket::decode(k, data) else { continue };
        let mut out = vec![0u8; data.len() + 32];
        let n = p.encode(&mut out).expect("a decoded packet fits");
        assert_eq!(StreamPacket::decode(k, &out[..n]), Ok(p), "encode then decode is the identity");
    }
});
