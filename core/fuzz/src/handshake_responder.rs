//! A fresh responder `Node` fed hostile bytes: as stream data (after `accept`), as
//! datagrams, and as a genuine Init (XX or IK, stream or datagram, possibly mutated)
//! followed by a fuzzed tail. After every input the harness drains all outputs and runs
//! the timers, as an adapter would.
//!
//! Invariants: no panic; the limits hold; the only peer that can ever be reported
//! Connected is the genuine initiator (forging anyone else needs their static key); no
//! message is delivered by a session that was never announced.

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use meshlink_core::{Instant, TransportKind};

use crate::{addr, check_limits, config, drain_events, ms, node, peer_id, FuzzNode, Outcome, TX_BUF};

const RESPONDER: u8 = 2;
const INITIATOR: u8 = 1;

/// Genuine Init records from a deterministic initiator: [stream XX, stream IK, datagram XX,
/// datagram IK]; stream ones include their 2-byte frame prefix.
fn inits() -> &'static [Vec<u8>; 4] {
    static INITS: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    INITS.get_or_init(|| {
        let one = |kind, ik: bool| {
            let mut a = node(INITIATOR, config());
            let expected = ik.then(|| peer_id(RESPONDER));
            a.connect(Instant::ZERO, kind, addr(2), expected).expect("connect");
            let mut buf = vec![0u8; TX_BUF];
            let t = a.poll_transmit(Instant::ZERO, &mut buf).expect("an Init is queued at once");
            buf.truncate(t.len);
            buf
        };
        [
            one(TransportKind::Stream, false),
            one(TransportKind::Stream, true),
            one(TransportKind::Datagram, false),
            one(TransportKind::Datagram, true),
        ]
    })
}

/// A genuine Init, optionally cut short and with a few bytes flipped.
fn init_record(u: &mut Unstructured<'_>, which: usize) -> Result<Vec<u8>> {
    let mut rec = inits()[which].clone();
    if u.ratio(1, 4)? {
        let keep = u.int_in_range(0..=rec.len())?;
        rec.truncate(keep);
    }
    for _ in 0..u.int_in_range(0..=2)? {
        if rec.is_empty() {
            break;
        }
        let i = u.choose_index(rec.len())?;
        rec[i] ^= u.arbitrary::<u8>()?;
    }
    Ok(rec)
}

pub fn run(data: &[u8]) -> Outcome {
    let mut u = Unstructured::new(data);
    let mut r = node(RESPONDER, config());
    let mut h = Harness { now: 0, buf: vec![0u8; TX_BUF], resp_index: None };
    let _ = drive(&mut u, &mut r, &mut h);
    let out = Outcome { handshakes: r.stats().handshakes_completed, messages: r.stats().msgs_in as usize };
    // Whatever happened, timers must wind every session down without a panic.
    for _ in 0..4 {
        h.now += 31_000;
        timeout(&mut r, h.now);
        h.drain(&mut r);
    }
    assert_eq!(r.stats().half_open, 0, "a handshake outlived handshake_timeout");
    out
}

struct Harness {
    now: u64,
    buf: Vec<u8>,
    /// Our session index from the last Resp we sent, so fuzzed datagrams can address it.
    resp_index: Option<[u8; 4]>,
}

impl Harness {
    fn drain(&mut self, r: &mut FuzzNode) {
        while let Some(t) = r.poll_transmit(ms(self.now), &mut self.buf) {
            assert!(t.len <= self.buf.len());
            if t.kind == TransportKind::Datagram && t.len >= 8 && self.buf[0] == 0x02 {
                self.resp_index = Some(self.buf[4..8].try_into().unwrap());
            }
        }
        let ev = drain_events(r);
        for p in &ev.connected {
            assert_eq!(*p, peer_id(INITIATOR), "a forged peer was reported Connected");
        }
        for (p, _) in &ev.messages {
            assert_eq!(*p, peer_id(INITIATOR), "a message from a peer that never authenticated");
        }
        check_limits(r);
    }

    fn tick(&mut self, u: &mut Unstructured<'_>, r: &mut FuzzNode) -> Result<()> {
        if u.ratio(1, 4)? {
            self.now += u64::from(u.int_in_range(0u16..=6000)?);
            timeout(r, self.now);
        }
        self.drain(r);
        Ok(())
    }
}

fn drive(u: &mut Unstructured<'_>, r: &mut FuzzNode, h: &mut Harness) -> Result<()> {
    match u.int_in_range(0..=3)? {
        // Raw stream bytes, in fuzzer-sized reads.
        0 | 1 => {
            let conn = r.accept(ms(h.now), addr(1)).expect("a fresh node accepts");
            if u.ratio(1, 2)? {
                let which = u.int_in_range(0..=1)?;
                let init = init_record(u, which)?;
                feed_stream(r, h, conn, &init);
                h.drain(r);
            }
            while !u.is_empty() {
                let n = u.int_in_range(0..=600)?;
                let chunk = u.bytes(n.min(u.len()))?;
                feed_stream(r, h, conn, chunk);
                h.tick(u, r)?;
            }
        }
        // Datagrams: raw, or a genuine Init first; fuzzed ones may be aimed at our session.
        _ => {
            if u.ratio(1, 2)? {
                let which = 2 + u.int_in_range(0..=1)?;
                let init = init_record(u, which)?;
                let _ = r.handle_datagram(ms(h.now), addr(1), &init);
                h.drain(r);
            }
            while !u.is_empty() {
                let from = addr(1 + u.int_in_range(0..=2)?);
                let n = u.int_in_range(0..=1300)?;
                let mut dg = u.bytes(n.min(u.len()))?.to_vec();
                if let (true, Some(idx)) = (u.ratio(1, 2)?, h.resp_index) {
                    if dg.len() >= 8 {
                        dg[4..8].copy_from_slice(&idx);
                    }
                }
                let _ = r.handle_datagram(ms(h.now), from, &dg);
                h.tick(u, r)?;
            }
        }
    }
    Ok(())
}

/// Runs the timers; afterwards nothing may be due any more, or an adapter that sleeps
/// until `poll_timeout` would spin.
pub(crate) fn timeout(r: &mut FuzzNode, now: u64) {
    r.handle_timeout(ms(now));
    if let Some(t) = r.poll_timeout() {
        assert!(t > ms(now), "poll_timeout {t:?} still due after handle_timeout({now} ms)");
    }
}

/// Feeds stream bytes as an adapter does: when a message waits, drain events and go on.
fn feed_stream(r: &mut FuzzNode, h: &mut Harness, conn: meshlink_core::ConnId, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match r.handle_stream(conn, ms(h.now), bytes) {
            Ok(n) => {
                assert!(n <= bytes.len(), "consumed more than given");
                bytes = &bytes[n..];
                let before = r.stats().msgs_in;
                h.drain(r);
                if n == 0 && r.stats().msgs_in == before {
                    return; // closed or stalled: the adapter drops the rest
                }
            }
            Err(_) => return,
        }
    }
}
