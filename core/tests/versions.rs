//! Forward compatibility (PROTOCOL.md §3, §8.6) and the handshake rules of version 3:
//! - an old node (versions 3..=3) and a new one (3..=4, with a Hello extension the old one
//!   does not know) connect over streams and datagrams, in both roles, XX and IK;
//! - nodes with no common version fail with `VersionMismatch` carrying both ranges, on both
//!   sides and both transports;
//! - the handshake hash is the same at both ends and differs between sessions;
//! - a datagram Init shorter than INIT_MIN_DATAGRAM is dropped unanswered and counted;
//! - an authenticated empty plaintext is answered `Error { Malformed }`, dropped and
//!   counted, and the session goes on, on both transports (§8.3).

use std::net::SocketAddr;

use meshlink_core::noise::symmetric::hash;
use meshlink_core::noise::{CipherState, HandshakeParams, HandshakeState, Pattern, Role, TAG_LEN};
use meshlink_core::session::{DATAGRAM_INIT_MIN, INIT_MIN_DATAGRAM};
use meshlink_core::wire::{ErrorCode, Header, Hello, Packet, RejectCode, VersionRange, WireError, WIRE_VERSION};
use meshlink_core::{Config, ConnId, DisconnectReason, Error, Event, Instant, Keypair, PeerId, TransportKind};
use TransportKind::{Datagram, Stream};

type N = meshlink_core::HeapNode;
const NOW: Instant = Instant::from_millis(1_000);
/// An extension type from the protocol range that version 3 does not define: what a newer
/// node would add.
const FUTURE_EXT: u8 = 0x10;

fn cfg(name: &str, min: u8, max: u8) -> Config {
    Config::default().with(|c| {
        c.hello = Hello::named(name).unwrap();
        c.max_frame = 2048;
        c.max_message = 4096;
        c.send_queue = 16384;
        c.min_version = min;
        c.max_version = max;
    })
}

fn old() -> Config {
    cfg("old", 3, 3)
}

fn new() -> Config {
    let mut c = cfg("new", 3, 4);
    c.hello = c.hello.with_extension(FUTURE_EXT, b"a field from the future").unwrap();
    c
}

fn node(c: Config, secret: u8) -> N {
    N::with_capacity(c, Keypair::from_secret([secret; 32]), [secret.wrapping_add(1); 32], 4).unwrap()
}

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Connected(ConnId),
    Message(Vec<u8>),
    Disconnected(DisconnectReason),
}

/// Two nodes back to back; every transmit is delivered at once.
struct Pair {
    n: [N; 2],
    addr: [SocketAddr; 2],
    conns: [Option<ConnId>; 2],
    kind: TransportKind,
    events: [Vec<Ev>; 2],
    /// What each node's handle_* returned as an error.
    errors: [Vec<Error>; 2],
}

impl Pair {
    fn connect(a: Config, b: Config, kind: TransportKind, ik: bool) -> Pair {
        let mut n = [node(a, 0x11), node(b, 0x22)];
        let addr: [SocketAddr; 2] = ["192.0.2.1:1000".parse().unwrap(), "192.0.2.2:2000".parse().unwrap()];
        let expected = ik.then(|| n[1].peer_id());
        let c0 = n[0].connect(NOW, kind, addr[1], expected).unwrap();
        let c1 = (kind == Stream).then(|| n[1].accept(NOW, addr[0]).unwrap());
        let mut p =
            Pair { n, addr, conns: [Some(c0), c1], kind, events: Default::default(), errors: Default::default() };
        p.pump();
        p
    }

    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            for side in 0..2 {
                let mut buf = vec![0u8; 8192];
                while let Some(t) = self.n[side].poll_transmit(NOW, &mut buf) {
                    moved = true;
                    let to = 1 - side;
                    let mut rest = buf[..t.len].to_vec();
                    while !rest.is_empty() {
                        let r = match self.kind {
                            Datagram => self.n[to].handle_datagram(NOW, self.addr[side], &rest).map(|_| rest.len()),
                            Stream => match self.conns[to] {
                                Some(c) => self.n[to].handle_stream(c, NOW, &rest),
                                None => Ok(rest.len()),
                            },
                        };
                        self.drain(to);
                        match r {
                            Ok(used) => rest.drain(..used),
                            Err(e) => {
                                self.errors[to].push(e);
                                rest.drain(..)
                            }
                        };
                    }
                }
            }
            // A session can end once its last record went out (a Reject).
            self.drain(0);
            self.drain(1);
            if !moved {
                return;
            }
        }
        panic!("livelock");
    }

    fn drain(&mut self, i: usize) {
        while let Some(e) = self.n[i].poll_event() {
            let ev = match e {
                Event::Connected { conn, .. } => Ev::Connected(conn),
                Event::Message { data, .. } => Ev::Message(data.to_vec()),
                Event::Disconnected { reason, .. } => Ev::Disconnected(reason),
                _ => continue,
            };
            self.events[i].push(ev);
        }
    }

    fn conn(&self, i: usize) -> ConnId {
        self.events[i]
            .iter()
            .find_map(|e| match e {
                Ev::Connected(c) => Some(*c),
                _ => None,
            })
            .unwrap_or_else(|| panic!("node {i} not connected: {:?} {:?}", self.events[i], self.errors[i]))
    }

    fn id(&self, i: usize) -> PeerId {
        self.n[i].peer_id()
    }
}

