//! The handshake half of a session: writing and answering Init, Resp and Final,
//! retransmission on datagrams, the anti-amplification budget, and the switch to
//! transport keys.

use super::*;
use core::time::Duration;

use rand_core::RngCore;

use crate::config::Config;
use crate::error::Error;
use crate::identity::PeerId;
use crate::noise::{HandshakeParams, HandshakeState, Pattern, Role, TAG_LEN};
use crate::time::Instant;
use crate::wire::record::INIT_HEADER_LEN;
use crate::wire::{Header, Hello, RejectCode, VersionRange, HELLO_MAX_LEN};
impl Session {
    /// Writes a fresh Init (new ephemeral) for `pattern` and schedules its retransmission.
    pub(super) fn start_handshake(&mut self, ctx: &mut Ctx<'_>, pattern: Pattern, now: Instant) -> Result<(), Error> {
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
        let ours = ctx.config.versions();
        let header = Header::Init {
            version: ours.max,
            min_version: ours.min,
            pattern: pattern_id(pattern),
            sender: local_index,
            network_tag: network_tag(ctx.config),
        };
        // IK sends our Hello (encrypted). XX's message 1 is cleartext, so it carries no
        // Hello. On datagrams the Init is padded with zeros after the payload to
        // INIT_MIN_DATAGRAM, so that the responder's reply fits its 3x anti-amplification
        // budget whatever its Hello.
        let mut payload = [0u8; HELLO_MAX_LEN];
        let mut len = 0;
        if pattern.is_ik() {
            // No version is agreed yet: our Hello says the highest we speak.
            len = hello_with_version(ctx.hello, ours.max, &mut payload);
        }
        if self.kind.is_datagram() {
            let overhead = hs.next_message_len(0)?;
            len = len.max(INIT_MIN_DATAGRAM.saturating_sub(INIT_HEADER_LEN + overhead));
        }
        self.write_handshake(&mut hs, header, &payload[..len])?;
        if self.kind == TransportKind::Datagram {
            // The cookie tail (§5.12): mac1 over the Init, then mac2 (zeros without a
            // fresh cookie). They are not part of the Noise message.
            let n = self.hs_out.len() + crate::cookie::MACS_LEN;
            self.hs_out.resize(n, 0).map_err(|_| Error::BufferTooSmall { required: n })?;
            let key = crate::cookie::mac1_key(&ctx.config.network_id);
            crate::cookie::seal_init(&key, self.cookie.as_ref().and_then(|j| j.fresh(now)), &mut self.hs_out);
        }
        self.cookie_resent = false;
        self.hs = Some(hs);
        self.hs_sent_at = now;
        self.hs_retransmitted = false;
        self.hs_retry_delay = ctx.config.handshake_retry;
        self.schedule_retry(ctx, now);
        Ok(())
    }

    /// Whether the pending handshake record is our datagram Init (with its mac tail).
    fn holds_datagram_init(&self) -> bool {
        self.kind == TransportKind::Datagram
            && self.role == Role::Initiator
            && self.phase == Phase::Handshake
            && self.hs_out.first() == Some(&(crate::wire::RecordType::Init as u8))
            && self.hs_out.len() >= INIT_MIN_DATAGRAM + crate::cookie::MACS_LEN
    }

    /// Before a timed retransmission of the Init: mac2 under the cookie if it is still
    /// fresh, else zeros again (the responder may have rotated its secret).
    pub(super) fn refresh_mac2(&mut self, now: Instant) {
        if self.holds_datagram_init() {
            crate::cookie::set_mac2(self.cookie.as_ref().and_then(|j| j.fresh(now)), &mut self.hs_out);
        }
        self.cookie_resent = false;
    }

    /// A Cookie reply (§5.12) to our pending datagram Init: keep the cookie and send the
    /// Init again at once with mac2 (once per timed send; later cookies wait for the timer).
    pub(super) fn on_cookie(&mut self, ctx: &Ctx<'_>, record: &[u8], receiver: u32, now: Instant) -> Result<(), Error> {
        if receiver != self.local_index || !self.holds_datagram_init() {
            return Err(Error::UnexpectedRecord);
        }
        let key = crate::cookie::reply_key(&ctx.config.network_id);
        let mac1 = *crate::cookie::mac1_of(&self.hs_out);
        let cookie = crate::cookie::open_reply(&key, record, &mac1)
            .map_err(|_| Error::Noise(crate::noise::NoiseError::Decrypt))?;
        let jar = crate::cookie::Jar::new(cookie, now);
        crate::cookie::set_mac2(jar.fresh(now), &mut self.hs_out);
        self.cookie = Some(jar);
        if !self.cookie_resent {
            self.cookie_resent = true;
            self.hs_out_pending = true;
            // The exchange is no longer one round trip: no RTT sample (Karn's rule).
            self.hs_retransmitted = true;
        }
        Ok(())
    }

