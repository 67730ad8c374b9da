//! A connected pair over datagrams, set up deterministically, then a fuzzer-chosen
//! sequence of deliveries of captured real datagrams (in any order, any number of times,
//! mutated, truncated, from a spoofed address), new messages and clock jumps.
//!
//! Every datagram either node ever emits is captured in a pool instead of being delivered,
//! so the fuzzer decides what arrives. Invariants: no panic, no message delivered twice,
//! no delivered message differs from the one sent, only the genuine peer is ever
//! connected, limits hold.

use std::collections::HashSet;

use arbitrary::{Arbitrary, Result, Unstructured};
use meshlink_core::TransportKind;

use crate::handshake_responder::timeout;
use crate::{
    addr, check_limits, check_message, config, drain_events, message, ms, node, peer_id, FuzzNode, Outcome, TX_BUF,
};

/// Ids and ports of the two nodes (port = id).
const A: u8 = 1;
const B: u8 = 2;
/// The pool keeps at most this many datagrams; older ones stay replayable, later ones are lost.
const POOL_MAX: usize = 512;
const OPS_MAX: usize = 256;

#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// Deliver (or replay, if it already arrived) a captured datagram.
    Deliver(u16),
    /// Deliver a copy with one byte changed.
    Mutated { idx: u16, pos: u16, xor: u8 },
    /// Deliver a copy cut short.
    Truncated { idx: u16, keep: u16 },
    /// Deliver from another address (an attacker replaying, or the peer roaming).
    Spoofed(u16),
    /// Deliver every captured datagram in capture order.
    DeliverAll,
    /// Queue a new message on A (`false`) or B (`true`).
    Send { from_b: bool, len: u16 },
    /// Advance the clock by this many milliseconds and run the timers.
    Advance(u16),
}

struct World {
    a: FuzzNode,
    b: FuzzNode,
    now: u64,
    /// (emitted by A, bytes): A's datagrams go to B and vice versa.
    pool: Vec<(bool, Vec<u8>)>,
    /// (receiver, message id) already delivered.
    seen: HashSet<(u8, u32)>,
    next_id: u32,
    buf: Vec<u8>,
}

impl World {
    fn node(&mut self, id: u8) -> &mut FuzzNode {
        if id == A {
            &mut self.a
        } else {
            &mut self.b
        }
    }

    /// Captures everything both nodes want to send, then checks their events.
    fn settle(&mut self) {
        for (from_a, id) in [(true, A), (false, B)] {
            let now = ms(self.now);
            let mut buf = core::mem::take(&mut self.buf);
            while let Some(t) = self.node(id).poll_transmit(now, &mut buf) {
                assert_eq!(t.kind, TransportKind::Datagram);
                assert!(t.len <= config().max_datagram, "datagram of {} bytes over max_datagram", t.len);
                if self.pool.len() < POOL_MAX {
                    self.pool.push((from_a, buf[..t.len].to_vec()));
                }
            }
            self.buf = buf;
        }
        for (me, other) in [(A, B), (B, A)] {
            let ev = drain_events(self.node(me));
            assert!(ev.connected.iter().all(|p| *p == peer_id(other)), "connected to a forged peer");
            for (p, data) in ev.messages {
                assert_eq!(p, peer_id(other));
                let (sender, id) = check_message(&data);
                assert_eq!(sender, other, "message attributed to the wrong sender");
                assert!(self.seen.insert((me, id)), "message {id} from {other} delivered twice to {me}");
            }
            check_limits(self.node(me));
        }
    }

    fn deliver(&mut self, idx: usize, bytes: &[u8], from: Option<u16>) {
        let from_a = self.pool[idx].0;
        let (to, src) = if from_a { (B, A) } else { (A, B) };
        let from = addr(from.unwrap_or(u16::from(src)));
        let now = ms(self.now);
        let _ = self.node(to).handle_datagram(now, from, bytes);
    }

    fn send(&mut self, from: u8, len: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let to = peer_id(if from == A { B } else { A });
        let now = ms(self.now);
        let _ = self.node(from).send(now, &to, &message(from, id, len));
    }
}

/// The fixed opening: handshake (XX or IK) delivered in order, then a few messages each
/// way queued but left in the pool.
fn setup(ik: bool) -> World {
    let mut w = World {
        a: node(A, config()),
        b: node(B, config()),
        now: 0,
        pool: Vec::new(),
        seen: HashSet::new(),
        next_id: 0,
        buf: vec![0u8; TX_BUF],
    };
    let expected = ik.then(|| peer_id(B));
    w.a.connect(ms(0), TransportKind::Datagram, addr(u16::from(B)), expected).expect("connect");
    let mut delivered = 0;
    for _ in 0..8 {
        w.settle();
        while delivered < w.pool.len() {
            let bytes = w.pool[delivered].1.clone();
            w.deliver(delivered, &bytes, None);
            delivered += 1;
        }
    }
    assert_eq!(w.a.stats().connected, 1, "setup handshake failed");
    assert_eq!(w.b.stats().connected, 1, "setup handshake failed");
    for (from, len) in [(A, 40), (A, 1500), (A, 4000), (B, 100), (B, 3000)] {
        w.send(from, len);
    }
    w.settle();
    w
}

pub fn run(data: &[u8]) -> Outcome {
    let mut u = Unstructured::new(data);
    let Ok(ik) = u.arbitrary::<bool>() else { return Outcome::default() };
    let mut w = setup(ik);
    let _ = play(&mut u, &mut w);
    Outcome { handshakes: w.a.stats().handshakes_completed + w.b.stats().handshakes_completed, messages: w.seen.len() }
}

fn play(u: &mut Unstructured<'_>, w: &mut World) -> Result<()> {
    for _ in 0..OPS_MAX {
        if u.is_empty() {
            break;
        }
        let pick = |i: u16, w: &World| usize::from(i) % w.pool.len();
        match u.arbitrary::<Op>()? {
            Op::Deliver(i) => {
                let i = pick(i, w);
                let bytes = w.pool[i].1.clone();
                w.deliver(i, &bytes, None);
            }
            Op::Mutated { idx, pos, xor } => {
                let i = pick(idx, w);
                let mut bytes = w.pool[i].1.clone();
                let p = usize::from(pos) % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(p) {
                    *b ^= xor.max(1);
                }
                w.deliver(i, &bytes, None);
            }
            Op::Truncated { idx, keep } => {
                let i = pick(idx, w);
                let mut bytes = w.pool[i].1.clone();
                bytes.truncate(usize::from(keep) % bytes.len().max(1));
                w.deliver(i, &bytes, None);
            }
            Op::Spoofed(i) => {
                let i = pick(i, w);
                let bytes = w.pool[i].1.clone();
                w.deliver(i, &bytes, Some(9));
            }
            Op::DeliverAll => {
                // As an adapter does: drain after each datagram (a waiting message blocks the session).
                for i in 0..w.pool.len() {
                    let bytes = w.pool[i].1.clone();
                    w.deliver(i, &bytes, None);
                    w.settle();
                }
            }
            Op::Send { from_b, len } => w.send(if from_b { B } else { A }, usize::from(len) % 4200),
            Op::Advance(d) => {
                w.now += u64::from(d) % 20_000;
                timeout(&mut w.a, w.now);
                timeout(&mut w.b, w.now);
            }
        }
        w.settle();
    }
    Ok(())
}