#[test]
fn an_old_node_and_a_new_node_with_an_extra_hello_field_connect() {
    for kind in [Stream, Datagram] {
        for (a, b, names) in [(old(), new(), ["old", "new"]), (new(), old(), ["new", "old"])] {
            for ik in [false, true] {
                let what = format!("{} -> {} over {kind:?}, ik {ik}", names[0], names[1]);
                let mut p = Pair::connect(a.clone(), b.clone(), kind, ik);
                let conns = [p.conn(0), p.conn(1)];
                assert!(p.errors.iter().all(|e| e.is_empty()), "{what}: {:?}", p.errors);
                // Each sees the other's Hello; the old node keeps the extension it does not know.
                for i in 0..2 {
                    let theirs = p.n[i].hello(&p.id(1 - i)).unwrap().clone();
                    assert_eq!(theirs.name.as_str(), names[1 - i], "{what}");
                    let ext = theirs.extensions.get(FUTURE_EXT);
                    let want = (names[1 - i] == "new").then_some(&b"a field from the future"[..]);
                    assert_eq!(ext, want, "{what}: node {i} sees the extension");
                }
                // The initiator learns the chosen version from the responder's Hello: the
                // highest both speak, 2.
                assert_eq!(p.n[0].hello(&p.id(1)).unwrap().version, 3, "{what}");
                // Messages flow both ways.
                p.n[0].send(NOW, &p.id(1), b"to the responder").unwrap();
                p.n[1].send(NOW, &p.id(0), b"to the initiator").unwrap();
                p.pump();
                assert!(p.events[1].contains(&Ev::Message(b"to the responder".to_vec())), "{what}");
                assert!(p.events[0].contains(&Ev::Message(b"to the initiator".to_vec())), "{what}");
                let h = [p.n[0].handshake_hash(conns[0]), p.n[1].handshake_hash(conns[1])];
                assert!(h[0].is_some() && h[0] == h[1], "{what}: handshake hashes {h:?}");
            }
        }
    }
}

#[test]
fn two_new_nodes_agree_on_the_highest_common_version() {
    for kind in [Stream, Datagram] {
        let p = Pair::connect(new(), cfg("newer", 4, 5), kind, false);
        let _ = (p.conn(0), p.conn(1));
        assert_eq!(p.n[0].hello(&p.id(1)).unwrap().version, 4, "{kind:?}");
    }
}

#[test]
fn versions_without_overlap_fail_with_a_typed_error_on_both_sides() {
    let (two, three) = (VersionRange::only(3), VersionRange { min: 4, max: 5 });
    for kind in [Stream, Datagram] {
        for (a, b, ra, rb) in [(old(), cfg("future", 4, 5), two, three), (cfg("future", 4, 5), old(), three, two)] {
            let what = format!("{ra} -> {rb} over {kind:?}");
            let p = Pair::connect(a, b, kind, false);
            let at_initiator = Error::VersionMismatch { ours: ra, theirs: rb };
            let at_responder = Error::VersionMismatch { ours: rb, theirs: ra };
            assert_eq!(p.events[0], vec![Ev::Disconnected(DisconnectReason::Error(at_initiator))], "{what}");
            assert_eq!(p.errors[0], vec![at_initiator], "{what}");
            assert_eq!(p.errors[1], vec![at_responder], "{what}");
            match kind {
                // The stream session the responder accepted ends with the same error.
                Stream => {
                    assert_eq!(p.events[1], vec![Ev::Disconnected(DisconnectReason::Error(at_responder))], "{what}")
                }
                // A datagram responder keeps no state for it at all.
                Datagram => assert!(p.events[1].is_empty() && p.n[1].stats().sessions == 0, "{what}"),
            }
        }
    }
}

