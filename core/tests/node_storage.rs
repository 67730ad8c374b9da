//! The node's storage contract, indexes, counters, configuration checks and self-connect
//! refusal (core/src/node.rs module docs; issues 12 and 13).

use std::net::SocketAddr;
use std::time::Duration;

use meshlink_core::node::{BufferPool, Slot, SlotBound};
use meshlink_core::{
    Config, ConfigError, ConnId, DisconnectReason, Error, Event, HeapNode, Instant, Keypair, Node, NodeStats, PeerId,
    TransportKind,
};

fn cfg() -> Config {
    Config::default().with(|c| {
        c.max_message = 2048;
        c.send_queue = 8192;
        c.max_frame = 2048;
    })
}

fn heap(cfg: Config, id: u8, cap: usize) -> HeapNode {
    HeapNode::with_capacity(cfg, Keypair::from_secret([id; 32]), [id ^ 0x33; 32], cap).unwrap()
}

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000))
}

/// Two nodes joined by in-memory streams or datagrams.
struct Pair {
    a: HeapNode,
    b: HeapNode,
    buf: Vec<u8>,
}

impl Pair {
    fn new(a: HeapNode, b: HeapNode) -> Self {
        Pair { a, b, buf: vec![0; 70_000] }
    }

    /// Connects a to b; returns (a's conn, b's conn).
    fn connect(
        &mut self,
        kind: TransportKind,
        now: Instant,
        a_addr: SocketAddr,
        b_addr: SocketAddr,
    ) -> (ConnId, ConnId) {
        let ca = self.a.connect(now, kind, b_addr, None).unwrap();
        let cb = match kind {
            TransportKind::Stream => Some(self.b.accept(now, a_addr).unwrap()),
            TransportKind::Datagram => None,
        };
        let mut cb_seen = cb;
        for _ in 0..6 {
            while let Some(t) = self.a.poll_transmit(now, &mut self.buf) {
                match kind {
                    TransportKind::Stream => {
                        self.b.handle_stream(cb.unwrap(), now, &self.buf[..t.len]).unwrap();
                    }
                    TransportKind::Datagram => {
                        let _ = self.b.handle_datagram(now, a_addr, &self.buf[..t.len]);
                    }
                }
            }
            while let Some(t) = self.b.poll_transmit(now, &mut self.buf) {
                cb_seen = cb_seen.or(t.conn);
                match kind {
                    TransportKind::Stream => {
                        self.a.handle_stream(ca, now, &self.buf[..t.len]).unwrap();
                    }
                    TransportKind::Datagram => {
                        let _ = self.a.handle_datagram(now, b_addr, &self.buf[..t.len]);
                    }
                }
            }
        }
        (ca, cb_seen.unwrap())
    }

    fn drain(&mut self) -> (Vec<String>, Vec<String>) {
        let mut ea = Vec::new();
        while let Some(e) = self.a.poll_event() {
            ea.push(format!("{e:?}"));
        }
        let mut eb = Vec::new();
        while let Some(e) = self.b.poll_event() {
            eb.push(format!("{e:?}"));
        }
        (ea, eb)
    }
}

// ---------------------------------------------------------------- storage

/// Acceptance 3 (issue 12): no large stack temporary, whatever the capacity.
#[test]
fn a_node_with_4096_slots_is_built_on_a_256_kib_stack() {
    let t = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let mut n = heap(
                Config::default().with(|c| {
                    c.max_half_open = 4096;
                    c.max_half_open_per_ip = 4096;
                }),
                1,
                4096,
            );
            assert_eq!(n.capacity(), 4096);
            assert_eq!(n.config().max_peers, 4096);
            // And it works: sessions in slots far apart.
            for i in 0..100 {
                n.accept(Instant::ZERO, addr(i)).unwrap();
            }
            n.stats().sessions
        })
        .unwrap();
    assert_eq!(t.join().unwrap(), 100);
}

