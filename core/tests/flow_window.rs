//! Datagram flow control (PROTOCOL.md §8.8) between two nodes driven by hand: the sender
//! stops at the window, resumes on Credit, recovers a lost Credit through Blocked; window 0
//! and a peer without the extension turn it off; a Credit that goes backwards is ignored;
//! the edges at window 1 and DATAGRAM_WINDOW_MAX.

mod pair;

use meshlink_core::{Config, TransportKind, DATAGRAM_WINDOW_MAX};
use pair::{node, pattern, Ev, Pair};

const DG: TransportKind = TransportKind::Datagram;

fn cfg(window: u32) -> Config {
    // One message per record: these tests count records against the window (batching
    // has its own window test in batching.rs).
    Config::default().with(|c| {
        c.datagram_window = window;
        c.max_batch = 1;
    })
}

fn pair(w0: u32, w1: u32) -> Pair {
    Pair::connect(DG, [node(&cfg(w0), 1, 11), node(&cfg(w1), 2, 22)], meshlink_core::Instant::ZERO, true)
}

/// Every transmit `side` has now, not delivered.
fn hold(p: &mut Pair, side: usize) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; p.buf_len];
    let mut out = vec![];
    while let Some(t) = p.n[side].poll_transmit(p.now, &mut buf) {
        out.push(buf[..t.len].to_vec());
        assert!(out.len() < 100_000, "the sender never stops");
    }
    out
}

fn deliver_all(p: &mut Pair, to: usize, records: &[Vec<u8>]) {
    for r in records {
        p.deliver(to, r);
    }
}

/// `pump`, then the senders' timers (a Blocked after a stall) until both are quiet.
fn pump_timed(p: &mut Pair) {
    for _ in 0..1000 {
        p.pump();
        let t = (0..2).filter_map(|s| p.n[s].poll_timeout()).min().unwrap();
        if t > p.now + std::time::Duration::from_secs(2) {
            return; // only pings and the like are left
        }
        p.now = t;
        for s in 0..2 {
            p.n[s].handle_timeout(p.now);
        }
    }
    panic!("the pair did not go quiet");
}

fn count_messages(p: &Pair, side: usize) -> usize {
    p.events[side].iter().filter(|e| matches!(e, Ev::Message { .. })).count()
}

/// Queues `n` one-record messages from side 0; returns them.
fn queue(p: &mut Pair, n: usize, len: usize) -> Vec<Vec<u8>> {
    let b = p.id(1);
    (0..n)
        .map(|i| {
            let m = pattern(i as u8, len);
            p.n[0].send(p.now, &b, &m).unwrap();
            m
        })
        .collect()
}

#[test]
fn the_sender_stops_at_the_window_and_resumes_on_credit() {
    let mut p = pair(8, 8);
    let b = p.id(1);
    let f = p.n[0].flow(&b).unwrap();
    assert!(f.enabled && f.window == 8, "{f:?}");
    let sent = queue(&mut p, 40, 100);
    let first = hold(&mut p, 0);
    assert!(!first.is_empty() && first.len() <= 8, "{} records past a window of 8", first.len());
    assert!(p.n[0].flow(&b).unwrap().in_flight <= 8);
    // Nothing more goes out until the receiver grants.
    assert!(hold(&mut p, 0).is_empty());
    deliver_all(&mut p, 1, &first);
    let got = count_messages(&p, 1);
    assert!(got > 0 && got <= 8);
    // The receiver consumed: it grants (a Credit), and the sender goes on.
    let credit = hold(&mut p, 1);
    assert!(!credit.is_empty(), "no Credit after the window was consumed");
    deliver_all(&mut p, 0, &credit);
    let more = hold(&mut p, 0);
    assert!(!more.is_empty(), "the sender did not resume on Credit");
    deliver_all(&mut p, 1, &more);
    p.pump();
    assert!(p.messages(1).into_iter().map(|m| m.1).collect::<Vec<_>>() == sent, "not every message arrived in order");
    assert!(p.n[1].flow(&p.id(0)).unwrap().credits_sent > 0);
    p.assert_connected();
}

