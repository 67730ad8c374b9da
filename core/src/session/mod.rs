//! One peer session: the handshake, the transport keys, pings, chunking and reassembly.
//!
//! A session knows nothing about other sessions or the slot table; the node routes bytes
//! to it and drains what it produces. Its bytes live in the slot buffer, passed in as
//! `buf` and cut by [`Layout`].
//!
//! The session is split by concern: `handshake` (Init/Resp/Final, retransmission,
//! anti-amplification), `transport` (records in, decryption, packets, reassembly) and
//! `output` (records out, chunking, key rotation, timers).

mod batch;
mod handshake;
mod output;
mod transport;
mod window;

pub use batch::EXT_BATCH;
pub use window::{decode_ext as window_from_ext, encode_ext as window_ext};
pub use window::{FlowInfo, FlowWindow, DATAGRAM_WINDOW_MAX, EXT_DATAGRAM_WINDOW};

pub(crate) use handshake::{check_init, derive_psk, prologue};

use core::net::SocketAddr;
use core::time::Duration;

use crate::rng::NodeRng;
use heapless::{Deque, Vec};

use crate::buffers::{Layout, Priority, SendQueues};
use crate::config::Config;
use crate::error::Error;
use crate::identity::{Keypair, PeerId};
use crate::noise::{CipherState, HandshakeState, Pattern, Role, TAG_LEN};
use crate::quality::QualityTracker;
use crate::reassembly::Reassembly;
use crate::replay::ReplayWindow;
use crate::time::Instant;
use crate::wire::record::INIT_HEADER_LEN;
use crate::wire::MAX_FRAME_LEN;
use crate::wire::{CloseReason, ErrorCode, FrameDecoder, Hello, HELLO_MAX_LEN};

/// Largest handshake record: header + e + encrypted s + encrypted Hello.
pub const HANDSHAKE_RECORD_MAX: usize = INIT_HEADER_LEN + 32 + 48 + HELLO_MAX_LEN + TAG_LEN;

/// The largest datagram Init: the largest Init record and its `mac1 || mac2` tail.
pub const INIT_MAX_DATAGRAM: usize = HANDSHAKE_RECORD_MAX + crate::cookie::MACS_LEN;

/// Datagram Init records are padded to at least this many bytes, so that the largest
/// Resp (HANDSHAKE_RECORD_MAX) fits the responder's 3x anti-amplification budget.
pub const INIT_MIN_DATAGRAM: usize = HANDSHAKE_RECORD_MAX.div_ceil(AMPLIFICATION_FACTOR);
/// The smallest datagram Init a responder reads: the padded record and its
/// `mac1 || mac2` tail (PROTOCOL.md §5.12).
pub const DATAGRAM_INIT_MIN: usize = INIT_MIN_DATAGRAM + crate::cookie::MACS_LEN;
/// Before an address is verified, a responder sends at most this many times the bytes it
/// received from it (QUIC's rule, RFC 9000 §8.1).
pub const AMPLIFICATION_FACTOR: usize = 3;

/// How a session's bytes travel. Exhaustive on purpose: a third framing needs new I/O in
/// every adapter, so adding one must break their matches rather than fall into a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// A reliable ordered byte stream (TCP, WebSocket): records in length-prefixed frames.
    Stream,
    /// Datagrams (UDP): one record per datagram, explicit counters, replay window.
    Datagram,
}

impl TransportKind {
    /// A datagram session. Always false without the `datagram` feature (no datagram
    /// session can exist then), so datagram-only branches compile away.
    #[inline]
    pub(crate) fn is_datagram(self) -> bool {
        cfg!(feature = "datagram") && self == TransportKind::Datagram
    }
}

/// Pattern ids carried in the Init record.
pub(crate) fn pattern_id(p: Pattern) -> u8 {
    match p {
        Pattern::Xx => 0,
        #[cfg(feature = "psk")]
        Pattern::XxPsk3 => 1,
        #[cfg(feature = "ik")]
        Pattern::Ik => 2,
    }
}

/// The pattern of a pattern id, if this build implements it. Ids the specification
/// defines but this build leaves out (`psk`, `ik` features off) give `None` here and are
/// told apart from unknown ids by [`PATTERN_IDS`].
pub(crate) fn pattern_from_id(b: u8) -> Option<Pattern> {
    match b {
        0 => Some(Pattern::Xx),
        #[cfg(feature = "psk")]
        1 => Some(Pattern::XxPsk3),
        #[cfg(feature = "ik")]
        2 => Some(Pattern::Ik),
        _ => None,
    }
}

