//! Publish/subscribe (F24, PROTOCOL.md §15.3): subscriptions with a priority, interest
//! that propagates across the mesh, publications routed hop by hop to the neighbours
//! with matching interest and deduplicated by a bounded seen-cache, and typed notices
//! for slow consumers.
//!
//! # Model
//!
//! Every subscribing node is an **origin**. Its interest is a *versioned set* of
//! `(priority, pattern)` entries; each change floods the whole set (an Interest packet,
//! `ver` one higher) to every neighbour, and every node forwards a set it had not seen to
//! its other neighbours. A node keeps, per origin, the newest set and the neighbour that
//! delivered it first (`via`: the next hop towards that origin; the first copy came the
//! fastest way, and the first-arrival pointers form a tree rooted at the origin). A
//! publication goes to the `via` neighbours of the origins whose patterns match it,
//! never back to the neighbour it came from, and each hop checks the seen-cache first.
//!
//! This is the reverse-path idea of NATS's interest graph (a server forwards a message
//! only to routes/gateways that registered interest, nats-server `sublist.go`) and of
//! DVMRP, with gossipsub/plumtree's message-id cache for dedup. Where meshlink departs:
//! NATS propagates interest one hop in a full-mesh cluster and along a tree of gateways,
//! so plain refcounts suffice; meshlink runs on any graph, where refcounted per-neighbour
//! interest never unsubscribes around a cycle (each side keeps counting the other's
//! echo). Versioned per-origin sets cannot loop: an older or equal version is ignored.
//!
//! # Tables (caller-owned, [`crate::messaging::MessengerStorage`])
//! - `subs` ([`SubSlot`]): this node's subscriptions ([`crate::messaging::MessagingConfig::max_subs`]);
//! - `origins` ([`OriginSlot`]) and `interest` ([`InterestEntry`]): what every origin
//!   wants (one origin is this node); an origin is kept to
//!   [`crate::messaging::MessagingConfig::max_interest_per_origin`] entries, more are
//!   refused with a typed InterestAck and ignored;
//! - `seen` ([`SeenEntry`]): the seen-cache (see [`seen`] for its window);
//! - `peer_subs` ([`PeerSub`]): one entry per node slot, the per-neighbour state.

pub(crate) mod api;
pub mod interest;
pub mod packet;
pub mod seen;

pub use api::PublishReport;
pub use interest::{InterestEntry, OriginSlot};
pub use packet::PubSubPacket;
pub use seen::SeenEntry;

use crate::buffers::Priority;
use crate::identity::PeerId;
use crate::messaging::subject::MAX_SUBJECT_LEN;
use crate::messaging::Store;
use crate::node::ConnId;
use crate::time::Instant;

use interest::{Interest, NIL};
use seen::Seen;

/// A subscription of this node, as [`crate::messaging::Messenger::subscribe`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(pub u32);

impl SubId {
    fn new(slot: usize, gen: u16) -> Self {
        SubId((u32::from(gen) << 16) | slot as u32)
    }
    fn slot(self) -> usize {
        (self.0 & 0xffff) as usize
    }
    fn gen(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// One subscription (about 300 bytes). Opaque: the caller provides room.
#[derive(Debug, Clone)]
pub struct SubSlot {
    used: bool,
    gen: u16,
    prio: Priority,
    pattern: heapless::String<MAX_SUBJECT_LEN>,
    /// This node's interest version that first carried it.
    ver: u64,
    /// Delivered and not yet `consumed` (when `sub_queue` is on).
    queued: u16,
    dropped: u64,
    /// Drops not yet told to a publisher.
    unreported: u32,
    next_notice: Instant,
}

impl SubSlot {
    /// A free slot, for static arrays: `[SubSlot::EMPTY; N]`.
    pub const EMPTY: SubSlot = SubSlot {
        used: false,
        gen: 0,
        prio: Priority::Normal,
        pattern: heapless::String::new(),
        ver: 0,
        queued: 0,
        dropped: 0,
        unreported: 0,
        next_notice: Instant::ZERO,
    };
}

/// Per-neighbour pub/sub state, one per node slot (about 80 bytes).
#[derive(Debug, Clone)]
pub struct PeerSub {
    live: bool,
    peer: PeerId,
    conn: ConnId,
    /// The highest version of this node's own interest the neighbour acknowledged.
    acked_self: u64,
    /// Origins learned over this neighbour (interest.rs).
    pub(crate) via_head: u32,
    next_live: u32,
    prev_live: u32,
    /// Publication fan-out: marked with the publication's stamp, best priority, list.
    stamp: u32,
    prio: Priority,
    next_out: u32,
    /// Waiting for the full interest set (a new session).
    sync: bool,
    /// In the sync list (kept across a reconnect of the slot, so it is never pushed twice).
    in_sync: bool,
    next_sync: u32,
}

impl PeerSub {
    /// A free entry, for static arrays: `[PeerSub::EMPTY; N]`.
    pub const EMPTY: PeerSub = PeerSub {
        live: false,
        peer: PeerId([0; 32]),
        conn: ConnId(u32::MAX),
        acked_self: 0,
        via_head: NIL,
        next_live: NIL,
        prev_live: NIL,
        stamp: 0,
        prio: Priority::Low,
        next_out: NIL,
        sync: false,
        in_sync: false,
        next_sync: NIL,
    };
}

/// Counters of publish/subscribe; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PubSubStats {
    pub published: u64,
    /// Publication events handed to this node's subscriptions.
    pub delivered: u64,
    /// Publication copies queued to neighbours (own and relayed).
    pub forwarded: u64,
    /// Publications dropped by the seen-cache.
    pub duplicates: u64,
    /// Publications, interest sets and notices dropped for their hop count.
    pub hops_exceeded: u64,
    /// Publications dropped at a full subscription queue.
    pub dropped_slow: u64,
    pub notices_sent: u64,
    /// SlowConsumer notices that could not be routed back (seen entry gone, session gone).
    pub notices_unroutable: u64,
    pub interest_received: u64,
    /// Interest sets older than the one held (reordered or looped copies).
    pub interest_stale: u64,
    /// Interest entries ignored at a limit (per origin, entry table, origin table).
    pub interest_refused: u64,
    pub malformed: u64,
    /// Queueing a pub/sub packet to a neighbour failed (queue full, too large).
    pub send_failed: u64,
}

/// What the next poll owes: `SubscribeActive` for the subs in `(lo, hi]` at `peer`.
#[derive(Debug, Clone, Copy)]
struct ActiveCursor {
    peer: PeerId,
    lo: u64,
    hi: u64,
    next: usize,
}

/// Every pub/sub table and its bookkeeping, inside the messenger.
pub(crate) struct PubSub<'a> {
    subs: Store<'a, SubSlot>,
    conns: Store<'a, PeerSub>,
    origins: Store<'a, OriginSlot>,
    entries: Store<'a, InterestEntry>,
    seen_t: Store<'a, SeenEntry>,
    interest: Interest,
    seen: Seen,
    /// This node's origin slot (`NIL`: no origin table, pub/sub off).
    own: u32,
    ver: u64,
    next_seq: u64,
    live: u32,
    sync: u32,
    stamp: u32,
    active: Option<ActiveCursor>,
    /// The head message is this publication (origin, seq), already forwarded: deliver
    /// it from this subscription slot on.
    delivering: Option<(usize, [u8; 32], u64)>,
    pub(crate) stats: PubSubStats,
}

