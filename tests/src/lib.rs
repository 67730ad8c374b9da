//! A deterministic network simulator for meshlink (F33), as a library for tests, for the
//! layers built on the core, and for trying the protocol out.
//!
//! A [`Sim`] owns sans-IO machines (by default real [`meshlink_core::Node`]s) and the
//! virtual network between them:
//! - datagram links: each node has a virtual address `10.0.x.y:7000`, never a real socket;
//! - stream connections: a reliable in-order byte pipe per connection;
//! - per direction: latency (fixed, uniform, normal), jitter, loss (Bernoulli or
//!   Gilbert-Elliott), duplication, reordering, bandwidth, partitions ([`LinkConfig`]);
//! - node crash and restart.
//!
//! Time is virtual: the sim jumps from one delivery or timer to the next, so hours of
//! protocol run in milliseconds. Everything (keys, node randomness, link decisions)
//! derives from one seed: the same seed gives the same [`Sim::trace_hash`], so a failing
//! run is replayed exactly by its seed.
//!
//! # Driving core nodes
//!
//! `Sim::new(seed)` simulates core nodes ([`SimNode`]); `add_node`, `connect`, `send`,
//! `disconnect`, `is_connected` and `peer_id` are the node's commands addressed by
//! [`NodeIdx`]. What each node reported is in [`Sim::events`] as [`SimEvent`]s with the
//! virtual time; [`Sim::node`] reads a node's state and [`Sim::with_node`] runs any other
//! command on it. A longer tour (four nodes, both transports, loss, a partition and its
//! heal, a quality table) is `tests/examples/demo.rs`:
//! `cargo run -p meshlink-sim --example demo -- <seed>`.
//!
//! ```
//! use core::time::Duration;
//! use meshlink_core::{Config, TransportKind};
//! use meshlink_sim::{LinkConfig, Sim, SimEvent};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut sim = Sim::new(7);
//! let a = sim.add_node(Config::default())?;
//! let b = sim.add_node(Config::default())?;
//! // 30 ms (+ up to 5 ms jitter) each way.
//! let link = LinkConfig::default().with_latency(Duration::from_millis(30)).with_jitter(Duration::from_millis(5));
//! sim.set_links(a, b, link);
//! sim.connect(a, b, TransportKind::Datagram, true)?;
//! assert!(sim.run_until_cond(Duration::from_secs(10), |s| s.is_connected(a, b) && s.is_connected(b, a)));
//!
//! sim.send(a, b, b"hello")?;
//! sim.run_for(Duration::from_secs(1));
//! let got: Vec<&[u8]> = sim
//!     .events(b)
//!     .iter()
//!     .filter_map(|e| match &e.event {
//!         SimEvent::Message { data, .. } => Some(data.as_slice()),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(got, [b"hello"]);
//! assert_eq!(sim.link_stats(a, b).dropped, 0);
//! println!("trace {:02x?}", sim.trace_hash());
//! # Ok(())
//! # }
//! ```
//!
//! # Driving another machine
//!
//! Anything that implements [`Machine`] (the sans-IO contract: `handle_*` in, `poll_*`
//! out, time passed in) runs in a `Sim<M>`: a messaging layer, a relay or a discovery
//! service wrapping a node, or a toy machine in a test. Build it with
//! [`Sim::with_seed`], add nodes with [`Sim::add_machine`] (its constructor runs again,
//! with fresh randomness, at each [`Sim::restart`]), send datagrams to [`Sim::addr`] and
//! open streams with [`Sim::open_stream`]. The link model, partitions, crashes, capture
//! and the trace work the same. The [`Machine`] docs have a complete example; the core
//! node's own adapter is `node.rs`.
//!
//! # The driver's contract
//!
//! After every input the sim drains `poll_transmit`, then `poll_event` (copied into the
//! node's [`NodeEvent`] log), then reads `poll_timeout` for the next instant. A node that
//! keeps asking for work at one instant trips the livelock guard ([`Sim::set_step_limit`]).

mod drive;
mod link;
mod machine;
pub mod messenger;
mod node;
mod stream;

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use blake2::{Blake2s256, Digest};
use meshlink_core::{ConnId, Instant, TransportKind};

use link::LinkState;
pub use link::{Latency, LinkConfig, LinkStats, LossModel, StreamPartition};
pub use machine::{Boot, Machine, Outgoing, Trace};
pub use node::{build_node, SimEvent, SimNode, DEFAULT_SLOTS};
use stream::{End, Pipe};

