//! The node's indexes, kept inside the caller's slot table (see [`super::storage::SlotIx`]):
//! chained hash maps whose bucket heads and links are slot fields, an indexed binary heap
//! of session deadlines, and intrusive lists. Every operation is O(1) or O(log n), except
//! a hash chain walk, whose expected length is below one (as many buckets as slots, and a
//! hash keyed by a per-node secret so that peers cannot aim at one bucket).

use super::storage::{Slot, NIL};
use crate::time::Instant;

/// Which hash map of the slot table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Map {
    Peer,
    Dg,
    Threat,
}

fn head<B>(slots: &mut [Slot<B>], m: Map, bucket: u32) -> &mut u32 {
    let ix = &mut slots[bucket as usize].ix;
    match m {
        Map::Peer => &mut ix.peer_head,
        Map::Dg => &mut ix.dg_head,
        Map::Threat => &mut ix.threat_head,
    }
}

fn next_mut<B>(slots: &mut [Slot<B>], m: Map, item: u32) -> &mut u32 {
    let ix = &mut slots[item as usize].ix;
    match m {
        Map::Peer => &mut ix.peer_next,
        Map::Dg => &mut ix.dg_next,
        Map::Threat => &mut ix.threat_next,
    }
}

fn next<B>(slots: &[Slot<B>], m: Map, item: u32) -> u32 {
    let ix = &slots[item as usize].ix;
    match m {
        Map::Peer => ix.peer_next,
        Map::Dg => ix.dg_next,
        Map::Threat => ix.threat_next,
    }
}

pub(crate) fn map_insert<B>(slots: &mut [Slot<B>], m: Map, bucket: u32, item: u32) {
    let h = *head(slots, m, bucket);
    *next_mut(slots, m, item) = h;
    *head(slots, m, bucket) = item;
}

pub(crate) fn map_remove<B>(slots: &mut [Slot<B>], m: Map, bucket: u32, item: u32) {
    let mut prev = NIL;
    let mut cur = *head(slots, m, bucket);
    while cur != NIL {
        let n = next(slots, m, cur);
        if cur == item {
            if prev == NIL {
                *head(slots, m, bucket) = n;
            } else {
                *next_mut(slots, m, prev) = n;
            }
            *next_mut(slots, m, item) = NIL;
            return;
        }
        prev = cur;
        cur = n;
    }
}

pub(crate) fn map_find<B>(
    slots: &[Slot<B>],
    m: Map,
    bucket: u32,
    mut pred: impl FnMut(&Slot<B>) -> bool,
) -> Option<u32> {
    let b = &slots[bucket as usize].ix;
    let mut cur = match m {
        Map::Peer => b.peer_head,
        Map::Dg => b.dg_head,
        Map::Threat => b.threat_head,
    };
    while cur != NIL {
        if pred(&slots[cur as usize]) {
            return Some(cur);
        }
        cur = next(slots, m, cur);
    }
    None
}

/// A keyed hash for the maps (not a MAC: it only has to keep remote peers, who never see
/// its output, from steering their keys into one bucket).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed {
    k: [u64; 2],
}

impl Keyed {
    pub fn new(k: [u64; 2]) -> Self {
        Keyed { k }
    }
    pub fn hash(&self, parts: &[&[u8]]) -> u64 {
        const P: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = self.k[0];
        for part in parts {
            for c in part.chunks(8) {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                h = (h ^ u64::from_le_bytes(w)).wrapping_mul(P).rotate_left(29);
            }
            h = h.wrapping_add(part.len() as u64);
        }
        h ^= self.k[1];
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 32)
    }
}

// ---------------------------------------------------------------- timer heap

/// Sets `slot`'s deadline in the min-heap of `len` entries; `FAR_FUTURE` removes it.
pub(crate) fn heap_set<B>(slots: &mut [Slot<B>], len: &mut u32, slot: u32, t: Instant) {
    let at = slots[slot as usize].ix.heap_at;
    if t == Instant::FAR_FUTURE {
        if at != NIL {
            heap_remove_at(slots, len, at);
        }
        return;
    }
    if at == NIL {
        let pos = *len;
        *len += 1;
        slots[pos as usize].ix.heap = (t, slot);
        slots[slot as usize].ix.heap_at = pos;
        sift_up(slots, pos);
    } else {
        let old = slots[at as usize].ix.heap.0;
        slots[at as usize].ix.heap.0 = t;
        if t < old {
            sift_up(slots, at);
        } else {
            sift_down(slots, *len, at);
        }
    }
}

pub(crate) fn heap_peek<B>(slots: &[Slot<B>], len: u32) -> Option<(Instant, u32)> {
    (len > 0).then(|| slots[0].ix.heap)
}

