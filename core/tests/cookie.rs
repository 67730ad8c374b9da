//! Cookies for datagram Inits (PROTOCOL.md §5.12):
//! - `tests/vectors/cookie.json` against the code (keys, mac1, cookie, reply, mac2);
//! - under load an Init without mac2 gets a Cookie reply (smaller than the Init) and no
//!   session; the initiator then completes the handshake after one cookie round;
//! - a bad mac1 is dropped unanswered and counted;
//! - the threshold: at `cookie_half_open - 1` half-open an Init is admitted without a
//!   cookie, at `cookie_half_open` it needs one;
//! - the secret rotates after 120 s: an old cookie is refused (`BadMac2`) and a fresh
//!   cookie round connects;
//! - stray and forged Cookie replies are dropped without harming the handshake;
//! - the reply queue bound holds under a flood.

use std::net::SocketAddr;
use std::time::Duration;

use meshlink_core::cookie::{self, COOKIE_REPLY_LEN, MACS_LEN};
use meshlink_core::session::DATAGRAM_INIT_MIN;
use meshlink_core::{Config, ConnId, Error, Event, HeapNode, Instant, Keypair, TransportKind};
use serde_json::Value;

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or_else(|| panic!("not hex: {v}"))).unwrap()
}

#[test]
fn vector_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/cookie.json");
    let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(f["description"].as_str().is_some_and(|d| d.len() > 100));
    let vectors = f["vectors"].as_array().unwrap();
    assert!(!vectors.is_empty());
    for v in vectors {
        let id = bytes(&v["network_id"]);
        let k1: [u8; 32] = bytes(&v["mac1_key"]).try_into().unwrap();
        let kr: [u8; 32] = bytes(&v["reply_key"]).try_into().unwrap();
        assert_eq!(cookie::mac1_key(&id), k1);
        assert_eq!(cookie::reply_key(&id), kr);
        let record = bytes(&v["init_record"]);
        assert_eq!(record.len(), DATAGRAM_INIT_MIN - MACS_LEN);
        let mut init = [&record[..], &[0xee; MACS_LEN]].concat();
        cookie::seal_init(&k1, None, &mut init);
        assert_eq!(init, bytes(&v["init_first"]));
        assert_eq!(cookie::mac1_of(&init)[..], bytes(&v["mac1"])[..]);
        assert!(cookie::check_mac1(&k1, &init));
        let secret: [u8; 32] = bytes(&v["secret"]).try_into().unwrap();
        let c: [u8; 16] = bytes(&v["cookie"]).try_into().unwrap();
        let addr: SocketAddr = v["initiator_addr"].as_str().unwrap().parse().unwrap();
        assert_eq!(cookie::address_cookie(&secret, &addr), c);
        let addr6: SocketAddr = v["initiator_addr_v6"].as_str().unwrap().parse().unwrap();
        assert_eq!(cookie::address_cookie(&secret, &addr6)[..], bytes(&v["cookie_v6"])[..]);
        let nonce: [u8; 24] = bytes(&v["nonce"]).try_into().unwrap();
        let sender = u32::from_le_bytes(record[4..8].try_into().unwrap());
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        cookie::seal_reply(&kr, sender, &nonce, &c, cookie::mac1_of(&init), &mut reply);
        assert_eq!(reply[..], bytes(&v["reply"])[..]);
        assert_eq!(cookie::open_reply(&kr, &reply, cookie::mac1_of(&init)), Ok(c));
        // The reply parses as a Cookie record addressed to the Init's sender.
        match meshlink_core::wire::Header::parse(&reply) {
            Ok(meshlink_core::wire::Header::Cookie { receiver, nonce: n, .. }) => {
                assert_eq!((receiver, n), (sender, nonce))
            }
            h => panic!("{h:?}"),
        }
        cookie::seal_init(&k1, Some(&c), &mut init);
        assert_eq!(init, bytes(&v["init_second"]));
        assert_eq!(init[init.len() - 16..], bytes(&v["mac2"])[..]);
        // The reply is smaller than the Init it answers (anti-amplification, §5.6).
        assert!(reply.len() < init.len());
    }
}