    pub(super) fn write_handshake(
        &mut self,
        hs: &mut HandshakeState,
        header: Header,
        payload: &[u8],
    ) -> Result<(), Error> {
        let mut out = [0u8; HANDSHAKE_RECORD_MAX];
        let h = header.encode(&mut out)?;
        let n = hs.write_message(payload, &mut out[h..])?;
        self.hs_out.clear();
        self.hs_out.extend_from_slice(&out[..h + n]).map_err(|_| Error::BufferTooSmall { required: h + n })?;
        self.hs_out_pending = true;
        Ok(())
    }

    pub(super) fn schedule_retry(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if !self.kind.is_datagram() {
            return;
        }
        let jitter_max = crate::time::duration_micros(ctx.config.handshake_jitter);
        let jitter = if jitter_max == 0 { 0 } else { ctx.rng.next_u64() % (jitter_max + 1) };
        self.hs_next_retry = now + self.hs_retry_delay + Duration::from_micros(jitter);
        self.hs_retry_delay = (self.hs_retry_delay * 2).min(ctx.config.handshake_retry_max);
    }

    /// A datagram responder that has not yet verified the peer's address may send at
    /// most `AMPLIFICATION_FACTOR` times what it received from it.
    pub(super) fn over_amplification_budget(&self) -> bool {
        self.kind.is_datagram()
            && self.role == Role::Responder
            && !self.confirmed
            && self.amp_out.saturating_add(self.hs_out.len()) > self.amp_in.saturating_mul(AMPLIFICATION_FACTOR)
    }

