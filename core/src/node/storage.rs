//! Where a node's sessions and their byte buffers live: storage the caller owns.
//!
//! Two things are the caller's, so the core never allocates and never builds a large
//! value on the stack:
//!
//! - the **slot table**, `S: AsMut<[Slot<B>]>`: a `&'static mut [Slot<B>]` (or an array in a
//!   `static`) on firmware, a `Box<[Slot<B>]>` built in place on a host
//!   ([`slot_table`], feature `alloc`). Its length is the node's hard capacity; the
//!   configuration's `max_peers` may ask for fewer at run time.
//! - the **slot buffers**, from a [`BufferPool`]: a session takes one when it needs it and
//!   gives it back when it ends, or as soon as it holds nothing in it (idle). A host uses
//!   [`HeapPool`] (allocate on demand, keep a few spares); firmware uses [`SlotBound`]
//!   (every slot keeps the static buffer it was built with, nothing moves).

use crate::identity::PeerId;
use crate::session::Session;
use crate::time::Instant;
use core::net::SocketAddr;

/// Hands out and takes back slot buffers of at least `len` bytes
/// ([`crate::Config::slot_buffer_len`]).
///
/// The node calls [`take`](BufferPool::take) when a session without a buffer has bytes to
/// hold, and [`give`](BufferPool::give) when a session ends or goes idle (its queues
/// empty, no partial frame, no reassembly, no message waiting). `give` may hand the
/// buffer straight back (`Some`): the slot then keeps it, which is how fixed pools work.
pub trait BufferPool {
    type Buf: AsRef<[u8]> + AsMut<[u8]>;
    /// A buffer of at least `len` bytes, or `None` when the pool is exhausted (the
    /// session then fails with [`crate::Error::NoBuffer`]). Its contents do not matter.
    fn take(&mut self, len: usize) -> Option<Self::Buf>;
    /// Takes back a buffer the node no longer needs. Returning `Some` leaves it with the
    /// slot it came from.
    fn give(&mut self, buf: Self::Buf) -> Option<Self::Buf>;
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> BufferPool for SlotBound<B> {
    type Buf = B;
    fn take(&mut self, _len: usize) -> Option<B> {
        None
    }
    fn give(&mut self, buf: B) -> Option<B> {
        Some(buf)
    }
}

/// The firmware pool: each slot keeps the buffer it was built with
/// ([`Slot::with_buffer`]), typically a `&'static mut [u8]` cut from one static region.
/// Nothing is ever allocated or moved; a slot built without a buffer cannot hold a session.
#[derive(Debug)]
pub struct SlotBound<B>(core::marker::PhantomData<fn() -> B>);

impl<B> SlotBound<B> {
    pub const fn new() -> Self {
        SlotBound(core::marker::PhantomData)
    }
}

impl<B> Default for SlotBound<B> {
    fn default() -> Self {
        Self::new()
    }
}

/// The host pool: buffers are allocated when a session needs one and freed when it is
/// done with it, keeping up to `max_spare` for reuse (so a burst of pings to idle peers
/// does not call the allocator for each). An idle session costs no buffer at all.
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub struct HeapPool {
    spare: alloc::vec::Vec<alloc::boxed::Box<[u8]>>,
    max_spare: usize,
}

#[cfg(feature = "alloc")]
impl HeapPool {
    /// Spare buffers kept by [`HeapPool::default`]: enough for a burst of traffic on a few
    /// dozen sessions, a few megabytes at the default 384 KiB buffer (of which only the
    /// pages touched are resident).
    pub const DEFAULT_SPARE: usize = 32;

