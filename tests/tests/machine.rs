//! The simulator drives any sans-IO machine behind `Machine`, not only the core node:
//! a toy machine here exercises datagrams, streams, timers, restarts and the trace, and a
//! layer wrapping a core node (the shape of the messaging, relay and discovery layers)
//! runs in the same sim. Also: adding a node fails with a typed error, never a panic.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

use meshlink_core::{Config, ConnId, Error, Event, Instant, Keypair, PeerId, TransportKind};
use meshlink_sim::{build_node, AddNodeError, Boot, LinkConfig, Machine, NodeIdx, Outgoing, Sim, SimNode, MAX_NODES};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
enum ToyEvent {
    /// A datagram tick from `from`, with its number.
    Tick { from: SocketAddr, n: u32 },
    /// Bytes that arrived on a stream.
    Stream { conn: ConnId, bytes: Vec<u8> },
    /// The machine is done with this stream (the sim closes the socket).
    Closing(ConnId),
    /// The other side closed the stream.
    Ended(ConnId),
}

/// Ticks a datagram to every target each `TICK`, echoes stream bytes on streams it
/// accepted, and closes a stream when it reads `bye`.
struct Toy {
    boot: Boot,
    targets: Vec<SocketAddr>,
    next_tick: Instant,
    ticks: u32,
    next_conn: u32,
    accepted: Vec<ConnId>,
    /// Stream bytes short of a whole line, per connection (`handle_stream` consumes all).
    partial: BTreeMap<ConnId, Vec<u8>>,
    out: VecDeque<(Outgoing, Vec<u8>)>,
    events: VecDeque<ToyEvent>,
}

