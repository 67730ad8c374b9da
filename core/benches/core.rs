//! Criterion benchmarks of meshlink-core's hot paths:
//! - `handshake/*`: Noise XX and IK, whole (both sides) and per side. Per-side runs replay
//!   the peer's recorded messages, which needs fixed ephemerals (`with_ephemeral`); that is
//!   fine for timing and never done by the node.
//! - `node_handshake/*`: the same through two `Node`s (records, Hello, first ping).
//! - `cipher/{seal,open}/N`: one transport record's AEAD at 64 B, 1 KiB and 16 KiB.
//! - `node_message/{stream,datagram}/N`: one message through the whole node path:
//!   `send` → `poll_transmit` → `handle_stream`/`handle_datagram` → `poll_event`.
//!
//! Run: `cargo bench -p meshlink-core --bench core -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meshlink_core::noise::{CipherState, HandshakeParams, HandshakeState, Pattern, Role, TAG_LEN};
use meshlink_core::{Config, ConnId, Event, HeapNode, Instant, Keypair, PeerId, TransportKind};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const PROLOGUE: &[u8] = b"meshlink\x01\x08meshlink";
/// A Hello-sized payload for the messages that carry one.
const HELLO: [u8; 40] = [7; 40];
const SIZES: [usize; 3] = [64, 1024, 16 * 1024];

fn params(pattern: Pattern, role: Role, local: u8, remote: Option<u8>) -> HandshakeParams<'static> {
    HandshakeParams {
        pattern,
        role,
        prologue: PROLOGUE,
        local_static: [local; 32],
        remote_static: remote.map(|r| Keypair::from_secret([r; 32]).peer_id().0),
        psk: None,
    }
}

/// One side's state for `pattern` (static keys: initiator 1, responder 2). `fixed` uses
/// a fixed ephemeral, so the peer's recorded messages can be replayed to it.
fn state(pattern: Pattern, role: Role, fixed: bool, rng: &mut ChaCha20Rng) -> HandshakeState {
    let p = match role {
        Role::Initiator => params(pattern, role, 1, (pattern == Pattern::Ik).then_some(2)),
        Role::Responder => params(pattern, role, 2, None),
    };
    let eph = if role == Role::Initiator { [0x11; 32] } else { [0x22; 32] };
    if fixed { HandshakeState::with_ephemeral(p, eph) } else { HandshakeState::new(p, rng) }.unwrap()
}

fn states(pattern: Pattern, fixed: bool, rng: &mut ChaCha20Rng) -> (HandshakeState, HandshakeState) {
    (state(pattern, Role::Initiator, fixed, rng), state(pattern, Role::Responder, fixed, rng))
}

/// Runs a whole handshake; returns the messages in order. Payloads: IK sends the Hello in
/// both messages; XX sends nothing in message 1 (it would be clear text), a Hello after.
fn handshake(mut i: HandshakeState, mut r: HandshakeState) -> Vec<Vec<u8>> {
    let (mut msgs, mut out, mut pl) = (Vec::new(), [0u8; 256], [0u8; 256]);
    let mut turn = 0;
    while !(i.is_finished() && r.is_finished()) {
        let (w, rd) = if turn % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
        let payload: &[u8] = if turn == 0 && w.pattern() != Pattern::Ik { &[] } else { &HELLO };
        let n = w.write_message(payload, &mut out).unwrap();
        rd.read_message(&out[..n], &mut pl).unwrap();
        msgs.push(out[..n].to_vec());
        turn += 1;
    }
    black_box((i.into_transport().unwrap(), r.into_transport().unwrap()));
    msgs
}

/// One side alone, reading the peer's recorded messages (`msgs`) and writing its own.
fn one_side(mut hs: HandshakeState, msgs: &[Vec<u8>]) {
    let (mut out, mut pl) = ([0u8; 256], [0u8; 256]);
    let me = usize::from(hs.role() == Role::Responder);
    for (k, m) in msgs.iter().enumerate() {
        if k % 2 == me {
            let payload: &[u8] = if k == 0 && hs.pattern() != Pattern::Ik { &[] } else { &HELLO };
            black_box(hs.write_message(payload, &mut out).unwrap());
        } else {
            hs.read_message(m, &mut pl).unwrap();
        }
    }
    black_box(hs.into_transport().unwrap());
}

fn bench_handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for (name, pattern) in [("xx", Pattern::Xx), ("ik", Pattern::Ik)] {
        g.bench_function(format!("{name}_full"), |b| {
            b.iter(|| {
                let (i, r) = states(pattern, false, &mut rng);
                handshake(i, r)
            })
        });
        let (i, r) = states(pattern, true, &mut rng);
        let msgs = handshake(i, r);
        g.bench_function(format!("{name}_initiator"), |b| {
            b.iter(|| one_side(states(pattern, true, &mut rng).0, &msgs))
        });
        g.bench_function(format!("{name}_responder"), |b| {
            b.iter(|| one_side(states(pattern, true, &mut rng).1, &msgs))
        });
    }
    g.finish();
}

