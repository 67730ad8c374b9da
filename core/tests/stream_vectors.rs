//! tests/vectors/stream.json against the code (PROTOCOL.md §15.5.3): every valid streaming
//! message decodes to the packet given and encodes back to its bytes; every invalid one is
//! malformed.
#![cfg(all(feature = "messaging", feature = "std"))]

use meshlink_core::messaging::rpc::stream::StreamPacket;
use serde_json::Value;

fn load() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/stream.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn stream_vectors_match_the_codec() {
    let v = load();
    let valid = v["valid"].as_array().unwrap();
    assert!(valid.len() >= 6);
    for e in valid {
        let name = e["name"].as_str().unwrap();
        let k = e["kind"].as_u64().unwrap() as u8;
        let bytes = hex::decode(e["message"].as_str().unwrap()).unwrap();
        let p = StreamPacket::decode(k, &bytes).unwrap_or_else(|err| panic!("{name}: {err:?}"));
        assert_eq!(p.kind(), k, "{name}");
        assert_eq!(format!("{p:?}"), e["packet"].as_str().unwrap(), "{name}");
        let mut out = [0u8; 64];
        let n = p.encode(&mut out).unwrap();
        assert_eq!(&out[..n], &bytes[..], "{name}: encodes back");
    }
    for e in v["invalid"].as_array().unwrap() {
        let k = e["kind"].as_u64().unwrap() as u8;
        let bytes = hex::decode(e["message"].as_str().unwrap()).unwrap();
        assert!(StreamPacket::decode(k, &bytes).is_err(), "{}", e["name"]);
    }
}
