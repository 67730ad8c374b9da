//! Two nodes wired back to back, on a stream or on datagrams, driven by hand: the harness of
//! `kinds.rs` and `priority.rs`. Each transmit can be moved one at a time, so a test can
//! stop a sender in the middle of a message.

#![allow(dead_code)]

use std::net::SocketAddr;

use meshlink_core::{Config, ConnId, DisconnectReason, ErrorCode, Event, Instant, Keypair, Node, TransportKind};

pub type TNode = Node<Vec<u8>, 4>;

#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Connected,
    Message { kind: u8, data: Vec<u8> },
    RemoteError(ErrorCode),
    Disconnected(DisconnectReason),
}

pub struct Pair {
    pub n: [TNode; 2],
    pub conn: [Option<ConnId>; 2],
    pub kind: TransportKind,
    pub now: Instant,
    pub addr: [SocketAddr; 2],
    pub events: [Vec<Ev>; 2],
    /// Size of the caller buffer given to `poll_transmit`.
    pub buf_len: usize,
    /// Every transmit, as (sender side, bytes).
    pub tap: Vec<(usize, Vec<u8>)>,
}

pub fn node(cfg: &Config, secret: u8, seed: u8) -> TNode {
    let len = cfg.slot_buffer_len();
    Node::new(cfg.clone(), Keypair::from_secret([secret; 32]), [seed; 32], || vec![0; len]).unwrap()
}

impl Pair {
    /// Two nodes with `cfg`, connected (side 0 initiates) and with their events drained.
    pub fn new(kind: TransportKind, cfg: Config) -> Self {
        Pair::connect(kind, [node(&cfg, 1, 11), node(&cfg, 2, 22)], Instant::ZERO, true)
    }

    /// Connects two given nodes; `expected`: side 0 names side 1's key.
    pub fn connect(kind: TransportKind, n: [TNode; 2], now: Instant, expected: bool) -> Self {
        let addr = ["10.0.0.1:1000".parse().unwrap(), "10.0.0.2:2000".parse().unwrap()];
        let buf_len = n[0].config().max_frame.max(n[0].config().max_datagram) + 2;
        let mut p = Pair { n, conn: [None; 2], kind, now, addr, events: [vec![], vec![]], buf_len, tap: vec![] };
        let expected = expected.then(|| p.n[1].peer_id());
        p.conn[0] = Some(p.n[0].connect(now, kind, addr[1], expected).unwrap());
        if kind == TransportKind::Stream {
            p.conn[1] = Some(p.n[1].accept(now, addr[0]).unwrap());
        }
        p.pump();
        assert!(p.events.iter().all(|e| e.contains(&Ev::Connected)), "not connected: {:?}", p.events);
        p.events = [vec![], vec![]];
        p
    }

    pub fn id(&self, side: usize) -> meshlink_core::PeerId {
        self.n[side].peer_id()
    }

    /// Moves at most `limit` transmits from `from` to the other side; returns how many.
    pub fn step(&mut self, from: usize, limit: usize) -> usize {
        let mut buf = vec![0u8; self.buf_len];
        let mut moved = 0;
        while moved < limit {
            let Some(t) = self.n[from].poll_transmit(self.now, &mut buf) else { break };
            moved += 1;
            let bytes = buf[..t.len].to_vec();
            self.tap.push((from, bytes.clone()));
            self.deliver(1 - from, &bytes);
        }
        moved
    }

    /// Hands `bytes` to side `to` as its transport delivers them, draining events whenever a
    /// message makes the stream wait.
    pub fn deliver(&mut self, to: usize, bytes: &[u8]) {
        match self.kind {
            TransportKind::Datagram => {
                let _ = self.n[to].handle_datagram(self.now, self.addr[1 - to], bytes);
                self.drain(to);
            }
            TransportKind::Stream => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let used = self.n[to].handle_stream(self.conn[to].unwrap(), self.now, rest);
                    self.drain(to);
                    match used {
                        Ok(used) => rest = &rest[used..],
                        Err(_) => break,
                    }
                }
            }
        }
    }

    pub fn drain(&mut self, side: usize) {
        while let Some(e) = self.n[side].poll_event() {
            let ev = match e {
                Event::Connected { .. } => Ev::Connected,
                Event::Message { kind, data, .. } => Ev::Message { kind, data: data.to_vec() },
                Event::RemoteError { code, .. } => Ev::RemoteError(code),
                Event::Disconnected { reason, .. } => Ev::Disconnected(reason),
                Event::QualityUpdate { .. } => continue,
            };
            self.events[side].push(ev);
        }
    }

    /// Moves everything both ways until neither side has anything to send.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            if self.step(0, usize::MAX) + self.step(1, usize::MAX) == 0 {
                return;
            }
        }
        panic!("the pair did not go quiet");
    }

    /// The messages side `side` received, in order.
    pub fn messages(&self, side: usize) -> Vec<(u8, Vec<u8>)> {
        self.events[side]
            .iter()
            .filter_map(|e| match e {
                Ev::Message { kind, data } => Some((*kind, data.clone())),
                _ => None,
            })
            .collect()
    }

    /// No side saw its session end.
    pub fn assert_connected(&self) {
        for side in 0..2 {
            assert!(
                !self.events[side].iter().any(|e| matches!(e, Ev::Disconnected(_))),
                "side {side} disconnected: {:?}",
                self.events[side]
            );
            assert_eq!(self.n[side].stats().connected, 1, "side {side}");
        }
    }
}

/// A message whose bytes depend on `tag` and position, so a mixed-up chunk shows.
pub fn pattern(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(131).wrapping_add(u32::from(tag) * 7) as u8).collect()
}
