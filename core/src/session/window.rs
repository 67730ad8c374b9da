//! Credit-based flow control for datagram sessions (PROTOCOL.md §8.8).
//!
//! The scheme is QUIC's connection flow control (RFC 9000 §4.1), counted in records
//! instead of bytes: the receiver announces a cumulative limit (`Credit { limit }`), the
//! sender seals a data record only while its record counter is below that limit, and a
//! sender stuck at its limit says so (`Blocked { at }`, QUIC's DATA_BLOCKED).
//!
//! Where meshlink departs from QUIC, and why:
//! - **Records, numbered by the transport counter.** Datagram data is never retransmitted
//!   (§9), so a byte or chunk offset would leak window for every lost record. The AEAD
//!   counter numbers every record the sender seals; the receiver, seeing counter `c`,
//!   knows that every record below `c` was either received or lost, so a loss frees its
//!   credit as soon as any later record (data, Ping, Blocked...) arrives.
//! - **Control records are never held back** (Ping, Pong, Error, Close, Credit, Blocked),
//!   but they use counter numbers, so they count against the window like data. They are
//!   few, and arriving they free their credit like any record.
//! - **Credit follows the application, not the socket.** The receiver re-grants when a
//!   record's content has been handed on (a message taken by `poll_event`, or a chunk
//!   stored for reassembly), so an application that does not drain stalls its sender
//!   instead of losing datagrams in a socket buffer.
//! - **Blocked is repeated** at most once per RTO while stalled (QUIC sends it once): it is
//!   the recovery for a lost Credit, since datagram Credits are not retransmitted.

use core::time::Duration;

use crate::time::Instant;

/// Largest datagram window, in records, a node may configure or is credited beyond its
/// counter: bounds what a hostile `Credit` can open.
pub const DATAGRAM_WINDOW_MAX: u32 = 16_384;

/// The Hello extension type carrying the receiver's initial window (§8.6).
pub const EXT_DATAGRAM_WINDOW: u8 = 0x02;

/// Bounds of the Blocked repeat interval (the session's RTO, clamped).
pub const BLOCKED_INTERVAL_MIN: Duration = Duration::from_millis(5);
pub const BLOCKED_INTERVAL_MAX: Duration = Duration::from_secs(1);
/// The Blocked interval before any RTT sample.
pub const BLOCKED_INTERVAL_INITIAL: Duration = Duration::from_millis(100);

/// Encodes the Hello extension value: the window as a postcard varint (1 to 3 bytes).
pub fn encode_ext(window: u32, out: &mut [u8; 5]) -> usize {
    postcard::to_slice(&window, out).map(|s| s.len()).unwrap_or(0)
}

/// Reads a peer's window extension: `None` (flow control off) when absent, malformed or
/// 0; a window above [`DATAGRAM_WINDOW_MAX`] is clamped to it.
pub fn decode_ext(value: Option<&[u8]>) -> Option<u32> {
    let v = value?;
    match postcard::take_from_bytes::<u32>(v) {
        Ok((w, [])) if w > 0 => Some(w.min(DATAGRAM_WINDOW_MAX)),
        _ => None,
    }
}

/// A snapshot of one session's datagram flow control ([`crate::Node::flow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FlowInfo {
    /// Flow control is on (both sides advertised a window, datagram session).
    pub enabled: bool,
    /// Our receive window, in records.
    pub window: u32,
    /// The peer's current limit on our records (we may seal data below it).
    pub send_limit: u64,
    /// Records sealed and not yet covered by a fresh grant: `send_counter - (limit - peer window)`,
    /// at most the peer's window.
    pub in_flight: u64,
    /// Times this sender sent `Blocked`.
    pub blocked_sent: u64,
    /// Credits ignored because they went backwards (or repeated a limit).
    pub credits_stale: u64,
    /// Credits clamped because they opened more than was ever sendable.
    pub credits_clamped: u64,
    /// Credits this receiver sent.
    pub credits_sent: u64,
}

