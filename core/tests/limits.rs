//! Limits at their edges that the hostile suite does not cover: the per-IP cap on
//! inbound handshakes in progress (`max_half_open_per_ip`).

use meshlink_core::{Config, DisconnectReason, Error, Event, HeapNode, Instant, Keypair, TransportKind};
use rand_core::{RngCore, SeedableRng};

fn node(cfg: Config, seed: u64) -> HeapNode {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    HeapNode::with_capacity(cfg, Keypair::generate(&mut rng), s, 16).unwrap()
}

fn cfg() -> Config {
    Config::default().with(|c| {
        c.max_message = 2048;
        c.send_queue = 4096;
        c.max_frame = 2048;
        c.max_half_open = 8;
    })
}

#[test]
fn one_ip_holds_at_most_max_half_open_per_ip_inbound_handshakes() {
    let mut n = node(cfg().with(|c| c.max_half_open_per_ip = 3), 1);
    let now = Instant::from_millis(1);
    for port in 1..=3 {
        n.accept(now, format!("192.0.2.1:{port}").parse().unwrap()).expect("within the per-IP cap");
    }
    assert_eq!(n.accept(now, "192.0.2.1:4".parse().unwrap()), Err(Error::HalfOpenLimit { limit: 3 }));
    // Another address is unaffected, and so are our own outbound handshakes.
    n.accept(now, "192.0.2.2:1".parse().unwrap()).expect("another IP");
    n.connect(now, TransportKind::Stream, "192.0.2.1:9".parse().unwrap(), None).expect("outbound");
    assert_eq!(n.stats().half_open, 5);
    // The node-wide cap still applies on top: at 8, a new inbound stream evicts the oldest.
    for ip in 3..=5 {
        n.accept(now, format!("192.0.2.{ip}:1").parse().unwrap()).unwrap();
    }
    assert_eq!(n.stats().half_open, 8);
    n.accept(now, "192.0.2.9:1".parse().unwrap()).expect("evicts the oldest");
    assert_eq!(n.stats().half_open, 8);
}

/// A full half-open table (silent sockets that never send an Init) does not lock a new
/// stream peer out: the oldest inbound handshake makes room, as in a SYN cache.
#[test]
fn a_full_half_open_table_evicts_its_oldest_inbound_handshake_for_a_new_stream() {
    let max = 8;
    let mut n = node(
        cfg().with(|c| {
            c.max_half_open = max;
            c.max_half_open_per_ip = 100;
        }),
        11,
    );
    let now = Instant::from_millis(1);
    let silent: Vec<_> =
        (0..max).map(|i| n.accept(now, format!("192.0.2.{}:1", i + 1).parse().unwrap()).unwrap()).collect();
    assert!(n.poll_event().is_none());
    // One past the edge: accepted, and the oldest silent socket is the one that goes.
    let newest = n.accept(now, "198.51.100.1:1".parse().unwrap()).expect("a new peer is never locked out");
    assert_eq!(n.stats().half_open, max);
    match n.poll_event() {
        Some(Event::Disconnected { conn, was_connected: false, reason, .. }) => {
            assert_eq!(conn, silent[0]);
            assert_eq!(reason, DisconnectReason::Error(Error::HandshakeEvicted));
        }
        e => panic!("{e:?}"),
    }
    assert!(n.poll_event().is_none(), "only one handshake is evicted");
    // The newest is intact and completes a handshake with a real peer.
    let mut c = node(cfg(), 12);
    let cc = c.connect(now, TransportKind::Stream, "203.0.113.1:7400".parse().unwrap(), Some(n.peer_id())).unwrap();
    let mut buf = vec![0u8; 8192];
    for _ in 0..4 {
        while let Some(t) = c.poll_transmit(now, &mut buf) {
            n.handle_stream(newest, now, &buf[..t.len]).unwrap();
        }
        while let Some(t) = n.poll_transmit(now, &mut buf) {
            c.handle_stream(cc, now, &buf[..t.len]).unwrap();
        }
    }
    assert!(matches!(c.poll_event(), Some(Event::Connected { .. })));
    assert!(matches!(n.poll_event(), Some(Event::Connected { .. })));
    assert_eq!(n.stats().connected, 1);
}

