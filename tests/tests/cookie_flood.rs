//! Spec (PROTOCOL.md §5.12): a responder under a datagram Init flood from many spoofed
//! addresses does Diffie-Hellman for at most `cookie_half_open` of them; every other
//! flooded Init gets a 64-byte stateless Cookie reply (to an address that never answers),
//! and a legitimate datagram peer still connects after one cookie round trip.

mod common;

use core::net::SocketAddr;

use common::*;
use meshlink_core::cookie::{self, MACS_LEN};
use meshlink_core::session::INIT_MIN_DATAGRAM;
use meshlink_core::wire::WIRE_VERSION;
use meshlink_core::{Config, Error, TransportKind};
use meshlink_sim::{LinkConfig, NodeIdx, Sim};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A well-formed XX datagram Init from an attacker who knows the network id: random
/// sender index and `e`, zero padding, a valid mac1 (or a wrong one when `blind`) and no
/// cookie.
fn spoofed_init(rng: &mut ChaCha20Rng, blind: bool) -> Vec<u8> {
    let tag = meshlink_core::noise::symmetric::hash(&[b"meshlink network tag", b"meshlink"]);
    let mut d = vec![0u8; INIT_MIN_DATAGRAM + MACS_LEN];
    d[..4].copy_from_slice(&[0x01, WIRE_VERSION, 0, WIRE_VERSION]);
    rng.fill_bytes(&mut d[4..8]);
    d[8..12].copy_from_slice(&tag[..4]);
    rng.fill_bytes(&mut d[12..44]);
    let id: &[u8] = if blind { b"guess" } else { b"meshlink" };
    cookie::seal_init(&cookie::mac1_key(id), None, &mut d);
    d
}

fn spoofed_addr(i: u32) -> SocketAddr {
    SocketAddr::from(([203, 0, (i >> 8) as u8, i as u8], 1024 + (i % 50_000) as u16))
}

/// Floods `victim` with `per_tick` Inits every 10 ms for `ticks` ticks; calls `tick` after
/// each. Returns the Inits' results.
fn flood(
    sim: &mut Sim,
    victim: NodeIdx,
    rng: &mut ChaCha20Rng,
    blind: bool,
    ticks: u32,
    per_tick: u32,
    mut tick: impl FnMut(&mut Sim, u32),
) -> Vec<Result<(), Error>> {
    let mut results = Vec::new();
    for t in 0..ticks {
        for k in 0..per_tick {
            let d = spoofed_init(rng, blind);
            let from = spoofed_addr(t * per_tick + k);
            results.push(sim.with_node(victim, |n, now| n.handle_datagram(now, from, &d)));
        }
        sim.run_for(ms(10));
        tick(sim, t);
    }
    results
}

#[test]
fn a_legit_peer_connects_through_a_spoofed_init_flood() {
    for seed in 1..=5u64 {
        let mut sim = Sim::new(seed);
        let cfg = Config::default();
        let victim = sim.add_node(cfg.clone()).unwrap();
        let legit = sim.add_node(cfg.clone()).unwrap();
        sim.set_links(victim, legit, LinkConfig::default().with_latency(ms(20)));
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (ticks, per_tick) = (300, 20); // 6,000 Inits in 3 s
        let mut max_sessions = 0;
        let results = flood(&mut sim, victim, &mut rng, false, ticks, per_tick, |sim, t| {
            if t == 50 {
                // Half a second into the flood, the legitimate peer dials in.
                sim.connect(legit, victim, TransportKind::Datagram, false).unwrap();
            }
            let st = sim.node(victim).stats();
            max_sessions = max_sessions.max(st.sessions);
            // The flood never holds more than the cookie threshold of half-open sessions
            // (the legitimate peer's handshake may add one).
            assert!(st.half_open <= cfg.cookie_half_open + 1, "seed {seed}: {} half-open", st.half_open);
        });
        assert!(sim.is_connected(legit, victim) && sim.is_connected(victim, legit), "seed {seed}: legit peer lost");
        let st = sim.node(victim).stats();
        let total = (ticks * per_tick) as u64;
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        // Only the Inits that arrived before the load threshold got a session (and DH).
        assert_eq!(admitted, cfg.cookie_half_open, "seed {seed}");
        assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(Error::CookieRequired))), "seed {seed}");
        assert!(max_sessions <= cfg.cookie_half_open + 1, "seed {seed}: {max_sessions} sessions");
        // Every other flooded Init got one Cookie reply (drained after each Init, so the
        // reply queue never overflowed); the legitimate peer got one more and was admitted.
        assert_eq!(st.cookies_sent, total - cfg.cookie_half_open as u64 + 1, "seed {seed}");
        assert_eq!((st.inits_admitted, st.bad_mac1, st.bad_mac2), (1, 0, 0), "seed {seed}");
        assert!(sim.unroutable() >= st.cookies_sent - 1, "seed {seed}: cookies went to the spoofed sources");
        // The legitimate session works.
        sim.send(legit, victim, b"through the flood").unwrap();
        sim.run_for(ms(100));
        assert_eq!(messages(&sim, victim), [(legit, b"through the flood".to_vec())], "seed {seed}");
    }
}

#[test]
fn a_blind_flood_allocates_nothing() {
    // Inits with a wrong mac1 (the attacker does not know the network id) are dropped
    // before any state or reply, whatever the load.
    let mut sim = Sim::new(9);
    let victim = sim.add_node(Config::default()).unwrap();
    let legit = sim.add_node(Config::default()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let results = flood(&mut sim, victim, &mut rng, true, 100, 20, |sim, t| {
        assert!(sim.node(victim).stats().sessions <= usize::from(t >= 10), "only the legit peer's session");
        if t == 10 {
            sim.connect(legit, victim, TransportKind::Datagram, true).unwrap();
        }
    });
    assert!(results.iter().all(|r| *r == Err(Error::BadMac1)));
    let st = sim.node(victim).stats();
    assert_eq!((st.bad_mac1, st.cookies_sent, st.rejects_sent), (2000, 0, 0));
    assert!(sim.is_connected(legit, victim) && sim.is_connected(victim, legit));
}