/// One datagram session's flow-control state, both directions.
#[derive(Debug, Clone)]
pub struct FlowWindow {
    on: bool,
    // ---- sender (our records, the peer's grants)
    peer_window: u32,
    limit: u64,
    /// The counter reached the limit: the Blocked timer is armed.
    stalled: bool,
    blocked_next: Instant,
    blocked_pending: bool,
    blocked_sent: u64,
    credits_stale: u64,
    credits_clamped: u64,
    // ---- receiver (the peer's records, our grants)
    window: u32,
    /// 1 + the highest counter authenticated from the peer.
    highest: u64,
    /// Every record below this was handed on (or lost).
    processed: u64,
    /// The last limit we granted (the initial window counts as granted).
    granted: u64,
    /// A data record arrived since the last Credit: only data earns a re-grant, so that
    /// two receivers' Credits (records too) cannot keep answering each other.
    data_since_grant: bool,
    credit_pending: bool,
    credits_sent: u64,
}

impl Default for FlowWindow {
    fn default() -> Self {
        FlowWindow::off()
    }
}

impl FlowWindow {
    /// Flow control off: every query says "go".
    pub const fn off() -> Self {
        FlowWindow {
            on: false,
            peer_window: 0,
            limit: u64::MAX,
            stalled: false,
            blocked_next: Instant::FAR_FUTURE,
            blocked_pending: false,
            blocked_sent: 0,
            credits_stale: 0,
            credits_clamped: 0,
            window: 0,
            highest: 0,
            processed: 0,
            granted: 0,
            data_since_grant: false,
            credit_pending: false,
            credits_sent: 0,
        }
    }

    /// Flow control on, with our receive window `ours` and the peer's advertised
    /// `theirs` (both 1..=[`DATAGRAM_WINDOW_MAX`], clamped). Counters start at 0, so the
    /// initial limits are the windows themselves.
    pub fn new(ours: u32, theirs: u32) -> Self {
        let ours = ours.clamp(1, DATAGRAM_WINDOW_MAX);
        let theirs = theirs.clamp(1, DATAGRAM_WINDOW_MAX);
        FlowWindow {
            on: true,
            peer_window: theirs,
            limit: u64::from(theirs),
            window: ours,
            granted: u64::from(ours),
            ..FlowWindow::off()
        }
    }

