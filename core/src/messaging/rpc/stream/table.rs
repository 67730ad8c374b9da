//! The bounded stream table: open addressing with linear probing over a caller-sized
//! slice, so a Chunk, a Credit or a StreamCancel finds its stream in O(1) on average
//! (the probe length is bounded by the table's capacity). Entries never move (deletion
//! leaves a tombstone, and a run of tombstones before a free slot is turned free again),
//! so a [`StreamId`] names a slot with a generation, and ended streams queue on an
//! intrusive FIFO until their end is polled.

use super::wire::Role;
use super::StreamEnd;
use crate::buffers::Priority;
use crate::identity::PeerId;
use crate::node::ConnId;
use crate::time::Instant;

const NIL: u16 = u16::MAX;

/// A stream, as the events and commands name it: a table slot and its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

impl StreamId {
    fn new(slot: usize, gen: u16) -> Self {
        StreamId((u32::from(gen) << 16) | slot as u32)
    }
    fn slot(self) -> usize {
        (self.0 & 0xffff) as usize
    }
    fn gen(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Free,
    Tomb,
    /// Reader: the call is out, its Response not yet in.
    Awaiting,
    Open,
    /// Its end is owed to the application (then the slot is freed).
    Ended(StreamEnd),
}

/// One stream (about 100 bytes). Opaque: the caller provides room
/// ([`crate::messaging::MessengerStorage::streams`]).
#[derive(Debug, Clone)]
pub struct StreamSlot {
    pub(crate) state: State,
    pub(crate) gen: u16,
    pub(crate) role: Role,
    /// Reader: the application calls `stream_consumed` (else delivery consumes).
    pub(crate) manual: bool,
    pub(crate) conn: ConnId,
    pub(crate) peer: PeerId,
    pub(crate) call_id: u64,
    /// Writer: the next item's seq; reader: the seq expected next.
    pub(crate) seq: u64,
    pub(crate) count: Option<u64>,
    /// Writer: items it may still send; reader: items granted and not yet received.
    pub(crate) credit: u32,
    /// Reader: items consumed and not yet granted back.
    pub(crate) ungranted: u32,
    /// Reader (manual): items delivered and not yet consumed.
    pub(crate) held: u32,
    pub(crate) window: u32,
    pub(crate) priority: Priority,
    pub(crate) deadline: Instant,
    pub(crate) next_done: u16,
}

impl StreamSlot {
    /// A free slot, for static arrays: `[StreamSlot::EMPTY; N]`.
    pub const EMPTY: StreamSlot = StreamSlot {
        state: State::Free,
        gen: 0,
        role: Role::Reader,
        manual: false,
        conn: ConnId(0),
        peer: PeerId([0; 32]),
        call_id: 0,
        seq: 0,
        count: None,
        credit: 0,
        ungranted: 0,
        held: 0,
        window: 0,
        priority: Priority::Normal,
        deadline: Instant::ZERO,
        next_done: NIL,
    };

    fn live(&self) -> bool {
        !matches!(self.state, State::Free | State::Tomb)
    }
}

/// Counters of the streaming layer; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    pub items_sent: u64,
    pub items_received: u64,
    pub credits_sent: u64,
    /// Streaming packets for no stream of ours (or one already ended): dropped.
    pub unknown: u64,
    /// Streaming packets that did not decode: dropped.
    pub malformed: u64,
    /// Items without credit (the stream is cancelled `Overrun`).
    pub overruns: u64,
    /// Items out of sequence: gaps and duplicates.
    pub seq_errors: u64,
    /// Items that are not one valid value (or larger than the limits).
    pub bad_items: u64,
    /// Credits above the largest window.
    pub credit_overflows: u64,
    /// More items than announced, or an early end.
    pub count_errors: u64,
    pub cancels_sent: u64,
    pub cancels_received: u64,
    pub timeouts: u64,
}

/// The table and its bookkeeping.
#[derive(Debug)]
pub(crate) struct Streams<'a> {
    pub(crate) slots: crate::messaging::Store<'a, StreamSlot>,
    live: usize,
    /// Reader entries waiting for their Response: the Response path looks only then.
    pub(crate) awaiting: usize,
    done_head: u16,
    done_tail: u16,
    /// No open stream's deadline is earlier (a lower bound: refreshed by a scan).
    pub(crate) next_deadline: Option<Instant>,
    pub(crate) stats: StreamStats,
}

fn home(role: Role, conn: ConnId, call_id: u64, cap: usize) -> usize {
    // A reader's call ids are our own request ids, unique across sessions, so its key
    // leaves the session out (an outcome that names only the id finds it).
    let c = match role {
        Role::Reader => 0x5bd1_e995,
        Role::Writer => u64::from(conn.0) << 1,
    };
    let x = (call_id ^ (c << 32) ^ c).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((x >> 32) as usize) % cap
}

impl<'a> Streams<'a> {
    pub(crate) fn new(mut slots: crate::messaging::Store<'a, StreamSlot>) -> Self {
        let n = slots.len().min(usize::from(NIL));
        for s in slots.iter_mut() {
            *s = StreamSlot::EMPTY;
        }
        let _ = n;
        Streams {
            slots,
            live: 0,
            awaiting: 0,
            done_head: NIL,
            done_tail: NIL,
            next_deadline: None,
            stats: StreamStats::default(),
        }
    }

