//! Reassembly of messages larger than one record (the base of F22).
//!
//! Up to [`REASSEMBLY_SLOTS`] messages are assembled side by side, each placed in a gap of
//! the caller's region (first fit; the live messages are compacted to the front when no
//! gap fits). Streams interleave chunks of messages of different priority classes but keep
//! each message's chunks in order, so every chunk must continue its message, and a stream
//! message that finds no room is the sender's fault (it may only start a message when the
//! totals in progress fit our `max_message`). Datagrams may also reorder and lose chunks:
//! when no room is left, the oldest incomplete message is given up, unless the newcomer is
//! older than all of them, so a late chunk never evicts a newer message. All bounds come
//! from the local configuration, never from the peer.

use core::ops::Range;

/// Messages assembled at once on a session. At least one per priority class, so a stream
/// sender that has started a message in every class is never refused.
pub const REASSEMBLY_SLOTS: usize = 4;
const _: () = assert!(REASSEMBLY_SLOTS >= crate::buffers::CLASSES);

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    id: u32,
    kind: u8,
    start: usize,
    total: usize,
    got: usize,
    live: bool,
}

/// What a chunk did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Stored; the message is not complete yet.
    Stored,
    /// The message is complete at this range of the region.
    Complete(Range<usize>),
    /// Dropped: a chunk of a message older than every one in progress, with no room.
    Dropped,
    /// Breaks the rules: a chunk whose kind or total differs from its message's; on an
    /// ordered (stream) session also a chunk out of order, or a new message with no room.
    OutOfOrder,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Reassembly {
    entries: [Entry; REASSEMBLY_SLOTS],
    /// Incomplete messages given up to make room (counted for stats).
    pub evicted: u64,
}

fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Reassembly {
    /// Takes one chunk of a message of `kind`. `region` is where messages are assembled.
    #[allow(clippy::too_many_arguments)]
    pub fn on_chunk(
        &mut self,
        region: &mut [u8],
        kind: u8,
        id: u32,
        total: usize,
        offset: usize,
        bytes: &[u8],
        ordered: bool,
    ) -> Chunk {
        if total > region.len() || offset.saturating_add(bytes.len()) > total {
            return Chunk::Dropped;
        }
        let idx = match self.entries.iter().position(|e| e.live && e.id == id) {
            Some(i) if ordered && (self.entries[i].got != offset || self.entries[i].total != total) => {
                return Chunk::OutOfOrder;
            }
            Some(i) if self.entries[i].total != total || self.entries[i].kind != kind => return Chunk::OutOfOrder,
            Some(i) => i,
            None => {
                if ordered && offset != 0 {
                    return Chunk::OutOfOrder;
                }
                match self.place(region, kind, id, total, ordered) {
                    Some(i) => {
                        // Cleared first: chunks that overlap (a misbehaving peer) can then
                        // only leave zeros, never bytes of an earlier message or session.
                        let e = self.entries[i];
                        region[e.start..e.start + e.total].fill(0);
                        i
                    }
                    None if ordered => return Chunk::OutOfOrder,
                    None => return Chunk::Dropped,
                }
            }
        };
        let e = &mut self.entries[idx];
        let dst = e.start + offset;
        region[dst..dst + bytes.len()].copy_from_slice(bytes);
        e.got = e.got.saturating_add(bytes.len());
        if e.got >= e.total {
            // The bytes stay where they are until the next input: the node hands out the
            // range before it accepts more, so the entry can be freed now.
            e.live = false;
            return Chunk::Complete(e.start..e.start + e.total);
        }
        Chunk::Stored
    }

    /// Finds room for a new message: a gap, else a gap after compacting, else (unordered
    /// sessions only) by evicting the oldest incomplete messages.
    fn place(&mut self, region: &mut [u8], kind: u8, id: u32, total: usize, ordered: bool) -> Option<usize> {
        let cap = region.len();
        loop {
            if let Some(i) = self.entries.iter().position(|e| !e.live) {
                let start = match self.gap(cap, total) {
                    Some(s) => Some(s),
                    None => {
                        self.compact(region);
                        self.gap(cap, total)
                    }
                };
                if let Some(start) = start {
                    self.entries[i] = Entry { id, kind, start, total, got: 0, live: true };
                    return Some(i);
                }
            }
            if ordered {
                return None;
            }
            // No gap or no free entry: give up the oldest message, if ours is newer.
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.live)
                .min_by(
                    |(_, a), (_, b)| {
                        if newer(a.id, b.id) {
                            core::cmp::Ordering::Greater
                        } else {
                            core::cmp::Ordering::Less
                        }
                    },
                )
                .map(|(i, e)| (i, e.id))?;
            if !newer(id, oldest.1) {
                return None;
            }
            self.entries[oldest.0].live = false;
            self.evicted += 1;
        }
    }

    /// Moves the live messages to the front of the region, in place order, so that all
    /// free space is one gap at the end.
    fn compact(&mut self, region: &mut [u8]) {
        let mut at = 0;
        loop {
            // The live entry placed lowest at or after `at` (at most REASSEMBLY_SLOTS rounds).
            let next = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.live && e.start >= at)
                .min_by_key(|(_, e)| e.start)
                .map(|(i, _)| i);
            let Some(i) = next else { return };
            let e = &mut self.entries[i];
            if e.start > at {
                region.copy_within(e.start..e.start + e.total, at);
                e.start = at;
            }
            at += e.total.max(1);
        }
    }

    /// First gap of at least `len` bytes between live entries.
    fn gap(&self, cap: usize, len: usize) -> Option<usize> {
        let mut at = 0;
        loop {
            // The live entry that overlaps [at, at + len), if any: skip past it.
            let blocking =
                self.entries.iter().filter(|e| e.live && e.start < at + len && at < e.start + e.total.max(1));
            match blocking.map(|e| e.start + e.total.max(1)).max() {
                None if at + len <= cap => return Some(at),
                None => return None,
                Some(end) => at = end,
            }
            if at + len > cap {
                return None;
            }
        }
    }

    /// Whether any message is being assembled (its bytes live in the slot buffer, which
    /// an idle session may otherwise give back).
    pub fn busy(&self) -> bool {
        self.entries.iter().any(|e| e.live)
    }

    /// Whether message `id` is being assembled.
    pub fn assembling(&self, id: u32) -> bool {
        self.entries.iter().any(|e| e.live && e.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_datagram_messages_both_complete() {
        let mut r = Reassembly::default();
        let mut region = [0u8; 64];
        assert_eq!(r.on_chunk(&mut region, 3, 0, 10, 0, &[1; 5], false), Chunk::Stored);
        assert_eq!(r.on_chunk(&mut region, 3, 1, 10, 0, &[2; 5], false), Chunk::Stored);
        let Chunk::Complete(m0) = r.on_chunk(&mut region, 3, 0, 10, 5, &[1; 5], false) else { panic!() };
        assert_eq!(&region[m0], &[1; 10]);
        let Chunk::Complete(m1) = r.on_chunk(&mut region, 3, 1, 10, 5, &[2; 5], false) else { panic!() };
        assert_eq!(&region[m1], &[2; 10]);
    }

    #[test]
    fn out_of_room_evicts_the_oldest_but_never_for_an_older_newcomer() {
        let mut r = Reassembly::default();
        let mut region = [0u8; 20];
        assert_eq!(r.on_chunk(&mut region, 3, 5, 10, 0, &[5; 4], false), Chunk::Stored);
        assert_eq!(r.on_chunk(&mut region, 3, 6, 10, 0, &[6; 4], false), Chunk::Stored);
        // No room for a third: an older id is dropped, a newer one evicts id 5.
        assert_eq!(r.on_chunk(&mut region, 3, 4, 10, 0, &[4; 4], false), Chunk::Dropped);
        assert_eq!(r.on_chunk(&mut region, 3, 7, 10, 0, &[7; 4], false), Chunk::Stored);
        assert_eq!(r.evicted, 1);
        let Chunk::Complete(m6) = r.on_chunk(&mut region, 3, 6, 10, 4, &[6; 6], false) else { panic!() };
        assert_eq!(&region[m6], &[6; 10]);
    }

    #[test]
    fn at_most_slots_messages_in_flight() {
        let mut r = Reassembly::default();
        let mut region = [0u8; 1000];
        for id in 0..REASSEMBLY_SLOTS as u32 + 3 {
            assert_eq!(r.on_chunk(&mut region, 3, id, 10, 0, &[0; 1], false), Chunk::Stored);
        }
        assert_eq!(r.entries.iter().filter(|e| e.live).count(), REASSEMBLY_SLOTS);
        assert_eq!(r.evicted, 3);
    }

    #[test]
    fn ordered_sessions_keep_each_message_in_order_side_by_side() {
        let mut r = Reassembly::default();
        let mut region = [0u8; 32];
        assert_eq!(r.on_chunk(&mut region, 3, 1, 8, 0, &[1; 4], true), Chunk::Stored);
        assert_eq!(r.on_chunk(&mut region, 3, 1, 8, 2, &[1; 4], true), Chunk::OutOfOrder);
        // A message of a higher class overtakes between two chunks of the first.
        assert_eq!(r.on_chunk(&mut region, 0x40, 2, 8, 0, &[2; 4], true), Chunk::Stored);
        assert_eq!(r.on_chunk(&mut region, 3, 3, 8, 4, &[3; 4], true), Chunk::OutOfOrder, "must start at 0");
        assert_eq!(r.on_chunk(&mut region, 3, 2, 8, 4, &[2; 4], true), Chunk::OutOfOrder, "kind changed");
        let Chunk::Complete(m2) = r.on_chunk(&mut region, 0x40, 2, 8, 4, &[2; 4], true) else { panic!() };
        assert_eq!(&region[m2], &[2; 8]);
        let Chunk::Complete(m1) = r.on_chunk(&mut region, 3, 1, 8, 4, &[1; 4], true) else { panic!() };
        assert_eq!(&region[m1], &[1; 8]);
    }

    #[test]
    fn a_stream_message_without_room_is_the_senders_fault() {
        let mut r = Reassembly::default();
        let mut region = [0u8; 16];
        assert_eq!(r.on_chunk(&mut region, 3, 1, 10, 0, &[1; 2], true), Chunk::Stored);
        assert_eq!(r.on_chunk(&mut region, 3, 2, 7, 0, &[2; 2], true), Chunk::OutOfOrder);
        assert_eq!(r.evicted, 0, "a stream never gives up a message");
    }

    #[test]
    fn a_stream_message_beyond_the_slots_is_refused() {
        let mut r = Reassembly::default();
        let mut region = [0u8; 1000];
        for id in 0..REASSEMBLY_SLOTS as u32 {
            assert_eq!(r.on_chunk(&mut region, 3, id, 10, 0, &[0; 1], true), Chunk::Stored);
        }
        assert_eq!(r.on_chunk(&mut region, 3, 99, 10, 0, &[0; 1], true), Chunk::OutOfOrder);
        assert_eq!(r.evicted, 0);
    }

    #[test]
    fn freed_space_is_compacted_for_a_larger_message() {
        let mut r = Reassembly::default();
        let mut region = [0u8; 20];
        assert_eq!(r.on_chunk(&mut region, 3, 1, 8, 0, &[1; 4], true), Chunk::Stored); // 0..8
        assert_eq!(r.on_chunk(&mut region, 3, 2, 8, 0, &[2; 4], true), Chunk::Stored); // 8..16
        assert_eq!(r.on_chunk(&mut region, 3, 1, 8, 4, &[1; 4], true), Chunk::Complete(0..8));
        // 12 bytes free, but in two gaps of 8 and 4: message 2 moves to the front.
        assert_eq!(r.on_chunk(&mut region, 3, 3, 12, 0, &[3; 6], true), Chunk::Stored);
        let Chunk::Complete(m2) = r.on_chunk(&mut region, 3, 2, 8, 4, &[2; 4], true) else { panic!() };
        assert_eq!((m2.clone(), &region[m2]), (0..8, &[2u8; 8][..]));
        let Chunk::Complete(m3) = r.on_chunk(&mut region, 3, 3, 12, 6, &[3; 6], true) else { panic!() };
        assert_eq!(&region[m3], &[3; 12]);
    }

    #[test]
    fn overlapping_chunks_never_expose_earlier_bytes() {
        let mut r = Reassembly::default();
        let mut region = [0xeeu8; 32]; // what an earlier message or session left behind
        assert_eq!(r.on_chunk(&mut region, 3, 1, 8, 0, &[1; 4], false), Chunk::Stored);
        // A misbehaving peer covers bytes 0..4 twice and never sends 4..8.
        let Chunk::Complete(m) = r.on_chunk(&mut region, 3, 1, 8, 0, &[2; 4], false) else { panic!() };
        assert_eq!(&region[m], &[2, 2, 2, 2, 0, 0, 0, 0]);
    }

    #[test]
    fn hostile_bounds_are_dropped_not_panicking() {
        let mut r = Reassembly::default();
        let mut region = [0u8; 16];
        assert_eq!(r.on_chunk(&mut region, 3, 1, 17, 0, &[0; 1], false), Chunk::Dropped);
        assert_eq!(r.on_chunk(&mut region, 3, 1, 8, 7, &[0; 2], false), Chunk::Dropped);
        assert_eq!(r.on_chunk(&mut region, 3, 1, 8, usize::MAX, &[0; 2], false), Chunk::Dropped);
        assert_eq!(r.on_chunk(&mut region, 3, 2, 0, 0, &[], false), Chunk::Complete(0..0));
    }
}
