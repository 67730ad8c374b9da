//! Hostile input to whole `Node`s. Each test wires two or three real nodes together in
//! memory (the `Net` harness below: transmits are routed by address for datagrams and by
//! connection for streams, time is virtual) and asserts that every hostile input gives a
//! typed `Error`, while a third, healthy peer keeps exchanging messages with the victim
//! through the whole test (`Net::assert_healthy`).
//!
//! Covered: stream frame lengths (0, 1, max_frame, max_frame + 1, 65535) and truncation
//! then EOF; byte-by-byte stream delivery; bit flips on streams (connection closes) and on
//! datagrams (dropped, window untouched); duplicate, too-old and over-limit counters; the
//! low-order points as Init `e` (XX and IK, datagram and stream); out-of-order handshake
//! records; wrong network id / network key / wire version / record type / pattern id;
//! random datagrams of every size 0..=200; an initiation flood against `max_half_open`;
//! the `max_peers`, `max_message` and `send_queue` edges; a wrong expected key (XX and IK
//! fallback); threat-score policies Drop and Refuse; a pattern the responder does not
//! accept (Reject(Pattern) at once); datagrams above `max_datagram`; the 3x
//! anti-amplification bound towards unverified (spoofed) addresses, also from a replayed
//! IK Init; IK over datagrams in one round trip whatever the responder's Hello; datagram
//! handshakes under Resp loss.
//!
//! Bugs found in core/src are pinned by `#[ignore = "BUG: ..."]` tests (none open).

use std::net::SocketAddr;
use std::time::Duration;

use meshlink_core::noise::NoiseError;
use meshlink_core::replay::{ReplayError, REJECT_AFTER_MESSAGES, REPLAY_WINDOW_SIZE};
use meshlink_core::session::{AMPLIFICATION_FACTOR, DATAGRAM_INIT_MIN, HANDSHAKE_RECORD_MAX};
use meshlink_core::wire::hello::{
    bounded, CAPABILITIES_MAX, CAPABILITY_LEN_MAX, KEY_LEN_MAX, LOCATION_MAX, METADATA_MAX, NAME_MAX, RESOURCES_MAX,
};
use meshlink_core::wire::{Hello, RejectCode, VersionRange, WireError, HELLO_MAX_LEN, WIRE_VERSION};
use meshlink_core::{
    CloseReason, Config, ConnId, DisconnectReason, Error, ErrorCode, HeapNode, Instant, Keypair, PeerId,
};
use meshlink_core::{ThreatPolicy, Transmit, TransportKind};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const CAP: usize = 24;
type TestNode = HeapNode;
use TransportKind::{Datagram, Stream};

/// Small limits, so the edges are cheap to reach.
fn cfg() -> Config {
    Config::default().with(|c| {
        c.max_frame = 2048;
        c.max_datagram = 1200;
        c.max_message = 4096;
        c.send_queue = 16 * 1024;
    })
}

/// An owned copy of a node event (`Event` borrows the node).
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Connected { conn: ConnId, peer: PeerId },
    Message { peer: PeerId, data: Vec<u8> },
    RemoteError { conn: ConnId, code: ErrorCode },
    Disconnected { conn: ConnId, peer: Option<PeerId>, was_connected: bool, reason: DisconnectReason },
}

/// Several nodes on a virtual network.
struct Net {
    now: Instant,
    nodes: Vec<TestNode>,
    addrs: Vec<SocketAddr>,
    events: Vec<Vec<Ev>>,
    /// Open stream connections: both ends as (node, conn).
    links: Vec<[(usize, ConnId); 2]>,
    /// Errors returned by `handle_*` while routing: (receiving node, error).
    errors: Vec<(usize, Error)>,
    /// Transmits addressed to nobody on the net (replies to spoofed addresses).
    stray: Vec<(usize, Transmit, Vec<u8>)>,
    /// Deliver stream bytes one at a time.
    byte_by_byte: bool,
    /// Drops this percentage of Resp datagrams (seeded), and counts the drops.
    resp_loss: Option<(ChaCha20Rng, u32)>,
    resps_dropped: usize,
    seq: u32,
}

fn fake_addr(i: u32) -> SocketAddr {
    SocketAddr::from(([172, 16, (i >> 8) as u8, i as u8], 9000 + (i >> 16) as u16))
}

impl Net {
    fn new() -> Self {
        Net {
            now: Instant::from_millis(1000),
            nodes: Vec::new(),
            addrs: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            errors: Vec::new(),
            stray: Vec::new(),
            byte_by_byte: false,
            resp_loss: None,
            resps_dropped: 0,
            seq: 0,
        }
    }

    fn add(&mut self, config: Config) -> usize {
        let i = self.nodes.len();
        let kp = Keypair::from_secret([i as u8 + 1; 32]);
        self.nodes.push(TestNode::with_capacity(config, kp, [0x40 + i as u8; 32], CAP).unwrap());
        self.addrs.push(SocketAddr::from(([10, 0, 0, i as u8 + 1], 4000)));
        self.events.push(Vec::new());
        i
    }

    fn id(&self, i: usize) -> PeerId {
        self.nodes[i].peer_id()
    }

    /// Starts a handshake from `a` to `b` (for streams, `b` accepts); returns a's conn.
    fn open(&mut self, a: usize, b: usize, kind: TransportKind, expected: Option<PeerId>) -> ConnId {
        let ca = self.nodes[a].connect(self.now, kind, self.addrs[b], expected).unwrap();
        if kind == Stream {
            let cb = self.nodes[b].accept(self.now, self.addrs[a]).unwrap();
            self.links.push([(a, ca), (b, cb)]);
        }
        ca
    }

    /// Connects `a` to `b`, runs the handshake, asserts both sides report Connected.
    fn connect(&mut self, a: usize, b: usize, kind: TransportKind) {
        self.open(a, b, kind, None);
        self.pump();
        let (pa, pb) = (self.id(a), self.id(b));
        assert!(
            self.take(a, |e| matches!(e, Ev::Connected { peer, .. } if *peer == pb)),
            "{a} not connected: {:?}",
            self.events[a]
        );
        assert!(
            self.take(b, |e| matches!(e, Ev::Connected { peer, .. } if *peer == pa)),
            "{b} not connected: {:?}",
            self.events[b]
        );
    }

    fn conn_to(&self, i: usize, peer: PeerId) -> Option<ConnId> {
        self.nodes[i].peers().find(|p| p.peer == peer).map(|p| p.conn)
    }

    /// Drains node `i`'s output without delivering it.
    fn transmits(&mut self, i: usize) -> Vec<(Transmit, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while let Some(t) = self.nodes[i].poll_transmit(self.now, &mut buf) {
            out.push((t, buf[..t.len].to_vec()));
        }
        out
    }

    fn drain_events(&mut self, i: usize) {
        let mut closed = Vec::new();
        while let Some(e) = self.nodes[i].poll_event() {
            let ev = match e {
                meshlink_core::Event::Connected { conn, peer, .. } => Ev::Connected { conn, peer },
                meshlink_core::Event::Message { peer, data, .. } => Ev::Message { peer, data: data.to_vec() },
                meshlink_core::Event::QualityUpdate { .. } => continue,
                meshlink_core::Event::RemoteError { conn, code, .. } => Ev::RemoteError { conn, code },
                meshlink_core::Event::Disconnected { conn, peer, was_connected, reason, .. } => {
                    closed.push(conn);
                    Ev::Disconnected { conn, peer, was_connected, reason }
                }
                // `Event` is `#[non_exhaustive]`: a kind these tests do not know fails them.
                other => panic!("unexpected event {other:?}"),
            };
            self.events[i].push(ev);
        }
        // The adapter closes the socket of a finished stream session: the peer sees EOF.
        for conn in closed {
            if let Some(k) = self.links.iter().position(|l| l.contains(&(i, conn))) {
                let l = self.links.remove(k);
                let (j, cj) = if l[0] == (i, conn) { l[1] } else { l[0] };
                self.nodes[j].handle_stream_closed(cj, self.now);
                self.drain_events(j);
            }
        }
    }

