//! The service-call table: calls in progress, each with its body (kept for failover),
//! its strategy, the providers it tried, and the request of its current attempt.
//!
//! Indexes, so that no per-packet path scans the table:
//! - **request id → call**: chained buckets keyed by the id's low 16 bits (its pending
//!   slot, distinct among live requests), heads inside the table (`head` of slot `i` is
//!   bucket `i`'s); a reply for a request that is no call's costs one short walk;
//! - **free slots**: a free list; **owed work** (a retry to send, an outcome to report):
//!   a FIFO through the slots, drained by `poll_event`.

use super::strategy::Picker;
use super::{AttemptError, CallId, ServiceStats, MAX_ATTEMPTS, RR_CURSORS};
use crate::buffers::Priority;
use crate::identity::PeerId;
use crate::messaging::request::VERSION_MAX;
use crate::messaging::subject::MAX_SUBJECT_LEN;
use crate::messaging::Store;
use crate::time::Instant;

const NIL: u32 = u32::MAX;

/// What a call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Free,
    /// An attempt is in flight (`req`).
    InFlight,
    /// In the owed FIFO: the next attempt is to be sent.
    Retry,
}

/// One service call (about 700 bytes, body apart). Opaque: the caller provides room.
#[derive(Debug, Clone)]
pub struct CallSlot {
    pub(crate) state: State,
    gen: u16,
    pub(crate) cancelled: bool,
    pub(crate) subject: heapless::String<MAX_SUBJECT_LEN>,
    pub(crate) version: heapless::String<VERSION_MAX>,
    pub(crate) picker: Picker,
    pub(crate) deadline: Instant,
    pub(crate) attempts: u8,
    pub(crate) max_attempts: u8,
    pub(crate) tried: [PeerId; MAX_ATTEMPTS],
    pub(crate) req: u64,
    pub(crate) priority: Priority,
    pub(crate) parent: Option<u64>,
    pub(crate) body_len: u32,
    pub(crate) last: Option<AttemptError>,
    head: u32,
    next_b: u32,
    next: u32,
}

impl CallSlot {
    /// A free slot, for static arrays: `[CallSlot::EMPTY; N]`.
    pub const EMPTY: CallSlot = CallSlot {
        state: State::Free,
        gen: 0,
        cancelled: false,
        subject: heapless::String::new(),
        version: heapless::String::new(),
        picker: Picker::EMPTY,
        deadline: Instant::ZERO,
        attempts: 0,
        max_attempts: 1,
        tried: [PeerId([0; 32]); MAX_ATTEMPTS],
        req: 0,
        priority: Priority::Normal,
        parent: None,
        body_len: 0,
        last: None,
        head: NIL,
        next_b: NIL,
        next: NIL,
    };

    pub(crate) fn was_tried(&self, p: &PeerId) -> bool {
        self.tried[..self.attempts as usize].contains(p)
    }
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    hash: u32,
    age: u32,
    last: Option<PeerId>,
}

/// FNV-1a, for the round-robin cursors.
pub(crate) fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| (h ^ u32::from(x)).wrapping_mul(0x0100_0193))
}

/// The call table and its bookkeeping, inside the messenger.
#[derive(Debug)]
pub(crate) struct Calls<'a> {
    pub(crate) t: Store<'a, CallSlot>,
    bodies: Store<'a, u8>,
    free: u32,
    owed_head: u32,
    owed_tail: u32,
    pub(crate) in_use: usize,
    rr: [Cursor; RR_CURSORS],
    clock: u32,
    pub(crate) stats: ServiceStats,
}

impl<'a> Calls<'a> {
    pub(crate) fn new(mut t: Store<'a, CallSlot>, bodies: Store<'a, u8>) -> Self {
        let n = t.len();
        for (i, s) in t.iter_mut().enumerate() {
            *s = CallSlot::EMPTY;
            s.next = if i + 1 < n { (i + 1) as u32 } else { NIL };
        }
        Calls {
            t,
            bodies,
            free: if n > 0 { 0 } else { NIL },
            owed_head: NIL,
            owed_tail: NIL,
            in_use: 0,
            rr: [Cursor { hash: 0, age: 0, last: None }; RR_CURSORS],
            clock: 0,
            stats: ServiceStats::default(),
        }
    }

    /// The body room of one call: the body table split evenly between the call slots.
    pub(crate) fn body_cap(&self) -> usize {
        if self.t.is_empty() {
            0
        } else {
            self.bodies.len() / self.t.len()
        }
    }

