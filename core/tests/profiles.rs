//! Implementation profiles (PROTOCOL.md §3.1): what a node built without a feature
//! refuses, and how a peer sees it.
//!
//! CI runs this file twice: with the default features (`full`), and as a minimal node
//! (`cargo test -p meshlink-core --no-default-features --features std,psk --test profiles`:
//! no `ik`, no `datagram`). Each test names the build it is about with `cfg`.
//! - without `ik`, an IK Init (pattern id 2) is answered `Reject(Auth)`, as by an IK
//!   responder that cannot decrypt message 1, and the stream stays open for the
//!   initiator's XX fallback Init, which connects; without `psk` an XXpsk3 Init (id 1) is answered
//!   `Reject(Pattern)` and fails with `PatternMismatch`; an unknown id (3) stays
//!   `UnknownPattern`, unanswered;
//! - without `datagram`, `connect(TransportKind::Datagram, ..)` is `Error::Unsupported`
//!   and takes no slot;
//! - with `ik`, an IK initiator that gets that `Reject(Auth)` falls back to XX once and
//!   connects.

use std::net::SocketAddr;

use meshlink_core::wire::{Header, RejectCode, WireError, FRAME_PREFIX_LEN};
use meshlink_core::{Config, ConnId, Error, HeapNode, Instant, Keypair, TransportKind};

const NOW: Instant = Instant::from_millis(1_000);

fn addr(port: u16) -> SocketAddr {
    ([10, 0, 0, 1], port).into()
}

fn node(secret: u8, capacity: usize) -> HeapNode {
    HeapNode::with_capacity(Config::default(), Keypair::from_secret([secret; 32]), [secret + 1; 32], capacity).unwrap()
}

/// The node's next transmit, as bytes.
fn next(n: &mut HeapNode) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let t = n.poll_transmit(NOW, &mut buf)?;
    buf.truncate(t.len);
    Some(buf)
}

/// The record header of a one-frame stream transmit.
fn header(frame: &[u8]) -> Header {
    let len = u16::from_be_bytes([frame[0], frame[1]]) as usize;
    assert_eq!(frame.len(), FRAME_PREFIX_LEN + len, "one frame");
    Header::parse(&frame[FRAME_PREFIX_LEN..]).unwrap()
}

/// An initiator and its genuine XX stream Init, plus the same frame with its pattern
/// byte (record byte 2, read before any cryptography) set to `id`, and its index.
fn init_frame(id: u8) -> (HeapNode, ConnId, Vec<u8>, Vec<u8>, u32) {
    let mut a = node(1, 2);
    let ca = a.connect(NOW, TransportKind::Stream, addr(1), None).unwrap();
    let f = next(&mut a).expect("an Init");
    let Header::Init { pattern: 0, sender, .. } = header(&f) else { panic!("an XX Init") };
    let mut g = f.clone();
    g[FRAME_PREFIX_LEN + 2] = id;
    (a, ca, f, g, sender)
}

/// What a fresh responder of this build does with an Init of pattern `id`: the call's
/// result, and its answer if any.
fn respond(id: u8) -> (Result<usize, Error>, Option<Header>, u32) {
    let (_, _, _, frame, sender) = init_frame(id);
    let mut b = node(2, 2);
    let conn = b.accept(NOW, addr(2)).unwrap();
    let r = b.handle_stream(conn, NOW, &frame);
    let reply = next(&mut b).map(|f| header(&f));
    (r, reply, sender)
}

#[cfg(not(all(feature = "ik", feature = "psk")))]
fn assert_reject(reply: Option<Header>, code: RejectCode, sender: u32) {
    match reply {
        Some(Header::Reject { code: c, receiver, .. }) if c == code => assert_eq!(receiver, sender),
        other => panic!("expected Reject({code:?}), got {other:?}"),
    }
}

