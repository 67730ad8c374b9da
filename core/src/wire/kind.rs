//! Packet kinds: the one place that says what each kind byte means (PROTOCOL.md §8.2).
//!
//! | Range | Class | A receiver... |
//! |---|---|---|
//! | `0x00` | reserved | answers `Error { UnknownKind }` |
//! | `0x01..=0x0f` | core | handles Ping, Pong, Data, Error, Close, Credit, Blocked (and Batch `0x09` if it advertised batching, PROTOCOL.md §9.2); answers the others `UnknownKind` |
//! | `0x10..=0x3f` | messaging | hands the kinds in [`MESSAGING`] to the messaging handler; answers the others `UnknownKind` |
//! | `0x40..=0x7f` | application (F30) | delivers the message to the application as `Event::Message { kind }` |
//! | `0x80..=0xff` | reserved | answers `Error { UnknownKind }` |
//!
//! Data, the application kinds and the messaging kinds are **message kinds**: their body is
//! a chunk (`msg_id, total, offset, bytes`, §9), so they are queued by priority, chunked and
//! reassembled alike, and only the complete message reaches its handler.
//!
//! # Adding a messaging kind
//! Touch this module and the handler, nothing else:
//! 1. add a `pub const` here in `0x10..=0x3f` and list it in [`MESSAGING`] (the decoder then
//!    reads its body as a chunk, and the sender may queue it);
//! 2. add its arm to `Session::on_messaging` in `session/transport.rs`, which receives each
//!    complete message of a messaging kind.
//!
//! # Allocation of the messaging range (PROTOCOL.md §15)
//! | Kinds | Pattern |
//! |---|---|
//! | `0x10..=0x17` | request/response (`0x10` Request, `0x11` Response, `0x12` Refusal, `0x13` Cancel; `0x14..=0x17` reserved) |
//! | `0x18..=0x1f` | publish/subscribe (`0x18` Publication, `0x19` Interest, `0x1a` InterestAck, `0x1b` SlowConsumer; `0x1c..=0x1f` reserved) |
//! | `0x20..=0x27` | RPC streaming (`0x20` Chunk, `0x21` Credit, `0x22` StreamCancel; `0x23..=0x27` reserved) |
//! | `0x28..=0x3f` | services and later patterns |
//!
//! The messaging kinds are implemented with the `messaging` feature; without it
//! [`MESSAGING`] is empty and every messaging kind is answered `UnknownKind`.

use core::ops::RangeInclusive;

/// Core kinds.
pub const PING: u8 = 0x01;
pub const PONG: u8 = 0x02;
/// An application message without a kind of its own (`Node::send`).
pub const DATA: u8 = 0x03;
pub const ERROR: u8 = 0x04;
pub const CLOSE: u8 = 0x05;
/// Datagram flow control (PROTOCOL.md §8.8): the receiver's cumulative record limit.
pub const CREDIT: u8 = 0x07;
/// Datagram flow control: the sender is stalled at its limit.
pub const BLOCKED: u8 = 0x08;
/// Batching (PROTOCOL.md §9.2): several length-prefixed packets in one record.
pub const BATCH: u8 = 0x09;

/// Kinds of the core protocol.
pub const CORE_RANGE: RangeInclusive<u8> = 0x01..=0x0f;
/// Kinds reserved for the messaging layer (request/response, pub/sub, RPC, broadcast, routing).
pub const MESSAGING_RANGE: RangeInclusive<u8> = 0x10..=0x3f;
/// Application-defined kinds (F30), sent with `Node::send_kind`.
pub const APPLICATION_RANGE: RangeInclusive<u8> = 0x40..=0x7f;

/// Request/response (PROTOCOL.md §15.2): a request.
pub const REQUEST: u8 = 0x10;
/// Request/response: the answer to a request.
pub const RESPONSE: u8 = 0x11;
/// Request/response: a typed refusal or handler error in place of a response.
pub const REFUSAL: u8 = 0x12;
/// Request/response: the requester gave up on a request.
pub const CANCEL: u8 = 0x13;