impl Toy {
    fn new(boot: &Boot) -> Self {
        Toy {
            boot: *boot,
            targets: Vec::new(),
            next_tick: Instant::ZERO + TICK,
            ticks: 0,
            next_conn: 0,
            accepted: Vec::new(),
            partial: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
    fn open(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }
    fn stream_send(&mut self, conn: ConnId, bytes: &[u8]) {
        self.out.push_back((Outgoing::Stream { conn, len: bytes.len() }, bytes.to_vec()));
    }
}

impl Machine for Toy {
    type Event = ToyEvent;
    type Error = &'static str;
    const MAX_TRANSMIT: usize = 1500;

    fn handle_datagram(&mut self, _: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Self::Error> {
        let n = u32::from_le_bytes(bytes.try_into().map_err(|_| "not a tick")?);
        self.events.push_back(ToyEvent::Tick { from, n });
        Ok(())
    }
    fn accept_stream(&mut self, _: Instant, _: SocketAddr) -> Result<ConnId, Self::Error> {
        let conn = self.open();
        self.accepted.push(conn);
        Ok(conn)
    }
    fn handle_stream(&mut self, conn: ConnId, _: Instant, bytes: &[u8]) -> Result<usize, Self::Error> {
        // Whole lines only, so a stream's segmenting shows nowhere.
        let mut buf = self.partial.remove(&conn).unwrap_or_default();
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|b| *b == b'\n').map(|e| start + e) {
            let line = buf[start..end].to_vec();
            if line == b"bye" {
                self.events.push_back(ToyEvent::Closing(conn));
            } else if self.accepted.contains(&conn) {
                self.stream_send(conn, &buf[start..=end]);
            }
            self.events.push_back(ToyEvent::Stream { conn, bytes: line });
            start = end + 1;
        }
        self.partial.insert(conn, buf[start..].to_vec());
        Ok(bytes.len())
    }
    fn handle_stream_closed(&mut self, conn: ConnId, _: Instant) {
        self.events.push_back(ToyEvent::Ended(conn));
    }
    fn handle_timeout(&mut self, now: Instant) {
        while self.next_tick <= now {
            self.ticks += 1;
            for to in self.targets.clone() {
                self.out.push_back((Outgoing::Datagram { to, len: 4 }, self.ticks.to_le_bytes().to_vec()));
            }
            self.next_tick = self.next_tick + TICK;
        }
    }
    fn poll_transmit(&mut self, _: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        let (t, bytes) = self.out.pop_front()?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Some(t)
    }
    fn poll_event(&mut self) -> Option<ToyEvent> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (!self.targets.is_empty()).then_some(self.next_tick)
    }
    fn closes_stream(event: &ToyEvent) -> Option<ConnId> {
        match event {
            ToyEvent::Closing(conn) => Some(*conn),
            _ => None,
        }
    }
}

fn toy_pair(seed: u64) -> (Sim<Toy>, NodeIdx, NodeIdx) {
    let mut sim = Sim::<Toy>::with_seed(seed);
    let a = sim.add_machine(|b| Ok(Toy::new(b))).unwrap();
    let b = sim.add_machine(|b| Ok(Toy::new(b))).unwrap();
    (sim, a, b)
}

fn ticks_at(sim: &Sim<Toy>, n: NodeIdx) -> Vec<u32> {
    sim.events(n)
        .iter()
        .filter_map(|e| match e.event {
            ToyEvent::Tick { n, .. } => Some(n),
            _ => None,
        })
        .collect()
}

#[test]
fn a_toy_machine_gets_timers_and_lossy_datagrams_as_the_link_counts_them() {
    let (mut sim, a, b) = toy_pair(1);
    sim.set_links(a, b, LinkConfig::default().with_latency(ms(10)).with_loss(0.3));
    let to = sim.addr(b);
    sim.with_node(a, |m, _| m.targets.push(to));
    sim.run_for(Duration::from_secs(10));
    // Ticks at 100 ms, 200 ms, ..., 10 s: exactly 100, all sent.
    assert_eq!(sim.node(a).ticks, 100);
    let st = sim.link_stats(a, b);
    assert_eq!(st.sent, 100);
    let got = ticks_at(&sim, b);
    assert_eq!(got.len() as u64, st.delivered, "one event per delivered datagram: {st:?}");
    assert_eq!(st.delivered + st.dropped, 100, "{st:?}");
    assert!((15..=45).contains(&st.dropped), "30 % loss: {st:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "fixed latency keeps order");
    assert!(sim.events(b).iter().all(|e| matches!(e.event, ToyEvent::Tick { from, .. } if from == sim.addr(a))));
    assert_eq!(sim.input_errors(b), 0);
}

#[test]
fn a_toy_machine_gets_its_stream_in_order_and_closing_it_reaches_the_other_end() {
    let (mut sim, a, b) = toy_pair(2);
    // Tiny segments and jitter: the pipe still delivers the bytes in order.
    sim.set_links(a, b, LinkConfig::default().with_latency(ms(20)).with_jitter(ms(15)).with_mss(3));
    let conn = sim.open_stream(a, b, |m, _, _| Ok(m.open())).unwrap();
    let lines: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
    for l in &lines {
        sim.with_node(a, |m, _| m.stream_send(conn, format!("{l}\n").as_bytes()));
    }
    sim.run_for(Duration::from_secs(2));
    let echoed: Vec<Vec<u8>> = sim
        .events(a)
        .iter()
        .filter_map(|e| match &e.event {
            ToyEvent::Stream { conn: c, bytes } if *c == conn => Some(bytes.clone()),
            _ => None,
        })
        .collect();
    let want: Vec<Vec<u8>> = lines.iter().map(|l| l.clone().into_bytes()).collect();
    assert_eq!(echoed, want, "echoed back whole and in order");

    // a says bye: b closes its end, and a's machine hears the stream end.
    sim.with_node(a, |m, _| m.stream_send(conn, b"bye\n"));
    sim.run_for(Duration::from_secs(1));
    let b_conn = sim.node(b).accepted[0];
    assert!(sim.events(b).iter().any(|e| e.event == ToyEvent::Closing(b_conn)));
    assert!(sim.events(a).iter().any(|e| e.event == ToyEvent::Ended(conn)), "{:?}", sim.events(a));
    // Bytes after the close go nowhere.
    sim.with_node(a, |m, _| m.stream_send(conn, b"late\n"));
    assert_eq!(sim.unroutable(), 1);
}

#[test]
fn a_stream_to_a_crashed_toy_is_refused_and_a_restart_rebuilds_it_with_new_randomness() {
    let (mut sim, a, b) = toy_pair(3);
    let first = sim.node(b).boot;
    sim.crash(b);
    let conn = sim.open_stream(a, b, |m, _, _| Ok(m.open())).unwrap();
    assert_eq!(sim.events(a).last().map(|e| &e.event), Some(&ToyEvent::Ended(conn)), "refused at once");
    sim.restart(b).unwrap();
    let second = sim.node(b).boot;
    assert_eq!((second.idx, second.addr, second.incarnation), (first.idx, first.addr, 1));
    assert_ne!(second.rng_seed, first.rng_seed, "a restart draws new randomness");
    assert_eq!(Sim::<Toy>::with_seed(3).derive_seed(b"node", 1, 1), second.rng_seed, "derived from the seed");
}

#[test]
fn a_toy_simulation_is_a_function_of_its_seed() {
    let run = |seed| {
        let (mut sim, a, b) = toy_pair(seed);
        sim.set_links(a, b, LinkConfig::default().with_jitter(ms(40)).with_loss(0.2).with_duplicate(0.2));
        let (ta, tb) = (sim.addr(a), sim.addr(b));
        sim.with_node(a, |m, _| m.targets.push(tb));
        sim.with_node(b, |m, _| m.targets.push(ta));
        sim.run_for(Duration::from_secs(20));
        (sim.trace_hash(), ticks_at(&sim, b))
    };
    let (h1, t1) = run(9);
    assert!(t1.len() > 100);
    assert_eq!(run(9), (h1, t1.clone()));
    let (h2, t2) = run(10);
    assert_ne!(h1, h2);
    assert_ne!(t1, t2, "another seed, other losses");
}

#[test]
fn adding_a_node_fails_with_a_typed_error_at_the_address_limit() {
    let mut sim = Sim::<Toy>::with_seed(4);
    let refused = sim.add_machine(|_| Err("no"));
    assert_eq!(refused, Err(AddNodeError::Build("no")));
    assert_eq!(sim.node_count(), 0, "a refused node takes no address");
    for i in 0..MAX_NODES {
        assert_eq!(sim.add_machine(|b| Ok(Toy::new(b))), Ok(NodeIdx(i)));
    }
    assert_eq!(sim.addr(NodeIdx(MAX_NODES - 1)), "10.0.255.255:7000".parse().unwrap());
    assert_eq!(sim.add_machine(|b| Ok(Toy::new(b))), Err(AddNodeError::TooManyNodes { max: MAX_NODES }));
    assert_eq!(sim.node_count(), MAX_NODES);
}

#[test]
fn adding_a_core_node_with_an_invalid_config_is_an_error_not_a_panic() {
    let mut sim = Sim::new(5);
    let bad = sim.add_node(Config::default().with(|c| c.max_datagram = 40));
    assert!(matches!(bad, Err(AddNodeError::Build(Error::InvalidConfig(e))) if e.field == "max_datagram"), "{bad:?}");
    assert_eq!(sim.node_count(), 0);
    assert_eq!(sim.add_node(Config::default()), Ok(NodeIdx(0)));
    assert!(AddNodeError::Build(Error::Config("x")).to_string().contains("x"));
}

/// A layer on a core node, the shape of the later layers: it answers every message with
/// its length, and reports messages as its own events.
struct Responder {
    /// Boxed: today's node is a large value (its sessions are inline), so a layer keeps
    /// it behind a pointer rather than copying it through every constructor frame.
    node: Box<SimNode>,
    /// The node answers in `poll_event`, which gets no time: the last input's time.
    now: Instant,
    replies: u32,
}

impl Responder {
    fn build(boot: &Boot, key: u8) -> Result<Self, Error> {
        let node = Box::new(build_node(&Config::default(), &Keypair::from_secret([key; 32]), boot)?);
        Ok(Responder { node, now: Instant::ZERO, replies: 0 })
    }
}

impl Machine for Responder {
    type Event = (PeerId, Vec<u8>);
    type Error = Error;
    const MAX_TRANSMIT: usize = <SimNode as Machine>::MAX_TRANSMIT;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        self.now = now;
        self.node.handle_datagram(now, from, bytes)
    }
    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Result<ConnId, Error> {
        self.now = now;
        self.node.accept(now, from)
    }
    fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) -> Result<usize, Error> {
        self.now = now;
        self.node.handle_stream(conn, now, bytes)
    }
    fn handle_stream_closed(&mut self, conn: ConnId, now: Instant) {
        self.now = now;
        self.node.handle_stream_closed(conn, now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.node.handle_timeout(now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        <SimNode as Machine>::poll_transmit(&mut self.node, now, buf)
    }
    fn poll_event(&mut self) -> Option<Self::Event> {
        loop {
            let (peer, data) = match self.node.poll_event()? {
                Event::Message { peer, data, .. } => (peer, data.to_vec()),
                _ => continue,
            };
            if !data.starts_with(b"len ") {
                let reply = format!("len {}", data.len());
                if self.node.send(self.now, &peer, reply.as_bytes()).is_ok() {
                    self.replies += 1;
                }
            }
            return Some((peer, data));
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }
}

#[test]
fn a_layer_over_a_core_node_runs_in_the_sim() {
    let mut sim = Sim::<Responder>::with_seed(6);
    let a = sim.add_machine(|b| Responder::build(b, 1)).unwrap();
    let b = sim.add_machine(|b| Responder::build(b, 2)).unwrap();
    sim.set_links(a, b, LinkConfig::default().with_latency(ms(15)).with_jitter(ms(5)));
    let (to, id_b) = (sim.addr(b), sim.node(b).node.peer_id());
    let id_a = sim.node(a).node.peer_id();
    // Over a stream, through the same driver as the core node's own adapter.
    sim.open_stream(a, b, |m, now, to| m.node.connect(now, TransportKind::Stream, to, Some(id_b))).unwrap();
    let up = |s: &Sim<Responder>| s.node(a).node.peers().count() == 1 && s.node(b).node.peers().count() == 1;
    assert!(sim.run_until_cond(Duration::from_secs(5), up));
    for msg in ["one", "three", "seventeen"] {
        sim.with_node(a, |m, now| m.node.send(now, &id_b, msg.as_bytes())).unwrap();
    }
    sim.run_for(Duration::from_secs(1));
    let at_b: Vec<_> = sim.events(b).iter().map(|e| e.event.clone()).collect();
    let want_b: Vec<_> = ["one", "three", "seventeen"].iter().map(|m| (id_a, m.as_bytes().to_vec())).collect();
    assert_eq!(at_b, want_b);
    let at_a: Vec<_> = sim.events(a).iter().map(|e| e.event.1.clone()).collect();
    assert_eq!(at_a, [b"len 3".to_vec(), b"len 5".to_vec(), b"len 9".to_vec()]);
    assert_eq!(sim.node(b).replies, 3);
    // And over datagrams, to the address the sim gave b.
    let c = sim.add_machine(|b| Responder::build(b, 3)).unwrap();
    sim.with_node(c, |m, now| m.node.connect(now, TransportKind::Datagram, to, Some(id_b))).unwrap();
    assert!(sim.run_until_cond(Duration::from_secs(5), |s| s.node(c).node.peers().count() == 1));
}
