//! The per-peer byte regions carved out of one caller-provided slot buffer:
//! `[ rx: one frame or datagram | msg: reassembled messages | out: send queue ]`, the send
//! queue itself cut into one region per priority class: `[ high | normal | low ]`.
//!
//! The caller chooses the storage (`[u8; N]` on firmware, a boxed slice on a host), so the
//! core needs no allocator and a host pays only for the pages it touches.

use core::ops::Range;

use crate::config::Config;

/// The priority class of a queued message (PROTOCOL.md §9.1).
///
/// Each peer's send queue holds one FIFO per class, each with its own byte cap (its share
/// of `Config::send_queue`, see [`crate::config::QueueShares`]). Records are scheduled by
/// strict priority: control packets (Ping, Pong, Error) first, then `High`, `Normal`, `Low`;
/// a class is served only while every higher one is empty. Inside a class, messages go in
/// the order they were queued. Messages are chunked (at most `Config::max_chunk` bytes a
/// record), and the scheduler picks again before every record, so a higher class overtakes
/// a long message between two of its chunks.
///
/// ```
/// # use meshlink_core::{Config, Event, HeapNode, Instant, Keypair, Priority, TransportKind};
/// # use rand_core::SeedableRng;
/// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
/// # let cfg = Config::default().with(|c| { c.max_message = 1024; c.send_queue = 8192; c.max_frame = 2048 });
/// # let mut a = HeapNode::with_capacity(cfg.clone(), Keypair::generate(&mut rng), [1; 32], 2).unwrap();
/// # let mut b = HeapNode::with_capacity(cfg, Keypair::generate(&mut rng), [2; 32], 2).unwrap();
/// # let addr = "127.0.0.1:1".parse().unwrap();
/// # let now = Instant::ZERO;
/// # let ca = a.connect(now, TransportKind::Stream, addr, Some(b.peer_id())).unwrap();
/// # let cb = b.accept(now, addr).unwrap();
/// # let mut buf = [0u8; 4096];
/// # for _ in 0..4 {
/// #     while let Some(t) = a.poll_transmit(now, &mut buf) { b.handle_stream(cb, now, &buf[..t.len]).unwrap(); }
/// #     while let Some(t) = b.poll_transmit(now, &mut buf) { a.handle_stream(ca, now, &buf[..t.len]).unwrap(); }
/// # }
/// # while a.poll_event().is_some() {}
/// # while b.poll_event().is_some() {}
/// let peer = b.peer_id();
/// a.send_with(now, &peer, 0x41, Priority::Low, b"bulk").unwrap();
/// a.send_with(now, &peer, 0x40, Priority::High, b"urgent").unwrap();
/// while let Some(t) = a.poll_transmit(now, &mut buf) { b.handle_stream(cb, now, &buf[..t.len]).unwrap(); }
/// // Queued second, delivered first.
/// match b.poll_event() { Some(Event::Message { kind: 0x40, data, .. }) => assert_eq!(data, b"urgent"), e => panic!("{e:?}") }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Priority {
    /// Small urgent messages: requests that must not wait behind a transfer.
    High,
    /// What `Node::send` uses.
    Normal,
    /// Bulk transfers, served when nothing else waits.
    Low,
}

impl Priority {
    /// Every class, highest first: the scheduler's order.
    pub const ALL: [Priority; CLASSES] = [Priority::High, Priority::Normal, Priority::Low];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Message priority classes (control packets have their own queue and go first).
pub(crate) const CLASSES: usize = 3;

/// Offsets of the regions for a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub rx: usize,
    pub msg: usize,
    pub out: usize,
    /// Byte cap of each class's queue, in [`Priority::ALL`] order; they sum to `out`.
    pub class: [usize; CLASSES],
}

impl Layout {
    pub fn new(c: &Config) -> Self {
        Layout { rx: c.rx_len(), msg: c.max_message, out: c.send_queue, class: c.class_caps() }
    }
    pub fn total(&self) -> usize {
        self.rx + self.msg + self.out
    }
    pub fn rx(&self) -> Range<usize> {
        0..self.rx
    }
    /// The queue region of one class.
    pub fn class(&self, p: Priority) -> Range<usize> {
        let start = self.rx + self.msg + self.class[..p.index()].iter().sum::<usize>();
        start..start + self.class[p.index()]
    }
}

