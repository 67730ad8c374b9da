//! Checks `tests/vectors/pubsub.json` (written by `core/examples/gen_vectors.rs`) against
//! the code: every pub/sub packet built from its recorded fields encodes to the recorded
//! message body and plaintext packet, and the recorded bytes decode back to those fields.
#![cfg(feature = "messaging")]

use meshlink_core::messaging::pubsub::packet::{
    InterestAckPacket, InterestPacket, PubSubPacket, PublicationPacket, SlowConsumerPacket,
};
use meshlink_core::messaging::MessagingConfig;
use meshlink_core::wire::{kind, Packet};
use serde_json::Value;

fn load() -> Value {
    let path = format!("{}/../tests/vectors/pubsub.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn id(v: &Value) -> [u8; 32] {
    bytes(v).try_into().unwrap()
}

#[test]
fn every_pubsub_packet_matches_its_vector() {
    let v = load();
    let mut kinds = std::collections::BTreeSet::new();
    for p in v["packets"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let f = &p["fields"];
        let k = p["kind_byte"].as_u64().unwrap() as u8;
        let (body, entries) =
            (f.get("body").map(bytes).unwrap_or_default(), f.get("entries").map(bytes).unwrap_or_default());
        let u = |n: &str| f[n].as_u64().unwrap();
        let built = match k {
            kind::PUBLICATION => PubSubPacket::Publication(PublicationPacket {
                hops: u("hops") as u8,
                origin: id(&f["origin"]),
                seq: u("seq"),
                subject: f["subject"].as_str().unwrap(),
                body: &body,
            }),
            kind::INTEREST => PubSubPacket::Interest(InterestPacket {
                hops: u("hops") as u8,
                origin: id(&f["origin"]),
                ver: u("ver"),
                entries: &entries,
            }),
            kind::INTEREST_ACK => PubSubPacket::InterestAck(InterestAckPacket {
                origin: id(&f["origin"]),
                ver: u("ver"),
                status: u("status") as u8,
                accepted: u("accepted") as u16,
            }),
            kind::SLOW_CONSUMER => PubSubPacket::SlowConsumer(SlowConsumerPacket {
                hops: u("hops") as u8,
                origin: id(&f["origin"]),
                seq: u("seq"),
                subscriber: id(&f["subscriber"]),
                dropped: u("dropped") as u32,
                subject: f["subject"].as_str().unwrap(),
            }),
            k => panic!("{name}: kind {k:#04x} is not a pub/sub kind"),
        };
        kinds.insert(k);
        assert_eq!(built.kind(), k, "{name}");
        let want = bytes(&p["body"]);
        let mut out = [0u8; 512];
        let n = built.encode(&mut out).unwrap();
        assert_eq!(hex::encode(&out[..n]), hex::encode(&want), "{name}: encoding");
        assert_eq!(PubSubPacket::decode(k, &want), Ok(built), "{name}: decoding");
        match Packet::decode(&bytes(&p["packet"])).unwrap() {
            Packet::Data { kind: pk, msg_id: 0, total, offset: 0, bytes: b } => {
                assert_eq!((pk, total as usize, b), (k, want.len(), &want[..]), "{name}: packet");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let all = [kind::PUBLICATION, kind::INTEREST, kind::INTEREST_ACK, kind::SLOW_CONSUMER];
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), all, "every pub/sub kind has a vector");
    assert!(all.iter().all(|k| kind::MESSAGING.contains(k)));
}

#[test]
fn pubsub_limits_match() {
    let l = &load()["limits"];
    let d = MessagingConfig::default();
    assert_eq!(l["max_hops"].as_u64(), Some(u64::from(d.max_hops)));
    assert_eq!(l["max_subs"].as_u64(), Some(d.max_subs as u64));
    assert_eq!(l["max_interest_per_origin"].as_u64(), Some(d.max_interest_per_origin as u64));
    assert_eq!(l["seen_ways"].as_u64(), Some(meshlink_core::messaging::pubsub::seen::WAYS as u64));
}
