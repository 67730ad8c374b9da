//! Batching (PROTOCOL.md §9.2, F35): small packets queued together share one transport
//! record, negotiated by Hello extension 0x03; priorities and FIFO order survive; a
//! receiver stopped mid-record by a waiting message resumes after the application took it.

mod pair;

use meshlink_core::messaging::{HeapMessenger, MessagingConfig, MessengerEvent, Outcome, RequestOptions};
use meshlink_core::session::EXT_BATCH;
use meshlink_core::{Config, ErrorCode, Event, Priority, TransportKind};
use pair::{last_counter, node, pattern, sealed_wire, Ev, Pair, Scenario};

const BOTH: [TransportKind; 2] = [TransportKind::Stream, TransportKind::Datagram];

fn cfg(max_batch: usize) -> Config {
    Config::default().with(|c| c.max_batch = max_batch)
}

/// Queues `n` 64-byte messages from side 0, pumps, and returns how many transport records
/// side 0 sent for them.
fn records_for(p: &mut Pair, n: usize) -> u64 {
    let before = last_counter(p);
    let b = p.id(1);
    for i in 0..n {
        p.n[0].send(p.now, &b, &pattern(i as u8, 64)).unwrap();
    }
    p.pump();
    let got = p.messages(1);
    assert_eq!(got.len(), n, "{:?}", p.kind);
    for (i, (_, m)) in got.iter().enumerate() {
        assert_eq!(m, &pattern(i as u8, 64), "message {i} out of order ({:?})", p.kind);
    }
    p.assert_connected();
    last_counter(p) - before
}

#[test]
fn the_default_hello_advertises_batching() {
    let n = node(&Config::default(), 1, 1);
    assert_eq!(n.config().hello.extensions.get(EXT_BATCH), Some(&[16u8][..]));
    let off = node(&cfg(1), 1, 1);
    assert_eq!(off.config().hello.extensions.get(EXT_BATCH), None, "max_batch 1 advertises nothing");
}

#[test]
fn small_messages_share_records() {
    for t in BOTH {
        let mut p = Pair::new(t, Config::default());
        let records = records_for(&mut p, 160);
        // 16 packets per record, plus a few control records (Pong, Credit).
        assert!(records <= 160 / 16 + 4, "{t:?}: {records} records for 160 messages");
        assert!(records >= 160 / 16, "{t:?}: more than 16 packets in a record ({records})");
    }
}

#[test]
fn max_batch_1_is_one_packet_per_record() {
    for t in BOTH {
        let mut p = Pair::new(t, cfg(1));
        let records = records_for(&mut p, 100);
        assert!(records >= 100, "{t:?}: {records} records for 100 messages with batching off");
    }
}

#[test]
fn an_old_peer_gets_one_packet_per_record() {
    // Side 1 does not advertise the extension (as a node without batching): side 0 sends
    // it one packet per record though it batches by default.
    for t in BOTH {
        let n = [node(&Config::default(), 1, 11), node(&cfg(1), 2, 22)];
        let mut p = Pair::connect(t, n, meshlink_core::Instant::ZERO, true);
        let records = records_for(&mut p, 100);
        assert!(records >= 100, "{t:?}: {records} records to a peer without batching");
    }
}

#[test]
fn max_batch_at_its_edges() {
    assert!(cfg(0).validate().is_err());
    assert!(cfg(256).validate().is_err());
    assert!(cfg(255).validate().is_ok());
    for t in BOTH {
        // 2 per record: exactly half the records, within the control packets.
        let mut p = Pair::new(t, cfg(2));
        let records = records_for(&mut p, 100);
        assert!((50..=54).contains(&records), "{t:?}: {records} records at max_batch 2");
        // The smaller of both limits is used: 2 against 255.
        let n = [node(&cfg(255), 1, 11), node(&cfg(2), 2, 22)];
        let mut p = Pair::connect(t, n, meshlink_core::Instant::ZERO, true);
        let records = records_for(&mut p, 100);
        assert!((50..=54).contains(&records), "{t:?}: {records} records at min(255, 2)");
    }
    // 255 per record: bounded by the datagram (1200 bytes hold about 13 of 64 bytes) and
    // by the frame on a stream (64 KiB hold all 300).
    let mut p = Pair::new(TransportKind::Stream, cfg(255));
    let records = records_for(&mut p, 300);
    assert!(records <= 2 + 3, "stream: {records} records for 300 messages at max_batch 255");
    let mut p = Pair::new(TransportKind::Datagram, cfg(255));
    let records = records_for(&mut p, 300);
    assert!((300 / 17..=300 / 15 + 6).contains(&records), "datagram: {records} records");
}

