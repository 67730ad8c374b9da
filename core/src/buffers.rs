//! The per-peer byte regions carved out of one caller-provided slot buffer:
//! `[ rx: one frame or datagram | msg: one reassembled message | out: send queue ]`.
//!
//! The caller chooses the storage (`[u8; N]` on firmware, a boxed slice on a host), so the
//! core needs no allocator and a host pays only for the pages it touches.

use core::ops::Range;

use crate::config::Config;

/// Offsets of the three regions for a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub rx: usize,
    pub msg: usize,
    pub out: usize,
}

impl Layout {
    pub fn new(c: &Config) -> Self {
        Layout { rx: c.rx_len(), msg: c.max_message, out: c.send_queue }
    }
    pub fn total(&self) -> usize {
        self.rx + self.msg + self.out
    }
    pub fn rx(&self) -> Range<usize> {
        0..self.rx
    }
    pub fn out(&self) -> Range<usize> {
        self.rx + self.msg..self.total()
    }
}

/// A FIFO of length-prefixed messages in a linear region. Entries never wrap, so a
/// message can be chunked straight out of the buffer; space freed at the front is
/// reclaimed by compacting when the tail runs out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outbox {
    head: usize,
    tail: usize,
    /// Bytes of the head message already sent as chunks.
    pub sent: usize,
    /// Messages queued.
    pub count: usize,
}

/// Bytes of the per-entry length prefix.
pub(crate) const ENTRY_PREFIX: usize = 4;

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Bytes in use, prefixes included.
    pub fn used(&self) -> usize {
        self.tail - self.head
    }
    /// Whether a message of `len` bytes can be queued in a region of `cap` bytes.
    pub fn free(&self, cap: usize) -> usize {
        cap.saturating_sub(self.used())
    }

    /// Appends a message. Fails (changing nothing) if it does not fit.
    pub fn push(&mut self, region: &mut [u8], msg: &[u8]) -> Result<(), usize> {
        let need = ENTRY_PREFIX + msg.len();
        if need > self.free(region.len()) {
            return Err(need);
        }
        if self.tail + need > region.len() {
            region.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        let len = u32::try_from(msg.len()).map_err(|_| need)?;
        region[self.tail..self.tail + ENTRY_PREFIX].copy_from_slice(&len.to_le_bytes());
        region[self.tail + ENTRY_PREFIX..self.tail + need].copy_from_slice(msg);
        self.tail += need;
        self.count += 1;
        Ok(())
    }

    /// The message at the head of the queue.
    pub fn front<'a>(&self, region: &'a [u8]) -> Option<&'a [u8]> {
        if self.count == 0 {
            return None;
        }
        let mut l = [0u8; 4];
        l.copy_from_slice(region.get(self.head..self.head + ENTRY_PREFIX)?);
        let len = u32::from_le_bytes(l) as usize;
        region.get(self.head + ENTRY_PREFIX..self.head + ENTRY_PREFIX + len)
    }

    /// Drops the head message.
    pub fn pop(&mut self, region: &[u8]) {
        if let Some(m) = self.front(region) {
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
