//! Priority classes (PROTOCOL.md §9.1): strict priority between high, normal and low, FIFO
//! inside a class, a higher class overtaking a long message between its chunks on both
//! transports (the receiver assembling the two side by side), and a byte cap per class.

mod pair;

use meshlink_core::wire::WireError;
use meshlink_core::{Config, DisconnectReason, Error, Priority, QueueShares, TransportKind};
use pair::{node, pattern, Pair};

const BOTH: [TransportKind; 2] = [TransportKind::Stream, TransportKind::Datagram];
const HIGH: u8 = 0x40;
const NORMAL: u8 = 0x41;
const LOW: u8 = 0x42;

/// Default limits (64 KiB messages, 16 KiB chunks, 256 KiB queue split 10/60/30).
fn cfg() -> Config {
    Config::default()
}

#[test]
fn a_high_message_queued_after_a_60_kib_low_one_arrives_first() {
    for t in BOTH {
        let mut p = Pair::new(t, cfg());
        let b = p.id(1);
        let bulk = pattern(1, 60 * 1024);
        p.n[0].send_with(p.now, &b, LOW, Priority::Low, &bulk).unwrap();
        p.n[0].send_with(p.now, &b, HIGH, Priority::High, &pattern(2, 64)).unwrap();
        p.pump();
        assert_eq!(p.messages(1), vec![(HIGH, pattern(2, 64)), (LOW, bulk)], "{t:?}");
        p.assert_connected();
    }
}

#[test]
fn a_high_message_overtakes_a_low_one_already_on_the_wire() {
    for t in BOTH {
        let mut p = Pair::new(t, cfg());
        // A 20 KiB caller buffer: a stream transmit holds about one 16 KiB chunk.
        p.buf_len = 20 * 1024;
        let b = p.id(1);
        let bulk = pattern(3, 60 * 1024);
        p.n[0].send_with(p.now, &b, LOW, Priority::Low, &bulk).unwrap();
        // The low message is started: some of its chunks are at the receiver...
        assert_eq!(p.step(0, 2), 2);
        assert!(p.messages(1).is_empty(), "{t:?}: the low message is not complete yet");
        // ...when the high one is queued. It goes before the rest of the low message, and the
        // receiver assembles the two side by side.
        p.n[0].send_with(p.now, &b, HIGH, Priority::High, &pattern(4, 64)).unwrap();
        assert_eq!(p.step(0, 1), 1);
        assert_eq!(p.messages(1), vec![(HIGH, pattern(4, 64))], "{t:?}");
        p.pump();
        assert_eq!(p.messages(1), vec![(HIGH, pattern(4, 64)), (LOW, bulk)], "{t:?}");
        p.assert_connected();
    }
}

#[test]
fn order_inside_each_class_is_kept() {
    for t in BOTH {
        let mut p = Pair::new(t, cfg());
        p.buf_len = 20 * 1024;
        let b = p.id(1);
        // Sizes from one record to several chunks, the classes' calls interleaved.
        let sizes = [10, 20_000, 300, 40_000, 1, 5_000];
        let mut want = [vec![], vec![], vec![]];
        for (i, len) in sizes.into_iter().enumerate() {
            for (c, (kind, prio)) in
                [(HIGH, Priority::High), (NORMAL, Priority::Normal), (LOW, Priority::Low)].into_iter().enumerate()
            {
                if c == 0 && len > 10_000 {
                    continue; // the high class holds 26 KiB: small messages only
                }
                let m = pattern((10 * i + c) as u8, len);
                p.n[0].send_with(p.now, &b, kind, prio, &m).unwrap();
                want[c].push(m);
            }
            // Let the sender start some of what it has before more is queued.
            p.step(0, 1);
        }
        p.pump();
        let got = p.messages(1);
        for (c, kind) in [HIGH, NORMAL, LOW].into_iter().enumerate() {
            let class: Vec<Vec<u8>> = got.iter().filter(|(k, _)| *k == kind).map(|(_, d)| d.clone()).collect();
            assert_eq!(class.len(), want[c].len(), "{t:?} class {c}");
            assert!(class == want[c], "{t:?}: class {c} out of order");
        }
        p.assert_connected();
    }
}