    /// `theirs` is the initiator's version range, already checked by [`check_init`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_init(
        &mut self,
        ctx: &mut Ctx<'_>,
        buf: &mut [u8],
        body: core::ops::Range<usize>,
        pattern: u8,
        sender: u32,
        theirs: VersionRange,
        now: Instant,
    ) -> Result<(), Error> {
        if self.role != Role::Responder {
            return Err(Error::UnexpectedRecord);
        }
        // A retransmitted Init (our Resp was lost): answer with the same Resp, no new
        // crypto. With IK we may already hold keys, still unconfirmed.
        let resend = self.hs.is_some() || (self.phase == Phase::Established && !self.confirmed);
        if resend && sender == self.remote_index && !self.hs_out.is_empty() {
            // The initiator is alive: a retransmitted Init keeps the handshake from timing
            // out as a dead peer (the handshake deadline still bounds it).
            self.last_recv = now;
            self.hs_out_pending = true;
            self.hs_retransmitted = true;
            return Ok(());
        }
        if self.hs.is_some() || self.phase != Phase::Handshake {
            return Err(Error::UnexpectedRecord);
        }
        let ours = ctx.config.versions();
        let Some(pattern) = pattern_from_id(pattern) else {
            // A pattern the specification defines but this build leaves out (features
            // `ik`, `psk`) is refused like any known pattern this node does not accept.
            // IK left out (PROTOCOL.md §3.1): this node cannot read message 1, exactly as
            // an IK responder without the expected key, so it answers the same way:
            // Reject(Auth), which every IK initiator answers with its XX fallback Init
            // (a stream stays open for it). Any other left-out pattern: Reject(Pattern).
            if pattern == PATTERN_ID_IK {
                self.queue_reject(ours, RejectCode::Auth, sender);
                return if self.kind.is_datagram() { Err(Error::PatternMismatch) } else { Ok(()) };
            }
            if pattern < PATTERN_IDS {
                self.queue_reject(ours, RejectCode::Pattern, sender);
                return Err(Error::PatternMismatch);
            }
            return Err(crate::wire::WireError::UnknownPattern(pattern).into());
        };
        // With a network key only XXpsk3; without one XX or IK.
        let acceptable = pattern.is_psk() == ctx.psk.is_some();
        if !acceptable {
            self.queue_reject(ours, RejectCode::Pattern, sender);
            return Err(Error::PatternMismatch);
        }
        let version = ours.highest_common(theirs).ok_or(Error::VersionMismatch { ours, theirs })?;
        // The prologue binds the range the initiator announced (as we received it), so a
        // range altered on the path fails the handshake: no silent downgrade.
        let mut pro = [0u8; 64];
        let pro_len = prologue_for(&ctx.config.network_id, theirs, &mut pro);
        let mut hs = HandshakeState::new(
            HandshakeParams {
                pattern,
                role: Role::Responder,
                prologue: &pro[..pro_len],
                local_static: *ctx.keypair.secret_bytes(),
                remote_static: None,
                psk: ctx.psk,
            },
            ctx.rng,
        )?;
        let mut payload = [0u8; HELLO_MAX_LEN + TAG_LEN];
        let n = match hs.read_message(&buf[body], &mut payload) {
            Ok(n) => n,
            Err(crate::noise::NoiseError::Decrypt) if pattern.is_ik() => {
                // Encrypted to a key we do not hold: tell the initiator, which falls back
                // to XX. A stream stays open for that second Init; a datagram slot ends.
                self.queue_reject(ours, RejectCode::Auth, sender);
                return match self.kind {
                    TransportKind::Stream => Ok(()),
                    TransportKind::Datagram => Err(crate::noise::NoiseError::Decrypt.into()),
                };
            }
            Err(e) => return Err(e.into()),
        };
        self.remote_index = sender;
        if pattern.is_ik() {
            self.hello = Some(checked_hello(Hello::decode_padded(&payload[..n])).map_err(|e| self.fail_with(e))?);
        }
        // Our Hello, authenticated by message 2, tells the initiator the chosen version.
        self.version = version;
        let mut hello = [0u8; HELLO_MAX_LEN];
        let n = hello_with_version(ctx.hello, version, &mut hello);
        self.write_handshake(&mut hs, Header::Resp { sender: self.local_index, receiver: sender }, &hello[..n])?;
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

    pub(super) fn on_resp(
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
        let Some(current) = self.hs.as_ref() else {
            // Already established: a duplicate Resp (our Final was lost): resend it.
            if self.phase == Phase::Established && sender == self.remote_index && !self.hs_out.is_empty() {
                self.hs_out_pending = true;
                return Ok(());
            }
            return Err(Error::UnexpectedRecord);
        };
        // Read into a copy: a forged or corrupted Resp (a legitimate one cannot fail here)
        // is dropped and leaves our handshake untouched for the real one.
        let mut hs = current.clone();
        let mut payload = [0u8; HELLO_MAX_LEN + TAG_LEN];
        let n = hs.read_message(&buf[body], &mut payload)?;
        self.hs = None;
        // Authenticated from here on: any error ends the session.
        if !self.hs_retransmitted {
            // Karn's rule: a retransmitted exchange gives no RTT sample.
            self.quality.on_rtt_sample(now.saturating_since(self.hs_sent_at));
        }
        self.remote_index = sender;
        let hello = checked_hello(Hello::decode(&payload[..n])).map_err(|e| self.fail_with(e))?;
        // The responder's Hello carries the version it chose, authenticated by message 2.
        let ours = ctx.config.versions();
        if !ours.contains(hello.version) {
            return Err(self.fail_with(Error::VersionMismatch { ours, theirs: VersionRange::only(hello.version) }));
        }
        self.version = hello.version;
        self.hello = Some(hello);
        let rs = PeerId(hs.remote_static().ok_or(Error::UnexpectedRecord)?);
        if let Some(expected) = self.expected {
            if expected != rs {
                return Err(self.fail_with(Error::PeerKeyMismatch { expected, got: rs }));
            }
        }
        let ik = hs.is_finished();
        if !ik {
            let mut hello = [0u8; HELLO_MAX_LEN];
            let n = hello_with_version(ctx.hello, self.version, &mut hello);
            self.write_handshake(&mut hs, Header::Final { receiver: sender }, &hello[..n])?;
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

    pub(super) fn on_final(
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
            self.queue_reject(ctx.config.versions(), RejectCode::Auth, self.remote_index);
            Error::from(e)
        })?;
        if !self.hs_retransmitted {
            self.quality.on_rtt_sample(now.saturating_since(self.hs_sent_at));
        }
        self.hello = Some(checked_hello(Hello::decode(&payload[..n])).map_err(|e| self.fail_with(e))?);
        self.hs_out.clear();
        self.hs_out_pending = false;
        self.establish(ctx, hs, now)?;
        // Message 3 authenticates the initiator against our fresh ephemeral.
        self.confirmed = true;
        Ok(())
    }

    /// Queues a Reject carrying `ours`, the range this node speaks.
    pub(super) fn queue_reject(&mut self, ours: VersionRange, code: RejectCode, receiver: u32) {
        let mut out = [0u8; 16];
        let reject = Header::Reject { code, version: ours.max, min_version: ours.min, receiver };
        if let Ok(n) = reject.encode(&mut out) {
            self.hs_out.clear();
            let _ = self.hs_out.extend_from_slice(&out[..n]);
            self.hs_out_pending = true;
        }
    }

    pub(super) fn establish(&mut self, ctx: &mut Ctx<'_>, hs: HandshakeState, now: Instant) -> Result<(), Error> {
        let pattern = hs.pattern();
        let t = hs.into_transport()?;
        // Kept for channel binding (Noise §11.2): both ends hold the same 32 bytes.
        self.handshake_hash = Some(t.handshake_hash);
        self.peer = Some(PeerId(t.remote_static));
        self.send = Some(Keys { cipher: t.send, phase: 0, since: now });
        self.recv = Some(Keys { cipher: t.recv, phase: 0, since: now });
        self.phase = Phase::Established;
        self.negotiate_flow(ctx);
        self.connected_at = Some(now);
        self.last_recv = now;
        // The first transport record confirms the keys to the peer, so whoever the peer
        // waits for sends a Ping at once (it also gives a first RTT figure): the XX
        // responder (its Final has arrived) and the IK initiator (the IK responder waits
        // for it). The others ping once confirmed, so no record can overtake the
        // handshake on a reordering path and be refused.
        let peer_waits = match self.role {
            Role::Responder => !pattern.is_ik(),
            Role::Initiator => pattern.is_ik(),
        };
        if peer_waits {
            self.queue_ctrl(Ctrl::Ping);
        }
        self.next_ping = now + ctx.config.ping_interval;
        // On datagrams the initiator retransmits until the responder's first record: the
        // Final (XX), or for IK the confirming Ping.
        if self.role == Role::Initiator && self.kind.is_datagram() {
            self.schedule_retry(ctx, now);
        } else {
            self.hs_next_retry = Instant::FAR_FUTURE;
        }
        Ok(())
    }
}

