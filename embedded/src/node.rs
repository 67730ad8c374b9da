//! The one module that touches meshlink-core's `Node` API.
//!
//! Everything else in this crate goes through [`MeshNode`], so that when the core's node
//! API changes only this file has to follow. The core's storage is the caller's (its
//! slot table and slot buffers, see meshlink-core's node docs): here a [`NodeStorage`]
//! in a `static`, with the firmware pool `SlotBound`. The adapter sees a small, stable surface: build, connect or
//! accept, feed input, drain output, read quality.

use core::mem::MaybeUninit;
use core::net::SocketAddr;

use meshlink_core::node::{Slot, SlotBound};
use meshlink_core::{Config, ConnId, Error, Event, Instant, Keypair, Node, NodeStats, PeerId, Quality, TransportKind};
use rand_core::{CryptoRng, RngCore};

/// A slot buffer: a `SLOT`-byte cut of a [`NodeStorage`]. The node moves it in and out of
/// its slot (8 bytes), never the bytes behind it.
type SlotBuf = &'static mut [u8];

/// The storage of a node with `N` peer slots of `SLOT` bytes each: the core's slot table
/// (one session each, about 4.9 KB) and the slot buffers, `N × SLOT`. Put it in a `static`
/// with [`NodeStorage::new`], which is `const` and all zero or uninitialised, so the
/// static is `.bss`: no flash for an initialiser, and no stack temporary, ever. For example
/// `static STORAGE: static_cell::ConstStaticCell<NodeStorage<2, 4272>> =
/// ConstStaticCell::new(NodeStorage::new());` and `MeshNode::new(config, STORAGE.take(), rng)`.
///
/// `SLOT` must be at least [`slot_len`] of the config the node is built with.
pub struct NodeStorage<const N: usize, const SLOT: usize> {
    /// Written in place by [`MeshNode::new`], one slot at a time.
    slots: MaybeUninit<[Slot<SlotBuf>; N]>,
    bufs: [[u8; SLOT]; N],
}

impl<const N: usize, const SLOT: usize> NodeStorage<N, SLOT> {
    pub const fn new() -> Self {
        NodeStorage { slots: MaybeUninit::uninit(), bufs: [[0; SLOT]; N] }
    }
}

/// By value, so it passes through the stack: use [`NodeStorage::new`] in a `static`.
impl<const N: usize, const SLOT: usize> Default for NodeStorage<N, SLOT> {
    fn default() -> Self {
        Self::new()
    }
}

/// A meshlink node over caller-owned [`NodeStorage`] in a `static` (no allocator). The
/// value itself is the core's fixed state (a few hundred bytes plus the configuration):
/// cheap to return and to keep in a task or a `static`.
pub struct MeshNode {
    inner: Node<SlotBound<SlotBuf>, &'static mut [Slot<SlotBuf>]>,
}

/// The slot buffer length a config needs (the `SLOT` parameter of [`NodeStorage`]).
pub fn slot_len(config: &Config) -> usize {
    config.slot_buffer_len()
}

/// What the adapter needs to know about one node event. Message data borrows the node
/// until the next call, as in the core.
pub(crate) enum NodeEvent<'a> {
    Connected { peer: PeerId, quality: Quality },
    Message { peer: PeerId, data: &'a [u8] },
    Quality { peer: PeerId, quality: Quality },
    Disconnected { conn: ConnId, peer: Option<PeerId>, was_connected: bool, error: bool },
    Other,
}

impl MeshNode {
    /// A node over `storage`, with a fresh static key and CSPRNG seed, both drawn from
    /// `rng` (the board's TRNG, or a DRBG seeded from it). `storage` is consumed even when
    /// the config is refused.
    pub fn new<const N: usize, const SLOT: usize>(
        config: Config,
        storage: &'static mut NodeStorage<N, SLOT>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self, Error> {
        let keypair = Keypair::generate(rng);
        Self::with_keypair(config, keypair, storage, rng)
    }

    /// A node with a provisioned static secret (kept in flash or a secure element); the
    /// CSPRNG seed still comes from `rng`.
    pub fn with_secret<const N: usize, const SLOT: usize>(
        config: Config,
        secret: [u8; 32],
        storage: &'static mut NodeStorage<N, SLOT>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self, Error> {
        Self::with_keypair(config, Keypair::from_secret(secret), storage, rng)
    }

    fn with_keypair<const N: usize, const SLOT: usize>(
        config: Config,
        keypair: Keypair,
        storage: &'static mut NodeStorage<N, SLOT>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let slots = slot_table(storage);
        let inner = Node::new(config, keypair, seed, slots, SlotBound::new());
        seed.fill(0);
        Ok(MeshNode { inner: inner? })
    }