/// Steps one virtual instant may take before the sim declares a livelock.
pub const DEFAULT_STEP_LIMIT: u64 = 100_000;
/// Every node's datagram (and stream listening) port.
pub const PORT: u16 = 7000;
/// Nodes one simulation holds: the virtual addresses `10.0.0.1` to `10.0.255.255`.
pub const MAX_NODES: usize = (1 << 16) - 1;
/// First ephemeral port used for the connecting side of streams.
const EPHEMERAL: u16 = 40000;

/// A datagram or stream segment as it was handed to its receiver (see [`Sim::set_capture`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub at: Instant,
    pub src: NodeIdx,
    pub dst: NodeIdx,
    pub kind: TransportKind,
    pub bytes: Vec<u8>,
}

/// A node's index in the simulation, in order of [`Sim::add_machine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIdx(pub usize);

/// An event with the virtual time it was polled at.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEvent<E = SimEvent> {
    pub at: Instant,
    pub event: E,
}

/// Why a node could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddNodeError<E> {
    /// Every virtual address is taken ([`MAX_NODES`]).
    TooManyNodes { max: usize },
    /// The machine's constructor refused (for a core node: the `Config`).
    Build(E),
}

impl<E: fmt::Display> fmt::Display for AddNodeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddNodeError::TooManyNodes { max } => write!(f, "a simulation holds at most {max} nodes"),
            AddNodeError::Build(e) => write!(f, "node refused to start: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for AddNodeError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AddNodeError::TooManyNodes { .. } => None,
            AddNodeError::Build(e) => Some(e),
        }
    }
}

/// Builds a node's machine at each start (see [`Boot`]).
type Builder<M> = Box<dyn FnMut(&Boot) -> Result<M, <M as Machine>::Error>>;

struct Host<M: Machine> {
    node: Box<M>,
    build: Builder<M>,
    addr: SocketAddr,
    up: bool,
    incarnation: u64,
    /// `node_mut` lent the node out: drain it before the next step.
    dirty: bool,
    next_port: u16,
    events: Vec<NodeEvent<M::Event>>,
    input_errors: u64,
}

enum Action {
    Datagram {
        src: usize,
        dst: usize,
        bytes: Vec<u8>,
    },
    /// A datagram leaves the link's bounded receive buffer for the node.
    DatagramRead {
        src: usize,
        dst: usize,
        bytes: Vec<u8>,
    },
    /// Deliver what has arrived at the front of a pipe direction.
    Stream {
        pipe: usize,
        dir: usize,
    },
}

/// The simulated network of machines `M` (core nodes unless said otherwise). See the
/// crate docs for an example.
pub struct Sim<M: Machine = SimNode> {
    seed: u64,
    now: Instant,
    hosts: Vec<Host<M>>,
    by_addr: BTreeMap<SocketAddr, usize>,
    default_link: LinkConfig,
    /// Per direction; BTreeMap (never HashMap) so no iteration order depends on a hasher.
    links: BTreeMap<(usize, usize), LinkState>,
    /// Directions configured with `set_link` (the default link no longer applies).
    explicit: BTreeSet<(usize, usize)>,
    /// Ordered by (time, sequence number): ties resolve in scheduling order.
    queue: BTreeMap<(Instant, u64), Action>,
    seq: u64,
    pipes: Vec<Pipe>,
    /// (node, stream connection) -> (pipe, side) for every open stream end.
    conns: BTreeMap<(usize, ConnId), (usize, usize)>,
    /// Where `poll_transmit` writes.
    scratch: Vec<u8>,
    trace: Trace,
    step_limit: u64,
    steps_at_now: u64,
    unroutable: u64,
    capture: Option<Vec<Delivery>>,
}

/// 32 bytes for `label` and two numbers, from the sim seed.
fn derive(seed: u64, label: &[u8], a: u64, b: u64) -> [u8; 32] {
    let mut h = Blake2s256::new();
    h.update(b"meshlink-sim ");
    h.update(label);
    h.update(seed.to_le_bytes());
    h.update(a.to_le_bytes());
    h.update(b.to_le_bytes());
    h.finalize().into()
}

impl<M: Machine> Sim<M> {
    /// An empty simulation of machines `M` (`Sim::new` for core nodes).
    pub fn with_seed(seed: u64) -> Self {
        Sim {
            seed,
            now: Instant::ZERO,
            hosts: Vec::new(),
            by_addr: BTreeMap::new(),
            default_link: LinkConfig::default(),
            links: BTreeMap::new(),
            explicit: BTreeSet::new(),
            queue: BTreeMap::new(),
            seq: 0,
            pipes: Vec::new(),
            conns: BTreeMap::new(),
            scratch: vec![0; M::MAX_TRANSMIT],
            trace: Trace::default(),
            step_limit: DEFAULT_STEP_LIMIT,
            steps_at_now: 0,
            unroutable: 0,
            capture: None,
        }
    }

