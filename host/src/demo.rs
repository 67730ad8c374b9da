//! `meshlink demo`: a small network of real nodes in one process, over real loopback
//! sockets (ephemeral ports), using TCP, WebSocket and UDP. It shows the handshakes, the
//! messages and a live quality table, then shuts every node down gracefully.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshlink_core::{Keypair, PeerId};
use rand_core::OsRng;

use crate::error::{reason_text, HostError};
use crate::table::quality_table;
use crate::types::{HostEvent, PeerUrl, Transport};
use crate::{Host, HostConfig, HostHandle, Listen};

const NAMES: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
/// (from, to, transport, pin the peer's key?) — pinned keys use the IK fast path.
const LINKS: [(usize, usize, Transport, bool); 5] = [
    (0, 1, Transport::Tcp, true),
    (1, 2, Transport::Ws, true),
    (2, 3, Transport::Udp, true),
    (3, 0, Transport::Ws, false),
    (0, 2, Transport::Udp, false),
];
/// Messages of `BULK_SIZE` bytes each node sends each peer after the greetings.
const BULK: usize = 100;
const BULK_SIZE: usize = 1024;

#[non_exhaustive]
pub struct DemoOptions {
    /// How long the network runs (the quality table is printed every second).
    pub seconds: u64,
}

crate::config::impl_with!(DemoOptions);

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { seconds: 4 }
    }
}

struct Clock(Instant);

impl Clock {
    fn line(&self, text: impl AsRef<str>) {
        println!("[{:6.3}s] {}", self.0.elapsed().as_secs_f64(), text.as_ref());
    }
}