    /// Feeds stream bytes, honouring partial consumption (drain events, feed the rest).
    fn feed(&mut self, to: usize, conn: ConnId, bytes: &[u8]) -> Result<(), Error> {
        let step = if self.byte_by_byte { 1 } else { bytes.len().max(1) };
        let (mut at, mut stalls) = (0, 0);
        while at < bytes.len() {
            let end = (at + step).min(bytes.len());
            let r = self.nodes[to].handle_stream(conn, self.now, &bytes[at..end]);
            self.drain_events(to);
            let n = r?;
            stalls = if n == 0 { stalls + 1 } else { 0 };
            assert!(stalls < 3, "handle_stream made no progress even after draining events");
            at += n;
        }
        Ok(())
    }

    /// Feeds one datagram to node `to` as if from `from`; drains its events.
    fn inject(&mut self, to: usize, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        let r = self.nodes[to].handle_datagram(self.now, from, bytes);
        self.drain_events(to);
        r
    }

    fn deliver(&mut self, from: usize, t: &Transmit, bytes: &[u8]) {
        if let Some((rng, pct)) = self.resp_loss.as_mut() {
            if t.kind == Datagram && bytes.first() == Some(&0x02) && rng.next_u32() % 100 < *pct {
                self.resps_dropped += 1;
                return;
            }
        }
        let r = match t.kind {
            Datagram => match self.addrs.iter().position(|a| *a == t.addr) {
                Some(j) => (j, self.inject(j, self.addrs[from], bytes)),
                None => return self.stray.push((from, *t, bytes.to_vec())),
            },
            Stream => {
                let end = t.conn.and_then(|c| self.links.iter().find(|l| l.contains(&(from, c))).copied());
                let Some(l) = end else { return self.stray.push((from, *t, bytes.to_vec())) };
                let (j, cj) = if l[0].0 == from { l[1] } else { l[0] };
                (j, self.feed(j, cj, bytes))
            }
        };
        if let (j, Err(e)) = r {
            self.errors.push((j, e));
        }
    }

    /// Routes everything until no node has anything left to send.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut any = false;
            for i in 0..self.nodes.len() {
                let out = self.transmits(i);
                any |= !out.is_empty();
                for (t, b) in out {
                    self.deliver(i, &t, &b);
                }
                self.drain_events(i);
            }
            if !any {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    /// Moves virtual time forward by `d`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        // What a command queued goes out now, not at the first timer.
        self.pump();
        let target = self.now + d;
        let mut spins = 0;
        while let Some(t) = self.nodes.iter().filter_map(|n| n.poll_timeout()).min().filter(|t| *t <= target) {
            if t <= self.now {
                spins += 1;
                assert!(spins < 100, "poll_timeout stays at {t:?} after handle_timeout: a busy loop for the adapter");
            } else {
                spins = 0;
                self.now = t;
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].poll_timeout().is_some_and(|x| x <= self.now) {
                    self.nodes[i].handle_timeout(self.now);
                }
                self.drain_events(i);
            }
            self.pump();
        }
        self.now = target;
        self.pump();
    }

    /// Removes the first event of node `i` matching `f`; whether there was one.
    fn take(&mut self, i: usize, f: impl Fn(&Ev) -> bool) -> bool {
        let k = self.events[i].iter().position(f);
        k.map(|k| self.events[i].remove(k)).is_some()
    }

    /// Removes node `i`'s Disconnected event for `conn` (any conn if None); its details.
    fn disconnected(&mut self, i: usize, conn: Option<ConnId>) -> Option<(Option<PeerId>, bool, DisconnectReason)> {
        let k = self.events[i]
            .iter()
            .position(|e| matches!(e, Ev::Disconnected { conn: c, .. } if conn.map_or(true, |x| x == *c)))?;
        match self.events[i].remove(k) {
            Ev::Disconnected { peer, was_connected, reason, .. } => Some((peer, was_connected, reason)),
            _ => unreachable!(),
        }
    }

    /// A message each way between `a` and `h` arrives; fails the test otherwise.
    fn assert_healthy(&mut self, a: usize, h: usize) {
        self.seq += 1;
        let (pa, ph) = (self.id(a), self.id(h));
        let m1 = format!("a->h #{}", self.seq).into_bytes();
        let m2 = format!("h->a #{}", self.seq).into_bytes();
        self.nodes[a].send(self.now, &ph, &m1).expect("send to the healthy peer");
        self.nodes[h].send(self.now, &pa, &m2).expect("send from the healthy peer");
        self.pump();
        assert!(
            self.take(h, |e| *e == Ev::Message { peer: pa, data: m1.clone() }),
            "healthy peer lost a message: {:?}",
            self.events[h]
        );
        assert!(
            self.take(a, |e| *e == Ev::Message { peer: ph, data: m2.clone() }),
            "victim lost a message: {:?}",
            self.events[a]
        );
    }

    /// Re-seals the mac tail of a datagram Init edited by a test (PROTOCOL.md §5.12), so
    /// that the responder reaches the check the test is about.
    fn reseal(d: &mut [u8]) {
        meshlink_core::cookie::seal_init(&meshlink_core::cookie::mac1_key(&cfg().network_id), None, d);
    }

    /// A genuine first handshake record from `c` to `to` (not delivered), without stream prefix.
    fn capture_init(&mut self, c: usize, to: usize, kind: TransportKind, expected: Option<PeerId>) -> Vec<u8> {
        let conn = self.nodes[c].connect(self.now, kind, self.addrs[to], expected).unwrap();
        let mut out = self.transmits(c);
        assert_eq!(out.len(), 1);
        let rec = out.remove(0).1;
        self.nodes[c].close(self.now, conn).unwrap();
        self.drain_events(c);
        self.events[c].clear();
        if kind == Stream {
            rec[2..].to_vec()
        } else {
            rec
        }
    }

    /// A fresh hostile stream into node `a` from an address outside the net.
    fn hostile_stream(&mut self, a: usize) -> ConnId {
        self.nodes[a].accept(self.now, fake_addr(0xffff)).unwrap()
    }
}

/// Victim A and healthy peer H (same config), connected over `kind`.
fn setup(kind: TransportKind, config: Config) -> (Net, usize, usize) {
    let mut net = Net::new();
    let a = net.add(config.clone());
    let h = net.add(config);
    net.connect(h, a, kind);
    net.assert_healthy(a, h);
    (net, a, h)
}

fn frame(record: &[u8]) -> Vec<u8> {
    let mut f = (record.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(record);
    f
}

/// Asserts the hostile stream `conn` on node `a` ended with `err`, and nothing is left over.
fn assert_stream_killed(net: &mut Net, a: usize, conn: ConnId, err: Error) {
    let got = net.disconnected(a, Some(conn));
    assert_eq!(got, Some((None, false, DisconnectReason::Error(err))), "events: {:?}", net.events[a]);
    assert_eq!(net.nodes[a].stats().half_open, 0);
}

fn counter_of(datagram: &[u8]) -> u64 {
    u64::from_le_bytes(datagram[8..16].try_into().unwrap())
}

// ---------------------------------------------------------------------------- framing

#[test]
fn stream_frame_lengths() {
    let (mut net, a, h) = setup(Stream, cfg());
    // Before the handshake is done a frame may be at most a handshake record long.
    let max = cfg().max_frame.min(HANDSHAKE_RECORD_MAX);
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (vec![0, 0], Error::Wire(WireError::EmptyFrame)),
        (vec![0, 1, 0x01], Error::Wire(WireError::Truncated { needed: 12, got: 1 })),
        (vec![0, 1, 0x42], Error::Wire(WireError::UnknownRecordType(0x42))),
        // One above the configured limit, and the largest prefix: refused before any body byte.
        (((max + 1) as u16).to_be_bytes().to_vec(), Error::Wire(WireError::FrameTooLarge { len: max + 1, max })),
        (vec![0xff, 0xff], Error::Wire(WireError::FrameTooLarge { len: 65535, max })),
        // Exactly the limit is a frame; a transport record before the handshake is refused.
        (frame(&[&[0x04u8][..], &vec![0xab; max - 1]].concat()), Error::UnexpectedRecord),
    ];
    for (bytes, err) in cases {
        let c = net.hostile_stream(a);
        assert_eq!(net.feed(a, c, &bytes), Err(err));
        assert_stream_killed(&mut net, a, c, err);
        net.assert_healthy(a, h);
    }

    // Truncated mid-prefix and mid-body, then EOF: the session ends as TransportClosed.
    for bytes in [vec![0x00], [&[0x00, 0x40][..], &[0x01; 10]].concat()] {
        let c = net.hostile_stream(a);
        assert_eq!(net.feed(a, c, &bytes), Ok(()));
        assert_eq!(net.nodes[a].stats().half_open, 1);
        net.nodes[a].handle_stream_closed(c, net.now);
        net.drain_events(a);
        assert_eq!(net.disconnected(a, Some(c)), Some((None, false, DisconnectReason::TransportClosed)));
        assert_eq!(net.nodes[a].stats().half_open, 0);
        net.assert_healthy(a, h);
    }
}

