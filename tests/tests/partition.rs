//! Spec (F07, F10): a partition ends the session with Disconnected(Timeout) on both sides
//! within the dead-peer timeout; after healing, a new connect succeeds. Also: stalled
//! streams resume in order, broken streams close at once, crashed nodes come back.

mod common;

use common::*;
use meshlink_core::{Config, DisconnectReason, Instant, TransportKind};
use meshlink_sim::{LinkConfig, NodeIdx, Sim, StreamPartition};

/// The sim runs timers at their exact instant; allow one millisecond of granularity.
const GRANULARITY: core::time::Duration = core::time::Duration::from_millis(1);

fn pair(seed: u64, link: LinkConfig) -> (Sim, NodeIdx, NodeIdx) {
    let mut sim = Sim::new(seed);
    let a = sim.add_node(Config::default()).unwrap();
    let b = sim.add_node(Config::default()).unwrap();
    sim.set_links(a, b, link);
    (sim, a, b)
}

/// Partitions a connected pair at t0 and checks both sides time out in the window
/// (t0 + dead_peer - ping_interval - one round trip, t0 + dead_peer + granularity].
fn partition_times_out(sim: &mut Sim, a: NodeIdx, b: NodeIdx) {
    let cfg = Config::default();
    sim.run_for(secs(12)); // a few pings in
    let t0 = sim.now();
    sim.partition(a, b);
    let gone =
        sim.run_until_cond(cfg.dead_peer_timeout + GRANULARITY, |s| !s.is_connected(a, b) && !s.is_connected(b, a));
    assert!(gone, "still connected {:?} after the partition", cfg.dead_peer_timeout);
    let earliest = t0 + (cfg.dead_peer_timeout - cfg.ping_interval - ms(100));
    for (n, who) in [(a, "a"), (b, "b")] {
        let d = disconnects(sim, n, t0);
        assert_eq!(d.len(), 1, "{who}: one Disconnected, got {:?}", kinds(sim, n));
        let (at, reason, was_connected) = d[0];
        assert_eq!(reason, DisconnectReason::Timeout, "{who}");
        assert!(was_connected, "{who}");
        assert!(
            at >= earliest && at <= t0 + cfg.dead_peer_timeout + GRANULARITY,
            "{who}: at {} ms, partition at {} ms",
            at.as_micros() / 1000,
            t0.as_micros() / 1000
        );
        println!("{who}: Disconnected(Timeout) {} ms after the partition", (at.as_micros() - t0.as_micros()) / 1000);
    }
}

fn reconnect_after_heal(sim: &mut Sim, a: NodeIdx, b: NodeIdx, kind: TransportKind) {
    // While partitioned, a new attempt cannot finish.
    sim.connect(a, b, kind, true).unwrap();
    assert!(!sim.run_until_cond(secs(3), |s| s.is_connected(a, b)), "connected through a partition");
    sim.heal(a, b);
    // The attempt made during the partition completes: a datagram Init is retransmitted,
    // stalled stream bytes flow once healed.
    run_connected(sim, a, b, Config::default().handshake_timeout, "after heal");
    sim.send(a, b, b"after heal").unwrap();
    sim.run_for(secs(1));
    assert_eq!(messages(sim, b).last().map(|m| m.1.as_slice()), Some(&b"after heal"[..]));
}

#[test]
fn datagram_partition_times_out_both_sides_then_reconnects() {
    for seed in [1, 2, 3] {
        let (mut sim, a, b) = pair(seed, LinkConfig::default().with_latency(ms(30)));
        sim.connect(a, b, TransportKind::Datagram, false).unwrap();
        run_connected(&mut sim, a, b, secs(5), "initial");
        partition_times_out(&mut sim, a, b);
        reconnect_after_heal(&mut sim, a, b, TransportKind::Datagram);
    }
}

#[test]
fn stream_partition_stalls_then_times_out_then_reconnects() {
    let (mut sim, a, b) = pair(4, LinkConfig::default().with_latency(ms(30)));
    sim.connect(a, b, TransportKind::Stream, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "initial");
    partition_times_out(&mut sim, a, b);
    reconnect_after_heal(&mut sim, a, b, TransportKind::Stream);
}

