//! Packets: the plaintext inside a transport record. One kind byte, then a postcard body.
//!
//! Kind ranges: `0x01..=0x0f` core (this module), `0x10..=0x3f` reserved for the messaging
//! layer, `0x40..=0x7f` application-defined (F30), `0x80..=0xff` reserved. A receiver
//! that does not know a kind drops the packet and answers `Error { code: UnknownKind }`
//! (never in reply to an `Error`, so two nodes cannot loop).

use serde::{Deserialize, Serialize};

use super::WireError;

/// Packet kind bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketKind {
    Ping = 0x01,
    Pong = 0x02,
    Data = 0x03,
    Error = 0x04,
    Close = 0x05,
}

/// Longest error detail string.
pub const ERROR_DETAIL_MAX: usize = 128;
/// Worst-case bytes a `Data` packet adds around its payload: kind (1) + three u32 varints
/// (3 x 5) + the byte-string length varint (5).
pub const DATA_OVERHEAD: usize = 1 + 15 + 5;

/// Typed error codes carried in `Error` packets (F29).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The receiver does not know this packet kind.
    UnknownKind,
    /// The message is larger than the receiver's `max_message`.
    TooLarge,
    /// A packet failed validation.
    Malformed,
    /// The receiver is out of capacity for this operation.
    Busy,
    /// A code from a newer version.
    Other(u16),
}

impl ErrorCode {
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::UnknownKind => 1,
            ErrorCode::TooLarge => 2,
            ErrorCode::Malformed => 3,
            ErrorCode::Busy => 4,
            ErrorCode::Other(c) => c,
        }
    }
    pub fn from_u16(c: u16) -> Self {
        match c {
            1 => ErrorCode::UnknownKind,
            2 => ErrorCode::TooLarge,
            3 => ErrorCode::Malformed,
            4 => ErrorCode::Busy,
            c => ErrorCode::Other(c),
        }
    }
}

/// Why a session was closed, carried in `Close` and in `Disconnected` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The application asked.
    Normal,
    /// The node is shutting down.
    Shutdown,
    /// Replaced by a newer session with the same peer.
    Duplicate,
    /// The peer's threat score is above the node's threshold (F05).
    Threat,
    /// A protocol violation.
    Protocol,
    /// A code from a newer version.
    Other(u8),
}

impl CloseReason {
    pub fn to_u8(self) -> u8 {
        match self {
            CloseReason::Normal => 0,
            CloseReason::Shutdown => 1,
            CloseReason::Duplicate => 2,
            CloseReason::Threat => 3,
            CloseReason::Protocol => 4,
            CloseReason::Other(c) => c,
        }
    }
    pub fn from_u8(c: u8) -> Self {
        match c {
            0 => CloseReason::Normal,
            1 => CloseReason::Shutdown,
            2 => CloseReason::Duplicate,
            3 => CloseReason::Threat,
            4 => CloseReason::Protocol,
            c => CloseReason::Other(c),
        }
    }
}

/// A decoded packet, borrowing its payload from the decrypted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    Ping {
        seq: u32,
    },
    Pong {
        seq: u32,
    },
    /// One chunk of an application message (F20, F22): `bytes` go at `offset` of a
    /// message of `total` bytes with id `msg_id`.
    Data {
        msg_id: u32,
        total: u32,
        offset: u32,
        bytes: &'a [u8],
    },
    Error {
        code: ErrorCode,
        detail: &'a str,
    },
    Close {
        reason: CloseReason,
    },
    /// A kind from the messaging or application ranges; delivered or answered by the node.
    Unknown {
        kind: u8,
        body: &'a [u8],
    },
}

#[derive(Serialize, Deserialize)]
struct DataBody<'a> {
    msg_id: u32,
    total: u32,
    offset: u32,
    #[serde(borrow)]
    bytes: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct ErrorBody<'a> {
    code: u16,
    #[serde(borrow)]
    detail: &'a str,
}

fn finish<T>(r: postcard::Result<(T, &[u8])>) -> Result<T, WireError> {
    match r {
        Ok((v, [])) => Ok(v),
        _ => Err(WireError::MalformedPacket),
    }
}

impl<'a> Packet<'a> {
    pub fn kind(&self) -> u8 {
        match self {
            Packet::Ping { .. } => PacketKind::Ping as u8,
            Packet::Pong { .. } => PacketKind::Pong as u8,
            Packet::Data { .. } => PacketKind::Data as u8,
            Packet::Error { .. } => PacketKind::Error as u8,
            Packet::Close { .. } => PacketKind::Close as u8,
            Packet::Unknown { kind, .. } => *kind,
        }
    }

    /// Decodes a packet. Unknown kinds decode as [`Packet::Unknown`]; a malformed body of a
    /// known kind is an error. Trailing bytes are an error.
    pub fn decode(b: &'a [u8]) -> Result<Packet<'a>, WireError> {
        let (&kind, body) = b.split_first().ok_or(WireError::Truncated { needed: 1, got: 0 })?;
        Ok(match kind {
            0x01 => Packet::Ping { seq: finish(postcard::take_from_bytes::<u32>(body))? },
            0x02 => Packet::Pong { seq: finish(postcard::take_from_bytes::<u32>(body))? },
            0x03 => {
                let d: DataBody<'a> = finish(postcard::take_from_bytes(body))?;
                let end = u64::from(d.offset) + d.bytes.len() as u64;
                if end > u64::from(d.total) {
                    return Err(WireError::MalformedPacket);
                }
                Packet::Data { msg_id: d.msg_id, total: d.total, offset: d.offset, bytes: d.bytes }
            }
            0x04 => {
                let e: ErrorBody<'a> = finish(postcard::take_from_bytes(body))?;
                if e.detail.len() > ERROR_DETAIL_MAX {
                    return Err(WireError::FieldTooLong { limit: ERROR_DETAIL_MAX });
                }
                Packet::Error { code: ErrorCode::from_u16(e.code), detail: e.detail }
            }
            0x05 => Packet::Close { reason: CloseReason::from_u8(finish(postcard::take_from_bytes::<u8>(body))?) },
            kind => Packet::Unknown { kind, body },
        })
    }

    /// Encodes into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let (first, body) = out.split_first_mut().ok_or(WireError::BufferTooSmall { required: 1 })?;
        *first = self.kind();
        let too_small = |_| WireError::BufferTooSmall { required: 0 };
        let n = match *self {
            Packet::Ping { seq } | Packet::Pong { seq } => postcard::to_slice(&seq, body).map_err(too_small)?.len(),
            Packet::Data { msg_id, total, offset, bytes } => {
                postcard::to_slice(&DataBody { msg_id, total, offset, bytes }, body).map_err(too_small)?.len()
            }
            Packet::Error { code, detail } => {
                if detail.len() > ERROR_DETAIL_MAX {
                    return Err(WireError::FieldTooLong { limit: ERROR_DETAIL_MAX });
                }
                postcard::to_slice(&ErrorBody { code: code.to_u16(), detail }, body).map_err(too_small)?.len()
            }
            Packet::Close { reason } => postcard::to_slice(&reason.to_u8(), body).map_err(too_small)?.len(),
            Packet::Unknown { body: b, .. } => {
                let dst = body.get_mut(..b.len()).ok_or(WireError::BufferTooSmall { required: b.len() + 1 })?;
                dst.copy_from_slice(b);
                b.len()
            }
        };
        Ok(1 + n)
    }
}
