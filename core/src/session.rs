//! One peer session: the handshake, the transport keys, pings, chunking and reassembly.
//!
//! A session knows nothing about other sessions or the slot table; the node routes bytes
//! to it and drains what it produces. Its bytes live in the slot buffer, passed in as
//! `buf` and cut by [`Layout`].

use core::net::SocketAddr;
use core::time::Duration;

use heapless::{Deque, Vec};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use crate::buffers::{Layout, Outbox};
use crate::config::Config;
use crate::error::Error;
use crate::identity::{Keypair, PeerId};
use crate::noise::{CipherState, HandshakeParams, HandshakeState, Pattern, Role, TAG_LEN};
use crate::quality::QualityTracker;
use crate::reassembly::{Chunk, Reassembly};
use crate::replay::{ReplayWindow, REJECT_AFTER_MESSAGES};
use crate::time::Instant;
use crate::wire::frame::write_prefix;
use crate::wire::packet::DATA_OVERHEAD;
use crate::wire::record::{INIT_HEADER_LEN, TRANSPORT_HEADER_LEN};
use crate::wire::{
    CloseReason, ErrorCode, FrameDecoder, Header, Hello, Packet, RejectCode, HELLO_MAX_LEN, WIRE_VERSION,
};
use crate::wire::{FRAME_PREFIX_LEN, MAX_FRAME_LEN};

/// Largest handshake record: header + e + encrypted s + encrypted Hello.
pub const HANDSHAKE_RECORD_MAX: usize = INIT_HEADER_LEN + 32 + 48 + HELLO_MAX_LEN + TAG_LEN;

/// Datagram Init records are padded to at least this many bytes, so that the largest
/// Resp (HANDSHAKE_RECORD_MAX) fits the responder's 3x anti-amplification budget.
pub const INIT_MIN_DATAGRAM: usize = HANDSHAKE_RECORD_MAX.div_ceil(AMPLIFICATION_FACTOR);
/// Before an address is verified, a responder sends at most this many times the bytes it
/// received from it (QUIC's rule, RFC 9000 §8.1).
pub const AMPLIFICATION_FACTOR: usize = 3;

/// How a session's bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// A reliable ordered byte stream (TCP, WebSocket): records in length-prefixed frames.
    Stream,
    /// Datagrams (UDP): one record per datagram, explicit counters, replay window.
    Datagram,
}

/// Pattern ids carried in the Init record.
pub(crate) fn pattern_id(p: Pattern) -> u8 {
    match p {
        Pattern::Xx => 0,
        Pattern::XxPsk3 => 1,
        Pattern::Ik => 2,
    }
}

pub(crate) fn pattern_from_id(b: u8) -> Option<Pattern> {
    match b {
        0 => Some(Pattern::Xx),
        1 => Some(Pattern::XxPsk3),
        2 => Some(Pattern::Ik),
        _ => None,
    }
}

/// What the node's shared state lends a session for one call.
pub(crate) struct Ctx<'a> {
    pub config: &'a Config,
    pub keypair: &'a Keypair,
    pub rng: &'a mut ChaCha20Rng,
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
    /// A transport record from the peer proved it holds the keys.
    pub confirmed: bool,
    pub close_reason: Option<DisconnectReason>,
    /// `close` was called: no new messages are accepted.
    pub closing: bool,
    /// The Close packet to send once the queue is flushed.
    close_pending: Option<CloseReason>,

    hs: Option<HandshakeState>,
    hs_out: Vec<u8, HANDSHAKE_RECORD_MAX>,
    pub hs_out_pending: bool,
    hs_sent_at: Instant,
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
    pub out: Outbox,
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
}

