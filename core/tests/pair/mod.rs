//! Two nodes wired back to back, on a stream or on datagrams, driven by hand: the harness of
//! `kinds.rs` and `priority.rs`. Each transmit can be moved one at a time, so a test can
//! stop a sender in the middle of a message.

#![allow(dead_code)]

use std::net::SocketAddr;

use meshlink_core::noise::{CipherState, TAG_LEN};
use meshlink_core::wire::{Header, Hello};
use meshlink_core::{Config, ConnId, DisconnectReason, ErrorCode, Event, HeapNode, Instant, Keypair, TransportKind};
use serde_json::Value;

pub type TNode = HeapNode;

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
    HeapNode::with_capacity(cfg.clone(), Keypair::from_secret([secret; 32]), [seed; 32], 4).unwrap()
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
                // `Event` is `#[non_exhaustive]`: a kind these tests do not know fails them.
                other => panic!("unexpected event {other:?}"),
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

// ---------------------------------------------------------------- a peer with the keys

fn b32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

/// The XX scenario of `tests/vectors/handshake.json`: its nodes rebuilt from their recorded
/// secrets and seeds, so the test knows the transport keys and can seal records of any
/// kind, as a peer with a newer or different implementation would.
pub struct Scenario {
    pub v: Value,
}

impl Scenario {
    pub fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/handshake.json");
        let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let v = f["vectors"].as_array().unwrap().iter().find(|v| v["name"] == "xx").unwrap().clone();
        Scenario { v }
    }

    pub fn node(&self, side: &str) -> TNode {
        let s = &self.v[side];
        let c = &s["config"];
        let cfg = Config::default()
            .with(|cfg| {
                cfg.hello = Hello::named(c["hello_name"].as_str().unwrap()).unwrap();
                cfg.max_frame = num(&c["max_frame"]) as usize;
                cfg.max_datagram = num(&c["max_datagram"]) as usize;
                cfg.max_message = num(&c["max_message"]) as usize;
                cfg.send_queue = num(&c["send_queue"]) as usize;
                cfg.ik_fast_path = c["ik_fast_path"].as_bool().unwrap();
            })
            .with_network_id(&hex::decode(c["network_id"].as_str().unwrap()).unwrap())
            .unwrap();
        HeapNode::with_capacity(cfg, Keypair::from_secret(b32(&s["static_secret"])), b32(&s["seed"]), 4).unwrap()
    }

    pub fn pair(&self, t: TransportKind) -> Pair {
        let now = Instant::from_micros(num(&self.v["now_us"]));
        let expected = self.v["connect_with_expected_key"].as_bool().unwrap();
        Pair::connect(t, [self.node("initiator"), self.node("responder")], now, expected)
    }
}

/// The transport records side 0 has sent so far: the highest counter.
pub fn last_counter(p: &Pair) -> u64 {
    let mut last = 0;
    for (from, bytes) in p.tap.iter().filter(|(from, _)| *from == 0) {
        let _ = from;
        let mut records = vec![];
        match p.kind {
            TransportKind::Datagram => records.push(&bytes[..]),
            TransportKind::Stream => {
                let mut at = 0;
                while at + 2 <= bytes.len() {
                    let len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
                    records.push(&bytes[at + 2..at + 2 + len]);
                    at += 2 + len;
                }
            }
        }
        for r in records {
            if let Ok(Header::Transport { counter, .. }) = Header::parse(r) {
                last = last.max(counter);
            }
        }
    }
    last
}

/// Seals `plaintext` as the initiator's transport record number `counter`.
pub fn seal(s: &Scenario, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let key = b32(&s.v["transport_keys"]["initiator_to_responder"]);
    let receiver = num(&s.v["responder"]["index"]) as u32;
    let mut rec = vec![0u8; 16 + plaintext.len() + TAG_LEN];
    Header::Transport { phase: 0, receiver, counter }.encode(&mut rec).unwrap();
    rec[16..16 + plaintext.len()].copy_from_slice(plaintext);
    let (hdr, body) = rec.split_at_mut(16);
    CipherState::new(key).encrypt_at(counter, hdr, body, plaintext.len()).unwrap();
    rec
}

/// `seal`, framed for the pair's transport.
pub fn sealed_wire(p: &Pair, s: &Scenario, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let rec = seal(s, counter, plaintext);
    match p.kind {
        TransportKind::Stream => [&(rec.len() as u16).to_be_bytes()[..], &rec].concat(),
        TransportKind::Datagram => rec,
    }
}
