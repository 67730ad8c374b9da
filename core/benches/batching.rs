//! Batching (PROTOCOL.md §9.2, issue 14 acceptance 5): 64-byte messages per second through
//! two whole nodes — `send` → `poll_transmit` → `handle_stream`/`handle_datagram` →
//! `poll_event` — with batching off (`max_batch = 1`) and on (the default 16), on a stream
//! and on datagrams. Prints the figures; asserts nothing about time (shared machines).
//!
//! Run: `cargo bench -p meshlink-core --bench batching` (optional argument: messages per run).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant as Wall;

use meshlink_core::{Config, ConnId, Event, HeapNode, Instant, Keypair, TransportKind};

const MSG: usize = 64;
/// Messages queued before each round of transmits (well inside the send queue).
const BURST: usize = 256;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct Pair {
    n: [HeapNode; 2],
    conn: [Option<ConnId>; 2],
    kind: TransportKind,
    buf: Vec<u8>,
    now: Instant,
    /// Messages side 1 received, and transport records side 0 sent.
    got: usize,
    records: usize,
}

impl Pair {
    fn new(kind: TransportKind, cfg: &Config) -> Pair {
        let mk = |id: u8| HeapNode::with_capacity(cfg.clone(), Keypair::from_secret([id; 32]), [id; 32], 2).unwrap();
        let mut n = [mk(1), mk(2)];
        let now = Instant::from_millis(1);
        let peer = n[1].peer_id();
        let c0 = n[0].connect(now, kind, addr(2), Some(peer)).unwrap();
        let c1 = (kind == TransportKind::Stream).then(|| n[1].accept(now, addr(1)).unwrap());
        let mut p = Pair { n, conn: [Some(c0), c1], kind, buf: vec![0; 70_000], now, got: 0, records: 0 };
        for _ in 0..20 {
            p.step(0);
            p.step(1);
        }
        assert_eq!(p.n[0].stats().connected, 1);
        p.got = 0;
        p.records = 0;
        p
    }

    /// Moves everything `from` sends to the other side, draining its events.
    fn step(&mut self, from: usize) {
        let to = 1 - from;
        while let Some(t) = self.n[from].poll_transmit(self.now, &mut self.buf) {
            if from == 0 && self.kind == TransportKind::Stream {
                self.records += count_frames(&self.buf[..t.len]);
            }
            let mut at = 0;
            while at < t.len {
                match self.kind {
                    TransportKind::Stream => {
                        at += self.n[to].handle_stream(self.conn[to].unwrap(), self.now, &self.buf[at..t.len]).unwrap();
                    }
                    TransportKind::Datagram => {
                        self.records += usize::from(from == 0);
                        let _ = self.n[to].handle_datagram(self.now, addr(from as u16 + 1), &self.buf[..t.len]);
                        at = t.len;
                    }
                }
                while let Some(e) = self.n[to].poll_event() {
                    if let Event::Message { data, .. } = e {
                        black_box(data);
                        self.got += 1;
                    }
                }
            }
        }
    }
}

/// Whole frames at the start of `b` (stream transmits hold whole frames).
fn count_frames(b: &[u8]) -> usize {
    let (mut at, mut n) = (0, 0);
    while at + 2 <= b.len() {
        at += 2 + usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
        n += 1;
    }
    n
}

fn run(kind: TransportKind, max_batch: usize, total: usize) -> (f64, f64) {
    let cfg = Config::default().with(|c| c.max_batch = max_batch);
    let mut p = Pair::new(kind, &cfg);
    let peer = p.n[1].peer_id();
    let msg = [0x5a; MSG];
    let start = Wall::now();
    let mut sent = 0;
    while p.got < total {
        while sent < total && sent - p.got < BURST {
            p.n[0].send(p.now, &peer, &msg).unwrap();
            sent += 1;
        }
        p.step(0);
        p.step(1); // Pongs, Credits
    }
    let secs = start.elapsed().as_secs_f64();
    (total as f64 / secs, total as f64 / p.records as f64)
}

fn main() {
    let total: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200_000);
    println!("{MSG}-byte messages through two nodes, {total} per run");
    for kind in [TransportKind::Stream, TransportKind::Datagram] {
        let (off, off_per) = run(kind, 1, total);
        let (on, on_per) = run(kind, 16, total);
        println!(
            "{kind:?}: batching off {off:>10.0} msg/s ({off_per:.1} msg/record) | on (16) {on:>10.0} msg/s ({on_per:.1} msg/record) | x{:.2}",
            on / off
        );
    }
}
