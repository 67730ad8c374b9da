//! Spec: handshakes complete over lossy datagram links (retransmission with backoff),
//! including the IK fast path, and over stream links with latency and jitter.

mod common;

use common::*;
use meshlink_core::{Config, TransportKind};
use meshlink_sim::{Latency, LinkConfig, Sim};

/// Handshakes are cheap in virtual time: many seeds.
const SEEDS: core::ops::RangeInclusive<u64> = 1..=20;

/// Connects two fresh nodes over a datagram link losing `loss` per direction; returns
/// the handshake time in ms and the datagrams dropped.
fn datagram_handshake(seed: u64, loss: f64, expect_key: bool) -> (u64, u64) {
    let mut sim = Sim::new(seed);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.set_links(a, b, LinkConfig::default().with_latency(ms(25)).with_loss(loss));
    sim.connect(a, b, TransportKind::Datagram, expect_key).unwrap();
    // The spec's bound: the whole handshake within handshake_timeout (30 s).
    run_connected(&mut sim, a, b, Config::default().handshake_timeout, &format!("seed {seed} loss {loss}"));
    assert_eq!(connected_kinds(&sim, a, b), [TransportKind::Datagram], "a reports b once");
    assert_eq!(connected_kinds(&sim, b, a), [TransportKind::Datagram], "b reports a once");
    let dropped = sim.link_stats(a, b).dropped + sim.link_stats(b, a).dropped;
    (sim.now().as_micros() / 1000, dropped)
}

#[test]
fn xx_datagram_handshake_completes_at_0_10_30_percent_loss() {
    for loss in [0.0, 0.1, 0.3] {
        let mut dropped = 0;
        let mut worst = 0;
        for seed in SEEDS.clone() {
            let (t, d) = datagram_handshake(seed, loss, false);
            dropped += d;
            worst = worst.max(t);
        }
        if loss == 0.0 {
            assert_eq!(dropped, 0);
            // XX: Init, Resp, Final, then the responder's ping confirms: 2 round trips of 50 ms.
            assert!(worst <= 100, "lossless handshake took {worst} ms");
        } else {
            // The loss really happened, so completion proves the retransmissions work.
            assert!(dropped > 0, "no datagram was lost at {loss}");
        }
        println!("loss {loss}: worst handshake {worst} ms, {dropped} datagrams dropped over {} seeds", SEEDS.count());
    }
}

/// IK over lossy datagrams: fails for seeds 11 and 14 at 30 % loss. When the responder's
/// Resp is lost, the initiator retransmits its Init, but the IK responder is already
/// Established (unconfirmed) and refuses the Init; only after its dead-peer timeout (20 s)
/// does a new Init get an answer, which the 30 s handshake deadline does not always allow.
#[test]
fn ik_fast_path_completes_under_loss() {
    for loss in [0.0, 0.1, 0.3] {
        for seed in SEEDS.clone() {
            datagram_handshake(seed, loss, true);
        }
    }
}

/// Minimal reproduction: only the Resp is lost (b -> a cut for 100 ms), then the link is
/// clean. The initiator's first Init retransmission (about 1 s later) should get a new
/// Resp; instead nothing completes until b drops its half-open session at 20 s.
#[test]
fn ik_lost_resp_minimal_repro() {
    let mut sim = Sim::new(1);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.partition_one_way(b, a);
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    sim.run_for(ms(100)); // Init arrives (10 ms), Resp and ping are dropped
    sim.heal_one_way(b, a);
    let ok = sim.run_until_cond(secs(5), |s| s.is_connected(a, b) && s.is_connected(b, a));
    assert!(ok, "no IK handshake 5 s after a lost Resp; a {:?}, b {:?}", kinds(&sim, a), kinds(&sim, b));
}

#[test]
fn ik_fast_path_completes_and_uses_two_handshake_records() {
    for seed in SEEDS.clone() {
        let (t, _) = datagram_handshake(seed, 0.0, true);
        // Init, Resp (+ ping), then the initiator's ping confirms: 1.5 round trips of 50 ms.
        assert!(t <= 75, "clean IK handshake took {t} ms");
    }
    // On a clean link, look at the wire: the Init says pattern IK (2) and no Final (0x03) is sent.
    let mut sim = Sim::new(9);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.set_capture(true);
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "ik clean");
    let from_a: Vec<&[u8]> = sim.captured().iter().filter(|d| d.src == a).map(|d| d.bytes.as_slice()).collect();
    assert_eq!(from_a[0][0], 0x01, "first record is an Init");
    assert_eq!(from_a[0][2], 2, "Init pattern byte is IK");
    assert!(from_a.iter().all(|r| r[0] != 0x03), "IK sends no Final");
    // And without the key it is XX with a Final.
    let mut sim = Sim::new(9);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.set_capture(true);
    sim.connect(a, b, TransportKind::Datagram, false).unwrap();
    run_connected(&mut sim, a, b, secs(5), "xx clean");
    let from_a: Vec<&[u8]> = sim.captured().iter().filter(|d| d.src == a).map(|d| d.bytes.as_slice()).collect();
    assert_eq!(from_a[0][2], 0, "Init pattern byte is XX");
    assert!(from_a.iter().any(|r| r[0] == 0x03), "XX sends a Final");
}

#[test]
fn stream_handshake_completes_with_latency_and_jitter() {
    for seed in SEEDS.clone() {
        for expect_key in [false, true] {
            let mut sim = Sim::new(seed);
            let a = sim.add_node(Config::default()).unwrap();
            let b = sim.add_node(Config::default()).unwrap();
            // Loss and duplication are configured but must not touch a stream.
            let link = LinkConfig::default()
                .with_latency_model(Latency::Normal { mean: ms(40), std_dev: ms(10) })
                .with_jitter(ms(15))
                .with_loss(0.3)
                .with_duplicate(0.3)
                // Tiny segments: the receiver assembles every frame from pieces.
                .with_mss(20);
            sim.set_links(a, b, link);
            sim.connect(a, b, TransportKind::Stream, expect_key).unwrap();
            // No retransmission on streams: a few one-way delays (each at most ~95 ms) suffice.
            run_connected(&mut sim, a, b, secs(2), &format!("stream seed {seed}"));
            assert_eq!(connected_kinds(&sim, a, b), [TransportKind::Stream]);
            assert_eq!(connected_kinds(&sim, b, a), [TransportKind::Stream]);
            let st = sim.link_stats(a, b);
            assert_eq!((st.dropped, st.duplicated), (0, 0), "a stream loses and duplicates nothing");
            assert_eq!(sim.input_errors(a) + sim.input_errors(b), 0);
        }
    }
}
