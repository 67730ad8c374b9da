//! The pending-request table: requests this node sent and has no outcome for yet, in
//! caller-owned slots ([`RequestSlot`]), with every index inside them:
//!
//! - **id → slot in O(1)**: a request id is `(sequence << 16) | slot`; the sequence grows
//!   by one per request (48 bits: it never wraps), so ids are unique per node, and a
//!   response finds its slot by its low 16 bits, then checks the whole id and the peer;
//! - **deadlines**: an indexed binary min-heap threaded through the slots (`poll_timeout`
//!   peeks its top in O(1), `handle_timeout` pops only what is due, O(log n) each);
//! - **per session**: a doubly linked list per node slot ([`ConnEntry`]) with its count,
//!   for the per-peer cap and to end a closed session's requests without a scan;
//! - **outcomes owed**: a FIFO of finished slots (timed out, cancelled, disconnected)
//!   whose event has not been polled yet; polling it frees the slot.

use crate::identity::PeerId;
use crate::node::ConnId;
use crate::time::Instant;

const NIL: u32 = u32::MAX;
const FREE: u8 = 0;
const ACTIVE: u8 = 1;
const DONE: u8 = 2;

/// Why a request ended without a reply packet (the owed outcomes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Timeout,
    Cancelled,
    Disconnected,
}

/// One pending request (about 80 bytes). Opaque: the caller only provides room for them.
#[derive(Debug, Clone)]
pub struct RequestSlot {
    id: u64,
    peer: PeerId,
    conn: ConnId,
    deadline: Instant,
    state: u8,
    ended: Ended,
    next: u32,
    prev: u32,
    heap_pos: u32,
    /// The heap's element at the position equal to this slot's index.
    heap_item: u32,
}

impl RequestSlot {
    /// A free slot, for static arrays: `[RequestSlot::EMPTY; N]`.
    pub const EMPTY: RequestSlot = RequestSlot {
        id: 0,
        peer: PeerId([0; 32]),
        conn: ConnId(0),
        deadline: Instant::ZERO,
        state: FREE,
        ended: Ended::Timeout,
        next: NIL,
        prev: NIL,
        heap_pos: NIL,
        heap_item: NIL,
    };
}

/// Per node slot: the session's pending requests (a list head and a count).
#[derive(Debug, Clone)]
pub struct ConnEntry {
    conn: u32,
    count: u32,
    head: u32,
}

impl ConnEntry {
    /// An unused entry, for static arrays: `[ConnEntry::EMPTY; N]`.
    pub const EMPTY: ConnEntry = ConnEntry { conn: 0, count: 0, head: NIL };
}

/// The table's own state (the slots are the caller's).
#[derive(Debug)]
pub(crate) struct Pending {
    free: u32,
    done_head: u32,
    done_tail: u32,
    heap_len: u32,
    /// Slots not free: active plus owed outcomes.
    in_use: u32,
    seq: u64,
}

fn conn_ix(c: ConnId) -> usize {
    crate::node::conn_slot(c)
}

impl Pending {
    /// Links every slot onto the free list.
    pub(crate) fn new(t: &mut [RequestSlot], conns: &mut [ConnEntry]) -> Self {
        let n = t.len();
        for (i, s) in t.iter_mut().enumerate() {
            *s = RequestSlot::EMPTY;
            s.next = if i + 1 < n { (i + 1) as u32 } else { NIL };
        }
        for c in conns.iter_mut() {
            *c = ConnEntry::EMPTY;
        }
        Pending { free: if n > 0 { 0 } else { NIL }, done_head: NIL, done_tail: NIL, heap_len: 0, in_use: 0, seq: 1 }
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use as usize
    }

    /// Requests in flight on session `conn`.
    pub(crate) fn on_conn(&self, conns: &[ConnEntry], conn: ConnId) -> usize {
        conns.get(conn_ix(conn)).filter(|e| e.conn == conn.0).map_or(0, |e| e.count as usize)
    }

    /// Takes a free slot for a request to `peer` over `conn`; returns (slot, id).
    pub(crate) fn insert(
        &mut self,
        t: &mut [RequestSlot],
        conns: &mut [ConnEntry],
        peer: PeerId,
        conn: ConnId,
        deadline: Instant,
    ) -> Option<(u32, u64)> {
        let ci = conn_ix(conn);
        if ci >= conns.len() {
            return None;
        }
        if conns[ci].conn != conn.0 && conns[ci].head != NIL {
            // Leftovers of an earlier session in this node slot (its Disconnected was
            // missed): they end as disconnected before the slot is reused.
            let old = ConnId(conns[ci].conn);
            self.end_conn(t, conns, old);
        }
        let slot = self.free;
        if slot == NIL {
            return None;
        }
        self.free = t[slot as usize].next;
        let id = (self.seq << 16) | u64::from(slot);
        self.seq += 1;
        let e = &mut conns[ci];
        if e.conn != conn.0 {
            *e = ConnEntry { conn: conn.0, count: 0, head: NIL };
        }
        let head = e.head;
        e.head = slot;
        e.count += 1;
        if head != NIL {
            t[head as usize].prev = slot;
        }
        let s = &mut t[slot as usize];
        *s = RequestSlot { id, peer, conn, deadline, state: ACTIVE, next: head, prev: NIL, heap_pos: NIL, ..*s };
        self.heap_push(t, slot);
        self.in_use += 1;
        Some((slot, id))
    }