/// Pattern ids the specification defines (§5.1): 0 XX, 1 XXpsk3, 2 IK. A build without
/// one of them refuses its Init (PROTOCOL.md §3.1) instead of treating it as unknown.
pub(crate) const PATTERN_IDS: u8 = 3;
/// The IK pattern id: a build without `ik` answers it with Reject(Auth), as an IK
/// responder that cannot decrypt message 1.
#[cfg_attr(feature = "ik", allow(dead_code))]
pub(crate) const PATTERN_ID_IK: u8 = 2;

/// The initiator's pattern (PROTOCOL.md §5.1): XXpsk3 under a network key, IK when the
/// peer's key is known and `ik_fast_path` is on, else XX. Without the `psk` and `ik`
/// features the first two cannot occur (no network key, no IK).
fn initiator_pattern(ctx: &Ctx<'_>, expected: Option<PeerId>) -> Pattern {
    #[cfg(feature = "psk")]
    if ctx.psk.is_some() {
        return Pattern::XxPsk3;
    }
    #[cfg(feature = "ik")]
    if expected.is_some() && ctx.config.ik_fast_path {
        return Pattern::Ik;
    }
    let _ = (ctx, expected);
    Pattern::Xx
}

/// What the node's shared state lends a session for one call.
pub(crate) struct Ctx<'a> {
    pub config: &'a Config,
    pub keypair: &'a Keypair,
    pub rng: &'a mut NodeRng,
    pub layout: Layout,
    /// Our Hello, encoded once at node creation.
    pub hello: &'a [u8],
    pub prologue: &'a [u8],
    pub psk: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for or exchanging handshake messages.
    Handshake,
    /// Keys established.
    Established,
    /// Closed; waiting for the node to report and free the slot.
    Closed,
}

/// Control packets waiting to be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctrl {
    Ping,
    Pong(u32),
    Error(ErrorCode),
}

const CTRL_QUEUE: usize = 8;

/// Why a session ended, as the node reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// We closed it (disconnect, shutdown, duplicate, threat policy).
    Local(CloseReason),
    /// The peer sent Close.
    Remote(CloseReason),
    /// The transport (socket) closed under us.
    TransportClosed,
    /// Nothing authenticated arrived within the dead-peer timeout.
    Timeout,
    /// A protocol or handshake error.
    Error(Error),
}

/// Transport keys in one direction with key phases (see PROTOCOL.md §Rekey).
pub(crate) struct Keys {
    pub cipher: CipherState,
    pub phase: u8,
    pub since: Instant,
}

pub(crate) struct Session {
    pub kind: TransportKind,
    pub addr: SocketAddr,
    pub role: Role,
    pub phase: Phase,
    pub local_index: u32,
    pub remote_index: u32,
    pub expected: Option<PeerId>,
    pub peer: Option<PeerId>,
    pub hello: Option<Hello>,
    pub created: Instant,
    pub connected_at: Option<Instant>,
    /// Connected has been (or is being) reported for this session.
    pub announced: bool,
    /// The peer proved it holds the keys (its first record, a valid Final, or IK's Resp).
    pub confirmed: bool,
    /// A transport record from the peer has arrived.
    heard: bool,
    pub close_reason: Option<DisconnectReason>,
    /// `close` was called: no new messages are accepted.
    pub closing: bool,
    /// The Close packet to send once the queue is flushed.
    close_pending: Option<CloseReason>,

    hs: Option<HandshakeState>,
    /// The handshake record to (re)send; a datagram Init with its mac tail.
    hs_out: Vec<u8, INIT_MAX_DATAGRAM>,
    /// The last cookie a responder gave this initiator (datagrams, §5.12).
    cookie: Option<crate::cookie::Jar>,
    /// The Init already went out again at once for a cookie since its last timed send:
    /// further cookies wait for the retransmission timer (no Init/Cookie ping-pong).
    cookie_resent: bool,
    pub hs_out_pending: bool,
    hs_sent_at: Instant,
    /// The handshake record was sent more than once (no RTT sample then: Karn's rule).
    hs_retransmitted: bool,
    hs_next_retry: Instant,
    hs_retry_delay: Duration,

    send: Option<Keys>,
    send_counter: u64,
    send_since_rekey: u64,
    recv: Option<Keys>,
    recv_prev: Option<Keys>,
    /// First counter received under the current receive phase.
    recv_phase_start: u64,
    recv_next: u64,
    replay: ReplayWindow,

    pub last_recv: Instant,
    next_ping: Instant,
    ping_seq: u32,
    pub quality: QualityTracker,
    ctrl: Deque<Ctrl, CTRL_QUEUE>,

