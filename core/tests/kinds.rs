//! Packet kinds as an extension point (PROTOCOL.md §8.2): application kinds round-trip
//! between two nodes on both transports, the send calls refuse kinds they do not take, and
//! a kind the receiver does not implement, outside the application range, is answered
//! with `Error { UnknownKind }` while the session carries on.

mod pair;

use meshlink_core::wire::kind::{self, DATA};
use meshlink_core::{Config, Error, ErrorCode, Priority, TransportKind};
use pair::{last_counter, pattern, seal, Ev, Pair, Scenario};

const BOTH: [TransportKind; 2] = [TransportKind::Stream, TransportKind::Datagram];

fn cfg() -> Config {
    Config::default().with(|c| {
        c.max_frame = 4096;
        c.max_message = 8192;
        c.send_queue = 64 * 1024;
    })
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

#[test]
fn a_kind_outside_the_application_range_gets_the_typed_unknown_kind_reply() {
    let s = Scenario::load();
    for t in BOTH {
        let mut p = s.pair(t);
        // The initiator's last transport record (0 is possible: with batching, §9.2, its
        // first Ping and Pong share record 0); the injected ones follow it.
        let mut counter = last_counter(&p);
        // Unknown core kinds, messaging kinds this build does not implement (0x10..=0x13
        // are request/response with feature `messaging`), and the reserved kinds on both
        // sides of the application range.
        let k10 = if cfg!(feature = "messaging") { 0x17 } else { 0x10 };
        for k in [0x06u8, 0x0f, k10, 0x3f, 0x80, 0xff, 0x00] {
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
