//! The one module that touches meshlink-core's `Node` API.
//!
//! Everything else in this crate goes through [`MeshNode`], so that when the core's node
//! construction and storage change (caller-owned storage sized at run time, issue 12) only
//! this file has to follow. The adapter sees a small, stable surface: build, connect or
//! accept, feed input, drain output, read quality.

use core::net::SocketAddr;

use meshlink_core::{Config, ConnId, Error, Event, Instant, Keypair, Node, NodeStats, PeerId, Quality, TransportKind};
use rand_core::{CryptoRng, RngCore};

/// A meshlink node with `N` peer slots of `SLOT` bytes each, every byte inline, so that the
/// whole node can live in a `static` (no allocator).
///
/// `SLOT` must be at least [`slot_len`] of the config passed to [`MeshNode::new`].
pub struct MeshNode<const N: usize, const SLOT: usize> {
    inner: Node<[u8; SLOT], N>,
}

/// The slot buffer length a config needs (the `SLOT` parameter of [`MeshNode`]).
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

impl<const N: usize, const SLOT: usize> MeshNode<N, SLOT> {
    /// A node with a fresh static key and CSPRNG seed, both drawn from `rng` (the board's
    /// TRNG, or a DRBG seeded from it).
    pub fn new(config: Config, rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, Error> {
        let keypair = Keypair::generate(rng);
        Self::with_keypair(config, keypair, rng)
    }

    /// A node with a provisioned static secret (kept in flash or a secure element); the
    /// CSPRNG seed still comes from `rng`.
    pub fn with_secret(config: Config, secret: [u8; 32], rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, Error> {
        Self::with_keypair(config, Keypair::from_secret(secret), rng)
    }

    fn with_keypair(config: Config, keypair: Keypair, rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        // The core returns the node by value: today it is a stack temporary of
        // size_of::<Self>() before it is moved into its static (see README, memory sizing).
        let inner = Node::new(config, keypair, seed, || [0u8; SLOT]);
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
        for _ in 0..64 * N {
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

    pub(crate) fn input_datagram(&mut self, now: u64, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        self.inner.handle_datagram(Instant::from_micros(now), from, bytes)
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