#[test]
fn stream_frame_of_65535_bytes_before_the_handshake_is_refused_unread() {
    let big = cfg().with(|c| c.max_frame = 65535);
    let (mut net, a, h) = setup(Datagram, big);
    let too_large = Error::Wire(WireError::FrameTooLarge { len: 65535, max: HANDSHAKE_RECORD_MAX });
    // Even on a node that takes 65535-byte frames once connected, a handshake-phase frame
    // above a handshake record is refused from its prefix alone (no 64 KiB is buffered):
    // a transport record out of turn, and an XX Init with a ~64 KiB cleartext payload.
    let c = net.hostile_stream(a);
    assert_eq!(net.feed(a, c, &[0xff, 0xff, 0x04]), Err(too_large));
    assert_stream_killed(&mut net, a, c, too_large);
    let c = net.hostile_stream(a);
    let mut init = net.capture_init(h, a, Stream, None);
    init.resize(65535, 0x33);
    assert_eq!(net.feed(a, c, &frame(&init)), Err(too_large));
    assert_stream_killed(&mut net, a, c, too_large);
    // An Init of exactly HANDSHAKE_RECORD_MAX bytes passes framing and fails in Noise, typed.
    let c = net.hostile_stream(a);
    let mut init = net.capture_init(h, a, Stream, None);
    init.resize(HANDSHAKE_RECORD_MAX, 0x33);
    let r = net.feed(a, c, &frame(&init));
    assert!(matches!(r, Err(Error::Noise(NoiseError::BufferTooSmall { .. }))), "{r:?}");
    assert_stream_killed(&mut net, a, c, r.unwrap_err());
    net.assert_healthy(a, h);
}

#[test]
fn stream_byte_by_byte_handshake_and_messages() {
    let mut net = Net::new();
    let a = net.add(cfg());
    let b = net.add(cfg());
    let h = net.add(cfg());
    net.connect(h, a, Datagram);
    net.byte_by_byte = true;
    net.connect(b, a, Stream);
    // Small, one-frame and multi-frame (max_message 4096 > max_frame 2048) messages.
    for len in [1usize, 100, 2000, 4096] {
        let m: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let (pa, pb) = (net.id(a), net.id(b));
        net.nodes[b].send(net.now, &pa, &m).unwrap();
        net.nodes[a].send(net.now, &pb, &m).unwrap();
        net.pump();
        assert!(net.take(a, |e| *e == Ev::Message { peer: pb, data: m.clone() }), "len {len}");
        assert!(net.take(b, |e| *e == Ev::Message { peer: pa, data: m.clone() }), "len {len}");
        net.assert_healthy(a, h);
    }
    assert!(net.errors.is_empty(), "{:?}", net.errors);
}

// ---------------------------------------------------------------------------- bit flips

#[test]
fn stream_bit_flips_close_the_connection_with_a_typed_error() {
    let mut net = Net::new();
    let a = net.add(cfg());
    let b = net.add(cfg());
    let h = net.add(cfg());
    net.connect(h, a, Datagram);
    // (byte of the record, bit, error): ciphertext and tag, AD bytes, counter, receiver, type.
    let cases = [
        (20, 0, Error::Noise(NoiseError::Decrypt)),
        (usize::MAX, 7, Error::Noise(NoiseError::Decrypt)), // last byte of the tag
        (1, 0, Error::Noise(NoiseError::Decrypt)),          // reserved, but covered by the AD
        (0, 0, Error::Noise(NoiseError::Decrypt)),          // 0x04 -> 0x05: a key phase never used
        (0, 1, Error::UnexpectedRecord),                    // 0x04 -> 0x06: a Reject to a responder
        (0, 6, Error::Wire(WireError::UnknownRecordType(0x44))),
        (8, 3, Error::Replay(ReplayError::Duplicate)), // counter out of sequence on a stream
        (6, 2, Error::UnexpectedRecord),               // receiver index
    ];
    for (byte, bit, err) in cases {
        net.open(b, a, Stream, None);
        net.pump();
        let (pa, pb) = (net.id(a), net.id(b));
        assert!(net.take(a, |e| matches!(e, Ev::Connected { peer, .. } if *peer == pb)));
        assert!(net.take(b, |e| matches!(e, Ev::Connected { peer, .. } if *peer == pa)));
        let conn = net.conn_to(a, pb).unwrap();
        net.nodes[b].send(net.now, &pa, b"to be tampered with").unwrap();
        let mut out = net.transmits(b);
        assert_eq!(out.len(), 1);
        let (t, mut bytes) = out.remove(0);
        assert_eq!(bytes[2], 0x04, "one transport frame");
        let at = if byte == usize::MAX { bytes.len() - 1 } else { 2 + byte };
        bytes[at] ^= 1 << bit;
        net.deliver(b, &t, &bytes);
        assert_eq!(net.errors.pop(), Some((a, err)), "byte {byte} bit {bit}");
        assert_eq!(net.disconnected(a, Some(conn)), Some((Some(pb), true, DisconnectReason::Error(err))));
        // The adapter closed the socket: B sees EOF.
        assert_eq!(net.disconnected(b, None).map(|d| d.2), Some(DisconnectReason::TransportClosed));
        assert!(!net.take(a, |e| matches!(e, Ev::Message { .. })), "tampered data delivered");
        net.assert_healthy(a, h);
    }
}

#[test]
fn datagram_bit_flips_are_refused_and_do_not_advance_the_window() {
    let (mut net, a, h) = setup(Datagram, cfg());
    let b = net.add(cfg());
    net.connect(b, a, Datagram);
    let (pa, pb) = (net.id(a), net.id(b));
    let dropped = net.nodes[a].stats().records_dropped;
    for round in 0..2 {
        let msg = format!("genuine #{round}").into_bytes();
        net.nodes[b].send(net.now, &pa, &msg).unwrap();
        let out = net.transmits(b);
        assert_eq!(out.len(), 1);
        let d = &out[0].1;
        // 100 distinct bits of the AD's reserved bytes, the ciphertext and the tag.
        let bits: Vec<usize> = (8..32).chain(16 * 8..d.len() * 8).collect();
        for k in 0..100 {
            let bit = bits[(k * 131 + round) % bits.len()];
            let mut bad = d.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(net.inject(a, net.addrs[b], &bad), Err(Error::Noise(NoiseError::Decrypt)), "bit {bit}");
        }
        // The genuine datagram still opens: the failures neither marked its counter nor moved the window.
        assert_eq!(net.inject(a, net.addrs[b], d), Ok(()));
        assert!(net.take(a, |e| *e == Ev::Message { peer: pb, data: msg.clone() }));
        net.assert_healthy(a, h);
    }
    assert_eq!(net.nodes[a].stats().records_dropped, dropped + 200);
    assert!(net.conn_to(a, pb).is_some(), "the session survived");
}

// ---------------------------------------------------------------------------- replays

