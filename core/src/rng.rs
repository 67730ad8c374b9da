//! The node's CSPRNG: the ChaCha20 keystream of the `chacha20` crate, which the AEAD
//! already links, instead of `rand_chacha` (whose block function and 256-byte buffer
//! cost about 5 KB of flash and 300 B of RAM on a Cortex-M4, embedded/SIZE.md).
//!
//! The output is byte for byte `rand_chacha::ChaCha20Rng`'s (stream `s`, from word 0),
//! so every golden vector is unchanged:
//! - `ChaCha20Rng` is ChaCha20 (Bernstein's original layout) with a 64-bit block counter
//!   in state words 12 and 13 and the stream number in words 14 and 15. RFC 8439's
//!   layout, which `chacha20::ChaCha20` implements, puts a 32-bit counter in word 12 and
//!   its 96-bit nonce in words 13 to 15, so nonce = (counter high word, stream) gives the
//!   same state for the first 2^32 blocks (256 GiB). Past them the high word is carried
//!   into the nonce by hand, as `ChaCha20Rng` does.
//! - `ChaCha20Rng` hands out whole 32-bit words: `next_u32` takes one, `next_u64` two
//!   (low word first), and `fill_bytes(n)` takes ceil(n / 4) and drops the unused bytes
//!   of the last one. [`NodeRng`] skips the same bytes.
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use rand_core::{CryptoRng, RngCore};

/// ChaCha20 keystream as a [`RngCore`], word-compatible with `rand_chacha::ChaCha20Rng`.
pub(crate) struct NodeRng {
    cipher: ChaCha20,
    key: [u8; 32],
    /// Words 13 to 15 of the state: the block counter's high word, then the stream.
    nonce: [u8; 12],
}

impl NodeRng {
    /// The generator `ChaCha20Rng::from_seed(seed)` followed by `set_stream(stream)` is.
    pub(crate) fn new(seed: [u8; 32], stream: u64) -> Self {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&stream.to_le_bytes());
        NodeRng { cipher: ChaCha20::new(&seed.into(), &nonce.into()), key: seed, nonce }
    }

    /// XORs the next `buf.len()` keystream bytes into `buf` (zeroes in, keystream out).
    fn keystream(&mut self, buf: &mut [u8]) {
        if self.cipher.try_apply_keystream(buf).is_err() {
            // 2^32 blocks used: carry into the counter's high word (a fresh cipher at
            // block 0 of the next 2^32). The tail of the last block is skipped, where
            // `ChaCha20Rng` would have used it; nothing reaches this in practice.
            let hi = u32::from_le_bytes([self.nonce[0], self.nonce[1], self.nonce[2], self.nonce[3]]);
            self.nonce[..4].copy_from_slice(&hi.wrapping_add(1).to_le_bytes());
            self.cipher = ChaCha20::new(&self.key.into(), &self.nonce.into());
            // Our draws are at most a few dozen bytes, far below a fresh cipher's 256 GiB.
            let _ = self.cipher.try_apply_keystream(buf);
        }
    }
}

impl RngCore for NodeRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.keystream(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.keystream(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
        self.keystream(dest);
        // Whole words, as ChaCha20Rng: skip the rest of a partly used last word.
        let mut pad = [0u8; 3];
        self.keystream(&mut pad[..dest.len().wrapping_neg() & 3]);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for NodeRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// The same draws, in a mix of sizes that cross word and block boundaries, give the
    /// same values from both generators, on the default stream and another.
    #[test]
    fn same_output_as_rand_chacha() {
        for stream in [0u64, 0x6d6c_696e_6b69_6478] {
            let seed: [u8; 32] = core::array::from_fn(|i| i as u8 * 7 + 1);
            let mut a = NodeRng::new(seed, stream);
            let mut b = ChaCha20Rng::from_seed(seed);
            b.set_stream(stream);
            for round in 0..200usize {
                match round % 5 {
                    0 => assert_eq!(a.next_u32(), b.next_u32()),
                    1 => assert_eq!(a.next_u64(), b.next_u64()),
                    n => {
                        let len = (round * 7 + n) % 71;
                        let (mut x, mut y) = ([0u8; 71], [0u8; 71]);
                        a.fill_bytes(&mut x[..len]);
                        b.fill_bytes(&mut y[..len]);
                        assert_eq!(x[..len], y[..len], "round {round}, {len} bytes");
                    }
                }
            }
        }
    }
}
