//! `FrameDecoder::push` under arbitrary chunking, limits and buffer sizes, checked against
//! a one-shot reference decoder: however the bytes are split, the decoder must yield the
//! same frames and fail at the same frame as the reference.

use arbitrary::{Result, Unstructured};
use meshlink_core::wire::frame::{FrameDecoder, FrameProgress};
use meshlink_core::wire::{WireError, FRAME_PREFIX_LEN, MAX_FRAME_LEN};

/// The reference: decodes the whole stream at once. Returns the frame bodies, the error
/// (if any) that ends the stream, and the bytes left over after the last whole frame.
fn reference(data: &[u8], buf_len: usize, max_len: usize) -> (Vec<&[u8]>, Option<WireError>, usize) {
    if buf_len <= FRAME_PREFIX_LEN {
        return (Vec::new(), Some(WireError::BufferTooSmall { required: FRAME_PREFIX_LEN + 1 }), 0);
    }
    let max = max_len.min(MAX_FRAME_LEN).min(buf_len - FRAME_PREFIX_LEN);
    let mut frames = Vec::new();
    let mut at = 0;
    while data.len() - at >= FRAME_PREFIX_LEN {
        let len = usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
        if len == 0 {
            return (frames, Some(WireError::EmptyFrame), 0);
        }
        if len > max {
            return (frames, Some(WireError::FrameTooLarge { len, max }), 0);
        }
        let Some(body) = data.get(at + FRAME_PREFIX_LEN..at + FRAME_PREFIX_LEN + len) else { break };
        frames.push(body);
        at += FRAME_PREFIX_LEN + len;
    }
    (frames, None, data.len() - at)
}

pub fn run(data: &[u8]) {
    let _ = run_inner(&mut Unstructured::new(data));
}

fn run_inner(u: &mut Unstructured<'_>) -> Result<()> {
    // Mostly small buffers (cheap, and they hit the limits), sometimes a full 64 KiB one.
    let buf_len = if u.ratio(1, 16)? { u.int_in_range(0..=MAX_FRAME_LEN + 8)? } else { u.int_in_range(0..=600)? };
    let max_len = match u.int_in_range(0..=3)? {
        0 => usize::MAX,
        1 => MAX_FRAME_LEN,
        _ => usize::from(u.arbitrary::<u16>()?),
    };
    let chunk_sizes: Vec<u8> = u.arbitrary()?;
    let stream = u.bytes(u.len())?;
    let (want_frames, want_err, leftover) = reference(stream, buf_len, max_len);

    let mut buf = vec![0u8; buf_len];
    let mut dec = FrameDecoder::new();
    let mut got = 0usize;
    let mut pos = 0usize;
    let mut sizes = chunk_sizes.iter().cycle();
    // All-zero sizes would never advance: feed everything at once instead.
    let all_zero = chunk_sizes.iter().all(|&s| s == 0);
    loop {
        // A chunk size of 0 is a legal empty read. At least one push happens, even for empty input.
        let size = if all_zero { stream.len() - pos } else { usize::from(*sizes.next().unwrap()) };
        let chunk = &stream[pos..(pos + size).min(stream.len())];
        let mut used = 0;
        loop {
            match dec.push(&mut buf, &chunk[used..], max_len) {
                Err(e) => {
                    assert_eq!(Some(e), want_err, "error differs from the reference after {got} frames");
                    assert_eq!(got, want_frames.len(), "decoder failed early");
                    assert!(!dec.is_mid_frame(), "decoder keeps a partial frame after an error");
                    return Ok(());
                }
                Ok(FrameProgress::NeedMore { consumed }) => {
                    assert_eq!(used + consumed, chunk.len(), "NeedMore must consume the whole chunk");
                    break;
                }
                Ok(FrameProgress::Frame { consumed, len }) => {
                    assert!(consumed > 0 && consumed <= chunk.len() - used);
                    used += consumed;
                    let want = want_frames.get(got).expect("decoder produced a frame the reference did not");
                    assert_eq!(&buf[FRAME_PREFIX_LEN..FRAME_PREFIX_LEN + len], *want, "frame {got} differs");
                    got += 1;
                    if used == chunk.len() {
                        break;
                    }
                }
            }
        }
        pos += chunk.len();
        if pos >= stream.len() {
            break;
        }
    }
    // All input fed: every complete frame was produced; an error is only still owed if
    // the reference met it (it can only be detected once both prefix bytes are in).
    assert_eq!(got, want_frames.len(), "decoder missed frames");
    assert_eq!(want_err, None, "reference failed but the decoder accepted everything");
    assert_eq!(dec.is_mid_frame(), leftover > 0, "partial-frame state differs from the reference");
    Ok(())
}
