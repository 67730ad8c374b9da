//! Key rotation (PROTOCOL.md §Rekey): the sending key rotates every `rekey_after_time`
//! (and every `rekey_after_messages`), the key-phase bit in the record type flips, and the
//! session carries on through many rotations with every message delivered.

use core::time::Duration;

use meshlink_core::{Config, ConnId, Event, HeapNode, Instant, Keypair, TransportKind};
use rand_core::{RngCore, SeedableRng};

type N = HeapNode;

fn node(rng: &mut rand_chacha::ChaCha20Rng, cfg: &Config) -> N {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    HeapNode::with_capacity(cfg.clone(), Keypair::generate(rng), seed, 4).unwrap()
}

struct Pair {
    a: N,
    b: N,
    ca: ConnId,
    cb: ConnId,
    kind: TransportKind,
    now: Instant,
    /// Record type bytes seen on the wire from A to B (B's own rotations are independent).
    types: Vec<u8>,
    got_b: Vec<Vec<u8>>,
    connected: usize,
    disconnected: usize,
}

const A: &str = "10.0.0.1:1";
const B: &str = "10.0.0.2:1";

impl Pair {
    fn new(kind: TransportKind, cfg: Config) -> Pair {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let (mut a, mut b) = (node(&mut rng, &cfg), node(&mut rng, &cfg));
        let now = Instant::from_millis(1);
        let ca = a.connect(now, kind, B.parse().unwrap(), None).unwrap();
        let cb = if kind == TransportKind::Stream { b.accept(now, A.parse().unwrap()).unwrap() } else { ConnId(0) };
        let mut p = Pair { a, b, ca, cb, kind, now, types: vec![], got_b: vec![], connected: 0, disconnected: 0 };
        p.pump();
        p
    }

    fn pump(&mut self) {
        let mut buf = vec![0u8; 70_000];
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit(self.now, &mut buf) {
                moved = true;
                let bytes = buf[..t.len].to_vec();
                self.record_types(&bytes);
                match self.kind {
                    TransportKind::Stream => {
                        let mut off = 0;
                        while off < bytes.len() {
                            off += self.b.handle_stream(self.cb, self.now, &bytes[off..]).unwrap();
                            self.drain_b();
                        }
                    }
                    TransportKind::Datagram => {
                        self.b.handle_datagram(self.now, A.parse().unwrap(), &bytes).unwrap();
                        self.drain_b();
                    }
                }
            }
            while let Some(t) = self.b.poll_transmit(self.now, &mut buf) {
                moved = true;
                let bytes = buf[..t.len].to_vec();
                match self.kind {
                    TransportKind::Stream => {
                        self.a.handle_stream(self.ca, self.now, &bytes).unwrap();
                    }
                    TransportKind::Datagram => self.a.handle_datagram(self.now, B.parse().unwrap(), &bytes).unwrap(),
                }
            }
            while let Some(e) = self.a.poll_event() {
                match e {
                    Event::Connected { .. } => self.connected += 1,
                    Event::Disconnected { .. } => self.disconnected += 1,
                    _ => {}
                }
            }
            self.drain_b();
            if !moved {
                return;
            }
        }
        panic!("livelock");
    }

    fn drain_b(&mut self) {
        while let Some(e) = self.b.poll_event() {
            match e {
                Event::Message { data, .. } => self.got_b.push(data.to_vec()),
                Event::Connected { .. } => self.connected += 1,
                Event::Disconnected { .. } => self.disconnected += 1,
                _ => {}
            }
        }
    }

    fn record_types(&mut self, bytes: &[u8]) {
        match self.kind {
            TransportKind::Datagram => self.types.push(bytes[0]),
            TransportKind::Stream => {
                let mut at = 0;
                while at + 2 < bytes.len() {
                    let len = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
                    self.types.push(bytes[at + 2]);
                    at += 2 + len;
                }
            }
        }
    }

    /// Advances virtual time to `until`, firing timers on the way.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= until => {
                    self.now = t.max(self.now);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }
}

fn phases_flip(kind: TransportKind) {
    let cfg = Config::default().with(|c| {
        c.max_message = 4096;
        c.send_queue = 16384;
        c.max_frame = 4096;
    });
    let mut p = Pair::new(kind, cfg.clone());
    assert_eq!(p.connected, 2, "both sides connected");
    let peer_b = p.b.peer_id();
    let mut sent = 0u32;
    // Ten minutes of virtual time: five rotations at 120 s.
    for step in 1..=60u64 {
        p.run_until(Instant::from_secs_for_test(step * 10));
        let msg = format!("message {sent}").into_bytes();
        p.a.send(p.now, &peer_b, &msg).unwrap();
        sent += 1;
        p.pump();
    }
    assert_eq!(p.disconnected, 0, "the session survived every rotation");
    assert_eq!(p.got_b.len() as u32, sent, "every message arrived");
    for (i, m) in p.got_b.iter().enumerate() {
        assert_eq!(m, format!("message {i}").as_bytes());
    }
    let phase1 = p.types.iter().filter(|&&t| t == 0x05).count();
    let phase0 = p.types.iter().filter(|&&t| t == 0x04).count();
    assert!(phase1 > 0 && phase0 > 0, "both key phases used: {phase0} / {phase1}");
    // Count A's flips on the wire: 600 s / 120 s gives at least 4.
    let transport: Vec<u8> = p.types.iter().copied().filter(|t| *t == 0x04 || *t == 0x05).collect();
    let flips = transport.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(flips >= 4, "expected several rotations, saw {flips} flips");
    assert!(p.now.saturating_since(Instant::ZERO) >= Duration::from_secs(600));
}

#[test]
fn datagram_keys_rotate_every_rekey_after_time() {
    phases_flip(TransportKind::Datagram);
}

#[test]
fn stream_keys_rotate_every_rekey_after_time() {
    phases_flip(TransportKind::Stream);
}

#[test]
fn message_count_rekey_rotates_keys() {
    let cfg = Config::default().with(|c| {
        c.max_message = 4096;
        c.send_queue = 1 << 16;
        c.max_frame = 4096;
        c.rekey_after_messages = 16;
    });
    for kind in [TransportKind::Datagram, TransportKind::Stream] {
        let mut p = Pair::new(kind, cfg.clone());
        let peer_b = p.b.peer_id();
        for i in 0..200u32 {
            p.a.send(p.now, &peer_b, &i.to_le_bytes()).unwrap();
            p.pump();
        }
        assert_eq!(p.got_b.len(), 200, "{kind:?}");
        let transport: Vec<u8> = p.types.iter().copied().filter(|t| *t == 0x04 || *t == 0x05).collect();
        let flips = transport.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(flips >= 10, "{kind:?}: {flips} flips");
        assert_eq!(p.disconnected, 0);
    }
}

trait SecsForTest {
    fn from_secs_for_test(s: u64) -> Instant;
}
impl SecsForTest for Instant {
    fn from_secs_for_test(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }
}
