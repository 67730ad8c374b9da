//! The wire format: records (the unit of the protocol), stream framing, and the packets
//! carried encrypted inside transport records. `docs/PROTOCOL.md` is normative; every
//! constant here is named there.
//!
//! As in smoltcp, parsing is split from use: `Header::parse` validates a byte slice once
//! at the boundary and returns a plain value; nothing past this module indexes raw input.

pub mod frame;
pub mod hello;
pub mod kind;
pub mod packet;
pub mod record;

pub use frame::{FrameDecoder, FRAME_PREFIX_LEN, MAX_FRAME_LEN};
pub use hello::{Extensions, Hello, HELLO_MAX_LEN};
pub use packet::{CloseReason, ErrorCode, Packet, PacketKind};
pub use record::{Header, RecordType, RejectCode};

/// The wire version this code implements, and the default of `Config::min_version` and
/// `Config::max_version`. Every Init announces the initiator's range (min, max) and binds
/// it into the Noise prologue; the responder picks the highest version both speak (see
/// PROTOCOL.md §3), so peers with no common version fail cleanly with a typed error.
/// Version 2 added the range itself and the Hello extension tail; version 3 added the
/// `mac1 || mac2` tail of datagram Inits (PROTOCOL.md §5.12).
pub const WIRE_VERSION: u8 = 3;

/// A range of wire versions, both ends included: what a node speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionRange {
    pub min: u8,
    pub max: u8,
}

impl VersionRange {
    /// The range of one version.
    pub const fn only(v: u8) -> Self {
        VersionRange { min: v, max: v }
    }

    /// The highest version in both ranges, if any.
    pub fn highest_common(self, other: VersionRange) -> Option<u8> {
        let v = self.max.min(other.max);
        (v >= self.min.max(other.min)).then_some(v)
    }

    pub fn contains(self, v: u8) -> bool {
        self.min <= v && v <= self.max
    }
}

impl core::fmt::Display for VersionRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..={}", self.min, self.max)
        }
    }
}

/// Errors decoding bytes from the network. Each names the numbers a user needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    Truncated { needed: usize, got: usize },
    /// A record type byte this version does not know.
    UnknownRecordType(u8),
    /// A handshake initiation from a different wire version.
    Version { got: u8, supported: u8 },
    /// A handshake pattern id this node does not know.
    UnknownPattern(u8),
    /// A stream frame with length 0.
    EmptyFrame,
    /// A stream frame longer than this connection accepts.
    FrameTooLarge { len: usize, max: usize },
    /// A packet (inside a transport record) that does not decode.
    MalformedPacket,
    /// A packet kind this version does not know.
    UnknownPacketKind(u8),
    /// A field longer than its limit.
    FieldTooLong { limit: usize },
    /// A Hello announced limits below what the protocol needs (e.g. a `max_frame`
    /// smaller than a handshake record).
    InvalidLimits,
    /// Output buffer too small to encode into.
    BufferTooSmall { required: usize },
    /// A Hello extension type appears twice.
    DuplicateExtension { ty: u8 },
    /// A Hello carries more extensions than the limit.
    TooManyExtensions { limit: usize },
    /// A Hello extension with the reserved type 0 was added locally.
    InvalidExtension,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            WireError::Truncated { needed, got } => write!(f, "truncated: needed {needed} bytes, got {got}"),
            WireError::UnknownRecordType(t) => write!(f, "unknown record type 0x{t:02x}"),
            WireError::Version { got, supported } => {
                write!(f, "wire version {got} not supported (this node speaks {supported})")
            }
            WireError::UnknownPattern(p) => write!(f, "unknown handshake pattern {p}"),
            WireError::EmptyFrame => f.write_str("empty frame"),
            WireError::FrameTooLarge { len, max } => write!(f, "frame of {len} bytes exceeds the limit of {max}"),
            WireError::MalformedPacket => f.write_str("malformed packet"),
            WireError::UnknownPacketKind(k) => write!(f, "unknown packet kind 0x{k:02x}"),
            WireError::FieldTooLong { limit } => write!(f, "field longer than its limit of {limit} bytes"),
            WireError::InvalidLimits => f.write_str("peer announced unusable limits"),
            WireError::BufferTooSmall { required } => write!(f, "buffer too small: {required} bytes required"),
            WireError::DuplicateExtension { ty } => write!(f, "Hello extension 0x{ty:02x} appears twice"),
            WireError::TooManyExtensions { limit } => write!(f, "more than {limit} Hello extensions"),
            WireError::InvalidExtension => f.write_str("Hello extension type 0 is reserved"),
        }
    }
}