#[test]
fn capacity_is_refused_at_zero_and_above_65535_and_accepted_at_the_edges() {
    let kp = || Keypair::from_secret([1; 32]);
    for bad in [0, 65_536] {
        match HeapNode::with_capacity(cfg(), kp(), [0; 32], bad) {
            Err(Error::InvalidConfig(ConfigError { field: "capacity", .. })) => {}
            r => panic!("{bad}: {:?}", r.map(|_| ())),
        }
    }
    assert_eq!(HeapNode::with_capacity(cfg(), kp(), [0; 32], 1).unwrap().capacity(), 1);
}

/// `max_peers` is a run-time limit within the slot table.
#[test]
fn max_peers_limits_sessions_within_the_slot_table() {
    let mut n = heap(
        cfg().with(|c| {
            c.max_peers = 3;
            c.max_half_open = 10;
            c.max_half_open_per_ip = 10;
        }),
        1,
        8,
    );
    for i in 0..3 {
        n.accept(Instant::ZERO, addr(i)).unwrap();
    }
    assert_eq!(n.accept(Instant::ZERO, addr(9)), Err(Error::PeerLimit { limit: 3 }));
}

/// A pool that counts what it lends, to see buffers taken and given back.
#[derive(Default)]
struct Counting {
    out: usize,
    takes: usize,
    limit: usize,
}

impl BufferPool for Counting {
    type Buf = Vec<u8>;
    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        if self.out >= self.limit {
            return None;
        }
        self.out += 1;
        self.takes += 1;
        Some(vec![0; len])
    }
    fn give(&mut self, _buf: Vec<u8>) -> Option<Vec<u8>> {
        self.out -= 1;
        None
    }
}

type CountingNode = Node<Counting, Box<[Slot<Vec<u8>>]>>;

fn counting(id: u8, limit: usize) -> CountingNode {
    let slots: Box<[Slot<Vec<u8>>]> = (0..8).map(|_| Slot::new()).collect();
    Node::new(cfg(), Keypair::from_secret([id; 32]), [id; 32], slots, Counting { limit, ..Counting::default() })
        .unwrap()
}

/// An idle session holds no buffer: it is taken for bytes and given back once empty.
#[test]
fn an_idle_session_gives_its_buffer_back_and_takes_one_on_demand() {
    let now = Instant::from_millis(1);
    let mut a = counting(1, 8);
    let mut b = counting(2, 8);
    let (aa, ba) = (addr(1), addr(2));
    let ca = a.connect(now, TransportKind::Stream, ba, None).unwrap();
    let cb = b.accept(now, aa).unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut pump = |a: &mut CountingNode, b: &mut CountingNode| {
        for _ in 0..4 {
            while let Some(t) = a.poll_transmit(now, &mut buf) {
                b.handle_stream(cb, now, &buf[..t.len]).unwrap();
            }
            while let Some(t) = b.poll_transmit(now, &mut buf) {
                a.handle_stream(ca, now, &buf[..t.len]).unwrap();
            }
        }
    };
    pump(&mut a, &mut b);
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    assert_eq!((a.stats().connected, b.stats().connected), (1, 1));
    assert_eq!((a.pool().out, b.pool().out), (0, 0), "connected and idle: no buffer held");
    // A message takes a buffer at each end; it is held while the message waits in
    // poll_event and given back on the next call that finds the session idle.
    a.send(now, &b.peer_id(), b"hello").unwrap();
    assert_eq!(a.pool().out, 1, "a queued message lives in the buffer");
    pump(&mut a, &mut b);
    assert_eq!(a.pool().out, 0);
    assert_eq!(b.pool().out, 1, "the message waits in b's buffer");
    match b.poll_event() {
        Some(Event::Message { data, .. }) => assert_eq!(data, b"hello"),
        e => panic!("{e:?}"),
    }
    b.handle_timeout(now);
    pump(&mut a, &mut b);
    assert!(b.pool().takes >= 2);
    // Pings keep working with buffers lent and returned around each of them.
    let later = Instant::from_millis(1) + Duration::from_secs(6);
    a.handle_timeout(later);
    b.handle_timeout(later);
    assert_eq!((a.stats().connected, b.stats().connected), (1, 1));
}