#[test]
fn datagram_replays() {
    let (mut net, a, h) = setup(Datagram, cfg());
    // B sends far more than a datagram window without hearing A's Credits (the test
    // replays records by hand): flow control (§8.8) off on B's side.
    let b = net.add(cfg().with(|c| c.datagram_window = 0));
    net.connect(b, a, Datagram);
    let (pa, pb) = (net.id(a), net.id(b));
    let send = |net: &mut Net, m: &[u8]| {
        net.nodes[b].send(net.now, &pa, m).unwrap();
        let mut out = net.transmits(b);
        assert_eq!(out.len(), 1);
        out.remove(0).1
    };

    // The same datagram twice.
    let d = send(&mut net, b"once");
    assert_eq!(net.inject(a, net.addrs[b], &d), Ok(()));
    assert_eq!(net.inject(a, net.addrs[b], &d), Err(Error::Replay(ReplayError::Duplicate)));
    assert!(net.take(a, |e| *e == Ev::Message { peer: pb, data: b"once".to_vec() }));
    assert!(!net.take(a, |e| matches!(e, Ev::Message { .. })), "delivered twice");
    // Replayed from another address: refused, and A does not "roam" B to that address.
    assert_eq!(net.inject(a, fake_addr(99), &d), Err(Error::Replay(ReplayError::Duplicate)));
    net.assert_healthy(a, b);
    assert!(net.stray.is_empty(), "A sent to the replayer's address");

    // Hold back two datagrams, then deliver later ones until the window's far edge is
    // exactly at the second: it is still accepted, the first is TooOld.
    let d0 = send(&mut net, b"held 0");
    let d1 = send(&mut net, b"held 1");
    let c1 = counter_of(&d1);
    assert_eq!(counter_of(&d0) + 1, c1);
    let mut last = c1;
    while last < c1 + REPLAY_WINDOW_SIZE {
        let d = send(&mut net, b"filler");
        last = counter_of(&d);
        assert_eq!(net.inject(a, net.addrs[b], &d), Ok(()));
        net.events[a].clear();
    }
    assert_eq!(last, c1 + REPLAY_WINDOW_SIZE);
    assert_eq!(net.inject(a, net.addrs[b], &d0), Err(Error::Replay(ReplayError::TooOld)));
    assert_eq!(net.inject(a, net.addrs[b], &d1), Ok(()));
    assert!(net.take(a, |e| *e == Ev::Message { peer: pb, data: b"held 1".to_vec() }));
    assert_eq!(net.inject(a, net.addrs[b], &d1), Err(Error::Replay(ReplayError::Duplicate)));
    net.assert_healthy(a, h);

    // Counters at or above REJECT_AFTER_MESSAGES are refused before any decryption;
    // just below, the counter passes the window and the forged tag fails.
    let template = send(&mut net, b"template");
    for (counter, err) in [
        (REJECT_AFTER_MESSAGES, Error::Replay(ReplayError::LimitReached)),
        (u64::MAX, Error::Replay(ReplayError::LimitReached)),
        (REJECT_AFTER_MESSAGES - 1, Error::Noise(NoiseError::Decrypt)),
    ] {
        let mut forged = template.clone();
        forged[8..16].copy_from_slice(&counter.to_le_bytes());
        assert_eq!(net.inject(a, net.addrs[b], &forged), Err(err), "counter {counter}");
    }
    assert_eq!(net.inject(a, net.addrs[b], &template), Ok(()));
    assert!(net.take(a, |e| *e == Ev::Message { peer: pb, data: b"template".to_vec() }));
    net.assert_healthy(a, h);
}

// ---------------------------------------------------------------------------- handshake input

/// The seven low-order X25519 points (libsodium's blocklist, all-zero among them) and the
/// same seven with bit 255 set, which X25519 ignores.
fn low_order_points() -> Vec<[u8; 32]> {
    let hexes = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    let seven: Vec<[u8; 32]> = hexes.iter().map(|h| hex::decode(h).unwrap().try_into().unwrap()).collect();
    let high = seven.iter().map(|p| {
        let mut q = *p;
        q[31] |= 0x80;
        q
    });
    seven.clone().into_iter().chain(high).collect()
}

#[test]
fn low_order_ephemeral_in_init_is_refused_and_leaves_no_session() {
    let (mut net, a, h) = setup(Datagram, cfg());
    let c = net.add(cfg());
    let sessions = net.nodes[a].stats().sessions;
    let pa = net.id(a);
    // XX (no DH in message 1: caught when A computes ee for message 2) and IK (es on read).
    for expected in [None, Some(pa)] {
        let dgram = net.capture_init(c, a, Datagram, expected);
        let strm = net.capture_init(c, a, Stream, expected);
        assert_eq!(dgram[2], if expected.is_some() { 2 } else { 0 }, "pattern id");
        for (i, point) in low_order_points().into_iter().enumerate() {
            let mut d = dgram.clone();
            d[12..44].copy_from_slice(&point);
            Net::reseal(&mut d);
            assert_eq!(net.inject(a, fake_addr(i as u32), &d), Err(Error::Noise(NoiseError::LowOrderKey)), "point {i}");
            assert_eq!(
                net.disconnected(a, None),
                Some((None, false, DisconnectReason::Error(Error::Noise(NoiseError::LowOrderKey))))
            );
            let mut s = strm.clone();
            s[12..44].copy_from_slice(&point);
            let conn = net.hostile_stream(a);
            assert_eq!(net.feed(a, conn, &frame(&s)), Err(Error::Noise(NoiseError::LowOrderKey)));
            assert_stream_killed(&mut net, a, conn, Error::Noise(NoiseError::LowOrderKey));
            assert_eq!(net.nodes[a].stats().half_open, 0);
            assert_eq!(net.nodes[a].stats().sessions, sessions, "a session was left behind");
            assert!(net.transmits(a).is_empty(), "A answered a low-order Init");
        }
        net.assert_healthy(a, h);
    }
}

#[test]
fn out_of_order_handshake_records() {
    let (mut net, a, h) = setup(Datagram, cfg());
    let b = net.add(cfg());
    let c = net.add(cfg());
    let junk = |ty: u8, hdr: usize| [&[ty][..], &[0u8; 3], &[0x11u8; 4], &vec![0x22; hdr - 8], &[0x33; 80]].concat();
    let (fin, resp, transport) = (junk(0x03, 8), junk(0x02, 12), junk(0x04, 16));

    // On a fresh stream: Final, Resp or Transport before any Init.
    for rec in [&fin, &resp, &transport] {
        let conn = net.hostile_stream(a);
        assert_eq!(net.feed(a, conn, &frame(rec)), Err(Error::UnexpectedRecord));
        assert_stream_killed(&mut net, a, conn, Error::UnexpectedRecord);
    }
    // As datagrams from nowhere: refused, nothing created.
    for rec in [&fin, &resp, &transport] {
        assert_eq!(net.inject(a, fake_addr(1), rec), Err(Error::UnexpectedRecord));
        assert!(net.events[a].is_empty());
    }
    net.assert_healthy(a, h);

    // A second Init on an established stream closes that stream only.
    net.connect(b, a, Stream);
    let pb = net.id(b);
    let conn = net.conn_to(a, pb).unwrap();
    let init = net.capture_init(c, a, Stream, None);
    assert_eq!(net.feed(a, conn, &frame(&init)), Err(Error::UnexpectedRecord));
    assert_eq!(
        net.disconnected(a, Some(conn)),
        Some((Some(pb), true, DisconnectReason::Error(Error::UnexpectedRecord)))
    );
    net.assert_healthy(a, h);

    // Datagram: a Resp aimed at a half-open responder session is dropped, and the
    // handshake it targeted still completes.
    net.open(c, a, Datagram, None);
    let (t, init) = net.transmits(c).remove(0);
    net.deliver(c, &t, &init);
    let (t_resp, resp) = net.transmits(a).remove(0);
    assert_eq!(resp[0], 0x02);
    let mut evil = resp.clone();
    evil[8..12].copy_from_slice(&resp[4..8]); // receiver := A's own index
    assert_eq!(net.inject(a, net.addrs[c], &evil), Err(Error::UnexpectedRecord));
    assert_eq!(net.nodes[a].stats().half_open, 1);
    net.deliver(a, &t_resp, &resp);
    net.pump();
    let pc = net.id(c);
    assert!(net.take(a, |e| matches!(e, Ev::Connected { peer, .. } if *peer == pc)));
    // A replayed Init (same sender, same address) to the established session: dropped, the session stays.
    assert_eq!(net.inject(a, net.addrs[c], &init), Err(Error::UnexpectedRecord));
    assert!(net.conn_to(a, pc).is_some());
    net.assert_healthy(a, c);
    net.assert_healthy(a, h);
}