    frame: FrameDecoder,
    /// The id of an oversize message whose chunks are being dropped.
    skip_msg: Option<u32>,
    /// Chunked messages being assembled.
    reasm: Reassembly,
    /// A complete message waits at this range of the slot buffer for `poll_event`
    /// (in the rx region when it came in one record, else in the msg region).
    pub msg_ready: Option<core::ops::Range<usize>>,
    /// The kind of the message at `msg_ready`.
    pub msg_kind: u8,
    /// Packets per record this session sends (§9.2): 1 unless both sides batch.
    batch_tx: u8,
    /// The inner packets of a received batched record not handled yet (in the rx region).
    batch_rx: Option<core::ops::Range<usize>>,
    /// Inner packets of that record handled so far.
    batch_n: u16,
    /// Queued messages, one FIFO per priority class.
    pub out: SendQueues,
    next_msg_id: u32,
    /// Counters for things dropped, for stats.
    pub dropped: u64,
    /// Bytes received from and sent to the peer's address before it was verified.
    amp_in: usize,
    amp_out: usize,
    /// A pong updated the figures since the last QualityUpdate event.
    pub quality_dirty: bool,
    /// The peer sent an Error packet not yet reported.
    pub remote_error: Option<ErrorCode>,
    /// The wire version agreed at the handshake (0 until known).
    pub version: u8,
    /// The Noise handshake hash, once established (channel binding).
    pub handshake_hash: Option<[u8; 32]>,
    /// Datagram flow control (§8.8); off on streams and with peers that do not advertise it.
    pub flow: FlowWindow,
}

impl Session {
    pub(super) fn blank(kind: TransportKind, addr: SocketAddr, role: Role, local_index: u32, now: Instant) -> Self {
        Session {
            kind,
            addr,
            role,
            phase: Phase::Handshake,
            local_index,
            remote_index: 0,
            expected: None,
            peer: None,
            hello: None,
            created: now,
            connected_at: None,
            announced: false,
            confirmed: false,
            heard: false,
            close_reason: None,
            closing: false,
            close_pending: None,
            hs: None,
            hs_out: Vec::new(),
            cookie: None,
            cookie_resent: false,
            hs_out_pending: false,
            hs_sent_at: now,
            hs_retransmitted: false,
            hs_next_retry: Instant::FAR_FUTURE,
            hs_retry_delay: Duration::ZERO,
            send: None,
            send_counter: 0,
            send_since_rekey: 0,
            recv: None,
            recv_prev: None,
            recv_phase_start: 0,
            recv_next: 0,
            replay: ReplayWindow::new(),
            last_recv: now,
            next_ping: Instant::FAR_FUTURE,
            ping_seq: 0,
            quality: QualityTracker::new(),
            ctrl: Deque::new(),
            frame: FrameDecoder::new(),
            skip_msg: None,
            msg_ready: None,
            msg_kind: crate::wire::kind::DATA,
            batch_tx: 1,
            batch_rx: None,
            batch_n: 0,
            reasm: Reassembly::default(),
            out: SendQueues::default(),
            next_msg_id: 0,
            dropped: 0,
            quality_dirty: false,
            amp_in: 0,
            amp_out: 0,
            remote_error: None,
            version: 0,
            handshake_hash: None,
            flow: FlowWindow::off(),
        }
    }

    /// A blank initiator session, already in its slot, starts its handshake: the Init
    /// record is queued at once. (The node installs the blank session first and starts it
    /// there, so the ~4.8 KB session is not built on the stack and then moved.)
    pub fn start_initiator(&mut self, ctx: &mut Ctx<'_>, expected: Option<PeerId>, now: Instant) -> Result<(), Error> {
        self.expected = expected;
        let pattern = initiator_pattern(ctx, expected);
        self.start_handshake(ctx, pattern, now)
    }

    /// A session for an accepted stream connection, waiting for the peer's Init.
    pub fn responder(kind: TransportKind, addr: SocketAddr, local_index: u32, now: Instant) -> Self {
        Session::blank(kind, addr, Role::Responder, local_index, now)
    }

