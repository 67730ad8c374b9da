//! The interest table: for every **origin** (a subscribing node, this one included) its
//! latest interest version, the neighbour it was learned from (`via`, the next hop
//! towards it) and its patterns, in two caller-owned tables (origins, entries).
//!
//! Indexes, so that no per-packet path scans a table:
//! - origins by PeerId: chained buckets whose heads live in the origin table itself
//!   (bucket `i`'s head is `origins[i].bucket`);
//! - entries by their **first token**: an entry whose first token is literal is chained
//!   in bucket `hash(token) % len` (heads again in the entry table), one whose first
//!   token is `*` or `>` in the wildcard list. A publication walks its first token's
//!   bucket and the wildcard list only: O((b + w) · L) for b entries sharing its first
//!   token's bucket, w entries with a wildcard first token and L ≤ 256 bytes per match;
//!   never the whole table (unless every pattern starts with a wildcard);
//! - free origins and free entries: free lists (O(1) allocation);
//! - origins per `via` neighbour: a doubly linked list from the neighbour's
//!   [`super::PeerSub`], so a closed session forgets what it taught in O(its origins).
//!
//! All lists are u32 indices; nothing recurses.

use crate::buffers::Priority;
use crate::identity::PeerId;
use crate::messaging::subject::MAX_SUBJECT_LEN;

use super::seen::LOCAL;
use super::PeerSub;

pub(crate) const NIL: u32 = u32::MAX;

/// One origin (about 80 bytes). Opaque: the caller provides room.
#[derive(Debug, Clone)]
pub struct OriginSlot {
    pub(crate) used: bool,
    pub(crate) peer: PeerId,
    pub(crate) ver: u64,
    /// The neighbour slot it was learned from; [`LOCAL`] for this node.
    pub(crate) via: u16,
    pub(crate) hops: u8,
    pub(crate) count: u16,
    /// Another session (a `ConnId`'s u32) that delivered the same version: `via`'s
    /// replacement if `via` closes. `u32::MAX`: none.
    pub(crate) alt: u32,
    /// Its first entry (list through `InterestEntry::next`).
    head: u32,
    /// Bucket `i`'s head when this is slot `i`.
    bucket: u32,
    /// Next in its bucket chain, or in the free list.
    next: u32,
    next_via: u32,
    prev_via: u32,
}

impl OriginSlot {
    /// A free slot, for static arrays: `[OriginSlot::EMPTY; N]`.
    pub const EMPTY: OriginSlot = OriginSlot {
        used: false,
        peer: PeerId([0; 32]),
        ver: 0,
        via: LOCAL,
        hops: 0,
        count: 0,
        alt: u32::MAX,
        head: NIL,
        bucket: NIL,
        next: NIL,
        next_via: NIL,
        prev_via: NIL,
    };
}

/// One pattern of one origin (about 290 bytes). Opaque: the caller provides room.
#[derive(Debug, Clone)]
pub struct InterestEntry {
    used: bool,
    pub(crate) origin: u32,
    pub(crate) prio: Priority,
    pub(crate) pattern: heapless::String<MAX_SUBJECT_LEN>,
    /// Next entry of the same origin, or in the free list.
    next: u32,
    /// Bucket `i`'s head when this is entry `i`.
    bucket: u32,
    /// Which list it is in: a bucket number or [`WILD`].
    list: u32,
    next_b: u32,
    prev_b: u32,
}

const WILD: u32 = u32::MAX - 1;

impl InterestEntry {
    /// A free entry, for static arrays: `[InterestEntry::EMPTY; N]`.
    pub const EMPTY: InterestEntry = InterestEntry {
        used: false,
        origin: NIL,
        prio: Priority::Normal,
        pattern: heapless::String::new(),
        next: NIL,
        bucket: NIL,
        list: NIL,
        next_b: NIL,
        prev_b: NIL,
    };
}

fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| (h ^ u32::from(x)).wrapping_mul(0x0100_0193))
}

fn first_token(s: &str) -> &str {
    s.split('.').next().unwrap_or("")
}

/// The bookkeeping of the two tables (the entries are the caller's slices).
#[derive(Debug)]
pub(crate) struct Interest {
    free_origins: u32,
    free_entries: u32,
    wild: u32,
    pub(crate) origins_used: usize,
    pub(crate) entries_used: usize,
}