    pub fn new(max_spare: usize) -> Self {
        HeapPool { spare: alloc::vec::Vec::new(), max_spare }
    }
}

#[cfg(feature = "alloc")]
impl Default for HeapPool {
    fn default() -> Self {
        Self::new(Self::DEFAULT_SPARE)
    }
}

#[cfg(feature = "alloc")]
impl BufferPool for HeapPool {
    type Buf = alloc::boxed::Box<[u8]>;
    fn take(&mut self, len: usize) -> Option<Self::Buf> {
        while let Some(b) = self.spare.pop() {
            if b.len() >= len {
                return Some(b);
            }
        }
        // Zeroed memory comes from fresh pages: only what the session writes becomes resident.
        Some(alloc::vec![0u8; len].into_boxed_slice())
    }
    fn give(&mut self, buf: Self::Buf) -> Option<Self::Buf> {
        if self.spare.len() < self.max_spare {
            self.spare.push(buf);
        }
        None
    }
}

/// A slot table of `capacity` empty slots, built in place on the heap (never on the stack).
#[cfg(feature = "alloc")]
pub fn slot_table<B>(capacity: usize) -> alloc::boxed::Box<[Slot<B>]> {
    let mut v = alloc::vec::Vec::with_capacity(capacity);
    v.resize_with(capacity, Slot::new);
    v.into_boxed_slice()
}

pub(crate) const NIL: u32 = u32::MAX;

/// One entry of the slot table: a session (if any), its buffer (if it holds one) and the
/// node's index links for it. Opaque: build with [`Slot::new`] or [`Slot::with_buffer`].
pub struct Slot<B> {
    pub(crate) sess: Option<Session>,
    pub(crate) buf: Option<B>,
    pub(crate) gen: u16,
    pub(crate) ev: u8,
    pub(crate) in_ev_queue: bool,
    pub(crate) in_tx_queue: bool,
    pub(crate) ix: SlotIx,
}

impl<B> core::fmt::Debug for Slot<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Slot")
            .field("in_use", &self.sess.is_some())
            .field("has_buffer", &self.buf.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Slot<B> {
    /// An empty slot without a buffer (the pool provides one when needed).
    pub const fn new() -> Self {
        Slot { sess: None, buf: None, gen: 0, ev: 0, in_ev_queue: false, in_tx_queue: false, ix: SlotIx::new() }
    }
    /// An empty slot that keeps `buf` for all its sessions (firmware, with [`SlotBound`]).
    pub const fn with_buffer(buf: B) -> Self {
        Slot { sess: None, buf: Some(buf), gen: 0, ev: 0, in_ev_queue: false, in_tx_queue: false, ix: SlotIx::new() }
    }
}

impl<B> Default for Slot<B> {
    fn default() -> Self {
        Self::new()
    }
}

/// The node's per-slot index links, kept in the caller's storage so every index is
/// bounded by the slot table and needs no allocator. Each table below uses slot `i` in
/// two roles: as bucket `i` (the `*_head` fields) and as a member (the other fields).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotIx {
    /// Free list of unused slots.
    pub next_free: u32,
    /// PeerId -> announced session.
    pub peer_head: u32,
    pub peer_next: u32,
    pub peer_key: Option<PeerId>,
    /// (address, sender index) -> inbound datagram session (retransmitted Inits).
    pub dg_head: u32,
    pub dg_next: u32,
    pub dg_key: Option<(SocketAddr, u32)>,
    /// PeerId -> threat score: entry `i` of the threat table (independent of session `i`).
    pub threat_head: u32,
    pub threat_next: u32,
    pub threat: Option<(PeerId, f32)>,
    /// Timer heap: this slot's position in it, and heap entry `i` (deadline, slot).
    pub heap_at: u32,
    pub heap: (Instant, u32),
    /// Inbound half-open sessions, oldest first (per-IP caps and eviction).
    pub ho_prev: u32,
    pub ho_next: u32,
    pub ho_in: bool,
    /// Transmit and event queues (FIFO, intrusive).
    pub tx_next: u32,
    pub ev_next: u32,
    /// Which node counters this session is counted in.
    pub counted: u8,
    /// Session counters already added to the node's totals.
    pub folded_bytes_in: u64,
    pub folded_msgs_out: u64,
    pub folded_dropped: u64,
}

impl SlotIx {
    pub const fn new() -> Self {
        SlotIx {
            next_free: NIL,
            peer_head: NIL,
            peer_next: NIL,
            peer_key: None,
            dg_head: NIL,
            dg_next: NIL,
            dg_key: None,
            threat_head: NIL,
            threat_next: NIL,
            threat: None,
            heap_at: NIL,
            heap: (Instant::ZERO, NIL),
            ho_prev: NIL,
            ho_next: NIL,
            ho_in: false,
            tx_next: NIL,
            ev_next: NIL,
            counted: 0,
            folded_bytes_in: 0,
            folded_msgs_out: 0,
            folded_dropped: 0,
        }
    }
}
