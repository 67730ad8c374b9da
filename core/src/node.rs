//! The `Node`: many peer sessions behind one sans-IO interface.
//!
//! # The contract (after quinn-proto and str0m)
//!
//! The node never reads a clock, opens a socket or draws hidden randomness. Its methods
//! fall in four groups:
//!
//! - **input**: [`Node::handle_stream`], [`Node::handle_datagram`], [`Node::handle_timeout`],
//!   [`Node::handle_stream_closed`];
//! - **output**: [`Node::poll_transmit`], [`Node::poll_timeout`], [`Node::poll_event`];
//! - **commands**: [`Node::connect`], [`Node::accept`], [`Node::send`], [`Node::disconnect`],
//!   [`Node::close`], [`Node::close_all`], [`Node::set_threat_score`];
//! - **getters**: [`Node::peers`], [`Node::quality`], [`Node::hello`], [`Node::stats`],
//!   [`Node::peer_id`], [`Node::config`], [`Node::threat_score`].
//!
//! After any input or command, the caller drains the output in this order:
//! 1. `poll_transmit` until it returns `None`, sending each buffer to its connection;
//! 2. `poll_event` until it returns `None`;
//! 3. `poll_timeout`, and arms a timer that calls `handle_timeout` at that instant.
//!
//! `now` must never go backwards. `handle_stream` may consume less than it is given when
//! a received message waits in `poll_event`: drain events, then feed the rest.
//!
//! # Storage: who owns what
//!
//! The node is small (a few hundred bytes plus the configuration); everything that grows
//! with the number of peers is the caller's, given to [`Node::new`]:
//!
//! - **The slot table** `S: AsRef<[Slot<B>]> + AsMut<[Slot<B>]>`, one [`Slot`] per possible
//!   session (about 4.9 KB each: the session's keys, handshake, replay window, reassembly
//!   table and the node's index links). Its length is the hard capacity (at most 65,535);
//!   `Config::max_peers` sets the run-time limit within it. A host builds it in place on the
//!   heap with [`slot_table`] (feature `alloc`); firmware puts an array in a `static` (for
//!   example through `static_cell`) and passes `&'static mut [Slot<B>]`. The node never
//!   returns or moves it by value, so no adapter needs a large stack.
//! - **The slot buffers**, from a [`BufferPool`]: each session needs one
//!   `Config::slot_buffer_len()` buffer (rx frame, one reassembled message, send queue)
//!   while it has bytes in it. The node takes one when a session is created or, after an
//!   idle spell, when bytes arrive or are queued; it gives it back when the session ends and
//!   as soon as the session is idle again (empty queue, no partial frame or reassembly, no
//!   message waiting in `poll_event`). On a host, [`HeapPool`] allocates on demand, so an
//!   idle peer costs its slot and no buffer. On firmware, [`SlotBound`] leaves each slot
//!   the static buffer it was built with ([`Slot::with_buffer`]): fixed capacities, no
//!   allocator. A pool that runs dry fails only the session that asked ([`Error::NoBuffer`]).
//!
//! The four adapters use it the same way: the tokio host and the wasm-bindgen package
//! build a [`HeapNode`] with [`HeapNode::with_capacity`]; the embassy firmware and a C ABI
//! without an allocator pass static slots and [`SlotBound`] (a C ABI with `malloc` can use
//! `HeapNode` too). The node itself is then a few hundred bytes wherever it is kept.
//!
//! # Indexes and cost
//!
//! Every per-peer lookup is O(1) and touches only the sessions involved, however many
//! are connected: a PeerId → session map (`send`, `disconnect`, `quality`, `hello`,
//! duplicate detection), an (address, sender index) → session map (retransmitted datagram
//! Inits), an indexed min-heap of session deadlines (`poll_timeout` reads its top,
//! `handle_timeout` pops only what is due), a free list, intrusive transmit and event
//! queues, an indexed threat table, and counters maintained as sessions change state
//! (`stats` is a copy). All of them live in the slot table ([`Slot`]), so they are
//! bounded by it and need no allocator. `peers` and `close_all` visit every slot.
//!
//! # Towards an Endpoint / Connection split
//!
//! A session ([`crate::session`]) already holds all its own state and computes its own
//! deadline; what it borrows from the node for one call is a `Ctx` (configuration,
//! keypair, an RNG, our Hello, the prologue), and its bytes are its slot buffer. The
//! node's part is routing (the maps above), the timer heap, the queues and the policies
//! (limits, duplicates, threats). To spread sessions over cores later, as quinn-proto does,
//! a session moves out of its slot with its buffer into a `Connection` that owns a
//! `Ctx` of its own (shared read-only configuration and keys, a per-connection RNG
//! derived from the node seed), and the node keeps only its index entries, exchanging
//! events with it (deadline changed, peer confirmed, closed) instead of reading it.
//!
//! ```
//! use meshlink_core::{Config, Event, HeapNode, Instant, Keypair, TransportKind};
//! use rand_core::{RngCore, SeedableRng};
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let cfg = Config::default().with(|c| {
//!     c.max_message = 1024;
//!     c.send_queue = 4096;
//!     c.max_frame = 2048;
//! });
//! let mk = |rng: &mut rand_chacha::ChaCha20Rng| {
//!     let mut seed = [0u8; 32];
//!     rng.fill_bytes(&mut seed);
//!     HeapNode::with_capacity(cfg.clone(), Keypair::generate(rng), seed, 4).unwrap()
//! };
//! let (mut a, mut b) = (mk(&mut rng), mk(&mut rng));
//! let addr = "127.0.0.1:1".parse().unwrap();
//! let now = Instant::ZERO;
//! let ca = a.connect(now, TransportKind::Stream, addr, Some(b.peer_id())).unwrap();
//! let cb = b.accept(now, addr).unwrap();
//! let mut buf = [0u8; 4096];
//! for _ in 0..4 {
//!     while let Some(t) = a.poll_transmit(now, &mut buf) { b.handle_stream(cb, now, &buf[..t.len]).unwrap(); }
//!     while let Some(t) = b.poll_transmit(now, &mut buf) { a.handle_stream(ca, now, &buf[..t.len]).unwrap(); }
//! }
//! assert!(matches!(a.poll_event(), Some(Event::Connected { .. })));
//! a.send(now, &b.peer_id(), b"hello").unwrap();
//! while let Some(t) = a.poll_transmit(now, &mut buf) { b.handle_stream(cb, now, &buf[..t.len]).unwrap(); }
//! assert!(matches!(b.poll_event(), Some(Event::Connected { .. })));
//! match b.poll_event() { Some(Event::Message { data, .. }) => assert_eq!(data, b"hello"), e => panic!("{e:?}") }
//! ```
//!
//! Firmware, with static slots and buffers and no allocator:
//!
//! ```
//! use meshlink_core::node::{Slot, SlotBound};
//! use meshlink_core::{Config, Keypair, Node};
//! let mut cfg = Config::default();
//! cfg.max_message = 512;
//! cfg.send_queue = 2048;
//! cfg.max_frame = 1024;
//! let len = cfg.slot_buffer_len();
//! // On a device: `static` storage through `static_cell`; leaked here for the example.
//! let region: &'static mut [u8] = Box::leak(vec![0u8; 2 * len].into_boxed_slice());
//! let mut chunks = region.chunks_exact_mut(len);
//! let slots: &'static mut [Slot<&'static mut [u8]>; 2] = Box::leak(Box::new([
//!     Slot::with_buffer(chunks.next().unwrap()),
//!     Slot::with_buffer(chunks.next().unwrap()),
//! ]));
//! let node = Node::new(cfg, Keypair::from_secret([7; 32]), [1; 32], &mut slots[..], SlotBound::new()).unwrap();
//! assert_eq!(node.stats().sessions, 0);
//! ```

mod index;
mod storage;

use core::net::SocketAddr;

use crate::rng::NodeRng;
#[cfg(feature = "datagram")]
use heapless::Deque;
use heapless::Vec;
use rand_core::RngCore;

use crate::buffers::{Layout, Priority};
use crate::config::{Config, ThreatPolicy};
use crate::error::Error;
use crate::identity::{Keypair, PeerId};
use crate::noise::Role;
use crate::quality::Quality;
use crate::session::{derive_psk, prologue, Ctx, DisconnectReason, Phase, Session, TransportKind};
use crate::time::Instant;
use crate::wire::{CloseReason, ErrorCode, Hello, HELLO_MAX_LEN, WIRE_VERSION};
// Datagram routing only (the `datagram` feature).
#[cfg(feature = "datagram")]
use crate::{
    session::check_init,
    wire::{Header, RejectCode, WireError},
};

use index::{Fifo, HalfOpenList, Keyed, Map, Queue};
use storage::NIL;
#[cfg(feature = "alloc")]
pub use storage::{slot_table, HeapPool};
pub use storage::{BufferPool, Slot, SlotBound};

/// A node on the heap: slots built in place, buffers allocated per session on demand.
#[cfg(feature = "alloc")]
pub type HeapNode = Node<HeapPool, alloc::boxed::Box<[Slot<alloc::boxed::Box<[u8]>>]>>;

/// The hard ceiling of a slot table: slot numbers are 16 bits in [`ConnId`] and in the
/// local session index.
pub const MAX_SLOTS: usize = 0xffff;

/// Identifies one session (one connection) for the adapter: slot number and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl ConnId {
    fn new(slot: usize, gen: u16) -> Self {
        ConnId((u32::from(gen) << 16) | slot as u32)
    }
    fn slot(self) -> usize {
        (self.0 & 0xffff) as usize
    }
    fn gen(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// One buffer of output for the adapter to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    /// The session it belongs to (for streams: which socket).
    pub conn: Option<ConnId>,
    pub kind: TransportKind,
    /// Where to send it (for datagrams).
    pub addr: SocketAddr,
    /// Bytes written at the start of the caller's buffer.
    pub len: usize,
}

/// What happened, for the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A session finished its handshake and is confirmed (F06): the peer's Hello and the
    /// first quality figures (the handshake round trip).
    Connected { conn: ConnId, peer: PeerId, addr: SocketAddr, kind: TransportKind, hello: &'a Hello, quality: Quality },
    /// A whole message from a peer (F20). `kind` is [`crate::wire::kind::DATA`] for
    /// [`Node::send`], else the application kind (`0x40..=0x7f`) it was sent with (F30),
    /// or, with feature `messaging`, an implemented messaging kind, which the
    /// [`crate::messaging::Messenger`] wrapping the node consumes.
    Message { conn: ConnId, peer: PeerId, kind: u8, data: &'a [u8] },
    /// New quality figures after a pong (F12).
    QualityUpdate { conn: ConnId, peer: PeerId, quality: Quality },
    /// The peer sent a typed error (F29).
    RemoteError { conn: ConnId, peer: PeerId, code: ErrorCode },
    /// The session is gone; the adapter closes its socket. `was_connected` is false for
    /// handshakes that never finished (a failed `connect`).
    Disconnected { conn: ConnId, peer: Option<PeerId>, addr: SocketAddr, was_connected: bool, reason: DisconnectReason },
}

/// A connected peer, as `peers()` lists it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerInfo {
    pub conn: ConnId,
    pub peer: PeerId,
    pub addr: SocketAddr,
    pub kind: TransportKind,
    pub role: Role,
    pub name: heapless::String<{ crate::wire::hello::NAME_MAX }>,
    pub connected_at: Instant,
    pub quality: Quality,
    pub threat: f32,
}

/// Node-wide figures (F13). `sessions`, `connected` and `half_open` are gauges (what is
/// live now); every other field is a counter that only ever grows (sessions that end
/// leave their counts behind), so an exporter may publish them as Prometheus counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    pub sessions: usize,
    pub connected: usize,
    pub half_open: usize,
    pub handshakes_completed: u64,
    pub handshakes_failed: u64,
    pub records_dropped: u64,
    pub rejects_sent: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
    /// Cookie replies queued for datagram Inits under load (PROTOCOL.md §5.12).
    pub cookies_sent: u64,
    /// Datagram Inits dropped for a wrong `mac1`.
    pub bad_mac1: u64,
    /// Datagram Inits under load whose non-zero `mac2` did not verify (each got a Cookie).
    pub bad_mac2: u64,
    /// Datagram Inits admitted under load on a valid `mac2` (a cookie round trip).
    pub inits_admitted: u64,
}

const EV_CONNECTED: u8 = 1;
const EV_MESSAGE: u8 = 2;
const EV_QUALITY: u8 = 4;
const EV_ERROR: u8 = 8;
const EV_DISCONNECTED: u8 = 16;

/// `SlotIx::counted` bits: which gauges a session is counted in.
const C_CONNECTED: u8 = 1;
const C_HALF_OPEN: u8 = 2;

/// Stateless replies (Reject and Cookie records) waiting to go out; more are dropped,
/// never queued.
#[cfg(feature = "datagram")]
const REPLY_QUEUE: usize = 8;

/// A stateless reply, kept small: a Cookie record is sealed when it is sent.
#[cfg(feature = "datagram")]
#[derive(Debug, Clone, Copy)]
enum Reply {
    Reject([u8; 8]),
    Cookie { receiver: u32, mac1: [u8; crate::cookie::MAC_LEN], cookie: [u8; crate::cookie::COOKIE_LEN] },
}

/// A meshlink node over a slot table `S` and a buffer pool `P` (see the module docs).
pub struct Node<P: BufferPool, S> {
    config: Config,
    keypair: Keypair,
    rng: NodeRng,
    layout: Layout,
    hello: Vec<u8, HELLO_MAX_LEN>,
    prologue: [u8; 64],
    prologue_len: usize,
    psk: Option<[u8; 32]>,
    slots: S,
    pool: P,
    /// Slots in use: the table's length, at most [`MAX_SLOTS`]; also the bucket count.
    cap: u32,
    hasher: Keyed,
    free: Fifo,
    tx_queue: Fifo,
    ev_queue: Fifo,
    heap_len: u32,
    half_open_in: HalfOpenList,
    threat_len: u32,
    /// The slot whose message the last `poll_event` lent out: re-examined (and its buffer
    /// handed back if now idle) at the next `poll_event`.
    lent_msg: u32,
    #[cfg(feature = "datagram")]
    replies: Deque<(SocketAddr, Reply), REPLY_QUEUE>,
    /// Inbound half-open datagram sessions: the load that turns cookies on (§5.12).
    half_open_dg: usize,
    /// mac1 and Cookie-reply keys (from the network id), and the rotating cookie secret.
    #[cfg(feature = "datagram")]
    mac1_key: [u8; 32],
    #[cfg(feature = "datagram")]
    reply_key: [u8; 32],
    #[cfg(feature = "datagram")]
    cookies: crate::cookie::Checker,
    stats: NodeStats,
    last_now: Instant,
}

impl<P: BufferPool, S> core::fmt::Debug for Node<P, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.keypair.peer_id())
            .field("sessions", &self.stats.sessions)
            .field("capacity", &self.cap)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "alloc")]