/// Publish/subscribe (PROTOCOL.md §15.3): a publication, forwarded hop by hop.
pub const PUBLICATION: u8 = 0x18;
/// Publish/subscribe: an origin's whole interest set (versioned), flooded.
pub const INTEREST: u8 = 0x19;
/// Publish/subscribe: a neighbour took an interest set (or refused part of it).
pub const INTEREST_ACK: u8 = 0x1a;
/// Publish/subscribe: a subscriber dropped publications (travels back to the publisher).
pub const SLOW_CONSUMER: u8 = 0x1b;

/// RPC streaming (PROTOCOL.md §15.5.3): one item of a streamed result. The codec and the
/// stream table exist (`messaging::rpc::stream`); these kinds join [`MESSAGING`] when the
/// messenger dispatches them, until then a receiver answers them `UnknownKind`.
pub const CHUNK: u8 = 0x20;
/// RPC streaming: the reader grants the writer more items.
pub const STREAM_CREDIT: u8 = 0x21;
/// RPC streaming: either side ends a stream early.
pub const STREAM_CANCEL: u8 = 0x22;

/// The messaging kinds this build implements (feature `messaging`).
#[cfg(feature = "messaging")]
pub const MESSAGING: &[u8] = &[REQUEST, RESPONSE, REFUSAL, CANCEL, PUBLICATION, INTEREST, INTEREST_ACK, SLOW_CONSUMER];
/// The messaging kinds this build implements (none: feature `messaging` is off).
#[cfg(not(feature = "messaging"))]
pub const MESSAGING: &[u8] = &[];

// Every implemented messaging kind is in the messaging range (checked at build time).
const _: () = {
    let mut i = 0;
    while i < MESSAGING.len() {
        assert!(MESSAGING[i] >= 0x10 && MESSAGING[i] <= 0x3f, "a messaging kind outside 0x10..=0x3f");
        i += 1;
    }
};

/// The class of a kind byte, by range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KindClass {
    Core,
    Messaging,
    Application,
    /// `0x00` and `0x80..=0xff`.
    Reserved,
}

/// Which range `kind` is in.
pub const fn class(kind: u8) -> KindClass {
    match kind {
        0x01..=0x0f => KindClass::Core,
        0x10..=0x3f => KindClass::Messaging,
        0x40..=0x7f => KindClass::Application,
        _ => KindClass::Reserved,
    }
}

/// Whether `kind` is an application kind (`0x40..=0x7f`).
pub const fn is_application(kind: u8) -> bool {
    matches!(class(kind), KindClass::Application)
}

/// Whether this node reads `kind`'s body as a message chunk: Data, every application kind
/// and the implemented messaging kinds.
pub fn is_message(kind: u8) -> bool {
    match class(kind) {
        KindClass::Core => kind == DATA,
        KindClass::Messaging => MESSAGING.contains(&kind),
        KindClass::Application => true,
        KindClass::Reserved => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_partition_the_byte() {
        for k in 0..=255u8 {
            let in_ranges = [CORE_RANGE, MESSAGING_RANGE, APPLICATION_RANGE].iter().filter(|r| r.contains(&k)).count();
            assert_eq!(in_ranges, usize::from(class(k) != KindClass::Reserved), "kind {k:#04x}");
        }
        assert_eq!(class(0x00), KindClass::Reserved);
        assert_eq!(class(0x80), KindClass::Reserved);
    }

    #[test]
    fn message_kinds_are_data_and_the_application_range() {
        let msgs: usize = (0..=255u8).filter(|k| is_message(*k)).count();
        assert_eq!(msgs, 1 + 64 + MESSAGING.len());
        assert!(is_message(DATA) && is_message(0x40) && is_message(0x7f));
        assert!(!is_message(PING) && !is_message(0x06) && !is_message(0x14) && !is_message(0x80));
        assert_eq!(is_message(REQUEST), cfg!(feature = "messaging"));
    }
}
