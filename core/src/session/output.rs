//! Records out (control packets, chunks of queued messages, Close), key rotation, and
//! the session timers.

use super::*;

use crate::buffers::Priority;
use crate::config::Config;
use crate::error::Error;
use crate::noise::{Role, TAG_LEN};
use crate::replay::REJECT_AFTER_MESSAGES;
use crate::time::Instant;
use crate::wire::frame::write_prefix;
use crate::wire::packet::DATA_OVERHEAD;
use crate::wire::record::TRANSPORT_HEADER_LEN;
use crate::wire::Packet;
use crate::wire::FRAME_PREFIX_LEN;
impl Session {
    pub fn wants_transmit(&self) -> bool {
        match self.phase {
            // A Reject still goes out after the session failed.
            Phase::Closed | Phase::Handshake => self.hs_out_pending,
            Phase::Established => {
                // Queued data waits while the peer's window is closed (§8.8); the Close
                // goes after it.
                let data = !self.out.is_empty() && self.flow.may_send(self.send_counter);
                self.hs_out_pending
                    || !self.ctrl.is_empty()
                    || self.flow.ctrl_pending()
                    || data
                    || (self.close_pending.is_some() && self.out.is_empty())
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
            if self.kind.is_datagram() || self.phase != Phase::Established {
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
            let n = self.next_record(ctx, buf, dst, at > 0, now)?;
            if n == 0 {
                break;
            }
            if prefix > 0 {
                write_prefix(&mut out[at..], n)?;
            }
            at += prefix + n;
            if self.kind.is_datagram() || self.phase == Phase::Closed {
                break;
            }
        }
        Ok(at)
    }

    /// Encodes the next due packet's plaintext into `dst`, in the scheduler's order
    /// (control, credit, blocked, message chunks, Close). `None`: nothing due, or it
    /// does not fit (nothing was taken then). `inner`: a second or later packet of a
    /// batched record.
    pub(super) fn next_packet(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &[u8],
        dst: &mut [u8],
        started: bool,
        inner: bool,
        now: Instant,
    ) -> Result<Option<usize>, Error> {
        // Every control packet fits 16 bytes (§8.2).
        if dst.len() < 16 {
            return Ok(None);
        }
        let pkt = if let Some(c) = self.ctrl.pop_front() {
            match c {
                Ctrl::Ping => {
                    let seq = self.ping_seq;
                    self.ping_seq = self.ping_seq.wrapping_add(1);
                    self.quality.on_ping_sent(seq, now);
                    Packet::Ping { seq }
                }
                Ctrl::Pong(seq) => Packet::Pong { seq },
                Ctrl::Error(code) => Packet::Error { code, detail: "" },
            }
        } else if let Some(limit) = self.flow.take_credit() {
            Packet::Credit { limit }
        } else if let Some(at) = self.flow.take_blocked() {
            Packet::Blocked { at }
        } else if !self.out.is_empty() {
            if !self.flow.may_send(self.send_counter) {
                return Ok(None); // the peer's window is closed: the data waits for Credit
            }
            return self.next_chunk(ctx, buf, dst, started, inner);
        } else if let Some(reason) = self.close_pending.take() {
            // Last packet of the session: everything queued went before it.
            self.phase = Phase::Closed;
            Packet::Close { reason }
        } else {
            return Ok(None);
        };
        Ok(Some(pkt.encode(dst)?))
    }

    /// Encodes the next chunk of a queued message into `dst`, if one is due: strict priority
    /// between the classes (PROTOCOL.md §9.1), FIFO inside each. `None` ends the batch.
    fn next_chunk(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &[u8],
        dst: &mut [u8],
        batch_started: bool,
        inner: bool,
    ) -> Result<Option<usize>, Error> {
        let overhead = DATA_OVERHEAD;
        // A peer's limits are validated at the handshake, but stay safe anyway.
        let Some(room) = dst.len().checked_sub(overhead).filter(|r| *r > 0) else { return Ok(None) };
        // Messages started and not finished, which the peer is assembling side by side in
        // its message region of `max_message` bytes.
        let assembling: usize = Priority::ALL
            .iter()
            .filter_map(|p| {
                let q = &self.out.class[p.index()];
                if q.sent == 0 {
                    return None;
                }
                q.front(&buf[ctx.layout.class(*p)]).map(|(_, m)| m.len())
            })
            .sum();
        let peer_max = self.peer_max_message();
        for p in Priority::ALL {
            let region = &buf[ctx.layout.class(p)];
            let q = &self.out.class[p.index()];
            let Some((kind, msg)) = q.front(region) else { continue };
            let remaining = msg.len() - q.sent;
            // Avoid slivers: only split a message across a batch boundary if a decent chunk fits.
            if room < remaining && room < 512 && batch_started {
                return Ok(None);
            }
            // Inside a batched record (§9.2) only what finishes its message joins: batching
            // never splits a message that would have fit a record of its own (on datagrams
            // a split message is at the mercy of loss and reordering).
            if room < remaining && inner {
                return Ok(None);
            }
            let take = remaining.min(room).min(ctx.config.max_chunk);
            if q.sent == 0 && take < msg.len() && assembling + msg.len() > peer_max {
                // Starting this message would need more room than the peer has beside the
                // ones it is assembling: it waits until they finish (they are never held
                // back, so it does not wait forever). One-record messages need no room.
                continue;
            }
            let q = &mut self.out.class[p.index()];
            if q.sent == 0 {
                // Ids in the order messages start, so datagram receivers can tell the newer.
                q.id = self.next_msg_id;
                self.next_msg_id = self.next_msg_id.wrapping_add(1);
            }
            let pkt = Packet::Data {
                kind,
                msg_id: q.id,
                total: msg.len() as u32,
                offset: q.sent as u32,
                bytes: &msg[q.sent..q.sent + take],
            };
            let n = pkt.encode(dst)?;
            q.sent += take;
            if q.sent >= msg.len() {
                q.pop(region);
                self.quality.on_msg_out();
            }
            return Ok(Some(n));
        }
        Ok(None)
    }

    pub(super) fn after_seal(&mut self, ctx: &mut Ctx<'_>, n: usize, now: Instant) {
        self.quality.on_bytes_out(now, n);
        let rto = self.blocked_interval();
        self.flow.on_sealed(self.send_counter, now, rto);
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

    pub fn next_timeout(&self, config: &Config) -> Instant {
        match self.phase {
            Phase::Closed => Instant::FAR_FUTURE,
            Phase::Handshake => (self.created + config.handshake_timeout).min(self.hs_next_retry),
            Phase::Established => {
                let mut t = self.next_ping.min(self.last_recv + config.dead_peer_timeout).min(self.hs_next_retry);
                t = t.min(self.flow.deadline(!self.out.is_empty()));
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
                    self.refresh_mac2(now);
                    self.hs_out_pending = true;
                    self.hs_retransmitted = true;
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
                if now >= self.hs_next_retry && !self.heard {
                    if self.hs_out.is_empty() {
                        self.queue_ctrl(Ctrl::Ping);
                    } else {
                        self.hs_out_pending = true;
                    }
                    self.schedule_retry(ctx, now);
                }
                let rto = self.blocked_interval();
                self.flow.on_timeout(!self.out.is_empty(), now, rto);
                // Periodic pings only once the peer proved it holds the keys: an unconfirmed
                // session (possibly from a replayed IK Init) sends nothing of its own.
                if now >= self.next_ping {
                    if self.confirmed {
                        self.queue_ctrl(Ctrl::Ping);
                    }
                    self.next_ping = now + ctx.config.ping_interval;
                    self.quality.loss.expire(now, ctx.config.pong_timeout);
                }
                Ok(())
            }
        }
    }
}