    /// 32 bytes derived from the sim seed, a label and two numbers: keys and other
    /// per-node material for machines, reproducible from the seed alone.
    pub fn derive_seed(&self, label: &[u8], a: u64, b: u64) -> [u8; 32] {
        derive(self.seed, label, a, b)
    }

    // ------------------------------------------------------------------ nodes

    /// Adds a node: `build` makes its machine now and again at every [`Sim::restart`],
    /// each time with the node's [`Boot`] (index, address, fresh randomness).
    pub fn add_machine(
        &mut self,
        mut build: impl FnMut(&Boot) -> Result<M, M::Error> + 'static,
    ) -> Result<NodeIdx, AddNodeError<M::Error>> {
        let idx = self.hosts.len();
        if idx >= MAX_NODES {
            return Err(AddNodeError::TooManyNodes { max: MAX_NODES });
        }
        let n = idx + 1;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8)), PORT);
        let boot =
            Boot { idx: NodeIdx(idx), incarnation: 0, addr, rng_seed: derive(self.seed, b"node", idx as u64, 0) };
        let node = Box::new(build(&boot).map_err(AddNodeError::Build)?);
        self.by_addr.insert(addr, idx);
        self.hosts.push(Host {
            node,
            build: Box::new(build),
            addr,
            up: true,
            incarnation: 0,
            dirty: false,
            next_port: EPHEMERAL,
            events: Vec::new(),
            input_errors: 0,
        });
        Ok(NodeIdx(idx))
    }

    pub fn node_count(&self) -> usize {
        self.hosts.len()
    }
    pub fn node(&self, idx: NodeIdx) -> &M {
        &self.hosts[idx.0].node
    }
    /// Mutable access for commands the sim has no shortcut for. The node's output is
    /// drained before the next step (or call [`Sim::flush`]); [`Sim::with_node`] drains at once.
    pub fn node_mut(&mut self, idx: NodeIdx) -> &mut M {
        self.hosts[idx.0].dirty = true;
        &mut self.hosts[idx.0].node
    }
    /// Runs `f` on a node at the current virtual time, then drains its output.
    pub fn with_node<R>(&mut self, idx: NodeIdx, f: impl FnOnce(&mut M, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.hosts[idx.0].node, now);
        self.drain(idx.0);
        r
    }
    /// The node's virtual datagram address.
    pub fn addr(&self, idx: NodeIdx) -> SocketAddr {
        self.hosts[idx.0].addr
    }
    /// The node at this virtual address, if any.
    pub fn idx_at(&self, addr: SocketAddr) -> Option<NodeIdx> {
        self.by_addr.get(&addr).copied().map(NodeIdx)
    }
    /// Every event the node produced, in order.
    pub fn events(&self, idx: NodeIdx) -> &[NodeEvent<M::Event>] {
        &self.hosts[idx.0].events
    }
    /// Moves the node's event log out (later events start a new log).
    pub fn take_events(&mut self, idx: NodeIdx) -> Vec<NodeEvent<M::Event>> {
        core::mem::take(&mut self.hosts[idx.0].events)
    }
    /// Inputs the node refused with an error (duplicates, stale records, ...).
    pub fn input_errors(&self, idx: NodeIdx) -> u64 {
        self.hosts[idx.0].input_errors
    }
    pub fn is_up(&self, idx: NodeIdx) -> bool {
        self.hosts[idx.0].up
    }
    /// Transmits addressed to no node or no open connection.
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }
    pub fn now(&self) -> Instant {
        self.now
    }
    /// The running hash of every delivered datagram or stream segment (time, source,
    /// destination, bytes) and every event.
    pub fn trace_hash(&self) -> [u8; 32] {
        self.trace.finish()
    }
    /// Starts (or stops and discards) recording every delivery, for tests that look at
    /// the wire.
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on.then(Vec::new);
    }
    /// Deliveries recorded since [`Sim::set_capture`].
    pub fn captured(&self) -> &[Delivery] {
        self.capture.as_deref().unwrap_or_default()
    }

    /// Changes the livelock guard (steps per virtual instant).
    pub fn set_step_limit(&mut self, limit: u64) {
        self.step_limit = limit;
    }

    // ------------------------------------------------------------------ commands

    /// Opens a stream connection from `a` to `b`: `connect` tells `a`'s machine (given
    /// the time and `b`'s address) and returns its id for the connection; then the
    /// virtual socket connects at once and `b` accepts ([`Machine::accept_stream`]). A
    /// stream to a crashed node is refused: `a` sees the transport close. Returns `a`'s
    /// connection id.
    pub fn open_stream(
        &mut self,
        a: NodeIdx,
        b: NodeIdx,
        connect: impl FnOnce(&mut M, Instant, SocketAddr) -> Result<ConnId, M::Error>,
    ) -> Result<ConnId, M::Error> {
        self.flush();
        assert!(self.hosts[a.0].up, "connect from crashed node {}", a.0);
        let now = self.now;
        let to = self.hosts[b.0].addr;
        let host = &mut self.hosts[a.0];
        let from = SocketAddr::new(host.addr.ip(), host.next_port);
        host.next_port = host.next_port.checked_add(1).unwrap_or(EPHEMERAL);
        let conn_a = connect(&mut host.node, now, to)?;
        let accepted =
            if self.hosts[b.0].up { self.hosts[b.0].node.accept_stream(now, from).map(Some) } else { Ok(None) };
        let conn_b = match accepted {
            Ok(Some(c)) => c,
            refused => {
                self.hosts[a.0].node.handle_stream_closed(conn_a, now);
                self.drain(a.0);
                return refused.map(|_| conn_a);
            }
        };
        let p = self.pipes.len();
        self.pipes.push(Pipe::new(End::new(a.0, conn_a), End::new(b.0, conn_b)));
        self.conns.insert((a.0, conn_a), (p, 0));
        self.conns.insert((b.0, conn_b), (p, 1));
        self.drain(a.0);
        self.drain(b.0);
        Ok(conn_a)
    }

    /// The node stops: nothing reaches it, it sends nothing, its timers stop. Its stream
    /// connections die silently: peers find out by their dead-peer timeout. Until
    /// [`Sim::restart`], `node()` shows its last state and commands on it go nowhere.
    pub fn crash(&mut self, idx: NodeIdx) {
        let h = &mut self.hosts[idx.0];
        h.up = false;
        h.dirty = false;
        let ends: Vec<_> =
            self.conns.range((idx.0, ConnId(0))..=(idx.0, ConnId(u32::MAX))).map(|(k, v)| (*k, *v)).collect();
        for (key, (p, side)) in ends {
            self.conns.remove(&key);
            self.pipes[p].ends[side].close();
        }
    }

    /// A crashed node comes back as a fresh machine from its builder (a core node: the
    /// same keypair and config), with new randomness. Panics if the node is running.
    pub fn restart(&mut self, idx: NodeIdx) -> Result<(), M::Error> {
        let h = &mut self.hosts[idx.0];
        assert!(!h.up, "restart of running node {}", idx.0);
        let incarnation = h.incarnation + 1;
        let rng_seed = derive(self.seed, b"node", idx.0 as u64, incarnation);
        let boot = Boot { idx, incarnation, addr: h.addr, rng_seed };
        *h.node = (h.build)(&boot)?;
        h.incarnation = incarnation;
        h.up = true;
        Ok(())
    }

    // ------------------------------------------------------------------ links

    fn link(&mut self, src: usize, dst: usize) -> &mut LinkState {
        let (seed, config) = (self.seed, self.default_link);
        self.links
            .entry((src, dst))
            .or_insert_with(|| LinkState::new(config, derive(seed, b"link", src as u64, dst as u64)))
    }

    /// Configures the direction `a -> b`.
    pub fn set_link(&mut self, a: NodeIdx, b: NodeIdx, config: LinkConfig) {
        self.explicit.insert((a.0, b.0));
        self.link(a.0, b.0).config = config;
    }
    /// Configures both directions between `a` and `b` alike.
    pub fn set_links(&mut self, a: NodeIdx, b: NodeIdx, config: LinkConfig) {
        self.set_link(a, b, config);
        self.set_link(b, a, config);
    }
    /// The configuration of every direction not set with [`Sim::set_link`].
    pub fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
        for (k, l) in self.links.iter_mut() {
            if !self.explicit.contains(k) {
                l.config = config;
            }
        }
    }
    pub fn link_config(&mut self, a: NodeIdx, b: NodeIdx) -> LinkConfig {
        self.link(a.0, b.0).config
    }
    /// Counters of the direction `a -> b`.
    pub fn link_stats(&self, a: NodeIdx, b: NodeIdx) -> LinkStats {
        self.links.get(&(a.0, b.0)).map(|l| l.stats).unwrap_or_default()
    }

    /// Cuts both directions between `a` and `b`.
    pub fn partition(&mut self, a: NodeIdx, b: NodeIdx) {
        self.partition_one_way(a, b);
        self.partition_one_way(b, a);
    }
    /// Cuts `a -> b` only: datagrams are dropped, stream bytes stall (or the streams
    /// break, per the link's [`StreamPartition`]).
    pub fn partition_one_way(&mut self, a: NodeIdx, b: NodeIdx) {
        self.flush();
        let link = self.link(a.0, b.0);
        link.blocked = true;
        if link.config.on_partition == StreamPartition::Break {
            for p in 0..self.pipes.len() {
                if (0..2).any(|d| self.pipes[p].nodes(d) == (a.0, b.0)) {
                    self.break_pipe(p);
                }
            }
        }
    }
    pub fn heal(&mut self, a: NodeIdx, b: NodeIdx) {
        self.heal_one_way(a, b);
        self.heal_one_way(b, a);
    }
    /// Restores `a -> b`. Stalled stream bytes flow again, in order, one latency later.
    pub fn heal_one_way(&mut self, a: NodeIdx, b: NodeIdx) {
        self.flush();
        let now = self.now;
        if !std::mem::replace(&mut self.link(a.0, b.0).blocked, false) {
            return;
        }
        for p in 0..self.pipes.len() {
            for dir in 0..2 {
                if self.pipes[p].nodes(dir) != (a.0, b.0) || self.pipes[p].dirs[dir].is_empty() {
                    continue;
                }
                let base = now + self.link(a.0, b.0).delay();
                for at in self.pipes[p].retime(dir, base) {
                    self.schedule(at, Action::Stream { pipe: p, dir });
                }
            }
        }
    }

    // ------------------------------------------------------------------ time

    fn schedule(&mut self, at: Instant, action: Action) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), action);
    }

    fn next_timer(&self) -> Option<Instant> {
        self.hosts.iter().filter(|h| h.up).filter_map(|h| h.node.poll_timeout()).min().map(|t| t.max(self.now))
    }

    /// When the next step would happen, if anything is pending.
    pub fn next_time(&self) -> Option<Instant> {
        let ev = self.queue.first_key_value().map(|(k, _)| k.0);
        ev.into_iter().chain(self.next_timer()).min()
    }

    fn advance(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
            self.steps_at_now = 0;
        }
        self.steps_at_now += 1;
        assert!(
            self.steps_at_now <= self.step_limit,
            "livelock: more than {} steps at virtual time {} us (a node keeps asking for work at the same instant)",
            self.step_limit,
            self.now.as_micros()
        );
    }

    /// Drains nodes lent out by [`Sim::node_mut`].
    pub fn flush(&mut self) {
        for i in 0..self.hosts.len() {
            if self.hosts[i].dirty {
                self.drain(i);
            }
        }
    }

    /// Processes the next delivery, or the timers due next (deliveries first on a tie).
    /// Returns false when nothing is pending at all.
    pub fn step(&mut self) -> bool {
        self.flush();
        let ev = self.queue.first_key_value().map(|(k, _)| k.0);
        let timer = self.next_timer();
        let deliver = match (ev, timer) {
            (Some(e), Some(t)) => e <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return false,
        };
        if deliver {
            let Some(((at, _), action)) = self.queue.pop_first() else { return false };
            self.advance(at);
            match action {
                Action::Datagram { src, dst, bytes } => self.arrive_datagram(src, dst, bytes),
                Action::DatagramRead { src, dst, bytes } => self.read_datagram(src, dst, bytes),
                Action::Stream { pipe, dir } => self.deliver_stream(pipe, dir),
            }
        } else if let Some(t) = timer {
            self.advance(t);
            let now = self.now;
            for i in 0..self.hosts.len() {
                if self.hosts[i].up && self.hosts[i].node.poll_timeout().is_some_and(|t| t <= now) {
                    self.hosts[i].node.handle_timeout(now);
                    self.drain(i);
                }
            }
        }
        true
    }

    /// Runs every step up to and including `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Instant) {
        self.flush();
        while self.next_time().is_some_and(|n| n <= t) {
            self.step();
        }
        if t > self.now {
            self.now = t;
            self.steps_at_now = 0;
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Steps until `cond` holds (checked before each step) or `within` has passed.
    /// Returns whether it held.
    pub fn run_until_cond(&mut self, within: Duration, mut cond: impl FnMut(&Self) -> bool) -> bool {
        let deadline = self.now + within;
        self.flush();
        loop {
            if cond(self) {
                return true;
            }
            if !self.next_time().is_some_and(|n| n <= deadline) {
                self.run_until(deadline);
                return cond(self);
            }
            self.step();
        }
    }
}