impl<'a> PubSub<'a> {
    pub(crate) fn new(
        me: PeerId,
        mut subs: Store<'a, SubSlot>,
        mut conns: Store<'a, PeerSub>,
        mut origins: Store<'a, OriginSlot>,
        mut entries: Store<'a, InterestEntry>,
        mut seen_t: Store<'a, SeenEntry>,
    ) -> Self {
        for s in subs.iter_mut() {
            *s = SubSlot::EMPTY;
        }
        for c in conns.iter_mut() {
            *c = PeerSub::EMPTY;
        }
        for e in seen_t.iter_mut() {
            *e = SeenEntry::EMPTY;
        }
        let mut interest = Interest::new(&mut origins, &mut entries);
        let own = interest.alloc_origin(&mut origins, &me).unwrap_or(NIL);
        PubSub {
            subs,
            conns,
            origins,
            entries,
            seen_t,
            interest,
            seen: Seen::default(),
            own,
            ver: 0,
            next_seq: 1,
            live: NIL,
            sync: NIL,
            stamp: 0,
            active: None,
            delivering: None,
            stats: PubSubStats::default(),
        }
    }

    /// A session came up at node slot `slot`: it joins the live list and gets the full
    /// interest set on the next service.
    pub(crate) fn on_connected(&mut self, slot: usize, conn: ConnId, peer: PeerId) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.live {
            return;
        }
        let (in_sync, next_sync) = if c.in_sync { (true, c.next_sync) } else { (true, self.sync) };
        let push = !c.in_sync;
        *c = PeerSub { live: true, peer, conn, next_live: self.live, sync: true, in_sync, next_sync, ..PeerSub::EMPTY };
        if self.live != NIL {
            self.conns[self.live as usize].prev_live = slot as u32;
        }
        self.live = slot as u32;
        if push {
            self.sync = slot as u32;
        }
    }

    /// The session at `slot` closed: it leaves the live list, and the origins learned
    /// over it are forgotten (each origin's next announcement, or the next session's
    /// full sync, teaches them again).
    pub(crate) fn on_disconnected(&mut self, slot: usize, conn: ConnId) {
        let Some(c) = self.conns.get(slot) else { return };
        if !c.live || c.conn != conn {
            return;
        }
        let (p, n) = (c.prev_live, c.next_live);
        if n != NIL {
            self.conns[n as usize].prev_live = p;
        }
        if p != NIL {
            self.conns[p as usize].next_live = n;
        } else {
            self.live = n;
        }
        loop {
            let o = Interest::first_via(&self.conns, slot);
            if o == NIL {
                break;
            }
            let alt = self.origins[o as usize].alt;
            let alt_slot = (alt & 0xffff) as usize;
            let alive = alt != u32::MAX && self.conns.get(alt_slot).is_some_and(|c| c.live && c.conn.0 == alt);
            if alive && alt_slot != slot {
                self.origins[o as usize].alt = u32::MAX;
                self.interest.set_via(&mut self.origins, &mut self.conns, o, alt_slot as u16);
            } else {
                self.interest.free_origin(&mut self.origins, &mut self.entries, &mut self.conns, o);
            }
        }
        // It stays in the sync list if it is there; `sync` cleared, it is skipped.
        let c = &mut self.conns[slot];
        c.live = false;
        c.sync = false;
        c.prev_live = NIL;
        c.next_live = NIL;
    }

    /// Services (§15.4): calls `f(origin)` for every other origin with an interest entry
    /// **equal** to the literal `subject` (a wildcard pattern is no provider), walking
    /// only the subject's first-token bucket and the wildcard list.
    pub(crate) fn for_providers(&self, subject: &str, mut f: impl FnMut(&PeerId)) {
        self.interest.for_matches(&self.entries, subject, |e| {
            if e.origin != self.own && e.pattern.as_str() == subject {
                if let Some(o) = self.origins.get(e.origin as usize).filter(|o| o.used) {
                    f(&o.peer);
                }
            }
        });
    }
}