impl Session {
    fn blank(kind: TransportKind, addr: SocketAddr, role: Role, local_index: u32, now: Instant) -> Self {
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
            close_reason: None,
            closing: false,
            close_pending: None,
            hs: None,
            hs_out: Vec::new(),
            hs_out_pending: false,
            hs_sent_at: now,
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
            reasm: Reassembly::default(),
            out: Outbox::default(),
            next_msg_id: 0,
            dropped: 0,
            quality_dirty: false,
            amp_in: 0,
            amp_out: 0,
            remote_error: None,
        }
    }

    /// A session that starts a handshake: the Init record is queued at once.
    pub fn initiator(
        ctx: &mut Ctx<'_>,
        kind: TransportKind,
        addr: SocketAddr,
        expected: Option<PeerId>,
        local_index: u32,
        now: Instant,
    ) -> Result<Self, Error> {
        let mut s = Session::blank(kind, addr, Role::Initiator, local_index, now);
        s.expected = expected;
        let pattern = match (ctx.psk.is_some(), expected) {
            (true, _) => Pattern::XxPsk3,
            (false, Some(_)) if ctx.config.ik_fast_path => Pattern::Ik,
            _ => Pattern::Xx,
        };
        s.start_handshake(ctx, pattern, now)?;
        Ok(s)
    }

    /// Writes a fresh Init (new ephemeral) for `pattern` and schedules its retransmission.
    fn start_handshake(&mut self, ctx: &mut Ctx<'_>, pattern: Pattern, now: Instant) -> Result<(), Error> {
        let (expected, local_index) = (self.expected, self.local_index);
        let mut hs = HandshakeState::new(
            HandshakeParams {
                pattern,
                role: Role::Initiator,
                prologue: ctx.prologue,
                local_static: *ctx.keypair.secret_bytes(),
                remote_static: expected.map(|p| p.0),
                psk: ctx.psk,
            },
            ctx.rng,
        )?;
        let header = Header::Init {
            version: WIRE_VERSION,
            pattern: pattern_id(pattern),
            sender: local_index,
            network_tag: network_tag(ctx.config),
        };
        // XX sends nothing in message 1 (it would be cleartext); IK sends our Hello encrypted.
        // IK sends our Hello (encrypted). XX's message 1 is cleartext, so it carries no
        // Hello; on datagrams it is padded to INIT_MIN_DATAGRAM so that the responder's
        // reply stays within its 3x anti-amplification budget.
        let pad = [0u8; INIT_MIN_DATAGRAM];
        let payload: &[u8] = match (pattern, self.kind) {
            (Pattern::Ik, _) => ctx.hello,
            (_, TransportKind::Stream) => &[],
            (_, TransportKind::Datagram) => {
                let tag = if pattern == Pattern::XxPsk3 { TAG_LEN } else { 0 };
                &pad[..INIT_MIN_DATAGRAM - INIT_HEADER_LEN - 32 - tag]
            }
        };
        self.write_handshake(&mut hs, header, payload)?;
        self.hs = Some(hs);
        self.hs_sent_at = now;
        self.hs_retry_delay = ctx.config.handshake_retry;
        self.schedule_retry(ctx, now);
        Ok(())
    }

    /// A session for an accepted stream connection, waiting for the peer's Init.
    pub fn responder(kind: TransportKind, addr: SocketAddr, local_index: u32, now: Instant) -> Self {
        Session::blank(kind, addr, Role::Responder, local_index, now)
    }

    fn write_handshake(&mut self, hs: &mut HandshakeState, header: Header, payload: &[u8]) -> Result<(), Error> {
        let mut out = [0u8; HANDSHAKE_RECORD_MAX];
        let h = header.encode(&mut out)?;
        let n = hs.write_message(payload, &mut out[h..])?;
        self.hs_out.clear();
        self.hs_out.extend_from_slice(&out[..h + n]).map_err(|_| Error::BufferTooSmall { required: h + n })?;
        self.hs_out_pending = true;
        Ok(())
    }

    fn schedule_retry(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.kind != TransportKind::Datagram {
            return;
        }
        let jitter_max = crate::time::duration_micros(ctx.config.handshake_jitter);
        let jitter = if jitter_max == 0 { 0 } else { ctx.rng.next_u64() % (jitter_max + 1) };
        self.hs_next_retry = now + self.hs_retry_delay + Duration::from_micros(jitter);
        self.hs_retry_delay = (self.hs_retry_delay * 2).min(ctx.config.handshake_retry_max);
    }

    /// A datagram responder that has not yet verified the peer's address may send at
    /// most `AMPLIFICATION_FACTOR` times what it received from it.
    fn over_amplification_budget(&self) -> bool {
        self.kind == TransportKind::Datagram
            && self.role == Role::Responder
            && !self.confirmed
            && self.amp_out.saturating_add(self.hs_out.len()) > self.amp_in.saturating_mul(AMPLIFICATION_FACTOR)
    }

    pub fn is_half_open(&self) -> bool {
        self.phase == Phase::Handshake
    }

    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Established && self.announced
    }

    /// The peer's max record, bounded by what this transport can carry.
    fn max_record(&self, ctx: &Ctx<'_>) -> usize {
        let ours = match self.kind {
            TransportKind::Stream => MAX_FRAME_LEN,
            TransportKind::Datagram => ctx.config.max_datagram,
        };
        let theirs = self.hello.as_ref().map_or(ours, |h| h.max_record as usize);
        ours.min(theirs)
    }

    /// The largest message the peer accepts.
    pub fn peer_max_message(&self) -> usize {
        self.hello.as_ref().map_or(0, |h| h.max_message as usize)
    }

    // ---------------------------------------------------------------- input

    /// Feeds stream bytes. Returns how many were consumed: fewer than given when a
    /// received message waits for `poll_event`.
    pub fn handle_stream(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        input: &[u8],
        now: Instant,
    ) -> Result<usize, Error> {
        let mut used = 0;
        while used < input.len() && self.phase != Phase::Closed {
            if self.msg_ready.is_some() {
                break;
            }
            let max = ctx.config.max_frame;
            let rx = &mut buf[ctx.layout.rx()];
            match self.frame.push(rx, &input[used..], max)? {
                crate::wire::frame::FrameProgress::NeedMore { consumed } => used += consumed,
                crate::wire::frame::FrameProgress::Frame { consumed, len } => {
                    used += consumed;
                    let range = FRAME_PREFIX_LEN..FRAME_PREFIX_LEN + len;
                    self.on_record(ctx, buf, range, now)?;
                }
            }
        }
        Ok(used)
    }

    /// Processes one whole record held in `buf[range]` (inside the rx region).
    pub fn on_record(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        range: core::ops::Range<usize>,
        now: Instant,
    ) -> Result<(), Error> {
        let record = buf.get(range.clone()).ok_or(Error::BufferTooSmall { required: range.end })?;
        let header = Header::parse(record)?;
        let body = range.start + header.len()..range.end;
        match header {
            Header::Init { version, pattern, sender, network_tag: tag } => {
                if let Err((code, e)) = check_init(ctx.config, version, tag) {
                    if self.role == Role::Responder && self.hs.is_none() && self.phase == Phase::Handshake {
                        self.queue_reject(code, sender);
                    }
                    return Err(e);
                }
                // Bytes received from a not yet verified address, for the 3x budget.
                self.amp_in = self.amp_in.saturating_add(range.len());
                self.on_init(ctx, buf, body, pattern, sender, now)
            }
            Header::Resp { sender, receiver } => self.on_resp(ctx, buf, body, sender, receiver, now),
            Header::Final { receiver } => self.on_final(ctx, buf, body, receiver, now),
            Header::Transport { phase, receiver, counter } => {
                if receiver != self.local_index {
                    return Err(Error::UnexpectedRecord);
                }
                let mut hdr = [0u8; TRANSPORT_HEADER_LEN];
                hdr.copy_from_slice(&buf[range.start..range.start + TRANSPORT_HEADER_LEN]);
                self.on_transport(ctx, buf, body, &hdr, phase, counter, now)
            }
            Header::Reject { code, version, receiver } => {
                // Only a handshake in progress (or an unconfirmed one: Final can be refused)
                // listens to a Reject; it is unauthenticated, so it is a hint, bound to our index.
                if receiver != self.local_index
                    || self.role != Role::Initiator
                    || self.confirmed
                    || self.phase == Phase::Closed
                {
                    return Err(Error::UnexpectedRecord);
                }
                // IK failed at the responder: the key we expected is not the one it holds.
                // Fall back to XX once, so the responder's real key is learnt and reported
                // as `PeerKeyMismatch` (F04) instead of a bare refusal.
                let in_ik = self.hs.as_ref().is_some_and(|h| h.pattern() == Pattern::Ik);
                if code == RejectCode::Auth && in_ik && self.phase == Phase::Handshake {
                    self.start_handshake(ctx, Pattern::Xx, now)?;
                    return Ok(());
                }
                Err(match code {
                    RejectCode::Network => Error::NetworkMismatch,
                    RejectCode::Version => Error::VersionMismatch { got: version, supported: WIRE_VERSION },
                    RejectCode::Pattern => Error::PatternMismatch,
                    code => Error::Rejected(code),
                })
            }
        }
    }

    fn on_init(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        body: core::ops::Range<usize>,
        pattern: u8,
        sender: u32,
        now: Instant,
    ) -> Result<(), Error> {
        if self.role != Role::Responder {
            return Err(Error::UnexpectedRecord);
        }
        // A retransmitted Init (our Resp was lost): answer with the same Resp, no new
        // crypto. With IK we may already hold keys, still unconfirmed.
        let resend = self.hs.is_some() || (self.phase == Phase::Established && !self.confirmed);
        if resend && sender == self.remote_index && !self.hs_out.is_empty() {
            self.hs_out_pending = true;
            return Ok(());
        }
        if self.hs.is_some() || self.phase != Phase::Handshake {
            return Err(Error::UnexpectedRecord);
        }
        let pattern = pattern_from_id(pattern).ok_or(crate::wire::WireError::UnknownPattern(pattern))?;
        let acceptable = matches!(
            (ctx.psk.is_some(), pattern),
            (true, Pattern::XxPsk3) | (false, Pattern::Xx) | (false, Pattern::Ik)
        );
        if !acceptable {
            self.queue_reject(RejectCode::Pattern, sender);
            return Err(Error::PatternMismatch);
        }
        let mut hs = HandshakeState::new(
            HandshakeParams {
                pattern,
                role: Role::Responder,
                prologue: ctx.prologue,
                local_static: *ctx.keypair.secret_bytes(),
                remote_static: None,
                psk: ctx.psk,
            },
            ctx.rng,
        )?;
        let mut payload = [0u8; HELLO_MAX_LEN + TAG_LEN];
        let n = match hs.read_message(&buf[body], &mut payload) {
            Ok(n) => n,
            Err(crate::noise::NoiseError::Decrypt) if pattern == Pattern::Ik => {
                // Encrypted to a key we do not hold: tell the initiator, which falls back
                // to XX. A stream stays open for that second Init; a datagram slot ends.
                self.queue_reject(RejectCode::Auth, sender);
                return match self.kind {
                    TransportKind::Stream => Ok(()),
                    TransportKind::Datagram => Err(crate::noise::NoiseError::Decrypt.into()),
                };
            }
            Err(e) => return Err(e.into()),
        };
        self.remote_index = sender;
        if pattern == Pattern::Ik {
            self.hello = Some(Hello::decode(&payload[..n])?);
        }
        self.write_handshake(&mut hs, Header::Resp { sender: self.local_index, receiver: sender }, ctx.hello)?;
        self.hs_sent_at = now;
        if hs.is_finished() {
            // IK: keys are ready, but message 1 can be replayed, so the peer is confirmed
            // only by its first transport record.
            self.establish(ctx, hs, now)?;
        } else {
            self.hs = Some(hs);
        }
        Ok(())
    }

    fn on_resp(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        body: core::ops::Range<usize>,
        sender: u32,
        receiver: u32,
        now: Instant,
    ) -> Result<(), Error> {
        if self.role != Role::Initiator || receiver != self.local_index {
            return Err(Error::UnexpectedRecord);
        }
        let Some(mut hs) = self.hs.take() else {
            // Already established: a duplicate Resp (our Final was lost): resend it.
            if self.phase == Phase::Established && sender == self.remote_index && !self.hs_out.is_empty() {
                self.hs_out_pending = true;
                return Ok(());
            }
            return Err(Error::UnexpectedRecord);
        };
        let mut payload = [0u8; HELLO_MAX_LEN + TAG_LEN];
        let n = hs.read_message(&buf[body], &mut payload)?;
        self.quality.on_rtt_sample(now.saturating_since(self.hs_sent_at));
        self.remote_index = sender;
        self.hello = Some(Hello::decode(&payload[..n])?);
        let rs = PeerId(hs.remote_static().ok_or(Error::UnexpectedRecord)?);
        if let Some(expected) = self.expected {
            if expected != rs {
                return Err(Error::PeerKeyMismatch { expected, got: rs });
            }
        }
        let ik = hs.is_finished();
        if !ik {
            self.write_handshake(&mut hs, Header::Final { receiver: sender }, ctx.hello)?;
        } else {
            self.hs_out.clear();
            self.hs_out_pending = false;
        }
        self.establish(ctx, hs, now)?;
        // IK: message 2 proves the responder finished the handshake with our fresh e, so
        // the initiator is confirmed now (XX waits for the responder's first record).
        self.confirmed = ik;
        Ok(())
    }

    fn on_final(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        body: core::ops::Range<usize>,
        receiver: u32,
        now: Instant,
    ) -> Result<(), Error> {
        if self.role != Role::Responder || receiver != self.local_index {
            return Err(Error::UnexpectedRecord);
        }
        let Some(mut hs) = self.hs.take() else {
            if self.phase == Phase::Established {
                // A retransmitted Final: our confirmation was lost, send another ping.
                self.queue_ctrl(Ctrl::Ping);
                return Ok(());
            }
            return Err(Error::UnexpectedRecord);
        };
        let mut payload = [0u8; HELLO_MAX_LEN + TAG_LEN];
        let n = hs.read_message(&buf[body], &mut payload).map_err(|e| {
            // With a network key, a wrong key shows up here: tell the initiator.
            self.queue_reject(RejectCode::Auth, self.remote_index);
            Error::from(e)
        })?;
        self.quality.on_rtt_sample(now.saturating_since(self.hs_sent_at));
        self.hello = Some(Hello::decode(&payload[..n])?);
        self.hs_out.clear();
        self.hs_out_pending = false;
        self.establish(ctx, hs, now)?;
        // Message 3 authenticates the initiator against our fresh ephemeral.
        self.confirmed = true;
        Ok(())
    }

    fn queue_reject(&mut self, code: RejectCode, receiver: u32) {
        let mut out = [0u8; 16];
        if let Ok(n) = (Header::Reject { code, version: WIRE_VERSION, receiver }).encode(&mut out) {
            self.hs_out.clear();
            let _ = self.hs_out.extend_from_slice(&out[..n]);
            self.hs_out_pending = true;
        }
    }

    fn establish(&mut self, ctx: &mut Ctx<'_>, hs: HandshakeState, now: Instant) -> Result<(), Error> {
        let pattern = hs.pattern();
        let t = hs.into_transport()?;
        self.peer = Some(PeerId(t.remote_static));
        self.send = Some(Keys { cipher: t.send, phase: 0, since: now });
        self.recv = Some(Keys { cipher: t.recv, phase: 0, since: now });
        self.phase = Phase::Established;
        self.connected_at = Some(now);
        self.last_recv = now;
        // The first transport record confirms the keys to the peer, so whoever the peer
        // waits for sends a Ping at once (it also gives a first RTT figure): the XX
        // responder (its Final has arrived) and the IK initiator (the IK responder waits
        // for it). The others ping once confirmed, so no record can overtake the
        // handshake on a reordering path and be refused.
        let peer_waits = match self.role {
            Role::Responder => pattern != Pattern::Ik,
            Role::Initiator => pattern == Pattern::Ik,
        };
        if peer_waits {
            self.queue_ctrl(Ctrl::Ping);
        }
        self.next_ping = now + ctx.config.ping_interval;
        // The initiator keeps retransmitting Final until the responder's first record.
        if self.role == Role::Initiator && self.kind == TransportKind::Datagram && !self.hs_out.is_empty() {
            self.schedule_retry(ctx, now);
        } else {
            self.hs_next_retry = Instant::FAR_FUTURE;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn on_transport(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        body: core::ops::Range<usize>,
        header: &[u8; TRANSPORT_HEADER_LEN],
        phase: u8,
        counter: u64,
        now: Instant,
    ) -> Result<(), Error> {
        if self.phase != Phase::Established {
            return Err(Error::UnexpectedRecord);
        }
        // Cheap checks before any cryptography (WireGuard: check, decrypt, then mark).
        match self.kind {
            TransportKind::Stream if counter != self.recv_next => {
                return Err(Error::Replay(crate::replay::ReplayError::Duplicate))
            }
            _ => self.replay.check(counter)?,
        }
        let recv = self.recv.as_ref().ok_or(Error::NotConnected)?;
        let len = body.len();
        let data = &mut buf[body.clone()];
        let mut adopted = None;
        let plain_len = if phase == recv.phase {
            if now.saturating_since(recv.since) > ctx.config.reject_after_time + ctx.config.rekey_after_time {
                return Err(Error::KeyExpired);
            }
            recv.cipher.decrypt_at(counter, header, data, len)?
        } else if counter < self.recv_phase_start {
            let prev = self.recv_prev.as_ref().ok_or(Error::Noise(crate::noise::NoiseError::Decrypt))?;
            prev.cipher.decrypt_at(counter, header, data, len)?
        } else {
            // The peer rotated its key: derive the next one and try it.
            let mut next = recv.cipher.clone();
            next.rekey();
            let n = next.decrypt_at(counter, header, data, len)?;
            adopted = Some(next);
            n
        };
        // Authenticated from here on.
        if let Some(next) = adopted {
            let old = self.recv.replace(Keys { cipher: next, phase, since: now });
            self.recv_prev = old;
            self.recv_phase_start = counter;
        }
        self.replay.mark(counter);
        self.recv_next = counter.saturating_add(1);
        self.last_recv = now;
        self.quality.on_bytes_in(now, len + TRANSPORT_HEADER_LEN);
        if !self.confirmed {
            self.confirmed = true;
            self.hs_out.clear();
            self.hs_out_pending = false;
            self.hs_next_retry = Instant::FAR_FUTURE;
            if self.ping_seq == 0 && !self.ctrl.iter().any(|c| *c == Ctrl::Ping) {
                self.queue_ctrl(Ctrl::Ping);
            }
        }
        let start = body.start;
        self.on_packet(ctx, buf, start..start + plain_len, now)
    }

    fn on_packet(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        range: core::ops::Range<usize>,
        now: Instant,
    ) -> Result<(), Error> {
        // Chunks are assembled behind the record: in the msg region on a stream, and on a
        // datagram session also in the unused tail of the rx region (datagrams only use
        // its first `max_datagram` bytes), which makes room for neighbouring messages.
        let split = match self.kind {
            TransportKind::Stream => ctx.layout.rx,
            TransportKind::Datagram => ctx.config.max_datagram.min(ctx.layout.rx),
        };
        let (head, rest) = buf.split_at_mut(split);
        let tail = &mut rest[..ctx.layout.rx - split + ctx.layout.msg];
        let pkt = match Packet::decode(head.get(range).ok_or(Error::UnexpectedRecord)?) {
            Ok(p) => p,
            Err(e) => {
                self.queue_ctrl(Ctrl::Error(ErrorCode::Malformed));
                return Err(e.into());
            }
        };
        match pkt {
            Packet::Ping { seq } => self.queue_ctrl(Ctrl::Pong(seq)),
            Packet::Pong { seq } => {
                if self.quality.on_pong(seq, now, ctx.config.pong_timeout).is_some() {
                    self.quality_dirty = true;
                }
            }
            Packet::Data { msg_id, total, offset, bytes } => {
                // Where `bytes` sit in the slot buffer: a message that fits one record is
                // delivered from there, without a copy.
                let at = bytes.as_ptr() as usize - head.as_ptr() as usize;
                self.on_data(ctx, tail, split, msg_id, total as usize, offset as usize, bytes, at)?;
            }
            Packet::Error { code, .. } => {
                self.remote_error = Some(code);
            }
            Packet::Close { reason } => {
                self.phase = Phase::Closed;
                self.close_reason = Some(DisconnectReason::Remote(reason));
            }
            Packet::Unknown { .. } => {
                self.queue_ctrl(Ctrl::Error(ErrorCode::UnknownKind));
                self.dropped += 1;
            }
        }
        Ok(())
    }

    /// Takes one Data chunk. `region` is where chunks are assembled; it starts at
    /// `region_at` in the slot buffer. `bytes` start at `bytes_at` in the slot buffer.
    #[allow(clippy::too_many_arguments)]
    fn on_data(
        &mut self,
        ctx: &Ctx<'_>,
        region: &mut [u8],
        region_at: usize,
        id: u32,
        total: usize,
        offset: usize,
        bytes: &[u8],
        bytes_at: usize,
    ) -> Result<(), Error> {
        if total > ctx.config.max_message {
            // Larger than we accept: tell the sender once per message (F29), drop every
            // chunk of it, and keep the session: oversize is never a disconnect.
            if self.skip_msg != Some(id) {
                self.skip_msg = Some(id);
                self.queue_ctrl(Ctrl::Error(ErrorCode::TooLarge));
                self.dropped += 1;
            }
            return Ok(());
        }
        if self.msg_ready.is_some() {
            // Datagram mode only: the adapter did not drain events. Drop, counted.
            self.dropped += 1;
            return Err(Error::WouldBlock);
        }
        let ordered = self.kind == TransportKind::Stream;
        if offset == 0 && bytes.len() == total && !(ordered && self.reasm.busy()) {
            // A whole message in one record: it leaves any reassembly in progress alone.
            self.msg_ready = Some(bytes_at..bytes_at + total);
            self.quality.on_msg_in();
            return Ok(());
        }
        match self.reasm.on_chunk(region, id, total, offset, bytes, ordered) {
            Chunk::Stored => Ok(()),
            Chunk::Complete(r) => {
                self.msg_ready = Some(region_at + r.start..region_at + r.end);
                self.quality.on_msg_in();
                Ok(())
            }
            Chunk::Dropped => {
                self.dropped += 1;
                Ok(())
            }
            Chunk::OutOfOrder => Err(Error::Wire(crate::wire::WireError::MalformedPacket)),
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

    // ---------------------------------------------------------------- commands

    pub fn send(&mut self, ctx: &Ctx<'_>, buf: &mut [u8], data: &[u8]) -> Result<(), Error> {
        if self.phase != Phase::Established || self.closing {
            return Err(Error::NotConnected);
        }
        let max = ctx.config.max_message.min(self.peer_max_message());
        if data.len() > max {
            return Err(Error::TooLarge { size: data.len(), max });
        }
        let region = &mut buf[ctx.layout.out()];
        let free = self.out.free(region.len());
        self.out.push(region, data).map_err(|needed| Error::QueueFull { needed, free })?;
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
                self.dropped += self.out.count as u64;
                self.out = Outbox::default();
                self.ctrl.clear();
            }
            self.close_pending = Some(reason);
            self.closing = true;
            self.close_reason = Some(DisconnectReason::Local(reason));
        } else {
            self.phase = Phase::Closed;
            self.close_reason = Some(DisconnectReason::Local(reason));
        }
    }

    // ---------------------------------------------------------------- output

    pub fn wants_transmit(&self) -> bool {
        match self.phase {
            // A Reject still goes out after the session failed.
            Phase::Closed | Phase::Handshake => self.hs_out_pending,
            Phase::Established => {
                self.hs_out_pending || !self.ctrl.is_empty() || !self.out.is_empty() || self.close_pending.is_some()
            }
        }
    }

    /// Writes as many records as fit into `out` (one per datagram; several frames on a
    /// stream). Returns the bytes written, 0 if nothing was due.
    pub fn poll_transmit(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        out: &mut [u8],
        now: Instant,
    ) -> Result<usize, Error> {
        let prefix = if self.kind == TransportKind::Stream { FRAME_PREFIX_LEN } else { 0 };
        let mut at = 0;
        if self.hs_out_pending && self.over_amplification_budget() {
            // Never send more than 3x what an unverified address sent us (as QUIC): a
            // spoofed Init cannot turn this node into an amplifier. The Init's padding
            // buys the first Resp; retransmitted Inits buy the retransmissions.
            self.hs_out_pending = false;
            self.dropped += 1;
        }
        if self.hs_out_pending {
            let n = self.hs_out.len();
            if self.role == Role::Responder && !self.confirmed {
                self.amp_out = self.amp_out.saturating_add(n);
            }
            let dst = out.get_mut(at..at + prefix + n).ok_or(Error::BufferTooSmall { required: prefix + n })?;
            if prefix > 0 {
                write_prefix(dst, n)?;
            }
            dst[prefix..].copy_from_slice(&self.hs_out);
            self.hs_out_pending = false;
            at += prefix + n;
            if self.kind == TransportKind::Datagram || self.phase != Phase::Established {
                return Ok(at);
            }
        }
        if self.phase != Phase::Established {
            return Ok(at);
        }
        let max_record = self.max_record(ctx);
        loop {
            let space = out.len().saturating_sub(at + prefix).min(max_record);
            // Smallest useful record: header + a control packet + tag.
            if space < TRANSPORT_HEADER_LEN + 16 + TAG_LEN {
                break;
            }
            let dst = &mut out[at + prefix..at + prefix + space];
            let n = if let Some(c) = self.ctrl.pop_front() {
                let pkt = match c {
                    Ctrl::Ping => {
                        let seq = self.ping_seq;
                        self.ping_seq = self.ping_seq.wrapping_add(1);
                        self.quality.on_ping_sent(seq, now);
                        Packet::Ping { seq }
                    }
                    Ctrl::Pong(seq) => Packet::Pong { seq },
                    Ctrl::Error(code) => Packet::Error { code, detail: "" },
                };
                self.seal(ctx, &pkt, dst, now)?
            } else if !self.out.is_empty() {
                let overhead = TRANSPORT_HEADER_LEN + DATA_OVERHEAD + TAG_LEN;
                let region = &buf[ctx.layout.out()];
                let Some(msg) = self.out.front(region) else { break };
                let remaining = msg.len() - self.out.sent;
                let room = space - overhead;
                // Avoid slivers: only split a message across a batch boundary if a decent chunk fits.
                if room < remaining && room < 512 && at > 0 {
                    break;
                }
                let take = remaining.min(room);
                let pkt = Packet::Data {
                    msg_id: self.next_msg_id,
                    total: msg.len() as u32,
                    offset: self.out.sent as u32,
                    bytes: &msg[self.out.sent..self.out.sent + take],
                };
                let n = seal_with(&mut self.send, &mut self.send_counter, self.remote_index, &pkt, dst)?;
                self.after_seal(ctx, n, now);
                self.out.sent += take;
                if self.out.sent >= msg.len() {
                    self.out.pop(region);
                    self.next_msg_id = self.next_msg_id.wrapping_add(1);
                    self.quality.on_msg_out();
                }
                n
            } else if let Some(reason) = self.close_pending.take() {
                // Last record of the session: everything queued went before it.
                let n = self.seal(ctx, &Packet::Close { reason }, dst, now)?;
                self.phase = Phase::Closed;
                n
            } else {
                break;
            };
            if prefix > 0 {
                write_prefix(&mut out[at..], n)?;
            }
            at += prefix + n;
            if self.kind == TransportKind::Datagram || self.phase == Phase::Closed {
                break;
            }
        }
        Ok(at)
    }

    fn seal(&mut self, ctx: &mut Ctx<'_>, pkt: &Packet<'_>, dst: &mut [u8], now: Instant) -> Result<usize, Error> {
        let n = seal_with(&mut self.send, &mut self.send_counter, self.remote_index, pkt, dst)?;
        self.after_seal(ctx, n, now);
        Ok(n)
    }

    fn after_seal(&mut self, ctx: &mut Ctx<'_>, n: usize, now: Instant) {
        self.quality.on_bytes_out(now, n);
        self.send_since_rekey += 1;
        // Key rotation by time or count (PROTOCOL.md §Rekey): the next record uses the next phase.
        if let Some(k) = self.send.as_mut() {
            if now.saturating_since(k.since) >= ctx.config.rekey_after_time
                || self.send_since_rekey >= ctx.config.rekey_after_messages
            {
                k.cipher.rekey();
                k.phase ^= 1;
                k.since = now;
                self.send_since_rekey = 0;
            }
        }
    }

    // ---------------------------------------------------------------- timers

    pub fn next_timeout(&self, config: &Config) -> Instant {
        match self.phase {
            Phase::Closed => Instant::FAR_FUTURE,
            Phase::Handshake => (self.created + config.handshake_timeout).min(self.hs_next_retry),
            Phase::Established => {
                let mut t = self.next_ping.min(self.last_recv + config.dead_peer_timeout).min(self.hs_next_retry);
                if !self.confirmed {
                    t = t.min(self.created + config.handshake_timeout);
                }
                t
            }
        }
    }

    /// Runs due timers. An `Err` ends the session.
    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>, now: Instant) -> Result<(), Error> {
        match self.phase {
            Phase::Closed => Ok(()),
            Phase::Handshake => {
                if now >= self.created + ctx.config.handshake_timeout {
                    return Err(Error::HandshakeTimeout);
                }
                if now >= self.hs_next_retry && !self.hs_out.is_empty() {
                    self.hs_out_pending = true;
                    self.schedule_retry(ctx, now);
                }
                Ok(())
            }
            Phase::Established => {
                if !self.confirmed && now >= self.created + ctx.config.handshake_timeout {
                    return Err(Error::HandshakeTimeout);
                }
                if now >= self.last_recv + ctx.config.dead_peer_timeout {
                    return Err(Error::PeerTimeout);
                }
                if self.send_counter >= REJECT_AFTER_MESSAGES - 1 {
                    return Err(Error::Noise(crate::noise::NoiseError::NonceExhausted));
                }
                if now >= self.hs_next_retry && !self.hs_out.is_empty() && !self.confirmed {
                    self.hs_out_pending = true;
                    self.schedule_retry(ctx, now);
                }
                if now >= self.next_ping {
                    self.queue_ctrl(Ctrl::Ping);
                    self.next_ping = now + ctx.config.ping_interval;
                    self.quality.loss.expire(now, ctx.config.pong_timeout);
                }
                Ok(())
            }
        }
    }
}