    /// Table capacity (at most 65,535 streams are used).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len().min(usize::from(NIL))
    }
    pub(crate) fn in_use(&self) -> usize {
        self.live
    }
    pub(crate) fn has_room(&self) -> bool {
        self.live < self.capacity()
    }

    /// The slot of `(role, conn, call_id)`; a reader's key ignores `conn` (its caller checks).
    pub(crate) fn find(&self, role: Role, conn: ConnId, call_id: u64) -> Option<usize> {
        let cap = self.capacity();
        if cap == 0 {
            return None;
        }
        let mut i = home(role, conn, call_id, cap);
        for _ in 0..cap {
            let s = &self.slots[i];
            match s.state {
                State::Free => return None,
                State::Tomb => {}
                _ if s.role == role && s.call_id == call_id && (role == Role::Reader || s.conn == conn) => {
                    return Some(i)
                }
                _ => {}
            }
            i = (i + 1) % cap;
        }
        None
    }

    /// The slot a valid handle names, if it is still that stream.
    pub(crate) fn get(&self, id: StreamId) -> Option<usize> {
        let i = id.slot();
        self.slots.get(i).filter(|s| s.live() && s.gen == id.gen() && i < self.capacity()).map(|_| i)
    }

    pub(crate) fn id(&self, i: usize) -> StreamId {
        StreamId::new(i, self.slots[i].gen)
    }

    /// Inserts a new stream (the caller checked `has_room` and that the key is absent).
    pub(crate) fn insert(&mut self, slot: StreamSlot) -> Option<usize> {
        let cap = self.capacity();
        if self.live >= cap {
            return None;
        }
        let mut i = home(slot.role, slot.conn, slot.call_id, cap);
        for _ in 0..cap {
            if !self.slots[i].live() {
                let gen = self.slots[i].gen;
                if slot.state == State::Awaiting {
                    self.awaiting += 1;
                }
                self.slots[i] = StreamSlot { gen, next_done: NIL, ..slot };
                self.live += 1;
                return Some(i);
            }
            i = (i + 1) % cap;
        }
        None
    }

    /// Sets `deadline` on an open stream and keeps `next_deadline` a lower bound.
    pub(crate) fn touch(&mut self, i: usize, deadline: Instant) {
        self.slots[i].deadline = deadline;
        if self.next_deadline.is_none() {
            self.next_deadline = Some(deadline);
        }
    }

    /// Moves stream `i` to its end (once), owed to the application.
    pub(crate) fn end(&mut self, i: usize, end: StreamEnd) {
        let s = &mut self.slots[i];
        match s.state {
            State::Free | State::Tomb | State::Ended(_) => return,
            State::Awaiting => self.awaiting -= 1,
            State::Open => {}
        }
        s.state = State::Ended(end);
        s.next_done = NIL;
        if self.done_tail == NIL {
            self.done_head = i as u16;
        } else {
            self.slots[usize::from(self.done_tail)].next_done = i as u16;
        }
        self.done_tail = i as u16;
    }

    /// Frees a slot that is not on the done list (an Awaiting entry whose call ended).
    pub(crate) fn forget(&mut self, i: usize) {
        if self.slots[i].state == State::Awaiting {
            self.awaiting -= 1;
            self.free(i);
        }
    }

    /// The next owed end: its stream, and the slot (freed) as it was.
    pub(crate) fn pop_done(&mut self) -> Option<(StreamId, StreamSlot)> {
        if self.done_head == NIL {
            return None;
        }
        let i = usize::from(self.done_head);
        self.done_head = self.slots[i].next_done;
        if self.done_head == NIL {
            self.done_tail = NIL;
        }
        let id = self.id(i);
        let was = self.slots[i].clone();
        self.free(i);
        Some((id, was))
    }

    fn free(&mut self, i: usize) {
        let cap = self.capacity();
        let gen = self.slots[i].gen.wrapping_add(1);
        self.slots[i] = StreamSlot { gen, state: State::Tomb, ..StreamSlot::EMPTY };
        self.live -= 1;
        if self.live == 0 {
            // An empty table starts afresh: a table that was full has no free slot to
            // end a tombstone run, and its probes would otherwise stay long.
            for s in self.slots.iter_mut() {
                s.state = State::Free;
            }
            return;
        }
        // A tombstone run that ends at a free slot is no longer on any probe path.
        if self.slots[(i + 1) % cap].state == State::Free {
            let mut j = i;
            for _ in 0..cap {
                if self.slots[j].state != State::Tomb {
                    break;
                }
                self.slots[j].state = State::Free;
                j = (j + cap - 1) % cap;
            }
        }
    }

    /// Every live stream of session `conn` (a disconnect: O(capacity), not per packet).
    pub(crate) fn on_conn(&self, conn: ConnId) -> impl Iterator<Item = usize> + '_ {
        (0..self.capacity()).filter(move |&i| {
            let s = &self.slots[i];
            matches!(s.state, State::Open | State::Awaiting) && s.conn == conn
        })
    }
}
