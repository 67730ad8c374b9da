//! A deterministic network simulator for meshlink nodes (F33).
//!
//! A [`Sim`] owns real [`meshlink_core::Node`]s and the virtual network between them:
//! datagram links (each node has a virtual address `10.0.x.y:7000`, never a real socket)
//! and stream connections (a reliable in-order byte pipe per connection), with
//! per-direction latency, jitter, loss (Bernoulli or Gilbert-Elliott), duplication,
//! reordering, bandwidth, partitions, and node crash/restart. Time is virtual: the sim
//! jumps from one delivery or timer to the next, so hours of protocol run in
//! milliseconds, and everything (keys, node randomness, link decisions) derives from
//! one seed: the same seed gives the same [`Sim::trace_hash`].
//!
//! The driver follows the core's contract after every input: drain `poll_transmit`,
//! then `poll_event` (copied into each node's [`NodeEvent`] log), then `poll_timeout`.
//!
//! ```
//! use core::time::Duration;
//! use meshlink_core::{Config, TransportKind};
//! use meshlink_sim::{LinkConfig, Sim, SimEvent};
//!
//! let mut sim = Sim::new(7);
//! let a = sim.add_node(Config::default());
//! let b = sim.add_node(Config::default());
//! // 30 ms (+ up to 5 ms jitter) each way.
//! let link = LinkConfig::default().with_latency(Duration::from_millis(30)).with_jitter(Duration::from_millis(5));
//! sim.set_links(a, b, link);
//! sim.connect(a, b, TransportKind::Datagram, true).unwrap();
//! assert!(sim.run_until_cond(Duration::from_secs(10), |s| s.is_connected(a, b) && s.is_connected(b, a)));
//!
//! sim.send(a, b, b"hello").unwrap();
//! sim.run_for(Duration::from_secs(1));
//! let got: Vec<&[u8]> = sim.events(b).iter().filter_map(|e| match &e.event {
//!     SimEvent::Message { data, .. } => Some(data.as_slice()),
//!     _ => None,
//! }).collect();
//! assert_eq!(got, [b"hello"]);
//! assert_eq!(sim.link_stats(a, b).dropped, 0);
//! println!("trace {:02x?}", sim.trace_hash());
//! ```

mod drive;
mod event;
mod link;
mod stream;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use blake2::{Blake2s256, Digest};
use meshlink_core::{Config, ConnId, Error, Instant, Keypair, PeerId, TransportKind};

pub use event::{NodeEvent, SimEvent};
use link::LinkState;
pub use link::{Latency, LinkConfig, LinkStats, LossModel, StreamPartition};
use stream::{End, Pipe};

/// Sessions per node when `Sim::new` is used; `Sim::<N>::with_slots` picks another.
pub const DEFAULT_SLOTS: usize = 32;
/// The node type the simulator drives.
pub type SimNode<const N: usize = DEFAULT_SLOTS> = meshlink_core::HeapNode;
/// Steps one virtual instant may take before the sim declares a livelock.
pub const DEFAULT_STEP_LIMIT: u64 = 100_000;
/// Every node's datagram (and stream listening) port.
pub const PORT: u16 = 7000;
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

/// A node's index in the simulation, in order of [`Sim::add_node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIdx(pub usize);

struct Host<const N: usize> {
    node: Box<SimNode<N>>,
    config: Config,
    keypair: Keypair,
    addr: SocketAddr,
    up: bool,
    incarnation: u64,
    /// `node_mut` lent the node out: drain it before the next step.
    dirty: bool,
    next_port: u16,
    events: Vec<NodeEvent>,
    input_errors: u64,
}