impl Interest {
    pub(crate) fn new(origins: &mut [OriginSlot], entries: &mut [InterestEntry]) -> Self {
        let link = |i: usize, n: usize| if i + 1 < n { (i + 1) as u32 } else { NIL };
        let (no, ne) = (origins.len(), entries.len());
        for (i, o) in origins.iter_mut().enumerate() {
            *o = OriginSlot { next: link(i, no), ..OriginSlot::EMPTY };
        }
        for (i, e) in entries.iter_mut().enumerate() {
            *e = InterestEntry { next: link(i, ne), ..InterestEntry::EMPTY };
        }
        let head = |n: usize| if n > 0 { 0 } else { NIL };
        Interest { free_origins: head(no), free_entries: head(ne), wild: NIL, origins_used: 0, entries_used: 0 }
    }

    fn obucket(origins: &[OriginSlot], peer: &PeerId) -> usize {
        fnv(&peer.0[..8]) as usize % origins.len()
    }

    pub(crate) fn find(&self, origins: &[OriginSlot], peer: &PeerId) -> Option<u32> {
        if origins.is_empty() {
            return None;
        }
        let mut i = origins[Self::obucket(origins, peer)].bucket;
        while i != NIL {
            let o = &origins[i as usize];
            if o.peer == *peer {
                return Some(i);
            }
            i = o.next;
        }
        None
    }

    /// A new origin with no entries, learned locally until [`Self::set_via`].
    pub(crate) fn alloc_origin(&mut self, origins: &mut [OriginSlot], peer: &PeerId) -> Option<u32> {
        let i = self.free_origins;
        if i == NIL {
            return None;
        }
        self.free_origins = origins[i as usize].next;
        let b = Self::obucket(origins, peer);
        let bucket = origins[i as usize].bucket;
        origins[i as usize] =
            OriginSlot { used: true, peer: *peer, next: origins[b].bucket, bucket, ..OriginSlot::EMPTY };
        origins[b].bucket = i;
        self.origins_used += 1;
        Some(i)
    }

    /// Moves origin `o` to the via list of neighbour slot `via` (or none: [`LOCAL`]).
    pub(crate) fn set_via(&mut self, origins: &mut [OriginSlot], conns: &mut [PeerSub], o: u32, via: u16) {
        self.unlink_via(origins, conns, o);
        origins[o as usize].via = via;
        if let Some(c) = conns.get_mut(usize::from(via)) {
            let h = c.via_head;
            origins[o as usize].next_via = h;
            if h != NIL {
                origins[h as usize].prev_via = o;
            }
            c.via_head = o;
        }
    }

    fn unlink_via(&mut self, origins: &mut [OriginSlot], conns: &mut [PeerSub], o: u32) {
        let (via, p, n) = {
            let x = &origins[o as usize];
            (x.via, x.prev_via, x.next_via)
        };
        if n != NIL {
            origins[n as usize].prev_via = p;
        }
        if p != NIL {
            origins[p as usize].next_via = n;
        } else if let Some(c) = conns.get_mut(usize::from(via)) {
            if c.via_head == o {
                c.via_head = n;
            }
        }
        let x = &mut origins[o as usize];
        x.prev_via = NIL;
        x.next_via = NIL;
        x.via = LOCAL;
    }

    /// The first origin learned over neighbour slot `slot`.
    pub(crate) fn first_via(conns: &[PeerSub], slot: usize) -> u32 {
        conns.get(slot).map_or(NIL, |c| c.via_head)
    }

    /// Frees origin `o` and its entries.
    pub(crate) fn free_origin(
        &mut self,
        origins: &mut [OriginSlot],
        entries: &mut [InterestEntry],
        conns: &mut [PeerSub],
        o: u32,
    ) {
        self.clear_entries(origins, entries, o);
        self.unlink_via(origins, conns, o);
        let b = Self::obucket(origins, &origins[o as usize].peer);
        // Unlink from its bucket chain (chains hold the origins of one bucket only).
        let mut prev = NIL;
        let mut i = origins[b].bucket;
        while i != NIL && i != o {
            prev = i;
            i = origins[i as usize].next;
        }
        let n = origins[o as usize].next;
        if prev == NIL {
            origins[b].bucket = n;
        } else {
            origins[prev as usize].next = n;
        }
        let bucket = origins[o as usize].bucket;
        origins[o as usize] = OriginSlot { next: self.free_origins, bucket, ..OriginSlot::EMPTY };
        self.free_origins = o;
        self.origins_used -= 1;
    }

