//! The Noise handshake state machine for the XX, XXpsk3 and IK patterns over
//! X25519, ChaChaPoly and BLAKE2s (Noise spec rev. 34 §5.3, §7, §9).
//!
//! Design rules:
//! - No allocation: messages are written to and read from caller buffers.
//! - Every Diffie-Hellman result is checked with `was_contributory()`, so the seven
//!   low-order points and the all-zero key are refused wherever they appear (`e` or `s`).
//! - After any error the state is poisoned: every later call fails with
//!   [`NoiseError::Poisoned`]. No half-valid state survives a failure (as in clatter).
//! - Ephemeral keys come from the caller's CSPRNG, never from a hidden source.

use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use super::cipher::{CipherState, TAG_LEN};
use super::symmetric::{SymmetricState, HASH_LEN};
use super::NoiseError;

/// Length of an X25519 public key on the wire.
pub const DH_LEN: usize = 32;
/// Length of a pre-shared key.
pub const PSK_LEN: usize = 32;

/// The handshake patterns meshlink implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pattern {
    /// Mutual authentication, identities exchanged in the handshake (3 messages).
    Xx,
    /// XX with a pre-shared key mixed in after the third message's tokens (feature `psk`).
    #[cfg(feature = "psk")]
    XxPsk3,
    /// The initiator already knows the responder's static key (2 messages; feature `ik`).
    #[cfg(feature = "ik")]
    Ik,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    E,
    S,
    Ee,
    Es,
    Se,
    #[cfg(feature = "ik")]
    Ss,
    #[cfg(feature = "psk")]
    Psk,
}

use Token::*;

const XX: &[&[Token]] = &[&[E], &[E, Ee, S, Es], &[S, Se]];
#[cfg(feature = "psk")]
const XX_PSK3: &[&[Token]] = &[&[E], &[E, Ee, S, Es], &[S, Se, Psk]];
#[cfg(feature = "ik")]
const IK: &[&[Token]] = &[&[E, Es, S, Ss], &[E, Ee, Se]];

impl Pattern {
    /// The full Noise protocol name, hashed into `h` first.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Pattern::Xx => "Noise_XX_25519_ChaChaPoly_BLAKE2s",
            #[cfg(feature = "psk")]
            Pattern::XxPsk3 => "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s",
            #[cfg(feature = "ik")]
            Pattern::Ik => "Noise_IK_25519_ChaChaPoly_BLAKE2s",
        }
    }
    fn messages(self) -> &'static [&'static [Token]] {
        match self {
            Pattern::Xx => XX,
            #[cfg(feature = "psk")]
            Pattern::XxPsk3 => XX_PSK3,
            #[cfg(feature = "ik")]
            Pattern::Ik => IK,
        }
    }
    /// Number of handshake messages.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        self.messages().len()
    }
    /// XXpsk3; always false without the `psk` feature.
    pub(crate) fn is_psk(self) -> bool {
        #[cfg(feature = "psk")]
        return matches!(self, Pattern::XxPsk3);
        #[cfg(not(feature = "psk"))]
        false
    }
    /// IK; always false without the `ik` feature, so IK-only branches compile away.
    pub(crate) fn is_ik(self) -> bool {
        #[cfg(feature = "ik")]
        return matches!(self, Pattern::Ik);
        #[cfg(not(feature = "ik"))]
        false
    }
    /// Largest overhead a message of this pattern adds to its payload.
    pub fn max_overhead(self) -> usize {
        // e (32) + encrypted s (32 + 16) + payload tag (16).
        DH_LEN + DH_LEN + TAG_LEN + TAG_LEN
    }
}

/// Which side of the handshake this state is (a closed set: exhaustive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// The result of a finished handshake.
pub struct Transport {
    /// Cipher for messages this side sends.
    pub send: CipherState,
    /// Cipher for messages this side receives.
    pub recv: CipherState,
    /// The peer's static public key.
    pub remote_static: [u8; DH_LEN],
    /// The handshake hash, for channel binding.
    pub handshake_hash: [u8; HASH_LEN],
}