// ------------------------------------------------------------------ a small network

const T0: Instant = Instant::from_millis(1_000);

fn cfg() -> Config {
    Config::default().with(|c| {
        c.max_frame = 2048;
        c.max_message = 4096;
        c.send_queue = 16384;
    })
}

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 7000))
}

/// Datagram nodes at `addr(i)`; every transmit is delivered at once unless dropped.
struct Net {
    nodes: Vec<HeapNode>,
    now: Instant,
    /// Datagrams sent (from, to, bytes), in order, for the test to look at.
    log: Vec<(usize, SocketAddr, Vec<u8>)>,
    /// Results of `handle_datagram` at each node (what it refused, typed).
    errors: Vec<(usize, Error)>,
    /// Node indexes whose output is dropped instead of delivered.
    muted: Vec<usize>,
}

impl Net {
    fn new(cfgs: &[Config]) -> Net {
        let nodes = cfgs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let kp = Keypair::from_secret([i as u8 + 1; 32]);
                HeapNode::with_capacity(c.clone(), kp, [0x40 + i as u8; 32], 16).unwrap()
            })
            .collect();
        Net { nodes, now: T0, log: Vec::new(), errors: Vec::new(), muted: Vec::new() }
    }

    fn idx(&self, a: SocketAddr) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| addr(i as u32) == a)
    }

    fn connect(&mut self, from: usize, to: usize) -> ConnId {
        self.nodes[from].connect(self.now, TransportKind::Datagram, addr(to as u32), None).unwrap()
    }

    /// The next transmits of node `i`, without delivering them.
    fn transmits(&mut self, i: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        while let Some(t) = self.nodes[i].poll_transmit(self.now, &mut buf) {
            out.push((t.addr, buf[..t.len].to_vec()));
        }
        out
    }

    fn deliver(&mut self, from: usize, to: SocketAddr, b: &[u8]) -> Result<(), Error> {
        self.log.push((from, to, b.to_vec()));
        let Some(j) = self.idx(to) else { return Ok(()) };
        let r = self.nodes[j].handle_datagram(self.now, addr(from as u32), b);
        if let Err(e) = r {
            self.errors.push((j, e));
        }
        r
    }

    /// Delivers everything until quiet (muted nodes' output is dropped).
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                for (to, b) in self.transmits(i) {
                    moved = true;
                    if self.muted.contains(&i) {
                        self.log.push((i, to, b));
                    } else {
                        let _ = self.deliver(i, to, &b);
                    }
                }
                while self.nodes[i].poll_event().is_some() {}
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs timers and deliveries in 50 ms steps until `t`.
    fn run_until(&mut self, t: Instant) {
        while self.now < t {
            self.now = (self.now + Duration::from_millis(50)).min(t);
            for n in &mut self.nodes {
                n.handle_timeout(self.now);
            }
            self.pump();
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        let pb = self.nodes[b].peer_id();
        self.nodes[a].peers().any(|p| p.peer == pb)
    }
}

fn always_cookie() -> Config {
    cfg().with(|c| c.cookie_half_open = 0)
}

#[test]
fn under_load_an_init_without_mac2_gets_a_cookie_and_no_session() {
    let mut net = Net::new(&[always_cookie(), cfg()]);
    net.connect(1, 0);
    let mut out = net.transmits(1);
    assert_eq!(out.len(), 1);
    let (to, init) = out.remove(0);
    assert_eq!(init.len(), DATAGRAM_INIT_MIN, "a padded Init and its mac tail");
    assert_eq!(init[init.len() - 16..], [0; 16], "no cookie yet: mac2 is zeros");
    assert_eq!(net.deliver(1, to, &init), Err(Error::CookieRequired));
    let st = net.nodes[0].stats();
    assert_eq!((st.sessions, st.half_open, st.cookies_sent, st.bad_mac2, st.inits_admitted), (0, 0, 1, 0, 0));
    assert_eq!(st.records_dropped, 1);
    let mut replies = net.transmits(0);
    assert_eq!(replies.len(), 1, "exactly one Cookie reply");
    let (dst, reply) = replies.remove(0);
    assert_eq!(dst, addr(1));
    assert_eq!(reply.len(), COOKIE_REPLY_LEN);
    assert!(reply.len() < init.len(), "the reply never amplifies");
    assert_eq!((reply[0], &reply[4..8]), (0x07, &init[4..8]), "a Cookie record to the Init's sender index");
    // The same Init again (a replay) still gets no session.
    assert_eq!(net.deliver(1, to, &init), Err(Error::CookieRequired));
    assert_eq!(net.nodes[0].stats().sessions, 0);
}

