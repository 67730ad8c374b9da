//! Batching (PROTOCOL.md §9.2, F35): several packets sealed into one transport record, so
//! small messages do not each pay the AEAD's per-record cost. Modelled on QUIC's several
//! frames per packet (RFC 9000 §12.4); unlike QUIC the inner packets are length-prefixed
//! (QUIC frames are self-delimiting), so the packet decoder stays as it is.
//!
//! Plaintext of a batched record: `0x09 | (len varint | packet)+`. The receiver handles
//! each inner packet in order with the single-packet rules, and stops mid-record while a
//! message it produced waits for `poll_event`; [`Session::resume_batch`] goes on from
//! there once the application took it.

use super::*;

use crate::noise::TAG_LEN;
use crate::replay::REJECT_AFTER_MESSAGES;
use crate::time::Instant;
use crate::wire::{ErrorCode, Header, WireError};

/// Hello extension type of batching: one byte, the most packets per record the sender of
/// the Hello accepts (2..=255). Absent, malformed or below 2: the peer gets one packet per
/// record.
pub const EXT_BATCH: u8 = 0x03;
/// The kind byte that opens a batched record's plaintext (core range, §8.2).
pub const BATCH: u8 = crate::wire::kind::BATCH;
/// Bytes reserved in front of each inner packet for its length: a record is shorter than
/// 2^21 bytes, so its varint takes at most 3.
const LEN_RESERVE: usize = 3;
/// The smallest room worth trying one more packet in (every control packet fits 16 bytes).
const MIN_PACKET: usize = 16;

/// The packets per record this node sends to a peer: the smaller of both limits, 1 (off)
/// unless both sides advertised batching.
pub fn negotiate(ours: usize, theirs: Option<&[u8]>) -> u8 {
    let theirs = match theirs {
        Some(&[v]) if v >= 2 => v,
        _ => return 1,
    };
    if ours < 2 {
        return 1;
    }
    theirs.min(u8::try_from(ours).unwrap_or(u8::MAX))
}

/// Writes `n` as a LEB128 varint (postcard's, §8.1) into `out`; returns its length.
fn put_len(out: &mut [u8], mut n: usize) -> usize {
    let mut i = 0;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out[i] = b;
            return i + 1;
        }
        out[i] = b | 0x80;
        i += 1;
    }
}

fn len_of(n: usize) -> usize {
    match n {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        _ => 3,
    }
}

/// Reads an inner packet's length: at most [`LEN_RESERVE`] bytes, no longer than `rest`
/// after it. Returns (length, prefix bytes).
fn get_len(b: &[u8]) -> Result<(usize, usize), WireError> {
    let mut n = 0usize;
    for i in 0..LEN_RESERVE {
        let byte = *b.get(i).ok_or(WireError::MalformedPacket)?;
        n |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if n > b.len() - (i + 1) {
                return Err(WireError::MalformedPacket); // never read past the record
            }
            return Ok((n, i + 1));
        }
    }
    Err(WireError::MalformedPacket)
}

/// Whether a batched plaintext (after its kind byte) holds a message chunk: such a record
/// earns credit back like a Data record (§8.8). Stops at the first malformed prefix.
pub fn has_message(mut b: &[u8]) -> bool {
    while let Ok((n, p)) = get_len(b) {
        if b.get(p).is_some_and(|k| n > 0 && crate::wire::kind::is_message(*k)) {
            return true;
        }
        b = &b[p + n..];
    }
    false
}

