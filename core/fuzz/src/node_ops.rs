//! Two nodes driven by a fuzzer-chosen sequence of operations: connect (stream or
//! datagram, XX or IK, either direction, simultaneously), send (any kind and priority class), disconnect, threat scores,
//! and a network the fuzzer controls (deliver, drop or duplicate datagrams; deliver stream
//! bytes in arbitrary slices; close streams; advance the clock).
//!
//! Invariants after every operation: no panic; session, half-open and peer limits hold;
//! only the other node is ever connected, at most once after outputs are drained; no
//! message is delivered twice or corrupted; timers never stay due after `handle_timeout`.

use std::collections::{HashSet, VecDeque};

use arbitrary::{Arbitrary, Result, Unstructured};
use meshlink_core::{ConnId, TransportKind};

use crate::handshake_responder::timeout;
use crate::{
    addr, check_limits, check_message, config, drain_events, message, ms, node, peer_id, FuzzNode, Outcome, TX_BUF,
};

const OPS_MAX: usize = 200;
const FLIGHT_MAX: usize = 128;

#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    Connect {
        from_b: bool,
        stream: bool,
        ik: bool,
    },
    Send {
        from_b: bool,
        len: u16,
    },
    Disconnect {
        from_b: bool,
    },
    Threat {
        on_b: bool,
        score: u8,
    },
    Deliver(u8),
    Drop(u8),
    Duplicate(u8),
    /// Deliver up to `max` bytes of one direction of a stream.
    Stream {
        link: u8,
        to_b: bool,
        max: u16,
    },
    CloseStream(u8),
    Advance(u16),
    /// Jump to the earliest timer of either node.
    TimeoutDue,
    /// Send with a kind (Data or an application kind) and a priority class, so chunks of
    /// messages of several classes interleave on the wire.
    SendWith {
        from_b: bool,
        len: u16,
        kind: u8,
        prio: u8,
    },
}

/// One stream connection: each node's ConnId (None once that side is gone) and the bytes
/// in flight towards each node.
struct Link {
    conn: [Option<ConnId>; 2],
    pipe: [VecDeque<u8>; 2],
    /// The side's socket is closed: its peer sees EOF once the pipe towards it is empty.
    closed: [bool; 2],
}

struct World {
    n: [FuzzNode; 2],
    now: u64,
    /// Datagrams in flight: (to node index, bytes).
    flight: Vec<(usize, Vec<u8>)>,
    links: Vec<Link>,
    seen: HashSet<(usize, u32)>,
    next_id: u32,
    buf: Vec<u8>,
}

fn id(i: usize) -> u8 {
    i as u8 + 1
}

impl World {
    fn settle(&mut self) {
        for i in 0..2 {
            let now = ms(self.now);
            while let Some(t) = self.n[i].poll_transmit(now, &mut self.buf) {
                let bytes = &self.buf[..t.len];
                match (t.kind, t.conn) {
                    (TransportKind::Stream, Some(c)) => {
                        if let Some(l) = self.links.iter_mut().find(|l| l.conn[i] == Some(c) && !l.closed[i]) {
                            if !l.closed[1 - i] {
                                l.pipe[1 - i].extend(bytes);
                            }
                        }
                    }
                    (TransportKind::Datagram, _)
                        if t.addr == addr(u16::from(id(1 - i))) && self.flight.len() < FLIGHT_MAX =>
                    {
                        self.flight.push((1 - i, bytes.to_vec()));
                    }
                    _ => {} // to an address nobody has, or the network is full: lost
                }
            }
        }
        for i in 0..2 {
            let other = peer_id(id(1 - i));
            let ev = drain_events(&mut self.n[i]);
            assert!(ev.connected.iter().all(|p| *p == other), "connected to a peer that does not exist");
            for (p, data) in ev.messages {
                assert_eq!(p, other);
                let (sender, mid) = check_message(&data);
                assert_eq!(sender, id(1 - i), "message attributed to the wrong sender");
                assert!(self.seen.insert((i, mid)), "message {mid} delivered twice to node {i}");
            }
            for c in ev.disconnected {
                for l in self.links.iter_mut().filter(|l| l.conn[i] == Some(c)) {
                    l.conn[i] = None; // the adapter closes this side's socket
                    l.closed[i] = true;
                    l.pipe[i].clear();
                }
            }
            check_limits(&self.n[i]);
            assert!(self.n[i].peers().filter(|p| p.peer == other).count() <= 1, "two live sessions with one peer");
        }
        // EOF reaches a side once everything the closed side sent has been read.
        for l in &mut self.links {
            for i in 0..2 {
                if l.closed[1 - i] && l.pipe[i].is_empty() {
                    if let Some(c) = l.conn[i].take() {
                        self.n[i].handle_stream_closed(c, ms(self.now));
                        l.closed[i] = true;
                    }
                }
            }
        }
    }

