//! Sliding-window replay protection for datagram counters.
//!
//! The algorithm is RFC 6479's ring of bitmap words, as used by WireGuard (Linux
//! `drivers/net/wireguard/receive.c`, wireguard-go `replay/replay.go`): the window is a
//! ring of 64-bit words; sliding forward only zeroes the words that scroll in, so the cost
//! of a jump is bounded by the ring size, never by the jump's length. One word of the
//! ring is "redundant" (RFC 6479 §2): it may hold bits from both the oldest and the
//! newest counters, so the usable window is one word shorter than the bitmap.
//!
//! The check is split from the marking so the receive path can reject replays *before*
//! spending a decryption on them, and only mark a counter once the AEAD has
//! authenticated it (marking an unauthenticated counter would let a forger slide the
//! window and make genuine packets look too old).

use core::fmt;

/// Bits in the bitmap. The usable window is REPLAY_WINDOW_BITS - 64 counters.
/// 4096 is half of WireGuard's 8192 (`COUNTER_BITS_TOTAL`): 512 bytes per session while
/// still tolerating ~4000 packets of reordering.
pub const REPLAY_WINDOW_BITS: usize = 4096;
/// Counters older than `highest - REPLAY_WINDOW_SIZE` are rejected.
/// (`highest - REPLAY_WINDOW_SIZE` itself is still accepted, as in WireGuard.)
pub const REPLAY_WINDOW_SIZE: u64 = (REPLAY_WINDOW_BITS - 64) as u64;
/// WireGuard's RejectAfterMessages: 2^64 - 2^13 - 1. Counters at or above it are never accepted.
/// (WireGuard whitepaper §6.1 / `messages.h`: leaves headroom below the u64 nonce space.)
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// Older than the window: cannot be told apart from a replay.
    TooOld,
    /// Already seen inside the window.
    Duplicate,
    /// At or beyond [`REJECT_AFTER_MESSAGES`]: the session must be rekeyed.
    LimitReached,
}

const WORD_BITS: u64 = 64;
const WORD_SHIFT: u32 = 6; // log2(WORD_BITS)
const WORDS: usize = REPLAY_WINDOW_BITS / 64;
/// Ring indices are taken modulo WORDS with a mask, which needs a power of two.
const WORD_MASK: u64 = WORDS as u64 - 1;
const _: () = assert!(WORDS.is_power_of_two() && WORDS >= 2);
// The window must fit in the ring minus the redundant word, or the oldest counters of
// the window would share a word with the newest and be wiped by a slide.
const _: () = assert!(REPLAY_WINDOW_SIZE == (WORDS as u64 - 1) * WORD_BITS);

/// Anti-replay window: the highest counter accepted so far plus a bitmap of the
/// `REPLAY_WINDOW_SIZE` counters below it. Fixed size, no allocation.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest counter marked; 0 before any (which accepts counter 0 exactly like
    /// WireGuard's zeroed filter does).
    highest: u64,
    /// Whether anything was marked since creation/reset; only for [`Self::highest`].
    any: bool,
    bitmap: [u64; WORDS],
}

impl ReplayWindow {
    /// An empty window: every counter below [`REJECT_AFTER_MESSAGES`] is acceptable.
    pub const fn new() -> Self {
        ReplayWindow { highest: 0, any: false, bitmap: [0; WORDS] }
    }

    /// Cheap check BEFORE decryption. Never mutates.
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(ReplayError::LimitReached);
        }
        if counter > self.highest {
            return Ok(());
        }
        // counter <= highest, so the subtraction cannot underflow.
        if self.highest - counter > REPLAY_WINDOW_SIZE {
            return Err(ReplayError::TooOld);
        }
        let (word, bit) = position(counter);
        if self.bitmap[word] & bit != 0 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Record the counter AFTER the AEAD succeeded. Caller has called check() first;
    /// mark must still be safe (no panic) if called with any value.
    ///
    /// A counter that `check` would refuse is ignored (too old / over the limit) or is a
    /// no-op (duplicate: its bit is already set), so a misuse cannot corrupt the window.
    pub fn mark(&mut self, counter: u64) {
        if counter >= REJECT_AFTER_MESSAGES {
            return;
        }
        if counter > self.highest {
            // Slide forward: zero the words between the old and the new head. Capped at
            // the ring size, since after that many every word has been zeroed once.
            let current = self.highest >> WORD_SHIFT;
            let target = counter >> WORD_SHIFT;
            let steps = (target - current).min(WORDS as u64);
            for i in 1..=steps {
                // current < 2^58, so current + i cannot overflow.
                self.bitmap[((current + i) & WORD_MASK) as usize] = 0;
            }
            self.highest = counter;
        } else if self.highest - counter > REPLAY_WINDOW_SIZE {
            return;
        }
        let (word, bit) = position(counter);
        self.bitmap[word] |= bit;
        self.any = true;
    }

    /// check + mark in one (for tests and callers that have already authenticated).
    pub fn check_and_mark(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        self.mark(counter);
        Ok(())
    }

    /// Forget everything, as after a rekey.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Highest counter marked so far, None if none.
    pub fn highest(&self) -> Option<u64> {
        self.any.then_some(self.highest)
    }
}