    /// The active slot of request `id`, if `peer` (when given) is who it went to.
    pub(crate) fn find(&self, t: &[RequestSlot], id: u64, peer: Option<&PeerId>) -> Option<u32> {
        let slot = (id & 0xffff) as u32;
        let s = t.get(slot as usize)?;
        (s.state == ACTIVE && s.id == id && peer.map_or(true, |p| *p == s.peer)).then_some(slot)
    }

    pub(crate) fn peer_of(t: &[RequestSlot], slot: u32) -> (PeerId, u64) {
        (t[slot as usize].peer, t[slot as usize].id)
    }

    /// Frees an active slot at once (its outcome is being delivered now).
    pub(crate) fn release(&mut self, t: &mut [RequestSlot], conns: &mut [ConnEntry], slot: u32) {
        self.detach(t, conns, slot);
        self.free_slot(t, slot);
    }

    /// Ends an active request without a reply: its outcome is owed to `poll_event`.
    pub(crate) fn end(&mut self, t: &mut [RequestSlot], conns: &mut [ConnEntry], slot: u32, why: Ended) {
        self.detach(t, conns, slot);
        let s = &mut t[slot as usize];
        s.state = DONE;
        s.ended = why;
        s.next = NIL;
        if self.done_tail == NIL {
            self.done_head = slot;
        } else {
            t[self.done_tail as usize].next = slot;
        }
        self.done_tail = slot;
    }

    /// The next owed outcome; its slot is free afterwards.
    pub(crate) fn pop_done(&mut self, t: &mut [RequestSlot]) -> Option<(u64, PeerId, Ended)> {
        let slot = self.done_head;
        if slot == NIL {
            return None;
        }
        self.done_head = t[slot as usize].next;
        if self.done_head == NIL {
            self.done_tail = NIL;
        }
        let s = &t[slot as usize];
        let r = (s.id, s.peer, s.ended);
        self.free_slot(t, slot);
        Some(r)
    }

    /// Ends every request whose deadline is at or before `now` (the heap's due top).
    pub(crate) fn expire(&mut self, t: &mut [RequestSlot], conns: &mut [ConnEntry], now: Instant) {
        while self.heap_len > 0 {
            let top = t[0].heap_item;
            if t[top as usize].deadline > now {
                break;
            }
            self.end(t, conns, top, Ended::Timeout);
        }
    }

    /// Ends every request sent over session `conn` (it closed).
    pub(crate) fn end_conn(&mut self, t: &mut [RequestSlot], conns: &mut [ConnEntry], conn: ConnId) {
        let ci = conn_ix(conn);
        let Some(e) = conns.get(ci) else { return };
        if e.conn != conn.0 {
            return;
        }
        while conns[ci].head != NIL {
            let slot = conns[ci].head;
            self.end(t, conns, slot, Ended::Disconnected);
        }
        conns[ci] = ConnEntry::EMPTY;
    }

    /// The earliest deadline of an active request. O(1).
    pub(crate) fn next_deadline(&self, t: &[RequestSlot]) -> Option<Instant> {
        (self.heap_len > 0).then(|| t[t[0].heap_item as usize].deadline)
    }

    fn free_slot(&mut self, t: &mut [RequestSlot], slot: u32) {
        let s = &mut t[slot as usize];
        let item = s.heap_item;
        *s = RequestSlot { heap_item: item, next: self.free, ..RequestSlot::EMPTY };
        self.free = slot;
        self.in_use -= 1;
    }

    /// Out of its session list and the heap.
    fn detach(&mut self, t: &mut [RequestSlot], conns: &mut [ConnEntry], slot: u32) {
        let (prev, next, conn) = {
            let s = &t[slot as usize];
            (s.prev, s.next, s.conn)
        };
        let ci = conn_ix(conn);
        if prev == NIL {
            if let Some(e) = conns.get_mut(ci).filter(|e| e.head == slot) {
                e.head = next;
            }
        } else {
            t[prev as usize].next = next;
        }
        if next != NIL {
            t[next as usize].prev = prev;
        }
        if let Some(e) = conns.get_mut(ci).filter(|e| e.conn == conn.0) {
            e.count = e.count.saturating_sub(1);
        }
        let s = &mut t[slot as usize];
        s.prev = NIL;
        s.next = NIL;
        self.heap_remove(t, slot);
    }

    // --- the indexed min-heap: position p holds slot t[p].heap_item; t[slot].heap_pos is p.

    fn key(t: &[RequestSlot], pos: u32) -> Instant {
        t[t[pos as usize].heap_item as usize].deadline
    }

    fn place(t: &mut [RequestSlot], pos: u32, slot: u32) {
        t[pos as usize].heap_item = slot;
        t[slot as usize].heap_pos = pos;
    }

