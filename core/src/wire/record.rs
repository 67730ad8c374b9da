//! Record headers. A record is what travels in one UDP datagram, or in one stream frame.
//!
//! ```text
//! Init      | 0x01 | max_version | pattern | min_version | sender u32le | network_tag u32le | noise msg 1
//! Resp      | 0x02 | 0 0 0 | sender u32le | receiver u32le | noise msg 2
//! Final     | 0x03 | 0 0 0 | receiver u32le | noise msg 3
//! Transport | 0x04 (key phase 0) or 0x05 (phase 1) | 0 0 0 | receiver u32le | counter u64le | AEAD(packet)
//! Reject    | 0x06 | code | max_version | min_version | receiver u32le
//! Cookie    | 0x07 | 0 0 0 | receiver u32le | nonce (24) | encrypted cookie (16) | tag (16)
//! ```
//! A datagram Init also ends with `mac1 || mac2` (32 bytes, [`crate::cookie`]), which the
//! header does not describe: the node strips them before the Noise message is read.
//! The transport header (16 bytes) is the AEAD associated data. Reserved bytes are sent
//! as zero and ignored on receipt. A `min_version` byte of 0 (a version-1 sender, where
//! the byte was reserved) means "the same as the max": the range of one version.

use super::WireError;

/// Record type bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum RecordType {
    Init = 0x01,
    Resp = 0x02,
    Final = 0x03,
    Transport0 = 0x04,
    Transport1 = 0x05,
    Reject = 0x06,
    /// A stateless cookie reply to a datagram Init (PROTOCOL.md §5.12).
    Cookie = 0x07,
}

pub const INIT_HEADER_LEN: usize = 12;
pub const RESP_HEADER_LEN: usize = 12;
pub const FINAL_HEADER_LEN: usize = 8;
pub const TRANSPORT_HEADER_LEN: usize = 16;
pub const REJECT_LEN: usize = 8;
/// A Cookie record is always this long (bytes after it are ignored).
pub const COOKIE_LEN: usize = crate::cookie::COOKIE_REPLY_LEN;

/// Why a responder refused an initiation (sent in clear, so only a hint to the initiator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum RejectCode {
    /// The initiator's wire version is not supported.
    Version = 1,
    /// The initiator belongs to another network (network tag mismatch).
    Network = 2,
    /// The responder is at its peer or half-open limit.
    Busy = 3,
    /// The pattern is not accepted (for example XX without the network key).
    Pattern = 4,
    /// The handshake failed authentication (with a network key: the keys differ).
    Auth = 5,
    /// Anything else.
    Other = 255,
}

impl RejectCode {
    pub fn from_u8(b: u8) -> RejectCode {
        match b {
            1 => RejectCode::Version,
            2 => RejectCode::Network,
            3 => RejectCode::Busy,
            4 => RejectCode::Pattern,
            5 => RejectCode::Auth,
            _ => RejectCode::Other,
        }
    }
}

/// A parsed record header; the body follows at `Header::len()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Header {
    /// `version` is the initiator's highest version (byte 1, where every version keeps it),
    /// `min_version` its lowest.
    Init {
        version: u8,
        min_version: u8,
        pattern: u8,
        sender: u32,
        network_tag: u32,
    },
    Resp {
        sender: u32,
        receiver: u32,
    },
    Final {
        receiver: u32,
    },
    Transport {
        phase: u8,
        receiver: u32,
        counter: u64,
    },
    /// `min_version..=version` is the sender's range, so a refused initiator learns what
    /// the responder speaks.
    Reject {
        code: RejectCode,
        version: u8,
        min_version: u8,
        receiver: u32,
    },
    /// A cookie reply (datagrams only): `receiver` is the Init's `sender`; `nonce` and
    /// `sealed` (the encrypted cookie and its tag) are read by [`crate::cookie::open_reply`].
    Cookie {
        receiver: u32,
        nonce: [u8; crate::cookie::NONCE_LEN],
        sealed: [u8; 32],
    },
}

