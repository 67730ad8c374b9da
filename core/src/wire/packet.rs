//! Packets: the plaintext inside a transport record. One kind byte, then a postcard body.
//!
//! What each kind byte means, by range, is in [`super::kind`]. Message kinds (Data, the
//! application kinds, the implemented messaging kinds) all decode as [`Packet::Data`], a
//! chunk tagged with its kind. A receiver that does not know a kind drops the packet and
//! answers `Error { code: UnknownKind }` (never in reply to an `Error`, so two nodes
//! cannot loop).

use serde::{Deserialize, Serialize};

use super::kind;
use super::WireError;

/// The core packet kind bytes (see [`super::kind`] for every range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum PacketKind {
    Ping = kind::PING,
    Pong = kind::PONG,
    Data = kind::DATA,
    Error = kind::ERROR,
    Close = kind::CLOSE,
    Credit = kind::CREDIT,
    Blocked = kind::BLOCKED,
}

/// Longest error detail string.
pub const ERROR_DETAIL_MAX: usize = 128;
/// Worst-case bytes a `Data` packet adds around its payload: kind (1) + three u32 varints
/// (3 x 5) + the byte-string length varint (5).
pub const DATA_OVERHEAD: usize = 1 + 15 + 5;

/// Typed error codes carried in `Error` packets (F29).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub enum Packet<'a> {
    Ping {
        seq: u32,
    },
    Pong {
        seq: u32,
    },
    /// One chunk of a message (F20, F22): `bytes` go at `offset` of a message of `total`
    /// bytes with id `msg_id`. `kind` is the message's kind: [`kind::DATA`], an application
    /// kind or an implemented messaging kind ([`kind::is_message`]); every chunk of one
    /// message carries the same kind.
    Data {
        kind: u8,
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
    /// Datagram flow control (§8.8): the sender may seal data records whose counter is
    /// below `limit`. Body: a postcard varint u64.
    Credit {
        limit: u64,
    },
    /// Datagram flow control (§8.8): the sender is stalled at its limit `at`. Body: a
    /// postcard varint u64.
    Blocked {
        at: u64,
    },
    /// A kind this node does not implement (never a message kind); answered `UnknownKind`.
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
            Packet::Data { kind, .. } => *kind,
            Packet::Error { .. } => PacketKind::Error as u8,
            Packet::Close { .. } => PacketKind::Close as u8,
            Packet::Credit { .. } => PacketKind::Credit as u8,
            Packet::Blocked { .. } => PacketKind::Blocked as u8,
            Packet::Unknown { kind, .. } => *kind,
        }
    }

    /// Decodes a packet. Unknown kinds decode as [`Packet::Unknown`]; a malformed body of a
    /// known kind is an error. Trailing bytes are an error.
    pub fn decode(b: &'a [u8]) -> Result<Packet<'a>, WireError> {
        let (&k, body) = b.split_first().ok_or(WireError::Truncated { needed: 1, got: 0 })?;
        Ok(match k {
            kind::PING => Packet::Ping { seq: finish(postcard::take_from_bytes::<u32>(body))? },
            kind::PONG => Packet::Pong { seq: finish(postcard::take_from_bytes::<u32>(body))? },
            k if kind::is_message(k) => {
                let d: DataBody<'a> = finish(postcard::take_from_bytes(body))?;
                let end = u64::from(d.offset) + d.bytes.len() as u64;
                if end > u64::from(d.total) {
                    return Err(WireError::MalformedPacket);
                }
                Packet::Data { kind: k, msg_id: d.msg_id, total: d.total, offset: d.offset, bytes: d.bytes }
            }
            kind::ERROR => {
                let e: ErrorBody<'a> = finish(postcard::take_from_bytes(body))?;
                if e.detail.len() > ERROR_DETAIL_MAX {
                    return Err(WireError::FieldTooLong { limit: ERROR_DETAIL_MAX });
                }
                Packet::Error { code: ErrorCode::from_u16(e.code), detail: e.detail }
            }
            kind::CLOSE => {
                Packet::Close { reason: CloseReason::from_u8(finish(postcard::take_from_bytes::<u8>(body))?) }
            }
            kind::CREDIT => Packet::Credit { limit: finish(postcard::take_from_bytes::<u64>(body))? },
            kind::BLOCKED => Packet::Blocked { at: finish(postcard::take_from_bytes::<u64>(body))? },
            k => Packet::Unknown { kind: k, body },
        })
    }

    /// Encodes into `out`; returns the length. A `Data` of a kind that is not a message
    /// kind, or an `Unknown` of one that is, is refused (`UnknownPacketKind`): the receiver
    /// would read it as another packet.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let misfit = match *self {
            Packet::Data { kind: k, .. } => !kind::is_message(k),
            Packet::Unknown { kind: k, .. } => {
                kind::is_message(k) || matches!(k, kind::PING..=kind::CLOSE | kind::CREDIT | kind::BLOCKED)
            }
            _ => false,
        };
        if misfit {
            return Err(WireError::UnknownPacketKind(self.kind()));
        }
        let (first, body) = out.split_first_mut().ok_or(WireError::BufferTooSmall { required: 1 })?;
        *first = self.kind();
        let too_small = |_| WireError::BufferTooSmall { required: 0 };
        let n = match *self {
            Packet::Ping { seq } | Packet::Pong { seq } => postcard::to_slice(&seq, body).map_err(too_small)?.len(),
            Packet::Data { msg_id, total, offset, bytes, .. } => {
                postcard::to_slice(&DataBody { msg_id, total, offset, bytes }, body).map_err(too_small)?.len()
            }
            Packet::Error { code, detail } => {
                if detail.len() > ERROR_DETAIL_MAX {
                    return Err(WireError::FieldTooLong { limit: ERROR_DETAIL_MAX });
                }
                postcard::to_slice(&ErrorBody { code: code.to_u16(), detail }, body).map_err(too_small)?.len()
            }
            Packet::Close { reason } => postcard::to_slice(&reason.to_u8(), body).map_err(too_small)?.len(),
            Packet::Credit { limit: v } | Packet::Blocked { at: v } => {
                postcard::to_slice(&v, body).map_err(too_small)?.len()
            }
            Packet::Unknown { body: b, .. } => {
                let dst = body.get_mut(..b.len()).ok_or(WireError::BufferTooSmall { required: b.len() + 1 })?;
                dst.copy_from_slice(b);
                b.len()
            }
        };
        Ok(1 + n)
    }
}