    /// Removes every entry of origin `o`.
    pub(crate) fn clear_entries(&mut self, origins: &mut [OriginSlot], entries: &mut [InterestEntry], o: u32) {
        let mut e = origins[o as usize].head;
        while e != NIL {
            let next = entries[e as usize].next;
            self.unlink_bucket(entries, e);
            let bucket = entries[e as usize].bucket;
            entries[e as usize] = InterestEntry { next: self.free_entries, bucket, ..InterestEntry::EMPTY };
            self.free_entries = e;
            self.entries_used -= 1;
            e = next;
        }
        origins[o as usize].head = NIL;
        origins[o as usize].count = 0;
    }

    fn unlink_bucket(&mut self, entries: &mut [InterestEntry], e: u32) {
        let (list, p, n) = {
            let x = &entries[e as usize];
            (x.list, x.prev_b, x.next_b)
        };
        if n != NIL {
            entries[n as usize].prev_b = p;
        }
        if p != NIL {
            entries[p as usize].next_b = n;
        } else if list == WILD {
            self.wild = n;
        } else if list != NIL {
            entries[list as usize].bucket = n;
        }
    }

    /// Adds `pattern` (valid) to origin `o`; `false` when the entry table is full.
    pub(crate) fn add_entry(
        &mut self,
        origins: &mut [OriginSlot],
        entries: &mut [InterestEntry],
        o: u32,
        prio: Priority,
        pattern: &str,
    ) -> bool {
        let e = self.free_entries;
        if e == NIL {
            return false;
        }
        let mut text = heapless::String::new();
        if text.push_str(pattern).is_err() {
            return false;
        }
        self.free_entries = entries[e as usize].next;
        let first = first_token(pattern);
        let list = if first == "*" || first == ">" { WILD } else { fnv(first.as_bytes()) % entries.len() as u32 };
        let head = if list == WILD { self.wild } else { entries[list as usize].bucket };
        let bucket = entries[e as usize].bucket;
        entries[e as usize] = InterestEntry {
            used: true,
            origin: o,
            prio,
            pattern: text,
            next: origins[o as usize].head,
            bucket,
            list,
            next_b: head,
            prev_b: NIL,
        };
        if head != NIL {
            entries[head as usize].prev_b = e;
        }
        if list == WILD {
            self.wild = e;
        } else {
            entries[list as usize].bucket = e;
        }
        origins[o as usize].head = e;
        origins[o as usize].count += 1;
        self.entries_used += 1;
        true
    }

    /// Calls `f(entry)` for every entry whose pattern matches the literal `subject`,
    /// walking only the subject's first-token bucket and the wildcard list.
    pub(crate) fn for_matches(&self, entries: &[InterestEntry], subject: &str, mut f: impl FnMut(&InterestEntry)) {
        if entries.is_empty() {
            return;
        }
        let b = fnv(first_token(subject).as_bytes()) % entries.len() as u32;
        for head in [entries[b as usize].bucket, self.wild] {
            let mut e = head;
            while e != NIL {
                let x = &entries[e as usize];
                if x.used && crate::messaging::subject::matches(&x.pattern, subject) {
                    f(x);
                }
                e = x.next_b;
            }
        }
    }