/// A pool that runs dry fails only the session that asked, with a typed error. Accepted
/// sockets that have sent nothing hold no buffer at all.
#[test]
fn an_exhausted_pool_fails_only_the_session_that_needed_a_buffer() {
    let mut n = counting(1, 1);
    let now = Instant::ZERO;
    let c1 = n.accept(now, addr(1)).unwrap();
    let c2 = n.accept(now, addr(2)).unwrap();
    assert_eq!(n.pool().out, 0, "silent sockets cost no buffer");
    // Half a frame prefix: c1 now holds bytes, so it holds the only buffer.
    assert_eq!(n.handle_stream(c1, now, &[0]), Ok(1));
    assert_eq!(n.pool().out, 1);
    assert_eq!(n.handle_stream(c2, now, &[0]), Err(Error::NoBuffer));
    match n.poll_event() {
        Some(Event::Disconnected { conn, reason: DisconnectReason::Error(Error::NoBuffer), .. }) => {
            assert_eq!(conn, c2)
        }
        e => panic!("{e:?}"),
    }
    assert!(n.poll_event().is_none());
    assert_eq!(n.stats().sessions, 1, "c1 carries on");
}

/// Firmware: static slots, each keeping its buffer; no allocation after construction.
#[test]
fn slot_bound_buffers_stay_with_their_slots() {
    let c = cfg();
    let len = c.slot_buffer_len();
    let region: &'static mut [u8] = Box::leak(vec![0u8; 2 * len].into_boxed_slice());
    let mut chunks = region.chunks_exact_mut(len);
    let slots: &'static mut [Slot<&'static mut [u8]>] =
        Box::leak(Box::new([Slot::with_buffer(chunks.next().unwrap()), Slot::with_buffer(chunks.next().unwrap())]));
    let mut n = Node::new(c.clone(), Keypair::from_secret([3; 32]), [3; 32], slots, SlotBound::new()).unwrap();
    n.accept(Instant::ZERO, addr(1)).unwrap();
    n.accept(Instant::ZERO, addr(2)).unwrap();
    assert_eq!(n.accept(Instant::ZERO, addr(3)), Err(Error::PeerLimit { limit: 2 }));
    n.close_all(Instant::ZERO);
    while n.poll_event().is_some() {}
    assert_eq!(n.stats().sessions, 0);
    n.accept(Instant::ZERO, addr(4)).expect("the slot and its buffer are reused");
    // A slot without a buffer cannot hold a session under SlotBound.
    let slots: &'static mut [Slot<&'static mut [u8]>] = Box::leak(Box::new([Slot::new()]));
    let mut n = Node::new(c.clone(), Keypair::from_secret([3; 32]), [3; 32], slots, SlotBound::new()).unwrap();
    assert_eq!(n.accept(Instant::ZERO, addr(1)), Err(Error::NoBuffer));
    // A buffer too small for the configuration is refused at construction.
    let small: &'static mut [u8] = Box::leak(vec![0u8; len - 1].into_boxed_slice());
    let slots: &'static mut [Slot<&'static mut [u8]>] = Box::leak(Box::new([Slot::with_buffer(small)]));
    let r = Node::new(c, Keypair::from_secret([3; 32]), [3; 32], slots, SlotBound::new());
    assert_eq!(r.err(), Some(Error::BufferTooSmall { required: len }));
}

// ---------------------------------------------------------------- indexes and timers