/// Byte 3 of Init and Reject: 0 (reserved in version 1) means the range of one version.
fn min_or(byte3: u8, max: u8) -> u8 {
    if byte3 == 0 {
        max
    } else {
        byte3
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

impl Header {
    /// Parses the header at the start of `b`. Lengths are checked before any field is read.
    pub fn parse(b: &[u8]) -> Result<Header, WireError> {
        let ty = *b.first().ok_or(WireError::Truncated { needed: 1, got: 0 })?;
        let need = match ty {
            0x01 => INIT_HEADER_LEN,
            0x02 => RESP_HEADER_LEN,
            0x03 => FINAL_HEADER_LEN,
            0x04 | 0x05 => TRANSPORT_HEADER_LEN,
            0x06 => REJECT_LEN,
            0x07 => COOKIE_LEN,
            t => return Err(WireError::UnknownRecordType(t)),
        };
        if b.len() < need {
            return Err(WireError::Truncated { needed: need, got: b.len() });
        }
        Ok(match ty {
            0x01 => Header::Init {
                version: b[1],
                min_version: min_or(b[3], b[1]),
                pattern: b[2],
                sender: u32_at(b, 4),
                network_tag: u32_at(b, 8),
            },
            0x02 => Header::Resp { sender: u32_at(b, 4), receiver: u32_at(b, 8) },
            0x03 => Header::Final { receiver: u32_at(b, 4) },
            0x06 => Header::Reject {
                code: RejectCode::from_u8(b[1]),
                version: b[2],
                min_version: min_or(b[3], b[2]),
                receiver: u32_at(b, 4),
            },
            0x07 => {
                let mut nonce = [0u8; crate::cookie::NONCE_LEN];
                nonce.copy_from_slice(&b[8..32]);
                let mut sealed = [0u8; 32];
                sealed.copy_from_slice(&b[32..64]);
                Header::Cookie { receiver: u32_at(b, 4), nonce, sealed }
            }
            _ => {
                let mut c = [0u8; 8];
                c.copy_from_slice(&b[8..16]);
                Header::Transport { phase: ty - 0x04, receiver: u32_at(b, 4), counter: u64::from_le_bytes(c) }
            }
        })
    }

    /// Encoded length of this header.
    pub fn len(&self) -> usize {
        match self {
            Header::Init { .. } => INIT_HEADER_LEN,
            Header::Resp { .. } => RESP_HEADER_LEN,
            Header::Final { .. } => FINAL_HEADER_LEN,
            Header::Transport { .. } => TRANSPORT_HEADER_LEN,
            Header::Reject { .. } => REJECT_LEN,
            Header::Cookie { .. } => COOKIE_LEN,
        }
    }

    /// Always false: every header has a type byte. (Pairs with `len` for clippy.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header to the start of `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let n = self.len();
        let out = out.get_mut(..n).ok_or(WireError::BufferTooSmall { required: n })?;
        out.fill(0);
        match *self {
            Header::Init { version, min_version, pattern, sender, network_tag } => {
                out[0] = RecordType::Init as u8;
                out[1] = version;
                out[2] = pattern;
                out[3] = min_version;
                out[4..8].copy_from_slice(&sender.to_le_bytes());
                out[8..12].copy_from_slice(&network_tag.to_le_bytes());
            }
            Header::Resp { sender, receiver } => {
                out[0] = RecordType::Resp as u8;
                out[4..8].copy_from_slice(&sender.to_le_bytes());
                out[8..12].copy_from_slice(&receiver.to_le_bytes());
            }
            Header::Final { receiver } => {
                out[0] = RecordType::Final as u8;
                out[4..8].copy_from_slice(&receiver.to_le_bytes());
            }
            Header::Transport { phase, receiver, counter } => {
                out[0] = RecordType::Transport0 as u8 + (phase & 1);
                out[4..8].copy_from_slice(&receiver.to_le_bytes());
                out[8..16].copy_from_slice(&counter.to_le_bytes());
            }
            Header::Reject { code, version, min_version, receiver } => {
                out[0] = RecordType::Reject as u8;
                out[1] = code as u8;
                out[2] = version;
                out[3] = min_version;
                out[4..8].copy_from_slice(&receiver.to_le_bytes());
            }
            Header::Cookie { receiver, nonce, sealed } => {
                out[0] = RecordType::Cookie as u8;
                out[4..8].copy_from_slice(&receiver.to_le_bytes());
                out[8..32].copy_from_slice(&nonce);
                out[32..64].copy_from_slice(&sealed);
            }
        }
        Ok(n)
    }
}
