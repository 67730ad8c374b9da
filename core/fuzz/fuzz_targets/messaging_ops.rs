#![no_main]
//! Two messengers over a datagram session, driven by a fuzzer-chosen sequence of
//! messaging operations (register, request, respond, respond with an error, cancel,
//! send-to-many, subscribe, unsubscribe, publish, consume, raw hostile messaging packets
//! of every kind (pub/sub included), disconnect, time), and the request/response and
//! pub/sub decoders fed raw bytes of every messaging kind.
//!
//! Invariants: no panic; a decoded packet re-encodes to bytes that decode to it again;
//! every outcome names a request that was sent and comes once; the pending table stays
//! within its limits and is empty once every deadline has passed and events are drained;
//! a publication event names a live subscription whose pattern matches its subject.

use std::collections::HashSet;

use arbitrary::{Arbitrary, Unstructured};
use meshlink_core::messaging::pubsub::PubSubPacket;
use meshlink_core::messaging::request::Packet as MPacket;
use meshlink_core::messaging::{HeapMessenger, MessagingConfig, MessengerEvent, RequestOptions, SendReport};
use meshlink_core::wire::kind;
use meshlink_core::{Event, Instant, PeerId, Priority, TransportKind};
use meshlink_fuzz::{addr, config, ms, node, peer_id};

const OPS_MAX: usize = 120;
const SUBJECTS: &[&str] = &["a", "a.b", "a.b.c", "svc.echo", "x*y", "a.*", "a.>", ">", "", "a..b", "$SRV.PING"];
const VERSIONS: &[&str] = &["", "1", "1.2", "2.0.1-rc", "v1", "3"];

#[derive(Arbitrary, Debug)]
enum Op {
    Decode { kind: u8, bytes: Vec<u8> },
    Register { on_b: bool, subject: u8, version: u8 },
    Unregister { on_b: bool, handler: u8 },
    Request { from_b: bool, subject: u8, version: u8, timeout_ms: u16, len: u8, high: bool },
    Respond { from_b: bool, which: u8, error: bool, code: u16 },
    Cancel { from_b: bool, which: u8 },
    Raw { from_b: bool, kind: u8, bytes: Vec<u8> },
    SendMany { from_b: bool, all: bool },
    Disconnect { from_b: bool },
    Advance(u16),
    TimeoutDue,
    DecodePubSub { kind: u8, bytes: Vec<u8> },
    Subscribe { on_b: bool, subject: u8, high: bool },
    Unsubscribe { on_b: bool, which: u8 },
    Publish { from_b: bool, subject: u8, len: u8 },
    Consumed { on_b: bool, which: u8, n: u8 },
    RawPubSub { from_b: bool, kind: u8, bytes: Vec<u8> },
}

struct Side {
    m: HeapMessenger,
    /// Requests delivered to us: (peer, id).
    inbox: Vec<(PeerId, u64)>,
    /// Our request ids still without an outcome.
    open: Vec<u64>,
    sent: HashSet<u64>,
    ended: HashSet<u64>,
    handlers: Vec<meshlink_core::messaging::HandlerId>,
    subs: Vec<(meshlink_core::messaging::SubId, &'static str)>,
}

struct World {
    s: [Side; 2],
    now: u64,
}

fn messaging() -> MessagingConfig {
    MessagingConfig::default().with(|c| {
        c.max_pending = 8;
        c.max_pending_per_peer = 4;
        c.max_handlers = 3;
        c.max_subs = 3;
        c.max_interest_per_origin = 3;
        c.max_origins = 4;
        c.max_interest = 6;
        c.seen_cache = 16;
        c.max_hops = 3;
        c.sub_queue = 2;
    })
}

fn side(id: u8) -> Side {
    let m = HeapMessenger::with_capacity(node(id, config()), messaging()).expect("valid messaging config");
    Side { m, inbox: Vec::new(), open: Vec::new(), sent: HashSet::new(), ended: HashSet::new(), handlers: Vec::new(), subs: Vec::new() }
}

impl World {
    fn t(&self) -> Instant {
        ms(self.now)
    }

