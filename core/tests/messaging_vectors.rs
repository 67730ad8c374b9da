//! Checks `tests/vectors/messaging.json` (written by `core/examples/gen_vectors.rs`) against
//! the code: every request/response packet built from its recorded fields encodes to the
//! recorded message body and plaintext packet, and the recorded bytes decode back to those
//! fields; the subject tables give the recorded answers; the limits are the code's.
#![cfg(feature = "messaging")]

use meshlink_core::messaging::request::{
    self, CancelPacket, Packet as MPacket, RefusalPacket, RequestPacket, ResponsePacket,
};
use meshlink_core::messaging::subject;
use meshlink_core::wire::Packet;
use serde_json::Value;

fn load() -> Value {
    let path = format!("{}/../tests/vectors/messaging.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn every_packet_matches_its_vector() {
    let v = load();
    let packets = v["packets"].as_array().unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for p in packets {
        let name = p["name"].as_str().unwrap();
        let f = &p["fields"];
        let kind = p["kind_byte"].as_u64().unwrap() as u8;
        let body = f.get("body").map(bytes).unwrap_or_default();
        let id = f["id"].as_u64().unwrap();
        let built = match kind {
            0x10 => MPacket::Request(RequestPacket {
                id,
                parent: f["parent"].as_u64(),
                timeout_ms: f["timeout_ms"].as_u64().unwrap() as u32,
                version: f["version"].as_str().unwrap(),
                subject: f["subject"].as_str().unwrap(),
                body: &body,
            }),
            0x11 => MPacket::Response(ResponsePacket { id, body: &body }),
            0x12 => MPacket::Refusal(RefusalPacket {
                id,
                code: f["code"].as_u64().unwrap() as u16,
                message: f["message"].as_str().unwrap(),
            }),
            0x13 => MPacket::Cancel(CancelPacket { id }),
            k => panic!("{name}: kind {k:#04x} is not a request/response kind"),
        };
        kinds.insert(kind);
        assert_eq!(built.kind(), kind, "{name}");
        let want = bytes(&p["body"]);
        let mut out = [0u8; 512];
        let n = built.encode(&mut out).unwrap();
        assert_eq!(hex::encode(&out[..n]), hex::encode(&want), "{name}: encoding");
        assert_eq!(MPacket::decode(kind, &want), Ok(built), "{name}: decoding");
        // The whole plaintext packet: a one-chunk message of that kind.
        let pkt = bytes(&p["packet"]);
        match Packet::decode(&pkt).unwrap() {
            Packet::Data { kind: k, msg_id: 0, total, offset: 0, bytes: b } => {
                assert_eq!((k, total as usize, b), (kind, want.len(), &want[..]), "{name}: packet");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // Pub/sub kinds (0x18..) have theirs in pubsub.json (core/tests/pubsub_vectors.rs).
    let rr: Vec<u8> = meshlink_core::wire::kind::MESSAGING.iter().copied().filter(|k| *k <= 0x17).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), rr, "every kind has a vector");
}

#[test]
fn subject_tables_match() {
    let v = load();
    for row in v["wildcard"].as_array().unwrap() {
        let (p, s, m) = (row[0].as_str().unwrap(), row[1].as_str().unwrap(), row[2].as_bool().unwrap());
        assert_eq!(subject::matches(p, s), m, "{p} vs {s}");
    }
    let show = |r: Result<(), subject::SubjectError>| match r {
        Ok(()) => Value::Null,
        Err(e) => Value::String(format!("{e:?}")),
    };
    for row in v["validity"].as_array().unwrap() {
        let t = row["text"].as_str().unwrap();
        assert_eq!(show(subject::validate_pattern(t).map(|_| ())), row["pattern"], "{t:?} as a pattern");
        assert_eq!(show(subject::validate_subject(t)), row["subject"], "{t:?} as a subject");
    }
    let l = &v["limits"];
    assert_eq!(l["max_subject_len"].as_u64(), Some(subject::MAX_SUBJECT_LEN as u64));
    assert_eq!(l["max_tokens"].as_u64(), Some(subject::MAX_TOKENS as u64));
    assert_eq!(l["version_max"].as_u64(), Some(request::VERSION_MAX as u64));
    assert_eq!(l["message_max"].as_u64(), Some(request::MESSAGE_MAX as u64));
    assert_eq!(l["app_code_min"].as_u64(), Some(u64::from(request::APP_CODE_MIN)));
}
