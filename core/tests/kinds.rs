//! Packet kinds as an extension point (PROTOCOL.md §8.2): application kinds round-trip
//! between two nodes on both transports, the send calls refuse kinds they do not take, and
//! a kind the receiver does not implement, outside the application range, is answered
//! with `Error { UnknownKind }` while the session carries on.

mod pair;

use meshlink_core::noise::{CipherState, TAG_LEN};
use meshlink_core::wire::kind::{self, DATA};
use meshlink_core::wire::{Header, Hello};
use meshlink_core::{Config, Error, ErrorCode, Instant, Keypair, Node, Priority, TransportKind};
use pair::{pattern, Ev, Pair};
use serde_json::Value;

const BOTH: [TransportKind; 2] = [TransportKind::Stream, TransportKind::Datagram];

fn cfg() -> Config {
    Config { max_frame: 4096, max_message: 8192, send_queue: 64 * 1024, ..Config::default() }
}

#[test]
fn an_application_kind_round_trips_over_streams_and_datagrams() {
    for t in BOTH {
        let mut p = Pair::new(t, cfg());
        let (a, b) = (p.id(0), p.id(1));
        // One-record and multi-record messages (a datagram chunk carries at most 1147 bytes,
        // a 4096-byte frame about 4000), both ways, with the two ends of the range.
        p.n[0].send_kind(p.now, &b, 0x40, b"hello kind").unwrap();
        p.n[0].send_kind(p.now, &b, 0x7f, &pattern(1, 7000)).unwrap();
        p.n[1].send_kind(p.now, &a, 0x55, &pattern(2, 3000)).unwrap();
        p.n[0].send(p.now, &b, b"plain data").unwrap();
        p.pump();
        assert_eq!(
            p.messages(1),
            vec![(0x40, b"hello kind".to_vec()), (0x7f, pattern(1, 7000)), (DATA, b"plain data".to_vec())],
            "{t:?}"
        );
        assert_eq!(p.messages(0), vec![(0x55, pattern(2, 3000))], "{t:?}");
        assert!(!p.events.iter().flatten().any(|e| matches!(e, Ev::RemoteError(_))), "{t:?}: {:?}", p.events);
        p.assert_connected();
    }
}

#[test]
fn send_kind_takes_only_application_kinds() {
    let mut p = Pair::new(TransportKind::Stream, cfg());
    let b = p.id(1);
    for k in [0x00, kind::PING, DATA, kind::CLOSE, 0x0f, 0x10, 0x3f, 0x80, 0xff] {
        assert_eq!(p.n[0].send_kind(p.now, &b, k, b"x"), Err(Error::InvalidKind { kind: k }), "{k:#04x}");
    }
    // send_with also takes Data; messaging kinds are for the messaging layer's own calls.
    for k in [0x00, kind::PONG, 0x10, 0x3f, 0x80] {
        assert_eq!(p.n[0].send_with(p.now, &b, k, Priority::High, b"x"), Err(Error::InvalidKind { kind: k }));
    }
    p.n[0].send_with(p.now, &b, DATA, Priority::High, b"d").unwrap();
    p.n[0].send_kind(p.now, &b, 0x40, b"a").unwrap();
    p.n[0].send_kind(p.now, &b, 0x7f, b"z").unwrap();
    p.pump();
    assert_eq!(p.messages(1), vec![(DATA, b"d".to_vec()), (0x40, b"a".to_vec()), (0x7f, b"z".to_vec())]);
}

// ---------------------------------------------------------------- unknown kinds

fn b32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

/// The XX scenario of `tests/vectors/handshake.json`: its nodes rebuilt from their recorded
/// secrets and seeds, so the test knows the transport keys and can seal records of any
/// kind, as a peer with a newer or different implementation would.
struct Scenario {
    v: Value,
}