/// poll_timeout is the earliest deadline of all sessions, however they were created and
/// closed (the heap agrees with a scan).
#[test]
fn poll_timeout_tracks_the_earliest_session_deadline() {
    let c = cfg().with(|c| {
        c.handshake_timeout = Duration::from_secs(30);
        c.max_half_open = 64;
    });
    let mut n = heap(c, 1, 64);
    assert_eq!(n.poll_timeout(), None);
    let mut conns = Vec::new();
    for i in 0..40u64 {
        let now = Instant::from_millis(1000 + (i * 7919) % 5000);
        conns.push((now, n.accept(now, addr(i as u32)).unwrap()));
    }
    // Inbound stream responders wait for an Init until created + handshake_timeout.
    let earliest = |v: &[(Instant, ConnId)]| v.iter().map(|(t, _)| *t + Duration::from_secs(30)).min();
    // Responder creation uses the node's clock, which never goes backwards.
    let mut clock = Instant::ZERO;
    let mut exp: Vec<(Instant, ConnId)> = conns
        .iter()
        .map(|&(t, c)| {
            clock = clock.max(t);
            (clock, c)
        })
        .collect();
    assert_eq!(n.poll_timeout(), earliest(&exp));
    // Close every third one: the deadline follows.
    let now = Instant::from_millis(6000);
    for (_, c) in exp.iter().step_by(3) {
        n.close(now, *c).unwrap();
    }
    while n.poll_event().is_some() {}
    exp = exp.into_iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, x)| x).collect();
    assert_eq!(n.poll_timeout(), earliest(&exp));
    // handle_timeout at the first deadline ends exactly the sessions due then.
    let due = earliest(&exp).unwrap();
    n.handle_timeout(due);
    let mut gone = 0;
    while let Some(e) = n.poll_event() {
        assert!(matches!(e, Event::Disconnected { reason: DisconnectReason::Error(Error::HandshakeTimeout), .. }));
        gone += 1;
    }
    assert_eq!(gone, exp.iter().filter(|(t, _)| *t + Duration::from_secs(30) <= due).count());
    assert_eq!(n.stats().sessions, exp.len() - gone);
}

/// The PeerId index finds the right session among many.
#[test]
fn send_quality_and_hello_find_each_peer_among_many() {
    let now = Instant::from_millis(1);
    let server_id = 200;
    let mut p = Pair::new(
        heap(
            cfg().with(|c| {
                c.max_half_open = 64;
                c.max_half_open_per_ip = 64;
            }),
            server_id,
            64,
        ),
        heap(cfg(), 1, 4),
    );
    // p.a is the server here; clients connect to it.
    let mut clients: Vec<HeapNode> = (1..=20).map(|i| heap(cfg(), i, 4)).collect();
    let server_addr = addr(10_000);
    let mut buf = vec![0u8; 70_000];
    let mut conns = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let caddr = addr(i as u32 + 1);
        let cc = c.connect(now, TransportKind::Datagram, server_addr, Some(p.a.peer_id())).unwrap();
        for _ in 0..4 {
            while let Some(t) = c.poll_transmit(now, &mut buf) {
                let _ = p.a.handle_datagram(now, caddr, &buf[..t.len]);
            }
            while let Some(t) = p.a.poll_transmit(now, &mut buf) {
                let _ = c.handle_datagram(now, server_addr, &buf[..t.len]);
            }
        }
        conns.push(cc);
    }
    while p.a.poll_event().is_some() {}
    assert_eq!(p.a.stats().connected, 20);
    for c in clients.iter() {
        p.a.send(now, &c.peer_id(), c.peer_id().as_bytes()).unwrap();
        assert!(p.a.quality(&c.peer_id()).is_some());
        assert!(p.a.hello(&c.peer_id()).is_some());
    }
    // Each client gets its own id back.
    let mut sent = Vec::new();
    while let Some(t) = p.a.poll_transmit(now, &mut buf) {
        sent.push((t.addr, buf[..t.len].to_vec()));
    }
    for (to, bytes) in sent {
        let idx = (1..=20u32).position(|k| addr(k) == to).unwrap();
        clients[idx].handle_datagram(now, server_addr, &bytes).unwrap();
    }
    for c in clients.iter_mut() {
        let me = c.peer_id();
        let mut got = None;
        while let Some(e) = c.poll_event() {
            if let Event::Message { data, .. } = e {
                got = Some(data.to_vec());
            }
        }
        assert_eq!(got.as_deref(), Some(me.as_bytes().as_slice()));
    }
    let unknown = PeerId::from_bytes([0xee; 32]);
    assert_eq!(p.a.send(now, &unknown, b"x"), Err(Error::UnknownPeer));
    let _ = p.drain();
}