#[test]
fn priorities_and_fifo_order_hold_inside_batches() {
    for t in BOTH {
        let mut p = Pair::new(t, Config::default());
        let b = p.id(1);
        for i in 0..20u8 {
            p.n[0].send_with(p.now, &b, 0x42, Priority::Low, &pattern(i, 64)).unwrap();
        }
        for i in 0..20u8 {
            p.n[0].send_with(p.now, &b, 0x41, Priority::Normal, &pattern(100 + i, 64)).unwrap();
        }
        for i in 0..20u8 {
            p.n[0].send_with(p.now, &b, 0x40, Priority::High, &pattern(200 + i, 64)).unwrap();
        }
        p.pump();
        let got = p.messages(1);
        let want: Vec<_> = (0..20u8)
            .map(|i| (0x40, pattern(200 + i, 64)))
            .chain((0..20u8).map(|i| (0x41, pattern(100 + i, 64))))
            .chain((0..20u8).map(|i| (0x42, pattern(i, 64))))
            .collect();
        assert_eq!(got, want, "{t:?}");
        p.assert_connected();
    }
}

#[test]
fn a_large_message_and_small_ones_share_a_stream_record_and_arrive_whole() {
    let mut p = Pair::new(TransportKind::Stream, Config::default());
    let b = p.id(1);
    p.n[0].send(p.now, &b, &pattern(1, 40 * 1024)).unwrap();
    for i in 0..10u8 {
        p.n[0].send(p.now, &b, &pattern(i, 64)).unwrap();
    }
    p.pump();
    let got = p.messages(1);
    assert_eq!(got.len(), 11);
    assert_eq!(got[0].1, pattern(1, 40 * 1024));
    p.assert_connected();
}

/// Hand-sealed batched records from the handshake vector's initiator.
fn scenario(t: TransportKind) -> (Pair, Scenario) {
    let s = Scenario::load();
    let mut p = s.pair(t);
    p.pump();
    p.events = [vec![], vec![]];
    (p, s)
}

#[test]
fn a_length_past_the_record_is_malformed_after_the_packets_before_it() {
    // 09 | 07 "03 00 02 00 02 6869" (Data "hi") | 05 "01" (length 5, 1 byte left).
    let plain = hex::decode("0907030002000268690501").unwrap();
    for t in BOTH {
        let (mut p, s) = scenario(t);
        let dropped = p.n[1].stats().records_dropped;
        let wire = sealed_wire(&p, &s, last_counter(&p) + 1, &plain);
        p.deliver(1, &wire);
        p.pump();
        assert_eq!(p.messages(1), vec![(0x03, b"hi".to_vec())], "{t:?}: the packet before it counts");
        match t {
            // On datagrams the record is dropped, counted, answered, and the session goes on.
            TransportKind::Datagram => {
                assert!(p.events[0].contains(&Ev::RemoteError(ErrorCode::Malformed)), "{:?}", p.events[0]);
                assert_eq!(p.n[1].stats().records_dropped, dropped + 1);
                let b = p.id(1);
                // The injected record took side 0's next counter: its next record is a
                // replay and dropped, the one after it arrives.
                for _ in 0..2 {
                    p.n[0].send(p.now, &b, b"after").unwrap();
                    p.pump();
                }
                assert_eq!(p.messages(1).last().unwrap().1, b"after".to_vec());
            }
            // On a stream, as a malformed single packet: the session ends.
            TransportKind::Stream => {
                assert_eq!(p.n[1].stats().connected, 0);
                assert!(p.events[1].iter().any(|e| matches!(e, Ev::Disconnected(_))), "{:?}", p.events[1]);
            }
        }
    }
}

#[test]
fn malformed_batches_are_refused() {
    let cases = [
        ("0904", "a 4-byte length with one byte left"),
        ("09ffffff7f", "a varint longer than 3 bytes"),
        ("0902090102020100", "a batch inside a batch"),
    ];
    for (hexs, what) in cases {
        let (mut p, s) = scenario(TransportKind::Datagram);
        let dropped = p.n[1].stats().records_dropped;
        let wire = sealed_wire(&p, &s, last_counter(&p) + 1, &hex::decode(hexs).unwrap());
        p.deliver(1, &wire);
        p.pump();
        assert_eq!(p.n[1].stats().records_dropped, dropped + 1, "{what}");
        assert!(p.events[0].contains(&Ev::RemoteError(ErrorCode::Malformed)), "{what}");
    }
}

