//! Publish/subscribe on the wire (PROTOCOL.md §15.3): four message kinds with postcard
//! bodies. `hops` is the first byte of the packets a node forwards, so a relay bumps it
//! in place (a postcard `u8` is one raw byte).
//!
//! | Kind | Body |
//! |---|---|
//! | `0x18` Publication | `hops u8, origin [u8; 32], seq u64, subject str, body bytes` |
//! | `0x19` Interest | `hops u8, origin [u8; 32], ver u64, entries bytes` |
//! | `0x1a` InterestAck | `origin [u8; 32], ver u64, status u8, accepted u16` |
//! | `0x1b` SlowConsumer | `hops u8, origin [u8; 32], seq u64, subscriber [u8; 32], dropped u32, subject str` |
//!
//! Interest `entries` is the origin's whole interest set: entries separated by one `0x20`
//! byte, each a priority byte (`0` High, `1` Normal, `2` Low) then a pattern (§15.1). A
//! space never occurs in a pattern, so the list splits without lengths or allocation.

use serde::{Deserialize, Serialize};

use crate::buffers::Priority;
use crate::messaging::subject;
use crate::wire::kind;
use crate::wire::WireError;

/// InterestAck status: every entry kept.
pub const ACK_OK: u8 = 0;
/// InterestAck status: the receiver kept only `accepted` entries (its per-origin or table
/// limit); the rest is ignored there.
pub const ACK_LIMIT: u8 = 1;
/// InterestAck status: the receiver's origin table is full; nothing kept.
pub const ACK_NO_ROOM: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicationPacket<'a> {
    pub hops: u8,
    pub origin: [u8; 32],
    pub seq: u64,
    pub subject: &'a str,
    #[serde(borrow)]
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestPacket<'a> {
    pub hops: u8,
    pub origin: [u8; 32],
    /// The origin's interest version: a higher one replaces the whole set.
    pub ver: u64,
    #[serde(borrow)]
    pub entries: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestAckPacket {
    pub origin: [u8; 32],
    pub ver: u64,
    pub status: u8,
    pub accepted: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowConsumerPacket<'a> {
    pub hops: u8,
    /// The publisher, which the notice travels back to.
    pub origin: [u8; 32],
    /// The publication that overflowed the subscriber's queue.
    pub seq: u64,
    pub subscriber: [u8; 32],
    /// Publications dropped for that subscription since its previous notice.
    pub dropped: u32,
    pub subject: &'a str,
}