// ---------------------------------------------------------------- counters

fn assert_monotonic(before: &NodeStats, after: &NodeStats) {
    let f = |s: &NodeStats| {
        [
            s.handshakes_completed,
            s.handshakes_failed,
            s.records_dropped,
            s.rejects_sent,
            s.bytes_in,
            s.bytes_out,
            s.msgs_in,
            s.msgs_out,
        ]
    };
    for (i, (b, a)) in f(before).iter().zip(f(after).iter()).enumerate() {
        assert!(a >= b, "counter {i} went from {b} to {a}: {before:?} -> {after:?}");
    }
}

/// Acceptance 7 (core half): the counters never decrease across connects and disconnects.
#[test]
fn counters_never_decrease_across_connects_and_disconnects() {
    for kind in [TransportKind::Stream, TransportKind::Datagram] {
        let mut p = Pair::new(heap(cfg(), 1, 4), heap(cfg(), 2, 4));
        let mut prev = (p.a.stats(), p.b.stats());
        for round in 0..4u64 {
            let now = Instant::from_secs_for_test(round * 100 + 1);
            let (_ca, _cb) = p.connect(kind, now, addr(1), addr(2));
            let _ = p.drain();
            assert_eq!(p.a.stats().connected, 1, "{kind:?} round {round}");
            for m in 0..5 {
                p.a.send(now, &p.b.peer_id(), &[m; 300]).unwrap();
            }
            p.connect_pump(kind, now);
            let _ = p.drain();
            let mid = (p.a.stats(), p.b.stats());
            assert_monotonic(&prev.0, &mid.0);
            assert_monotonic(&prev.1, &mid.1);
            assert!(mid.0.msgs_out >= 5 * (round + 1) && mid.1.msgs_in >= 5 * (round + 1), "{kind:?} {round} {mid:?}");
            assert!(mid.1.bytes_in > prev.1.bytes_in);
            let b_id = p.b.peer_id();
            p.a.disconnect(now, &b_id).unwrap();
            p.connect_pump(kind, now);
            let _ = p.drain();
            // Datagram sessions on b see the Close; make sure both are gone.
            let later = now + Duration::from_secs(60);
            p.a.handle_timeout(later);
            p.b.handle_timeout(later);
            let _ = p.drain();
            let end = (p.a.stats(), p.b.stats());
            assert_eq!((end.0.sessions, end.1.sessions), (0, 0), "{kind:?} round {round}: {end:?}");
            assert_monotonic(&mid.0, &end.0);
            assert_monotonic(&mid.1, &end.1);
            assert_eq!(end.0.msgs_out, mid.0.msgs_out, "the ended session's counts stay");
            assert_eq!(end.1.bytes_in, mid.1.bytes_in.max(end.1.bytes_in));
            prev = end;
        }
        assert_eq!(prev.0.handshakes_completed, 4);
    }
}

impl Pair {
    fn connect_pump(&mut self, kind: TransportKind, now: Instant) {
        let conn_b = self.b.peers().next().map(|p| p.conn);
        let conn_a = self.a.peers().next().map(|p| p.conn);
        for _ in 0..6 {
            while let Some(t) = self.a.poll_transmit(now, &mut self.buf) {
                match kind {
                    TransportKind::Stream => {
                        if let Some(c) = conn_b.or(t.conn) {
                            feed(&mut self.b, c, now, &self.buf[..t.len]);
                        }
                    }
                    TransportKind::Datagram => {
                        let _ = self.b.handle_datagram(now, addr(1), &self.buf[..t.len]);
                        while self.b.poll_event().is_some() {}
                    }
                }
            }
            while let Some(t) = self.b.poll_transmit(now, &mut self.buf) {
                match kind {
                    TransportKind::Stream => {
                        if let Some(c) = conn_a.or(t.conn) {
                            feed(&mut self.a, c, now, &self.buf[..t.len]);
                        }
                    }
                    TransportKind::Datagram => {
                        let _ = self.a.handle_datagram(now, addr(2), &self.buf[..t.len]);
                        while self.a.poll_event().is_some() {}
                    }
                }
            }
        }
    }
}

