//! Request/response on the wire (PROTOCOL.md §15.2): four message kinds with postcard
//! bodies, and the handler table's entries.
//!
//! | Kind | Body |
//! |---|---|
//! | `0x10` Request | `id u64, parent Option<u64>, timeout_ms u32, version str, subject str, body bytes` |
//! | `0x11` Response | `id u64, body bytes` |
//! | `0x12` Refusal | `id u64, code u16, message str` |
//! | `0x13` Cancel | `id u64` |
//!
//! Every integer is a postcard varint, a `str`/`bytes` a varint length and the bytes, an
//! `Option` a `0`/`1` byte then the value. They are message kinds, so they are queued by
//! priority, chunked and reassembled like any message (§9).

use serde::{Deserialize, Serialize};

use super::subject::{self, MAX_SUBJECT_LEN};
use crate::wire::kind;
use crate::wire::WireError;

/// Longest version text (`1.2.3-rc.1` and the like).
pub const VERSION_MAX: usize = 32;
/// Longest refusal or handler-error message.
pub const MESSAGE_MAX: usize = 128;
/// Refusal codes below this are the messaging layer's ([`RefuseCode`]); from it on they
/// are handler errors chosen by the application.
pub const APP_CODE_MIN: u16 = 0x100;
/// Worst-case bytes a Request packet adds around its body: kind, id and parent (11 each
/// with the option tag), timeout (5), the version, the subject, and four length varints.
pub const REQUEST_OVERHEAD_MAX: usize = 1 + 10 + 11 + 5 + (2 + VERSION_MAX) + (2 + MAX_SUBJECT_LEN) + 5;
/// Worst-case bytes a Response adds around its body.
pub const RESPONSE_OVERHEAD_MAX: usize = 1 + 10 + 5;

/// Why a responder refused a request (Refusal codes `1..=0xff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefuseCode {
    /// No handler for the subject (NATS's 503 "no responders").
    NoResponders,
    /// The handler's major version differs from the request's.
    VersionMismatch,
    /// The responder is out of capacity.
    Busy,
    /// The request's timeout had passed when it arrived.
    Expired,
    /// The request did not decode or validate.
    Malformed,
    /// A layer code from a newer version.
    Other(u16),
}

impl RefuseCode {
    pub fn to_u16(self) -> u16 {
        match self {
            RefuseCode::NoResponders => 1,
            RefuseCode::VersionMismatch => 2,
            RefuseCode::Busy => 3,
            RefuseCode::Expired => 4,
            RefuseCode::Malformed => 5,
            RefuseCode::Other(c) => c,
        }
    }
    pub fn from_u16(c: u16) -> Self {
        match c {
            1 => RefuseCode::NoResponders,
            2 => RefuseCode::VersionMismatch,
            3 => RefuseCode::Busy,
            4 => RefuseCode::Expired,
            5 => RefuseCode::Malformed,
            c => RefuseCode::Other(c),
        }
    }
}

/// A decoded request/response packet body, borrowing from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPacket<'a> {
    pub id: u64,
    pub parent: Option<u64>,
    /// Relative: the responder drops the work this long after arrival.
    pub timeout_ms: u32,
    pub version: &'a str,
    pub subject: &'a str,
    #[serde(borrow)]
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePacket<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalPacket<'a> {
    pub id: u64,
    pub code: u16,
    pub message: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelPacket {
    pub id: u64,
}

/// One request/response packet, as a message of its kind carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Packet<'a> {
    Request(RequestPacket<'a>),
    Response(ResponsePacket<'a>),
    Refusal(RefusalPacket<'a>),
    Cancel(CancelPacket),
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
            Packet::Request(_) => kind::REQUEST,
            Packet::Response(_) => kind::RESPONSE,
            Packet::Refusal(_) => kind::REFUSAL,
            Packet::Cancel(_) => kind::CANCEL,
        }
    }

    /// The request id it carries.
    pub fn id(&self) -> u64 {
        match self {
            Packet::Request(p) => p.id,
            Packet::Response(p) => p.id,
            Packet::Refusal(p) => p.id,
            Packet::Cancel(p) => p.id,
        }
    }

    /// Decodes the message body of `kind`, validating every field (subject grammar,
    /// version, lengths). Trailing bytes are an error.
    pub fn decode(kind: u8, b: &'a [u8]) -> Result<Self, WireError> {
        let p = match kind {
            kind::REQUEST => Packet::Request(finish(postcard::take_from_bytes(b))?),
            kind::RESPONSE => Packet::Response(finish(postcard::take_from_bytes(b))?),
            kind::REFUSAL => Packet::Refusal(finish(postcard::take_from_bytes(b))?),
            kind::CANCEL => Packet::Cancel(finish(postcard::take_from_bytes(b))?),
            k => return Err(WireError::UnknownPacketKind(k)),
        };
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), WireError> {
        match self {
            Packet::Request(r) => {
                if r.version.len() > VERSION_MAX {
                    return Err(WireError::FieldTooLong { limit: VERSION_MAX });
                }
                parse_version(r.version).map_err(|_| WireError::MalformedPacket)?;
                subject::validate_subject(r.subject).map_err(|_| WireError::MalformedPacket)
            }
            Packet::Refusal(r) if r.message.len() > MESSAGE_MAX => Err(WireError::FieldTooLong { limit: MESSAGE_MAX }),
            _ => Ok(()),
        }
    }

    /// Encodes the message body (without the kind, which travels in the chunk) into
    /// `out`; returns its length. Fields are validated as on decode.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        self.validate()?;
        let r = match self {
            Packet::Request(p) => postcard::to_slice(p, out).map(|s| s.len()),
            Packet::Response(p) => postcard::to_slice(p, out).map(|s| s.len()),
            Packet::Refusal(p) => postcard::to_slice(p, out).map(|s| s.len()),
            Packet::Cancel(p) => postcard::to_slice(p, out).map(|s| s.len()),
        };
        r.map_err(|_| WireError::BufferTooSmall { required: out.len() + 1 })
    }
}