/// One pub/sub packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PubSubPacket<'a> {
    Publication(PublicationPacket<'a>),
    Interest(InterestPacket<'a>),
    InterestAck(InterestAckPacket),
    SlowConsumer(SlowConsumerPacket<'a>),
}

fn finish<T>(r: postcard::Result<(T, &[u8])>) -> Result<T, WireError> {
    match r {
        Ok((v, [])) => Ok(v),
        _ => Err(WireError::MalformedPacket),
    }
}

/// The priority byte of an interest entry.
pub fn priority_byte(p: Priority) -> u8 {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

fn priority_of(b: u8) -> Option<Priority> {
    match b {
        0 => Some(Priority::High),
        1 => Some(Priority::Normal),
        2 => Some(Priority::Low),
        _ => None,
    }
}

/// The entries of an Interest body, in order: `(priority, pattern)`. Stops (with an
/// error) at the first invalid entry; [`PubSubPacket::decode`] has checked them all.
pub fn entries(b: &[u8]) -> impl Iterator<Item = Result<(Priority, &str), WireError>> {
    b.split(|&x| x == b' ').filter(|_| !b.is_empty()).map(|e| {
        let (&p, pat) = e.split_first().ok_or(WireError::MalformedPacket)?;
        let prio = priority_of(p).ok_or(WireError::MalformedPacket)?;
        let pat = core::str::from_utf8(pat).map_err(|_| WireError::MalformedPacket)?;
        subject::validate_pattern(pat).map_err(|_| WireError::MalformedPacket)?;
        Ok((prio, pat))
    })
}

impl<'a> PubSubPacket<'a> {
    pub fn kind(&self) -> u8 {
        match self {
            PubSubPacket::Publication(_) => kind::PUBLICATION,
            PubSubPacket::Interest(_) => kind::INTEREST,
            PubSubPacket::InterestAck(_) => kind::INTEREST_ACK,
            PubSubPacket::SlowConsumer(_) => kind::SLOW_CONSUMER,
        }
    }

    /// Decodes the message body of `kind`, validating every field (subject grammar,
    /// every interest entry). Trailing bytes are an error. O(length), no recursion.
    pub fn decode(kind: u8, b: &'a [u8]) -> Result<Self, WireError> {
        let p = match kind {
            kind::PUBLICATION => PubSubPacket::Publication(finish(postcard::take_from_bytes(b))?),
            kind::INTEREST => PubSubPacket::Interest(finish(postcard::take_from_bytes(b))?),
            kind::INTEREST_ACK => PubSubPacket::InterestAck(finish(postcard::take_from_bytes(b))?),
            kind::SLOW_CONSUMER => PubSubPacket::SlowConsumer(finish(postcard::take_from_bytes(b))?),
            k => return Err(WireError::UnknownPacketKind(k)),
        };
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), WireError> {
        let subj = |s: &str| subject::validate_subject(s).map_err(|_| WireError::MalformedPacket);
        match self {
            PubSubPacket::Publication(p) => subj(p.subject),
            PubSubPacket::SlowConsumer(p) => subj(p.subject),
            PubSubPacket::Interest(p) => entries(p.entries).try_for_each(|e| e.map(|_| ())),
            PubSubPacket::InterestAck(_) => Ok(()),
        }
    }

    /// Encodes the message body into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        self.validate()?;
        let r = match self {
            PubSubPacket::Publication(p) => postcard::to_slice(p, out).map(|s| s.len()),
            PubSubPacket::Interest(p) => postcard::to_slice(p, out).map(|s| s.len()),
            PubSubPacket::InterestAck(p) => postcard::to_slice(p, out).map(|s| s.len()),
            PubSubPacket::SlowConsumer(p) => postcard::to_slice(p, out).map(|s| s.len()),
        };
        r.map_err(|_| WireError::BufferTooSmall { required: out.len() + 1 })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn every_packet_round_trips_and_rejects_cuts_and_trailing_bytes() {
        let pkts = [
            PubSubPacket::Publication(PublicationPacket {
                hops: 2,
                origin: [7; 32],
                seq: 300,
                subject: "a.b",
                body: b"hi",
            }),
            PubSubPacket::Interest(InterestPacket { hops: 0, origin: [1; 32], ver: 5, entries: b"\x00a.*\x20\x02>" }),
            PubSubPacket::InterestAck(InterestAckPacket { origin: [1; 32], ver: 5, status: ACK_LIMIT, accepted: 1 }),
            PubSubPacket::SlowConsumer(SlowConsumerPacket {
                hops: 1,
                origin: [7; 32],
                seq: 300,
                subscriber: [9; 32],
                dropped: 12,
                subject: "a.b",
            }),
        ];
        for p in pkts {
            let mut buf = [0u8; 128];
            let n = p.encode(&mut buf).unwrap();
            assert_eq!(PubSubPacket::decode(p.kind(), &buf[..n]), Ok(p));
            assert_eq!(PubSubPacket::decode(p.kind(), &buf[..n + 1]), Err(WireError::MalformedPacket));
            for cut in 0..n {
                assert!(PubSubPacket::decode(p.kind(), &buf[..cut]).is_err(), "{p:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn interest_entries_are_checked() {
        let ok: [&[u8]; 2] = [b"", b"\x01a.b"];
        for e in ok {
            let p = PubSubPacket::Interest(InterestPacket { hops: 0, origin: [0; 32], ver: 1, entries: e });
            assert!(p.encode(&mut [0u8; 64]).is_ok(), "{e:?}");
        }
        let bad: [&[u8]; 6] = [b"\x03a", b"\x01", b"\x01a..b", b"\x01a\x20", b"\x20\x01a", b"\x01a.>.b"];
        for e in bad {
            let p = PubSubPacket::Interest(InterestPacket { hops: 0, origin: [0; 32], ver: 1, entries: e });
            assert_eq!(p.encode(&mut [0u8; 64]), Err(WireError::MalformedPacket), "{e:?}");
        }
        let v: Vec<_> = entries(b"\x00a.*\x20\x02>").map(Result::unwrap).collect();
        assert_eq!(v, [(Priority::High, "a.*"), (Priority::Low, ">")]);
    }

    #[test]
    fn a_publication_subject_must_be_literal() {
        let p = PubSubPacket::Publication(PublicationPacket {
            hops: 0,
            origin: [0; 32],
            seq: 1,
            subject: "a.*",
            body: b"",
        });
        assert_eq!(p.encode(&mut [0u8; 64]), Err(WireError::MalformedPacket));
    }
}