    fn feed(&mut self, li: usize, to: usize, max: usize) {
        let now = ms(self.now);
        let Some(conn) = self.links[li].conn[to] else { return };
        let take = max.min(self.links[li].pipe[to].len());
        let mut bytes: Vec<u8> = self.links[li].pipe[to].drain(..take).collect();
        while !bytes.is_empty() {
            match self.n[to].handle_stream(conn, now, &bytes) {
                Ok(used) => {
                    assert!(used <= bytes.len());
                    bytes.drain(..used);
                    let before = self.n[to].stats().msgs_in;
                    self.settle();
                    if used == 0 && self.n[to].stats().msgs_in == before {
                        break; // session closed: the rest is never read
                    }
                }
                Err(_) => break, // the session failed; Disconnected follows
            }
        }
        // Unread bytes of a live session go back to the front of the pipe.
        let pipe = &mut self.links[li].pipe[to];
        for b in bytes.into_iter().rev() {
            pipe.push_front(b);
        }
    }
}

pub fn run(data: &[u8]) -> Outcome {
    let mut w = World {
        n: [node(1, config()), node(2, config())],
        now: 0,
        flight: Vec::new(),
        links: Vec::new(),
        seen: HashSet::new(),
        next_id: 0,
        buf: vec![0u8; TX_BUF],
    };
    let _ = play(&mut Unstructured::new(data), &mut w);
    Outcome { handshakes: w.n.iter().map(|n| n.stats().handshakes_completed).sum(), messages: w.seen.len() }
}

fn play(u: &mut Unstructured<'_>, w: &mut World) -> Result<()> {
    for _ in 0..OPS_MAX {
        if u.is_empty() {
            break;
        }
        let now = ms(w.now);
        match u.arbitrary::<Op>()? {
            Op::Connect { from_b, stream, ik } => {
                let (i, j) = if from_b { (1, 0) } else { (0, 1) };
                let expected = ik.then(|| peer_id(id(j)));
                let kind = if stream { TransportKind::Stream } else { TransportKind::Datagram };
                if let Ok(c) = w.n[i].connect(now, kind, addr(u16::from(id(j))), expected) {
                    if stream {
                        let mut conn = [None, None];
                        conn[i] = Some(c);
                        conn[j] = w.n[j].accept(now, addr(u16::from(id(i)))).ok();
                        let closed = [conn[0].is_none(), conn[1].is_none()];
                        w.links.push(Link { conn, pipe: Default::default(), closed });
                    }
                }
            }
            Op::Send { from_b, len } => {
                let i = usize::from(from_b);
                let mid = w.next_id;
                w.next_id += 1;
                let _ = w.n[i].send(now, &peer_id(id(1 - i)), &message(id(i), mid, usize::from(len) % 4200));
            }
            Op::SendWith { from_b, len, kind, prio } => {
                let i = usize::from(from_b);
                let mid = w.next_id;
                w.next_id += 1;
                let kind = if kind & 0x40 == 0 { meshlink_core::wire::kind::DATA } else { 0x40 | (kind & 0x3f) };
                let prio = meshlink_core::Priority::ALL[usize::from(prio) % 3];
                let m = message(id(i), mid, usize::from(len) % 4200);
                let _ = w.n[i].send_with(now, &peer_id(id(1 - i)), kind, prio, &m);
            }
            Op::Disconnect { from_b } => {
                let _ = w.n[usize::from(from_b)].disconnect(now, &peer_id(id(1 - usize::from(from_b))));
            }
            Op::Threat { on_b, score } => {
                let i = usize::from(on_b);
                w.n[i].set_threat_score(now, peer_id(id(1 - i)), f32::from(score) / 255.0);
            }
            Op::Deliver(k) | Op::Duplicate(k) | Op::Drop(k) if w.flight.is_empty() => {
                let _ = k;
            }
            Op::Deliver(k) => {
                let (to, bytes) = w.flight.remove(usize::from(k) % w.flight.len());
                let _ = w.n[to].handle_datagram(now, addr(u16::from(id(1 - to))), &bytes);
            }
            Op::Duplicate(k) => {
                let (to, bytes) = w.flight[usize::from(k) % w.flight.len()].clone();
                let _ = w.n[to].handle_datagram(now, addr(u16::from(id(1 - to))), &bytes);
            }
            Op::Drop(k) => {
                let k = usize::from(k) % w.flight.len();
                w.flight.remove(k);
            }
            Op::Stream { link, to_b, max } => {
                if !w.links.is_empty() {
                    let li = usize::from(link) % w.links.len();
                    w.feed(li, usize::from(to_b), usize::from(max));
                }
            }
            Op::CloseStream(link) => {
                if !w.links.is_empty() {
                    let li = usize::from(link) % w.links.len();
                    let l = &mut w.links[li];
                    for i in 0..2 {
                        if let Some(c) = l.conn[i].take() {
                            w.n[i].handle_stream_closed(c, now);
                        }
                        l.closed[i] = true;
                        l.pipe[i].clear();
                    }
                }
            }
            Op::Advance(d) => {
                w.now += u64::from(d) % 40_000;
                timeout(&mut w.n[0], w.now);
                timeout(&mut w.n[1], w.now);
            }
            Op::TimeoutDue => {
                let due = w.n.iter().filter_map(|n| n.poll_timeout()).min();
                if let Some(t) = due {
                    w.now = w.now.max(t.as_micros().div_ceil(1000));
                }
                timeout(&mut w.n[0], w.now);
                timeout(&mut w.n[1], w.now);
            }
        }
        w.settle();
    }
    Ok(())
}