/// Copies our encoded Hello into `out` with its version field set to `v`; returns the length.
/// `version` is the Hello's first field, a postcard `u8`: one raw byte at offset 0.
fn hello_with_version(hello: &[u8], v: u8, out: &mut [u8; HELLO_MAX_LEN]) -> usize {
    let n = hello.len().min(HELLO_MAX_LEN);
    out[..n].copy_from_slice(&hello[..n]);
    if let Some(b) = out.get_mut(0) {
        *b = v;
    }
    n
}

/// The 4-byte network tag: BLAKE2s("meshlink network tag" || network_id), first 4 bytes LE.
pub(crate) fn network_tag(config: &Config) -> u32 {
    let h = crate::noise::symmetric::hash(&[b"meshlink network tag", &config.network_id]);
    u32::from_le_bytes([h[0], h[1], h[2], h[3]])
}

/// The Noise prologue of an initiator with our configuration (see [`prologue_for`]).
pub(crate) fn prologue(config: &Config, out: &mut [u8; 64]) -> usize {
    prologue_for(&config.network_id, config.versions(), out)
}

/// The Noise prologue for an initiation announcing `range`:
/// "meshlink" || max_version || min_version || len(network_id) || network_id.
pub(crate) fn prologue_for(id: &[u8], range: VersionRange, out: &mut [u8; 64]) -> usize {
    let id = &id[..id.len().min(crate::config::NETWORK_ID_MAX)];
    out[..8].copy_from_slice(b"meshlink");
    out[8] = range.max;
    out[9] = range.min;
    out[10] = id.len() as u8;
    out[11..11 + id.len()].copy_from_slice(id);
    11 + id.len()
}

/// The pre-shared key used in XXpsk3: BLAKE2s("meshlink psk" || key || network_id).
pub(crate) fn derive_psk(config: &Config) -> Option<[u8; 32]> {
    #[cfg(feature = "psk")]
    return config.network_key.map(|k| crate::noise::symmetric::hash(&[b"meshlink psk", &k, &config.network_id]));
    // Without `psk` there is no network key, so no handshake ever mixes one in.
    #[cfg(not(feature = "psk"))]
    {
        let _ = config;
        None
    }
}

/// The checks an Init must pass before any state is created: a version both speak (the
/// initiator announced `theirs`), then the network tag. Returns the version to use.
pub(crate) fn check_init(config: &Config, theirs: VersionRange, tag: u32) -> Result<u8, (RejectCode, Error)> {
    let ours = config.versions();
    let Some(version) = ours.highest_common(theirs) else {
        return Err((RejectCode::Version, Error::VersionMismatch { ours, theirs }));
    };
    if tag != network_tag(config) {
        return Err((RejectCode::Network, Error::NetworkMismatch));
    }
    Ok(version)
}

/// A peer's Hello, refused if its limits are unusable (we could not send it anything).
fn checked_hello(h: Result<Hello, crate::wire::WireError>) -> Result<Hello, Error> {
    let h = h?;
    if !h.limits_valid() {
        return Err(crate::wire::WireError::InvalidLimits.into());
    }
    Ok(h)
}

impl Session {
    /// Ends the session for an error found after authentication (the peer itself is
    /// wrong, not a stray packet), and hands the error back.
    pub(super) fn fail_with(&mut self, e: Error) -> Error {
        self.phase = Phase::Closed;
        self.close_reason.get_or_insert(DisconnectReason::Error(e));
        e
    }
}
