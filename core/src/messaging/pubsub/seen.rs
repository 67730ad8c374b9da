//! The bounded seen-cache of publications (research note §2.2; gossipsub's `seen_ttl`
//! cache, plumtree's "received" set), keyed by (origin, sequence).
//!
//! It is **set-associative**: the caller's table of N entries is N / [`WAYS`] sets of
//! [`WAYS`] entries; a key lives in the set its hash picks, and inserting into a full set
//! evicts that set's oldest entry. Lookup and insert are O([`WAYS`]) whatever a peer sends
//! (a chained table would let a peer who picks keys build long chains). The **window**: a
//! publication is remembered until [`WAYS`] newer ones land in its set; with keys spread
//! evenly that is about N later publications, and never fewer than [`WAYS`]. A duplicate
//! that arrives after its entry was evicted is delivered again: size the table for the
//! publications a mesh carries within its longest path delay.
//!
//! Each entry also keeps the neighbour the publication came from: a SlowConsumer notice
//! travels back to the publisher along that reverse path.

use crate::identity::PeerId;

/// Entries per set.
pub const WAYS: usize = 4;
/// `from` of a publication this node published.
pub const LOCAL: u16 = u16::MAX;

/// One remembered publication (about 56 bytes). Opaque: the caller provides room.
#[derive(Debug, Clone, Copy)]
pub struct SeenEntry {
    origin: PeerId,
    seq: u64,
    /// Insertion stamp; 0 marks a free entry.
    stamp: u64,
    from: u16,
}

impl SeenEntry {
    /// A free entry, for static arrays: `[SeenEntry::EMPTY; N]`.
    pub const EMPTY: SeenEntry = SeenEntry { origin: PeerId([0; 32]), seq: 0, stamp: 0, from: LOCAL };
}

/// The cache's bookkeeping (the entries are the caller's slice).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    clock: u64,
}

fn set_of(table_len: usize, origin: &PeerId, seq: u64) -> core::ops::Range<usize> {
    let sets = table_len / WAYS;
    if sets == 0 {
        return 0..0;
    }
    let mut o = [0u8; 8];
    o.copy_from_slice(&origin.0[..8]);
    // A PeerId is a hash already; mixing in the sequence spreads one origin's stream.
    let h = (u64::from_le_bytes(o) ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let s = ((h >> 32) as usize) % sets;
    s * WAYS..s * WAYS + WAYS
}

impl Seen {
    /// Remembers (origin, seq) as coming from `from`. Returns `false` when it was known
    /// already (a duplicate: drop it). With a table under [`WAYS`] entries nothing is
    /// remembered and every publication is new.
    pub(crate) fn insert(&mut self, t: &mut [SeenEntry], origin: &PeerId, seq: u64, from: u16) -> bool {
        let r = set_of(t.len(), origin, seq);
        if r.is_empty() {
            return true;
        }
        let set = &mut t[r];
        if set.iter().any(|e| e.stamp != 0 && e.seq == seq && e.origin == *origin) {
            return false;
        }
        self.clock += 1;
        // The free entry, else the oldest: `stamp` 0 is the smallest.
        let victim = set.iter_mut().min_by_key(|e| e.stamp).expect("WAYS > 0");
        *victim = SeenEntry { origin: *origin, seq, stamp: self.clock, from };
        true
    }

    /// The neighbour slot (or [`LOCAL`]) a remembered publication came from.
    pub(crate) fn came_from(&self, t: &[SeenEntry], origin: &PeerId, seq: u64) -> Option<u16> {
        let r = set_of(t.len(), origin, seq);
        t[r].iter().find(|e| e.stamp != 0 && e.seq == seq && e.origin == *origin).map(|e| e.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_and_the_oldest_of_a_set_is_evicted() {
        let mut t = [SeenEntry::EMPTY; 8];
        let mut s = Seen::default();
        let o = PeerId([3; 32]);
        assert!(s.insert(&mut t, &o, 1, 5));
        assert!(!s.insert(&mut t, &o, 1, 6));
        assert_eq!(s.came_from(&t, &o, 1), Some(5));
        // Fill seq 1's set with WAYS newer keys: 1 is evicted, then new again.
        let target = set_of(t.len(), &o, 1);
        let mut added = 0;
        let mut seq = 2;
        while added < WAYS {
            if set_of(t.len(), &o, seq) == target {
                assert!(s.insert(&mut t, &o, seq, 0));
                added += 1;
            }
            seq += 1;
        }
        assert_eq!(s.came_from(&t, &o, 1), None);
        assert!(s.insert(&mut t, &o, 1, 7));
        // Never more than the table: every entry is in use, no panic.
        for q in 0..1000 {
            s.insert(&mut t, &PeerId([q as u8; 32]), q, 0);
        }
        assert!(t.iter().all(|e| e.stamp != 0));
    }

    #[test]
    fn the_last_ways_of_a_set_are_always_remembered() {
        let mut t = [SeenEntry::EMPTY; 64];
        let mut s = Seen::default();
        let o = PeerId([1; 32]);
        for seq in 0..10_000u64 {
            assert!(s.insert(&mut t, &o, seq, 0));
            assert!(!s.insert(&mut t, &o, seq, 0), "just inserted {seq}");
        }
    }

    #[test]
    fn a_table_too_small_for_a_set_remembers_nothing() {
        let mut t = [SeenEntry::EMPTY; WAYS - 1];
        let mut s = Seen::default();
        assert!(s.insert(&mut t, &PeerId([0; 32]), 1, 0));
        assert!(s.insert(&mut t, &PeerId([0; 32]), 1, 0));
    }
}