#[test]
fn eviction_never_takes_outbound_handshakes_and_datagram_inits_are_refused_busy() {
    let mut n = node(
        cfg().with(|c| {
            c.max_half_open = 2;
            c.max_half_open_per_ip = 100;
        }),
        13,
    );
    let now = Instant::from_millis(1);
    for port in 1..=2 {
        n.connect(now, TransportKind::Stream, format!("192.0.2.1:{port}").parse().unwrap(), None).unwrap();
    }
    // Only our own handshakes are half-open: nothing to evict, the cap refuses.
    assert_eq!(n.accept(now, "192.0.2.2:1".parse().unwrap()), Err(Error::HalfOpenLimit { limit: 2 }));
    // A datagram Init at the cap is refused with Busy, never by eviction.
    let mut c = node(cfg(), 14);
    c.connect(now, TransportKind::Datagram, "203.0.113.1:7402".parse().unwrap(), None).unwrap();
    let mut buf = vec![0u8; 4096];
    let t = c.poll_transmit(now, &mut buf).unwrap();
    let init = buf[..t.len].to_vec();
    while n.poll_transmit(now, &mut buf).is_some() {}
    assert_eq!(
        n.handle_datagram(now, "198.51.100.2:5".parse().unwrap(), &init),
        Err(Error::HalfOpenLimit { limit: 2 })
    );
    let r = n.poll_transmit(now, &mut buf).expect("a Busy reject");
    assert!(r.conn.is_none() && buf[0] == 0x06);
    assert_eq!(n.stats().half_open, 2);
}

#[test]
fn datagram_inits_from_one_ip_are_capped_and_refused_with_busy() {
    let mut server = node(cfg().with(|c| c.max_half_open_per_ip = 2), 2);
    let now = Instant::from_millis(1);
    let mut buf = vec![0u8; 4096];
    let mut accepted = 0;
    let mut refused = 0;
    for (i, seed) in (10..15).enumerate() {
        let mut client = node(cfg(), seed);
        let from = format!("198.51.100.7:{}", 1000 + i).parse().unwrap();
        client.connect(now, TransportKind::Datagram, "203.0.113.1:7402".parse().unwrap(), None).unwrap();
        let t = client.poll_transmit(now, &mut buf).unwrap();
        match server.handle_datagram(now, from, &buf[..t.len]) {
            Ok(()) => accepted += 1,
            Err(Error::HalfOpenLimit { limit: 2 }) => {
                refused += 1;
                // The refusal is a Busy Reject, no larger than the Init.
                let r = server.poll_transmit(now, &mut buf).expect("a reject");
                assert!(r.conn.is_none() && r.len == 8 && buf[0] == 0x06 && buf[1] == 3);
                continue;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        while server.poll_transmit(now, &mut buf).is_some() {}
    }
    assert_eq!((accepted, refused), (2, 3));
    assert_eq!(server.stats().half_open, 2);
}

#[test]
fn a_too_small_transmit_buffer_is_refused_without_spinning_or_failing_the_session() {
    let mut a = node(cfg(), 3);
    let b = node(cfg(), 4);
    let now = Instant::from_millis(1);
    let conn = a.connect(now, TransportKind::Stream, "192.0.2.1:7400".parse().unwrap(), Some(b.peer_id())).unwrap();
    // The Init is larger than 10 bytes: nothing comes out, the call returns.
    let mut tiny = [0u8; 10];
    assert!(a.poll_transmit(now, &mut tiny).is_none());
    // The session is intact: a proper buffer gets the Init.
    let mut buf = vec![0u8; 4096];
    let t = a.poll_transmit(now, &mut buf).expect("the Init after all");
    assert_eq!((t.conn, buf[2]), (Some(conn), 0x01));
    assert_eq!(a.stats().half_open, 1);
}

#[test]
fn closing_a_handshake_before_its_init_went_out_sends_nothing() {
    for kind in [TransportKind::Stream, TransportKind::Datagram] {
        let mut a = node(cfg(), 5);
        let now = Instant::from_millis(1);
        let conn = a.connect(now, kind, "192.0.2.1:7400".parse().unwrap(), None).unwrap();
        a.close(now, conn).unwrap();
        let mut buf = vec![0u8; 4096];
        assert!(a.poll_transmit(now, &mut buf).is_none(), "{kind:?}: the Init went out after close");
        match a.poll_event() {
            Some(meshlink_core::Event::Disconnected { conn: c, was_connected: false, .. }) => assert_eq!(c, conn),
            e => panic!("{kind:?}: {e:?}"),
        }
        assert_eq!(a.stats().sessions, 0);
    }
}