#[test]
fn credit_follows_consumption_not_receipt() {
    let mut p = pair(4, 4);
    hold(&mut p, 1);
    let before = p.n[1].flow(&p.id(0)).unwrap().credits_sent;
    queue(&mut p, 4, 100);
    let recs = hold(&mut p, 0);
    // Delivered, but the application has not taken the message yet.
    for r in &recs[..2] {
        let _ = p.n[1].handle_datagram(p.now, p.addr[0], r);
    }
    hold(&mut p, 1);
    assert_eq!(p.n[1].flow(&p.id(0)).unwrap().credits_sent, before, "granted before the application consumed");
    p.drain(1);
    for r in &recs[1..] {
        p.deliver(1, r);
    }
    hold(&mut p, 1);
    assert!(p.n[1].flow(&p.id(0)).unwrap().credits_sent > before);
}

#[test]
fn a_lost_credit_is_recovered_through_blocked() {
    let mut p = pair(8, 8);
    let b = p.id(1);
    let sent = queue(&mut p, 30, 100);
    let first = hold(&mut p, 0);
    deliver_all(&mut p, 1, &first);
    // The receiver's Credit is lost.
    assert!(!hold(&mut p, 1).is_empty());
    assert!(hold(&mut p, 0).is_empty(), "stalled");
    // One RTO later the sender says Blocked; the receiver answers with a fresh Credit.
    let t = p.n[0].poll_timeout().unwrap();
    assert!(t < p.now + std::time::Duration::from_secs(2), "no Blocked timer armed");
    p.now = t;
    p.n[0].handle_timeout(p.now);
    let blocked = hold(&mut p, 0);
    assert_eq!(blocked.len(), 1, "one Blocked");
    assert_eq!(p.n[0].flow(&b).unwrap().blocked_sent, 1);
    deliver_all(&mut p, 1, &blocked);
    let credit = hold(&mut p, 1);
    assert!(!credit.is_empty(), "Blocked not answered");
    deliver_all(&mut p, 0, &credit);
    p.pump();
    assert!(p.messages(1).into_iter().map(|m| m.1).collect::<Vec<_>>() == sent, "not every message arrived in order");
}

#[test]
fn lost_data_records_do_not_leak_the_window() {
    let mut p = pair(8, 8);
    let sent = queue(&mut p, 200, 100);
    let mut got = 0;
    for round in 0..200 {
        let recs = hold(&mut p, 0);
        if recs.is_empty() {
            if count_messages(&p, 1) == got && round > 0 {
                // Stalled with the credit of lost records: the Blocked timer recovers it.
                p.now = p.n[0].poll_timeout().unwrap();
                p.n[0].handle_timeout(p.now);
            }
            got = count_messages(&p, 1);
        }
        // Every third record is lost.
        for (i, r) in recs.iter().enumerate() {
            if i % 3 != 1 {
                p.deliver(1, r);
            }
        }
        let back = hold(&mut p, 1);
        deliver_all(&mut p, 0, &back);
    }
    let n = count_messages(&p, 1);
    assert!(n > 120 && n < sent.len(), "{n} of {} arrived", sent.len());
    assert!(p.n[0].flow(&p.id(1)).unwrap().send_limit > 200, "the window stopped moving");
}

#[test]
fn window_zero_is_off_on_either_side() {
    for (w0, w1) in [(0, 64), (64, 0), (0, 0)] {
        let mut p = pair(w0, w1);
        let b = p.id(1);
        assert!(!p.n[0].flow(&b).unwrap().enabled, "{w0}/{w1}");
        assert!(!p.n[1].flow(&p.id(0)).unwrap().enabled, "{w0}/{w1}");
        queue(&mut p, 200, 100);
        assert_eq!(hold(&mut p, 0).len(), 200, "{w0}/{w1}: held back without flow control");
        assert_eq!(p.n[1].flow(&p.id(0)).unwrap().credits_sent, 0);
    }
}