impl Session {
    /// Seals the next record into `dst`: the next due packet, and when batching is on
    /// the packets due after it while they fit, in the scheduler's order. Returns 0 if
    /// nothing was due.
    pub(super) fn next_record(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &[u8],
        dst: &mut [u8],
        started: bool,
        now: Instant,
    ) -> Result<usize, Error> {
        let k = self.send.as_ref().ok_or(Error::NotConnected)?;
        if self.send_counter >= REJECT_AFTER_MESSAGES {
            return Err(Error::Noise(crate::noise::NoiseError::NonceExhausted));
        }
        let header = Header::Transport { phase: k.phase, receiver: self.remote_index, counter: self.send_counter };
        let h = header.encode(dst)?;
        let room = dst.len().saturating_sub(h + TAG_LEN);
        let (hdr, rest) = dst.split_at_mut(h);
        let body = &mut rest[..room];
        let Some(first) = self.next_packet(ctx, buf, body, started, false, now)? else { return Ok(0) };
        let mut len = first;
        if self.batch_tx > 1 {
            // The first packet stays at 0 until a second one comes: then it moves behind
            // the kind byte and its length, and the record becomes a batch.
            let s = 1 + len_of(first);
            let mut w = s + first;
            let mut count = 1;
            while count < usize::from(self.batch_tx) && self.phase != Phase::Closed {
                let at = w + LEN_RESERVE;
                if at + MIN_PACKET > room {
                    break;
                }
                let Some(n) = self.next_packet(ctx, buf, &mut body[at..], true, true, now)? else { break };
                if count == 1 {
                    body.copy_within(0..first, s);
                    body[0] = BATCH;
                    put_len(&mut body[1..s], first);
                }
                let v = put_len(&mut body[w..at], n);
                if v < LEN_RESERVE {
                    body.copy_within(at..at + n, w + v);
                }
                w += v + n;
                count += 1;
            }
            if count > 1 {
                len = w;
            }
        }
        let k = self.send.as_mut().ok_or(Error::NotConnected)?;
        let c = k.cipher.encrypt_at(self.send_counter, hdr, rest, len)?;
        self.send_counter += 1;
        self.after_seal(ctx, h + c, now);
        Ok(h + c)
    }

    /// Whether a received batched record is not finished yet.
    pub fn batch_pending(&self) -> bool {
        self.batch_rx.is_some()
    }

    /// Starts on a received batched record whose inner packets are at `buf[range]`.
    pub(super) fn on_batch(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        range: core::ops::Range<usize>,
        now: Instant,
    ) -> Result<(), Error> {
        self.batch_rx = Some(range);
        self.batch_n = 0;
        self.run_batch(ctx, buf, now)
    }

    /// Goes on with a batched record that stopped at a message for `poll_event`, once the
    /// application took it. The node calls this before anything else may overwrite the
    /// record (the next input, or the next `poll_event`/peek after the lent message).
    pub fn resume_batch(&mut self, ctx: &mut Ctx<'_>, buf: &mut [u8], now: Instant) -> Result<(), Error> {
        if self.batch_rx.is_none() || self.msg_ready.is_some() {
            return Ok(());
        }
        let r = self.run_batch(ctx, buf, now);
        self.on_consumed();
        r
    }

    fn run_batch(&mut self, ctx: &mut Ctx<'_>, buf: &mut [u8], now: Instant) -> Result<(), Error> {
        while let Some(r) = self.batch_rx.clone() {
            if r.is_empty() || self.phase == Phase::Closed {
                self.batch_rx = None;
                break;
            }
            if self.msg_ready.is_some() {
                break; // back-pressure: the rest waits for `resume_batch`
            }
            let b = buf.get(r.clone()).ok_or(Error::UnexpectedRecord)?;
            self.batch_n = self.batch_n.saturating_add(1);
            let inner = match get_len(b) {
                Ok((n, p)) if usize::from(self.batch_n) <= ctx.config.max_batch && b.get(p) != Some(&BATCH) => {
                    r.start + p..r.start + p + n
                }
                _ => {
                    // A length past the record, too many packets, or a batch in a batch:
                    // the rest of the record is dropped, as a malformed packet is.
                    self.batch_rx = None;
                    self.queue_ctrl(Ctrl::Error(ErrorCode::Malformed));
                    return Err(WireError::MalformedPacket.into());
                }
            };
            self.batch_rx = Some(inner.end..r.end);
            if let Err(e) = self.on_packet(ctx, buf, inner, now) {
                self.batch_rx = None;
                return Err(e);
            }
        }
        Ok(())
    }
}
