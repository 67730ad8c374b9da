//! Noise `SymmetricState` with BLAKE2s (Noise spec rev. 34 §5.2, §4.3 HKDF over HMAC-BLAKE2s).

use blake2::{Blake2s256, Digest};
use hmac::{Mac, SimpleHmac};
use zeroize::Zeroize;

use super::cipher::{CipherState, TAG_LEN};
use super::NoiseError;

/// BLAKE2s output length (Noise HASHLEN).
pub const HASH_LEN: usize = 32;

type HmacBlake2s = SimpleHmac<Blake2s256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    // SimpleHmac accepts keys of any length; this never fails.
    let mut mac = <HmacBlake2s as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Noise HKDF with two outputs.
pub(crate) fn hkdf2(ck: &[u8; HASH_LEN], ikm: &[u8]) -> ([u8; HASH_LEN], [u8; HASH_LEN]) {
    let mut temp = hmac(ck, &[ikm]);
    let o1 = hmac(&temp, &[&[1]]);
    let o2 = hmac(&temp, &[&o1, &[2]]);
    temp.zeroize();
    (o1, o2)
}

/// Noise HKDF with three outputs.
fn hkdf3(ck: &[u8; HASH_LEN], ikm: &[u8]) -> ([u8; HASH_LEN], [u8; HASH_LEN], [u8; HASH_LEN]) {
    let mut temp = hmac(ck, &[ikm]);
    let o1 = hmac(&temp, &[&[1]]);
    let o2 = hmac(&temp, &[&o1, &[2]]);
    let o3 = hmac(&temp, &[&o2, &[3]]);
    temp.zeroize();
    (o1, o2, o3)
}

/// BLAKE2s of the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Blake2s256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Chaining key, handshake hash and the handshake's cipher.
#[derive(Clone)]
pub struct SymmetricState {
    ck: [u8; HASH_LEN],
    h: [u8; HASH_LEN],
    cipher: CipherState,
}

impl Drop for SymmetricState {
    fn drop(&mut self) {
        self.ck.zeroize();
    }
}

impl SymmetricState {
    /// `InitializeSymmetric(protocol_name)`.
    pub fn new(protocol_name: &[u8]) -> Self {
        let h = if protocol_name.len() <= HASH_LEN {
            let mut h = [0u8; HASH_LEN];
            h[..protocol_name.len()].copy_from_slice(protocol_name);
            h
        } else {
            hash(&[protocol_name])
        };
        SymmetricState { ck: h, h, cipher: CipherState::empty() }
    }

    pub fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, k) = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.cipher = CipherState::new(k);
    }

    pub fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    pub fn mix_key_and_hash(&mut self, ikm: &[u8]) {
        let (ck, th, k) = hkdf3(&self.ck, ikm);
        self.ck = ck;
        self.mix_hash(&th);
        self.cipher = CipherState::new(k);
    }

    pub fn has_key(&self) -> bool {
        self.cipher.has_key()
    }

    /// The handshake hash `h`, usable for channel binding once the handshake is done.
    pub fn handshake_hash(&self) -> [u8; HASH_LEN] {
        self.h
    }

    /// Writes `EncryptAndHash(plaintext)` to `out`; returns the bytes written.
    pub fn encrypt_and_hash(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        let extra = if self.has_key() { TAG_LEN } else { 0 };
        let required = plaintext.len() + extra;
        if out.len() < required {
            return Err(NoiseError::BufferTooSmall { required });
        }
        out[..plaintext.len()].copy_from_slice(plaintext);
        let h = self.h;
        let n = self.cipher.encrypt(&h, out, plaintext.len())?;
        self.mix_hash(&out[..n]);
        Ok(n)
    }

    /// `DecryptAndHash(ciphertext)` into `out`; returns the plaintext length.
    /// On failure the state is unchanged (the caller poisons the handshake anyway).
    pub fn decrypt_and_hash(&mut self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        if out.len() < ciphertext.len() {
            return Err(NoiseError::BufferTooSmall { required: ciphertext.len() });
        }
        out[..ciphertext.len()].copy_from_slice(ciphertext);
        let h = self.h;
        let n = self.cipher.decrypt(&h, out, ciphertext.len())?;
        self.mix_hash(ciphertext);
        Ok(n)
    }

    /// `Split()`: the two transport ciphers, initiator-to-responder first.
    pub fn split(&self) -> (CipherState, CipherState) {
        let (mut k1, mut k2) = hkdf2(&self.ck, &[]);
        let out = (CipherState::new(k1), CipherState::new(k2));
        k1.zeroize();
        k2.zeroize();
        out
    }
}

impl core::fmt::Debug for SymmetricState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SymmetricState").field("has_key", &self.has_key()).finish_non_exhaustive()
    }
}
