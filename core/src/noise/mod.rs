//! Our Noise implementation: `CipherState`, `SymmetricState` and `HandshakeState` for
//! 25519 / ChaChaPoly / BLAKE2s, built on RustCrypto and dalek primitives.

pub mod cipher;
pub mod handshake;
pub mod symmetric;

pub use cipher::{CipherState, TAG_LEN};
pub use handshake::{HandshakeParams, HandshakeState, Pattern, Role, Transport, DH_LEN, PSK_LEN};

/// Errors of the Noise layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoiseError {
    /// Authentication failed: wrong key, tampered bytes, or a mismatched prologue.
    Decrypt,
    /// The message is shorter than its pattern requires.
    Truncated,
    /// The output buffer is too small.
    BufferTooSmall { required: usize },
    /// A Diffie-Hellman result was all zeros: the peer sent a low-order point.
    LowOrderKey,
    /// A message was written or read out of turn, or after the handshake finished.
    OutOfOrder,
    /// An earlier error poisoned this handshake.
    Poisoned,
    /// The nonce reached 2^64-1; the session must end.
    NonceExhausted,
    /// A psk pattern was started without a pre-shared key.
    MissingPsk,
    /// IK was started as initiator without the responder's static key.
    MissingRemoteStatic,
}

impl core::fmt::Display for NoiseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoiseError::Decrypt => f.write_str("decryption failed"),
            NoiseError::Truncated => f.write_str("message truncated"),
            NoiseError::BufferTooSmall { required } => write!(f, "buffer too small: {required} bytes required"),
            NoiseError::LowOrderKey => f.write_str("peer key is a low-order point"),
            NoiseError::OutOfOrder => f.write_str("handshake message out of order"),
            NoiseError::Poisoned => f.write_str("handshake failed earlier"),
            NoiseError::NonceExhausted => f.write_str("nonce space exhausted"),
            NoiseError::MissingPsk => f.write_str("pre-shared key required"),
            NoiseError::MissingRemoteStatic => f.write_str("responder static key required for IK"),
        }
    }
}