    /// Delivers everything both ways and drains events, until quiet (bounded).
    fn pump(&mut self) {
        let mut buf = vec![0u8; meshlink_fuzz::TX_BUF];
        let now = self.t();
        for _ in 0..64 {
            let mut moved = false;
            for i in 0..2 {
                if self.s[i].m.poll_timeout().is_some_and(|t| t <= now) {
                    self.s[i].m.handle_timeout(now);
                }
                while let Some(tx) = self.s[i].m.poll_transmit(now, &mut buf) {
                    moved = true;
                    if tx.kind == TransportKind::Datagram {
                        let from = addr(7000 + i as u16);
                        let _ = self.s[1 - i].m.handle_datagram(now, from, &buf[..tx.len]);
                    }
                }
                moved |= self.drain(i);
            }
            if !moved {
                break;
            }
        }
    }

    fn drain(&mut self, i: usize) -> bool {
        let mut any = false;
        let side = &mut self.s[i];
        for _ in 0..256 {
            let Some(ev) = side.m.poll_event() else { break };
            any = true;
            match ev {
                MessengerEvent::Request(r) => {
                    assert!(meshlink_core::messaging::subject::validate_subject(r.subject).is_ok());
                    if side.inbox.len() < 32 {
                        side.inbox.push((r.peer, r.id));
                    }
                }
                MessengerEvent::Outcome { id, .. } => {
                    // An outcome for a request of ours, once.
                    assert!(side.sent.contains(&id), "outcome for an id never sent: {id:#x}");
                    assert!(side.ended.insert(id), "second outcome for {id:#x}");
                    side.open.retain(|x| *x != id);
                }
                MessengerEvent::Publication { sub, subject, .. } => {
                    let pat = side.subs.iter().find(|(s, _)| *s == sub).map(|(_, p)| *p);
                    let pat = pat.expect("a publication for a live subscription");
                    assert!(meshlink_core::messaging::subject::matches(pat, subject), "{pat} vs {subject}");
                }
                MessengerEvent::Node(Event::Message { kind: k, .. }) => {
                    assert!(!kind::MESSAGING.contains(&k), "a messaging kind leaked to the application");
                }
                _ => {}
            }
        }
        let cfg = side.m.config();
        assert!(side.m.pending() <= cfg.max_pending);
        assert!(side.m.pending() >= side.open.len());
        any
    }