    /// Writes origin `o`'s entries in the Interest wire form (§15.3); `None` when `out`
    /// is too small.
    pub(crate) fn encode_entries(
        origins: &[OriginSlot],
        entries: &[InterestEntry],
        o: u32,
        out: &mut [u8],
    ) -> Option<usize> {
        let mut n = 0;
        let mut e = origins[o as usize].head;
        while e != NIL {
            let x = &entries[e as usize];
            let need = usize::from(n > 0) + 1 + x.pattern.len();
            let dst = out.get_mut(n..n + need)?;
            let mut at = 0;
            if n > 0 {
                dst[0] = b' ';
                at = 1;
            }
            dst[at] = super::packet::priority_byte(x.prio);
            dst[at + 1..].copy_from_slice(x.pattern.as_bytes());
            n += need;
            e = x.next;
        }
        Some(n)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::{borrow::ToOwned, string::String, vec, vec::Vec};

    fn tables() -> (Vec<OriginSlot>, Vec<InterestEntry>, Vec<PeerSub>) {
        (vec![OriginSlot::EMPTY; 4], vec![InterestEntry::EMPTY; 8], vec![PeerSub::EMPTY; 4])
    }

    fn matched(i: &Interest, e: &[InterestEntry], s: &str) -> Vec<String> {
        let mut v = Vec::new();
        i.for_matches(e, s, |x| v.push(x.pattern.as_str().to_owned()));
        v.sort();
        v
    }

    #[test]
    fn the_index_finds_exactly_the_matching_patterns() {
        let (mut o, mut e, _) = tables();
        let mut i = Interest::new(&mut o, &mut e);
        let a = i.alloc_origin(&mut o, &PeerId([1; 32])).unwrap();
        for p in ["foo.*", "foo.bar", "bar.>", ">", "*.bar", "foo"] {
            assert!(i.add_entry(&mut o, &mut e, a, Priority::Normal, p));
        }
        assert_eq!(matched(&i, &e, "foo.bar"), ["*.bar", ">", "foo.*", "foo.bar"]);
        assert_eq!(matched(&i, &e, "foo"), [">", "foo"]);
        assert_eq!(matched(&i, &e, "bar.x.y"), [">", "bar.>"]);
        assert_eq!(matched(&i, &e, "zip"), [">"]);
    }

    #[test]
    fn entries_and_origins_are_freed_and_reused_at_the_table_edges() {
        let (mut o, mut e, mut c) = tables();
        let mut i = Interest::new(&mut o, &mut e);
        let peers: Vec<_> = (0..4u8).map(|k| PeerId([k; 32])).collect();
        let ids: Vec<_> = peers.iter().map(|p| i.alloc_origin(&mut o, p).unwrap()).collect();
        assert_eq!(i.alloc_origin(&mut o, &PeerId([9; 32])), None, "origin table full");
        for (k, &id) in ids.iter().enumerate() {
            assert_eq!(i.find(&o, &peers[k]), Some(id));
            i.set_via(&mut o, &mut c, id, (k % 2) as u16);
            assert!(i.add_entry(&mut o, &mut e, id, Priority::High, "a.b"));
            assert!(i.add_entry(&mut o, &mut e, id, Priority::Low, "a.*"));
        }
        assert!(!i.add_entry(&mut o, &mut e, ids[0], Priority::Low, "x"), "entry table full");
        assert_eq!(matched(&i, &e, "a.b").len(), 8);
        // Slot 1 taught origins 1 and 3: both on its via list.
        let mut on1 = Vec::new();
        let mut x = Interest::first_via(&c, 1);
        while x != NIL {
            on1.push(x);
            x = o[x as usize].next_via;
        }
        on1.sort();
        assert_eq!(on1, [ids[1], ids[3]]);
        i.free_origin(&mut o, &mut e, &mut c, ids[1]);
        assert_eq!(i.find(&o, &peers[1]), None);
        assert_eq!(i.find(&o, &peers[3]), Some(ids[3]));
        assert_eq!(Interest::first_via(&c, 1), ids[3]);
        assert_eq!(matched(&i, &e, "a.b").len(), 6);
        assert_eq!((i.origins_used, i.entries_used), (3, 6));
        let again = i.alloc_origin(&mut o, &PeerId([7; 32])).unwrap();
        assert!(i.add_entry(&mut o, &mut e, again, Priority::Low, "q.>"));
        assert!(i.add_entry(&mut o, &mut e, again, Priority::Low, "q"));
        assert_eq!(matched(&i, &e, "q.r"), ["q.>"]);
        let mut buf = [0u8; 16];
        let n = Interest::encode_entries(&o, &e, again, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x02q\x20\x02q.>");
        assert_eq!(Interest::encode_entries(&o, &e, again, &mut buf[..3]), None);
        i.clear_entries(&mut o, &mut e, again);
        assert_eq!(matched(&i, &e, "q.r"), Vec::<String>::new());
        assert_eq!(matched(&i, &e, "q"), Vec::<String>::new());
    }
}
