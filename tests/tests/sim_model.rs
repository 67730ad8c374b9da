//! The simulator's own model: bandwidth delays, counter bookkeeping, stream segmenting,
//! crash semantics and the livelock guard.

mod common;

use common::*;
use meshlink_core::{Config, TransportKind};
use meshlink_sim::{LinkConfig, Sim, SimEvent};

#[test]
fn bandwidth_limit_delays_a_large_stream_message() {
    let mut sim = Sim::new(1);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.set_links(a, b, LinkConfig::default().with_latency(ms(10)).with_bandwidth(50_000));
    sim.connect(a, b, TransportKind::Stream, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "bw");
    sim.run_for(secs(1));
    let t0 = sim.now();
    sim.send(a, b, &payload(0, 50_000)).unwrap();
    assert!(sim.run_until_cond(secs(5), |s| message_count(s, b) > 0));
    let took = sim.now().as_micros() - t0.as_micros();
    // 50 kB (+ record overhead) at 50 kB/s is just over a second, plus 10 ms latency.
    assert!((1_000_000..1_100_000).contains(&took), "took {took} us");
}

#[test]
fn link_counters_balance_once_idle() {
    let mut sim = Sim::new(2);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.set_links(a, b, LinkConfig::default().with_loss(0.2).with_duplicate(0.2).with_reorder(0.2, ms(30)));
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(30), "counters");
    for i in 0..200 {
        let _ = sim.send(a, b, &payload(i, 300));
    }
    sim.run_for(secs(60));
    sim.partition(a, b); // stop the pings...
    sim.run_for(secs(1)); // ...and let everything in flight land
    for (x, y) in [(a, b), (b, a)] {
        let st = sim.link_stats(x, y);
        assert_eq!(st.sent + st.duplicated, st.delivered + st.dropped, "{st:?}");
        assert!(st.dropped > 0 && st.duplicated > 0);
    }
}

#[test]
fn crashed_node_receives_and_sends_nothing() {
    let mut sim = Sim::new(3);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "crash");
    sim.run_for(secs(1));
    sim.crash(b);
    let before = sim.link_stats(b, a).sent;
    let events = sim.events(b).len();
    sim.send(a, b, b"into the void").unwrap();
    sim.run_for(secs(30));
    assert_eq!(sim.link_stats(b, a).sent, before, "a crashed node sends nothing");
    assert_eq!(sim.events(b).len(), events, "and sees nothing");
    assert!(sim.link_stats(a, b).dropped > 0);
}

#[test]
fn node_mut_output_is_drained_before_the_next_step() {
    let mut sim = Sim::new(4);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.connect(a, b, TransportKind::Stream, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "node_mut");
    let (peer, now) = (sim.peer_id(b), sim.now());
    sim.node_mut(a).send(now, &peer, b"via node_mut").unwrap();
    sim.run_for(secs(1));
    assert!(sim
        .events(b)
        .iter()
        .any(|e| matches!(&e.event, SimEvent::Message { data, .. } if data == b"via node_mut")));
}

#[test]
#[should_panic(expected = "livelock")]
fn livelock_guard_trips_on_too_much_work_at_one_instant() {
    let mut sim = Sim::new(5);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "livelock");
    sim.set_step_limit(10);
    // 50 datagrams sent at one instant over a fixed-latency link land at one instant.
    for i in 0..50 {
        sim.send(a, b, &payload(i, 100)).unwrap();
    }
    sim.run_for(secs(1));
}

#[test]
fn session_limit_is_set_at_run_time() {
    // Two sessions per node (max_peers, within the slot table): a third peer does not fit.
    let mut sim = Sim::new(6);
    let n: Vec<_> = (0..4).map(|_| sim.add_node(Config::default().with(|c| c.max_peers = 2)).unwrap()).collect();
    sim.connect(n[0], n[1], TransportKind::Datagram, true).unwrap();
    sim.connect(n[0], n[2], TransportKind::Stream, true).unwrap();
    let third = sim.connect(n[0], n[3], TransportKind::Datagram, true);
    assert!(matches!(third, Err(meshlink_core::Error::PeerLimit { limit: 2 })), "{third:?}");
    assert!(sim.run_until_cond(secs(5), |s| s.is_connected(n[0], n[1]) && s.is_connected(n[0], n[2])));
}