enum Action {
    Datagram {
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

/// The simulated network. See the crate docs for an example.
pub struct Sim<const N: usize = DEFAULT_SLOTS> {
    seed: u64,
    now: Instant,
    hosts: Vec<Host<N>>,
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
    trace: Blake2s256,
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

impl Sim {
    /// A simulation with [`DEFAULT_SLOTS`] sessions per node.
    pub fn new(seed: u64) -> Self {
        Self::with_slots(seed)
    }
}

impl<const N: usize> Sim<N> {
    /// A simulation whose nodes hold `N` sessions each.
    pub fn with_slots(seed: u64) -> Self {
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
            // Room for a full stream frame with its prefix.
            scratch: vec![0; meshlink_core::wire::MAX_FRAME_LEN + meshlink_core::wire::FRAME_PREFIX_LEN],
            trace: Blake2s256::new(),
            step_limit: DEFAULT_STEP_LIMIT,
            steps_at_now: 0,
            unroutable: 0,
            capture: None,
        }
    }

    // ------------------------------------------------------------------ nodes

    /// Adds a node with a keypair derived from the sim seed. Panics on an invalid config
    /// (see [`Sim::try_add_node`]).
    pub fn add_node(&mut self, config: Config) -> NodeIdx {
        self.try_add_node(config).unwrap_or_else(|e| panic!("invalid node config: {e}"))
    }

    pub fn try_add_node(&mut self, config: Config) -> Result<NodeIdx, Error> {
        let keypair = Keypair::from_secret(derive(self.seed, b"key", self.hosts.len() as u64, 0));
        self.add_node_with_keypair(config, keypair)
    }

    /// Adds a node with a given identity (its randomness still derives from the seed).
    pub fn add_node_with_keypair(&mut self, config: Config, keypair: Keypair) -> Result<NodeIdx, Error> {
        let idx = self.hosts.len();
        let node = Self::make_node(&config, &keypair, derive(self.seed, b"node", idx as u64, 0))?;
        let n = u32::try_from(idx + 1).ok().filter(|n| *n < 1 << 16).ok_or(Error::Config("too many nodes"))?;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8)), PORT);
        self.by_addr.insert(addr, idx);
        self.hosts.push(Host {
            node,
            config,
            keypair,
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

    fn make_node(config: &Config, keypair: &Keypair, seed: [u8; 32]) -> Result<Box<SimNode<N>>, Error> {
        SimNode::<N>::with_capacity(config.clone(), keypair.clone(), seed, N).map(Box::new)
    }

    pub fn node_count(&self) -> usize {
        self.hosts.len()
    }
    pub fn node(&self, idx: NodeIdx) -> &SimNode<N> {
        &self.hosts[idx.0].node
    }
    /// Mutable access for commands the sim has no shortcut for. The node's output is
    /// drained before the next step (or call [`Sim::flush`]); [`Sim::with_node`] drains at once.
    pub fn node_mut(&mut self, idx: NodeIdx) -> &mut SimNode<N> {
        self.hosts[idx.0].dirty = true;
        &mut self.hosts[idx.0].node
    }
    /// Runs `f` on a node at the current virtual time, then drains its output.
    pub fn with_node<R>(&mut self, idx: NodeIdx, f: impl FnOnce(&mut SimNode<N>, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.hosts[idx.0].node, now);
        self.drain(idx.0);
        r
    }
    pub fn peer_id(&self, idx: NodeIdx) -> PeerId {
        self.hosts[idx.0].keypair.peer_id()
    }
    /// The node with this peer id, if any.
    pub fn idx_of(&self, peer: &PeerId) -> Option<NodeIdx> {
        self.hosts.iter().position(|h| h.keypair.peer_id() == *peer).map(NodeIdx)
    }
    /// The node's virtual datagram address.
    pub fn addr(&self, idx: NodeIdx) -> SocketAddr {
        self.hosts[idx.0].addr
    }
    /// Every event the node produced, in order.
    pub fn events(&self, idx: NodeIdx) -> &[NodeEvent] {
        &self.hosts[idx.0].events
    }
    /// Moves the node's event log out (later events start a new log).
    pub fn take_events(&mut self, idx: NodeIdx) -> Vec<NodeEvent> {
        core::mem::take(&mut self.hosts[idx.0].events)
    }
    /// Inputs the node refused with an error (duplicates, stale records, ...).
    pub fn input_errors(&self, idx: NodeIdx) -> u64 {
        self.hosts[idx.0].input_errors
    }
    /// Whether `a` has a connected session with `b`.
    pub fn is_connected(&self, a: NodeIdx, b: NodeIdx) -> bool {
        let peer = self.peer_id(b);
        self.hosts[a.0].up && self.node(a).peers().any(|p| p.peer == peer)
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
        self.trace.clone().finalize().into()
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

    /// Opens a connection from `a` to `b`; with `expect_key`, `a` names `b`'s key (F04,
    /// IK fast path). For streams the virtual socket connects at once: `b` accepts and `a`
    /// connects. A stream to a crashed node is refused: `a` sees the transport close.
    /// Returns `a`'s connection id.
    pub fn connect(&mut self, a: NodeIdx, b: NodeIdx, kind: TransportKind, expect_key: bool) -> Result<ConnId, Error> {
        self.flush();
        assert!(self.hosts[a.0].up, "connect from crashed node {}", a.0);
        let expected = expect_key.then(|| self.peer_id(b));
        let to = self.hosts[b.0].addr;
        if kind == TransportKind::Datagram {
            return self.with_node(a, |n, now| n.connect(now, kind, to, expected));
        }
        let now = self.now;
        let host = &mut self.hosts[a.0];
        let from = SocketAddr::new(host.addr.ip(), host.next_port);
        host.next_port = host.next_port.checked_add(1).unwrap_or(EPHEMERAL);
        let conn_a = host.node.connect(now, kind, to, expected)?;
        let accepted = if self.hosts[b.0].up { self.hosts[b.0].node.accept(now, from).map(Some) } else { Ok(None) };
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

    /// `a` queues a message to `b` (both must be connected).
    pub fn send(&mut self, a: NodeIdx, b: NodeIdx, data: &[u8]) -> Result<(), Error> {
        let peer = self.peer_id(b);
        self.with_node(a, |n, now| n.send(now, &peer, data))
    }

    /// `a` closes its session with `b`.
    pub fn disconnect(&mut self, a: NodeIdx, b: NodeIdx) -> Result<(), Error> {
        let peer = self.peer_id(b);
        self.with_node(a, |n, now| n.disconnect(now, &peer))
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

    /// A crashed node comes back as a fresh node with the same keypair and config.
    pub fn restart(&mut self, idx: NodeIdx) {
        let h = &mut self.hosts[idx.0];
        assert!(!h.up, "restart of running node {}", idx.0);
        h.incarnation += 1;
        let seed = derive(self.seed, b"node", idx.0 as u64, h.incarnation);
        h.node = Self::make_node(&h.config, &h.keypair, seed).expect("config accepted before");
        h.up = true;
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
                Action::Datagram { src, dst, bytes } => self.deliver_datagram(src, dst, bytes),
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