#[test]
fn a_version_range_is_validated() {
    for (min, max) in [(0, 2), (3, 2)] {
        let c = cfg("bad", min, max);
        let r = N::with_capacity(c, Keypair::from_secret([1; 32]), [2; 32], 4);
        assert!(matches!(r, Err(Error::InvalidConfig(e)) if e.field == "min_version"), "{min}..={max}");
    }
}

#[test]
fn both_ends_see_the_same_handshake_hash_and_sessions_differ() {
    for kind in [Stream, Datagram] {
        let mut hashes = Vec::new();
        for ik in [false, false, true] {
            let p = Pair::connect(old(), old(), kind, ik);
            let (a, b) = (p.n[0].handshake_hash(p.conn(0)), p.n[1].handshake_hash(p.conn(1)));
            assert!(a.is_some() && a == b, "{kind:?}: {a:?} / {b:?}");
            hashes.push(a.unwrap());
        }
        // Every Pair is seeded alike, so two XX runs draw the same ephemerals and must give
        // the same hash (it is a function of the transcript), while IK gives another.
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), 2, "{kind:?}: two XX runs of identical seeds match; IK differs");
        // Two sessions of one node pair, one after the other, differ.
        let mut p = Pair::connect(old(), old(), kind, false);
        let first_conn = p.conn(0);
        let first = p.n[0].handshake_hash(first_conn).unwrap();
        let id1 = p.id(1);
        p.n[0].disconnect(NOW, &id1).unwrap();
        p.pump();
        p.events = Default::default();
        let c0 = p.n[0].connect(NOW, kind, p.addr[1], None).unwrap();
        p.conns[0] = Some(c0);
        if kind == Stream {
            p.conns[1] = Some(p.n[1].accept(NOW, p.addr[0]).unwrap());
        }
        p.pump();
        let second = (p.n[0].handshake_hash(p.conn(0)).unwrap(), p.n[1].handshake_hash(p.conn(1)).unwrap());
        assert_eq!(second.0, second.1, "{kind:?}");
        assert_ne!(first, second.0, "{kind:?}: a second session with the same peer has a new hash");
        assert_eq!(p.n[0].handshake_hash(first_conn), None, "{kind:?}: a closed session has none");
    }
}

#[test]
fn the_handshake_hash_is_none_until_established() {
    let mut a = node(old(), 1);
    let b = node(old(), 2);
    let c = a.connect(NOW, Datagram, "192.0.2.9:9".parse().unwrap(), Some(b.peer_id())).unwrap();
    assert_eq!(a.handshake_hash(c), None);
}

// =========================================================================== a scripted peer

fn frame(record: &[u8]) -> Vec<u8> {
    [&(record.len() as u16).to_be_bytes()[..], record].concat()
}

/// A peer written from the spec alone: an XX initiator driving `node` (the responder) over
/// `kind`, ending with the transport keys and the responder's index.
struct Scripted {
    node: N,
    conn: Option<ConnId>,
    kind: TransportKind,
    from: SocketAddr,
    send: CipherState,
    recv: CipherState,
    receiver: u32,
    counter: u64,
}