    /// Still in the handshake, or holding keys the peer has not confirmed (an IK responder
    /// before the initiator's first record): both count against the half-open caps, so
    /// replayed IK Inits cannot pile up sessions.
    pub fn is_half_open(&self) -> bool {
        self.phase == Phase::Handshake
            || (self.phase == Phase::Established && !self.confirmed && self.role == Role::Responder)
    }

    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Established && self.announced
    }

    /// Nothing of this session lives in its slot buffer (no partial frame, no
    /// reassembly, no message waiting, an empty send queue): the node may lend the buffer
    /// back to its pool and take another when bytes come.
    pub fn buffer_idle(&self) -> bool {
        !self.frame.is_mid_frame()
            && !self.reasm.busy()
            && self.msg_ready.is_none()
            && self.batch_rx.is_none()
            && self.out.is_empty()
    }

    /// The peer's max record, bounded by what this transport can carry.
    pub(super) fn max_record(&self, ctx: &Ctx<'_>) -> usize {
        // Our own limit for the transport, and the peer's announced limit for it.
        let (ours, theirs) = match self.kind {
            TransportKind::Stream => (MAX_FRAME_LEN, self.hello.as_ref().map(|h| h.max_frame)),
            TransportKind::Datagram => (ctx.config.max_datagram, self.hello.as_ref().map(|h| h.max_datagram)),
        };
        theirs.map_or(ours, |t| ours.min(t as usize))
    }

    /// The largest message the peer accepts.
    pub fn peer_max_message(&self) -> usize {
        self.hello.as_ref().map_or(0, |h| h.max_message as usize)
    }

    /// The interval between two Blocked packets of a stalled sender: the RTO (RFC 6298).
    pub(super) fn blocked_interval(&self) -> Duration {
        use window::{BLOCKED_INTERVAL_INITIAL, BLOCKED_INTERVAL_MAX, BLOCKED_INTERVAL_MIN};
        self.quality.rtt.rto(
            Duration::from_millis(1),
            BLOCKED_INTERVAL_MIN,
            BLOCKED_INTERVAL_MAX,
            BLOCKED_INTERVAL_INITIAL,
        )
    }

    /// Turns datagram flow control on if both Hellos advertised a window (§8.8).
    pub(super) fn negotiate_flow(&mut self, ctx: &Ctx<'_>) {
        let theirs = self.hello.as_ref().and_then(|h| window::decode_ext(h.extensions.get(EXT_DATAGRAM_WINDOW)));
        self.batch_tx =
            batch::negotiate(ctx.config.max_batch, self.hello.as_ref().and_then(|h| h.extensions.get(EXT_BATCH)));
        self.flow = match self.kind {
            TransportKind::Datagram => FlowWindow::negotiate(ctx.config.datagram_window, theirs),
            TransportKind::Stream => FlowWindow::off(),
        };
    }

    /// The next transport counter this session seals with.
    pub fn send_counter(&self) -> u64 {
        self.send_counter
    }

    /// The application took the waiting message: its records' credit is free (§8.8).
    pub fn on_consumed(&mut self) {
        // A batched record is handed on once its last packet is (§9.2).
        if self.msg_ready.is_none() && self.batch_rx.is_none() {
            self.flow.on_consumed();
        }
    }

    pub fn queue_ctrl(&mut self, c: Ctrl) {
        if self.closing {
            return; // only the Close (and queued messages) go out now
        }
        if self.ctrl.push_back(c).is_err() {
            // A flood of pings from the peer: answering every one is not owed.
            self.dropped += 1;
        }
    }

    pub fn send(&mut self, ctx: &Ctx<'_>, buf: &mut [u8], data: &[u8]) -> Result<(), Error> {
        self.send_with(ctx, buf, crate::wire::kind::DATA, Priority::Normal, data)
    }

    /// Queues a message of `kind` (a message kind: Data, application, implemented
    /// messaging) in the FIFO of `priority`. A full class is `QueueFull` with that class's
    /// free bytes; the other classes are not affected.
    pub fn send_with(
        &mut self,
        ctx: &Ctx<'_>,
        buf: &mut [u8],
        kind: u8,
        priority: Priority,
        data: &[u8],
    ) -> Result<(), Error> {
        if !crate::wire::kind::is_message(kind) {
            return Err(Error::InvalidKind { kind });
        }
        if self.phase != Phase::Established || self.closing {
            return Err(Error::NotConnected);
        }
        let max = ctx.config.max_message.min(self.peer_max_message());
        if data.len() > max {
            return Err(Error::TooLarge { size: data.len(), max });
        }
        let region = &mut buf[ctx.layout.class(priority)];
        let q = self.out.get(priority);
        let free = q.free(region.len());
        q.push(region, kind, data).map_err(|needed| Error::QueueFull { needed, free })?;
        Ok(())
    }

    /// Ends the session with a Close packet. A graceful close (`Normal`, `Shutdown`) first
    /// sends every queued message, so nothing queued is dropped silently; the others
    /// (threat, duplicate, protocol) drop the queue at once and count what they dropped.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closing {
            return;
        }
        if self.phase == Phase::Established {
            if !matches!(reason, CloseReason::Normal | CloseReason::Shutdown) {
                self.dropped += self.out.count() as u64;
                self.out = SendQueues::default();
                self.ctrl.clear();
            }
            self.close_pending = Some(reason);
            self.closing = true;
            self.close_reason = Some(DisconnectReason::Local(reason));
        } else {
            // A handshake not yet finished just stops: nothing more goes out, not even a
            // pending Init.
            self.phase = Phase::Closed;
            self.hs_out_pending = false;
            self.close_reason = Some(DisconnectReason::Local(reason));
        }
    }
}