    fn connect(&mut self) {
        let b = peer_id(1);
        if self.s[0].m.node().peers().any(|p| p.peer == b) {
            return;
        }
        let now = self.t();
        let _ = self.s[0].m.node_mut().connect(now, TransportKind::Datagram, addr(7001), Some(b));
        self.pump();
    }
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut w = World { s: [side(0), side(1)], now: 0 };
    w.connect();
    for _ in 0..OPS_MAX {
        let Ok(op) = u.arbitrary::<Op>() else { break };
        let now = w.t();
        match op {
            Op::Decode { kind: k, bytes } => {
                let k = 0x10 | (k & 0x03);
                if let Ok(p) = MPacket::decode(k, &bytes) {
                    let mut out = vec![0u8; bytes.len() + 16];
                    let n = p.encode(&mut out).expect("a decoded packet re-encodes");
                    assert_eq!(MPacket::decode(k, &out[..n]), Ok(p));
                }
            }
            Op::Register { on_b, subject, version } => {
                let s = &mut w.s[usize::from(on_b)];
                let pat = SUBJECTS[usize::from(subject) % SUBJECTS.len()];
                if let Ok(h) = s.m.register(pat, VERSIONS[usize::from(version) % VERSIONS.len()]) {
                    s.handlers.push(h);
                }
            }
            Op::Unregister { on_b, handler } => {
                let s = &mut w.s[usize::from(on_b)];
                if !s.handlers.is_empty() {
                    let h = s.handlers.remove(usize::from(handler) % s.handlers.len());
                    s.m.unregister(h).expect("a registered handler unregisters");
                }
            }
            Op::Request { from_b, subject, version, timeout_ms, len, high } => {
                let i = usize::from(from_b);
                let peer = peer_id(1 - i as u8);
                let body = vec![0xabu8; usize::from(len)];
                let mut opts = RequestOptions::new()
                    .version(VERSIONS[usize::from(version) % VERSIONS.len()])
                    .timeout(core::time::Duration::from_millis(u64::from(timeout_ms)));
                if high {
                    opts = opts.priority(Priority::High);
                }
                let s = &mut w.s[i];
                let sub = SUBJECTS[usize::from(subject) % SUBJECTS.len()];
                if let Ok(id) = s.m.request(now, &peer, sub, &body, opts) {
                    assert!(s.sent.insert(id), "request id {id:#x} reused");
                    s.open.push(id);
                }
            }
            Op::Respond { from_b, which, error, code } => {
                let s = &mut w.s[usize::from(from_b)];
                if !s.inbox.is_empty() {
                    let (peer, id) = s.inbox[usize::from(which) % s.inbox.len()];
                    let _ = if error {
                        s.m.respond_error(now, &peer, id, code, "err")
                    } else {
                        s.m.respond(now, &peer, id, b"ok")
                    };
                }
            }
            Op::Cancel { from_b, which } => {
                let s = &mut w.s[usize::from(from_b)];
                if !s.open.is_empty() {
                    let id = s.open[usize::from(which) % s.open.len()];
                    s.m.cancel(now, id).expect("an open request cancels");
                }
            }
            Op::Raw { from_b, kind: k, bytes } => {
                let i = usize::from(from_b);
                let peer = peer_id(1 - i as u8);
                let _ = w.s[i].m.send_raw_messaging(now, &peer, 0x10 | (k & 0x03), &bytes);
            }
            Op::SendMany { from_b, all } => {
                let i = usize::from(from_b);
                let peers = [peer_id(1 - i as u8), peer_id(3)];
                let mut res = [SendReport::EMPTY; 2];
                let node = w.s[i].m.node_mut();
                let r = if all {
                    node.send_all(now, kind::DATA, Priority::Low, b"many", &mut res)
                } else {
                    node.send_many(now, &peers, kind::DATA, Priority::Low, b"many", &mut res)
                };
                if let Ok(sum) = r {
                    assert_eq!(sum.queued + sum.failed, sum.reported);
                }
            }
            Op::Disconnect { from_b } => {
                let i = usize::from(from_b);
                let peer = peer_id(1 - i as u8);
                let _ = w.s[i].m.node_mut().disconnect(now, &peer);
                w.pump();
                w.connect();
            }
            Op::DecodePubSub { kind: k, bytes } => {
                let k = 0x18 | (k & 0x07);
                if let Ok(p) = PubSubPacket::decode(k, &bytes) {
                    let mut out = vec![0u8; bytes.len() + 16];
                    let n = p.encode(&mut out).expect("a decoded packet re-encodes");
                    assert_eq!(PubSubPacket::decode(k, &out[..n]), Ok(p));
                }
            }
            Op::Subscribe { on_b, subject, high } => {
                let s = &mut w.s[usize::from(on_b)];
                let pat = SUBJECTS[usize::from(subject) % SUBJECTS.len()];
                let prio = if high { Priority::High } else { Priority::Low };
                if let Ok(id) = s.m.subscribe(now, pat, prio) {
                    s.subs.push((id, pat));
                }
                assert!(s.subs.len() <= 3, "max_subs");
            }
            Op::Unsubscribe { on_b, which } => {
                let s = &mut w.s[usize::from(on_b)];
                if !s.subs.is_empty() {
                    let (id, _) = s.subs.remove(usize::from(which) % s.subs.len());
                    s.m.unsubscribe(now, id).expect("a live subscription ends");
                    assert!(s.m.unsubscribe(now, id).is_err());
                }
            }
            Op::Publish { from_b, subject, len } => {
                let body = vec![0x5au8; usize::from(len)];
                let _ = w.s[usize::from(from_b)].m.publish(now, SUBJECTS[usize::from(subject) % SUBJECTS.len()], &body);
            }
            Op::Consumed { on_b, which, n } => {
                let s = &mut w.s[usize::from(on_b)];
                if !s.subs.is_empty() {
                    let (id, _) = s.subs[usize::from(which) % s.subs.len()];
                    s.m.consumed(id, u16::from(n)).expect("a live subscription");
                }
            }
            Op::RawPubSub { from_b, kind: k, bytes } => {
                let i = usize::from(from_b);
                let peer = peer_id(1 - i as u8);
                let _ = w.s[i].m.send_raw_messaging(now, &peer, 0x18 | (k & 0x03), &bytes);
            }
            Op::Advance(d) => w.now += u64::from(d),
            Op::TimeoutDue => {
                let next = w.s.iter().filter_map(|s| s.m.poll_timeout()).min();
                if let Some(t) = next {
                    w.now = w.now.max(t.as_micros().div_ceil(1000));
                }
            }
        }
        w.pump();
    }
    // Past every deadline (u16 ms timeouts), every request has ended and its slot is free.
    w.now += 70_000;
    w.pump();
    for s in &w.s {
        assert!(s.open.is_empty(), "requests without an outcome: {:?}", s.open);
        assert_eq!(s.m.pending(), 0, "pending slots left");
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