    /// `new` when both sides advertised a window, else [`FlowWindow::off`].
    pub fn negotiate(ours: u32, theirs: Option<u32>) -> Self {
        match theirs {
            Some(t) if ours > 0 && t > 0 => FlowWindow::new(ours, t),
            _ => FlowWindow::off(),
        }
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    // ------------------------------------------------------------ sender

    /// Whether a data record may be sealed with counter `counter`.
    pub fn may_send(&self, counter: u64) -> bool {
        !self.on || counter < self.limit
    }

    /// After any record was sealed; `counter` is the next counter. Arms the Blocked timer
    /// when the limit is reached (one RTO: the Credit is probably on its way).
    pub fn on_sealed(&mut self, counter: u64, now: Instant, rto: Duration) {
        if self.on && counter >= self.limit && !self.stalled {
            self.stalled = true;
            self.blocked_next = now + rto;
        }
    }

    /// The peer's `Credit { limit }`; `counter` is our next counter. A limit that does not
    /// advance is ignored; one beyond anything the peer can have granted (our counter plus
    /// the largest window) is clamped. Returns whether the limit advanced.
    pub fn on_credit(&mut self, limit: u64, counter: u64) -> bool {
        if !self.on {
            return false;
        }
        let most = counter.saturating_add(u64::from(DATAGRAM_WINDOW_MAX));
        let limit = if limit > most {
            self.credits_clamped += 1;
            most
        } else {
            limit
        };
        if limit <= self.limit {
            self.credits_stale += 1;
            return false;
        }
        self.limit = limit;
        if counter < limit {
            self.stalled = false;
            self.blocked_next = Instant::FAR_FUTURE;
        }
        true
    }

    /// When the Blocked timer fires, if the sender is stalled with data queued.
    pub fn deadline(&self, data_queued: bool) -> Instant {
        if self.on && self.stalled && data_queued {
            self.blocked_next
        } else {
            Instant::FAR_FUTURE
        }
    }

    /// Runs the Blocked timer: at most one Blocked per `rto` while stalled with data queued.
    pub fn on_timeout(&mut self, data_queued: bool, now: Instant, rto: Duration) {
        if self.on && self.stalled && data_queued && now >= self.blocked_next {
            self.blocked_pending = true;
            self.blocked_next = now + rto;
        }
    }

    /// The Blocked to send now, if one is due: `at` is our current limit.
    pub fn take_blocked(&mut self) -> Option<u64> {
        if !core::mem::take(&mut self.blocked_pending) {
            return None;
        }
        self.blocked_sent += 1;
        Some(self.limit)
    }

    // ------------------------------------------------------------ receiver

    /// An authenticated record with counter `counter` arrived from the peer; `data`: it
    /// carried a message chunk.
    pub fn on_record(&mut self, counter: u64, data: bool) {
        if self.on {
            self.highest = self.highest.max(counter.saturating_add(1));
            self.data_since_grant |= data;
        }
    }

    /// Everything received so far has been handed on (no message waits for `poll_event`):
    /// every record below the highest seen is free, received or lost. Grants anew once at
    /// least half the window was consumed since the last grant.
    pub fn on_consumed(&mut self) {
        if !self.on {
            return;
        }
        self.processed = self.processed.max(self.highest);
        let grant = self.processed.saturating_add(u64::from(self.window));
        let half = u64::from(self.window / 2).max(1);
        if self.data_since_grant && grant >= self.granted.saturating_add(half) {
            self.credit_pending = true;
        }
    }

    /// The peer's `Blocked { at }`: answer with a fresh Credit if it opens anything (a
    /// lost Credit is recovered here). If the application has not consumed, nothing opens
    /// and the peer stays stalled, which is the point.
    pub fn on_blocked(&mut self, at: u64) {
        if !self.on {
            return;
        }
        // A Blocked is only read while no message waits for the application (the node
        // refuses datagrams then), so everything up to it, itself included, is handed on:
        // even if every record since the last grant was lost, this opens the window.
        self.processed = self.processed.max(self.highest);
        let grant = self.processed.saturating_add(u64::from(self.window));
        if grant > at {
            self.credit_pending = true;
        }
    }

    /// The Credit to send now, if one is due.
    pub fn take_credit(&mut self) -> Option<u64> {
        if !core::mem::take(&mut self.credit_pending) {
            return None;
        }
        let grant = self.processed.saturating_add(u64::from(self.window));
        self.granted = self.granted.max(grant);
        self.data_since_grant = false;
        self.credits_sent += 1;
        Some(self.granted)
    }

    /// A Credit or Blocked waits to go out.
    pub fn ctrl_pending(&self) -> bool {
        self.credit_pending || self.blocked_pending
    }

    /// A snapshot; `counter` is our next send counter.
    pub fn info(&self, counter: u64) -> FlowInfo {
        let base = self.limit.saturating_sub(u64::from(self.peer_window));
        FlowInfo {
            enabled: self.on,
            window: self.window,
            send_limit: if self.on { self.limit } else { 0 },
            in_flight: if self.on { counter.saturating_sub(base).min(u64::from(self.peer_window)) } else { 0 },
            blocked_sent: self.blocked_sent,
            credits_stale: self.credits_stale,
            credits_clamped: self.credits_clamped,
            credits_sent: self.credits_sent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTO: Duration = Duration::from_millis(10);

    #[test]
    fn off_never_blocks() {
        let mut w = FlowWindow::negotiate(64, None);
        assert!(!w.is_on() && w.may_send(u64::MAX - 1));
        w.on_sealed(1 << 40, Instant::ZERO, RTO);
        assert_eq!(w.deadline(true), Instant::FAR_FUTURE);
        assert!(!w.on_credit(10, 0));
        w.on_record(5, true);
        w.on_consumed();
        assert!(!w.ctrl_pending());
        assert!(!FlowWindow::negotiate(0, Some(64)).is_on());
    }

    #[test]
    fn sender_stops_at_the_limit_and_resumes_on_credit() {
        let mut w = FlowWindow::new(8, 4);
        assert!(w.may_send(3) && !w.may_send(4));
        w.on_sealed(4, Instant::ZERO, RTO);
        assert_eq!(w.deadline(true), Instant::ZERO + RTO);
        assert_eq!(w.deadline(false), Instant::FAR_FUTURE);
        w.on_timeout(true, Instant::ZERO + RTO, RTO);
        assert_eq!(w.take_blocked(), Some(4));
        assert_eq!(w.take_blocked(), None);
        assert!(w.on_credit(8, 5));
        assert!(w.may_send(7) && !w.may_send(8));
        assert_eq!(w.deadline(true), Instant::FAR_FUTURE);
    }

    #[test]
    fn backwards_and_absurd_credits() {
        let mut w = FlowWindow::new(8, 4);
        assert!(!w.on_credit(3, 0));
        assert!(!w.on_credit(4, 0));
        assert_eq!(w.info(0).credits_stale, 2);
        assert!(w.on_credit(u64::MAX, 10));
        assert_eq!(w.info(10).send_limit, 10 + u64::from(DATAGRAM_WINDOW_MAX));
        assert_eq!(w.info(10).credits_clamped, 1);
    }

    #[test]
    fn receiver_grants_after_half_the_window_is_consumed() {
        let mut w = FlowWindow::new(8, 8);
        for c in 0..3 {
            w.on_record(c, true);
            w.on_consumed();
        }
        assert!(!w.ctrl_pending());
        w.on_record(3, true);
        assert!(!w.ctrl_pending(), "received is not consumed");
        w.on_consumed();
        assert_eq!(w.take_credit(), Some(12));
        // A loss: counter 4..9 never arrive, 10 does; their credit is free.
        w.on_record(10, true);
        w.on_consumed();
        assert_eq!(w.take_credit(), Some(19));
    }

    #[test]
    fn blocked_is_answered_only_when_something_opens() {
        let mut w = FlowWindow::new(4, 4);
        w.on_blocked(4);
        assert!(!w.ctrl_pending(), "nothing consumed: the sender stays stalled");
        w.on_record(4, false); // the Blocked record itself
        w.on_consumed();
        w.on_blocked(4);
        assert_eq!(w.take_credit(), Some(9));
    }

    #[test]
    fn control_records_alone_earn_no_credit() {
        let mut w = FlowWindow::new(1, 1);
        for c in 0..10 {
            w.on_record(c, false); // Credits, Pongs...
            w.on_consumed();
            assert!(!w.ctrl_pending(), "a Credit answered a control record");
        }
        w.on_blocked(1);
        assert_eq!(w.take_credit(), Some(11), "Blocked is always answered when it opens");
    }

    #[test]
    fn blocked_after_the_tail_was_lost_is_answered_at_once() {
        let mut w = FlowWindow::new(4, 4);
        for c in 0..4 {
            w.on_record(c, true);
            w.on_consumed();
        }
        assert_eq!(w.take_credit(), Some(8));
        // Records 4..8 are all lost; the sender's Blocked { at: 8 } has counter 8.
        w.on_record(8, false);
        w.on_blocked(8);
        assert_eq!(w.take_credit(), Some(13));
    }

    #[test]
    fn window_edges() {
        let mut w = FlowWindow::new(1, 1);
        assert!(w.may_send(0) && !w.may_send(1));
        w.on_record(0, true);
        w.on_consumed();
        assert_eq!(w.take_credit(), Some(2));
        let w = FlowWindow::new(u32::MAX, u32::MAX);
        assert_eq!(w.info(0).window, DATAGRAM_WINDOW_MAX);
        assert!(w.may_send(u64::from(DATAGRAM_WINDOW_MAX) - 1) && !w.may_send(u64::from(DATAGRAM_WINDOW_MAX)));
    }

    #[test]
    fn extension_round_trip() {
        let mut b = [0u8; 5];
        let n = encode_ext(64, &mut b);
        assert_eq!(&b[..n], &[64]);
        assert_eq!(decode_ext(Some(&b[..n])), Some(64));
        let n = encode_ext(DATAGRAM_WINDOW_MAX, &mut b);
        assert_eq!(&b[..n], &[0x80, 0x80, 0x01]);
        assert_eq!(decode_ext(Some(&[0xff, 0xff, 0xff, 0xff, 0x0f])), Some(DATAGRAM_WINDOW_MAX));
        assert_eq!(decode_ext(Some(&[0])), None);
        assert_eq!(decode_ext(Some(&[])), None);
        assert_eq!(decode_ext(Some(&[64, 0])), None);
        assert_eq!(decode_ext(None), None);
    }
}
