//! Virtual stream connections: a reliable, in-order byte pipe per connection.

use std::collections::VecDeque;

use meshlink_core::{ConnId, Instant};

/// Bytes (or the end-of-stream marker) travelling in one direction.
pub(crate) struct Segment {
    pub at: Instant,
    /// `None` is the FIN: the sending end closed.
    pub data: Option<Vec<u8>>,
}

/// One end of a pipe: a node's connection.
pub(crate) struct End {
    pub node: usize,
    pub conn: ConnId,
    /// The node's session for this connection is alive (the "socket" is open).
    pub open: bool,
    /// Bytes arrived but not yet consumed by `handle_stream`, from `rx_off` on.
    rx: Vec<u8>,
    rx_off: usize,
}

impl End {
    pub fn new(node: usize, conn: ConnId) -> Self {
        End { node, conn, open: true, rx: Vec::new(), rx_off: 0 }
    }
    pub fn pending(&self) -> &[u8] {
        &self.rx[self.rx_off..]
    }
    pub fn push(&mut self, bytes: &[u8]) {
        self.rx.extend_from_slice(bytes);
    }
    pub fn consume(&mut self, n: usize) {
        self.rx_off = (self.rx_off + n).min(self.rx.len());
        // Compact once the dead prefix dominates, so long streams stay O(bytes).
        if self.rx_off == self.rx.len() {
            self.rx.clear();
            self.rx_off = 0;
        } else if self.rx_off > 64 * 1024 && self.rx_off * 2 > self.rx.len() {
            self.rx.drain(..self.rx_off);
            self.rx_off = 0;
        }
    }
    pub fn close(&mut self) {
        self.open = false;
        self.rx = Vec::new();
        self.rx_off = 0;
    }
}

/// A connection between `ends[0]` (the initiator) and `ends[1]` (the acceptor).
/// `dirs[i]` carries bytes from `ends[i]` to `ends[1 - i]`.
pub(crate) struct Pipe {
    pub ends: [End; 2],
    pub dirs: [VecDeque<Segment>; 2],
    /// Arrival time of the last segment queued per direction: later segments never
    /// arrive earlier, so jitter cannot reorder a stream.
    pub last_at: [Instant; 2],
}

impl Pipe {
    pub fn new(a: End, b: End) -> Self {
        Pipe { ends: [a, b], dirs: [VecDeque::new(), VecDeque::new()], last_at: [Instant::ZERO; 2] }
    }
    /// Node index at the sending end of direction `dir`, and at the receiving end.
    pub fn nodes(&self, dir: usize) -> (usize, usize) {
        (self.ends[dir].node, self.ends[1 - dir].node)
    }
    /// Appends a segment arriving no earlier than `at` (nor before the previous one);
    /// returns its arrival time.
    pub fn enqueue(&mut self, dir: usize, at: Instant, data: Option<Vec<u8>>) -> Instant {
        let at = at.max(self.last_at[dir]);
        self.last_at[dir] = at;
        self.dirs[dir].push_back(Segment { at, data });
        at
    }
    /// After a stall: no queued segment arrives before `base`; order is kept.
    /// Returns the new arrival times.
    pub fn retime(&mut self, dir: usize, base: Instant) -> Vec<Instant> {
        let mut t = base;
        let mut out = Vec::new();
        for seg in self.dirs[dir].iter_mut() {
            seg.at = seg.at.max(t);
            t = seg.at;
            out.push(t);
        }
        self.last_at[dir] = self.last_at[dir].max(t);
        out
    }
}
