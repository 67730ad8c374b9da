//! Stream framing: each frame is a 2-byte big-endian length followed by one record.
//!
//! The decoder is incremental and allocation-free: bytes arrive in chunks of any size
//! (one byte at a time included) and are assembled in a caller-provided buffer. The
//! length is validated as soon as both prefix bytes are known, before any body byte is
//! stored, so an oversized prefix costs nothing.

use super::WireError;

/// Bytes of length prefix.
pub const FRAME_PREFIX_LEN: usize = 2;
/// The largest frame body the format can express (Noise's message limit).
pub const MAX_FRAME_LEN: usize = 65535;

/// Assembles one frame at a time into `buf`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameDecoder {
    /// Bytes of the current frame (prefix included) held in the buffer.
    have: usize,
}

/// What [`FrameDecoder::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameProgress {
    /// All input consumed, frame still incomplete.
    NeedMore { consumed: usize },
    /// A whole frame is at `buf[2..2 + len]`; `consumed` input bytes were used.
    Frame { consumed: usize, len: usize },
}

impl FrameDecoder {
    pub const fn new() -> Self {
        FrameDecoder { have: 0 }
    }

    /// Whether a partial frame is buffered.
    pub fn is_mid_frame(&self) -> bool {
        self.have > 0
    }

    /// Feeds `input` into `buf`, stopping at the end of the first complete frame.
    /// `max_len` is the largest body accepted (at most `buf.len() - 2` and 65535).
    /// On error the connection must be closed: the stream is no longer in sync.
    pub fn push(&mut self, buf: &mut [u8], input: &[u8], max_len: usize) -> Result<FrameProgress, WireError> {
        if buf.len() <= FRAME_PREFIX_LEN {
            return Err(WireError::BufferTooSmall { required: FRAME_PREFIX_LEN + 1 });
        }
        let max_len = max_len.min(MAX_FRAME_LEN).min(buf.len() - FRAME_PREFIX_LEN);
        let mut consumed = 0;
        // Prefix first.
        while self.have < FRAME_PREFIX_LEN {
            let Some(&b) = input.get(consumed) else {
                return Ok(FrameProgress::NeedMore { consumed });
            };
            buf[self.have] = b;
            self.have += 1;
            consumed += 1;
        }
        let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        if len == 0 {
            self.have = 0;
            return Err(WireError::EmptyFrame);
        }
        if len > max_len {
            self.have = 0;
            return Err(WireError::FrameTooLarge { len, max: max_len });
        }
        let total = FRAME_PREFIX_LEN + len;
        let want = total - self.have;
        let take = want.min(input.len() - consumed);
        buf[self.have..self.have + take].copy_from_slice(&input[consumed..consumed + take]);
        self.have += take;
        consumed += take;
        if self.have == total {
            self.have = 0;
            Ok(FrameProgress::Frame { consumed, len })
        } else {
            Ok(FrameProgress::NeedMore { consumed })
        }
    }
}

/// Writes the 2-byte prefix for a body of `len` bytes.
pub fn write_prefix(out: &mut [u8], len: usize) -> Result<(), WireError> {
    let l = u16::try_from(len).map_err(|_| WireError::FrameTooLarge { len, max: MAX_FRAME_LEN })?;
    let dst = out.get_mut(..FRAME_PREFIX_LEN).ok_or(WireError::BufferTooSmall { required: FRAME_PREFIX_LEN })?;
    dst.copy_from_slice(&l.to_be_bytes());
    Ok(())
}