/// A Noise handshake in progress. Cloning it (key material included, zeroized on drop
/// like the original) lets a datagram initiator try a message without risking its state.
#[derive(Clone)]
pub struct HandshakeState {
    pattern: Pattern,
    role: Role,
    ss: SymmetricState,
    s: StaticSecret,
    e: Option<StaticSecret>,
    /// The ephemeral to use when the `e` token is written (drawn at construction).
    e_pending: Option<StaticSecret>,
    rs: Option<[u8; DH_LEN]>,
    re: Option<[u8; DH_LEN]>,
    psk: Option<[u8; PSK_LEN]>,
    /// Index of the next message pattern.
    step: usize,
    poisoned: bool,
}

impl Drop for HandshakeState {
    fn drop(&mut self) {
        self.psk.zeroize();
    }
}

/// Parameters for [`HandshakeState::new`].
pub struct HandshakeParams<'a> {
    pub pattern: Pattern,
    pub role: Role,
    pub prologue: &'a [u8],
    /// Our static secret key.
    pub local_static: [u8; DH_LEN],
    /// The responder's static key: required for an IK initiator, ignored otherwise.
    pub remote_static: Option<[u8; DH_LEN]>,
    /// Required for psk patterns.
    pub psk: Option<[u8; PSK_LEN]>,
}

impl HandshakeState {
    /// Starts a handshake; the ephemeral key is drawn from `rng` now.
    pub fn new(params: HandshakeParams<'_>, rng: &mut impl CryptoRngCore) -> Result<Self, NoiseError> {
        let mut e = [0u8; DH_LEN];
        rng.fill_bytes(&mut e);
        let hs = Self::with_ephemeral(params, e);
        e.zeroize();
        hs
    }

    /// Starts a handshake with a fixed ephemeral secret. Only for test vectors: reusing an
    /// ephemeral key breaks Noise's security, so the node always calls [`HandshakeState::new`].
    #[doc(hidden)]
    pub fn with_ephemeral(params: HandshakeParams<'_>, ephemeral: [u8; DH_LEN]) -> Result<Self, NoiseError> {
        let HandshakeParams { pattern, role, prologue, local_static, remote_static, psk } = params;
        if pattern.is_psk() && psk.is_none() {
            return Err(NoiseError::MissingPsk);
        }
        let s = StaticSecret::from(local_static);
        let mut ss = SymmetricState::new(pattern.protocol_name().as_bytes());
        ss.mix_hash(prologue);
        // Without `ik` no pattern has a pre-message, so there is nothing to mix here.
        #[cfg(not(feature = "ik"))]
        let rs = {
            let _ = remote_static;
            None
        };
        #[cfg(feature = "ik")]
        let rs = match (pattern, role) {
            (Pattern::Ik, Role::Initiator) => {
                let rs = remote_static.ok_or(NoiseError::MissingRemoteStatic)?;
                ss.mix_hash(&rs);
                Some(rs)
            }
            (Pattern::Ik, Role::Responder) => {
                ss.mix_hash(PublicKey::from(&s).as_bytes());
                None
            }
            _ => None,
        };
        Ok(HandshakeState {
            pattern,
            role,
            ss,
            s,
            e: None,
            e_pending: Some(StaticSecret::from(ephemeral)),
            rs,
            re: None,
            psk: if pattern.is_psk() { psk } else { None },
            step: 0,
            poisoned: false,
        })
    }

    pub fn pattern(&self) -> Pattern {
        self.pattern
    }
    pub fn role(&self) -> Role {
        self.role
    }
    /// Number of handshake messages processed so far.
    pub fn step(&self) -> usize {
        self.step
    }
    /// The peer's static key, once it has been received (or known in advance for IK).
    pub fn remote_static(&self) -> Option<[u8; DH_LEN]> {
        self.rs
    }
    /// All messages have been written and read.
    pub fn is_finished(&self) -> bool {
        !self.poisoned && self.step >= self.pattern.len()
    }
    /// Whether the next message is ours to write.
    pub fn is_my_turn(&self) -> bool {
        let initiator_turn = self.step % 2 == 0;
        initiator_turn == (self.role == Role::Initiator)
    }