#[test]
fn network_id_mismatch_datagram_both_sides() {
    let (mut net, a, h) = setup(Datagram, cfg().with_network_id(b"alpha").unwrap());
    let c = net.add(cfg().with_network_id(b"beta").unwrap());
    let conn = net.open(c, a, Datagram, None);
    let (t, init) = net.transmits(c).remove(0);
    net.deliver(c, &t, &init);
    assert_eq!(net.errors, vec![(a, Error::NetworkMismatch)]);
    let (t, reject) = net.transmits(a).remove(0);
    assert!(t.conn.is_none() && reject.len() == 8 && reject.len() <= init.len());
    assert_eq!((reject[0], reject[1], &reject[4..8]), (0x06, RejectCode::Network as u8, &init[4..8]));
    net.deliver(a, &t, &reject);
    assert_eq!(net.errors, vec![(a, Error::NetworkMismatch), (c, Error::NetworkMismatch)]);
    assert_eq!(net.disconnected(c, Some(conn)), Some((None, false, DisconnectReason::Error(Error::NetworkMismatch))));
    assert_eq!(net.nodes[a].stats().sessions, 1);
    assert_eq!(net.nodes[a].stats().rejects_sent, 1);
    net.assert_healthy(a, h);
}

#[test]
fn network_id_mismatch_stream_both_sides() {
    let (mut net, a, h) = setup(Datagram, cfg().with_network_id(b"alpha").unwrap());
    let c = net.add(cfg().with_network_id(b"beta").unwrap());
    let conn = net.open(c, a, Stream, None);
    net.pump();
    assert_eq!(net.errors, vec![(a, Error::NetworkMismatch), (c, Error::NetworkMismatch)]);
    assert_eq!(net.disconnected(c, Some(conn)), Some((None, false, DisconnectReason::Error(Error::NetworkMismatch))));
    assert_eq!(net.disconnected(a, None), Some((None, false, DisconnectReason::Error(Error::NetworkMismatch))));
    assert_eq!(net.nodes[a].stats().sessions, 1);
    net.assert_healthy(a, h);
}

#[test]
fn wrong_network_key_fails_on_both_sides() {
    let key = |k: u8| cfg().with(|c| c.network_key = Some([k; 32]));
    for kind in [Datagram, Stream] {
        let (mut net, a, h) = setup(Datagram, key(1));
        let c = net.add(key(2));
        let conn = net.open(c, a, kind, None);
        net.pump();
        // The responder finds out at message 3 (psk3) and says so with Reject(Auth).
        let decrypt = Error::Noise(NoiseError::Decrypt);
        assert_eq!(net.errors.first(), Some(&(a, decrypt)), "{kind:?}");
        assert_eq!(net.disconnected(a, None), Some((None, false, DisconnectReason::Error(decrypt))));
        let auth = Error::Rejected(RejectCode::Auth);
        // (The initiator already holds the responder's proven key from message 2.)
        let pa = net.id(a);
        assert_eq!(net.disconnected(c, Some(conn)), Some((Some(pa), false, DisconnectReason::Error(auth))), "{kind:?}");
        assert!(!net.events.iter().flatten().any(|e| matches!(e, Ev::Connected { .. })));
        assert_eq!(net.nodes[a].stats().half_open, 0);
        net.assert_healthy(a, h);
        // (No key at all against a keyed node: see pattern_mismatch_is_rejected_promptly.)
    }
}

#[test]
fn wire_version_and_unknown_types() {
    let (mut net, a, h) = setup(Datagram, cfg());
    let c = net.add(cfg());
    let conn = net.open(c, a, Datagram, None);
    let (t, mut init) = net.transmits(c).remove(0);
    // Rewritten on the path to announce only the next version (bytes 1 and 3, PROTOCOL.md §3).
    (init[1], init[3]) = (WIRE_VERSION + 1, WIRE_VERSION + 1);
    net.deliver(c, &t, &init);
    let (v3, ours) = (VersionRange::only(WIRE_VERSION + 1), VersionRange::only(WIRE_VERSION));
    let want = Error::VersionMismatch { ours, theirs: v3 };
    assert_eq!(net.errors.remove(0), (a, want));
    // A Reject(Version) went back (8 bytes, no larger than the Init) and ended the initiator.
    let out = net.transmits(a);
    assert_eq!(out.len(), 1);
    assert!(out[0].0.conn.is_none() && out[0].1.len() == 8 && out[0].1.len() <= init.len());
    assert_eq!(
        (out[0].1[0], out[0].1[1], out[0].1[2], out[0].1[3], &out[0].1[4..8]),
        (0x06, 1, WIRE_VERSION, WIRE_VERSION, &init[4..8])
    );
    net.deliver(a, &out[0].0, &out[0].1);
    // The Reject names the responder's version; the initiator reports it against its own.
    let theirs = Error::VersionMismatch { ours, theirs: VersionRange::only(out[0].1[2]) };
    assert_eq!(net.errors.pop(), Some((c, theirs)));
    assert_eq!(net.disconnected(c, Some(conn)), Some((None, false, DisconnectReason::Error(theirs))));
    assert_eq!(net.nodes[a].stats().sessions, 1);
    // The same on a stream: a Reject(Version) frame, then both sides end.
    let conn = net.open(c, a, Stream, None);
    let (t, mut f) = net.transmits(c).remove(0);
    (f[3], f[5]) = (WIRE_VERSION + 1, WIRE_VERSION + 1);
    net.deliver(c, &t, &f);
    assert_eq!(net.errors.remove(0), (a, want));
    net.pump();
    assert_eq!(net.disconnected(c, Some(conn)), Some((None, false, DisconnectReason::Error(theirs))));
    assert_eq!(net.disconnected(a, None).map(|d| d.2), Some(DisconnectReason::Error(want)));
    assert_eq!(net.nodes[a].stats().sessions, 1);

    // Unknown record types, as datagrams and as stream frames.
    for ty in [0x00u8, 0x08, 0x80, 0xff] {
        let rec = [ty, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        assert_eq!(net.inject(a, fake_addr(1), &rec), Err(Error::Wire(WireError::UnknownRecordType(ty))));
        let conn = net.hostile_stream(a);
        assert_eq!(net.feed(a, conn, &frame(&rec)), Err(Error::Wire(WireError::UnknownRecordType(ty))));
        assert_stream_killed(&mut net, a, conn, Error::Wire(WireError::UnknownRecordType(ty)));
    }
    // An unknown pattern id in an otherwise valid Init.
    let mut init = net.capture_init(c, a, Datagram, None);
    init[2] = 9;
    Net::reseal(&mut init);
    assert_eq!(net.inject(a, fake_addr(2), &init), Err(Error::Wire(WireError::UnknownPattern(9))));
    assert_eq!(
        net.disconnected(a, None).map(|d| d.2),
        Some(DisconnectReason::Error(Error::Wire(WireError::UnknownPattern(9))))
    );
    assert_eq!(net.nodes[a].stats().half_open, 0);
    net.assert_healthy(a, h);
}

#[test]
fn random_datagrams_of_every_size_are_errors() {
    let (mut net, a, h) = setup(Datagram, cfg());
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for len in 0..=200usize {
        for _ in 0..20 {
            let mut d = vec![0u8; len];
            rng.fill_bytes(&mut d);
            assert!(net.inject(a, fake_addr(len as u32), &d).is_err(), "len {len}: {d:02x?}");
        }
        // Every record type byte followed by random bytes: typed errors, never a panic.
        for ty in 1..=6u8 {
            let mut d = vec![ty; len.max(1)];
            rng.fill_bytes(&mut d[1..]);
            if ty == 1 && d.len() > 1 {
                d[1] = 2; // keep Inits from passing the version check by chance
            }
            assert!(net.inject(a, fake_addr(len as u32), &d).is_err(), "type {ty} len {len}");
        }
    }
    assert_eq!(net.nodes[a].stats().sessions, 1);
    net.transmits(a); // Reject(Version) replies to the random Inits
    net.assert_healthy(a, h);
}

// ---------------------------------------------------------------------------- limits

#[test]
fn initiation_flood_is_capped_and_legit_peers_connect_afterwards() {
    let max_half_open = 8;
    // Cookies off: this test is about the half-open cap (cookies: core/tests/cookie.rs).
    let (mut net, a, h) = setup(
        Datagram,
        cfg().with(|c| {
            c.max_half_open = max_half_open;
            c.cookie_half_open = max_half_open + 1;
        }),
    );
    let c = net.add(cfg());
    let init = net.capture_init(c, a, Datagram, None);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..1000u32 {
        let mut d = init.clone();
        d[4..8].copy_from_slice(&(i + 1).to_le_bytes());
        Net::reseal(&mut d);
        match net.inject(a, fake_addr(i), &d) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert_eq!(e, Error::HalfOpenLimit { limit: max_half_open });
                refused += 1;
            }
        }
        assert!(net.nodes[a].stats().half_open <= max_half_open);
        for (t, bytes) in net.transmits(a) {
            assert_eq!(t.addr, fake_addr(i));
            if t.conn.is_none() {
                // Reject(Busy) to the sender's index, never larger than the Init.
                assert!(bytes.len() <= d.len());
                assert_eq!((bytes[0], bytes[1], &bytes[4..8]), (0x06, 3, &d[4..8]));
            } else {
                assert_eq!(bytes[0], 0x02, "a Resp for an accepted Init");
            }
        }
        if i % 100 == 0 {
            net.assert_healthy(a, h);
        }
    }
    assert_eq!((accepted, refused), (max_half_open, 1000 - max_half_open));
    assert_eq!(net.nodes[a].stats().rejects_sent, refused as u64);
    // A legit peer during the flood is refused too (the cap is global)...
    let l = net.add(cfg());
    let conn = net.open(l, a, Datagram, None);
    net.pump();
    assert_eq!(
        net.disconnected(l, Some(conn)).map(|d| d.2),
        Some(DisconnectReason::Error(Error::Rejected(RejectCode::Busy)))
    );
    // ...but once the half-open entries time out, it connects; the healthy peer never noticed.
    net.advance(cfg().handshake_timeout + Duration::from_secs(1));
    assert_eq!(net.nodes[a].stats().half_open, 0);
    let timeouts = net.events[a]
        .iter()
        .filter(|e| matches!(e, Ev::Disconnected { reason: DisconnectReason::Error(Error::HandshakeTimeout), .. }))
        .count();
    assert_eq!(timeouts, max_half_open);
    net.connect(l, a, Datagram);
    net.assert_healthy(a, h);
    net.assert_healthy(a, l);
}