/// Feeds stream bytes, draining events whenever a message waits (the module contract).
fn feed(n: &mut HeapNode, c: ConnId, now: Instant, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match n.handle_stream(c, now, bytes) {
            Ok(used) => bytes = &bytes[used..],
            Err(_) => return,
        }
        while n.poll_event().is_some() {}
    }
}

trait ForTest {
    fn from_secs_for_test(s: u64) -> Instant;
}
impl ForTest for Instant {
    fn from_secs_for_test(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }
}

// ---------------------------------------------------------------- config

fn refused(c: Config) -> &'static str {
    match c.validate() {
        Err(ConfigError { field, .. }) => field,
        Ok(()) => panic!("accepted"),
    }
}

#[test]
fn zero_and_absurd_timers_are_refused_naming_the_field() {
    let d = Config::default;
    let ms = Duration::from_millis;
    assert_eq!(refused(d().with(|c| c.ping_interval = Duration::ZERO)), "ping_interval");
    assert_eq!(refused(d().with(|c| c.ping_interval = ms(9))), "ping_interval");
    assert!(d()
        .with(|c| {
            c.ping_interval = ms(10);
            c.dead_peer_timeout = ms(11);
        })
        .validate()
        .is_ok());
    assert_eq!(refused(d().with(|c| c.handshake_retry = Duration::ZERO)), "handshake_retry");
    assert_eq!(refused(d().with(|c| c.handshake_retry = ms(9))), "handshake_retry");
    assert!(d().with(|c| c.handshake_retry = ms(10)).validate().is_ok());
    assert_eq!(refused(d().with(|c| c.pong_timeout = Duration::ZERO)), "pong_timeout");
    assert_eq!(refused(d().with(|c| c.handshake_timeout = Duration::ZERO)), "handshake_timeout");
    // The dead-peer timeout must leave room for a ping: equal is refused, one more is fine.
    let p = d().ping_interval;
    assert_eq!(refused(d().with(|c| c.dead_peer_timeout = p)), "dead_peer_timeout");
    assert!(d().with(|c| c.dead_peer_timeout = p + ms(1)).validate().is_ok());
    assert_eq!(refused(d().with(|c| c.dead_peer_timeout = Duration::ZERO)), "dead_peer_timeout");
    // A day is the most of any timer.
    let day = Duration::from_secs(24 * 3600);
    assert!(d().with(|c| c.handshake_timeout = day).validate().is_ok());
    assert_eq!(refused(d().with(|c| c.handshake_timeout = day + ms(1))), "handshake_timeout");
    assert_eq!(refused(d().with(|c| c.handshake_retry_max = d().handshake_retry - ms(1))), "handshake_retry_max");
    assert_eq!(refused(d().with(|c| c.rekey_after_time = Duration::ZERO)), "rekey_after_time");
    assert_eq!(refused(d().with(|c| c.reject_after_time = d().rekey_after_time + p)), "reject_after_time");
    assert!(d().with(|c| c.reject_after_time = d().rekey_after_time + p + ms(1)).validate().is_ok());
    assert_eq!(refused(d().with(|c| c.rekey_after_messages = 0)), "rekey_after_messages");
}