fn heap_remove_at<B>(slots: &mut [Slot<B>], len: &mut u32, at: u32) {
    let removed = slots[at as usize].ix.heap.1;
    let last = *len - 1;
    *len = last;
    if at != last {
        swap(slots, at, last);
        // The moved entry may belong above or below its new place.
        sift_up(slots, at);
        let now_at = slots[slots[at as usize].ix.heap.1 as usize].ix.heap_at;
        if now_at == at {
            sift_down(slots, *len, at);
        }
    }
    slots[removed as usize].ix.heap_at = NIL;
}

fn swap<B>(slots: &mut [Slot<B>], a: u32, b: u32) {
    let ea = slots[a as usize].ix.heap;
    let eb = slots[b as usize].ix.heap;
    slots[a as usize].ix.heap = eb;
    slots[b as usize].ix.heap = ea;
    slots[eb.1 as usize].ix.heap_at = a;
    slots[ea.1 as usize].ix.heap_at = b;
}

fn sift_up<B>(slots: &mut [Slot<B>], mut pos: u32) {
    while pos > 0 {
        let parent = (pos - 1) / 2;
        if slots[pos as usize].ix.heap.0 >= slots[parent as usize].ix.heap.0 {
            break;
        }
        swap(slots, pos, parent);
        pos = parent;
    }
}

fn sift_down<B>(slots: &mut [Slot<B>], len: u32, mut pos: u32) {
    loop {
        let l = 2 * pos + 1;
        if l >= len {
            break;
        }
        let r = l + 1;
        let mut c = l;
        if r < len && slots[r as usize].ix.heap.0 < slots[l as usize].ix.heap.0 {
            c = r;
        }
        if slots[c as usize].ix.heap.0 >= slots[pos as usize].ix.heap.0 {
            break;
        }
        swap(slots, pos, c);
        pos = c;
    }
}

// ---------------------------------------------------------------- lists

/// Which intrusive FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    Tx,
    Ev,
    Free,
}

/// A FIFO of slots linked through one of their fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fifo {
    head: u32,
    tail: u32,
    pub len: u32,
}

impl Fifo {
    pub const fn new() -> Self {
        Fifo { head: NIL, tail: NIL, len: 0 }
    }

    fn link<B>(slots: &mut [Slot<B>], q: Queue, i: u32) -> &mut u32 {
        let ix = &mut slots[i as usize].ix;
        match q {
            Queue::Tx => &mut ix.tx_next,
            Queue::Ev => &mut ix.ev_next,
            Queue::Free => &mut ix.next_free,
        }
    }

    pub fn push_back<B>(&mut self, slots: &mut [Slot<B>], q: Queue, i: u32) {
        *Self::link(slots, q, i) = NIL;
        if self.tail == NIL {
            self.head = i;
        } else {
            *Self::link(slots, q, self.tail) = i;
        }
        self.tail = i;
        self.len += 1;
    }

    pub fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    pub fn pop_front<B>(&mut self, slots: &mut [Slot<B>], q: Queue) -> Option<u32> {
        let i = self.front()?;
        self.head = *Self::link(slots, q, i);
        if self.head == NIL {
            self.tail = NIL;
        }
        self.len -= 1;
        Some(i)
    }
}

/// The inbound half-open sessions, oldest first (doubly linked, so any one leaves in O(1)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HalfOpenList {
    pub head: u32,
    tail: u32,
    pub len: u32,
}

impl HalfOpenList {
    pub const fn new() -> Self {
        HalfOpenList { head: NIL, tail: NIL, len: 0 }
    }

    pub fn push_back<B>(&mut self, slots: &mut [Slot<B>], i: u32) {
        let ix = &mut slots[i as usize].ix;
        ix.ho_in = true;
        ix.ho_prev = self.tail;
        ix.ho_next = NIL;
        if self.tail == NIL {
            self.head = i;
        } else {
            slots[self.tail as usize].ix.ho_next = i;
        }
        self.tail = i;
        self.len += 1;
    }

    pub fn unlink<B>(&mut self, slots: &mut [Slot<B>], i: u32) {
        let ix = slots[i as usize].ix;
        if !ix.ho_in {
            return;
        }
        if ix.ho_prev == NIL {
            self.head = ix.ho_next;
        } else {
            slots[ix.ho_prev as usize].ix.ho_next = ix.ho_next;
        }
        if ix.ho_next == NIL {
            self.tail = ix.ho_prev;
        } else {
            slots[ix.ho_next as usize].ix.ho_prev = ix.ho_prev;
        }
        let ix = &mut slots[i as usize].ix;
        ix.ho_in = false;
        ix.ho_prev = NIL;
        ix.ho_next = NIL;
        self.len -= 1;
    }

    /// Members in order, oldest first.
    pub fn iter<'a, B>(&self, slots: &'a [Slot<B>]) -> impl Iterator<Item = u32> + 'a {
        let mut cur = self.head;
        core::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let i = cur;
            cur = slots[i as usize].ix.ho_next;
            Some(i)
        })
    }
}
