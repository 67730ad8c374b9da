//! RPC streaming (PROTOCOL.md §15.5.3): a streamed result is a Response `{"$stream": n}`
//! followed by Chunk items the reader grants with Credit (item-counted windows, as
//! HTTP/2 WINDOW_UPDATE and QUIC MAX_STREAM_DATA count bytes), ended early by
//! StreamCancel from either side.
//!
//! Built so far: the wire codec ([`wire`]) and the bounded stream table ([`table`]). The
//! messenger does not yet dispatch kinds `0x20..=0x22` (they are not in
//! `wire::kind::MESSAGING`, so a receiver answers them `UnknownKind`).

// Parts of the table serve the messenger once it dispatches the streaming kinds.
#[allow(dead_code)]
pub mod table;
#[cfg(all(test, feature = "std"))]
mod tests;
pub mod wire;

use core::time::Duration;

pub use table::{StreamId, StreamSlot, StreamStats};
pub use wire::{Reason, Role, StreamPacket, CHUNK_HEAD_MAX, CONTROL_MAX};

/// How a stream ended, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEnd {
    /// Every item arrived (the writer sent `last`).
    Done,
    /// This side cancelled.
    Cancelled,
    /// The peer sent StreamCancel with this reason.
    PeerCancelled(Reason),
    /// This side detected a protocol error (and told the peer with StreamCancel).
    Protocol(Reason),
    /// The session ended.
    Disconnected,
    /// Nothing moved for [`StreamConfig::idle_timeout`].
    Timeout,
}

/// Streaming limits, each named.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamConfig {
    /// Items a reader grants at first and keeps outstanding (its window).
    pub window: u32,
    /// The most credit a writer accepts; more is `CreditOverflow`.
    pub max_window: u32,
    /// A stream where nothing moved this long ends `Timeout`.
    pub idle_timeout: Duration,
}

/// The largest `max_window` (items).
pub const MAX_WINDOW: u32 = 1 << 20;

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig { window: 16, max_window: 1024, idle_timeout: Duration::from_secs(30) }
    }
}

impl StreamConfig {
    /// `Err(field)` names the first field out of range.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_window == 0 || self.max_window > MAX_WINDOW {
            return Err("max_window");
        }
        if self.window == 0 || self.window > self.max_window {
            return Err("window");
        }
        if self.idle_timeout.is_zero() {
            return Err("idle_timeout");
        }
        Ok(())
    }
}
