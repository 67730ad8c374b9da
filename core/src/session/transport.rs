//! Records in: stream framing, record dispatch, transport decryption with the replay
//! window and key phases, packets, and message reassembly.

use super::*;

use crate::error::Error;
use crate::noise::{Pattern, Role};
use crate::reassembly::Chunk;
use crate::time::Instant;
use crate::wire::kind::KindClass;
use crate::wire::record::TRANSPORT_HEADER_LEN;
use crate::wire::FRAME_PREFIX_LEN;
use crate::wire::{ErrorCode, Header, Packet, RejectCode};

/// One received chunk, as `on_data` takes it; `at` is where `bytes` sit in the slot buffer.
pub(super) struct DataChunk<'a> {
    kind: u8,
    id: u32,
    total: usize,
    offset: usize,
    bytes: &'a [u8],
    at: usize,
}

impl Session {
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
            // A batched record that stopped at a message the application has since taken
            // goes on first: the next frame would overwrite it (§9.2).
            self.resume_batch(ctx, buf, now)?;
            if self.msg_ready.is_some() || self.batch_rx.is_some() {
                break;
            }
            // Until the handshake is done, nothing larger than a handshake record is owed:
            // a bigger length prefix is refused before its body is read.
            let max = match self.phase {
                Phase::Handshake => ctx.config.max_frame.min(super::HANDSHAKE_RECORD_MAX),
                _ => ctx.config.max_frame,
            };
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
            Header::Init { version, min_version, pattern, sender, network_tag: tag } => {
                let theirs = crate::wire::VersionRange { min: min_version, max: version };
                if let Err((code, e)) = check_init(ctx.config, theirs, tag) {
                    if self.role == Role::Responder && self.hs.is_none() && self.phase == Phase::Handshake {
                        self.queue_reject(ctx.config.versions(), code, sender);
                    }
                    return Err(e);
                }
                // Bytes received from a not yet verified address, for the 3x budget.
                self.amp_in = self.amp_in.saturating_add(range.len());
                self.on_init(ctx, buf, body, pattern, sender, theirs, now)
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
            Header::Cookie { receiver, .. } => {
                let record = buf.get(range).ok_or(Error::UnexpectedRecord)?;
                self.on_cookie(ctx, record, receiver, now)
            }
            Header::Reject { code, version, min_version, receiver } => {
                // Only a handshake in progress (or an unconfirmed one: Final can be refused)
                // listens to a Reject; it is unauthenticated, so it is a hint, bound to our index.
                if receiver != self.local_index
                    || self.role != Role::Initiator
                    || self.confirmed
                    || self.phase == Phase::Closed
                {
                    return Err(Error::UnexpectedRecord);
                }
                // IK failed at the responder: the key we expected is not the one it holds,
                // or it is a build without IK (PROTOCOL.md §3.1). Fall back to XX once, so
                // the responder's real key is learnt and reported as `PeerKeyMismatch`
                // (F04) instead of a bare refusal.
                let in_ik = self.hs.as_ref().is_some_and(|h| h.pattern().is_ik());
                if code == RejectCode::Auth && in_ik && self.phase == Phase::Handshake {
                    self.start_handshake(ctx, Pattern::Xx, now)?;
                    return Ok(());
                }
                Err(match code {
                    RejectCode::Network => Error::NetworkMismatch,
                    RejectCode::Version => Error::VersionMismatch {
                        ours: ctx.config.versions(),
                        theirs: crate::wire::VersionRange { min: min_version, max: version },
                    },
                    RejectCode::Pattern => Error::PatternMismatch,
                    code => Error::Rejected(code),
                })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_transport(
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
            // The peer rotates every rekey_after_time while it sends (and it pings at least
            // every ping_interval), so a key older than reject_after_time is refused.
            if now.saturating_since(recv.since) > ctx.config.reject_after_time {
                return Err(Error::KeyExpired);
            }
            recv.cipher.decrypt_at(counter, header, data, len)?
        } else if counter < self.recv_phase_start {
            // Late records under the previous key, for a grace period after the rotation.
            let grace = ctx.config.reject_after_time.saturating_sub(ctx.config.rekey_after_time);
            if now.saturating_since(recv.since) > grace {
                return Err(Error::KeyExpired);
            }
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
        // Only data earns credit back (§8.8); the kind byte leads the plaintext.
        let first = buf.get(body.start).copied().filter(|_| plain_len > 0);
        // A batch (§9.2) is read only if we advertised it; else its kind is unknown here.
        let batch = first == Some(super::batch::BATCH) && ctx.config.max_batch > 1;
        let is_data = if batch {
            super::batch::has_message(&buf[body.start + 1..body.start + plain_len])
        } else {
            first.is_some_and(crate::wire::kind::is_message)
        };
        self.flow.on_record(counter, is_data);
        self.recv_next = counter.saturating_add(1);
        self.last_recv = now;
        self.quality.on_bytes_in(now, len + TRANSPORT_HEADER_LEN);
        if !self.heard {
            // The peer's first record: it holds the keys, so the handshake retransmissions
            // (Final, or the IK initiator's confirming Ping) stop.
            self.heard = true;
            self.hs_out.clear();
            self.hs_out_pending = false;
            self.hs_next_retry = Instant::FAR_FUTURE;
        }
        if !self.confirmed {
            self.confirmed = true;
            if self.ping_seq == 0 && !self.ctrl.iter().any(|c| *c == Ctrl::Ping) {
                self.queue_ctrl(Ctrl::Ping);
            }
        }
        let start = body.start;
        let r = if batch {
            self.on_batch(ctx, buf, start + 1..start + plain_len, now)
        } else {
            self.on_packet(ctx, buf, start..start + plain_len, now)
        };
        // The record was handed on unless its message waits for `poll_event` (§8.8).
        self.on_consumed();
        r
    }

    pub(super) fn on_packet(
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
        let plain = head.get(range).ok_or(Error::UnexpectedRecord)?;
        if plain.is_empty() {
            // An authenticated record with no kind byte (PROTOCOL.md §8.3): like a packet of
            // a kind we do not know, it is answered (Malformed), dropped and counted, and the
            // session goes on, on both transports: the record authenticated, so a stream is
            // still in sync and nothing is gained by closing.
            self.queue_ctrl(Ctrl::Error(ErrorCode::Malformed));
            self.dropped += 1;
            return Ok(());
        }
        let pkt = match Packet::decode(plain) {
            Ok(p) => p,
            Err(e) => {
                // Tell the peer (F29), but never answer an Error with an Error: two nodes
                // must not be able to loop.
                if plain.first() != Some(&(crate::wire::PacketKind::Error as u8)) {
                    self.queue_ctrl(Ctrl::Error(ErrorCode::Malformed));
                }
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
            Packet::Data { kind, msg_id, total, offset, bytes } => {
                // Where `bytes` sit in the slot buffer: a message that fits one record is
                // delivered from there, without a copy.
                let at = bytes.as_ptr() as usize - head.as_ptr() as usize;
                let chunk = DataChunk { kind, id: msg_id, total: total as usize, offset: offset as usize, bytes, at };
                if let Some(range) = self.on_data(ctx, tail, split, chunk)? {
                    self.on_message(ctx, buf, kind, range)?;
                }
            }
            Packet::Error { code, .. } => {
                self.remote_error = Some(code);
            }
            Packet::Credit { limit } => {
                if !self.flow.is_on() {
                    self.dropped += 1; // not negotiated: meaningless, ignored
                }
                self.flow.on_credit(limit, self.send_counter);
            }
            Packet::Blocked { at } => {
                if !self.flow.is_on() {
                    self.dropped += 1;
                }
                self.flow.on_blocked(at);
            }
            Packet::Close { reason } => {
                self.phase = Phase::Closed;
                self.close_reason = Some(DisconnectReason::Remote(reason));
            }
            // Every kind this node does not implement, in any range (the application range
            // is always implemented: it decodes as Data): the typed reply (F29).
            Packet::Unknown { .. } => self.refuse_kind(),
        }
        Ok(())
    }

    fn refuse_kind(&mut self) {
        self.queue_ctrl(Ctrl::Error(ErrorCode::UnknownKind));
        self.dropped += 1;
    }

    /// A complete message of `kind` at `buf[range]`, routed by the kind's range
    /// (`wire::kind`): Data and application kinds go to the application through
    /// `poll_event`, messaging kinds to [`Self::on_messaging`].
    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        kind: u8,
        range: core::ops::Range<usize>,
    ) -> Result<(), Error> {
        self.quality.on_msg_in();
        match crate::wire::kind::class(kind) {
            KindClass::Messaging => self.on_messaging(ctx, buf, kind, range),
            KindClass::Core | KindClass::Application | KindClass::Reserved => {
                self.msg_ready = Some(range);
                self.msg_kind = kind;
                Ok(())
            }
        }
    }

    /// The messaging layer's one hook: each complete message of an implemented messaging
    /// kind (`wire::kind::MESSAGING`), with its bytes at `buf[range]`. A new messaging kind
    /// adds its constant in `wire/kind.rs` and its arm here, nothing else: queueing,
    /// priority, chunking and reassembly are shared by every message kind.
    fn on_messaging(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _buf: &mut [u8],
        kind: u8,
        _range: core::ops::Range<usize>,
    ) -> Result<(), Error> {
        match kind {
            // Request/response and pub/sub (feature `messaging`): handed up like an application
            // message; the `messaging::Messenger` wrapping the node takes it from
            // `poll_event` (PROTOCOL.md §15).
            #[cfg(feature = "messaging")]
            crate::wire::kind::REQUEST..=crate::wire::kind::CANCEL
            | crate::wire::kind::PUBLICATION..=crate::wire::kind::SLOW_CONSUMER => {
                self.msg_ready = Some(_range);
                self.msg_kind = kind;
            }
            // A kind this build does not implement: the decoder never yields one; if the
            // list and this match disagree, the peer still gets the typed reply.
            _ => self.refuse_kind(),
        }
        Ok(())
    }

    /// Takes one chunk of a message. `region` is where chunks are assembled; it starts at
    /// `region_at` in the slot buffer. Returns where a message it completed lies in the
    /// slot buffer.
    pub(super) fn on_data(
        &mut self,
        ctx: &Ctx<'_>,
        region: &mut [u8],
        region_at: usize,
        chunk: DataChunk<'_>,
    ) -> Result<Option<core::ops::Range<usize>>, Error> {
        let DataChunk { kind, id, total, offset, bytes, at: bytes_at } = chunk;
        if total > ctx.config.max_message {
            // Larger than we accept: tell the sender once per message (F29), drop every
            // chunk of it, and keep the session: oversize is never a disconnect.
            if self.skip_msg != Some(id) {
                self.skip_msg = Some(id);
                self.queue_ctrl(Ctrl::Error(ErrorCode::TooLarge));
                self.dropped += 1;
            }
            return Ok(None);
        }
        if self.msg_ready.is_some() {
            // Datagram mode only: the adapter did not drain events. Drop, counted.
            self.dropped += 1;
            return Err(Error::WouldBlock);
        }
        let ordered = self.kind == TransportKind::Stream;
        if offset == 0 && bytes.len() == total && !self.reasm.assembling(id) {
            // A whole message in one record: it leaves any reassembly in progress alone
            // (on a stream, a message of a higher class overtaking a chunked one).
            return Ok(Some(bytes_at..bytes_at + total));
        }
        match self.reasm.on_chunk(region, kind, id, total, offset, bytes, ordered) {
            Chunk::Stored => Ok(None),
            Chunk::Complete(r) => Ok(Some(region_at + r.start..region_at + r.end)),
            Chunk::Dropped => {
                self.dropped += 1;
                Ok(None)
            }
            Chunk::OutOfOrder => Err(Error::Wire(crate::wire::WireError::MalformedPacket)),
        }
    }
}
