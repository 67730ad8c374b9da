//! Node identity (F01): a static X25519 keypair. The peer id *is* the public key.
//!
//! Text form: 52 characters of lowercase RFC 4648 base32 without padding, so ids are
//! case-insensitive to read aloud and safe in file names, URLs and shells. The short
//! fingerprint for logs is the first 8 characters.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

/// Length of the text form of a [`PeerId`].
pub const PEER_ID_TEXT_LEN: usize = 52;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A peer's identity: its static X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PeerId(pub [u8; 32]);

impl PeerId {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        PeerId(bytes)
    }
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The text form in a fixed buffer (no allocation).
    pub fn to_text(&self) -> [u8; PEER_ID_TEXT_LEN] {
        let mut out = [0u8; PEER_ID_TEXT_LEN];
        let mut acc: u16 = 0;
        let mut bits = 0u32;
        let mut o = 0;
        for &b in &self.0 {
            acc = (acc << 8) | u16::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out[o] = ALPHABET[usize::from((acc >> bits) & 31)];
                o += 1;
            }
        }
        // 256 bits = 51 full groups + 1 leftover bit, padded with zeros.
        out[o] = ALPHABET[usize::from((acc << (5 - bits)) & 31)];
        out
    }
    /// A short fingerprint for logs: the first 8 characters of the text form.
    pub fn short(&self) -> Fingerprint {
        let t = self.to_text();
        let mut f = [0u8; 8];
        f.copy_from_slice(&t[..8]);
        Fingerprint(f)
    }
}

/// The first 8 characters of a peer id's text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always ASCII from ALPHABET.
        f.write_str(core::str::from_utf8(&self.0).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.to_text();
        f.write_str(core::str::from_utf8(&t).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

/// Why a peer id's text form did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParsePeerIdError {
    /// Not 52 characters.
    Length { got: usize },
    /// A character outside `a-z2-7` (upper case is accepted).
    Character { at: usize },
    /// The last character has bits set beyond the 256-bit key.
    Trailing,
}

impl fmt::Display for ParsePeerIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParsePeerIdError::Length { got } => write!(f, "peer id must be {PEER_ID_TEXT_LEN} characters, got {got}"),
            ParsePeerIdError::Character { at } => write!(f, "invalid character at position {at} in peer id"),
            ParsePeerIdError::Trailing => f.write_str("peer id has non-zero trailing bits"),
        }
    }
}

impl FromStr for PeerId {
    type Err = ParsePeerIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != PEER_ID_TEXT_LEN {
            return Err(ParsePeerIdError::Length { got: s.len() });
        }
        let mut out = [0u8; 32];
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        let mut o = 0usize;
        for (i, &c) in s.iter().enumerate() {
            let v = match c.to_ascii_lowercase() {
                c @ b'a'..=b'z' => c - b'a',
                c @ b'2'..=b'7' => c - b'2' + 26,
                _ => return Err(ParsePeerIdError::Character { at: i }),
            };
            acc = (acc << 5) | u32::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                if o < 32 {
                    out[o] = (acc >> bits) as u8;
                    o += 1;
                }
            }
            acc &= (1 << bits) - 1;
        }
        if acc != 0 {
            return Err(ParsePeerIdError::Trailing);
        }
        Ok(PeerId(out))
    }
}

/// A static X25519 keypair. The secret is zeroized on drop.
#[derive(Clone)]
pub struct Keypair {
    secret: [u8; 32],
    public: PeerId,
}

impl Drop for Keypair {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Keypair {
    /// A new random keypair.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let kp = Self::from_secret(secret);
        secret.zeroize();
        kp
    }
    /// The keypair for a stored (or provisioned) 32-byte secret. The secret is clamped by
    /// X25519 itself, so any 32 bytes are a valid key.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let public = PublicKey::from(&StaticSecret::from(secret));
        Keypair { secret, public: PeerId(public.to_bytes()) }
    }
    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.public
    }
    /// The secret bytes, for persisting. Keep them out of logs.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }
}
