//! Properties under random loss, duplication and reordering on datagram links, over
//! many seeds: no message is delivered twice or to the wrong node, every node stays
//! within its session limits, and no node lists one peer twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use meshlink_core::{Config, Error, TransportKind};
use meshlink_sim::{Latency, LinkConfig, NodeIdx, Sim};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const NODES: usize = 5;
const SEEDS: u64 = 20;

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    rng.next_u32() as f64 / (u32::MAX as f64 + 1.0)
}

/// Limits tighter than the mesh needs, so the caps are exercised: 4 possible peers, 3 slots.
fn config() -> Config {
    Config::default().with(|c| {
        c.max_peers = 3;
        c.max_half_open = 2;
        c.max_message = 8 * 1024;
        c.send_queue = 32 * 1024;
        c.handshake_timeout = secs(10);
    })
}

/// Panics if any node breaks a limit; runs before every step.
fn check_limits(sim: &Sim, cfg: &Config) {
    for i in 0..sim.node_count() {
        let n = NodeIdx(i);
        let st = sim.node(n).stats();
        assert!(st.sessions <= cfg.max_peers, "node {i}: {} sessions > {}", st.sessions, cfg.max_peers);
        assert!(st.half_open <= cfg.max_half_open, "node {i}: {} half-open > {}", st.half_open, cfg.max_half_open);
        let peers: Vec<_> = sim.node(n).peers().map(|p| p.peer).collect();
        let unique: BTreeSet<_> = peers.iter().collect();
        assert_eq!(unique.len(), peers.len(), "node {i} lists a peer twice at {:?}", sim.now());
    }
}

fn run_seed(seed: u64) -> (usize, usize, u64) {
    let cfg = config();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sim = Sim::new(seed);
    let nodes: Vec<NodeIdx> = (0..NODES).map(|_| sim.add_node(cfg.clone()).unwrap()).collect();
    for &x in &nodes {
        for &y in &nodes {
            let lo = 5 + rng.next_u32() as u64 % 40;
            let link = LinkConfig::default()
                .with_latency_model(Latency::Uniform { min: ms(lo), max: ms(lo + 30) })
                .with_jitter(ms(rng.next_u32() as u64 % 20))
                .with_loss(unit(&mut rng) * 0.3)
                .with_duplicate(unit(&mut rng) * 0.3)
                .with_reorder(unit(&mut rng) * 0.3, ms(40));
            sim.set_link(x, y, link);
        }
    }
    // Everyone dials everyone at once: simultaneous opens, and more attempts than slots.
    for &x in &nodes {
        for &y in &nodes {
            if x != y {
                match sim.connect(x, y, TransportKind::Datagram, rng.next_u32() % 2 == 0) {
                    Ok(_) | Err(Error::PeerLimit { .. } | Error::HalfOpenLimit { .. }) => {}
                    Err(e) => panic!("connect: {e}"),
                }
            }
        }
    }
    // seq -> (from, to): every message body is unique and names its route.
    let mut routes: BTreeMap<u32, (NodeIdx, NodeIdx)> = BTreeMap::new();
    let mut seq = 0u32;
    for _round in 0..100 {
        for &x in &nodes {
            let connected: Vec<NodeIdx> = nodes.iter().copied().filter(|&y| y != x && sim.is_connected(x, y)).collect();
            for y in connected {
                let len = 4 + rng.next_u32() as usize % 3000;
                match sim.send(x, y, &payload(seq, len)) {
                    Ok(()) => {
                        routes.insert(seq, (x, y));
                    }
                    Err(Error::QueueFull { .. }) => {}
                    Err(e) => panic!("send: {e}"),
                }
                seq += 1;
            }
        }
        sim.run_until_cond(ms(200), |s| {
            check_limits(s, &cfg);
            false
        });
    }
    sim.run_until_cond(secs(5), |s| {
        check_limits(s, &cfg);
        false
    });
    let mut delivered = 0;
    for &y in &nodes {
        let mut seen = BTreeSet::new();
        for (from, data) in messages(&sim, y) {
            let s = check_payload(&data);
            assert_eq!(routes.get(&s), Some(&(from, y)), "seed {seed}: message {s} at node {} from {}", y.0, from.0);
            assert!(seen.insert(s), "seed {seed}: message {s} delivered twice to node {}", y.0);
            delivered += 1;
        }
    }
    let dups: u64 = nodes
        .iter()
        .flat_map(|&x| nodes.iter().map(move |&y| (x, y)))
        .map(|(x, y)| sim.link_stats(x, y).duplicated)
        .sum();
    (routes.len(), delivered, dups)
}

#[test]
fn no_duplicate_delivery_and_limits_hold_across_seeds() {
    let (mut sent, mut delivered, mut dups) = (0, 0, 0);
    for seed in 0..SEEDS {
        let (s, d, x) = run_seed(seed);
        sent += s;
        delivered += d;
        dups += x;
    }
    println!("{SEEDS} seeds: {sent} messages sent, {delivered} delivered, {dups} datagrams duplicated by the links");
    // The property is only meaningful if traffic flowed and duplicates were injected.
    assert!(delivered > 1000 && dups > 1000, "too little traffic: {delivered} delivered, {dups} duplicated");
}