    /// Our peer id (the static public key).
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id()
    }

    /// Quality figures of a connected peer.
    pub fn quality(&self, peer: &PeerId) -> Option<Quality> {
        self.inner.quality(peer)
    }

    /// Node-wide counters (handshakes, dropped records, bytes).
    pub fn stats(&self) -> NodeStats {
        self.inner.stats()
    }

    /// Ends every session at once and discards what they would still send: for a node whose
    /// runner is gone (the link was torn down) before it is driven over a new link.
    /// `scratch` must hold one transmit (`max_frame + 2` or `max_datagram` bytes).
    pub fn shutdown(&mut self, now_us: u64, scratch: &mut [u8]) {
        let now = Instant::from_micros(now_us);
        self.inner.close_all(now);
        // A closing session sends at most a Close and what was queued before it; the bound
        // only guards against a core that would keep producing.
        for _ in 0..64 * self.inner.config().max_peers.max(1) {
            if self.inner.poll_transmit(now, scratch).is_none() {
                break;
            }
        }
        while self.inner.poll_event().is_some() {}
    }

    pub(crate) fn max_message(&self) -> usize {
        self.inner.config().max_message
    }

    pub(crate) fn connect(
        &mut self,
        now: u64,
        kind: TransportKind,
        addr: SocketAddr,
        expected: Option<PeerId>,
    ) -> Result<ConnId, Error> {
        self.inner.connect(Instant::from_micros(now), kind, addr, expected)
    }

    pub(crate) fn accept(&mut self, now: u64, addr: SocketAddr) -> Result<ConnId, Error> {
        self.inner.accept(Instant::from_micros(now), addr)
    }

    pub(crate) fn send(&mut self, now: u64, peer: &PeerId, data: &[u8]) -> Result<(), Error> {
        self.inner.send(Instant::from_micros(now), peer, data)
    }

    pub(crate) fn input_stream(&mut self, conn: ConnId, now: u64, bytes: &[u8]) -> Result<usize, Error> {
        self.inner.handle_stream(conn, Instant::from_micros(now), bytes)
    }

    pub(crate) fn stream_closed(&mut self, conn: ConnId, now: u64) {
        self.inner.handle_stream_closed(conn, Instant::from_micros(now))
    }

    #[cfg(feature = "datagram")]
    pub(crate) fn input_datagram(&mut self, now: u64, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        self.inner.handle_datagram(Instant::from_micros(now), from, bytes)
    }

    /// Without the `datagram` feature a datagram link's input is refused (and counted in
    /// `Status::rejected`); `run` over such a link already fails at `connect`.
    #[cfg(not(feature = "datagram"))]
    pub(crate) fn input_datagram(&mut self, _now: u64, _from: SocketAddr, _bytes: &[u8]) -> Result<(), Error> {
        Err(Error::Unsupported { feature: "datagram" })
    }

    pub(crate) fn timeout(&mut self, now: u64) {
        self.inner.handle_timeout(Instant::from_micros(now))
    }

    /// The next buffer to send: its length and destination.
    pub(crate) fn transmit(&mut self, now: u64, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        self.inner.poll_transmit(Instant::from_micros(now), buf).map(|t| (t.len, t.addr))
    }

    /// When `timeout` must next be called, in microseconds.
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.inner.poll_timeout().map(|t| t.as_micros())
    }

    pub(crate) fn event(&mut self) -> Option<NodeEvent<'_>> {
        Some(match self.inner.poll_event()? {
            Event::Connected { peer, quality, .. } => NodeEvent::Connected { peer, quality },
            Event::Message { peer, data, .. } => NodeEvent::Message { peer, data },
            Event::QualityUpdate { peer, quality, .. } => NodeEvent::Quality { peer, quality },
            Event::Disconnected { conn, peer, was_connected, reason, .. } => NodeEvent::Disconnected {
                conn,
                peer,
                was_connected,
                error: matches!(reason, meshlink_core::DisconnectReason::Error(_)),
            },
            #[allow(unreachable_patterns)] // RemoteError today; more once Event is non_exhaustive
            _ => NodeEvent::Other,
        })
    }
}

/// Builds the slot table inside `storage`, each slot holding its own `SLOT`-byte buffer,
/// in place: a slot is written straight into the static, so building a node never puts a
/// slot table (N × ~4.9 KB) on the stack.
#[allow(unsafe_code)]
fn slot_table<const N: usize, const SLOT: usize>(
    storage: &'static mut NodeStorage<N, SLOT>,
) -> &'static mut [Slot<SlotBuf>] {
    let NodeStorage { slots, bufs } = storage;
    let first = slots.as_mut_ptr().cast::<Slot<SlotBuf>>();
    for (i, buf) in bufs.iter_mut().enumerate() {
        // SAFETY: `i < N`, so `first.add(i)` is element `i` of the `[Slot; N]` that `slots`
        // (a unique `&'static mut`) points to; writing a value there needs no prior
        // initialisation and drops nothing.
        unsafe { first.add(i).write(Slot::with_buffer(&mut buf[..])) };
    }
    // SAFETY: the loop above wrote all `N` elements (`bufs` has `N` entries).
    unsafe { slots.assume_init_mut() }
}