/// A version: empty (no version: compatible with any), or semver-like text
/// `major[.minor[.patch]]` with an optional `-pre`/`+build` tail, at most [`VERSION_MAX`]
/// bytes. Returns the major number, which decides compatibility: a request and a handler
/// are compatible when either has no version or their majors are equal.
pub fn parse_version(v: &str) -> Result<Option<u32>, super::MessagingError> {
    let bad = super::MessagingError::InvalidVersion;
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > VERSION_MAX {
        return Err(bad);
    }
    let core = v.split(['-', '+']).next().unwrap_or("");
    let tail = &v[core.len()..];
    if !tail.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(bad);
    }
    let mut major = None;
    for (i, part) in core.split('.').enumerate() {
        if i >= 3 || part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        if i == 0 {
            major = part.parse::<u32>().ok();
        }
    }
    major.map(Some).ok_or(bad)
}

/// One registered request handler (about 300 bytes). Opaque: the caller provides room.
#[derive(Debug, Clone)]
pub struct HandlerSlot {
    pub(crate) used: bool,
    pub(crate) wild: bool,
    pub(crate) major: Option<u32>,
    pub(crate) pattern: heapless::String<MAX_SUBJECT_LEN>,
}

impl HandlerSlot {
    /// A free slot, for static arrays: `[HandlerSlot::EMPTY; N]`.
    pub const EMPTY: HandlerSlot =
        HandlerSlot { used: false, wild: false, major: None, pattern: heapless::String::new() };

    pub(crate) fn matches(&self, subject: &str) -> bool {
        self.used && if self.wild { subject::matches(&self.pattern, subject) } else { self.pattern == subject }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_round_trips_and_rejects_trailing_bytes() {
        let pkts = [
            Packet::Request(RequestPacket {
                id: 1 << 20,
                parent: Some(7),
                timeout_ms: 10_000,
                version: "1.2",
                subject: "svc.echo",
                body: b"hi",
            }),
            Packet::Response(ResponsePacket { id: 3, body: b"ok" }),
            Packet::Refusal(RefusalPacket { id: 3, code: 1, message: "" }),
            Packet::Cancel(CancelPacket { id: u64::MAX }),
        ];
        for p in pkts {
            let mut buf = [0u8; 64];
            let n = p.encode(&mut buf).unwrap();
            assert_eq!(Packet::decode(p.kind(), &buf[..n]), Ok(p));
            assert_eq!(Packet::decode(p.kind(), &buf[..n + 1]), Err(WireError::MalformedPacket));
            for cut in 0..n {
                assert!(Packet::decode(p.kind(), &buf[..cut]).is_err(), "{p:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn invalid_fields_are_refused_both_ways() {
        let mut buf = [0u8; 512];
        let wild = Packet::Request(RequestPacket {
            id: 1,
            parent: None,
            timeout_ms: 1,
            version: "",
            subject: "a.*",
            body: b"",
        });
        assert_eq!(wild.encode(&mut buf), Err(WireError::MalformedPacket));
        let long = "x".repeat(MESSAGE_MAX + 1);
        let refusal = Packet::Refusal(RefusalPacket { id: 1, code: 300, message: &long });
        assert_eq!(refusal.encode(&mut buf), Err(WireError::FieldTooLong { limit: MESSAGE_MAX }));
        // Hand-encoded: the same refusal must not decode either.
        let n = postcard::to_slice(&RefusalPacket { id: 1, code: 300, message: &long }, &mut buf).unwrap().len();
        assert_eq!(Packet::decode(kind::REFUSAL, &buf[..n]), Err(WireError::FieldTooLong { limit: MESSAGE_MAX }));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version(""), Ok(None));
        assert_eq!(parse_version("1"), Ok(Some(1)));
        assert_eq!(parse_version("2.10"), Ok(Some(2)));
        assert_eq!(parse_version("3.0.1-rc.1+b5"), Ok(Some(3)));
        for bad in ["v1", "1..2", "1.2.3.4", ".1", "1.x", "1 ", "1-\u{e9}", "1234567890"] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
        assert!(parse_version(&"1".repeat(VERSION_MAX + 1)).is_err());
    }
}