impl Scripted {
    fn handshake(kind: TransportKind) -> Scripted {
        let mut node = node(old(), 0x33);
        let from: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        let id = b"meshlink";
        let prologue = [&b"meshlink"[..], &[WIRE_VERSION, WIRE_VERSION, id.len() as u8], id].concat();
        let tag = u32::from_le_bytes(hash(&[b"meshlink network tag", id])[..4].try_into().unwrap());
        let params = HandshakeParams {
            pattern: Pattern::Xx,
            role: Role::Initiator,
            prologue: &prologue,
            local_static: [0x44; 32],
            remote_static: None,
            psk: None,
        };
        let mut hs = HandshakeState::with_ephemeral(params, [0x55; 32]).unwrap();
        let conn = (kind == Stream).then(|| node.accept(NOW, from).unwrap());
        let mut s = Scripted {
            node,
            conn,
            kind,
            from,
            send: CipherState::new([0; 32]),
            recv: CipherState::new([0; 32]),
            receiver: 0,
            counter: 0,
        };
        let init = Header::Init {
            version: WIRE_VERSION,
            min_version: WIRE_VERSION,
            pattern: 0,
            sender: 0x1234_0001,
            network_tag: tag,
        };
        let pad = if kind == Datagram { INIT_MIN_DATAGRAM - 12 - 32 } else { 0 };
        let mut rec = vec![0u8; 2048];
        let h = init.encode(&mut rec).unwrap();
        let mut n = hs.write_message(&vec![0; pad], &mut rec[h..]).unwrap();
        if kind == Datagram {
            // The mac tail of a datagram Init (PROTOCOL.md §5.12).
            n += meshlink_core::cookie::MACS_LEN;
            let key = meshlink_core::cookie::mac1_key(b"meshlink");
            meshlink_core::cookie::seal_init(&key, None, &mut rec[..h + n]);
        }
        s.feed(&rec[..h + n]).unwrap();
        let resp = s.take_records().remove(0);
        let Header::Resp { sender, .. } = Header::parse(&resp).unwrap() else { panic!("not a Resp") };
        s.receiver = sender;
        let mut pl = [0u8; 1024];
        hs.read_message(&resp[12..], &mut pl).unwrap();
        let hello = Hello::default().with(|c| {
            c.version = WIRE_VERSION;
            c.max_frame = 2048;
            c.max_datagram = 1200;
            c.max_message = 4096;
        });
        let mut hb = [0u8; 1024];
        let hl = hello.encode(&mut hb).unwrap();
        let h = Header::Final { receiver: sender }.encode(&mut rec).unwrap();
        let n = hs.write_message(&hb[..hl], &mut rec[h..]).unwrap();
        s.feed(&rec[..h + n]).unwrap();
        assert!(matches!(s.node.poll_event(), Some(Event::Connected { .. })), "the node did not connect");
        let t = hs.into_transport().unwrap();
        (s.send, s.recv) = (t.send, t.recv);
        s
    }

    fn feed(&mut self, record: &[u8]) -> Result<(), Error> {
        match self.kind {
            Datagram => self.node.handle_datagram(NOW, self.from, record),
            Stream => self.node.handle_stream(self.conn.unwrap(), NOW, &frame(record)).map(|_| ()),
        }
    }

    /// Every record the node sends now.
    fn take_records(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Some(t) = self.node.poll_transmit(NOW, &mut buf) {
            let mut b = &buf[..t.len];
            if self.kind == Datagram {
                out.push(b.to_vec());
                continue;
            }
            while b.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
                out.push(b[2..2 + len].to_vec());
                b = &b[2 + len..];
            }
        }
        out
    }

    /// Seals `plaintext` (possibly empty) as our next transport record and feeds it.
    fn send_plain(&mut self, plaintext: &[u8]) -> Result<(), Error> {
        let header = Header::Transport { phase: 0, receiver: self.receiver, counter: self.counter };
        let mut rec = vec![0u8; 16 + plaintext.len() + TAG_LEN];
        header.encode(&mut rec).unwrap();
        rec[16..16 + plaintext.len()].copy_from_slice(plaintext);
        let (hdr, body) = rec.split_at_mut(16);
        self.send.encrypt_at(self.counter, hdr, body, plaintext.len()).unwrap();
        self.counter += 1;
        self.feed(&rec)
    }

    /// The plaintexts of every transport record the node sends now.
    fn packets(&mut self) -> Vec<Vec<u8>> {
        self.take_records()
            .into_iter()
            .map(|rec| {
                let Header::Transport { counter, .. } = Header::parse(&rec).unwrap() else { panic!("not transport") };
                let mut body = rec[16..].to_vec();
                let n = body.len();
                let len = self.recv.decrypt_at(counter, &rec[..16], &mut body, n).unwrap();
                body.truncate(len);
                body
            })
            .collect()
    }
}

