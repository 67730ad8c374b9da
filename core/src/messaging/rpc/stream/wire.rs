//! The three streaming packets on the wire (PROTOCOL.md §15.5.3). Each is a message of its
//! kind whose bytes are postcard fields in order (every integer a varint):
//!
//! | Kind | Packet | Message body |
//! |---|---|---|
//! | `0x20` | Chunk | `call_id u64, seq u64, last bool, item` (the rest: one value, or nothing when `last`) |
//! | `0x21` | Credit | `call_id u64, credits u64` (1 or more) |
//! | `0x22` | StreamCancel | `call_id u64, role u8 (0 writer, 1 reader), reason u8` |

use crate::wire::{kind, WireError};

/// The longest Chunk head: two 10-byte varints and the `last` byte.
pub const CHUNK_HEAD_MAX: usize = 10 + 10 + 1;
/// The longest Credit or StreamCancel message.
pub const CONTROL_MAX: usize = 10 + 10;

/// Which side of a stream sent a StreamCancel (or holds a table entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that answered the call and sends the items.
    Writer,
    /// The side that called and reads the items.
    Reader,
}

/// Why a stream ended early (StreamCancel `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The application cancelled (`0`).
    Cancelled,
    /// An item arrived without credit (`1`).
    Overrun,
    /// An item's `seq` was not the next one: a gap or a duplicate (`2`).
    Sequence,
    /// An item that is not one valid value under the limits (`3`).
    BadItem,
    /// A Credit took the writer's credit above the largest window (`4`).
    CreditOverflow,
    /// Nothing moved for the idle timeout (`5`).
    Timeout,
    /// More items than the stream announced, or an end before its count (`6`).
    Count,
    /// A reason from a newer version.
    Other(u8),
}

impl Reason {
    pub fn to_u8(self) -> u8 {
        match self {
            Reason::Cancelled => 0,
            Reason::Overrun => 1,
            Reason::Sequence => 2,
            Reason::BadItem => 3,
            Reason::CreditOverflow => 4,
            Reason::Timeout => 5,
            Reason::Count => 6,
            Reason::Other(r) => r,
        }
    }
    pub fn from_u8(r: u8) -> Self {
        match r {
            0 => Reason::Cancelled,
            1 => Reason::Overrun,
            2 => Reason::Sequence,
            3 => Reason::BadItem,
            4 => Reason::CreditOverflow,
            5 => Reason::Timeout,
            6 => Reason::Count,
            r => Reason::Other(r),
        }
    }
}

/// A decoded streaming packet, borrowing the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPacket<'a> {
    /// `item` is empty only in an end without an item (`last`).
    Chunk {
        call_id: u64,
        seq: u64,
        last: bool,
        item: &'a [u8],
    },
    Credit {
        call_id: u64,
        credits: u64,
    },
    Cancel {
        call_id: u64,
        role: Role,
        reason: Reason,
    },
}

fn varint(b: &[u8]) -> Result<(u64, &[u8]), WireError> {
    postcard::take_from_bytes::<u64>(b).map_err(|_| WireError::MalformedPacket)
}

fn byte(b: &[u8]) -> Result<(u8, &[u8]), WireError> {
    b.split_first().map(|(x, r)| (*x, r)).ok_or(WireError::MalformedPacket)
}

/// Writes `v` as a varint at `out[at..]`; returns the end.
fn put_varint(out: &mut [u8], at: usize, mut v: u64) -> Result<usize, WireError> {
    let mut i = at;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let slot = out.get_mut(i).ok_or(WireError::BufferTooSmall { required: i + 1 })?;
        *slot = if v == 0 { b } else { b | 0x80 };
        i += 1;
        if v == 0 {
            return Ok(i);
        }
    }
}

impl<'a> StreamPacket<'a> {
    pub fn kind(&self) -> u8 {
        match self {
            StreamPacket::Chunk { .. } => kind::CHUNK,
            StreamPacket::Credit { .. } => kind::STREAM_CREDIT,
            StreamPacket::Cancel { .. } => kind::STREAM_CANCEL,
        }
    }

    pub fn call_id(&self) -> u64 {
        match *self {
            StreamPacket::Chunk { call_id, .. }
            | StreamPacket::Credit { call_id, .. }
            | StreamPacket::Cancel { call_id, .. } => call_id,
        }
    }

    /// Reads a message of kind `k`. Trailing bytes (Credit, StreamCancel), a `last` byte
    /// other than 0/1, a Chunk without an item that is not the last, zero credits, or a
    /// role byte above 1 are malformed. The item is not checked here (the caller does,
    /// against the value limits).
    pub fn decode(k: u8, b: &'a [u8]) -> Result<Self, WireError> {
        let (call_id, rest) = varint(b)?;
        let pkt = match k {
            kind::CHUNK => {
                let (seq, rest) = varint(rest)?;
                let (last, item) = byte(rest)?;
                let last = match last {
                    0 => false,
                    1 => true,
                    _ => return Err(WireError::MalformedPacket),
                };
                if item.is_empty() && !last {
                    return Err(WireError::MalformedPacket);
                }
                return Ok(StreamPacket::Chunk { call_id, seq, last, item });
            }
            kind::STREAM_CREDIT => {
                let (credits, rest) = varint(rest)?;
                if credits == 0 || !rest.is_empty() {
                    return Err(WireError::MalformedPacket);
                }
                StreamPacket::Credit { call_id, credits }
            }
            kind::STREAM_CANCEL => {
                let (role, rest) = byte(rest)?;
                let (reason, rest) = byte(rest)?;
                let role = match role {
                    0 => Role::Writer,
                    1 => Role::Reader,
                    _ => return Err(WireError::MalformedPacket),
                };
                if !rest.is_empty() {
                    return Err(WireError::MalformedPacket);
                }
                StreamPacket::Cancel { call_id, role, reason: Reason::from_u8(reason) }
            }
            _ => return Err(WireError::MalformedPacket),
        };
        Ok(pkt)
    }

    /// Writes the message into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let n = put_varint(out, 0, self.call_id())?;
        match *self {
            StreamPacket::Chunk { seq, last, item, .. } => {
                let n = put_varint(out, n, seq)?;
                let end = n + 1 + item.len();
                if out.len() < end {
                    return Err(WireError::BufferTooSmall { required: end });
                }
                out[n] = u8::from(last);
                out[n + 1..end].copy_from_slice(item);
                Ok(end)
            }
            StreamPacket::Credit { credits, .. } => put_varint(out, n, credits),
            StreamPacket::Cancel { role, reason, .. } => {
                let role: u8 = match role {
                    Role::Writer => 0,
                    Role::Reader => 1,
                };
                // Two raw bytes (postcard `u8`), not varints: a reason above 127 is one byte.
                let b = out.get_mut(n..n + 2).ok_or(WireError::BufferTooSmall { required: n + 2 })?;
                b.copy_from_slice(&[role, reason.to_u8()]);
                Ok(n + 2)
            }
        }
    }
}