/// A FIFO of prefixed messages (`len: u32le, kind: u8, bytes`) in a linear region. Entries
/// never wrap, so a message can be chunked straight out of the buffer; space freed at the
/// front is reclaimed by compacting when the tail runs out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outbox {
    head: usize,
    tail: usize,
    /// Bytes of the head message already sent as chunks (> 0: the message is started).
    pub sent: usize,
    /// The message id of the head message, once started.
    pub id: u32,
    /// Messages queued.
    pub count: usize,
}

/// Bytes of the per-entry prefix: the length (u32) and the kind byte.
pub(crate) const ENTRY_PREFIX: usize = 5;

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Bytes in use, prefixes included.
    pub fn used(&self) -> usize {
        self.tail - self.head
    }
    /// Bytes still free in a region of `cap` bytes.
    pub fn free(&self, cap: usize) -> usize {
        cap.saturating_sub(self.used())
    }

    /// Appends a message of `kind`. Fails (changing nothing) if it does not fit; the error
    /// is the bytes it needed.
    pub fn push(&mut self, region: &mut [u8], kind: u8, msg: &[u8]) -> Result<(), usize> {
        let need = ENTRY_PREFIX + msg.len();
        if need > self.free(region.len()) {
            return Err(need);
        }
        let len = u32::try_from(msg.len()).map_err(|_| need)?;
        if self.tail + need > region.len() {
            region.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        region[self.tail..self.tail + 4].copy_from_slice(&len.to_le_bytes());
        region[self.tail + 4] = kind;
        region[self.tail + ENTRY_PREFIX..self.tail + need].copy_from_slice(msg);
        self.tail += need;
        self.count += 1;
        Ok(())
    }

    /// The kind and bytes of the message at the head of the queue.
    pub fn front<'a>(&self, region: &'a [u8]) -> Option<(u8, &'a [u8])> {
        if self.count == 0 {
            return None;
        }
        let mut l = [0u8; 4];
        l.copy_from_slice(region.get(self.head..self.head + 4)?);
        let len = u32::from_le_bytes(l) as usize;
        let kind = *region.get(self.head + 4)?;
        Some((kind, region.get(self.head + ENTRY_PREFIX..self.head + ENTRY_PREFIX + len)?))
    }

    /// Drops the head message.
    pub fn pop(&mut self, region: &[u8]) {
        if let Some((_, m)) = self.front(region) {
            self.head += ENTRY_PREFIX + m.len();
            self.count -= 1;
            self.sent = 0;
            if self.count == 0 {
                self.head = 0;
                self.tail = 0;
            }
        }
    }
}

/// One [`Outbox`] per priority class.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SendQueues {
    pub class: [Outbox; CLASSES],
}

impl SendQueues {
    pub fn is_empty(&self) -> bool {
        self.class.iter().all(Outbox::is_empty)
    }
    /// Messages queued in every class.
    pub fn count(&self) -> usize {
        self.class.iter().map(|q| q.count).sum()
    }
    pub fn get(&mut self, p: Priority) -> &mut Outbox {
        &mut self.class[p.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_keeps_order_and_kinds_across_compaction() {
        let mut q = Outbox::default();
        let mut region = [0u8; 24];
        q.push(&mut region, 0x40, b"abcdefg").unwrap(); // 12 bytes
        q.push(&mut region, 0x41, b"hij").unwrap(); // 8 bytes
        assert_eq!(q.push(&mut region, 0x42, b"klmnop"), Err(11));
        assert_eq!(q.front(&region), Some((0x40, &b"abcdefg"[..])));
        q.pop(&region);
        // 12 bytes free at the front, 4 at the tail: the push compacts.
        q.push(&mut region, 0x42, b"klmnop").unwrap();
        assert_eq!(q.front(&region), Some((0x41, &b"hij"[..])));
        q.pop(&region);
        assert_eq!(q.front(&region), Some((0x42, &b"klmnop"[..])));
        q.pop(&region);
        assert!(q.is_empty() && q.front(&region).is_none());
    }

    #[test]
    fn class_regions_tile_the_send_queue() {
        let c = Config { send_queue: 1000, ..Config::default() };
        let l = Layout::new(&c);
        let ranges = Priority::ALL.map(|p| l.class(p));
        assert_eq!(ranges[0].start, l.rx + l.msg);
        assert_eq!(ranges[0].end, ranges[1].start);
        assert_eq!(ranges[1].end, ranges[2].start);
        assert_eq!(ranges[2].end, l.total());
    }
}