#[test]
fn zero_and_absurd_limits_are_refused_naming_the_field() {
    let d = Config::default;
    assert_eq!(refused(d().with(|c| c.max_peers = 0)), "max_peers");
    assert_eq!(refused(d().with(|c| c.max_half_open = 0)), "max_half_open");
    assert_eq!(refused(d().with(|c| c.max_half_open_per_ip = 0)), "max_half_open_per_ip");
    assert_eq!(refused(d().with(|c| c.max_frame = 0)), "max_frame");
    assert_eq!(refused(d().with(|c| c.max_frame = 65_536)), "max_frame");
    assert_eq!(refused(d().with(|c| c.max_datagram = 65_508)), "max_datagram");
    assert!(d().with(|c| c.max_datagram = 65_507).validate().is_ok());
    assert_eq!(refused(d().with(|c| c.max_message = 0)), "max_message");
    assert_eq!(refused(d().with(|c| c.send_queue = 0)), "send_queue");
    assert_eq!(refused(d().with(|c| c.threat_threshold = f32::NAN)), "threat_threshold");
    assert_eq!(refused(d().with(|c| c.threat_threshold = 1.01)), "threat_threshold");
    // Node::new checks the same, as a typed error.
    let r = HeapNode::with_capacity(
        d().with(|c| c.ping_interval = Duration::ZERO),
        Keypair::from_secret([1; 32]),
        [0; 32],
        2,
    );
    match r {
        Err(Error::InvalidConfig(ConfigError { field: "ping_interval", .. })) => {}
        r => panic!("{:?}", r.map(|_| ())),
    }
}

#[test]
fn debug_output_redacts_the_network_key_and_the_secret_key() {
    let key = [0xab; 32];
    let c = Config::default().with(|c| c.network_key = Some(key));
    let s = format!("{c:?}");
    assert!(s.contains("network_key: Some(\"<redacted>\")"), "{s}");
    assert!(!s.to_lowercase().contains("ab, ab") && !s.contains("171"), "{s}");
    let kp = Keypair::from_secret([0x5c; 32]);
    let s = format!("{kp:?}");
    assert!(!s.contains("92,") && !s.contains("5c5c"), "{s}");
}

// ---------------------------------------------------------------- self-connect

/// Issue 13 item 6: a node that dials itself gets a typed error and the session ends.
#[test]
fn a_node_that_connects_to_itself_gets_self_connect_on_streams_and_datagrams() {
    for kind in [TransportKind::Stream, TransportKind::Datagram] {
        let mut n = heap(cfg(), 9, 8);
        let me = addr(7);
        let now = Instant::from_millis(1);
        let out = n.connect(now, kind, me, None).unwrap();
        let inbound = (kind == TransportKind::Stream).then(|| n.accept(now, me).unwrap());
        let mut buf = vec![0u8; 70_000];
        for _ in 0..6 {
            while let Some(t) = n.poll_transmit(now, &mut buf) {
                let bytes = buf[..t.len].to_vec();
                match (kind, t.conn) {
                    (TransportKind::Stream, Some(c)) => {
                        let to = if c == out { inbound.unwrap() } else { out };
                        let _ = n.handle_stream(to, now, &bytes);
                    }
                    _ => {
                        let _ = n.handle_datagram(now, me, &bytes);
                    }
                }
            }
        }
        let mut self_connect = 0;
        let mut connected = false;
        while let Some(e) = n.poll_event() {
            match e {
                Event::Disconnected { conn, reason: DisconnectReason::Error(Error::SelfConnect), .. } => {
                    assert_eq!(conn, out, "{kind:?}: the dialling session ends");
                    self_connect += 1;
                }
                Event::Connected { .. } => connected = true,
                _ => {}
            }
        }
        assert_eq!(self_connect, 1, "{kind:?}");
        assert!(!connected, "{kind:?}: the node listed itself");
        assert_eq!(n.stats().connected, 0);
        assert!(n.peers().next().is_none());
        // Naming our own key is refused before anything is sent.
        assert_eq!(n.connect(now, kind, me, Some(n.peer_id())), Err(Error::SelfConnect));
    }
}