    /// Takes a free slot for a call and copies `body` into its room.
    pub(crate) fn alloc(&mut self, body: &[u8]) -> Option<usize> {
        let s = self.free;
        if s == NIL || body.len() > self.body_cap() {
            return None;
        }
        let i = s as usize;
        self.free = self.t[i].next;
        let cap = self.body_cap();
        self.bodies[i * cap..i * cap + body.len()].copy_from_slice(body);
        let (gen, head) = (self.t[i].gen, self.t[i].head);
        self.t[i] = CallSlot { state: State::InFlight, gen, head, body_len: body.len() as u32, ..CallSlot::EMPTY };
        self.in_use += 1;
        Some(i)
    }

    pub(crate) fn id(&self, i: usize) -> CallId {
        CallId::new(i, self.t[i].gen)
    }

    /// The live call `id` names (a stale id names none).
    pub(crate) fn slot_of(&self, id: CallId) -> Option<usize> {
        let s = self.t.get(id.slot())?;
        (s.state != State::Free && s.gen == id.gen()).then_some(id.slot())
    }

    /// Frees a call (not indexed, not owed); its generation moves on.
    pub(crate) fn free_slot(&mut self, i: usize) {
        let head = self.t[i].head;
        let gen = self.t[i].gen.wrapping_add(1);
        self.t[i] = CallSlot { gen, head, next: self.free, ..CallSlot::EMPTY };
        self.free = i as u32;
        self.in_use -= 1;
    }

    /// Body bytes of call `i` (taken out with the table, see `take_bodies`).
    pub(crate) fn body_range(&self, i: usize) -> core::ops::Range<usize> {
        let cap = self.body_cap();
        i * cap..i * cap + self.t[i].body_len as usize
    }
    pub(crate) fn take_bodies(&mut self) -> Store<'a, u8> {
        core::mem::replace(&mut self.bodies, Store::empty())
    }
    pub(crate) fn put_bodies(&mut self, b: Store<'a, u8>) {
        self.bodies = b;
    }

    fn bucket(&self, req: u64) -> usize {
        (req & 0xffff) as usize % self.t.len()
    }

    /// Records that call `i`'s current attempt is request `req`.
    pub(crate) fn index(&mut self, i: usize, req: u64) {
        let b = self.bucket(req);
        self.t[i].req = req;
        self.t[i].state = State::InFlight;
        self.t[i].next_b = self.t[b].head;
        self.t[b].head = i as u32;
    }

    /// The call whose current attempt is request `req`, taken out of the index.
    pub(crate) fn take_req(&mut self, req: u64) -> Option<usize> {
        if self.t.is_empty() || self.in_use == 0 {
            return None;
        }
        let b = self.bucket(req);
        let (mut prev, mut cur) = (NIL, self.t[b].head);
        while cur != NIL {
            let c = cur as usize;
            let next = self.t[c].next_b;
            if self.t[c].req == req && self.t[c].state == State::InFlight {
                if prev == NIL {
                    self.t[b].head = next;
                } else {
                    self.t[prev as usize].next_b = next;
                }
                self.t[c].next_b = NIL;
                self.t[c].req = 0;
                return Some(c);
            }
            prev = cur;
            cur = next;
        }
        None
    }

    /// Queues call `i` for its next attempt (or its final outcome), drained by poll.
    pub(crate) fn owe(&mut self, i: usize) {
        self.t[i].state = State::Retry;
        self.t[i].next = NIL;
        if self.owed_tail == NIL {
            self.owed_head = i as u32;
        } else {
            self.t[self.owed_tail as usize].next = i as u32;
        }
        self.owed_tail = i as u32;
    }

    pub(crate) fn pop_owed(&mut self) -> Option<usize> {
        let h = self.owed_head;
        if h == NIL {
            return None;
        }
        self.owed_head = self.t[h as usize].next;
        if self.owed_head == NIL {
            self.owed_tail = NIL;
        }
        self.t[h as usize].next = NIL;
        Some(h as usize)
    }

    pub(crate) fn has_owed(&self) -> bool {
        self.owed_head != NIL
    }

    /// The service's round-robin cursor (the provider picked last).
    pub(crate) fn cursor(&self, subject: &str) -> Option<PeerId> {
        let h = fnv(subject.as_bytes());
        self.rr.iter().find(|c| c.hash == h && c.last.is_some()).and_then(|c| c.last)
    }

    /// Moves the service's cursor to `peer` (a new service reuses the oldest cursor).
    pub(crate) fn set_cursor(&mut self, subject: &str, peer: PeerId) {
        let h = fnv(subject.as_bytes());
        self.clock = self.clock.wrapping_add(1);
        let i = self
            .rr
            .iter()
            .position(|c| c.hash == h && c.last.is_some())
            .or_else(|| self.rr.iter().position(|c| c.last.is_none()))
            .unwrap_or_else(|| (0..RR_CURSORS).min_by_key(|&i| self.rr[i].age).unwrap_or(0));
        self.rr[i] = Cursor { hash: h, age: self.clock, last: Some(peer) };
    }
}
