//! The adapter between the simulator and the core `Node`: the one place that knows the
//! node's type, its constructor, its events and its commands. A change to the core's
//! API is fixed here; the rest of the sim only knows [`Machine`].

use core::net::SocketAddr;

use meshlink_core::{
    Config, ConnId, DisconnectReason, Error, ErrorCode, Event, Instant, Keypair, Node, PeerId, Quality, TransportKind,
};

use crate::machine::{Boot, Machine, Outgoing, Trace};
use crate::{AddNodeError, NodeIdx, Sim};

/// The slot table of every simulated core node. A node's run-time limit is its
/// `Config::max_peers`, which the core lowers to this capacity.
pub const DEFAULT_SLOTS: usize = 32;
/// The core node type the simulator drives: its slot table and buffers on the heap.
pub type SimNode = meshlink_core::HeapNode;

impl Machine for SimNode {
    type Event = SimEvent;
    type Error = Error;
    // Room for a full stream frame with its prefix (a datagram is never larger).
    const MAX_TRANSMIT: usize = meshlink_core::wire::MAX_FRAME_LEN + meshlink_core::wire::FRAME_PREFIX_LEN;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        Node::handle_datagram(self, now, from, bytes)
    }
    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Result<ConnId, Error> {
        Node::accept(self, now, from)
    }
    fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) -> Result<usize, Error> {
        Node::handle_stream(self, conn, now, bytes)
    }
    fn handle_stream_closed(&mut self, conn: ConnId, now: Instant) {
        Node::handle_stream_closed(self, conn, now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        let t = Node::poll_transmit(self, now, buf)?;
        Some(match (t.kind, t.conn) {
            (TransportKind::Datagram, _) => Outgoing::Datagram { to: t.addr, len: t.len },
            (_, Some(conn)) => Outgoing::Stream { conn, len: t.len },
            // A stream transmit without a connection has nowhere to go: an id no pipe
            // has, so the sim counts it unroutable.
            (_, None) => Outgoing::Stream { conn: ConnId(u32::MAX), len: t.len },
        })
    }
    fn poll_event(&mut self) -> Option<SimEvent> {
        Node::poll_event(self).map(SimEvent::from_core)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }
    fn closes_stream(event: &SimEvent) -> Option<ConnId> {
        match event {
            SimEvent::Disconnected { conn, .. } => Some(*conn),
            _ => None,
        }
    }
    fn trace_event(event: &SimEvent, trace: &mut Trace) {
        event.hash_into(trace);
    }
}

/// Builds a core node as the sim does: its storage on the heap, its randomness from the
/// [`Boot`]. For machines that wrap a node (a layer over it).
pub fn build_node(config: &Config, keypair: &Keypair, boot: &Boot) -> Result<SimNode, Error> {
    SimNode::with_capacity(config.clone(), keypair.clone(), boot.rng_seed, DEFAULT_SLOTS)
}

impl Sim<SimNode> {
    /// A simulation of core nodes with [`DEFAULT_SLOTS`] slots each (fewer sessions with
    /// a lower `Config::max_peers`).
    pub fn new(seed: u64) -> Self {
        Self::with_seed(seed)
    }

    /// Adds a core node with a keypair derived from the sim seed. An invalid `config`
    /// comes back as [`AddNodeError::Build`].
    pub fn add_node(&mut self, config: Config) -> Result<NodeIdx, AddNodeError<Error>> {
        let keypair = Keypair::from_secret(self.derive_seed(b"key", self.node_count() as u64, 0));
        self.add_node_with_keypair(config, keypair)
    }

    /// Adds a core node with a given identity (its randomness still derives from the
    /// seed). A restart brings it back with the same keypair and config.
    pub fn add_node_with_keypair(&mut self, config: Config, keypair: Keypair) -> Result<NodeIdx, AddNodeError<Error>> {
        self.add_machine(move |boot| build_node(&config, &keypair, boot))
    }