    fn check_turn(&self, writing: bool) -> Result<&'static [Token], NoiseError> {
        if self.poisoned {
            return Err(NoiseError::Poisoned);
        }
        let tokens = self.pattern.messages().get(self.step).ok_or(NoiseError::OutOfOrder)?;
        if self.is_my_turn() != writing {
            return Err(NoiseError::OutOfOrder);
        }
        Ok(tokens)
    }

    fn dh(&self, local: &StaticSecret, remote: &[u8; DH_LEN]) -> Result<[u8; DH_LEN], NoiseError> {
        let shared = local.diffie_hellman(&PublicKey::from(*remote));
        if !shared.was_contributory() {
            return Err(NoiseError::LowOrderKey);
        }
        Ok(*shared.as_bytes())
    }

    fn mix_dh(&mut self, token: Token) -> Result<(), NoiseError> {
        let initiator = self.role == Role::Initiator;
        let (local, remote) = match (token, initiator) {
            (Ee, _) => (self.e.as_ref(), self.re.as_ref()),
            #[cfg(feature = "ik")]
            (Ss, _) => (Some(&self.s), self.rs.as_ref()),
            (Es, true) | (Se, false) => (self.e.as_ref(), self.rs.as_ref()),
            (Es, false) | (Se, true) => (Some(&self.s), self.re.as_ref()),
            _ => return Ok(()),
        };
        let (Some(local), Some(remote)) = (local, remote) else {
            return Err(NoiseError::OutOfOrder);
        };
        let mut shared = self.dh(local, remote)?;
        self.ss.mix_key(&shared);
        shared.zeroize();
        Ok(())
    }

    /// Writes the next handshake message with `payload` into `out`; returns its length.
    /// A buffer too small for the whole message is refused up front without touching the
    /// state, so the caller may retry with a larger one.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        let required = match self.next_message_len(payload.len()) {
            Ok(n) => n,
            Err(e) => {
                self.poisoned = true;
                return Err(e);
            }
        };
        if out.len() < required {
            return Err(NoiseError::BufferTooSmall { required });
        }
        let r = self.write_inner(payload, out);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    fn write_inner(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        let tokens = self.check_turn(true)?;
        let mut at = 0usize;
        for &t in tokens {
            match t {
                E => {
                    let e = self.e_pending.take().ok_or(NoiseError::OutOfOrder)?;
                    let pub_e = PublicKey::from(&e);
                    let dst =
                        out.get_mut(at..at + DH_LEN).ok_or(NoiseError::BufferTooSmall { required: at + DH_LEN })?;
                    dst.copy_from_slice(pub_e.as_bytes());
                    self.ss.mix_hash(pub_e.as_bytes());
                    if self.pattern.is_psk() {
                        self.ss.mix_key(pub_e.as_bytes());
                    }
                    self.e = Some(e);
                    at += DH_LEN;
                }
                S => {
                    let pub_s = PublicKey::from(&self.s);
                    let dst = out.get_mut(at..).ok_or(NoiseError::BufferTooSmall { required: at })?;
                    at += self.ss.encrypt_and_hash(pub_s.as_bytes(), dst)?;
                }
                #[cfg(feature = "psk")]
                Psk => self.mix_psk()?,
                dh => self.mix_dh(dh)?,
            }
        }
        let dst = out.get_mut(at..).ok_or(NoiseError::BufferTooSmall { required: at })?;
        at += self.ss.encrypt_and_hash(payload, dst)?;
        self.step += 1;
        Ok(at)
    }

    /// Length of the next message we write with a payload of `payload_len` bytes.
    pub fn next_message_len(&self, payload_len: usize) -> Result<usize, NoiseError> {
        let tokens = self.check_turn(true)?;
        let mut keyed = self.ss.has_key();
        let mut n = 0usize;
        for &t in tokens {
            match t {
                E => {
                    n += DH_LEN;
                    keyed |= self.pattern.is_psk();
                }
                S => n += DH_LEN + if keyed { TAG_LEN } else { 0 },
                _ => keyed = true,
            }
        }
        Ok(n + payload_len + if keyed { TAG_LEN } else { 0 })
    }

    #[cfg(feature = "psk")]
    fn mix_psk(&mut self) -> Result<(), NoiseError> {
        let psk = self.psk.ok_or(NoiseError::MissingPsk)?;
        self.ss.mix_key_and_hash(&psk);
        Ok(())
    }

    /// Reads the next handshake message from `msg`, writing its payload into `payload_out`.
    /// Returns the payload length.
    pub fn read_message(&mut self, msg: &[u8], payload_out: &mut [u8]) -> Result<usize, NoiseError> {
        let r = self.read_inner(msg, payload_out);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    fn read_inner(&mut self, msg: &[u8], payload_out: &mut [u8]) -> Result<usize, NoiseError> {
        let tokens = self.check_turn(false)?;
        let mut at = 0usize;
        for &t in tokens {
            match t {
                E => {
                    let re: [u8; DH_LEN] = take(msg, at, DH_LEN)?.try_into().map_err(|_| NoiseError::Truncated)?;
                    self.ss.mix_hash(&re);
                    if self.pattern.is_psk() {
                        self.ss.mix_key(&re);
                    }
                    self.re = Some(re);
                    at += DH_LEN;
                }
                S => {
                    let len = DH_LEN + if self.ss.has_key() { TAG_LEN } else { 0 };
                    let ct = take(msg, at, len)?;
                    let mut rs = [0u8; DH_LEN + TAG_LEN];
                    let n = self.ss.decrypt_and_hash(ct, &mut rs)?;
                    if n != DH_LEN {
                        return Err(NoiseError::Truncated);
                    }
                    let mut key = [0u8; DH_LEN];
                    key.copy_from_slice(&rs[..DH_LEN]);
                    self.rs = Some(key);
                    at += len;
                }
                #[cfg(feature = "psk")]
                Psk => self.mix_psk()?,
                dh => self.mix_dh(dh)?,
            }
        }
        let rest = msg.get(at..).ok_or(NoiseError::Truncated)?;
        if self.ss.has_key() && rest.len() < TAG_LEN {
            return Err(NoiseError::Truncated);
        }
        let n = self.ss.decrypt_and_hash(rest, payload_out)?;
        self.step += 1;
        Ok(n)
    }

    /// The handshake hash so far.
    pub fn handshake_hash(&self) -> [u8; HASH_LEN] {
        self.ss.handshake_hash()
    }

    /// Finishes the handshake: the transport ciphers, oriented for this side.
    pub fn into_transport(self) -> Result<Transport, NoiseError> {
        if !self.is_finished() {
            return Err(if self.poisoned { NoiseError::Poisoned } else { NoiseError::OutOfOrder });
        }
        let rs = self.rs.ok_or(NoiseError::OutOfOrder)?;
        let (c1, c2) = self.ss.split();
        let (send, recv) = match self.role {
            Role::Initiator => (c1, c2),
            Role::Responder => (c2, c1),
        };
        Ok(Transport { send, recv, remote_static: rs, handshake_hash: self.ss.handshake_hash() })
    }
}

fn take(msg: &[u8], at: usize, len: usize) -> Result<&[u8], NoiseError> {
    msg.get(at..at.checked_add(len).ok_or(NoiseError::Truncated)?).ok_or(NoiseError::Truncated)
}

// Debug output never shows key material.
impl core::fmt::Debug for Transport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transport").field("send", &self.send).field("recv", &self.recv).finish_non_exhaustive()
    }
}

impl core::fmt::Debug for HandshakeState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeState")
            .field("pattern", &self.pattern)
            .field("role", &self.role)
            .field("step", &self.step)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for HandshakeParams<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeParams")
            .field("pattern", &self.pattern)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}