#[test]
fn max_peers_edge() {
    let max_peers = 4;
    let (mut net, a, h) = setup(Datagram, cfg().with(|c| c.max_peers = max_peers));
    let others: Vec<usize> = (0..4).map(|_| net.add(cfg())).collect();
    // H plus three more: exactly max_peers sessions.
    for &p in &others[..3] {
        net.connect(p, a, Datagram);
    }
    assert_eq!(net.nodes[a].stats().connected, max_peers);
    let limit = Error::PeerLimit { limit: max_peers };
    let x = others[3];
    let conn = net.open(x, a, Datagram, None);
    net.pump();
    assert!(net.errors.contains(&(a, limit)));
    assert_eq!(
        net.disconnected(x, Some(conn)).map(|d| d.2),
        Some(DisconnectReason::Error(Error::Rejected(RejectCode::Busy)))
    );
    assert_eq!(net.nodes[a].connect(net.now, Datagram, net.addrs[x], None), Err(limit));
    assert_eq!(net.nodes[a].accept(net.now, net.addrs[x]), Err(limit));
    for &p in &others[..3] {
        net.assert_healthy(a, p);
    }
    net.assert_healthy(a, h);
    // One leaves: the next one fits.
    let p0 = net.id(others[0]);
    net.nodes[a].disconnect(net.now, &p0).unwrap();
    net.pump();
    net.connect(x, a, Stream);
    net.assert_healthy(a, x);
    net.assert_healthy(a, h);
}

#[test]
fn max_message_edge() {
    for kind in [Datagram, Stream] {
        let (mut net, a, h) = setup(Datagram, cfg());
        let b = net.add(cfg());
        net.connect(b, a, kind);
        let (pa, pb) = (net.id(a), net.id(b));
        let max = cfg().max_message;
        let m: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
        net.nodes[b].send(net.now, &pa, &m).unwrap();
        net.pump();
        assert!(net.take(a, |e| *e == Ev::Message { peer: pb, data: m.clone() }), "{kind:?}");
        let big = vec![1u8; max + 1];
        assert_eq!(net.nodes[b].send(net.now, &pa, &big), Err(Error::TooLarge { size: max + 1, max }));
        assert_eq!(net.nodes[a].send(net.now, &pb, &big), Err(Error::TooLarge { size: max + 1, max }));
        net.pump();
        assert!(net.events[a].is_empty() && net.events[b].is_empty(), "{:?} {:?}", net.events[a], net.events[b]);
        net.assert_healthy(a, b);
        net.assert_healthy(a, h);
    }
}

#[test]
fn send_queue_edge() {
    // Two 4096-byte messages plus their 5-byte queue prefixes fill the queue exactly (all
    // of it given to the normal class, which `send` uses).
    let shares = meshlink_core::QueueShares::new(0, 100, 0);
    let config = cfg().with(|c| {
        c.send_queue = 2 * (4096 + 5);
        c.queue_shares = shares;
    });
    let (mut net, a, h) = setup(Stream, config.clone());
    let b = net.add(config);
    net.connect(b, a, Datagram);
    let (pa, pb) = (net.id(a), net.id(b));
    let m = vec![0x5a; 4096];
    net.nodes[a].send(net.now, &pb, &m).unwrap();
    net.nodes[a].send(net.now, &pb, &m).unwrap();
    assert_eq!(net.nodes[a].send(net.now, &pb, &m), Err(Error::QueueFull { needed: 4101, free: 0 }));
    assert_eq!(net.nodes[a].send(net.now, &pb, b"x"), Err(Error::QueueFull { needed: 6, free: 0 }));
    net.pump();
    assert!(net.take(b, |e| *e == Ev::Message { peer: pa, data: m.clone() }));
    assert!(net.take(b, |e| *e == Ev::Message { peer: pa, data: m.clone() }));
    // Drained: the queue takes messages again, and the session never dropped.
    net.nodes[a].send(net.now, &pb, b"x").unwrap();
    net.pump();
    assert!(net.take(b, |e| *e == Ev::Message { peer: pa, data: b"x".to_vec() }));
    assert!(net.events[a].is_empty());
    net.assert_healthy(a, h);
}

// ---------------------------------------------------------------------------- identity, threat

#[test]
fn connect_with_the_wrong_expected_key() {
    // XX learns the responder's key in message 2; IK (encrypted to the expected key) is
    // refused by the responder with Reject(Auth), then retried once as XX to learn it.
    for ik_fast_path in [false, true] {
        for kind in [Datagram, Stream] {
            let config = cfg().with(|c| c.ik_fast_path = ik_fast_path);
            let (mut net, a, h) = setup(Datagram, config.clone());
            let c = net.add(config);
            let wrong = Keypair::from_secret([0x99; 32]).peer_id();
            let conn = net.open(c, a, kind, Some(wrong));
            net.pump();
            let mismatch = Error::PeerKeyMismatch { expected: wrong, got: net.id(a) };
            let got = net.disconnected(c, Some(conn));
            assert_eq!(got, Some((None, false, DisconnectReason::Error(mismatch))), "ik {ik_fast_path} {kind:?}");
            assert!(net.errors.contains(&(c, mismatch)));
            assert_eq!(mismatch.to_string(), format!("peer key mismatch: expected {wrong}, got {}", net.id(a)));
            assert!(!net.events.iter().flatten().any(|e| matches!(e, Ev::Connected { .. })));
            net.advance(cfg().handshake_timeout + Duration::from_secs(1));
            assert_eq!(net.nodes[a].stats().half_open, 0);
            net.assert_healthy(a, h);
        }
    }
}

