//! Spec (F12-F14): over many pings the node measures the path's loss within 3 points,
//! its RTT within 10 %, and a jitter figure that rises when the path jitters.

mod common;

use common::*;
use core::time::Duration;
use meshlink_core::{Config, Quality, TransportKind};
use meshlink_sim::{LinkConfig, NodeIdx, Sim};

/// Pings every second (instead of 5 s) so that ~2000 pings take 2000 s of virtual time;
/// the pong deadline stays well above the 100-140 ms round trip.
fn config() -> Config {
    Config::default().with(|c| {
        c.ping_interval = secs(1);
        c.pong_timeout = secs(2);
    })
}

/// Two connected nodes with the given link per direction, run for `run_s` seconds after
/// connecting; returns (a's view of b, b's view of a).
fn measure(seed: u64, ab: LinkConfig, ba: LinkConfig, run_s: u64) -> (Quality, Quality) {
    let mut sim = Sim::new(seed);
    let a = sim.add_node(config()).unwrap();
    let b = sim.add_node(config()).unwrap();
    sim.set_link(a, b, ab);
    sim.set_link(b, a, ba);
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(30), "quality");
    sim.run_for(secs(run_s));
    // Still one session each: the loss never killed it.
    assert_eq!(connected_kinds(&sim, a, b).len(), 1);
    let qa = sim.node(a).quality(&sim.peer_id(b)).expect("a still connected");
    let qb = sim.node(b).quality(&sim.peer_id(a)).expect("b still connected");
    assert!(quality_events(&sim, a) > run_s / 2, "QualityUpdate events follow the pongs");
    (qa, qb)
}

fn quality_events(sim: &Sim, n: NodeIdx) -> u64 {
    sim.events(n).iter().filter(|e| matches!(e.event, meshlink_sim::SimEvent::Quality { .. })).count() as u64
}

/// Cumulative measured loss: judged-lost pings over judged pings.
fn loss(q: &Quality) -> f64 {
    q.pings_lost as f64 / (q.pings_lost + q.pongs_received) as f64
}

fn rtt_ms(q: &Quality) -> f64 {
    q.rtt_us.expect("rtt measured") as f64 / 1000.0
}

#[test]
fn loss_on_one_direction_is_measured_within_3_points() {
    // 10 % loss a -> b only: every round trip (ping out, pong back) crosses a -> b
    // exactly once, whichever side pings, so both sides should see 10 %.
    let lossy = LinkConfig::default().with_latency(ms(50)).with_loss(0.10);
    let clean = LinkConfig::default().with_latency(ms(50));
    for seed in [11, 12] {
        let (qa, qb) = measure(seed, lossy, clean, 2000);
        for (who, q) in [("a", qa), ("b", qb)] {
            let n = q.pings_lost + q.pongs_received;
            println!(
                "seed {seed} {who}: loss {:.4} over {n} pings, srtt {:.1} ms, jitter {} us",
                loss(&q),
                rtt_ms(&q),
                q.jitter_us
            );
            assert!(n >= 1900, "about 2000 pings judged, got {n}");
            assert!((loss(&q) - 0.10).abs() <= 0.03, "{who}: measured loss {:.4}, configured 0.10", loss(&q));
            // 50 ms each way = 100 ms round trip.
            assert!((rtt_ms(&q) - 100.0).abs() <= 10.0, "{who}: srtt {} ms", rtt_ms(&q));
            assert!(q.jitter_us < 1000, "{who}: a fixed-latency path shows no jitter, got {} us", q.jitter_us);
        }
    }
}

#[test]
fn symmetric_loss_is_measured_as_round_trip_loss() {
    // p per direction: a round trip survives with (1-p)^2.
    let p = 0.10;
    let expected = 1.0 - (1.0 - p) * (1.0 - p);
    let link = LinkConfig::default().with_latency(ms(50)).with_loss(p);
    for seed in [21, 22] {
        let (qa, qb) = measure(seed, link, link, 2000);
        for (who, q) in [("a", qa), ("b", qb)] {
            println!("seed {seed} {who}: loss {:.4} (expected {expected:.4}), srtt {:.1} ms", loss(&q), rtt_ms(&q));
            assert!((loss(&q) - expected).abs() <= 0.03, "{who}: measured {:.4}, expected {expected:.4}", loss(&q));
            assert!((rtt_ms(&q) - 100.0).abs() <= 10.0, "{who}: srtt {} ms", rtt_ms(&q));
        }
    }
}

#[test]
fn jitter_figure_rises_with_link_jitter() {
    // Up to 20 ms extra each way: the mean round trip is 100 + 2 * 10 = 120 ms.
    let jittery = LinkConfig::default().with_latency(ms(50)).with_jitter(ms(20));
    let steady = LinkConfig::default().with_latency(ms(50));
    let (ja, jb) = measure(31, jittery, jittery, 300);
    let (sa, _) = measure(31, steady, steady, 300);
    for (who, q) in [("a", ja), ("b", jb)] {
        println!("{who}: jitter {} us, srtt {:.1} ms (steady: jitter {} us)", q.jitter_us, rtt_ms(&q), sa.jitter_us);
        // |difference of two RTTs| with each RTT = 100 + U(0,20) + U(0,20) ms averages ~9 ms.
        assert!(q.jitter_us >= 4_000 && q.jitter_us <= 20_000, "{who}: jitter {} us", q.jitter_us);
        assert!((rtt_ms(&q) - 120.0).abs() <= 12.0, "{who}: srtt {} ms around 120", rtt_ms(&q));
        assert!(q.rtt_var_us > sa.rtt_var_us, "RTT variance rises too");
    }
    assert_eq!(sa.jitter_us, 0, "fixed latency: identical RTT samples");
}

/// On a lossless link whose jitter reorders datagrams, no ping is counted lost: nothing
/// is sent before the peer can decrypt it (the first transport record confirms the keys,
/// so only the side the peer waits for pings at once). XX and IK, both roles.
#[test]
fn no_ping_is_lost_on_a_lossless_reordering_link() {
    for expect_key in [false, true] {
        for seed in 0..10 {
            let mut sim = Sim::new(seed);
            let a = sim.add_node(Config::default()).unwrap();
            let b = sim.add_node(Config::default()).unwrap();
            let link =
                LinkConfig::default().with_latency(Duration::from_millis(2)).with_jitter(Duration::from_millis(1));
            sim.set_links(a, b, link);
            sim.connect(a, b, TransportKind::Datagram, expect_key).unwrap();
            sim.run_for(Duration::from_secs(61));
            for (x, y) in [(a, b), (b, a)] {
                let q = sim.node(x).quality(&sim.peer_id(y)).expect("connected");
                assert_eq!(q.pings_lost, 0, "seed {seed} ik {expect_key}: {q:?}");
                assert!(q.pongs_received >= 12, "seed {seed}: {q:?}");
            }
            assert_eq!(sim.input_errors(a) + sim.input_errors(b), 0, "seed {seed} ik {expect_key}");
        }
    }
}
