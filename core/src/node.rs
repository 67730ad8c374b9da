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
//!   [`Node::set_threat_score`];
//! - **getters**: [`Node::peers`], [`Node::quality`], [`Node::stats`], [`Node::peer_id`].
//!
//! After any input or command, the caller drains the output in this order:
//! 1. `poll_transmit` until it returns `None`, sending each buffer to its connection;
//! 2. `poll_event` until it returns `None`;
//! 3. `poll_timeout`, and arms a timer that calls `handle_timeout` at that instant.
//!
//! `now` must never go backwards. `handle_stream` may consume less than it is given when
//! a received message waits in `poll_event`: drain events, then feed the rest.
//!
//! ```
//! use meshlink_core::{Config, Event, Instant, Keypair, Node, TransportKind};
//! use rand_core::{RngCore, SeedableRng};
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let cfg = Config { max_message: 1024, send_queue: 4096, max_frame: 2048, ..Config::default() };
//! let len = cfg.slot_buffer_len();
//! let mk = |rng: &mut rand_chacha::ChaCha20Rng| {
//!     let mut seed = [0u8; 32];
//!     rng.fill_bytes(&mut seed);
//!     Node::<Vec<u8>, 4>::new(cfg.clone(), Keypair::generate(rng), seed, || vec![0; len]).unwrap()
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

use core::net::SocketAddr;

use heapless::{Deque, Vec};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::buffers::{Layout, Priority};
use crate::config::{Config, ThreatPolicy};
use crate::error::Error;
use crate::identity::{Keypair, PeerId};
use crate::noise::Role;
use crate::quality::Quality;
use crate::session::{check_init, derive_psk, prologue, Ctx, DisconnectReason, Phase, Session, TransportKind};
use crate::time::Instant;
use crate::wire::{CloseReason, ErrorCode, Header, Hello, RejectCode, WireError, HELLO_MAX_LEN, WIRE_VERSION};

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
pub enum Event<'a> {
    /// A session finished its handshake and is confirmed (F06): the peer's Hello and the
    /// first quality figures (the handshake round trip).
    Connected { conn: ConnId, peer: PeerId, addr: SocketAddr, kind: TransportKind, hello: &'a Hello, quality: Quality },
    /// A whole message from a peer (F20). `kind` is [`crate::wire::kind::DATA`] for
    /// [`Node::send`], else the application kind (`0x40..=0x7f`) it was sent with (F30).
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

/// Node-wide counters (F13).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
}

const EV_CONNECTED: u8 = 1;
const EV_MESSAGE: u8 = 2;
const EV_QUALITY: u8 = 4;
const EV_ERROR: u8 = 8;
const EV_DISCONNECTED: u8 = 16;

/// Stateless replies (Reject records) waiting to go out; more are dropped, never queued.
const REPLY_QUEUE: usize = 8;

struct Slot<B> {
    sess: Option<Session>,
    buf: B,
    gen: u16,
    ev: u8,
    in_ev_queue: bool,
    in_tx_queue: bool,
}

/// A meshlink node with room for `N` sessions, each with a slot buffer of type `B`.
pub struct Node<B, const N: usize> {
    config: Config,
    keypair: Keypair,
    rng: ChaCha20Rng,
    layout: Layout,
    hello: Vec<u8, HELLO_MAX_LEN>,
    prologue: [u8; 64],
    prologue_len: usize,
    psk: Option<[u8; 32]>,
    slots: Vec<Slot<B>, N>,
    tx_queue: Deque<u16, N>,
    ev_queue: Deque<u16, N>,
    replies: Deque<(SocketAddr, [u8; 8]), REPLY_QUEUE>,
    threats: Vec<(PeerId, f32), N>,
    stats: NodeStats,
    last_now: Instant,
}