#[test]
fn the_initiator_completes_the_handshake_after_the_cookie_round() {
    let mut net = Net::new(&[always_cookie(), cfg()]);
    net.connect(1, 0);
    net.pump();
    assert!(net.connected(0, 1) && net.connected(1, 0));
    let st = net.nodes[0].stats();
    assert_eq!((st.cookies_sent, st.inits_admitted, st.bad_mac1, st.bad_mac2), (1, 1, 0, 0));
    // Init (no mac2), Cookie, Init (mac2), Resp, ...: the second Init keeps the first's
    // Noise bytes and mac1, only mac2 changed.
    let inits: Vec<&Vec<u8>> = net.log.iter().filter(|(f, _, b)| *f == 1 && b[0] == 0x01).map(|(_, _, b)| b).collect();
    assert_eq!(inits.len(), 2);
    let n = inits[0].len() - 16;
    assert_eq!(inits[0][..n], inits[1][..n]);
    assert_ne!(inits[1][n..], [0; 16]);
    assert!(net.errors.iter().all(|(_, e)| *e == Error::CookieRequired), "{:?}", net.errors);
    // Messages flow.
    let p0 = net.nodes[0].peer_id();
    net.nodes[1].send(net.now, &p0, b"after the cookie").unwrap();
    net.pump();
    assert_eq!(net.errors.len(), 1);
}

#[test]
fn a_bad_mac1_is_dropped_unanswered() {
    let mut net = Net::new(&[cfg(), cfg()]);
    net.connect(1, 0);
    let (to, init) = net.transmits(1).remove(0);
    // A flipped bit in mac1, in the Noise message, in the padding: all fail mac1.
    for at in [init.len() - MACS_LEN, 12, 200] {
        let mut bad = init.clone();
        bad[at] ^= 1;
        assert_eq!(net.deliver(1, to, &bad), Err(Error::BadMac1), "flip at {at}");
    }
    let st = net.nodes[0].stats();
    assert_eq!((st.bad_mac1, st.sessions, st.records_dropped, st.cookies_sent, st.rejects_sent), (3, 0, 3, 0, 0));
    assert!(net.transmits(0).is_empty(), "a bad mac1 was answered");
    // mac2 is not checked when the node is not under load: the genuine Init connects.
    let mut odd = init.clone();
    let n = odd.len();
    odd[n - 1] ^= 1;
    assert_eq!(net.deliver(1, to, &odd), Ok(()));
    net.pump();
    assert!(net.connected(1, 0));
    assert_eq!(net.nodes[0].stats().bad_mac2, 0);
}