#[test]
fn a_large_high_message_waits_for_room_at_the_receiver_instead_of_breaking_the_stream() {
    // A started 60 KiB low message plus a 20 KiB high one exceed the receiver's 64 KiB
    // message region: the sender holds the high one back until the low one is done.
    let shares = QueueShares::new(30, 40, 30);
    let mut p = Pair::new(TransportKind::Stream, cfg().with(|c| c.queue_shares = shares));
    p.buf_len = 20 * 1024;
    let b = p.id(1);
    let bulk = pattern(5, 60 * 1024);
    let big_high = pattern(6, 20 * 1024);
    p.n[0].send_with(p.now, &b, LOW, Priority::Low, &bulk).unwrap();
    p.step(0, 1);
    p.n[0].send_with(p.now, &b, HIGH, Priority::High, &big_high).unwrap();
    p.n[0].send_with(p.now, &b, HIGH, Priority::High, b"small").unwrap();
    p.pump();
    assert_eq!(p.messages(1), vec![(LOW, bulk), (HIGH, big_high), (HIGH, b"small".to_vec())]);
    p.assert_connected();
}

#[test]
fn a_full_class_refuses_only_its_own_messages() {
    // Caps 2000 / 5000 / 3000 bytes; each message costs its length + 5.
    let shares = QueueShares::new(20, 50, 30);
    let c = cfg().with(|c| {
        c.max_message = 2048;
        c.max_frame = 4096;
        c.send_queue = 10_000;
        c.queue_shares = shares;
    });
    assert_eq!(c.class_caps(), [2000, 5000, 3000]);
    for t in BOTH {
        let mut p = Pair::new(t, c.clone());
        let b = p.id(1);
        p.n[0].send_with(p.now, &b, LOW, Priority::Low, &[1; 1495]).unwrap();
        p.n[0].send_with(p.now, &b, LOW, Priority::Low, &[2; 1495]).unwrap();
        assert_eq!(p.n[0].send_with(p.now, &b, LOW, Priority::Low, b"x"), Err(Error::QueueFull { needed: 6, free: 0 }));
        p.n[0].send_with(p.now, &b, HIGH, Priority::High, &[3; 1995]).unwrap();
        assert_eq!(
            p.n[0].send_with(p.now, &b, HIGH, Priority::High, b""),
            Err(Error::QueueFull { needed: 5, free: 0 })
        );
        // Both other classes full, the normal one still takes 5000 bytes.
        p.n[0].send(p.now, &b, &[4; 2000]).unwrap();
        p.n[0].send(p.now, &b, &[5; 2000]).unwrap();
        p.n[0].send(p.now, &b, &[6; 985]).unwrap();
        assert_eq!(p.n[0].send(p.now, &b, b""), Err(Error::QueueFull { needed: 5, free: 0 }));
        p.pump();
        assert_eq!(p.messages(1).len(), 6, "{t:?}");
        // Drained: every class takes messages again.
        p.n[0].send_with(p.now, &b, LOW, Priority::Low, &[7; 2048]).unwrap();
        p.pump();
        assert_eq!(p.messages(1).last(), Some(&(LOW, vec![7; 2048])), "{t:?}");
        p.assert_connected();
    }
}

#[test]
fn queue_settings_are_validated() {
    // `ConfigError` is `#[non_exhaustive]`: compare what it names.
    let bad = |c: Config| match node_err(&c) {
        Error::InvalidConfig(e) => (e.field, e.problem),
        e => panic!("not a config error: {e:?}"),
    };
    assert_eq!(
        bad(cfg().with(|c| c.queue_shares = QueueShares::new(10, 60, 20))),
        cfg_err("queue_shares", "must sum to 100")
    );
    assert_eq!(
        bad(cfg().with(|c| c.queue_shares = QueueShares::new(255, 100, 1))),
        cfg_err("queue_shares", "must sum to 100")
    );
    // The normal class must hold one message of min(max_message, 1024) bytes: 1029 here.
    let edge = |normal: u8, send_queue: usize| {
        cfg().with(|c| {
            c.max_message = 1024;
            c.max_frame = 2048;
            c.send_queue = send_queue;
            c.queue_shares = QueueShares::new(0, normal, 100 - normal);
        })
    };
    let _ = node(&edge(100, 1029), 1, 1);
    assert_eq!(bad(edge(100, 1028)), cfg_err("send_queue", "its normal share must hold at least one message"));
    assert_eq!(bad(edge(0, 1_000_000)), cfg_err("send_queue", "its normal share must hold at least one message"));
    assert_eq!(bad(cfg().with(|c| c.max_chunk = 0)), cfg_err("max_chunk", "must be at least 1"));
    // A one-byte chunk still carries every message.
    let mut p = Pair::new(
        TransportKind::Datagram,
        cfg().with(|c| {
            c.max_chunk = 1;
            c.max_message = 1024;
        }),
    );
    let b = p.id(1);
    p.n[0].send_kind(p.now, &b, HIGH, b"byte by byte").unwrap();
    p.pump();
    assert_eq!(p.messages(1), vec![(HIGH, b"byte by byte".to_vec())]);
}