/// Runs the demo; fails if a handshake or a greeting did not make it.
pub async fn run(opts: DemoOptions) -> Result<(), HostError> {
    let clock = Arc::new(Clock(Instant::now()));
    println!("meshlink demo: {} nodes on loopback, {} links over tcp, ws and udp\n", NAMES.len(), LINKS.len());
    let mut nodes = Vec::new();
    for name in NAMES {
        let mut cfg = HostConfig { name: name.into(), listen: Listen::loopback(), ..HostConfig::default() };
        cfg.timers.ping_interval_ms = 250; // a lively quality table
        let node = Host::start(cfg, Keypair::generate(&mut OsRng)).await?;
        let l = node.local_addrs();
        clock.line(format!(
            "{name:<8} up  id {}  tcp {}  ws {}  udp {}",
            node.peer_id().short(),
            l.tcp[0],
            l.ws[0],
            l.udp[0]
        ));
        nodes.push(node);
    }
    let names: Arc<HashMap<PeerId, &'static str>> = Arc::new(nodes.iter().map(|n| n.peer_id()).zip(NAMES).collect());
    let greetings = Arc::new(AtomicU64::new(0));
    let bulk = Arc::new(AtomicU64::new(0));
    let mut printers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let events = node.events().await?;
        let ctx = (clock.clone(), names.clone(), greetings.clone(), bulk.clone());
        printers.push(tokio::spawn(print_events(NAMES[i], events, ctx)));
    }

    println!();
    let mut dials = Vec::new();
    for (from, to, t, pin) in LINKS {
        let (a, b) = (nodes[from].clone(), &nodes[to]);
        let l = b.local_addrs();
        let addr = match t {
            Transport::Tcp => l.tcp[0],
            Transport::Ws => l.ws[0],
            Transport::Udp => l.udp[0],
        };
        let url = PeerUrl::for_addr(t, addr);
        let expect = pin.then(|| b.peer_id());
        let clock = clock.clone();
        dials.push(tokio::spawn(async move {
            let began = Instant::now();
            let r = a.connect(&url, expect).await;
            let how = if pin { "key pinned, IK" } else { "key learned, XX" };
            match &r {
                Ok(p) => clock.line(format!(
                    "handshake {:<7} -> {:<7} over {t}: ok in {:.1} ms ({how}), peer id {}",
                    NAMES[from],
                    NAMES[to],
                    began.elapsed().as_secs_f64() * 1000.0,
                    p.peer.short()
                )),
                Err(e) => clock.line(format!("handshake {} -> {} over {t}: FAILED: {e}", NAMES[from], NAMES[to])),
            }
            r.map(|_| ())
        }));
    }
    let mut failed = None;
    for d in dials {
        if let Err(e) = d.await.map_err(|e| HostError::Config(e.to_string()))? {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        shutdown_all(&nodes).await;
        return Err(e);
    }

    // A responder counts a peer as connected once the initiator's first encrypted record
    // confirms the keys, a moment after the initiator's `connect` returns: wait for it.
    let degree = |i: usize| LINKS.iter().filter(|(a, b, ..)| *a == i || *b == i).count();
    let settle = Instant::now();
    for (i, node) in nodes.iter().enumerate() {
        while node.peers().await?.len() < degree(i) && settle.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    println!();
    let mut expected_greetings = 0;
    for (i, node) in nodes.iter().enumerate() {
        for p in node.peers().await? {
            let to = names.get(&p.peer).copied().unwrap_or("?");
            node.send(p.peer, format!("hello {to}, this is {} over {}", NAMES[i], p.transport)).await?;
            expected_greetings += 1;
        }
    }
    // A gentle bulk transfer on every link, in both directions, so the counters move.
    for node in &nodes {
        let node = node.clone();
        tokio::spawn(async move {
            let peers = node.peers().await.unwrap_or_default();
            for k in 0..BULK {
                for p in &peers {
                    let _ = node.send(p.peer, vec![(k % 251) as u8; BULK_SIZE]).await;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
    }

    for s in 1..=opts.seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut rows = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            for p in node.peers().await? {
                rows.push((NAMES[i].to_string(), p));
            }
        }
        println!(
            "\nquality at {s} s ({} peerings, {} bulk messages delivered):",
            rows.len(),
            bulk.load(Ordering::Relaxed)
        );
        print!("{}", quality_table(&rows));
    }

    println!();
    shutdown_all(&nodes).await;
    for p in printers {
        let _ = p.await;
    }
    let got = greetings.load(Ordering::Relaxed);
    println!(
        "\ndemo finished: {} nodes, {} links, {got}/{expected_greetings} greetings and {} bulk messages delivered, every node shut down cleanly",
        NAMES.len(),
        LINKS.len(),
        bulk.load(Ordering::Relaxed)
    );
    if got != expected_greetings {
        return Err(HostError::Config(format!("only {got} of {expected_greetings} greetings arrived")));
    }
    Ok(())
}

async fn shutdown_all(nodes: &[HostHandle]) {
    for n in nodes.iter().rev() {
        let _ = n.shutdown().await;
    }
}

type PrintCtx = (Arc<Clock>, Arc<HashMap<PeerId, &'static str>>, Arc<AtomicU64>, Arc<AtomicU64>);

async fn print_events(me: &'static str, mut events: tokio::sync::mpsc::Receiver<HostEvent>, ctx: PrintCtx) {
    let (clock, names, greetings, bulk) = ctx;
    let name = |p: &PeerId| names.get(p).copied().unwrap_or("?");
    while let Some(ev) = events.recv().await {
        match ev {
            HostEvent::Connected { peer, addr, transport, quality, .. } => clock.line(format!(
                "{me:<8} connected     {:<8} via {transport} {addr}, handshake rtt {}",
                name(&peer),
                crate::table::ms(quality.rtt_us)
            )),
            HostEvent::Message { peer, data } if data.starts_with(b"hello") => {
                greetings.fetch_add(1, Ordering::Relaxed);
                clock.line(format!("{me:<8} message from  {:<8} {:?}", name(&peer), String::from_utf8_lossy(&data)));
            }
            HostEvent::Message { .. } => {
                bulk.fetch_add(1, Ordering::Relaxed);
            }
            HostEvent::Disconnected { peer: Some(peer), was_connected: true, reason, .. } => {
                clock.line(format!("{me:<8} disconnected  {:<8} {}", name(&peer), reason_text(&reason)))
            }
            _ => {}
        }
    }
}