#[test]
fn cookies_start_at_exactly_cookie_half_open() {
    let limit = 3;
    let victim = cfg().with(|c| c.cookie_half_open = limit);
    let mut cfgs = vec![victim];
    cfgs.extend((0..=limit + 1).map(|_| cfg()));
    let mut net = Net::new(&cfgs);
    // `limit - 1` inbound half-open handshakes (their Resps are never answered).
    for i in 1..limit {
        net.muted.push(i);
        net.connect(i, 0);
        let (to, init) = net.transmits(i).remove(0);
        assert_eq!(net.deliver(i, to, &init), Ok(()));
    }
    assert_eq!(net.nodes[0].stats().half_open, limit - 1);
    // At limit - 1 a new Init is admitted without a cookie...
    let i = limit;
    net.muted.push(i);
    net.connect(i, 0);
    let (to, init) = net.transmits(i).remove(0);
    assert_eq!(net.deliver(i, to, &init), Ok(()), "admitted at cookie_half_open - 1");
    assert_eq!(net.nodes[0].stats().half_open, limit);
    assert_eq!(net.nodes[0].stats().cookies_sent, 0);
    // ...at the limit the next one needs a cookie, and gets in with it.
    let i = limit + 1;
    net.connect(i, 0);
    let (to, init) = net.transmits(i).remove(0);
    assert_eq!(net.deliver(i, to, &init), Err(Error::CookieRequired), "cookie required at cookie_half_open");
    assert_eq!(net.nodes[0].stats().half_open, limit);
    net.pump();
    assert!(net.connected(i, 0) && net.connected(0, i));
    let st = net.nodes[0].stats();
    assert_eq!((st.cookies_sent, st.inits_admitted), (1, 1));
    // Once the silent handshakes expire the load is gone: a new peer needs no cookie.
    let expire = net.now + cfg().handshake_timeout + Duration::from_secs(1);
    net.run_until(expire);
    assert_eq!(net.nodes[0].stats().half_open, 0);
    let i = limit + 2;
    net.connect(i, 0);
    let (to, init) = net.transmits(i).remove(0);
    assert_eq!(net.deliver(i, to, &init), Ok(()), "no load, no cookie");
    net.pump();
    assert!(net.connected(i, 0));
    assert_eq!(net.nodes[0].stats().cookies_sent, 1);
}

#[test]
fn secret_rotation_invalidates_an_old_cookie_and_a_fresh_round_works() {
    let mut net = Net::new(&[always_cookie(), cfg(), cfg()]);
    // Node 2 makes the responder draw its secret at T0 (and goes away).
    net.connect(2, 0);
    let (to, init) = net.transmits(2).remove(0);
    assert_eq!(net.deliver(2, to, &init), Err(Error::CookieRequired));
    net.transmits(0);
    // 100 s later node 1 connects: it gets a cookie from the same secret, but its Inits
    // with mac2 are lost until the secret is 120 s old.
    net.nodes.truncate(2);
    net.run_until(T0 + Duration::from_secs(100));
    net.connect(1, 0);
    let (to, init) = net.transmits(1).remove(0);
    assert_eq!(net.deliver(1, to, &init), Err(Error::CookieRequired));
    let (back, reply) = net.transmits(0).remove(0);
    assert_eq!(net.nodes[1].handle_datagram(net.now, addr(0), &reply), Ok(()));
    assert_eq!(back, addr(1));
    let lost = net.transmits(1);
    assert_eq!(lost.len(), 1, "the Init goes out again at once with mac2");
    assert_ne!(lost[0].1[lost[0].1.len() - 16..], [0; 16]);
    net.muted.push(1);
    net.run_until(T0 + Duration::from_secs(119));
    net.muted.clear();
    // The next retransmission carries the old cookie (still fresh for the initiator: 115 s):
    // refused as BadMac2, answered with a new cookie, and the handshake then completes.
    net.errors.clear();
    net.run_until(T0 + Duration::from_secs(126));
    assert!(net.connected(1, 0) && net.connected(0, 1), "{:?}", net.errors);
    assert_eq!(net.errors.first(), Some(&(0, Error::BadMac2)), "{:?}", net.errors);
    let st = net.nodes[0].stats();
    assert_eq!((st.bad_mac2, st.inits_admitted, st.cookies_sent), (1, 1, 3));
}