fn node_err(c: &Config) -> Error {
    meshlink_core::HeapNode::with_capacity(c.clone(), meshlink_core::Keypair::from_secret([1; 32]), [0; 32], 1)
        .unwrap_err()
}

// ------------------------------------------------ the receiver's side, from a peer with the keys

fn chunk(kind: u8, msg_id: u32, total: u32, offset: u32, bytes: &[u8]) -> Vec<u8> {
    let mut pt = vec![0u8; bytes.len() + 32];
    let n = meshlink_core::wire::Packet::Data { kind, msg_id, total, offset, bytes }.encode(&mut pt).unwrap();
    pt.truncate(n);
    pt
}

/// Feeds side 1 of the vector scenario the given chunks as the initiator's next records.
fn inject(p: &mut Pair, s: &pair::Scenario, counter: &mut u64, chunks: &[Vec<u8>]) {
    for c in chunks {
        *counter += 1;
        let wire = pair::sealed_wire(p, s, *counter, c);
        p.deliver(1, &wire);
    }
}

#[test]
fn a_receiver_assembles_interleaved_messages_on_both_transports() {
    let s = pair::Scenario::load();
    for t in BOTH {
        let mut p = s.pair(t);
        let mut counter = pair::last_counter(&p);
        let (a, b) = (pattern(7, 2000), pattern(8, 1500));
        inject(
            &mut p,
            &s,
            &mut counter,
            &[
                chunk(LOW, 100, 2000, 0, &a[..900]),
                chunk(HIGH, 101, 1500, 0, &b[..700]),
                chunk(NORMAL, 102, 5, 0, b"whole"), // one record, between the two
                chunk(LOW, 100, 2000, 900, &a[900..]),
                chunk(HIGH, 101, 1500, 700, &b[700..]),
            ],
        );
        assert_eq!(p.messages(1), vec![(NORMAL, b"whole".to_vec()), (LOW, a), (HIGH, b)], "{t:?}");
        assert_eq!(p.n[1].stats().connected, 1, "{t:?}");
    }
}

#[test]
fn a_stream_peer_interleaving_beyond_our_room_ends_the_session_a_datagram_one_loses_a_message() {
    // The scenario's max_message is 4096: two 3000-byte messages cannot be assembled at once.
    let s = pair::Scenario::load();
    let (a, b) = (pattern(9, 3000), pattern(10, 3000));
    let chunks = [chunk(LOW, 100, 3000, 0, &a[..1000]), chunk(HIGH, 101, 3000, 0, &b[..1000])];

    let mut p = s.pair(TransportKind::Stream);
    let mut counter = pair::last_counter(&p);
    inject(&mut p, &s, &mut counter, &chunks);
    let malformed = DisconnectReason::Error(Error::Wire(WireError::MalformedPacket));
    assert_eq!(p.events[1], vec![pair::Ev::Disconnected(malformed)]);

    // On datagrams chunks may be lost, so no room is not the sender's fault: the older
    // message is given up for the newer one, and the session carries on.
    let mut p = s.pair(TransportKind::Datagram);
    let mut counter = pair::last_counter(&p);
    inject(&mut p, &s, &mut counter, &chunks);
    inject(&mut p, &s, &mut counter, &[chunk(HIGH, 101, 3000, 1000, &b[1000..2000])]);
    inject(&mut p, &s, &mut counter, &[chunk(LOW, 100, 3000, 1000, &a[1000..2000])]);
    inject(&mut p, &s, &mut counter, &[chunk(HIGH, 101, 3000, 2000, &b[2000..])]);
    assert_eq!(p.messages(1), vec![(HIGH, b)]);
    assert_eq!(p.n[1].stats().connected, 1);
}

fn cfg_err(field: &'static str, problem: &'static str) -> (&'static str, &'static str) {
    (field, problem)
}