impl Scenario {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/handshake.json");
        let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let v = f["vectors"].as_array().unwrap().iter().find(|v| v["name"] == "xx").unwrap().clone();
        Scenario { v }
    }

    fn node(&self, side: &str) -> pair::TNode {
        let s = &self.v[side];
        let c = &s["config"];
        let cfg = Config {
            hello: Hello::named(c["hello_name"].as_str().unwrap()).unwrap(),
            max_frame: num(&c["max_frame"]) as usize,
            max_datagram: num(&c["max_datagram"]) as usize,
            max_message: num(&c["max_message"]) as usize,
            send_queue: num(&c["send_queue"]) as usize,
            ik_fast_path: c["ik_fast_path"].as_bool().unwrap(),
            ..Config::default()
        }
        .with_network_id(&hex::decode(c["network_id"].as_str().unwrap()).unwrap())
        .unwrap();
        let len = cfg.slot_buffer_len();
        Node::new(cfg, Keypair::from_secret(b32(&s["static_secret"])), b32(&s["seed"]), || vec![0; len]).unwrap()
    }

    fn pair(&self, t: TransportKind) -> Pair {
        let now = Instant::from_micros(num(&self.v["now_us"]));
        let expected = self.v["connect_with_expected_key"].as_bool().unwrap();
        Pair::connect(t, [self.node("initiator"), self.node("responder")], now, expected)
    }
}

/// The transport records side 0 has sent so far: the highest counter.
fn last_counter(p: &Pair) -> u64 {
    let mut last = 0;
    for (from, bytes) in p.tap.iter().filter(|(from, _)| *from == 0) {
        let _ = from;
        let mut records = vec![];
        match p.kind {
            TransportKind::Datagram => records.push(&bytes[..]),
            TransportKind::Stream => {
                let mut at = 0;
                while at + 2 <= bytes.len() {
                    let len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
                    records.push(&bytes[at + 2..at + 2 + len]);
                    at += 2 + len;
                }
            }
        }
        for r in records {
            if let Ok(Header::Transport { counter, .. }) = Header::parse(r) {
                last = last.max(counter);
            }
        }
    }
    last
}

/// Seals `plaintext` as the initiator's transport record number `counter`.
fn seal(s: &Scenario, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let key = b32(&s.v["transport_keys"]["initiator_to_responder"]);
    let receiver = num(&s.v["responder"]["index"]) as u32;
    let mut rec = vec![0u8; 16 + plaintext.len() + TAG_LEN];
    Header::Transport { phase: 0, receiver, counter }.encode(&mut rec).unwrap();
    rec[16..16 + plaintext.len()].copy_from_slice(plaintext);
    let (hdr, body) = rec.split_at_mut(16);
    CipherState::new(key).encrypt_at(counter, hdr, body, plaintext.len()).unwrap();
    rec
}

#[test]
fn a_kind_outside_the_application_range_gets_the_typed_unknown_kind_reply() {
    let s = Scenario::load();
    for t in BOTH {
        let mut p = s.pair(t);
        let mut counter = last_counter(&p);
        assert!(counter > 0, "{t:?}: the initiator sent transport records");
        // Unknown core kinds, the reserved messaging range (nothing implemented yet), and the
        // reserved kinds on both sides of the application range.
        for k in [0x06u8, 0x0f, 0x10, 0x3f, 0x80, 0xff, 0x00] {
            counter += 1;
            let rec = seal(&s, counter, &[k, 1, 2, 3]);
            let wire = match t {
                TransportKind::Stream => [&(rec.len() as u16).to_be_bytes()[..], &rec].concat(),
                TransportKind::Datagram => rec,
            };
            p.deliver(1, &wire);
            // Only the responder answers: the initiator's own counter would now repeat ours.
            p.step(1, usize::MAX);
            assert_eq!(p.events[0], vec![Ev::RemoteError(ErrorCode::UnknownKind)], "{t:?} kind {k:#04x}");
            assert!(p.events[1].is_empty(), "{t:?} kind {k:#04x}: {:?}", p.events[1]);
            p.events[0].clear();
            assert_eq!(p.n[1].stats().connected, 1, "{t:?} kind {k:#04x}: the session carries on");
        }
        // An application kind sealed the same way is delivered, not refused.
        counter += 1;
        let mut pt = [0u8; 64];
        let n = meshlink_core::wire::Packet::Data { kind: 0x60, msg_id: 99, total: 2, offset: 0, bytes: b"ok" }
            .encode(&mut pt)
            .unwrap();
        let rec = seal(&s, counter, &pt[..n]);
        let wire = match t {
            TransportKind::Stream => [&(rec.len() as u16).to_be_bytes()[..], &rec].concat(),
            TransportKind::Datagram => rec,
        };
        p.deliver(1, &wire);
        assert_eq!(p.messages(1), vec![(0x60, b"ok".to_vec())], "{t:?}");
    }
}