/// Pumps both ways until both nodes have drained; returns whether `a` and `b` know each other.
fn pump(a: &mut HeapNode, ca: ConnId, b: &mut HeapNode, cb: ConnId) -> bool {
    for _ in 0..8 {
        while let Some(f) = next(b) {
            a.handle_stream(ca, NOW, &f).unwrap();
        }
        while let Some(f) = next(a) {
            b.handle_stream(cb, NOW, &f).unwrap();
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
    }
    a.quality(&b.peer_id()).is_some() && b.quality(&a.peer_id()).is_some()
}

/// The IK Init is refused with Reject(Auth), the stream stays open, and the XX Init that
/// a full initiator falls back to (same index, same stream) connects.
#[cfg(not(feature = "ik"))]
#[test]
fn without_ik_an_ik_init_gets_reject_auth_and_the_xx_fallback_connects() {
    let (mut a, ca, xx, ik, sender) = init_frame(2);
    let mut b = node(2, 2);
    let cb = b.accept(NOW, addr(2)).unwrap();
    assert!(b.handle_stream(cb, NOW, &ik).is_ok(), "the stream stays open");
    assert_reject(next(&mut b).map(|f| header(&f)), RejectCode::Auth, sender);
    assert!(next(&mut b).is_none());
    b.handle_stream(cb, NOW, &xx).unwrap();
    assert!(pump(&mut a, ca, &mut b, cb), "connected over the same stream");
}

#[cfg(not(feature = "psk"))]
#[test]
fn without_psk_an_xxpsk3_init_gets_reject_pattern() {
    let (r, reply, sender) = respond(1);
    assert_eq!(r, Err(Error::PatternMismatch));
    assert_reject(reply, RejectCode::Pattern, sender);
}

/// In every build: an id the specification does not define is a wire error, unanswered.
#[test]
fn an_unknown_pattern_id_gets_no_reject() {
    let (r, reply, _) = respond(3);
    assert_eq!(r, Err(Error::Wire(WireError::UnknownPattern(3))));
    assert_eq!(reply, None);
}

/// In every build: XX is always there.
#[test]
fn an_xx_init_is_answered_with_a_resp() {
    let (r, reply, sender) = respond(0);
    assert!(r.is_ok(), "{r:?}");
    match reply {
        Some(Header::Resp { receiver, .. }) => assert_eq!(receiver, sender),
        other => panic!("expected a Resp, got {other:?}"),
    }
}

#[cfg(not(feature = "datagram"))]
#[test]
fn without_datagram_a_datagram_connect_is_unsupported_and_takes_no_slot() {
    let mut a = node(1, 1);
    let b = node(2, 1).peer_id();
    for expected in [None, Some(b)] {
        assert_eq!(
            a.connect(NOW, TransportKind::Datagram, addr(1), expected),
            Err(Error::Unsupported { feature: "datagram" })
        );
    }
    assert!(next(&mut a).is_none(), "nothing queued");
    // The only slot is still free: a stream connect takes it.
    a.connect(NOW, TransportKind::Stream, addr(1), Some(b)).unwrap();
    assert!(matches!(header(&next(&mut a).unwrap()), Header::Init { .. }));
}

/// A full initiator that meets a minimal responder: its IK Init is refused with
/// Reject(Auth), so it restarts once with XX (same index) and the handshake completes.
#[cfg(feature = "ik")]
#[test]
fn an_ik_initiator_falls_back_to_xx_when_the_responder_has_no_ik() {
    let mut a = node(1, 2);
    let mut b = node(2, 2);
    let b_id = b.peer_id();
    let ca = a.connect(NOW, TransportKind::Stream, addr(2), Some(b_id)).unwrap();
    let ik = next(&mut a).unwrap();
    let Header::Init { pattern: 2, sender, .. } = header(&ik) else { panic!("an IK Init") };
    // What a responder without `ik` answers (PROTOCOL.md §3.1).
    let mut reject = vec![0u8; FRAME_PREFIX_LEN + 8];
    let ours = Config::default().versions();
    let rec = Header::Reject { code: RejectCode::Auth, version: ours.max, min_version: ours.min, receiver: sender };
    let n = rec.encode(&mut reject[FRAME_PREFIX_LEN..]).unwrap();
    reject[..FRAME_PREFIX_LEN].copy_from_slice(&(n as u16).to_be_bytes());
    a.handle_stream(ca, NOW, &reject).unwrap();
    let xx = next(&mut a).expect("a second Init");
    assert!(matches!(header(&xx), Header::Init { pattern: 0, sender: s, .. } if s == sender), "XX, same index");
    // That XX Init completes against a responder.
    let cb = b.accept(NOW, addr(1)).unwrap();
    b.handle_stream(cb, NOW, &xx).unwrap();
    assert!(pump(&mut a, ca, &mut b, cb), "connected both ways");
}