impl HeapNode {
    /// A node with room for `capacity` sessions (1..=65,535), its slot table built in
    /// place on the heap and its buffers allocated per session on demand. `max_peers` is
    /// lowered to `capacity` if above it.
    pub fn with_capacity(config: Config, keypair: Keypair, seed: [u8; 32], capacity: usize) -> Result<Self, Error> {
        if capacity == 0 || capacity > MAX_SLOTS {
            return Err(Error::InvalidConfig(crate::config::ConfigError {
                field: "capacity",
                problem: "must be 1..=65535 sessions",
            }));
        }
        Node::new(config, keypair, seed, slot_table(capacity), HeapPool::default())
    }
}

impl<P, S> Node<P, S>
where
    P: BufferPool,
    S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
{
    /// Creates a node over the caller's slot table and buffer pool (see the module docs).
    /// `seed` seeds the node's CSPRNG (ephemeral keys, indexes, jitter): give it 32 bytes
    /// from the platform's entropy source. The configuration is checked with
    /// [`Config::validate`]; `max_peers` is lowered to the table's length if above it.
    /// Buffers already in slots must hold `config.slot_buffer_len()` bytes.
    pub fn new(mut config: Config, keypair: Keypair, seed: [u8; 32], mut slots: S, pool: P) -> Result<Self, Error> {
        config.validate()?;
        let n = slots.as_ref().len();
        if n == 0 || n > MAX_SLOTS {
            return Err(Error::InvalidConfig(crate::config::ConfigError {
                field: "slots",
                problem: "the slot table must hold 1..=65535 slots",
            }));
        }
        config.max_peers = config.max_peers.min(n);
        config.hello.version = WIRE_VERSION;
        config.hello.max_frame = config.max_frame as u32;
        config.hello.max_datagram = config.max_datagram as u32;
        config.hello.max_message = config.max_message as u32;
        if config.datagram_window > 0 && config.hello.extensions.get(crate::session::EXT_DATAGRAM_WINDOW).is_none() {
            // Our datagram receive window (§8.8); validated above.
            let mut v = [0u8; 5];
            let n = crate::session::window_ext(config.datagram_window, &mut v);
            config.hello.extensions.insert(crate::session::EXT_DATAGRAM_WINDOW, &v[..n])?;
        }
        if config.max_batch > 1 && config.hello.extensions.get(crate::session::EXT_BATCH).is_none() {
            // Batching (§9.2); validated above to 2..=255 here.
            config.hello.extensions.insert(crate::session::EXT_BATCH, &[config.max_batch as u8])?;
        }
        let mut hello_buf = [0u8; HELLO_MAX_LEN];
        let len = config.hello.encode(&mut hello_buf)?;
        let hello = Vec::from_slice(&hello_buf[..len]).map_err(|_| Error::Config("hello too long"))?;
        let layout = Layout::new(&config);
        let mut free = Fifo::new();
        {
            let table = slots.as_mut();
            for s in table.iter_mut() {
                if s.buf.as_ref().is_some_and(|b| b.as_ref().len() < layout.total()) {
                    return Err(Error::BufferTooSmall { required: layout.total() });
                }
                // A table handed over from an earlier node starts clean (its buffers stay).
                s.sess = None;
                s.ev = 0;
                s.in_ev_queue = false;
                s.in_tx_queue = false;
                s.ix = storage::SlotIx::new();
            }
            for i in 0..n as u32 {
                free.push_back(table, Queue::Free, i);
            }
        }
        // The index hash key comes from its own ChaCha stream, so the session RNG stream
        // (and with it every golden vector) is the same as without indexes.
        let mut krng = NodeRng::new(seed, 0x6d6c_696e_6b69_6478);
        let hasher = Keyed::new([krng.next_u64(), krng.next_u64()]);
        let mut pro = [0u8; 64];
        let prologue_len = prologue(&config, &mut pro);
        Ok(Node {
            psk: derive_psk(&config),
            #[cfg(feature = "datagram")]
            mac1_key: crate::cookie::mac1_key(&config.network_id),
            #[cfg(feature = "datagram")]
            reply_key: crate::cookie::reply_key(&config.network_id),
            #[cfg(feature = "datagram")]
            cookies: crate::cookie::Checker::new(),
            half_open_dg: 0,
            config,
            keypair,
            rng: NodeRng::new(seed, 0),
            layout,
            hello,
            prologue: pro,
            prologue_len,
            slots,
            pool,
            cap: n as u32,
            hasher,
            free,
            tx_queue: Fifo::new(),
            ev_queue: Fifo::new(),
            heap_len: 0,
            half_open_in: HalfOpenList::new(),
            threat_len: 0,
            lent_msg: NIL,
            #[cfg(feature = "datagram")]
            replies: Deque::new(),
            stats: NodeStats::default(),
            last_now: Instant::ZERO,
        })
    }

    /// Our peer id (the static public key).
    pub fn peer_id(&self) -> PeerId {
        self.keypair.peer_id()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The slot table's length: the most sessions this node can ever hold.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The buffer pool (for its own figures: buffers lent, spares kept).
    pub fn pool(&self) -> &P {
        &self.pool
    }

    fn tick(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn sl(&self) -> &[Slot<P::Buf>] {
        self.slots.as_ref()
    }

    fn sl_mut(&mut self) -> &mut [Slot<P::Buf>] {
        self.slots.as_mut()
    }

    fn sess(&self, slot: usize) -> Option<&Session> {
        self.sl().get(slot)?.sess.as_ref()
    }

    fn sess_mut(&mut self, slot: usize) -> Option<&mut Session> {
        self.sl_mut().get_mut(slot)?.sess.as_mut()
    }

    fn bucket_peer(&self, peer: &PeerId) -> u32 {
        (self.hasher.hash(&[peer.as_bytes()]) % u64::from(self.cap)) as u32
    }

    fn bucket_dg(&self, addr: &SocketAddr, sender: u32) -> u32 {
        let ip = match addr.ip() {
            core::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            core::net::IpAddr::V6(a) => a.octets(),
        };
        let h = self.hasher.hash(&[&ip, &addr.port().to_le_bytes(), &sender.to_le_bytes()]);
        (h % u64::from(self.cap)) as u32
    }

    /// The announced session with `peer`, if any (one at most: see `after`).
    fn peer_slot(&self, peer: &PeerId) -> Option<usize> {
        let b = self.bucket_peer(peer);
        index::map_find(self.sl(), Map::Peer, b, |s| s.ix.peer_key.as_ref() == Some(peer)).map(|i| i as usize)
    }

    fn index_peer(&mut self, slot: usize, peer: PeerId) {
        if let Some(old) = self.peer_slot(&peer) {
            if old == slot {
                return;
            }
            self.unindex_peer(old);
        }
        let b = self.bucket_peer(&peer);
        let t = self.sl_mut();
        t[slot].ix.peer_key = Some(peer);
        index::map_insert(t, Map::Peer, b, slot as u32);
    }

    fn unindex_peer(&mut self, slot: usize) {
        if let Some(peer) = self.sl()[slot].ix.peer_key {
            let b = self.bucket_peer(&peer);
            let t = self.sl_mut();
            index::map_remove(t, Map::Peer, b, slot as u32);
            t[slot].ix.peer_key = None;
        }
    }

    /// The inbound datagram session that `sender` at `from` already started (a
    /// retransmitted Init), if any.
    #[cfg(feature = "datagram")]
    fn dg_slot(&self, from: &SocketAddr, sender: u32) -> Option<usize> {
        let b = self.bucket_dg(from, sender);
        index::map_find(self.sl(), Map::Dg, b, |s| {
            s.ix.dg_key == Some((*from, sender))
                && s.sess.as_ref().is_some_and(|x| {
                    x.kind == TransportKind::Datagram
                        && x.addr == *from
                        && x.role == Role::Responder
                        && x.remote_index == sender
                })
        })
        .map(|i| i as usize)
    }

    /// A free slot, within the limits. `from` is the remote address of an inbound
    /// handshake (subject to the per-IP cap); outbound ones pass `None`. With `evict`, a
    /// full half-open table makes room by ending its oldest inbound handshake (a SYN
    /// cache's rule): silent sockets then cannot lock new peers out for a whole
    /// `handshake_timeout`, since each new handshake pushes the oldest one out.
    fn alloc(&mut self, from: Option<SocketAddr>, evict: bool) -> Result<usize, Error> {
        if self.stats.sessions >= self.config.max_peers {
            return Err(Error::PeerLimit { limit: self.config.max_peers });
        }
        if let Some(from) = from {
            // Bounded by max_half_open: only inbound half-open sessions are on the list.
            let ip = from.ip();
            let same_ip = self
                .half_open_in
                .iter(self.sl())
                .filter(|&i| self.sess(i as usize).is_some_and(|s| s.addr.ip() == ip))
                .count();
            if same_ip >= self.config.max_half_open_per_ip {
                return Err(Error::HalfOpenLimit { limit: self.config.max_half_open_per_ip });
            }
        }
        if self.stats.half_open >= self.config.max_half_open {
            let oldest = self.half_open_in.head;
            if !evict || oldest == NIL {
                return Err(Error::HalfOpenLimit { limit: self.config.max_half_open });
            }
            let oldest = oldest as usize;
            if let Some(s) = self.sess_mut(oldest) {
                s.hs_out_pending = false;
            }
            self.fail(oldest, Error::HandshakeEvicted);
            let now = self.last_now;
            self.after(oldest, now);
        }
        let Node { free, slots, .. } = self;
        free.pop_front(slots.as_mut(), Queue::Free)
            .map(|i| i as usize)
            .ok_or(Error::PeerLimit { limit: self.config.max_peers })
    }

    /// Puts a new session in a free slot, with a buffer. On failure the slot is free again.
    fn install(&mut self, slot: usize, sess: Session) -> Result<(), Error> {
        self.sl_mut()[slot].sess = Some(sess);
        if let Err(e) = self.ensure_buf(slot) {
            self.sl_mut()[slot].sess = None;
            let Node { free, slots, .. } = self;
            free.push_back(slots.as_mut(), Queue::Free, slot as u32);
            return Err(e);
        }
        self.stats.sessions += 1;
        Ok(())
    }

    /// Gives the slot a buffer if it has none.
    fn ensure_buf(&mut self, slot: usize) -> Result<(), Error> {
        let len = self.layout.total();
        let Node { slots, pool, .. } = self;
        let s = &mut slots.as_mut()[slot];
        if s.buf.is_none() {
            let b = pool.take(len).ok_or(Error::NoBuffer)?;
            if b.as_ref().len() < len {
                let _ = pool.give(b);
                return Err(Error::BufferTooSmall { required: len });
            }
            s.buf = Some(b);
        }
        Ok(())
    }

    fn local_index(&mut self, slot: usize) -> u32 {
        // Low 16 bits find the slot in O(1); high 16 bits are random so that off-path
        // guesses rarely land (and the AEAD stops the rest).
        (self.rng.next_u32() & 0xffff_0000) | slot as u32
    }

    /// What a session borrows from the node for one call, and the slot table beside it.
    fn parts(&mut self) -> (Ctx<'_>, &mut [Slot<P::Buf>]) {
        let Node { config, keypair, rng, layout, hello, prologue, prologue_len, psk, slots, .. } = self;
        let ctx = Ctx {
            config,
            keypair,
            rng,
            layout: *layout,
            hello: hello.as_slice(),
            prologue: &prologue[..*prologue_len],
            psk: *psk,
        };
        (ctx, slots.as_mut())
    }

    /// The session in `slot` with its buffer (taken from the pool if it had none).
    fn split(&mut self, slot: usize) -> Result<(Ctx<'_>, &mut Session, &mut [u8]), Error> {
        if self.sess(slot).is_none() {
            return Err(Error::UnknownConn);
        }
        self.ensure_buf(slot)?;
        let (ctx, slots) = self.parts();
        let s = &mut slots[slot];
        let (Some(sess), Some(buf)) = (s.sess.as_mut(), s.buf.as_mut()) else { return Err(Error::UnknownConn) };
        Ok((ctx, sess, buf.as_mut()))
    }

    fn slot_of(&self, conn: ConnId) -> Result<usize, Error> {
        let s = self.sl().get(conn.slot()).ok_or(Error::UnknownConn)?;
        if s.gen != conn.gen() || s.sess.is_none() {
            return Err(Error::UnknownConn);
        }
        Ok(conn.slot())
    }

    fn conn_of(&self, slot: usize) -> ConnId {
        ConnId::new(slot, self.sl()[slot].gen)
    }

    // ------------------------------------------------------------------ commands

    /// Starts a handshake to `addr` over `kind` (F06). For streams, call it once the
    /// socket is connected. With `expected`, the peer must prove that key (F04), and the
    /// IK fast path is used when allowed. Naming our own key is [`Error::SelfConnect`].
    /// Without the `datagram` feature, `TransportKind::Datagram` is [`Error::Unsupported`].
    pub fn connect(
        &mut self,
        now: Instant,
        kind: TransportKind,
        addr: SocketAddr,
        expected: Option<PeerId>,
    ) -> Result<ConnId, Error> {
        let now = self.tick(now);
        if kind == TransportKind::Datagram && !cfg!(feature = "datagram") {
            return Err(Error::Unsupported { feature: "datagram" });
        }
        if let Some(p) = expected {
            if p == self.keypair.peer_id() {
                return Err(Error::SelfConnect);
            }
            if self.threat_above(&p) {
                return Err(Error::Threat);
            }
        }
        let slot = self.alloc(None, false)?;
        let index = self.local_index(slot);
        // Built in place (a Session is ~4.8 KB): installed blank, then started in its slot.
        self.install(slot, Session::blank(kind, addr, Role::Initiator, index, now))?;
        let r = match self.split(slot) {
            Ok((mut ctx, sess, _)) => sess.start_initiator(&mut ctx, expected, now),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            // Never reported: the slot goes back as if the connect had not happened.
            let _ = self.remove(slot);
            return Err(e);
        }
        self.after(slot, now);
        Ok(self.conn_of(slot))
    }

    /// Registers an accepted stream connection from `addr`; the peer's Init follows.
    /// When the half-open table is full, the oldest inbound handshake is ended to make
    /// room (it gets `Disconnected` with [`Error::HandshakeEvicted`]); the per-IP cap
    /// still refuses.
    pub fn accept(&mut self, now: Instant, addr: SocketAddr) -> Result<ConnId, Error> {
        let now = self.tick(now);
        let slot = self.alloc(Some(addr), true)?;
        let index = self.local_index(slot);
        self.install(slot, Session::responder(TransportKind::Stream, addr, index, now))?;
        self.after(slot, now);
        Ok(self.conn_of(slot))
    }

    fn primary_slot(&self, peer: &PeerId) -> Option<usize> {
        self.peer_slot(peer).filter(|&s| self.sess(s).is_some_and(|x| x.is_connected()))
    }

    /// Queues a message to a connected peer (F20). Never blocks: a full queue is `QueueFull`.
    pub fn send(&mut self, now: Instant, peer: &PeerId, data: &[u8]) -> Result<(), Error> {
        let now = self.tick(now);
        let slot = self.primary_slot(peer).ok_or(Error::UnknownPeer)?;
        let r = match self.split(slot) {
            Ok((ctx, sess, buf)) => sess.send(&ctx, buf, data),
            Err(e) => Err(e),
        };
        self.after(slot, now);
        r
    }

    /// Queues a message of an application kind (`0x40..=0x7f`, F30) at normal priority;
    /// the peer receives it as `Event::Message { kind, .. }`. Any other kind is
    /// `InvalidKind`.
    pub fn send_kind(&mut self, now: Instant, peer: &PeerId, kind: u8, data: &[u8]) -> Result<(), Error> {
        if !crate::wire::kind::is_application(kind) {
            return Err(Error::InvalidKind { kind });
        }
        self.send_with(now, peer, kind, Priority::Normal, data)
    }

    /// Queues a message of `kind` (Data, `0x03`, or an application kind) in the queue of
    /// `priority` ([`Priority`] says how the classes are served). A full class is
    /// `QueueFull` for that class only.
    ///
    /// ```
    /// # use meshlink_core::{Config, Error, HeapNode, Instant, Keypair, Priority};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    /// # let cfg = Config::default();
    /// # let mut node = HeapNode::with_capacity(cfg, Keypair::generate(&mut rng), [0; 32], 1).unwrap();
    /// # let peer = Keypair::generate(&mut rng).peer_id();
    /// // Kinds below the application range are refused before anything else.
    /// assert_eq!(node.send_with(Instant::ZERO, &peer, 0x01, Priority::High, b"x"), Err(Error::InvalidKind { kind: 0x01 }));
    /// assert_eq!(node.send_with(Instant::ZERO, &peer, 0x40, Priority::High, b"x"), Err(Error::UnknownPeer));
    /// ```
    pub fn send_with(
        &mut self,
        now: Instant,
        peer: &PeerId,
        kind: u8,
        priority: Priority,
        data: &[u8],
    ) -> Result<(), Error> {
        if kind != crate::wire::kind::DATA && !crate::wire::kind::is_application(kind) {
            return Err(Error::InvalidKind { kind });
        }
        let now = self.tick(now);
        let slot = self.primary_slot(peer).ok_or(Error::UnknownPeer)?;
        let r = match self.split(slot) {
            Ok((ctx, sess, buf)) => sess.send_with(&ctx, buf, kind, priority, data),
            Err(e) => Err(e),
        };
        self.after(slot, now);
        r
    }

    /// Closes the session with `peer`, sending a Close first (F07).
    pub fn disconnect(&mut self, now: Instant, peer: &PeerId) -> Result<(), Error> {
        let slot = self.primary_slot(peer).ok_or(Error::UnknownPeer)?;
        self.close_slot(slot, CloseReason::Normal, now);
        Ok(())
    }

    /// Closes one session by connection id (also a handshake in progress).
    pub fn close(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        let slot = self.slot_of(conn)?;
        self.close_slot(slot, CloseReason::Normal, now);
        Ok(())
    }

    /// Closes every session (graceful shutdown): each connected peer gets a Close.
    pub fn close_all(&mut self, now: Instant) {
        for slot in 0..self.cap as usize {
            if self.sess(slot).is_some() {
                self.close_slot(slot, CloseReason::Shutdown, now);
            }
        }
    }

    fn close_slot(&mut self, slot: usize, reason: CloseReason, now: Instant) {
        if let Some(sess) = self.sess_mut(slot) {
            sess.close(reason);
        }
        self.after(slot, now);
    }

    /// Sets a peer's threat score (F05), usually from an external classifier. Above
    /// `threat_threshold` the policy applies: `Refuse` blocks new handshakes, `Drop` also
    /// closes the current session. The table holds one score per slot; when it is full,
    /// a new score replaces the lowest one if higher (a scan, only then).
    pub fn set_threat_score(&mut self, now: Instant, peer: PeerId, score: f32) {
        let now = self.tick(now);
        let score = if score.is_nan() { 1.0 } else { score.clamp(0.0, 1.0) };
        let b = self.bucket_peer(&peer);
        let found = index::map_find(self.sl(), Map::Threat, b, |s| s.ix.threat.is_some_and(|(p, _)| p == peer));
        if let Some(e) = found {
            self.sl_mut()[e as usize].ix.threat = Some((peer, score));
        } else if self.threat_len < self.cap {
            let e = self.threat_len;
            self.threat_len += 1;
            let t = self.sl_mut();
            t[e as usize].ix.threat = Some((peer, score));
            index::map_insert(t, Map::Threat, b, e);
        } else {
            let min = (0..self.threat_len)
                .filter_map(|e| self.sl()[e as usize].ix.threat.map(|(p, s)| (e, p, s)))
                .min_by(|a, b| a.2.total_cmp(&b.2));
            if let Some((e, old, s)) = min.filter(|m| m.2 < score) {
                let _ = s;
                let ob = self.bucket_peer(&old);
                let t = self.sl_mut();
                index::map_remove(t, Map::Threat, ob, e);
                t[e as usize].ix.threat = Some((peer, score));
                index::map_insert(t, Map::Threat, b, e);
            }
        }
        if score > self.config.threat_threshold && self.config.threat_policy == ThreatPolicy::Drop {
            // Handshakes still running with this peer are refused when they finish (`after`).
            if let Some(slot) = self.peer_slot(&peer) {
                if self.sess(slot).is_some_and(|s| s.phase != Phase::Closed) {
                    self.close_slot(slot, CloseReason::Threat, now);
                }
            }
        }
    }

    /// The threat score set for `peer`, 0 if none.
    pub fn threat_score(&self, peer: &PeerId) -> f32 {
        let b = self.bucket_peer(peer);
        index::map_find(self.sl(), Map::Threat, b, |s| s.ix.threat.is_some_and(|(p, _)| p == *peer))
            .and_then(|e| self.sl()[e as usize].ix.threat)
            .map_or(0.0, |(_, s)| s)
    }

    fn threat_above(&self, peer: &PeerId) -> bool {
        self.threat_score(peer) > self.config.threat_threshold
    }

    // ------------------------------------------------------------------ input

    /// Feeds bytes received on a stream connection. Returns how many were consumed; see
    /// the module docs. An error closes the connection (a `Disconnected` event follows).
    pub fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) -> Result<usize, Error> {
        let now = self.tick(now);
        let slot = self.slot_of(conn)?;
        if self.sess(slot).is_some_and(|s| s.kind != TransportKind::Stream) {
            return Err(Error::WrongTransport);
        }
        let r = match self.split(slot) {
            Ok((mut ctx, sess, buf)) => sess.handle_stream(&mut ctx, buf, bytes, now),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            match e {
                Error::TooLarge { .. } => {} // answered with an Error packet, stream still in sync
                _ => self.fail(slot, e),
            }
        }
        self.after(slot, now);
        r
    }

    /// The stream under `conn` closed (EOF or error).
    pub fn handle_stream_closed(&mut self, conn: ConnId, now: Instant) {
        let now = self.tick(now);
        if let Ok(slot) = self.slot_of(conn) {
            if let Some(s) = self.sess_mut(slot) {
                if s.phase != Phase::Closed {
                    s.phase = Phase::Closed;
                    s.close_reason.get_or_insert(DisconnectReason::TransportClosed);
                }
                s.hs_out_pending = false;
            }
            self.after(slot, now);
        }
    }

    fn fail(&mut self, slot: usize, e: Error) {
        let mut failed = false;
        if let Some(s) = self.sess_mut(slot) {
            failed = s.phase == Phase::Handshake;
            s.phase = Phase::Closed;
            s.close_reason.get_or_insert(DisconnectReason::Error(e));
        }
        if failed {
            self.stats.handshakes_failed += 1;
        }
    }

    /// Feeds one received datagram. A bad datagram is dropped with a typed error; no
    /// other session is affected. Needs the `datagram` feature.
    #[cfg(feature = "datagram")]
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        let now = self.tick(now);
        let r = self.route_datagram(now, from, bytes);
        if r.is_err() {
            self.stats.records_dropped += 1;
        }
        r
    }

    #[cfg(feature = "datagram")]
    fn route_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        let max = self.config.max_datagram.min(self.layout.rx);
        if bytes.len() > max {
            return Err(WireError::FrameTooLarge { len: bytes.len(), max }.into());
        }
        let header = Header::parse(bytes)?;
        let slot = match header {
            Header::Init { version, min_version, sender, network_tag: tag, .. } => {
                // A range we do not share is refused first (PROTOCOL.md §3): an older
                // initiator pads to a shorter minimum and has no mac tail, and must learn
                // why it gets no session. The 8-byte Reject is smaller than any Init.
                let theirs = crate::wire::VersionRange { min: min_version, max: version };
                if let Err((RejectCode::Version, e)) = check_init(&self.config, theirs, tag) {
                    self.reply_reject(from, RejectCode::Version, sender);
                    return Err(e);
                }
                // Shorter than every initiator must pad to (§5.1), with its mac tail
                // (§5.12): answering it could amplify, and no honest node of a version we
                // speak sends it. Dropped, counted, unanswered.
                let min = crate::session::DATAGRAM_INIT_MIN;
                if bytes.len() < min {
                    return Err(WireError::Truncated { needed: min, got: bytes.len() }.into());
                }
                if let Err((code, e)) = check_init(&self.config, theirs, tag) {
                    self.reply_reject(from, code, sender);
                    return Err(e);
                }
                if !crate::cookie::check_mac1(&self.mac1_key, bytes) {
                    self.stats.bad_mac1 += 1;
                    return Err(Error::BadMac1);
                }
                if let Some(slot) = self.dg_slot(&from, sender) {
                    slot // a retransmitted Init: no new state, no DH, so no cookie needed
                } else {
                    self.check_cookie(now, from, sender, bytes)?;
                    let slot = match self.alloc(Some(from), false) {
                        Ok(s) => s,
                        Err(e) => {
                            self.reply_reject(from, RejectCode::Busy, sender);
                            return Err(e);
                        }
                    };
                    let index = self.local_index(slot);
                    self.install(slot, Session::responder(TransportKind::Datagram, from, index, now))?;
                    let b = self.bucket_dg(&from, sender);
                    let t = self.sl_mut();
                    t[slot].ix.dg_key = Some((from, sender));
                    index::map_insert(t, Map::Dg, b, slot as u32);
                    slot
                }
            }
            Header::Resp { receiver, .. }
            | Header::Final { receiver }
            | Header::Transport { receiver, .. }
            | Header::Reject { receiver, .. }
            | Header::Cookie { receiver, .. } => {
                let slot = (receiver & 0xffff) as usize;
                let ok =
                    self.sess(slot).is_some_and(|s| s.local_index == receiver && s.kind == TransportKind::Datagram);
                if !ok {
                    return Err(Error::UnexpectedRecord);
                }
                slot
            }
        };
        // A batched record stopped at a message the application has since taken goes
        // on before this datagram overwrites it (§9.2).
        self.resume_batch(slot);
        if self.sess(slot).is_some_and(|s| s.msg_ready.is_some() || s.batch_pending()) {
            return Err(Error::WouldBlock);
        }
        // The session reads a datagram Init without its mac tail (checked above).
        let len =
            if matches!(header, Header::Init { .. }) { bytes.len() - crate::cookie::MACS_LEN } else { bytes.len() };
        let (r, was_handshake) = match self.split(slot) {
            Ok((mut ctx, sess, buf)) => {
                buf[..len].copy_from_slice(&bytes[..len]);
                let was_handshake = sess.phase == Phase::Handshake;
                let r = sess.on_record(&mut ctx, buf, 0..len, now);
                if r.is_ok() && matches!(header, Header::Transport { .. }) {
                    sess.addr = from; // roaming: follow the peer's authenticated address
                }
                (r, was_handshake)
            }
            Err(e) => (Err(e), false),
        };
        if let Err(e) = r {
            // Handshake failures end the attempt; anything else only drops the datagram.
            let refused = matches!(
                e,
                Error::Rejected(_) | Error::NetworkMismatch | Error::VersionMismatch { .. } | Error::PatternMismatch
            );
            // A Resp that fails to decrypt is dropped: the initiator read it into a copy
            // of its handshake, which stays ready for the genuine Resp. Errors after
            // authentication end the session inside the session itself.
            // A Cookie reply that fails is unauthenticated noise: dropped, nothing ends.
            let stray_resp = matches!(header, Header::Resp { .. }) && matches!(e, Error::Noise(_))
                || matches!(header, Header::Cookie { .. });
            let fatal = refused
                || was_handshake
                    && !stray_resp
                    && (matches!(header, Header::Init { .. }) || matches!(e, Error::Noise(_) | Error::Threat));
            if fatal {
                self.fail(slot, e);
            }
        }
        self.after(slot, now);
        r
    }

    #[cfg(feature = "datagram")]
    fn reply_reject(&mut self, to: SocketAddr, code: RejectCode, receiver: u32) {
        let mut rec = [0u8; 8];
        let ours = self.config.versions();
        if (Header::Reject { code, version: ours.max, min_version: ours.min, receiver }).encode(&mut rec).is_ok()
            && self.replies.push_back((to, Reply::Reject(rec))).is_ok()
        {
            self.stats.rejects_sent += 1;
        }
    }

    /// Cookies (PROTOCOL.md §5.12): under load (`cookie_half_open` inbound half-open
    /// datagram handshakes), a new Init needs a valid mac2, else it gets a Cookie reply
    /// and no session. Costs two BLAKE2s, never a Diffie-Hellman.
    #[cfg(feature = "datagram")]
    fn check_cookie(&mut self, now: Instant, from: SocketAddr, sender: u32, init: &[u8]) -> Result<(), Error> {
        if self.half_open_dg < self.config.cookie_half_open {
            return Ok(());
        }
        let (verdict, cookie) = self.cookies.check_mac2(&mut self.rng, now, &from, init);
        let e = match verdict {
            crate::cookie::Mac2::Valid => {
                self.stats.inits_admitted += 1;
                return Ok(());
            }
            crate::cookie::Mac2::Missing => Error::CookieRequired,
            _ => {
                self.stats.bad_mac2 += 1;
                Error::BadMac2
            }
        };
        let mac1 = *crate::cookie::mac1_of(init);
        if self.replies.push_back((from, Reply::Cookie { receiver: sender, mac1, cookie })).is_ok() {
            self.stats.cookies_sent += 1;
        }
        Err(e)
    }

    /// Runs every timer that is due: pings, retransmissions, dead-peer and handshake
    /// timeouts. Only the sessions whose deadline has passed are touched (the heap's
    /// top), each at most once per call.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        let mut budget = self.heap_len;
        while budget > 0 {
            budget -= 1;
            let Some((due, slot)) = index::heap_peek(self.sl(), self.heap_len) else { break };
            if due > now {
                break;
            }
            let slot = slot as usize;
            let r = {
                let (mut ctx, slots) = self.parts();
                let Some(sess) = slots[slot].sess.as_mut() else {
                    let Node { slots, heap_len, .. } = self;
                    index::heap_set(slots.as_mut(), heap_len, slot as u32, Instant::FAR_FUTURE);
                    continue;
                };
                if sess.next_timeout(ctx.config) > now {
                    Ok(())
                } else {
                    sess.handle_timeout(&mut ctx, now)
                }
            };
            if let Err(e) = r {
                let reason =
                    if e == Error::PeerTimeout { DisconnectReason::Timeout } else { DisconnectReason::Error(e) };
                if let Some(sess) = self.sess_mut(slot) {
                    sess.close_reason.get_or_insert(reason);
                }
                self.fail(slot, e);
            }
            self.after(slot, now);
        }
    }

    // ------------------------------------------------------------------ output

    /// The next buffer to send, written into `buf`. A stream transmit may hold several
    /// frames. `buf` should be at least `max_frame + 2` (streams) or `max_datagram` bytes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let now = self.tick(now);
        #[cfg(feature = "datagram")]
        if let Some((addr, reply)) = self.replies.pop_front() {
            let len = match reply {
                Reply::Reject(rec) => buf.get_mut(..rec.len()).map(|dst| {
                    dst.copy_from_slice(&rec);
                    rec.len()
                }),
                Reply::Cookie { receiver, mac1, cookie } => {
                    // Sealed now, so that a queued reply costs 36 bytes, not 64.
                    let mut nonce = [0u8; crate::cookie::NONCE_LEN];
                    self.rng.fill_bytes(&mut nonce);
                    let mut rec = [0u8; crate::cookie::COOKIE_REPLY_LEN];
                    crate::cookie::seal_reply(&self.reply_key, receiver, &nonce, &cookie, &mac1, &mut rec);
                    buf.get_mut(..rec.len()).map(|dst| {
                        dst.copy_from_slice(&rec);
                        rec.len()
                    })
                }
            };
            if let Some(len) = len {
                return Some(Transmit { conn: None, kind: TransportKind::Datagram, addr, len });
            }
        }
        // Each queued session is asked once per call, so one that cannot produce anything
        // right now (a too-small buffer) cannot spin this loop.
        let mut budget = self.tx_queue.len;
        while budget > 0 {
            budget -= 1;
            let slot = {
                let Node { tx_queue, slots, .. } = self;
                let Some(slot) = tx_queue.pop_front(slots.as_mut(), Queue::Tx) else { break };
                slot as usize
            };
            self.sl_mut()[slot].in_tx_queue = false;
            let Some((kind, addr)) = self.sess(slot).map(|s| (s.kind, s.addr)) else { continue };
            let r = match self.split(slot) {
                Ok((mut ctx, sess, sbuf)) => sess.poll_transmit(&mut ctx, sbuf, buf, now),
                Err(e) => Err(e),
            };
            let conn = self.conn_of(slot);
            match r {
                Ok(0) => self.after(slot, now),
                Ok(len) => {
                    self.stats.bytes_out += len as u64;
                    self.after(slot, now);
                    return Some(Transmit { conn: Some(conn), kind, addr, len });
                }
                // The caller's buffer, not the peer's fault: retry with a larger one.
                Err(Error::BufferTooSmall { .. }) => self.after(slot, now),
                Err(e) => {
                    self.fail(slot, e);
                    self.after(slot, now);
                }
            }
        }
        None
    }

    /// When `handle_timeout` must next be called, if ever. O(1): the top of the heap.
    pub fn poll_timeout(&self) -> Option<Instant> {
        index::heap_peek(self.sl(), self.heap_len).map(|(t, _)| t)
    }

    /// The next event, if any. A `Message` borrows the node until the next call.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        if self.lent_msg != NIL {
            let lent = core::mem::replace(&mut self.lent_msg, NIL) as usize;
            self.resume_batch(lent);
            self.refresh(lent);
        }
        let (slot, bit) = self.next_event()?;
        let now = self.last_now;
        let conn = self.conn_of(slot);
        let timeout = self.config.pong_timeout;
        if bit == EV_DISCONNECTED {
            // The few fields the event needs are read in place: the ~4.8 KB session is
            // dropped (and zeroised) in its slot, never moved onto this frame.
            let sess = self.sess(slot)?;
            let (peer, addr, was_connected) = (sess.peer, sess.addr, sess.announced);
            let reason = sess.close_reason.unwrap_or(DisconnectReason::Local(CloseReason::Normal));
            self.remove(slot)?;
            return Some(Event::Disconnected { conn, peer, addr, was_connected, reason });
        }
        let s = &mut self.slots.as_mut()[slot];
        let sess = s.sess.as_mut()?;
        let peer = sess.peer?;
        match bit {
            EV_CONNECTED => {
                let quality = sess.quality.snapshot(now, timeout);
                let hello = sess.hello.as_ref()?;
                Some(Event::Connected { conn, peer, addr: sess.addr, kind: sess.kind, hello, quality })
            }
            EV_MESSAGE => {
                let range = sess.msg_ready.take()?;
                sess.on_consumed();
                self.stats.msgs_in += 1;
                self.lent_msg = slot as u32;
                let kind = sess.msg_kind;
                let data = s.buf.as_ref()?.as_ref().get(range)?;
                Some(Event::Message { conn, peer, kind, data })
            }
            EV_QUALITY => {
                sess.quality_dirty = false;
                Some(Event::QualityUpdate { conn, peer, quality: sess.quality.snapshot(now, timeout) })
            }
            _ => {
                let code = sess.remote_error.take()?;
                Some(Event::RemoteError { conn, peer, code })
            }
        }
    }

    /// Takes a reported session out of its slot: out of every index, its last counts
    /// folded in, its buffer back to the pool, the slot on the free list. The session is
    /// dropped in place (`None` if the slot had none).
    fn remove(&mut self, slot: usize) -> Option<()> {
        self.fold(slot);
        self.set_counted(slot, 0);
        self.unindex_peer(slot);
        if let Some(key) = self.sl()[slot].ix.dg_key {
            let b = self.bucket_dg(&key.0, key.1);
            let t = self.sl_mut();
            index::map_remove(t, Map::Dg, b, slot as u32);
            t[slot].ix.dg_key = None;
        }
        let Node { slots, heap_len, half_open_in, pool, free, stats, half_open_dg, .. } = self;
        let t = slots.as_mut();
        index::heap_set(t, heap_len, slot as u32, Instant::FAR_FUTURE);
        if t[slot].ix.ho_in && t[slot].sess.as_ref().is_some_and(|x| x.kind == TransportKind::Datagram) {
            *half_open_dg -= 1;
        }
        half_open_in.unlink(t, slot as u32);
        let s = &mut t[slot];
        s.sess.as_ref()?;
        s.sess = None;
        s.gen = s.gen.wrapping_add(1);
        s.ev = 0;
        s.ix.folded_bytes_in = 0;
        s.ix.folded_msgs_out = 0;
        s.ix.folded_dropped = 0;
        if let Some(b) = s.buf.take() {
            s.buf = pool.give(b);
        }
        stats.sessions -= 1;
        free.push_back(t, Queue::Free, slot as u32);
        Some(())
    }

    /// Picks the next (slot, event bit) whose data is present, in flag order per slot:
    /// Connected first, Disconnected last.
    fn next_event(&mut self) -> Option<(usize, u8)> {
        while let Some(slot32) = self.ev_queue.front() {
            let slot = slot32 as usize;
            let s = &mut self.slots.as_mut()[slot];
            if s.ev == 0 {
                s.in_ev_queue = false;
                let Node { ev_queue, slots, .. } = self;
                ev_queue.pop_front(slots.as_mut(), Queue::Ev);
                continue;
            }
            let bit = s.ev & s.ev.wrapping_neg();
            s.ev &= !bit;
            let Some(sess) = s.sess.as_ref() else { continue };
            let valid = match bit {
                EV_DISCONNECTED => true,
                EV_CONNECTED => sess.peer.is_some() && sess.hello.is_some(),
                EV_MESSAGE => sess.peer.is_some() && sess.msg_ready.is_some(),
                EV_QUALITY => sess.peer.is_some(),
                _ => sess.peer.is_some() && sess.remote_error.is_some(),
            };
            if valid {
                return Some((slot, bit));
            }
        }
        None
    }

    /// Re-examines a slot after any change: raises events, queues transmits, applies
    /// policies, and brings the indexes and counters up to date. O(1): the PeerId index
    /// finds a duplicate, the threat table a score.
    fn after(&mut self, slot: usize, _now: Instant) {
        let me = self.keypair.peer_id();
        // A handshake that reaches our own key (we dialled ourselves, perhaps through a
        // loopback address or a NAT) ends at once; nothing more goes out on it.
        if self.sess(slot).is_some_and(|s| s.peer == Some(me) && s.phase != Phase::Closed) {
            if let Some(s) = self.sess_mut(slot) {
                s.hs_out_pending = false;
            }
            self.fail(slot, Error::SelfConnect);
        }
        let threshold = self.config.threat_threshold;
        let mut duplicate_of = None;
        let mut refuse = false;
        {
            let Some(sess) = self.sess(slot) else { return };
            if sess.phase == Phase::Established && sess.confirmed && !sess.announced && sess.close_reason.is_none() {
                if let Some(peer) = sess.peer {
                    refuse = self.threat_score(&peer) > threshold;
                    duplicate_of = self.peer_slot(&peer).filter(|&o| {
                        self.sess(o).is_some_and(|x| {
                            x.is_connected() && x.peer == Some(peer) && x.phase == Phase::Established && !x.closing
                        })
                    });
                }
            }
        }
        if refuse {
            if let Some(s) = self.sess_mut(slot) {
                s.close(CloseReason::Threat);
                s.close_reason = Some(DisconnectReason::Error(Error::Threat));
            }
        } else if let Some(other) = duplicate_of.filter(|o| *o != slot) {
            // Two sessions with one peer. Keep the newer one unless both are fresh (a
            // simultaneous open): then both sides keep the one the lower key initiated.
            let keep_new = match (self.sess(other), self.sess(slot)) {
                (Some(old), Some(new)) => {
                    // A simultaneous open only if the two handshakes overlapped; otherwise
                    // (a restarted peer) the newer session wins at once.
                    let fresh = old.connected_at.is_some_and(|t| t >= new.created);
                    if fresh {
                        let initiator_of =
                            |s: &Session| if s.role == Role::Initiator { me } else { s.peer.unwrap_or(me) };
                        initiator_of(new) < initiator_of(old)
                    } else {
                        true
                    }
                }
                _ => true,
            };
            let loser = if keep_new { other } else { slot };
            if let Some(s) = self.sess_mut(loser) {
                s.close(CloseReason::Duplicate);
            }
            if loser != slot {
                self.mark_connected(slot);
            }
            self.refresh(loser);
        } else {
            let announce = self.sess(slot).is_some_and(|s| {
                s.phase == Phase::Established && s.confirmed && !s.announced && !s.closing && s.close_reason.is_none()
            });
            if announce {
                self.mark_connected(slot);
            }
        }
        self.refresh(slot);
    }

    fn mark_connected(&mut self, slot: usize) {
        let Some(s) = self.sess_mut(slot) else { return };
        s.announced = true;
        let peer = s.peer;
        self.sl_mut()[slot].ev |= EV_CONNECTED;
        self.stats.handshakes_completed += 1;
        if let Some(peer) = peer {
            self.index_peer(slot, peer);
        }
    }

    /// Adds what the session counted since the last look to the node's counters, which
    /// therefore never go backwards when a session ends.
    fn fold(&mut self, slot: usize) {
        let Some((bytes_in, msgs_out, dropped)) =
            self.sess(slot).map(|s| (s.quality.counters.bytes_in, s.quality.counters.msgs_out, s.dropped))
        else {
            return;
        };
        let ix = &mut self.slots.as_mut()[slot].ix;
        let d = (
            bytes_in.saturating_sub(ix.folded_bytes_in),
            msgs_out.saturating_sub(ix.folded_msgs_out),
            dropped.saturating_sub(ix.folded_dropped),
        );
        ix.folded_bytes_in = bytes_in.max(ix.folded_bytes_in);
        ix.folded_msgs_out = msgs_out.max(ix.folded_msgs_out);
        ix.folded_dropped = dropped.max(ix.folded_dropped);
        self.stats.bytes_in += d.0;
        self.stats.msgs_out += d.1;
        self.stats.records_dropped += d.2;
    }

    /// Moves the slot between the `connected` and `half_open` gauges.
    fn set_counted(&mut self, slot: usize, now: u8) {
        let was = self.sl()[slot].ix.counted;
        if was == now {
            return;
        }
        let st = &mut self.stats;
        for (bit, gauge) in [(C_CONNECTED, &mut st.connected), (C_HALF_OPEN, &mut st.half_open)] {
            match (was & bit != 0, now & bit != 0) {
                (false, true) => *gauge += 1,
                (true, false) => *gauge -= 1,
                _ => {}
            }
        }
        self.sl_mut()[slot].ix.counted = now;
    }

    /// Goes on with a batched record of `slot` that stopped at a message the application
    /// has taken (PROTOCOL.md §9.2): the resume is explicit, never left to the next input.
    fn resume_batch(&mut self, slot: usize) {
        if !self.sess(slot).is_some_and(|s| s.batch_pending() && s.msg_ready.is_none()) {
            return;
        }
        let now = self.last_now;
        let r = match self.split(slot) {
            Ok((mut ctx, sess, buf)) => sess.resume_batch(&mut ctx, buf, now),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            if self.sess(slot).is_some_and(|s| s.kind == TransportKind::Stream) {
                self.fail(slot, e); // as a malformed packet read from the stream
            } else {
                self.stats.records_dropped += 1;
            }
        }
    }

    /// Recomputes a slot's event flags, queue membership, deadline, gauges and indexes,
    /// and lends its buffer back to the pool when the session holds nothing in it.
    fn refresh(&mut self, slot: usize) {
        let Some(sess) = self.sess(slot) else { return };
        let counted =
            if sess.is_connected() { C_CONNECTED } else { 0 } | if sess.is_half_open() { C_HALF_OPEN } else { 0 };
        let inbound_half_open = sess.is_half_open() && sess.role == Role::Responder;
        let dg = sess.kind == TransportKind::Datagram;
        let drop_peer_index = !sess.is_connected() || sess.phase == Phase::Closed;
        let deadline = sess.next_timeout(&self.config);
        let idle = sess.buffer_idle();
        self.fold(slot);
        self.set_counted(slot, counted);
        if drop_peer_index {
            self.unindex_peer(slot);
        }
        let Node { slots, tx_queue, ev_queue, heap_len, half_open_in, pool, half_open_dg, .. } = self;
        let t = slots.as_mut();
        match (inbound_half_open, t[slot].ix.ho_in) {
            (true, false) => {
                half_open_in.push_back(t, slot as u32);
                *half_open_dg += usize::from(dg);
            }
            (false, true) => {
                half_open_in.unlink(t, slot as u32);
                *half_open_dg -= usize::from(dg);
            }
            _ => {}
        }
        index::heap_set(t, heap_len, slot as u32, deadline);
        let s = &mut t[slot];
        let Some(sess) = s.sess.as_ref() else { return };
        if sess.msg_ready.is_some() {
            s.ev |= EV_MESSAGE;
        }
        if sess.quality_dirty && sess.announced {
            s.ev |= EV_QUALITY;
        }
        if sess.remote_error.is_some() && sess.announced {
            s.ev |= EV_ERROR;
        }
        let wants_tx = sess.wants_transmit();
        if sess.phase == Phase::Closed && !wants_tx {
            s.ev |= EV_DISCONNECTED;
        }
        if idle {
            if let Some(b) = s.buf.take() {
                s.buf = pool.give(b);
            }
        }
        let (ev, in_ev, in_tx) = (s.ev, s.in_ev_queue, s.in_tx_queue);
        if ev != 0 && !in_ev {
            t[slot].in_ev_queue = true;
            ev_queue.push_back(t, Queue::Ev, slot as u32);
        }
        if wants_tx && !in_tx {
            t[slot].in_tx_queue = true;
            tx_queue.push_back(t, Queue::Tx, slot as u32);
        }
    }

    // ------------------------------------------------------------------ getters

    /// Connected peers (F08), with their quality (F16). Visits every slot once.
    pub fn peers(&self) -> impl Iterator<Item = PeerInfo> + '_ {
        let now = self.last_now;
        self.sl().iter().enumerate().filter_map(move |(i, s)| {
            let sess = s.sess.as_ref()?;
            if !sess.is_connected() {
                return None;
            }
            let peer = sess.peer?;
            Some(PeerInfo {
                conn: ConnId::new(i, s.gen),
                peer,
                addr: sess.addr,
                kind: sess.kind,
                role: sess.role,
                name: sess.hello.as_ref().map(|h| h.name.clone()).unwrap_or_default(),
                connected_at: sess.connected_at.unwrap_or(Instant::ZERO),
                quality: sess.quality.snapshot(now, self.config.pong_timeout),
                threat: self.threat_score(&peer),
            })
        })
    }

    /// Quality figures for one connected peer (F12-F14).
    pub fn quality(&self, peer: &PeerId) -> Option<Quality> {
        let slot = self.primary_slot(peer)?;
        self.sess(slot).map(|s| s.quality.snapshot(self.last_now, self.config.pong_timeout))
    }

    /// The Noise handshake hash of an established session, the same 32 bytes at both ends
    /// and different for every session: bind to it (channel binding, Noise §11.2).
    pub fn handshake_hash(&self, conn: ConnId) -> Option<[u8; 32]> {
        let slot = self.slot_of(conn).ok()?;
        self.sess(slot)?.handshake_hash
    }

    /// The Hello a connected peer sent.
    pub fn hello(&self, peer: &PeerId) -> Option<&Hello> {
        let slot = self.primary_slot(peer)?;
        self.sess(slot)?.hello.as_ref()
    }

    /// Datagram flow control of the session with `peer` (PROTOCOL.md §8.8): its window,
    /// what is in flight, how often it stalled. `enabled` is false on streams and with
    /// peers that do not advertise a window.
    pub fn flow(&self, peer: &PeerId) -> Option<crate::session::FlowInfo> {
        let slot = self.primary_slot(peer)?;
        let s = self.sess(slot)?;
        Some(s.flow.info(s.send_counter()))
    }

    /// Node-wide figures, maintained as sessions change (no scan).
    pub fn stats(&self) -> NodeStats {
        self.stats
    }
}

