//! The streaming codec's byte examples (PROTOCOL.md §15.5.3), its hostile input, and the
//! table's edges.

extern crate std;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::table::{State, Streams};
use super::*;
use crate::messaging::Store;
use crate::node::ConnId;
use crate::time::Instant;
use crate::wire::{kind, WireError};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn enc(p: &StreamPacket<'_>) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let n = p.encode(&mut buf).unwrap();
    let back = StreamPacket::decode(p.kind(), &buf[..n]).unwrap();
    assert_eq!(&back, p, "round trip");
    buf[..n].to_vec()
}

#[test]
fn spec_example_bytes() {
    // item 1 = {"n": 7}: 07 01 016e 020e
    let item = [0x07, 0x01, 0x01, 0x6e, 0x02, 0x0e];
    let c = StreamPacket::Chunk { call_id: 0x1_0003, seq: 0, last: false, item: &item };
    assert_eq!(hex(&enc(&c)), "83800400000701016e020e");
    let c = StreamPacket::Chunk { call_id: 0x1_0003, seq: 300, last: true, item: &[0x00] };
    assert_eq!(hex(&enc(&c)), "838004ac020100");
    let end = StreamPacket::Chunk { call_id: 0x1_0003, seq: 5, last: true, item: &[] };
    assert_eq!(hex(&enc(&end)), "8380040501");
    let cr = StreamPacket::Credit { call_id: 0x1_0003, credits: 16 };
    assert_eq!(hex(&enc(&cr)), "83800410");
    let x = StreamPacket::Cancel { call_id: 0x1_0003, role: Role::Reader, reason: Reason::Overrun };
    assert_eq!(hex(&enc(&x)), "8380040101");
    let x = StreamPacket::Cancel { call_id: 7, role: Role::Writer, reason: Reason::Cancelled };
    assert_eq!(hex(&enc(&x)), "070000");
    let x = StreamPacket::Cancel { call_id: 7, role: Role::Reader, reason: Reason::Other(200) };
    assert_eq!(hex(&enc(&x)), "0701c8", "a reason is one raw byte");
}