fn bench_cipher(c: &mut Criterion) {
    let mut g = c.benchmark_group("cipher");
    let cs = CipherState::new([9; 32]);
    let ad = [4u8; 16]; // a transport header is the AD
    for len in SIZES {
        g.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0xab; len + TAG_LEN];
        g.bench_function(format!("seal/{len}"), |b| {
            b.iter(|| cs.encrypt_at(black_box(5), &ad, &mut buf, len).unwrap())
        });
        let mut sealed = vec![0xab; len + TAG_LEN];
        cs.encrypt_at(5, &ad, &mut sealed, len).unwrap();
        // Decryption is in place, so each run gets a fresh copy (copied outside the timing).
        g.bench_function(format!("open/{len}"), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |ct| cs.decrypt_at(5, &ad, ct, len + TAG_LEN).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

type BenchNode = HeapNode;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn node(id: u8, cfg: &Config) -> BenchNode {
    HeapNode::with_capacity(cfg.clone(), Keypair::from_secret([id; 32]), [id; 32], 2).unwrap()
}

/// Two nodes, `a` initiating to `b` over `kind`, with their connection ids.
struct Pair {
    a: BenchNode,
    b: BenchNode,
    conn: Option<(ConnId, ConnId)>,
    buf: Vec<u8>,
    now: Instant,
}

impl Pair {
    fn new(kind: TransportKind, cfg: &Config) -> Pair {
        let (mut a, mut b) = (node(1, cfg), node(2, cfg));
        let now = Instant::from_millis(1);
        let ca = a.connect(now, kind, addr(2), Some(b.peer_id())).unwrap();
        let conn = (kind == TransportKind::Stream).then(|| (ca, b.accept(now, addr(1)).unwrap()));
        Pair { a, b, conn, buf: vec![0; 70_000], now }
    }

    /// Moves everything `a` sends into `b`; returns the size of the first message `b` got.
    fn a_to_b(&mut self) -> Option<usize> {
        let mut got = None;
        while let Some(t) = self.a.poll_transmit(self.now, &mut self.buf) {
            let mut at = 0;
            while at < t.len {
                match self.conn {
                    Some((_, cb)) => at += self.b.handle_stream(cb, self.now, &self.buf[at..t.len]).unwrap(),
                    None => {
                        self.b.handle_datagram(self.now, addr(1), &self.buf[..t.len]).unwrap();
                        at = t.len;
                    }
                }
                while let Some(e) = self.b.poll_event() {
                    if let Event::Message { data, .. } = e {
                        got = got.or(Some(black_box(data).len()));
                    }
                }
            }
        }
        got
    }

    fn b_to_a(&mut self) {
        while let Some(t) = self.b.poll_transmit(self.now, &mut self.buf) {
            match self.conn {
                Some((ca, _)) => {
                    let _ = self.a.handle_stream(ca, self.now, &self.buf[..t.len]).unwrap();
                }
                None => self.a.handle_datagram(self.now, addr(2), &self.buf[..t.len]).unwrap(),
            }
        }
        while self.a.poll_event().is_some() {}
    }

    fn connect(&mut self) -> PeerId {
        for _ in 0..4 {
            self.a_to_b();
            self.b_to_a();
        }
        assert_eq!((self.a.stats().connected, self.b.stats().connected), (1, 1));
        self.b.peer_id()
    }
}

fn bench_node(c: &mut Criterion) {
    let small = Config::default().with(|c| {
        c.max_frame = 2048;
        c.max_message = 1024;
        c.send_queue = 2048;
    });
    let mut g = c.benchmark_group("node_handshake");
    for (name, kind) in [("stream_ik", TransportKind::Stream), ("datagram_ik", TransportKind::Datagram)] {
        g.bench_function(name, |b| {
            b.iter_batched(|| Pair::new(kind, &small), |mut p| p.connect(), BatchSize::SmallInput)
        });
    }
    g.finish();

    let cfg = Config::default().with(|c| {
        c.max_message = 32 * 1024;
        c.send_queue = 64 * 1024;
    });
    let mut g = c.benchmark_group("node_message");
    for (name, kind) in [("stream", TransportKind::Stream), ("datagram", TransportKind::Datagram)] {
        let mut p = Pair::new(kind, &cfg);
        let peer = p.connect();
        for len in [64, 16 * 1024] {
            let msg = vec![0x5a; len];
            g.throughput(Throughput::Bytes(len as u64));
            g.bench_function(format!("{name}/{len}"), |b| {
                b.iter(|| {
                    p.a.send(p.now, &peer, &msg).unwrap();
                    assert_eq!(p.a_to_b(), Some(len));
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_handshake, bench_cipher, bench_node);
criterion_main!(benches);