/// Ring word index and bit mask of a counter. The mask keeps the index below WORDS.
fn position(counter: u64) -> (usize, u64) {
    let word = ((counter >> WORD_SHIFT) & WORD_MASK) as usize;
    let bit = 1u64 << (counter & (WORD_BITS - 1));
    (word, bit)
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

/// The bitmap is 512 bytes of noise in logs; show only the head.
impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow").field("highest", &self.highest()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::BTreeSet;

    const W: u64 = REPLAY_WINDOW_SIZE;

    /// Runs `n` through both `check` and `check_and_mark` and asserts they agree.
    fn t(w: &mut ReplayWindow, case: u32, n: u64, expected: bool) {
        let checked = w.check(n).is_ok();
        let got = w.check_and_mark(n).is_ok();
        assert_eq!(checked, got, "case {case}: check and check_and_mark disagree on {n}");
        assert_eq!(got, expected, "case {case}: counter {n}");
    }

    /// The 34 cases of the Linux kernel's WireGuard counter selftest, as ported in
    /// wireguard-go `replay/replay_test.go` (T_LIM = window size + 1).
    #[test]
    fn wireguard_selftest_cases() {
        const T_LIM: u64 = W + 1;
        const RAM: u64 = REJECT_AFTER_MESSAGES;
        let cases: [(u64, bool); 34] = [
            (0, true),
            (1, true),
            (1, false),
            (9, true),
            (8, true),
            (7, true),
            (7, false),
            (T_LIM, true),
            (T_LIM - 1, true),
            (T_LIM - 1, false),
            (T_LIM - 2, true),
            (2, true),
            (2, false),
            (T_LIM + 16, true),
            (3, false),
            (T_LIM + 16, false),
            (T_LIM * 4, true),
            (T_LIM * 4 - (T_LIM - 1), true),
            (10, false),
            (T_LIM * 4 - T_LIM, false),
            (T_LIM * 4 - (T_LIM + 1), false),
            (T_LIM * 4 - (T_LIM - 2), true),
            (T_LIM * 4 + 1 - T_LIM, false),
            (0, false),
            (RAM, false),
            (RAM - 1, true),
            (RAM, false),
            (RAM - 1, false),
            (RAM - 2, true),
            (RAM + 1, false),
            (RAM + 2, false),
            (RAM - 2, false),
            (RAM - 3, true),
            (0, false),
        ];
        let mut w = ReplayWindow::new();
        for (i, &(n, ok)) in cases.iter().enumerate() {
            t(&mut w, i as u32 + 1, n, ok);
        }
        // The reasons, for a few of them.
        assert_eq!(w.check(RAM), Err(ReplayError::LimitReached));
        assert_eq!(w.check(u64::MAX), Err(ReplayError::LimitReached));
        assert_eq!(w.check(RAM - 3), Err(ReplayError::Duplicate));
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
        assert_eq!(w.highest(), Some(RAM - 1));
    }

    #[test]
    fn wireguard_bulk_tests() {
        // 1: ascending fill, then 0 is exactly at the window's edge.
        let mut w = ReplayWindow::new();
        for i in 1..=W {
            t(&mut w, 1, i, true);
        }
        t(&mut w, 1, 0, true);
        t(&mut w, 1, 0, false);

        // 2: ascending fill one further: 1 is at the edge, 0 just beyond.
        w.reset();
        for i in 2..=W + 1 {
            t(&mut w, 2, i, true);
        }
        t(&mut w, 2, 1, true);
        t(&mut w, 2, 0, false);

        // 3: descending fill of a whole window.
        w.reset();
        for i in (1..=W + 1).rev() {
            t(&mut w, 3, i, true);
        }

        // 4: descending fill, then 0 is beyond the window.
        w.reset();
        for i in (2..=W + 2).rev() {
            t(&mut w, 4, i, true);
        }
        t(&mut w, 4, 0, false);

        // 5: descending fill, then a step ahead pushes 0 out.
        w.reset();
        for i in (1..=W).rev() {
            t(&mut w, 5, i, true);
        }
        t(&mut w, 5, W + 1, true);
        t(&mut w, 5, 0, false);

        // 6: descending fill including 0, then a step ahead.
        w.reset();
        for i in (1..=W).rev() {
            t(&mut w, 6, i, true);
        }
        t(&mut w, 6, 0, true);
        t(&mut w, 6, W + 1, true);
    }

    #[test]
    fn check_never_mutates() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.highest(), None);
        for n in [0, 5, W, W * 3, u64::MAX, REJECT_AFTER_MESSAGES - 1] {
            assert!(w.check(n).is_ok() || n >= REJECT_AFTER_MESSAGES);
        }
        assert_eq!(w.highest(), None);
        assert_eq!(w.bitmap, [0; WORDS]);
        w.check_and_mark(100).unwrap();
        let before = w.clone();
        for n in [0, 99, 100, 101, 100 + W * 10, REJECT_AFTER_MESSAGES, u64::MAX] {
            let _ = w.check(n);
        }
        assert_eq!(w.highest, before.highest);
        assert_eq!(w.bitmap, before.bitmap);
        assert_eq!(w.check(101), Ok(()));
        assert_eq!(w.check(100), Err(ReplayError::Duplicate));
    }

    #[test]
    fn mark_of_rejected_counter_changes_nothing() {
        let mut w = ReplayWindow::new();
        let base = 10 * W;
        w.check_and_mark(base).unwrap();
        w.check_and_mark(base - 7).unwrap();
        let before = w.clone();
        // Too old, duplicates, over the limit: marking them anyway must be a no-op.
        for n in [0, base - W - 1, base, base - 7, REJECT_AFTER_MESSAGES, u64::MAX] {
            assert!(w.check(n).is_err());
            w.mark(n);
            assert_eq!(w.highest, before.highest, "mark({n})");
            assert_eq!(w.bitmap, before.bitmap, "mark({n})");
        }
        // Everything in the window that was free still is.
        for n in base - W..=base {
            let expected = n != base && n != base - 7;
            assert_eq!(w.check(n).is_ok(), expected, "{n}");
        }
    }

    #[test]
    fn highest_and_reset() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.highest(), None);
        w.check_and_mark(0).unwrap();
        assert_eq!(w.highest(), Some(0));
        w.check_and_mark(7).unwrap();
        w.check_and_mark(3).unwrap();
        assert_eq!(w.highest(), Some(7));
        w.reset();
        assert_eq!(w.highest(), None);
        assert_eq!(w.check_and_mark(7), Ok(()));
        assert_eq!(w.check_and_mark(3), Ok(()));
    }

    /// The obvious reference: a set of every accepted counter, and the window rule.
    struct Model {
        highest: Option<u64>,
        seen: BTreeSet<u64>,
    }

    impl Model {
        fn check(&self, n: u64) -> Result<(), ReplayError> {
            if n >= REJECT_AFTER_MESSAGES {
                Err(ReplayError::LimitReached)
            } else if self.highest.is_some_and(|h| n < h && h - n > W) {
                Err(ReplayError::TooOld)
            } else if self.seen.contains(&n) {
                Err(ReplayError::Duplicate)
            } else {
                Ok(())
            }
        }
        fn mark(&mut self, n: u64) {
            if self.check(n).is_ok() {
                self.seen.insert(n);
                let h = self.highest.map_or(n, |h| h.max(n));
                self.highest = Some(h);
                if self.seen.len() > 3 * W as usize {
                    // Counters below the window can never be accepted again; drop them
                    // to keep the reference fast.
                    self.seen = self.seen.split_off(&h.saturating_sub(W));
                }
            }
        }
    }

    #[test]
    fn matches_naive_model_under_random_operations() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // Knuth's MMIX LCG constants; the high bits are the good ones.
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        };
        let mut w = ReplayWindow::new();
        let mut m = Model { highest: None, seen: BTreeSet::new() };
        let mut accepted = 0u32;
        for op in 0..100_000u32 {
            let r = next();
            let h = m.highest.unwrap_or(0);
            let n = match r % 16 {
                0..=4 => h.saturating_add(1 + next() % 4),        // in order / small gaps
                5 => h.saturating_add(next() % (3 * W)),          // jumps, up to 3 windows
                6 => h.saturating_add(W + next() % 130),          // jumps just past a ring
                7..=8 => (h + 3).saturating_sub(W + next() % 6),  // the window's lower edge
                9..=11 => h.saturating_sub(next() % (W + 1)),     // inside the window
                12 => h.saturating_sub(next() % 64),              // recent: dups/reordering
                13 => h.saturating_sub(W + 1 + next() % 100_000), // well below it
                14 if next() % 500 == 0 => REJECT_AFTER_MESSAGES - 1 - next() % 200,
                14 => next(),
                _ => h,
            };
            match next() % 8 {
                0 => {
                    // check alone must not change anything
                    assert_eq!(w.check(n), m.check(n), "op {op}: check({n}) h={h}");
                }
                1 => {
                    // mark without check (misuse) must behave like the model's mark
                    w.mark(n);
                    m.mark(n);
                }
                _ => {
                    let expected = m.check(n);
                    assert_eq!(w.check_and_mark(n), expected, "op {op}: counter {n} h={h}");
                    accepted += u32::from(expected.is_ok());
                    m.mark(n);
                }
            }
            assert_eq!(w.highest(), m.highest, "op {op}");
            if next() % 3000 == 0 {
                w.reset();
                m = Model { highest: None, seen: BTreeSet::new() };
            }
        }
        // The generator must actually exercise both outcomes.
        assert!(accepted > 20_000 && accepted < 80_000, "accepted {accepted}");
    }
}