#[test]
fn hostile_packets_are_malformed_never_a_panic() {
    let bad: &[(u8, &[u8])] = &[
        (kind::CHUNK, &[]),
        (kind::CHUNK, &[0x01]),
        (kind::CHUNK, &[0x01, 0x00]),
        (kind::CHUNK, &[0x01, 0x00, 0x02, 0x00]),   // last byte 2
        (kind::CHUNK, &[0x01, 0x00, 0x00]),         // no item, not last
        (kind::STREAM_CREDIT, &[0x01, 0x00]),       // zero credits
        (kind::STREAM_CREDIT, &[0x01, 0x01, 0x00]), // trailing
        (kind::STREAM_CREDIT, &[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        (kind::STREAM_CANCEL, &[0x01, 0x02, 0x00]), // role 2
        (kind::STREAM_CANCEL, &[0x01, 0x00]),
        (kind::STREAM_CANCEL, &[0x01, 0x00, 0x00, 0x00]),
        (kind::REQUEST, &[0x01, 0x00, 0x00]),
    ];
    for (k, b) in bad {
        assert_eq!(StreamPacket::decode(*k, b), Err(WireError::MalformedPacket), "{k:#x} {b:02x?}");
    }
    // The largest credit decodes: the receiver's window check refuses it (CreditOverflow).
    let max = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert_eq!(
        StreamPacket::decode(kind::STREAM_CREDIT, &max),
        Ok(StreamPacket::Credit { call_id: 1, credits: u64::MAX })
    );
    // An unknown reason is kept, typed.
    assert_eq!(
        StreamPacket::decode(kind::STREAM_CANCEL, &[0x01, 0x01, 0x63]),
        Ok(StreamPacket::Cancel { call_id: 1, role: Role::Reader, reason: Reason::Other(0x63) })
    );
    // Every prefix of a valid chunk is malformed or a shorter valid chunk; none panics.
    let full = [0x83, 0x80, 0x04, 0xac, 0x02, 0x01, 0x00];
    for n in 0..full.len() {
        let _ = StreamPacket::decode(kind::CHUNK, &full[..n]);
    }
    // A buffer too small is a typed error.
    let mut tiny = [0u8; 3];
    let c = StreamPacket::Chunk { call_id: 0x1_0003, seq: 0, last: true, item: &[0] };
    assert!(matches!(c.encode(&mut tiny), Err(WireError::BufferTooSmall { .. })));
}

#[test]
fn config_limits_at_their_edges() {
    assert_eq!(StreamConfig::default().validate(), Ok(()));
    let c = |window, max_window| StreamConfig { window, max_window, ..StreamConfig::default() };
    assert_eq!(c(MAX_WINDOW, MAX_WINDOW).validate(), Ok(()));
    assert_eq!(c(1, MAX_WINDOW + 1).validate(), Err("max_window"));
    assert_eq!(c(0, 8).validate(), Err("window"));
    assert_eq!(c(9, 8).validate(), Err("window"));
}

fn slot(role: Role, conn: u32, call_id: u64) -> StreamSlot {
    StreamSlot { state: State::Open, role, conn: ConnId(conn), call_id, window: 4, ..StreamSlot::EMPTY }
}

#[test]
fn table_is_bounded_and_frees_every_entry() {
    let mut s = Streams::new(Store::from(vec![StreamSlot::EMPTY; 4]));
    let mut ids = Vec::new();
    for k in 0..4u64 {
        assert!(s.has_room());
        let i = s.insert(slot(Role::Writer, 1, k)).unwrap();
        ids.push(s.id(i));
    }
    assert!(!s.has_room());
    assert_eq!(s.insert(slot(Role::Writer, 1, 9)), None, "the fifth stream is refused");
    for k in 0..4u64 {
        assert!(s.find(Role::Writer, ConnId(1), k).is_some());
        assert!(s.find(Role::Writer, ConnId(2), k).is_none(), "the writer key holds the session");
        assert!(s.find(Role::Reader, ConnId(1), k).is_none(), "roles are apart");
    }
    // End two, pop them in order, and the handles go stale.
    s.end(ids[2].0 as usize & 0xffff, StreamEnd::Done);
    s.end(ids[0].0 as usize & 0xffff, StreamEnd::Cancelled);
    s.end(ids[0].0 as usize & 0xffff, StreamEnd::Timeout); // once only
    let (a, was) = s.pop_done().unwrap();
    assert_eq!((a, was.state), (ids[2], State::Ended(StreamEnd::Done)));
    let (b, was) = s.pop_done().unwrap();
    assert_eq!((b, was.state), (ids[0], State::Ended(StreamEnd::Cancelled)));
    assert!(s.pop_done().is_none());
    assert!(s.get(ids[0]).is_none() && s.get(ids[2]).is_none() && s.get(ids[1]).is_some());
    assert_eq!(s.in_use(), 2);
    // Disconnect ends the rest; then the table is empty again, all slots reusable.
    let on: Vec<usize> = s.on_conn(ConnId(1)).collect();
    for i in on {
        s.end(i, StreamEnd::Disconnected);
    }
    while s.pop_done().is_some() {}
    assert_eq!(s.in_use(), 0);
    assert!(
        s.slots.iter().all(|x| x.state == State::Free),
        "tombstones cleared: {:?}",
        s.slots.iter().map(|x| x.state).collect::<Vec<_>>()
    );
    for k in 10..14u64 {
        s.insert(slot(Role::Reader, 3, k)).unwrap();
    }
    assert!(s.find(Role::Reader, ConnId(7), 12).is_some(), "a reader key is our own id alone");
    let _ = Instant::ZERO;
}

#[test]
fn awaiting_entries_are_counted_and_forgotten() {
    let mut s = Streams::new(Store::from(vec![StreamSlot::EMPTY; 2]));
    let i = s.insert(StreamSlot { state: State::Awaiting, ..slot(Role::Reader, 1, 5) }).unwrap();
    assert_eq!(s.awaiting, 1);
    s.forget(i);
    assert_eq!((s.awaiting, s.in_use()), (0, 0));
    let i = s.insert(StreamSlot { state: State::Awaiting, ..slot(Role::Reader, 1, 6) }).unwrap();
    s.end(i, StreamEnd::Disconnected);
    assert_eq!(s.awaiting, 0);
    assert!(s.pop_done().is_some());
    assert_eq!(s.in_use(), 0);
    // An empty table finds nothing and has no room.
    let e = Streams::new(Store::empty());
    assert!(!e.has_room() && e.find(Role::Writer, ConnId(0), 0).is_none());
}