    fn heap_push(&mut self, t: &mut [RequestSlot], slot: u32) {
        let pos = self.heap_len;
        self.heap_len += 1;
        Self::place(t, pos, slot);
        self.sift_up(t, pos);
    }

    fn heap_remove(&mut self, t: &mut [RequestSlot], slot: u32) {
        let pos = t[slot as usize].heap_pos;
        if pos == NIL {
            return;
        }
        self.heap_len -= 1;
        let last = self.heap_len;
        t[slot as usize].heap_pos = NIL;
        if pos != last {
            let moved = t[last as usize].heap_item;
            Self::place(t, pos, moved);
            self.sift_up(t, pos);
            let p = t[moved as usize].heap_pos;
            self.sift_down(t, p);
        }
        t[last as usize].heap_item = NIL;
    }

    fn sift_up(&self, t: &mut [RequestSlot], mut pos: u32) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if Self::key(t, parent) <= Self::key(t, pos) {
                break;
            }
            let (a, b) = (t[parent as usize].heap_item, t[pos as usize].heap_item);
            Self::place(t, parent, b);
            Self::place(t, pos, a);
            pos = parent;
        }
    }

    fn sift_down(&self, t: &mut [RequestSlot], mut pos: u32) {
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut m = pos;
            if l < self.heap_len && Self::key(t, l) < Self::key(t, m) {
                m = l;
            }
            if r < self.heap_len && Self::key(t, r) < Self::key(t, m) {
                m = r;
            }
            if m == pos {
                break;
            }
            let (a, b) = (t[pos as usize].heap_item, t[m as usize].heap_item);
            Self::place(t, pos, b);
            Self::place(t, m, a);
            pos = m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(slot: u32, gen: u32) -> ConnId {
        ConnId((gen << 16) | slot)
    }

    #[test]
    fn deadlines_pop_in_order_and_free_everything() {
        let mut t = [RequestSlot::EMPTY; 16];
        let mut c = [ConnEntry::EMPTY; 2];
        let mut p = Pending::new(&mut t, &mut c);
        let peer = PeerId([1; 32]);
        let mut ids = heapless::Vec::<u64, 16>::new();
        for i in 0..16u64 {
            let d = Instant::from_millis((i * 7919) % 16 + 1);
            let (_, id) = p.insert(&mut t, &mut c, peer, conn(i as u32 % 2, 1), d).unwrap();
            ids.push(id).unwrap();
        }
        assert!(p.insert(&mut t, &mut c, peer, conn(0, 1), Instant::ZERO).is_none(), "full");
        assert_eq!(p.on_conn(&c, conn(0, 1)), 8);
        let mut last = Instant::ZERO;
        for ms in 1..=16 {
            let before = p.next_deadline(&t).unwrap();
            assert!(before >= last);
            last = before;
            p.expire(&mut t, &mut c, Instant::from_millis(ms));
        }
        assert_eq!(p.next_deadline(&t), None);
        let mut n = 0;
        while let Some((id, _, why)) = p.pop_done(&mut t) {
            assert_eq!(why, Ended::Timeout);
            assert!(ids.contains(&id));
            n += 1;
        }
        assert_eq!((n, p.in_use(), p.on_conn(&c, conn(0, 1))), (16, 0, 0));
    }

    #[test]
    fn ids_are_unique_and_checked_against_the_peer() {
        let mut t = [RequestSlot::EMPTY; 2];
        let mut c = [ConnEntry::EMPTY; 1];
        let mut p = Pending::new(&mut t, &mut c);
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        let (s1, id1) = p.insert(&mut t, &mut c, a, conn(0, 1), Instant::FAR_FUTURE).unwrap();
        assert_eq!(p.find(&t, id1, Some(&b)), None, "another peer cannot answer it");
        assert_eq!(p.find(&t, id1, Some(&a)), Some(s1));
        p.release(&mut t, &mut c, s1);
        let (s2, id2) = p.insert(&mut t, &mut c, a, conn(0, 1), Instant::FAR_FUTURE).unwrap();
        assert_eq!(s1, s2);
        assert_ne!(id1, id2, "a reused slot gets a new id");
        assert_eq!(p.find(&t, id1, Some(&a)), None, "the old id is dead");
    }

    #[test]
    fn a_closed_session_ends_only_its_requests() {
        let mut t = [RequestSlot::EMPTY; 4];
        let mut c = [ConnEntry::EMPTY; 2];
        let mut p = Pending::new(&mut t, &mut c);
        let peer = PeerId([1; 32]);
        for i in 0..4 {
            p.insert(&mut t, &mut c, peer, conn(i % 2, 3), Instant::FAR_FUTURE).unwrap();
        }
        p.end_conn(&mut t, &mut c, conn(0, 3));
        let mut n = 0;
        while let Some((_, _, why)) = p.pop_done(&mut t) {
            assert_eq!(why, Ended::Disconnected);
            n += 1;
        }
        assert_eq!((n, p.in_use(), p.on_conn(&c, conn(1, 3))), (2, 2, 2));
    }
}