#[test]
fn an_empty_plaintext_is_answered_malformed_and_the_session_goes_on() {
    let mut malformed = [0u8; 8];
    let n = Packet::Error { code: ErrorCode::Malformed, detail: "" }.encode(&mut malformed).unwrap();
    let malformed = malformed[..n].to_vec();
    for kind in [Stream, Datagram] {
        let mut s = Scripted::handshake(kind);
        let _ = s.packets(); // the responder's establishment Ping
        let dropped = s.node.stats().records_dropped;
        assert_eq!(s.send_plain(&[]), Ok(()), "{kind:?}: an empty plaintext is not a session error");
        assert_eq!(s.packets(), vec![malformed.clone()], "{kind:?}: answered Error {{ Malformed }}");
        assert_eq!(s.node.stats().records_dropped, dropped + 1, "{kind:?}: counted as dropped");
        // Still connected: a Ping is answered.
        s.send_plain(&[1, 7]).unwrap();
        assert_eq!(s.packets(), vec![vec![2, 7]], "{kind:?}: the session goes on");
        assert_eq!(s.node.peers().count(), 1, "{kind:?}");
        assert!(s.node.poll_event().is_none(), "{kind:?}: nothing reported");
    }
}

#[test]
fn a_datagram_init_below_the_minimum_is_dropped_unanswered() {
    // A genuine padded Init from an initiator node, cut by one byte, then whole.
    let mut a = node(old(), 0x61);
    let mut b = node(old(), 0x62);
    let (from, to): (SocketAddr, SocketAddr) = ("192.0.2.1:1000".parse().unwrap(), "192.0.2.2:2000".parse().unwrap());
    a.connect(NOW, Datagram, to, None).unwrap();
    let mut buf = vec![0u8; 2048];
    let t = a.poll_transmit(NOW, &mut buf).unwrap();
    let init = buf[..t.len].to_vec();
    assert_eq!(init.len(), DATAGRAM_INIT_MIN);
    // The stream form, the padded record without its mac tail (§5.12), one byte short.
    for len in [12 + 32, INIT_MIN_DATAGRAM, DATAGRAM_INIT_MIN - 1] {
        let dropped = b.stats().records_dropped;
        let r = b.handle_datagram(NOW, from, &init[..len]);
        assert_eq!(r, Err(Error::Wire(WireError::Truncated { needed: DATAGRAM_INIT_MIN, got: len })));
        assert!(b.poll_transmit(NOW, &mut buf).is_none(), "{len}-byte Init answered");
        assert_eq!(b.stats().records_dropped, dropped + 1);
        assert_eq!(b.stats().sessions, 0);
    }
    // One with a range we do not share (an older node's shorter Init, §3) is refused with
    // an 8-byte Reject(Version) naming our range: smaller than the Init, so no amplification.
    let mut v9 = init[..INIT_MIN_DATAGRAM].to_vec();
    (v9[1], v9[3]) = (9, 9);
    let want = Error::VersionMismatch { ours: VersionRange::only(3), theirs: VersionRange::only(9) };
    assert_eq!(b.handle_datagram(NOW, from, &v9), Err(want));
    let t = b.poll_transmit(NOW, &mut buf).expect("a Reject(Version)");
    assert_eq!(&buf[..4], &[0x06, RejectCode::Version as u8, 3, 3]);
    assert!(t.len == 8 && t.len < v9.len());
    assert_eq!(b.stats().sessions, 0);
    assert_eq!(b.handle_datagram(NOW, from, &init), Ok(()));
    assert!(b.poll_transmit(NOW, &mut buf).is_some(), "the padded Init is answered");
}

// =========================================================================== extension bounds