#[test]
fn a_peer_without_the_extension_gets_no_credit_packets() {
    // An older peer's Hello has no extension 0x02: that is what window 0 advertises.
    let mut p = pair(64, 0);
    queue(&mut p, 50, 100);
    p.pump();
    assert_eq!(count_messages(&p, 1), 50);
    for side in 0..2 {
        let f = p.n[side].flow(&p.id(1 - side)).unwrap();
        assert_eq!((f.enabled, f.credits_sent, f.blocked_sent), (false, 0, 0), "side {side}");
    }
    assert!(!p.events[0].iter().any(|e| matches!(e, Ev::RemoteError(_))), "the peer refused a kind");
    let hello = p.n[1].hello(&p.id(0)).unwrap();
    assert_eq!(hello.extensions.get(meshlink_core::session::EXT_DATAGRAM_WINDOW), Some(&[64u8][..]));
    assert_eq!(p.n[0].hello(&p.id(1)).unwrap().extensions.get(0x02), None);
}

#[test]
fn streams_are_not_flow_controlled() {
    let mut p = Pair::new(TransportKind::Stream, cfg(1));
    assert!(!p.n[0].flow(&p.id(1)).unwrap().enabled);
    let b = p.id(1);
    for i in 0..20 {
        p.n[0].send(p.now, &b, &pattern(i, 100)).unwrap();
    }
    p.pump();
    assert_eq!(count_messages(&p, 1), 20);
}

#[test]
fn a_credit_that_goes_backwards_is_ignored() {
    let mut p = pair(4, 4);
    let b = p.id(1);
    queue(&mut p, 40, 100);
    let recs = hold(&mut p, 0);
    deliver_all(&mut p, 1, &recs);
    // The receiver's first Credit is held back; the sender's Blocked earns a second,
    // higher one (the Blocked record itself is free credit).
    let older = hold(&mut p, 1);
    assert!(!older.is_empty());
    p.now = p.n[0].poll_timeout().unwrap();
    p.n[0].handle_timeout(p.now);
    let blocked = hold(&mut p, 0);
    deliver_all(&mut p, 1, &blocked);
    let newer = hold(&mut p, 1);
    assert!(!newer.is_empty());
    deliver_all(&mut p, 0, &newer);
    let f = p.n[0].flow(&b).unwrap();
    // The first one arrives late, reordered: within the replay window, authentic, lower.
    deliver_all(&mut p, 0, &older);
    let g = p.n[0].flow(&b).unwrap();
    assert_eq!(g.send_limit, f.send_limit, "a late, lower Credit moved the limit back");
    assert!(g.credits_stale > f.credits_stale, "{f:?} -> {g:?}");
    pump_timed(&mut p);
    assert_eq!(count_messages(&p, 1), 40);
}

#[test]
fn window_one_moves_one_record_at_a_time() {
    let mut p = pair(1, 1);
    let sent = queue(&mut p, 10, 100);
    let recs = hold(&mut p, 0);
    deliver_all(&mut p, 1, &recs);
    assert!(count_messages(&p, 1) <= 1, "more than one record in a window of 1");
    pump_timed(&mut p);
    assert!(p.messages(1).into_iter().map(|m| m.1).collect::<Vec<_>>() == sent, "not every message arrived in order");
}

#[test]
fn chunked_messages_larger_than_the_window_still_flow() {
    let mut p = pair(4, 4);
    let b = p.id(1);
    let sent: Vec<Vec<u8>> = (0..8).map(|i| pattern(i, 16 * 1024)).collect();
    for m in &sent {
        p.n[0].send(p.now, &b, m).unwrap();
    }
    p.pump();
    assert!(p.messages(1).into_iter().map(|m| m.1).collect::<Vec<_>>() == sent, "not every message arrived in order");
}

#[test]
fn the_largest_window() {
    let mut p = pair(DATAGRAM_WINDOW_MAX, DATAGRAM_WINDOW_MAX);
    assert_eq!(p.n[0].flow(&p.id(1)).unwrap().window, DATAGRAM_WINDOW_MAX);
    queue(&mut p, 500, 100);
    assert_eq!(hold(&mut p, 0).len(), 500, "a 16384-record window held back 500 records");
    let e = cfg(DATAGRAM_WINDOW_MAX + 1).validate().unwrap_err();
    assert_eq!(e.field, "datagram_window");
    assert!(cfg(DATAGRAM_WINDOW_MAX).validate().is_ok() && cfg(0).validate().is_ok());
}