#[test]
fn more_packets_than_advertised_are_malformed() {
    // The scenario's nodes advertise 16: a record of 17 stale Credits {limit: 0} (ignored
    // one by one) is refused, one of 16 is read.
    let mut plain = vec![0x09];
    for _ in 0..17 {
        plain.extend_from_slice(&[2, 0x07, 0x00]);
    }
    for (n, refused) in [(17, true), (16, false)] {
        let (mut p, s) = scenario(TransportKind::Datagram);
        let dropped = p.n[1].stats().records_dropped;
        let wire = sealed_wire(&p, &s, last_counter(&p) + 1, &plain[..1 + n * 3]);
        p.deliver(1, &wire);
        p.pump();
        assert_eq!(p.n[1].stats().records_dropped, dropped + u64::from(refused), "{n} packets");
        assert_eq!(p.events[0].contains(&Ev::RemoteError(ErrorCode::Malformed)), refused, "{n} packets");
        p.assert_connected();
    }
}

#[test]
fn the_datagram_window_counts_a_batched_record_once() {
    // A window of 4 records: 400 messages in batches still flow, and a batched record
    // takes one credit (far fewer records than messages).
    let c = Config::default().with(|c| c.datagram_window = 4);
    let mut p = Pair::new(TransportKind::Datagram, c);
    let records = records_for(&mut p, 400);
    assert!(records < 400 / 8, "{records} records for 400 messages");
    let info = p.n[0].flow(&p.id(1)).unwrap();
    assert!(info.enabled, "flow control negotiated");
    // Every record was handed on, so the receiver's grants opened the window past the
    // last one sealed: a batched record was counted once on both sides.
    assert!(info.send_limit > last_counter(&p), "the window is open again: {info:?}");
}

/// Input as a host holds it: stream bytes fed again from where `handle_stream` stopped,
/// a datagram fed again while a message waits.
#[test]
fn the_receiver_resumes_a_batch_after_each_event_it_hands_out() {
    for t in BOTH {
        let mut p = Pair::new(t, Config::default());
        let b = p.id(1);
        let n = 200;
        for i in 0..n {
            p.n[0].send(p.now, &b, &pattern(i as u8, 64)).unwrap();
        }
        let mut buf = vec![0u8; p.buf_len];
        let mut pending: Vec<u8> = vec![];
        let mut got = vec![];
        for _ in 0..100_000 {
            if got.len() == n {
                break;
            }
            // One transmit at most, then one event at most: the consumer drains one event
            // at a time, and input keeps coming in between.
            if pending.is_empty() {
                if let Some(tx) = p.n[0].poll_transmit(p.now, &mut buf) {
                    pending.extend_from_slice(&buf[..tx.len]);
                }
            }
            if !pending.is_empty() {
                match t {
                    TransportKind::Stream => {
                        let used = p.n[1].handle_stream(p.conn[1].unwrap(), p.now, &pending).unwrap();
                        pending.drain(..used);
                    }
                    TransportKind::Datagram => {
                        // A host with no events waiting: a datagram is only fed then.
                        if p.n[1].handle_datagram(p.now, p.addr[0], &pending).is_ok() {
                            pending.clear();
                        }
                    }
                }
            }
            if let Some(Event::Message { data, .. }) = p.n[1].poll_event() {
                got.push(data.to_vec());
            }
            while let Some(tx) = p.n[1].poll_transmit(p.now, &mut buf) {
                let bytes = buf[..tx.len].to_vec();
                p.deliver(0, &bytes);
            }
        }
        assert_eq!(got.len(), n, "{t:?}: stalled after {} messages", got.len());
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m, &pattern(i as u8, 64), "{t:?}: message {i}");
        }
        assert!(last_counter(&p) < 200 / 4, "{t:?}: batched ({} records)", last_counter(&p));
    }
}