    /// Opens a connection from `a` to `b`; with `expect_key`, `a` names `b`'s key (F04,
    /// IK fast path). For streams the virtual socket connects at once (see
    /// [`Sim::open_stream`]). Returns `a`'s connection id.
    pub fn connect(&mut self, a: NodeIdx, b: NodeIdx, kind: TransportKind, expect_key: bool) -> Result<ConnId, Error> {
        let expected = expect_key.then(|| self.peer_id(b));
        if kind == TransportKind::Datagram {
            self.flush();
            assert!(self.is_up(a), "connect from crashed node {}", a.0);
            let to = self.addr(b);
            return self.with_node(a, |n, now| n.connect(now, kind, to, expected));
        }
        self.open_stream(a, b, |n, now, to| n.connect(now, kind, to, expected))
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

    pub fn peer_id(&self, idx: NodeIdx) -> PeerId {
        self.node(idx).peer_id()
    }

    /// The node with this peer id, if any.
    pub fn idx_of(&self, peer: &PeerId) -> Option<NodeIdx> {
        (0..self.node_count()).map(NodeIdx).find(|i| self.peer_id(*i) == *peer)
    }

    /// Whether `a` is running and has a connected session with `b`.
    pub fn is_connected(&self, a: NodeIdx, b: NodeIdx) -> bool {
        let peer = self.peer_id(b);
        self.is_up(a) && self.node(a).peers().any(|p| p.peer == peer)
    }
}

/// An [`Event`] copied out of the node, so it outlives the next `poll_event`.
#[derive(Debug, Clone, PartialEq)]
pub enum SimEvent {
    Connected { peer: PeerId, conn: ConnId, kind: TransportKind, addr: SocketAddr, quality: Quality },
    Message { peer: PeerId, conn: ConnId, data: Vec<u8> },
    Quality { peer: PeerId, conn: ConnId, quality: Quality },
    RemoteError { peer: PeerId, conn: ConnId, code: ErrorCode },
    Disconnected { peer: Option<PeerId>, conn: ConnId, addr: SocketAddr, reason: DisconnectReason, was_connected: bool },
}

impl SimEvent {
    fn from_core(ev: Event<'_>) -> Self {
        match ev {
            Event::Connected { conn, peer, addr, kind, quality, .. } => {
                SimEvent::Connected { peer, conn, kind, addr, quality }
            }
            // `..` everywhere: a field the core adds compiles here until the sim copies it.
            Event::Message { conn, peer, data, .. } => SimEvent::Message { peer, conn, data: data.to_vec() },
            Event::QualityUpdate { conn, peer, quality, .. } => SimEvent::Quality { peer, conn, quality },
            Event::RemoteError { conn, peer, code, .. } => SimEvent::RemoteError { peer, conn, code },
            Event::Disconnected { conn, peer, addr, was_connected, reason, .. } => {
                SimEvent::Disconnected { peer, conn, addr, reason, was_connected }
            }
            // `Event` is `#[non_exhaustive]`. The simulator hashes every event into its
            // trace, so skipping one would hide it from the tests: fail loudly instead,
            // and the new kind gets a `SimEvent` variant.
            other => panic!("the simulator does not know core event {other:?}: add it to SimEvent"),
        }
    }

    /// The connection the event belongs to.
    pub fn conn(&self) -> ConnId {
        match self {
            SimEvent::Connected { conn, .. }
            | SimEvent::Message { conn, .. }
            | SimEvent::Quality { conn, .. }
            | SimEvent::RemoteError { conn, .. }
            | SimEvent::Disconnected { conn, .. } => *conn,
        }
    }

    /// Feeds every field into the trace hash. Floats go in by bit pattern, so equal
    /// traces hash equal and any difference shows.
    fn hash_into(&self, h: &mut Trace) {
        match self {
            SimEvent::Connected { peer, conn, kind, addr, quality } => {
                h.update([1]);
                h.update(peer.as_bytes());
                h.update(conn.0.to_le_bytes());
                h.update([*kind as u8]);
                h.update(addr.to_string());
                hash_quality(h, quality);
            }
            SimEvent::Message { peer, conn, data } => {
                h.update([2]);
                h.update(peer.as_bytes());
                h.update(conn.0.to_le_bytes());
                h.update((data.len() as u64).to_le_bytes());
                h.update(data);
            }
            SimEvent::Quality { peer, conn, quality } => {
                h.update([3]);
                h.update(peer.as_bytes());
                h.update(conn.0.to_le_bytes());
                hash_quality(h, quality);
            }
            SimEvent::RemoteError { peer, conn, code } => {
                h.update([4]);
                h.update(peer.as_bytes());
                h.update(conn.0.to_le_bytes());
                h.update(code.to_u16().to_le_bytes());
            }
            SimEvent::Disconnected { peer, conn, addr, reason, was_connected } => {
                h.update([5]);
                h.update(peer.map_or([0; 32], |p| p.0));
                h.update(conn.0.to_le_bytes());
                h.update(addr.to_string());
                // DisconnectReason carries nested enums; its Debug text is complete and stable.
                h.update(format!("{reason:?}"));
                h.update([u8::from(*was_connected)]);
            }
        }
    }
}

fn hash_quality(h: &mut Trace, q: &Quality) {
    for v in [q.rtt_us.unwrap_or(u64::MAX), q.rtt_min_us.unwrap_or(u64::MAX), q.rtt_var_us, q.jitter_us] {
        h.update(v.to_le_bytes());
    }
    for v in [q.pings_sent, q.pongs_received, q.pings_lost, q.bw_in_bps, q.bw_out_bps] {
        h.update(v.to_le_bytes());
    }
    let c = &q.counters;
    for v in [c.bytes_in, c.bytes_out, c.msgs_in, c.msgs_out] {
        h.update(v.to_le_bytes());
    }
    h.update(q.loss.to_bits().to_le_bytes());
    h.update(q.score.to_bits().to_le_bytes());
}