/// What the messaging layer (`crate::messaging`) needs from the node, and nothing more.
#[cfg(feature = "messaging")]
impl<P, S> Node<P, S>
where
    P: BufferPool,
    S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
{
    /// Queues a message of any message kind (`wire::kind::is_message`, so also the
    /// implemented messaging kinds) to a connected peer; returns the session it went to.
    pub(crate) fn send_message_kind(
        &mut self,
        now: Instant,
        peer: &PeerId,
        kind: u8,
        priority: Priority,
        data: &[u8],
    ) -> Result<ConnId, Error> {
        let now = self.tick(now);
        let slot = self.primary_slot(peer).ok_or(Error::UnknownPeer)?;
        let r = match self.split(slot) {
            Ok((ctx, sess, buf)) => sess.send_with(&ctx, buf, kind, priority, data),
            Err(e) => Err(e),
        };
        self.after(slot, now);
        r.map(|()| self.conn_of(slot))
    }

    /// The peer of slot `slot` if it holds the peer's announced (primary) session.
    pub(crate) fn connected_peer_at(&self, slot: usize) -> Option<PeerId> {
        let s = self.sl().get(slot)?;
        let peer = s.ix.peer_key?;
        s.sess.as_ref().filter(|x| x.is_connected() && x.peer == Some(peer)).map(|_| peer)
    }

    /// The session a message to `peer` would go to now (its primary session).
    pub(crate) fn peer_conn(&self, peer: &PeerId) -> Option<ConnId> {
        self.primary_slot(peer).map(|s| self.conn_of(s))
    }

    /// The next event's message, without taking it: the messaging layer decides from it
    /// whether `poll_event` will hand the event up or the layer consumes it. `None` when
    /// the next event (if any) is not a message.
    pub(crate) fn peek_message(&mut self) -> Option<(ConnId, PeerId, u8, &[u8])> {
        if self.lent_msg != NIL {
            let lent = core::mem::replace(&mut self.lent_msg, NIL) as usize;
            self.resume_batch(lent);
            self.refresh(lent);
        }
        let (slot, bit) = self.next_event()?;
        // `next_event` cleared the bit and left the slot at the queue's front: restoring
        // the bit makes the next `poll_event` return this same event.
        self.sl_mut()[slot].ev |= bit;
        if bit != EV_MESSAGE {
            return None;
        }
        let conn = self.conn_of(slot);
        let s = &self.sl()[slot];
        let sess = s.sess.as_ref()?;
        let range = sess.msg_ready.clone()?;
        Some((conn, sess.peer?, sess.msg_kind, s.buf.as_ref()?.as_ref().get(range)?))
    }

    /// The instant of the latest input, which `poll_event` reports events at.
    pub(crate) fn last_now(&self) -> Instant {
        self.last_now
    }
}

/// The slot number inside a connection id (an index below [`Node::capacity`]).
#[cfg(feature = "messaging")]
pub(crate) fn conn_slot(conn: ConnId) -> usize {
    conn.slot()
}