#[test]
fn the_messenger_drains_batched_messages_and_requests_one_event_at_a_time() {
    let mk =
        |s: u8| HeapMessenger::with_capacity(node(&Config::default(), s, s + 10), MessagingConfig::default()).unwrap();
    let mut m = [mk(1), mk(2)];
    let now = meshlink_core::Instant::ZERO;
    let addr: [std::net::SocketAddr; 2] = ["10.0.0.1:1000".parse().unwrap(), "10.0.0.2:2000".parse().unwrap()];
    let ids = [m[0].node().peer_id(), m[1].node().peer_id()];
    let mut conn = [None, None];
    conn[0] = Some(m[0].node_mut().connect(now, TransportKind::Stream, addr[1], Some(ids[1])).unwrap());
    conn[1] = Some(m[1].node_mut().accept(now, addr[0]).unwrap());
    m[1].register("echo", "1.0.0").unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut pending: [Vec<u8>; 2] = [vec![], vec![]];
    let (mut plain, mut answers, mut queued) = (vec![], 0usize, false);
    let n = 50;
    for _ in 0..100_000 {
        for side in 0..2 {
            while let Some(tx) = m[side].poll_transmit(now, &mut buf) {
                pending[1 - side].extend_from_slice(&buf[..tx.len]);
            }
        }
        for side in 0..2 {
            if !pending[side].is_empty() {
                let used = m[side].handle_stream(conn[side].unwrap(), now, &pending[side]).unwrap();
                pending[side].drain(..used);
            }
        }
        // One event per side per round.
        let mut connected = false;
        if let Some(ev) = m[0].poll_event() {
            match ev {
                MessengerEvent::Node(Event::Connected { .. }) => connected = true,
                MessengerEvent::Outcome { outcome: Outcome::Response(r), .. } => {
                    assert_eq!(r, &pattern(answers as u8, 64)[..], "answers in order");
                    answers += 1;
                }
                _ => {}
            }
        }
        let mut reply = None;
        if let Some(ev) = m[1].poll_event() {
            match ev {
                MessengerEvent::Node(Event::Message { data, .. }) => plain.push(data.to_vec()),
                MessengerEvent::Request(r) => reply = Some((r.peer, r.id, r.body.to_vec())),
                _ => {}
            }
        }
        if let Some((peer, id, body)) = reply {
            m[1].respond(now, &peer, id, &body).unwrap();
        }
        if connected && !queued {
            queued = true;
            for i in 0..n {
                m[0].node_mut().send(now, &ids[1], &pattern(i as u8, 64)).unwrap();
                m[0].request(now, &ids[1], "echo", &pattern(i as u8, 64), RequestOptions::new()).unwrap();
            }
        }
        if plain.len() == n && answers == n {
            break;
        }
    }
    assert_eq!(plain.len(), n, "plain messages through the messenger");
    assert_eq!(answers, n, "responses");
    for (i, d) in plain.iter().enumerate() {
        assert_eq!(d, &pattern(i as u8, 64));
    }
}

/// `tests/vectors/batching.json` (PROTOCOL.md §13.8): the plaintext is what the code's
/// packets encode to behind their lengths, the sealed record is the code's AEAD of it, and
/// both are printed in the spec.
#[test]
fn the_batched_record_vector_matches_the_code_and_the_spec() {
    use meshlink_core::noise::{CipherState, TAG_LEN};
    use meshlink_core::wire::{Header, Packet};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/batching.json");
    let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = &f["vectors"][0];
    let h = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
    let pkts = [
        Packet::Pong { seq: 5 },
        Packet::Data { kind: 3, msg_id: 0, total: 2, offset: 0, bytes: b"hi" },
        Packet::Data { kind: 3, msg_id: 1, total: 2, offset: 0, bytes: b"yo" },
    ];
    let mut pt = vec![0x09];
    for p in &pkts {
        let mut b = [0u8; 64];
        let n = p.encode(&mut b).unwrap();
        pt.push(n as u8);
        pt.extend_from_slice(&b[..n]);
    }
    assert_eq!(pt, h("plaintext"));
    let key: [u8; 32] = h("key").try_into().unwrap();
    let mut rec = vec![0u8; 16 + pt.len() + TAG_LEN];
    Header::Transport { phase: 0, receiver: 0x9abc_0001, counter: 4 }.encode(&mut rec).unwrap();
    rec[16..16 + pt.len()].copy_from_slice(&pt);
    let (hdr, body) = rec.split_at_mut(16);
    CipherState::new(key).encrypt_at(4, hdr, body, pt.len()).unwrap();
    assert_eq!(rec, h("datagram"));
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md")).unwrap();
    let flat: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(flat.contains(v["datagram"].as_str().unwrap()), "§13.8 prints the sealed record");
    assert!(flat.contains(v["plaintext"].as_str().unwrap()), "§9.2 prints the plaintext");
    // A receiver reads the same plaintext: the Pong is handled, both messages arrive.
    let (mut p, s) = scenario(TransportKind::Datagram);
    let wire = sealed_wire(&p, &s, last_counter(&p) + 1, &pt);
    p.deliver(1, &wire);
    p.pump();
    assert_eq!(p.messages(1), vec![(3, b"hi".to_vec()), (3, b"yo".to_vec())]);
}

#[test]
fn batching_never_splits_a_message_that_fits_a_datagram() {
    // Two 600-byte messages do not fit one 1200-byte datagram together: each gets its own
    // (a split message is at the mercy of loss and reordering), never 600 + a tail.
    let mut p = Pair::new(TransportKind::Datagram, Config::default());
    let before = last_counter(&p);
    let b = p.id(1);
    for i in 0..10u8 {
        p.n[0].send(p.now, &b, &pattern(i, 600)).unwrap();
    }
    p.pump();
    assert_eq!(p.messages(1).len(), 10);
    assert!(last_counter(&p) - before >= 10, "{} records for 10 messages of 600 bytes", last_counter(&p) - before);
}