#[test]
fn short_stream_partition_delivers_stalled_messages_in_order() {
    let (mut sim, a, b) = pair(5, LinkConfig::default().with_latency(ms(30)));
    sim.connect(a, b, TransportKind::Stream, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "initial");
    sim.partition(a, b);
    let sent: Vec<Vec<u8>> = (0..20).map(|i| payload(i, 100 + 37 * i as usize)).collect();
    for m in &sent {
        sim.send(a, b, m).unwrap();
    }
    sim.run_for(secs(8)); // shorter than the 20 s dead-peer timeout
    assert!(messages(&sim, b).is_empty(), "nothing crosses a partition");
    let healed = sim.now();
    sim.heal(a, b);
    sim.run_for(secs(1));
    let got: Vec<Vec<u8>> = messages(&sim, b).into_iter().map(|m| m.1).collect();
    assert_eq!(got, sent, "every stalled message, once, in order");
    assert!(disconnects(&sim, a, Instant::ZERO).is_empty() && disconnects(&sim, b, Instant::ZERO).is_empty());
    assert!(sim.events(b).iter().any(|e| e.at >= healed && matches!(e.event, meshlink_sim::SimEvent::Message { .. })));
}

#[test]
fn breaking_stream_partition_closes_both_ends_at_once() {
    let link = LinkConfig::default().with_latency(ms(30)).with_on_partition(StreamPartition::Break);
    let (mut sim, a, b) = pair(6, link);
    sim.connect(a, b, TransportKind::Stream, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "initial");
    let t0 = sim.now();
    sim.partition(a, b);
    for n in [a, b] {
        assert_eq!(disconnects(&sim, n, t0), [(t0, DisconnectReason::TransportClosed, true)]);
    }
}

#[test]
fn one_way_partition_times_out_the_deaf_side_first() {
    let (mut sim, a, b) = pair(7, LinkConfig::default().with_latency(ms(30)));
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "initial");
    let t0 = sim.now();
    let dead = Config::default().dead_peer_timeout;
    sim.partition_one_way(a, b); // b hears nothing; a still hears b
    sim.run_for(dead + GRANULARITY);
    let db = disconnects(&sim, b, t0);
    assert_eq!(db.len(), 1, "b times out: {:?}", kinds(&sim, b));
    assert_eq!(db[0].1, DisconnectReason::Timeout);
    // a heard b until b gave up, so a lasts until b's last record + dead_peer_timeout.
    sim.run_for(dead);
    let da = disconnects(&sim, a, t0);
    assert_eq!(da.len(), 1, "a times out after b went quiet: {:?}", kinds(&sim, a));
    assert!(da[0].0 > db[0].0 && da[0].1 == DisconnectReason::Timeout);
}

#[test]
fn crashed_node_times_out_and_restarted_node_reconnects() {
    let (mut sim, a, b) = pair(8, LinkConfig::default().with_latency(ms(30)));
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "initial");
    let old_b = sim.peer_id(b);
    sim.crash(b);
    let t0 = sim.now();
    // b's last records were already on the wire: a hears them up to one latency later.
    sim.run_for(Config::default().dead_peer_timeout + ms(30) + GRANULARITY);
    let d = disconnects(&sim, a, t0);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, DisconnectReason::Timeout);
    sim.restart(b).unwrap();
    assert_eq!(sim.peer_id(b), old_b, "same keypair after restart");
    sim.connect(b, a, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "after restart");
}

/// A node that restarts soon after connecting must be able to connect again at once.
/// Here a's key sorts below b's (checked), a initiated the first session, b restarts 3 s
/// later and connects: a judges the two sessions a "simultaneous open" (the old one is
/// younger than handshake_timeout) and keeps the one the lower key initiated, i.e. the
/// dead one, closing b's new session with Close(Duplicate).
#[test]
fn restarted_node_replaces_its_stale_session() {
    let (mut sim, a, b) = pair(9, LinkConfig::default().with_latency(ms(30)));
    sim.connect(a, b, TransportKind::Datagram, true).unwrap();
    run_connected(&mut sim, a, b, secs(5), "initial");
    assert!(sim.peer_id(a) < sim.peer_id(b), "the tie-break favours a's old session");
    sim.crash(b);
    sim.run_for(secs(3)); // well inside a's dead-peer timeout: a still holds the old session
    assert!(sim.is_connected(a, b));
    sim.restart(b).unwrap();
    sim.connect(b, a, TransportKind::Datagram, true).unwrap();
    // The restarted b is connected once its own session is up (a's view was up all along).
    run_connected(&mut sim, b, a, secs(5), "after restart");
    sim.run_for(ms(200));
    let id = sim.peer_id(b);
    assert_eq!(sim.node(a).peers().filter(|p| p.peer == id).count(), 1, "one session with b");
    sim.send(a, b, b"to the new b").unwrap();
    sim.run_for(secs(1));
    assert_eq!(messages(&sim, b).last().map(|m| m.1.clone()), Some(b"to the new b".to_vec()));
}
