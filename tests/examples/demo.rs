//! The simulator's worked example: a small mesh on built-in defaults. Four core nodes,
//! stream and datagram links with latency, jitter and loss, handshakes, messages (small
//! and chunked), a partition and its heal, and a quality table, all in virtual time.
//! Deterministic: `cargo run -p meshlink-sim --example demo -- <seed>` prints the same
//! output, down to the trace hash, for the same seed.

use core::time::Duration;

use meshlink_core::{Config, Error, Hello, TransportKind};
use meshlink_sim::{LinkConfig, NodeIdx, Sim, SimEvent};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(42);
    let mut sim = Sim::new(seed);
    let names = ["alpha", "bravo", "charlie", "delta"];
    let mut nodes: Vec<NodeIdx> = Vec::new();
    for n in names {
        // A node's name travels in its Hello; add_node refuses an invalid config with an error.
        let hello = Hello::named(n).map_err(Error::from)?;
        nodes.push(sim.add_node(Config::default().with(|c| c.hello = hello))?);
    }
    let name = |i: NodeIdx| names[i.0];

    // alpha-bravo: a LAN over UDP; bravo-charlie: a WAN stream; charlie-delta: lossy UDP.
    let links = [
        (0, 1, TransportKind::Datagram, LinkConfig::default().with_latency(ms(2)).with_jitter(ms(1))),
        (1, 2, TransportKind::Stream, LinkConfig::default().with_latency(ms(40)).with_jitter(ms(5))),
        (2, 3, TransportKind::Datagram, LinkConfig::default().with_latency(ms(25)).with_jitter(ms(8)).with_loss(0.1)),
        (0, 3, TransportKind::Stream, LinkConfig::default().with_latency(ms(80)).with_jitter(ms(10))),
    ];
    println!("meshlink simulated demo (seed {seed}): 4 nodes, virtual time\n");
    for (i, n) in nodes.iter().enumerate() {
        println!("  {:<8} {}", names[i], sim.peer_id(*n));
    }
    println!();
    for &(a, b, kind, link) in &links {
        sim.set_links(nodes[a], nodes[b], link);
        sim.connect(nodes[a], nodes[b], kind, true)?;
    }
    let all_up = |s: &Sim| {
        links.iter().all(|&(a, b, ..)| s.is_connected(nodes[a], nodes[b]) && s.is_connected(nodes[b], nodes[a]))
    };
    assert!(sim.run_until_cond(Duration::from_secs(30), all_up), "handshakes did not complete");
    for &n in &nodes {
        for e in sim.take_events(n) {
            if let SimEvent::Connected { peer, kind, .. } = e.event {
                let other = sim.idx_of(&peer).map_or("?", name);
                println!("[{:>9.3} s] {:<8} connected to {:<8} over {kind:?}", secs(e.at), name(n), other);
            }
        }
    }

    println!();
    for (i, &(a, b, ..)) in links.iter().enumerate() {
        sim.send(nodes[a], nodes[b], format!("hello {} from {}", names[b], names[a]).as_bytes())?;
        sim.send(nodes[b], nodes[a], &vec![i as u8; 50_000])?;
    }
    sim.run_for(Duration::from_secs(2));
    for &n in &nodes {
        for e in sim.take_events(n) {
            if let SimEvent::Message { peer, data, .. } = e.event {
                let from = sim.idx_of(&peer).map_or("?", name);
                let text = match std::str::from_utf8(&data) {
                    Ok(t) if data.len() <= 64 => format!("{t:?}"),
                    _ => format!("{} bytes (chunked and reassembled)", data.len()),
                };
                println!("[{:>9.3} s] {:<8} <- {:<8} {text}", secs(e.at), name(n), from);
            }
        }
    }

    // A minute of pings, then a partition between charlie and delta, then the heal.
    sim.run_for(Duration::from_secs(60));
    table(&sim, &nodes, &names);
    println!("\npartition charlie <-> delta");
    sim.partition(nodes[2], nodes[3]);
    sim.run_for(Duration::from_secs(30));
    for &n in &nodes[2..] {
        for e in sim.take_events(n) {
            if let SimEvent::Disconnected { peer, reason, .. } = e.event {
                let other = peer.and_then(|p| sim.idx_of(&p)).map_or("?", name);
                println!("[{:>9.3} s] {:<8} lost {other:<8} ({reason:?})", secs(e.at), name(n));
            }
        }
    }
    sim.heal(nodes[2], nodes[3]);
    sim.connect(nodes[2], nodes[3], TransportKind::Datagram, true)?;
    let back = sim.run_until_cond(Duration::from_secs(30), |s| s.is_connected(nodes[2], nodes[3]));
    println!("healed: charlie <-> delta {}", if back { "reconnected" } else { "still down" });
    println!("\ntrace hash {}", sim.trace_hash().iter().map(|b| format!("{b:02x}")).collect::<String>());
    Ok(())
}

fn secs(t: meshlink_core::Instant) -> f64 {
    t.as_micros() as f64 / 1e6
}

fn table(sim: &Sim, nodes: &[NodeIdx], names: &[&str]) {
    println!(
        "\n{:<8} {:<8} {:>9} {:>9} {:>9} {:>7} {:>6} {:>10} {:>10}",
        "node", "peer", "transport", "rtt ms", "jitter ms", "loss %", "score", "bytes in", "bytes out"
    );
    for &n in nodes {
        for p in sim.node(n).peers() {
            let q = p.quality;
            let other = sim.idx_of(&p.peer).map_or("?", |i| names[i.0]);
            println!(
                "{:<8} {:<8} {:>9} {:>9.1} {:>9.1} {:>7.1} {:>6.2} {:>10} {:>10}",
                names[n.0],
                other,
                format!("{:?}", p.kind).to_lowercase(),
                q.rtt_us.unwrap_or(0) as f64 / 1000.0,
                q.jitter_us as f64 / 1000.0,
                q.loss * 100.0,
                q.score,
                q.counters.bytes_in,
                q.counters.bytes_out
            );
        }
    }
}
