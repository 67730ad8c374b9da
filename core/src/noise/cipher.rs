//! Noise `CipherState` for ChaChaPoly (Noise spec rev. 34 §5.1, §12.3).
//!
//! Invariants kept here, each a known bug class in other Noise libraries:
//! - a failed decryption never advances the nonce (snow GHSA-7g9j-g5jg-3vv3, CVE-2021-4239);
//! - nonce 2^64-1 is reserved and never used; the counter never wraps;
//! - plaintext is only released after the tag verified (decrypt is in place and detached).

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use zeroize::Zeroize;

use super::NoiseError;

/// Length of the Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of a ChaCha20-Poly1305 key.
pub const KEY_LEN: usize = 32;
/// The reserved nonce (Noise §5.1): never used to encrypt application data.
pub const MAX_NONCE: u64 = u64::MAX;

/// A symmetric key and a nonce counter.
pub struct CipherState {
    key: Option<[u8; KEY_LEN]>,
    n: u64,
}

impl Drop for CipherState {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Clone for CipherState {
    fn clone(&self) -> Self {
        CipherState { key: self.key, n: self.n }
    }
}

impl core::fmt::Debug for CipherState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CipherState").field("has_key", &self.key.is_some()).field("n", &self.n).finish()
    }
}

/// ChaChaPoly's nonce encoding: 32 bits of zeros followed by the little-endian 64-bit counter.
fn nonce_bytes(n: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(nonce)
}

impl CipherState {
    /// A cipher with no key: encryption and decryption are the identity (Noise `InitializeKey(empty)`).
    pub const fn empty() -> Self {
        CipherState { key: None, n: 0 }
    }

    /// A cipher with key `k` and nonce 0.
    pub fn new(k: [u8; KEY_LEN]) -> Self {
        CipherState { key: Some(k), n: 0 }
    }

    /// Whether a key is set.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The next nonce `encrypt`/`decrypt` will use.
    pub fn nonce(&self) -> u64 {
        self.n
    }

    /// Sets the nonce (Noise `SetNonce`), used by transports with explicit counters.
    pub fn set_nonce(&mut self, n: u64) {
        self.n = n;
    }

    /// Encrypts `buf[..len]` in place with the implicit nonce and appends the tag.
    /// Returns the ciphertext length (`len + 16`, or `len` with no key).
    pub fn encrypt(&mut self, ad: &[u8], buf: &mut [u8], len: usize) -> Result<usize, NoiseError> {
        let n = self.n;
        if n == MAX_NONCE {
            return Err(NoiseError::NonceExhausted);
        }
        let out = self.encrypt_at(n, ad, buf, len)?;
        self.n = n + 1;
        Ok(out)
    }

    /// Decrypts `buf[..len]` in place with the implicit nonce. On success returns the
    /// plaintext length and advances the nonce; on failure neither the nonce nor `buf` changes.
    pub fn decrypt(&mut self, ad: &[u8], buf: &mut [u8], len: usize) -> Result<usize, NoiseError> {
        let n = self.n;
        if n == MAX_NONCE {
            return Err(NoiseError::NonceExhausted);
        }
        let out = self.decrypt_at(n, ad, buf, len)?;
        self.n = n + 1;
        Ok(out)
    }

    /// Encrypts with an explicit nonce (datagram transport); the internal counter is untouched.
    pub fn encrypt_at(&self, n: u64, ad: &[u8], buf: &mut [u8], len: usize) -> Result<usize, NoiseError> {
        if n == MAX_NONCE {
            return Err(NoiseError::NonceExhausted);
        }
        let Some(key) = &self.key else {
            return if len <= buf.len() { Ok(len) } else { Err(NoiseError::BufferTooSmall { required: len }) };
        };
        let required = len.checked_add(TAG_LEN).ok_or(NoiseError::BufferTooSmall { required: usize::MAX })?;
        if buf.len() < required {
            return Err(NoiseError::BufferTooSmall { required });
        }
        let aead = ChaCha20Poly1305::new(Key::from_slice(key));
        let (msg, rest) = buf.split_at_mut(len);
        let tag = aead
            .encrypt_in_place_detached(&nonce_bytes(n), ad, msg)
            .map_err(|_| NoiseError::BufferTooSmall { required })?;
        rest[..TAG_LEN].copy_from_slice(&tag);
        Ok(required)
    }

    /// Decrypts with an explicit nonce (datagram transport); the internal counter is untouched.
    pub fn decrypt_at(&self, n: u64, ad: &[u8], buf: &mut [u8], len: usize) -> Result<usize, NoiseError> {
        if n == MAX_NONCE {
            return Err(NoiseError::NonceExhausted);
        }
        if len > buf.len() {
            return Err(NoiseError::Truncated);
        }
        let Some(key) = &self.key else {
            return Ok(len);
        };
        let pt_len = len.checked_sub(TAG_LEN).ok_or(NoiseError::Truncated)?;
        let aead = ChaCha20Poly1305::new(Key::from_slice(key));
        let (msg, rest) = buf[..len].split_at_mut(pt_len);
        let tag = Tag::clone_from_slice(&rest[..TAG_LEN]);
        aead.decrypt_in_place_detached(&nonce_bytes(n), ad, msg, &tag).map_err(|_| NoiseError::Decrypt)?;
        Ok(pt_len)
    }

    /// Noise `REKEY` (§4.2, §11.3): k = first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros).
    /// The nonce is left as it is.
    pub fn rekey(&mut self) {
        if let Some(key) = &mut self.key {
            let aead = ChaCha20Poly1305::new(Key::from_slice(key));
            let mut zeros = [0u8; KEY_LEN];
            // Encrypting 32 bytes into a 32-byte slice cannot fail: the detached API has no size limit here.
            let _ = aead.encrypt_in_place_detached(&nonce_bytes(MAX_NONCE), &[], &mut zeros);
            *key = zeros;
            zeros.zeroize();
        }
    }
}