/// Seals `pkt` as a transport record into `dst` with the session's send keys.
fn seal_with(
    keys: &mut Option<Keys>,
    counter: &mut u64,
    receiver: u32,
    pkt: &Packet<'_>,
    dst: &mut [u8],
) -> Result<usize, Error> {
    let k = keys.as_mut().ok_or(Error::NotConnected)?;
    if *counter >= REJECT_AFTER_MESSAGES {
        return Err(Error::Noise(crate::noise::NoiseError::NonceExhausted));
    }
    let header = Header::Transport { phase: k.phase, receiver, counter: *counter };
    let h = header.encode(dst)?;
    let room = dst.len().saturating_sub(h + TAG_LEN);
    let (hdr, body) = dst.split_at_mut(h);
    let n = pkt.encode(&mut body[..room])?;
    let c = k.cipher.encrypt_at(*counter, hdr, body, n)?;
    *counter += 1;
    Ok(h + c)
}

/// The 4-byte network tag: BLAKE2s("meshlink network tag" || network_id), first 4 bytes LE.
pub(crate) fn network_tag(config: &Config) -> u32 {
    let h = crate::noise::symmetric::hash(&[b"meshlink network tag", &config.network_id]);
    u32::from_le_bytes([h[0], h[1], h[2], h[3]])
}

/// The Noise prologue: "meshlink" || version || len(network_id) || network_id.
pub(crate) fn prologue(config: &Config, out: &mut [u8; 64]) -> usize {
    let id = &config.network_id;
    out[..8].copy_from_slice(b"meshlink");
    out[8] = WIRE_VERSION;
    out[9] = id.len() as u8;
    out[10..10 + id.len()].copy_from_slice(id);
    10 + id.len()
}

/// The pre-shared key used in XXpsk3: BLAKE2s("meshlink psk" || key || network_id).
pub(crate) fn derive_psk(config: &Config) -> Option<[u8; 32]> {
    config.network_key.map(|k| crate::noise::symmetric::hash(&[b"meshlink psk", &k, &config.network_id]))
}

/// The checks an Init must pass before any state is created.
pub(crate) fn check_init(config: &Config, version: u8, tag: u32) -> Result<(), (RejectCode, Error)> {
    if version != WIRE_VERSION {
        return Err((RejectCode::Version, Error::VersionMismatch { got: version, supported: WIRE_VERSION }));
    }
    if tag != network_tag(config) {
        return Err((RejectCode::Network, Error::NetworkMismatch));
    }
    Ok(())
}
