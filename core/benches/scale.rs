//! Scale benchmarks (issue 12, acceptance 4): the per-call cost of `poll_timeout`, `send`
//! and datagram demux at 16, 1,024 and 16,384 connected sessions should be flat, and an
//! idle session should cost only its slot.
//!
//! - `scale/poll_timeout/N`: the host calls it on every loop.
//! - `scale/send/N`: `send` of 64 bytes to a different peer each time, plus the
//!   `poll_transmit` that seals it (so no queue fills).
//! - `scale/demux/N`: `handle_datagram` of a transport record for one of 64 sessions
//!   (replayed, so it is found, checked against its replay window and refused: the routing
//!   cost without the AEAD).
//!
//! Setup makes N real XX handshakes over datagrams, so the 16,384 case takes a few
//! seconds. It prints the core's bytes per idle session (slot + buffers held).
//!
//! Run: `cargo bench -p meshlink-core --bench scale`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use meshlink_core::node::{slot_table, BufferPool, HeapPool, Slot};
use meshlink_core::{Config, HeapNode, Instant, Keypair, Node, PeerId, TransportKind};

const SIZES: [usize; 3] = [16, 1024, 16 * 1024];
const DEMUX_SESSIONS: usize = 64;

/// A heap pool that counts the buffers it has lent out.
#[derive(Default)]
struct Counted {
    inner: HeapPool,
    out: usize,
}

impl BufferPool for Counted {
    type Buf = Box<[u8]>;
    fn take(&mut self, len: usize) -> Option<Box<[u8]>> {
        self.out += 1;
        self.inner.take(len)
    }
    fn give(&mut self, buf: Box<[u8]>) -> Option<Box<[u8]>> {
        self.out -= 1;
        self.inner.give(buf)
    }
}

type Server = Node<Counted, Box<[Slot<Box<[u8]>>]>>;

fn cfg(n: usize) -> Config {
    Config::default().with(|c| {
        c.max_half_open = n + 16;
        c.max_half_open_per_ip = n + 16;
    })
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 5000))
}

struct World {
    server: Server,
    peers: Vec<PeerId>,
    records: Vec<(SocketAddr, Vec<u8>)>,
    buf: Vec<u8>,
    now: Instant,
}

fn secret(i: usize) -> [u8; 32] {
    let mut s = [0x11u8; 32];
    // Bytes 1..9: X25519 clamping rewrites the low bits of byte 0.
    s[1..9].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s
}

fn world(n: usize) -> World {
    let now = Instant::from_millis(1);
    let server_addr = SocketAddr::from(([192, 0, 2, 1], 7402));
    let c = cfg(n);
    let mut server: Server =
        Node::new(c.clone(), Keypair::from_secret([0xaa; 32]), [0xab; 32], slot_table(n + 16), Counted::default())
            .unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut records = Vec::new();
    for i in 0..n {
        let from = addr(i);
        let mut client = HeapNode::with_capacity(c.clone(), Keypair::from_secret(secret(i)), secret(i), 1).unwrap();
        client.connect(now, TransportKind::Datagram, server_addr, None).unwrap();
        for _ in 0..4 {
            while let Some(t) = client.poll_transmit(now, &mut buf) {
                let _ = server.handle_datagram(now, from, &buf[..t.len]);
            }
            while let Some(t) = server.poll_transmit(now, &mut buf) {
                let _ = client.handle_datagram(now, server_addr, &buf[..t.len]);
            }
        }
        while server.poll_event().is_some() {}
        if i < DEMUX_SESSIONS {
            // The XX initiator is confirmed by the responder's first transport record.
            server.send(now, &client.peer_id(), b"hi").unwrap();
            while let Some(t) = server.poll_transmit(now, &mut buf) {
                let _ = client.handle_datagram(now, server_addr, &buf[..t.len]);
                while client.poll_event().is_some() {}
            }
            client.send(now, &server.peer_id(), b"a demux probe").unwrap();
            let t = client.poll_transmit(now, &mut buf).unwrap();
            let rec = buf[..t.len].to_vec();
            server.handle_datagram(now, from, &rec).unwrap();
            while server.poll_event().is_some() {}
            records.push((from, rec));
        }
    }
    assert_eq!(server.stats().connected, n, "setup");
    let peers = server.peers().map(|p| p.peer).collect();
    // Let every session settle (its last record handled): idle sessions hand their buffers back.
    server.handle_timeout(now);
    World { server, peers, records, buf, now }
}

fn bench_scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("scale");
    for n in SIZES {
        let mut w = world(n);
        let slot = std::mem::size_of::<Slot<Box<[u8]>>>();
        let held = w.server.pool().out;
        let len = w.server.config().slot_buffer_len();
        println!(
            "scale/{n}: core bytes per idle session = {} (slot {slot} B + buffers held {held} x {len} B / {n}); \
             node value {} B on the stack",
            slot + held * len / n,
            std::mem::size_of::<Server>(),
        );
        g.bench_function(format!("poll_timeout/{n}"), |b| b.iter(|| black_box(w.server.poll_timeout())));
        let mut k = 0usize;
        g.bench_function(format!("send/{n}"), |b| {
            b.iter(|| {
                let p = w.peers[k % w.peers.len()];
                k = k.wrapping_add(7919);
                w.server.send(w.now, &p, &[0x5a; 64]).unwrap();
                black_box(w.server.poll_transmit(w.now, &mut w.buf).unwrap());
            })
        });
        let mut k = 0usize;
        g.bench_function(format!("demux/{n}"), |b| {
            b.iter(|| {
                let (from, rec) = &w.records[k % w.records.len()];
                k += 1;
                black_box(w.server.handle_datagram(w.now, *from, rec).is_err())
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench_scale
}
criterion_main!(benches);