#[test]
fn threat_score_drop_policy() {
    let (mut net, a, h) = setup(Datagram, cfg().with(|c| c.threat_policy = ThreatPolicy::Drop));
    let b = net.add(cfg());
    net.connect(b, a, Datagram);
    let (pa, pb) = (net.id(a), net.id(b));
    let conn = net.conn_to(a, pb).unwrap();
    net.nodes[a].set_threat_score(net.now, pb, 0.9);
    net.pump();
    assert_eq!(net.disconnected(a, Some(conn)), Some((Some(pb), true, DisconnectReason::Local(CloseReason::Threat))));
    assert_eq!(net.disconnected(b, None), Some((Some(pa), true, DisconnectReason::Remote(CloseReason::Threat))));
    // Reconnects are refused, on both transports and in both directions.
    for kind in [Datagram, Stream] {
        let conn = net.open(b, a, kind, None);
        net.pump();
        assert_eq!(
            net.disconnected(a, None).map(|d| (d.1, d.2)),
            Some((false, DisconnectReason::Error(Error::Threat))),
            "{kind:?}"
        );
        let got = net.disconnected(b, Some(conn)).map(|d| (d.1, d.2));
        assert_eq!(got, Some((false, DisconnectReason::Remote(CloseReason::Threat))), "{kind:?}");
        assert!(net.conn_to(a, pb).is_none() && net.conn_to(b, pa).is_none());
    }
    assert_eq!(net.nodes[a].connect(net.now, Datagram, net.addrs[b], Some(pb)), Err(Error::Threat));
    assert!(!net.events.iter().flatten().any(|e| matches!(e, Ev::Connected { .. })));
    net.assert_healthy(a, h);
}

#[test]
fn threat_score_refuse_policy() {
    let (mut net, a, h) = setup(Datagram, cfg().with(|c| c.threat_policy = ThreatPolicy::Refuse));
    let b = net.add(cfg());
    net.connect(b, a, Datagram);
    let (pa, pb) = (net.id(a), net.id(b));
    net.nodes[a].set_threat_score(net.now, pb, 0.9);
    net.pump();
    // The existing session stays.
    assert!(net.events[a].is_empty() && net.events[b].is_empty());
    net.assert_healthy(a, b);
    // A new handshake from it is refused; the old session carries on.
    let conn = net.open(b, a, Stream, None);
    net.pump();
    assert_eq!(net.disconnected(a, None).map(|d| (d.1, d.2)), Some((false, DisconnectReason::Error(Error::Threat))));
    assert_eq!(
        net.disconnected(b, Some(conn)).map(|d| (d.1, d.2)),
        Some((false, DisconnectReason::Remote(CloseReason::Threat)))
    );
    assert_eq!(net.nodes[a].connect(net.now, Datagram, net.addrs[b], Some(pb)), Err(Error::Threat));
    assert!(net.conn_to(b, pa).is_some());
    net.assert_healthy(a, b);
    net.assert_healthy(a, h);
}

// ---------------------------------------------------------------------------- patterns, sizes, amplification

#[test]
fn pattern_mismatch_is_rejected_promptly() {
    // A pattern the responder does not accept (XX or IK to a node with a network key,
    // XXpsk3 to one without) is refused at message 1 with Reject(Pattern), and the
    // initiator ends with PatternMismatch at once: no virtual time passes in this test.
    let keyed = cfg().with(|c| c.network_key = Some([1; 32]));
    // (responder, initiator, initiator names the responder's key, pattern id sent)
    let cases = [(&keyed, &cfg(), false, 0u8), (&keyed, &cfg(), true, 2), (&cfg(), &keyed, false, 1)];
    for (responder, initiator, ik, pattern) in cases {
        for kind in [Datagram, Stream] {
            let what = format!("pattern {pattern} over {kind:?}");
            let (mut net, a, h) = setup(Datagram, responder.clone());
            let c = net.add(initiator.clone());
            let pa = net.id(a);
            let conn = net.open(c, a, kind, ik.then_some(pa));
            let p = if kind == Stream { 2 } else { 0 };
            let (t, init) = net.transmits(c).remove(0);
            assert_eq!(init[p + 2], pattern, "{what}");
            net.deliver(c, &t, &init);
            let out = net.transmits(a);
            assert_eq!(out.len(), 1, "{what}: one Reject");
            let reject =
                [&[0x06, RejectCode::Pattern as u8, WIRE_VERSION, WIRE_VERSION][..], &init[p + 4..p + 8]].concat();
            assert_eq!(out[0].1[p..], reject[..], "{what}: Reject(Pattern) to the initiator's index");
            net.deliver(a, &out[0].0, &out[0].1);
            net.pump();
            let pm = Error::PatternMismatch;
            assert_eq!(net.errors, vec![(a, pm), (c, pm)], "{what}");
            assert_eq!(net.disconnected(c, Some(conn)), Some((None, false, DisconnectReason::Error(pm))), "{what}");
            assert_eq!(net.disconnected(a, None), Some((None, false, DisconnectReason::Error(pm))), "{what}");
            assert_eq!((net.nodes[a].stats().half_open, net.nodes[c].stats().sessions), (0, 0), "{what}");
            net.assert_healthy(a, h);
        }
    }
}

#[test]
fn datagram_above_max_datagram_is_refused() {
    let (mut net, a, h) = setup(Datagram, cfg());
    let c = net.add(cfg());
    let max = cfg().max_datagram;
    // Exactly max_datagram bytes passes the size check: this one fails for what it is.
    let mut transport = vec![0u8; max];
    transport[0] = 0x04;
    assert_eq!(net.inject(a, net.addrs[h], &transport), Err(Error::UnexpectedRecord));
    // One byte more is refused by size, before parsing: also past the old bound (the rx
    // region, max_frame + 2 = 2050 bytes here), for a genuine Init grown too long and for
    // a transport record from a connected peer's address.
    let mut init = net.capture_init(c, a, Datagram, None);
    let dropped = net.nodes[a].stats().records_dropped;
    let lens = [max + 1, cfg().max_frame + 2, cfg().max_frame + 3, 70_000];
    for len in lens {
        init.resize(len, 0);
        transport.resize(len, 0);
        let err = Error::Wire(WireError::FrameTooLarge { len, max });
        assert_eq!(net.inject(a, fake_addr(2), &init), Err(err), "len {len}");
        assert_eq!(net.inject(a, net.addrs[h], &transport), Err(err), "len {len}");
    }
    assert_eq!(net.nodes[a].stats().records_dropped, dropped + 2 * lens.len() as u64);
    assert_eq!(net.nodes[a].stats().half_open, 0);
    assert!(net.transmits(a).is_empty(), "an oversize datagram was answered");
    net.assert_healthy(a, h);
}

/// `n` times `c`.
fn chars(c: char, n: usize) -> String {
    std::iter::repeat(c).take(n).collect()
}

/// A Hello with every field at its bound: the largest Resp a responder can send.
fn full_hello() -> Hello {
    let mut hello = Hello::named(&chars('n', NAME_MAX)).unwrap();
    for i in 0..CAPABILITIES_MAX {
        hello = hello.with_capability(&chars((b'a' + i as u8) as char, CAPABILITY_LEN_MAX)).unwrap();
    }
    hello.location = bounded(&chars('l', LOCATION_MAX)).unwrap();
    for i in 0..RESOURCES_MAX {
        hello.resources.push((bounded(&chars((b'r' + i as u8) as char, KEY_LEN_MAX)).unwrap(), u32::MAX)).unwrap();
    }
    for i in 0..METADATA_MAX {
        let kv = (bounded(&chars((b'k' + i as u8) as char, KEY_LEN_MAX)).unwrap(), bounded(&chars('v', 64)).unwrap());
        hello.metadata.push(kv).unwrap();
    }
    hello
}

/// The encoded length of node `i`'s Hello (as it sends it: limits filled in).
fn hello_len(net: &Net, i: usize) -> usize {
    let mut buf = [0u8; HELLO_MAX_LEN];
    net.nodes[i].config().hello.encode(&mut buf).unwrap()
}