#[test]
fn hello_extensions_are_bounded_at_their_edges() {
    use meshlink_core::wire::hello::{EXT_LEN_MAX, EXT_MAX};
    // EXT_MAX extensions fit, one more does not.
    let mut h = Hello::default();
    for t in 1..=EXT_MAX as u8 {
        h = h.with_extension(t, b"").unwrap();
    }
    assert_eq!(h.clone().with_extension(0x7f, b""), Err(WireError::TooManyExtensions { limit: EXT_MAX }));
    // A tail of exactly EXT_LEN_MAX bytes fits, one byte more does not.
    let full = Hello::default().with_extension(0x80, &[7; EXT_LEN_MAX - 2]).unwrap();
    assert_eq!(full.extensions.as_bytes().len(), EXT_LEN_MAX);
    let over = Hello::default().with_extension(0x80, &[7; EXT_LEN_MAX - 1]);
    assert_eq!(over, Err(WireError::FieldTooLong { limit: EXT_LEN_MAX }));
    // Type 0 is the terminator; a type appears once.
    assert_eq!(Hello::default().with_extension(0, b"x"), Err(WireError::InvalidExtension));
    let one = Hello::default().with_extension(0x81, b"x").unwrap();
    assert_eq!(one.clone().with_extension(0x81, b"y"), Err(WireError::DuplicateExtension { ty: 0x81 }));
    // Round trip, with and without padding after the tail.
    let mut buf = [0u8; 1024];
    let n = full.encode(&mut buf).unwrap();
    assert_eq!(Hello::decode(&buf[..n]).unwrap(), full);
    assert_eq!(Hello::decode(&buf[..n + 40]).unwrap(), full, "zero padding after the tail");
    buf[n + 39] = 1;
    assert_eq!(Hello::decode(&buf[..n + 40]), Err(WireError::MalformedPacket), "a non-zero byte in the padding");
}

#[test]
fn a_hello_with_extensions_never_exceeds_hello_max_len() {
    use meshlink_core::wire::hello::{bounded, CAPABILITIES_MAX, CAPABILITY_LEN_MAX, NAME_MAX};
    use meshlink_core::wire::HELLO_MAX_LEN;
    // Fields large enough that the tail pushes the Hello over the bound.
    let mut h = Hello::named(&"n".repeat(NAME_MAX)).unwrap();
    for i in 0..CAPABILITIES_MAX {
        h.capabilities
            .push(bounded(&((b'a' + i as u8) as char).to_string().repeat(CAPABILITY_LEN_MAX)).unwrap())
            .unwrap();
    }
    for i in 0..4u8 {
        let key = |c: char| bounded(&format!("{c}{i}").repeat(8)).unwrap();
        h.metadata.push((key('k'), bounded(&"v".repeat(64)).unwrap())).unwrap();
        h.resources.push((key('r'), u32::MAX)).unwrap();
    }
    h.location = bounded(&"l".repeat(32)).unwrap();
    // The limits the node of `cfg` fills in, so that the node sends exactly this Hello.
    (h.version, h.max_frame, h.max_datagram, h.max_message) = (WIRE_VERSION, 2048, 1200, 4096);
    let mut buf = [0u8; 2048];
    let base = h.encode(&mut buf).unwrap();
    let room = HELLO_MAX_LEN - base;
    assert!(room > 2 && room < 128, "the test needs a Hello close to the bound ({base} bytes)");
    // Exactly at the bound: accepted both ways.
    let at = h.clone().with_extension(0x80, &vec![1; room - 2]).unwrap();
    assert_eq!(at.encode(&mut buf), Ok(HELLO_MAX_LEN));
    assert_eq!(Hello::decode(&buf[..HELLO_MAX_LEN]).unwrap(), at);
    // One byte over: refused to encode, and refused on receipt.
    let over = h.with_extension(0x80, &vec![1; room - 1]).unwrap();
    assert_eq!(over.encode(&mut buf), Err(WireError::FieldTooLong { limit: HELLO_MAX_LEN }));
    let mut wire = buf[..HELLO_MAX_LEN].to_vec();
    wire[base + 1] += 1; // lengthen the TLV by the one byte appended below
    wire.push(1);
    assert_eq!(Hello::decode(&wire), Err(WireError::FieldTooLong { limit: HELLO_MAX_LEN }));
    // A node starts with the Hello at the bound, and refuses the one over it (without
    // its own datagram window extension, §8.8, which would not fit beside these).
    // Nor its batching extension (§9.2).
    let c = cfg("x", 3, 3).with(|c| (c.hello, c.datagram_window, c.max_batch) = (at, 0, 1));
    assert!(N::with_capacity(c, Keypair::from_secret([1; 32]), [2; 32], 4).is_ok());
    let c = cfg("x", 3, 3).with(|c| (c.hello, c.datagram_window, c.max_batch) = (over, 0, 1));
    assert!(N::with_capacity(c, Keypair::from_secret([1; 32]), [2; 32], 4).is_err());
}
