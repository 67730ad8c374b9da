//! tests/vectors/rpc.json against the code (PROTOCOL.md §15.5.1): every valid value
//! decodes, writes back to the same bytes and has the JSON form given; every invalid one
//! gives the error given.
#![cfg(all(feature = "messaging", feature = "std"))]

use meshlink_core::messaging::rpc::{OwnedValue, Value as V, ValueWriter};
use serde_json::{json, Value};

fn load() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/rpc.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn valid_values_round_trip_and_map_to_json() {
    let v = load();
    let valid = v["valid"].as_array().unwrap();
    // Every kind is covered.
    for kind in ["null", "bool", "int", "float", "string", "bytes", "list", "map", "nested"] {
        assert!(valid.iter().any(|e| e["name"].as_str().unwrap().starts_with(kind)), "no {kind} vector");
    }
    for e in valid {
        let name = e["name"].as_str().unwrap();
        let bytes = hex::decode(e["hex"].as_str().unwrap()).unwrap();
        let d = V::decode(&bytes).unwrap_or_else(|err| panic!("{name}: {err:?}"));
        let mut out = vec![0u8; bytes.len()];
        let mut w = ValueWriter::new(&mut out);
        d.write(&mut w).unwrap();
        assert_eq!(w.as_bytes(), &bytes[..], "{name}: write back");
        let owned = OwnedValue::from_value(&d);
        assert_eq!(owned.to_vec().unwrap(), bytes, "{name}: owned");
        assert_eq!(rpc_json(&owned), e["json"], "{name}: json");
    }
}

#[test]
fn invalid_values_give_their_typed_error() {
    let v = load();
    let invalid = v["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 10);
    for e in invalid {
        let name = e["name"].as_str().unwrap();
        let bytes = hex::decode(e["hex"].as_str().unwrap()).unwrap();
        let got = match V::decode(&bytes) {
            Ok(_) => "ok".to_string(),
            Err(err) => format!("{err:?}"),
        };
        assert_eq!(got, e["error"].as_str().unwrap(), "{name}");
    }
}

/// The JSON form of a value (PROTOCOL.md §15.5.1): bytes as `{"$bytes": base64}`, a map
/// key starting with `$` gets one more `$`, a float always has a fraction or exponent.
fn rpc_json(v: &meshlink_core::messaging::rpc::OwnedValue) -> Value {
    use meshlink_core::messaging::rpc::OwnedValue as O;
    match v {
        O::Null => Value::Null,
        O::Bool(b) => json!(b),
        O::Int(i) => json!(i),
        O::Float(f) => json!(f),
        O::Str(s) => json!(s),
        O::Bytes(b) => json!({ "$bytes": rpc_base64(b) }),
        O::List(l) => Value::Array(l.iter().map(rpc_json).collect()),
        O::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (if k.starts_with('$') { format!("${k}") } else { k.clone() }, rpc_json(v)))
                .collect(),
        ),
    }
}

/// RFC 4648 base64, standard alphabet, padded.
fn rpc_base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}