#[test]
fn stray_and_forged_cookie_replies_are_dropped() {
    let mut net = Net::new(&[always_cookie(), cfg()]);
    net.connect(1, 0);
    let (to, init) = net.transmits(1).remove(0);
    assert_eq!(net.deliver(1, to, &init), Err(Error::CookieRequired));
    let (_, reply) = net.transmits(0).remove(0);
    // A forged copy (a flipped tag bit) and one for another index: dropped, counted, and
    // the handshake is untouched.
    let dropped = net.nodes[1].stats().records_dropped;
    let mut forged = reply.clone();
    forged[63] ^= 1;
    assert_eq!(
        net.nodes[1].handle_datagram(net.now, addr(0), &forged),
        Err(Error::Noise(meshlink_core::noise::NoiseError::Decrypt))
    );
    let mut other = reply.clone();
    other[6] ^= 0x40; // high (random) bits of the index
    assert_eq!(net.nodes[1].handle_datagram(net.now, addr(0), &other), Err(Error::UnexpectedRecord));
    assert_eq!(net.nodes[1].stats().records_dropped, dropped + 2);
    assert!(net.transmits(1).is_empty(), "a bad Cookie reply triggered a send");
    assert_eq!(net.nodes[1].stats().half_open, 1);
    // A Cookie reply at a node with no pending Init at all (the responder itself).
    assert_eq!(net.nodes[0].handle_datagram(net.now, addr(1), &reply), Err(Error::UnexpectedRecord));
    // The genuine reply still works.
    assert_eq!(net.nodes[1].handle_datagram(net.now, addr(0), &reply), Ok(()));
    net.pump();
    assert!(net.connected(1, 0));
    // After the handshake, a replayed Cookie reply changes nothing.
    assert_eq!(net.nodes[1].handle_datagram(net.now, addr(0), &reply), Err(Error::UnexpectedRecord));
    assert!(net.transmits(1).is_empty());
}

#[test]
fn a_cookie_round_needs_no_extra_init_when_cookies_repeat() {
    // A second Cookie reply before the retransmission timer does not send a third Init at
    // once: at most one immediate resend per timed send (no Init/Cookie ping-pong).
    let mut net = Net::new(&[always_cookie(), cfg()]);
    net.connect(1, 0);
    let (to, init) = net.transmits(1).remove(0);
    let _ = net.deliver(1, to, &init);
    let _ = net.deliver(1, to, &init);
    let replies = net.transmits(0);
    assert_eq!(replies.len(), 2);
    assert_eq!(net.nodes[1].handle_datagram(net.now, addr(0), &replies[0].1), Ok(()));
    assert_eq!(net.transmits(1).len(), 1);
    assert_eq!(net.nodes[1].handle_datagram(net.now, addr(0), &replies[1].1), Ok(()));
    assert!(net.transmits(1).is_empty(), "a second cookie resent the Init at once");
}

#[test]
fn a_flood_under_load_is_bounded_by_the_reply_queue() {
    // 100 Inits from spoofed addresses before the node is polled: 8 Cookie replies
    // (REPLY_QUEUE, PROTOCOL.md §5.8), no session, no Diffie-Hellman.
    let mut net = Net::new(&[always_cookie(), cfg()]);
    net.connect(1, 0);
    let (_, init) = net.transmits(1).remove(0);
    for i in 0..100u32 {
        let from = SocketAddr::from(([198, 51, 100, (i % 250) as u8], 1000 + i as u16));
        assert_eq!(net.nodes[0].handle_datagram(net.now, from, &init), Err(Error::CookieRequired));
    }
    let st = net.nodes[0].stats();
    assert_eq!((st.sessions, st.half_open, st.cookies_sent), (0, 0, 8));
    let out = net.transmits(0);
    assert_eq!(out.len(), 8);
    assert!(out.iter().all(|(_, b)| b.len() == COOKIE_REPLY_LEN && b[0] == 0x07));
}

#[test]
fn streams_never_use_cookies() {
    // cookie_half_open = 0 requires a cookie of every datagram Init; a stream Init has no
    // mac tail and connects as before.
    let c = always_cookie();
    let mut a = HeapNode::with_capacity(c.clone(), Keypair::from_secret([1; 32]), [1; 32], 4).unwrap();
    let mut b = HeapNode::with_capacity(c, Keypair::from_secret([2; 32]), [2; 32], 4).unwrap();
    let now = T0;
    let ca = a.connect(now, TransportKind::Stream, addr(1), None).unwrap();
    let cb = b.accept(now, addr(0)).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut connected = false;
    for _ in 0..6 {
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            b.handle_stream(cb, now, &buf[..t.len]).unwrap();
        }
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            a.handle_stream(ca, now, &buf[..t.len]).unwrap();
        }
        while let Some(e) = a.poll_event() {
            connected |= matches!(e, Event::Connected { .. });
        }
        while b.poll_event().is_some() {}
    }
    assert!(connected);
    assert_eq!(b.stats().cookies_sent, 0);
}