/// Bytes node `a` sends to `to`: drained now, plus what reached `stray` so far (taken).
fn bytes_sent_to(net: &mut Net, a: usize, to: SocketAddr) -> usize {
    let now: usize = net.transmits(a).iter().inspect(|(t, _)| assert_eq!(t.addr, to)).map(|(_, b)| b.len()).sum();
    let stray: usize = net.stray.iter().filter(|(f, t, _)| *f == a && t.addr == to).map(|(_, _, b)| b.len()).sum();
    net.stray.clear();
    now + stray
}

#[test]
fn resp_to_an_unverified_address_is_bounded() {
    // QUIC's rule (RFC 9000 §8.1): before a datagram peer's address is verified, the
    // responder sends at most AMPLIFICATION_FACTOR (3) times the bytes it received from it.
    // A spoofer re-sends one captured XX Init from a victim's address; the responder never
    // gets Final, so the address is never verified. Whatever the Hello and the Init size,
    // out <= 3 x in holds after every Init and after the handshake timeout.
    let big = Hello::named("gateway-eu-west-1").unwrap().with_capability("relay").unwrap();
    let hellos = [Hello::default(), big.with_capability("store").unwrap(), full_hello()];
    for hello in hellos {
        // Unpadded (the 44-byte stream form: an old or hostile client; refused unanswered)
        // and padded Inits.
        for kind in [Stream, Datagram] {
            let (mut net, a, _h) = setup(Datagram, cfg().with(|c| c.hello = hello.clone()));
            let c = net.add(cfg());
            let init = net.capture_init(c, a, kind, None);
            assert_eq!(init.len(), if kind == Stream { 12 + 32 } else { DATAGRAM_INIT_MIN });
            let resp_len = 12 + 32 + 48 + hello_len(&net, a) + 16;
            let what = format!("{}-byte Init, {resp_len}-byte Resp", init.len());
            let victim = fake_addr(7);
            let (mut received, mut sent) = (0, 0);
            for k in 0..10 {
                // An Init below the padded minimum is dropped unanswered (PROTOCOL.md §5.1).
                let want = match kind {
                    Stream => Err(Error::Wire(WireError::Truncated { needed: DATAGRAM_INIT_MIN, got: init.len() })),
                    Datagram => Ok(()),
                };
                assert_eq!(net.inject(a, victim, &init), want, "{what}");
                received += init.len();
                let out = bytes_sent_to(&mut net, a, victim);
                assert!(out == 0 || out == resp_len, "{what}: {out} bytes for one Init");
                sent += out;
                assert!(sent <= AMPLIFICATION_FACTOR * received, "{what}: {received} bytes in, {sent} out");
                if k == 0 && kind == Datagram {
                    // The padding is there to buy the Resp at once, even the largest one.
                    assert_eq!(out, resp_len, "{what}: a padded Init went unanswered");
                }
                if k == 0 && resp_len > AMPLIFICATION_FACTOR * init.len() {
                    assert_eq!(out, 0, "{what}: answered beyond the budget");
                }
            }
            // Nothing goes out of the responder's own accord before the session expires.
            net.advance(cfg().handshake_timeout + Duration::from_secs(1));
            sent += bytes_sent_to(&mut net, a, victim);
            assert!(sent <= AMPLIFICATION_FACTOR * received, "{what}: {received} bytes in, {sent} out at timeout");
            assert_eq!(net.nodes[a].stats().half_open, 0);
        }
    }
}

#[test]
fn datagram_handshake_completes_at_30_percent_resp_loss() {
    // A lost Resp costs the initiator a retransmitted Init, which buys the responder the
    // budget for a retransmitted Resp (XX: the same Resp from the half-open session; IK:
    // the stored Resp of the established, unconfirmed session).
    let mut net = Net::new();
    let a = net.add(cfg());
    net.resp_loss = Some((ChaCha20Rng::seed_from_u64(3), 30));
    let pa = net.id(a);
    // Whether an XX (0) and an IK (1) handshake lost at least one Resp and still completed.
    let mut hit = [false; 2];
    for i in 0..12 {
        let c = net.add(cfg());
        let expected = (i % 2 == 1).then_some(pa);
        let before = net.resps_dropped;
        let conn = net.open(c, a, Datagram, expected);
        net.advance(cfg().handshake_timeout / 2);
        let pc = net.id(c);
        assert!(net.take(c, |e| *e == Ev::Connected { conn, peer: pa }), "{i}: {:?}", net.events[c]);
        assert!(net.take(a, |e| matches!(e, Ev::Connected { peer, .. } if *peer == pc)), "{i}: {:?}", net.events[a]);
        net.assert_healthy(a, c);
        hit[i % 2] |= net.resps_dropped > before;
    }
    assert_eq!(hit, [true, true], "the loss never hit a handshake of one pattern");
    // An unconfirmed IK responder sends nothing but its Resp, so no side ever receives a
    // record it cannot use yet.
    assert!(net.errors.is_empty(), "a node refused something: {:?}", net.errors);
}

#[test]
fn unconfirmed_ik_responder_stays_within_the_budget() {
    // IK message 1 can be replayed: a captured IK Init, sent once from a victim's address.
    // The responder is Established at once but unconfirmed (the victim never sends a
    // transport record): after its Resp it must send nothing of its own (no periodic
    // pings) until the handshake timeout ends it, and its timer must keep moving (`advance`
    // fails if poll_timeout stays put after handle_timeout).
    let mut hello = Hello::named(&chars('n', NAME_MAX)).unwrap();
    for i in 0..CAPABILITIES_MAX {
        hello = hello.with_capability(&chars((b'a' + i as u8) as char, CAPABILITY_LEN_MAX)).unwrap();
    }
    let (mut net, a, _h) = setup(Datagram, cfg().with(|c| c.hello = hello));
    let c = net.add(cfg());
    let pa = net.id(a);
    let init = net.capture_init(c, a, Datagram, Some(pa));
    assert_eq!((init[2], init.len()), (2, DATAGRAM_INIT_MIN), "a padded IK Init");
    let victim = fake_addr(7);
    assert_eq!(net.inject(a, victim, &init), Ok(()));
    let resp = bytes_sent_to(&mut net, a, victim);
    let budget = AMPLIFICATION_FACTOR * init.len();
    assert!(resp > 0 && resp <= budget, "the Resp ({resp} bytes) fits the budget ({budget})");
    assert_eq!(net.nodes[a].stats().sessions, 2, "the healthy peer's session and the replayed one");
    net.advance(cfg().handshake_timeout + Duration::from_secs(1));
    assert_eq!(net.nodes[a].stats().sessions, 1, "the replayed session outlived the handshake timeout");
    let later = bytes_sent_to(&mut net, a, victim);
    assert!(resp + later <= budget, "{} bytes in, {resp} + {later} bytes out to an unverified address", init.len());
}

#[test]
fn ik_with_a_large_responder_hello_connects_in_one_round_trip() {
    // An IK Resp carries the responder's Hello, up to HANDSHAKE_RECORD_MAX bytes. The IK
    // Init is padded to DATAGRAM_INIT_MIN on datagrams, so even the largest Resp fits the 3x
    // budget the first Init buys: the handshake needs no retransmission.
    let (mut net, a, _h) = setup(Datagram, cfg().with(|c| c.hello = full_hello()));
    let c = net.add(cfg());
    let (pa, pc) = (net.id(a), net.id(c));
    let init = net.capture_init(c, a, Datagram, Some(pa));
    assert_eq!((init[2], init.len()), (2, DATAGRAM_INIT_MIN), "a padded IK Init");
    // Without the padding (header, e, encrypted s, encrypted Hello) the Resp would not fit.
    let resp_len = 12 + 32 + 48 + hello_len(&net, a) + 16;
    assert!(resp_len > AMPLIFICATION_FACTOR * (12 + 32 + 48 + hello_len(&net, c) + 16), "{resp_len}-byte Resp");
    let conn = net.open(c, a, Datagram, Some(pa));
    net.pump(); // no time passes: no retransmission can help
    assert!(net.take(c, |e| *e == Ev::Connected { conn, peer: pa }), "initiator: {:?}", net.events[c]);
    assert!(net.take(a, |e| matches!(e, Ev::Connected { peer, .. } if *peer == pc)), "responder: {:?}", net.events[a]);
}