impl<B, const N: usize> core::fmt::Debug for Node<B, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.keypair.peer_id())
            .field("sessions", &self.slots.iter().filter(|s| s.sess.is_some()).count())
            .field("capacity", &N)
            .finish_non_exhaustive()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> Node<B, N> {
    /// Creates a node. `seed` seeds the node's CSPRNG (ephemeral keys, indexes, jitter):
    /// give it 32 bytes from the platform's entropy source. `make_buf` is called `N` times
    /// for the slot buffers, each at least `config.slot_buffer_len()` bytes.
    pub fn new(
        mut config: Config,
        keypair: Keypair,
        seed: [u8; 32],
        mut make_buf: impl FnMut() -> B,
    ) -> Result<Self, Error> {
        if N == 0 || N > 0xffff {
            return Err(Error::Config("N (peer capacity) must be 1..=65535"));
        }
        config.max_peers = config.max_peers.min(N);
        if config.max_frame == 0 || config.max_frame > crate::wire::MAX_FRAME_LEN {
            return Err(Error::Config("max_frame must be 1..=65535"));
        }
        if config.max_datagram < crate::session::HANDSHAKE_RECORD_MAX.min(1200) {
            return Err(Error::Config("max_datagram too small for a handshake"));
        }
        if config.max_frame < crate::session::HANDSHAKE_RECORD_MAX {
            return Err(Error::Config("max_frame too small for a handshake"));
        }
        if config.rekey_after_time + config.ping_interval >= config.reject_after_time {
            // The peer must rotate (it does so when it sends, at least every ping) before
            // its key reaches reject_after_time at our end.
            return Err(Error::Config("rekey_after_time + ping_interval must be below reject_after_time"));
        }
        if config.min_version == 0 || config.min_version > config.max_version {
            return Err(Error::Config("min_version must be 1..=max_version"));
        }
        if config.max_message > u32::MAX as usize {
            return Err(Error::Config("max_message must fit in 32 bits"));
        }
        config.check_queues()?;
        config.hello.version = WIRE_VERSION;
        config.hello.max_frame = config.max_frame as u32;
        config.hello.max_datagram = config.max_datagram as u32;
        config.hello.max_message = config.max_message as u32;
        let mut hello_buf = [0u8; HELLO_MAX_LEN];
        let n = config.hello.encode(&mut hello_buf)?;
        let hello = Vec::from_slice(&hello_buf[..n]).map_err(|_| Error::Config("hello too long"))?;
        let layout = Layout::new(&config);
        let mut slots = Vec::new();
        for _ in 0..N {
            let buf = make_buf();
            if buf.as_ref().len() < layout.total() {
                return Err(Error::BufferTooSmall { required: layout.total() });
            }
            let _ = slots.push(Slot { sess: None, buf, gen: 0, ev: 0, in_ev_queue: false, in_tx_queue: false });
        }
        let mut pro = [0u8; 64];
        let prologue_len = prologue(&config, &mut pro);
        Ok(Node {
            psk: derive_psk(&config),
            config,
            keypair,
            rng: ChaCha20Rng::from_seed(seed),
            layout,
            hello,
            prologue: pro,
            prologue_len,
            slots,
            tx_queue: Deque::new(),
            ev_queue: Deque::new(),
            replies: Deque::new(),
            threats: Vec::new(),
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

    fn tick(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn count(&self, f: impl Fn(&Session) -> bool) -> usize {
        self.slots.iter().filter(|s| s.sess.as_ref().is_some_and(&f)).count()
    }

    /// A free slot, within the limits. `from` is the remote address of an inbound
    /// handshake (subject to the per-IP cap); outbound ones pass `None`.
    fn alloc(&mut self, from: Option<SocketAddr>) -> Result<usize, Error> {
        let in_use = self.count(|_| true);
        if in_use >= self.config.max_peers {
            return Err(Error::PeerLimit { limit: self.config.max_peers });
        }
        let half_open = self.count(|s| s.is_half_open());
        if half_open >= self.config.max_half_open {
            return Err(Error::HalfOpenLimit { limit: self.config.max_half_open });
        }
        if let Some(from) = from {
            let ip = from.ip();
            let same_ip = self.count(|s| s.is_half_open() && s.role == Role::Responder && s.addr.ip() == ip);
            if same_ip >= self.config.max_half_open_per_ip {
                return Err(Error::HalfOpenLimit { limit: self.config.max_half_open_per_ip });
            }
        }
        self.slots
            .iter()
            .position(|s| s.sess.is_none() && s.ev == 0)
            .ok_or(Error::PeerLimit { limit: self.config.max_peers })
    }

    fn local_index(&mut self, slot: usize) -> u32 {
        // Low 16 bits find the slot in O(1); high 16 bits are random so that off-path
        // guesses rarely land (and the AEAD stops the rest).
        (self.rng.next_u32() & 0xffff_0000) | slot as u32
    }

    /// What a session borrows from the node for one call, and the slot table beside it.
    fn parts(&mut self) -> (Ctx<'_>, &mut Vec<Slot<B>, N>) {
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
        (ctx, slots)
    }

    fn split(&mut self, slot: usize) -> Option<(Ctx<'_>, &mut Session, &mut [u8])> {
        let (ctx, slots) = self.parts();
        let s = slots.get_mut(slot)?;
        let sess = s.sess.as_mut()?;
        Some((ctx, sess, s.buf.as_mut()))
    }

    fn slot_of(&self, conn: ConnId) -> Result<usize, Error> {
        let s = self.slots.get(conn.slot()).ok_or(Error::UnknownConn)?;
        if s.gen != conn.gen() || s.sess.is_none() {
            return Err(Error::UnknownConn);
        }
        Ok(conn.slot())
    }

    fn conn_of(&self, slot: usize) -> ConnId {
        ConnId::new(slot, self.slots[slot].gen)
    }

    // ------------------------------------------------------------------ commands

    /// Starts a handshake to `addr` over `kind` (F06). For streams, call it once the
    /// socket is connected. With `expected`, the peer must prove that key (F04), and the
    /// IK fast path is used when allowed.
    pub fn connect(
        &mut self,
        now: Instant,
        kind: TransportKind,
        addr: SocketAddr,
        expected: Option<PeerId>,
    ) -> Result<ConnId, Error> {
        let now = self.tick(now);
        if let Some(p) = expected {
            if self.threat_above(&p) {
                return Err(Error::Threat);
            }
        }
        let slot = self.alloc(None)?;
        let index = self.local_index(slot);
        let (mut ctx, slots) = self.parts();
        slots[slot].sess = Some(Session::initiator(&mut ctx, kind, addr, expected, index, now)?);
        self.after(slot, now);
        Ok(self.conn_of(slot))
    }

    /// Registers an accepted stream connection from `addr`; the peer's Init follows.
    pub fn accept(&mut self, now: Instant, addr: SocketAddr) -> Result<ConnId, Error> {
        let now = self.tick(now);
        let slot = self.alloc(Some(addr))?;
        let index = self.local_index(slot);
        self.slots[slot].sess = Some(Session::responder(TransportKind::Stream, addr, index, now));
        Ok(self.conn_of(slot))
    }

    fn primary_slot(&self, peer: &PeerId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.sess.as_ref().is_some_and(|x| x.is_connected() && x.peer.as_ref() == Some(peer)))
    }

    /// Queues a message to a connected peer (F20). Never blocks: a full queue is `QueueFull`.
    pub fn send(&mut self, now: Instant, peer: &PeerId, data: &[u8]) -> Result<(), Error> {
        let now = self.tick(now);
        let slot = self.primary_slot(peer).ok_or(Error::UnknownPeer)?;
        let (ctx, sess, buf) = self.split(slot).ok_or(Error::UnknownPeer)?;
        sess.send(&ctx, buf, data)?;
        self.after(slot, now);
        Ok(())
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
    /// # use meshlink_core::{Config, Error, Instant, Keypair, Node, Priority};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    /// # let cfg = Config::default();
    /// # let mut node = Node::<Vec<u8>, 1>::new(cfg, Keypair::generate(&mut rng), [0; 32], || vec![0; 1 << 19]).unwrap();
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
        let (ctx, sess, buf) = self.split(slot).ok_or(Error::UnknownPeer)?;
        sess.send_with(&ctx, buf, kind, priority, data)?;
        self.after(slot, now);
        Ok(())
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
        for slot in 0..self.slots.len() {
            if self.slots[slot].sess.is_some() {
                self.close_slot(slot, CloseReason::Shutdown, now);
            }
        }
    }

    fn close_slot(&mut self, slot: usize, reason: CloseReason, now: Instant) {
        if let Some(sess) = self.slots[slot].sess.as_mut() {
            sess.close(reason);
        }
        self.after(slot, now);
    }

    /// Sets a peer's threat score (F05), usually from an external classifier. Above
    /// `threat_threshold` the policy applies: `Refuse` blocks new handshakes, `Drop` also
    /// closes the current session.
    pub fn set_threat_score(&mut self, now: Instant, peer: PeerId, score: f32) {
        let now = self.tick(now);
        let score = if score.is_nan() { 1.0 } else { score.clamp(0.0, 1.0) };
        if let Some(e) = self.threats.iter_mut().find(|(p, _)| *p == peer) {
            e.1 = score;
        } else if self.threats.push((peer, score)).is_err() {
            // Full: replace the lowest score, which matters least.
            if let Some(min) = self.threats.iter_mut().min_by(|a, b| a.1.total_cmp(&b.1)) {
                if min.1 < score {
                    *min = (peer, score);
                }
            }
        }
        if score > self.config.threat_threshold && self.config.threat_policy == ThreatPolicy::Drop {
            for slot in 0..self.slots.len() {
                if self.slots[slot].sess.as_ref().is_some_and(|s| s.peer == Some(peer) && s.phase != Phase::Closed) {
                    self.close_slot(slot, CloseReason::Threat, now);
                }
            }
        }
    }

    /// The threat score set for `peer`, 0 if none.
    pub fn threat_score(&self, peer: &PeerId) -> f32 {
        self.threats.iter().find(|(p, _)| p == peer).map_or(0.0, |e| e.1)
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
        let (mut ctx, sess, buf) = self.split(slot).ok_or(Error::UnknownConn)?;
        if sess.kind != TransportKind::Stream {
            return Err(Error::WrongTransport);
        }
        let r = sess.handle_stream(&mut ctx, buf, bytes, now);
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
            if let Some(s) = self.slots[slot].sess.as_mut() {
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
        if let Some(s) = self.slots[slot].sess.as_mut() {
            if s.phase == Phase::Handshake {
                self.stats.handshakes_failed += 1;
            }
            s.phase = Phase::Closed;
            s.close_reason.get_or_insert(DisconnectReason::Error(e));
        }
    }

    /// Feeds one received datagram. A bad datagram is dropped with a typed error; no
    /// other session is affected.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        let now = self.tick(now);
        let r = self.route_datagram(now, from, bytes);
        if r.is_err() {
            self.stats.records_dropped += 1;
        }
        r
    }

    fn route_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        let max = self.config.max_datagram.min(self.layout.rx);
        if bytes.len() > max {
            return Err(WireError::FrameTooLarge { len: bytes.len(), max }.into());
        }
        let header = Header::parse(bytes)?;
        let slot = match header {
            Header::Init { version, min_version, sender, network_tag: tag, .. } => {
                // Shorter than every initiator must pad to (PROTOCOL.md §5.1): answering
                // it could amplify, and no honest node sends it. Dropped, counted, unanswered.
                if bytes.len() < crate::session::INIT_MIN_DATAGRAM {
                    return Err(
                        WireError::Truncated { needed: crate::session::INIT_MIN_DATAGRAM, got: bytes.len() }.into()
                    );
                }
                let theirs = crate::wire::VersionRange { min: min_version, max: version };
                if let Err((code, e)) = check_init(&self.config, theirs, tag) {
                    self.reply_reject(from, code, sender);
                    return Err(e);
                }
                if let Some(slot) = self.slots.iter().position(|s| {
                    s.sess.as_ref().is_some_and(|x| {
                        x.kind == TransportKind::Datagram
                            && x.addr == from
                            && x.role == Role::Responder
                            && x.remote_index == sender
                    })
                }) {
                    slot // a retransmitted Init
                } else {
                    let slot = match self.alloc(Some(from)) {
                        Ok(s) => s,
                        Err(e) => {
                            self.reply_reject(from, RejectCode::Busy, sender);
                            return Err(e);
                        }
                    };
                    let index = self.local_index(slot);
                    self.slots[slot].sess = Some(Session::responder(TransportKind::Datagram, from, index, now));
                    slot
                }
            }
            Header::Resp { receiver, .. }
            | Header::Final { receiver }
            | Header::Transport { receiver, .. }
            | Header::Reject { receiver, .. } => {
                let slot = (receiver & 0xffff) as usize;
                let ok = self
                    .slots
                    .get(slot)
                    .and_then(|s| s.sess.as_ref())
                    .is_some_and(|s| s.local_index == receiver && s.kind == TransportKind::Datagram);
                if !ok {
                    return Err(Error::UnexpectedRecord);
                }
                slot
            }
        };
        let (mut ctx, sess, buf) = self.split(slot).ok_or(Error::UnknownConn)?;
        if sess.msg_ready.is_some() {
            return Err(Error::WouldBlock);
        }
        buf[..bytes.len()].copy_from_slice(bytes);
        let was_handshake = sess.phase == Phase::Handshake;
        let r = sess.on_record(&mut ctx, buf, 0..bytes.len(), now);
        match r {
            Ok(()) => {
                if matches!(header, Header::Transport { .. }) {
                    sess.addr = from; // roaming: follow the peer's authenticated address
                }
            }
            Err(e) => {
                // Handshake failures end the attempt; anything else only drops the datagram.
                let refused = matches!(
                    e,
                    Error::Rejected(_)
                        | Error::NetworkMismatch
                        | Error::VersionMismatch { .. }
                        | Error::PatternMismatch
                );
                // A Resp that fails to decrypt is dropped: the initiator read it into a copy
                // of its handshake, which stays ready for the genuine Resp. Errors after
                // authentication end the session inside the session itself.
                let stray_resp = matches!(header, Header::Resp { .. }) && matches!(e, Error::Noise(_));
                let fatal = refused
                    || was_handshake
                        && !stray_resp
                        && (matches!(header, Header::Init { .. }) || matches!(e, Error::Noise(_) | Error::Threat));
                if fatal {
                    self.fail(slot, e);
                }
            }
        }
        self.after(slot, now);
        r
    }

    fn reply_reject(&mut self, to: SocketAddr, code: RejectCode, receiver: u32) {
        let mut rec = [0u8; 8];
        let ours = self.config.versions();
        if (Header::Reject { code, version: ours.max, min_version: ours.min, receiver }).encode(&mut rec).is_ok()
            && self.replies.push_back((to, rec)).is_ok()
        {
            self.stats.rejects_sent += 1;
        }
    }

    /// Runs every timer that is due: pings, retransmissions, dead-peer and handshake timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        for slot in 0..self.slots.len() {
            let Some((mut ctx, sess, _)) = self.split(slot) else { continue };
            if sess.next_timeout(ctx.config) > now {
                continue;
            }
            if let Err(e) = sess.handle_timeout(&mut ctx, now) {
                let reason =
                    if e == Error::PeerTimeout { DisconnectReason::Timeout } else { DisconnectReason::Error(e) };
                sess.close_reason.get_or_insert(reason);
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
        if let Some((addr, rec)) = self.replies.pop_front() {
            if let Some(dst) = buf.get_mut(..rec.len()) {
                dst.copy_from_slice(&rec);
                return Some(Transmit { conn: None, kind: TransportKind::Datagram, addr, len: rec.len() });
            }
        }
        // Each queued session is asked once per call, so one that cannot produce anything
        // right now (a too-small buffer) cannot spin this loop.
        let mut budget = self.tx_queue.len();
        while budget > 0 {
            budget -= 1;
            let Some(slot) = self.tx_queue.pop_front() else { break };
            let slot = usize::from(slot);
            self.slots[slot].in_tx_queue = false;
            let Some((mut ctx, sess, sbuf)) = self.split(slot) else { continue };
            let kind = sess.kind;
            let addr = sess.addr;
            let r = sess.poll_transmit(&mut ctx, sbuf, buf, now);
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

    /// When `handle_timeout` must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.sess.as_ref())
            .map(|s| s.next_timeout(&self.config))
            .min()
            .filter(|t| *t != Instant::FAR_FUTURE)
    }

    /// The next event, if any. A `Message` borrows the node until the next call.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        let (slot, bit) = self.next_event()?;
        let now = self.last_now;
        let conn = self.conn_of(slot);
        let timeout = self.config.pong_timeout;
        let s = &mut self.slots[slot];
        if bit == EV_DISCONNECTED {
            let sess = s.sess.take()?;
            s.gen = s.gen.wrapping_add(1);
            s.ev = 0;
            return Some(Event::Disconnected {
                conn,
                peer: sess.peer,
                addr: sess.addr,
                was_connected: sess.announced,
                reason: sess.close_reason.unwrap_or(DisconnectReason::Local(CloseReason::Normal)),
            });
        }
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
                self.stats.msgs_in += 1;
                let kind = sess.msg_kind;
                let data = s.buf.as_ref().get(range)?;
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

    /// Picks the next (slot, event bit) whose data is present, in flag order per slot:
    /// Connected first, Disconnected last.
    fn next_event(&mut self) -> Option<(usize, u8)> {
        while let Some(&slot16) = self.ev_queue.front() {
            let slot = usize::from(slot16);
            let s = &mut self.slots[slot];
            if s.ev == 0 {
                self.ev_queue.pop_front();
                s.in_ev_queue = false;
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
    /// policies. Keeps readiness O(1): flags and queues, no scans on the hot path.
    fn after(&mut self, slot: usize, _now: Instant) {
        let threshold = self.config.threat_threshold;
        let mut duplicate_of = None;
        let mut refuse = false;
        {
            let Some(sess) = self.slots[slot].sess.as_ref() else { return };
            if sess.phase == Phase::Established && sess.confirmed && !sess.announced && sess.close_reason.is_none() {
                if let Some(peer) = sess.peer {
                    refuse = self.threat_score(&peer) > threshold;
                    duplicate_of = self.slots.iter().position(|o| {
                        o.sess.as_ref().is_some_and(|x| {
                            x.is_connected() && x.peer == Some(peer) && x.phase == Phase::Established && !x.closing
                        })
                    });
                }
            }
        }
        if refuse {
            if let Some(s) = self.slots[slot].sess.as_mut() {
                s.close(CloseReason::Threat);
                s.close_reason = Some(DisconnectReason::Error(Error::Threat));
            }
        } else if let Some(other) = duplicate_of.filter(|o| *o != slot) {
            // Two sessions with one peer. Keep the newer one unless both are fresh (a
            // simultaneous open): then both sides keep the one the lower key initiated.
            let keep_new = {
                let me = self.keypair.peer_id();
                let old = self.slots[other].sess.as_ref();
                let new = self.slots[slot].sess.as_ref();
                match (old, new) {
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
                }
            };
            let loser = if keep_new { other } else { slot };
            if let Some(s) = self.slots[loser].sess.as_mut() {
                s.close(CloseReason::Duplicate);
            }
            if loser != slot {
                self.mark_connected(slot);
            }
            self.refresh(loser);
        } else if duplicate_of == Some(slot) || duplicate_of.is_none() {
            let announce = self.slots[slot].sess.as_ref().is_some_and(|s| {
                s.phase == Phase::Established && s.confirmed && !s.announced && !s.closing && s.close_reason.is_none()
            });
            if announce {
                self.mark_connected(slot);
            }
        }
        self.refresh(slot);
    }

    fn mark_connected(&mut self, slot: usize) {
        if let Some(s) = self.slots[slot].sess.as_mut() {
            s.announced = true;
            self.slots[slot].ev |= EV_CONNECTED;
            self.stats.handshakes_completed += 1;
        }
    }

    /// Recomputes a slot's event flags and queue membership.
    fn refresh(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
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
        if s.ev != 0 && !s.in_ev_queue && self.ev_queue.push_back(slot as u16).is_ok() {
            s.in_ev_queue = true;
        }
        if wants_tx && !s.in_tx_queue && self.tx_queue.push_back(slot as u16).is_ok() {
            s.in_tx_queue = true;
        }
    }

    // ------------------------------------------------------------------ getters

    /// Connected peers (F08), with their quality (F16).
    pub fn peers(&self) -> impl Iterator<Item = PeerInfo> + '_ {
        let now = self.last_now;
        self.slots.iter().enumerate().filter_map(move |(i, s)| {
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
        self.slots[slot].sess.as_ref().map(|s| s.quality.snapshot(self.last_now, self.config.pong_timeout))
    }

    /// The Noise handshake hash of an established session, the same 32 bytes at both ends
    /// and different for every session: bind to it (channel binding, Noise §11.2).
    pub fn handshake_hash(&self, conn: ConnId) -> Option<[u8; 32]> {
        let slot = self.slot_of(conn).ok()?;
        self.slots[slot].sess.as_ref()?.handshake_hash
    }

    /// The Hello a connected peer sent.
    pub fn hello(&self, peer: &PeerId) -> Option<&Hello> {
        let slot = self.primary_slot(peer)?;
        self.slots[slot].sess.as_ref()?.hello.as_ref()
    }

    /// Node-wide counters.
    pub fn stats(&self) -> NodeStats {
        let mut st = self.stats;
        st.sessions = self.count(|_| true);
        st.connected = self.count(|s| s.is_connected());
        st.half_open = self.count(|s| s.is_half_open());
        st.records_dropped += self.slots.iter().filter_map(|s| s.sess.as_ref()).map(|s| s.dropped).sum::<u64>();
        st.bytes_in =
            self.slots.iter().filter_map(|s| s.sess.as_ref()).map(|s| s.quality.counters.bytes_in).sum::<u64>();
        st.msgs_out =
            self.slots.iter().filter_map(|s| s.sess.as_ref()).map(|s| s.quality.counters.msgs_out).sum::<u64>();
        st
    }
}
