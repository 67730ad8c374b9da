//! Result codes: one per distinct thing a caller can do about a failure.

use std::ffi::c_char;

/// The result of every fallible call. `MESHLINK_RESULT_OK` is 0; codes are stable across
/// releases (new codes are appended).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshlinkResult {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL, a string was not UTF-8, or an argument was out of range.
    InvalidArgument = 1,
    /// The caller's buffer is too small; the needed size was written to the size output.
    BufferTooSmall = 2,
    /// Nothing to do now (no event, no packet, a full queue): try again later.
    WouldBlock = 3,
    /// The operation did not finish within its timeout.
    Timeout = 4,
    /// No such peer, or it is not connected.
    UnknownPeer = 5,
    /// The peer's network, version, pattern or key did not match, or it refused us.
    Refused = 6,
    /// A configured limit was reached (peers, pending requests, subscriptions, sizes).
    Limit = 7,
    /// Malformed bytes from the network or in a vector: dropped, nothing else changed.
    Malformed = 8,
    /// The peer has no handler for the request's subject or service.
    NoResponders = 9,
    /// The request was cancelled.
    Cancelled = 10,
    /// The remote handler failed; its message is in the response.
    RemoteError = 11,
    /// A transport or OS error (address in use, connection refused).
    Io = 12,
    /// The node was stopped.
    Closed = 13,
    /// The node's configuration is invalid.
    Config = 14,
    /// Another failure the codes above do not name.
    Other = 15,
    /// A Rust panic was caught at the boundary: the handle's state is unknown, free it.
    Panic = 16,
}

impl MeshlinkResult {
    fn message(self) -> &'static [u8] {
        match self {
            Self::Ok => b"ok\0",
            Self::InvalidArgument => b"invalid argument (NULL pointer, bad UTF-8 or out of range)\0",
            Self::BufferTooSmall => b"buffer too small (the needed size was written)\0",
            Self::WouldBlock => b"would block: nothing to do now, try again later\0",
            Self::Timeout => b"timed out\0",
            Self::UnknownPeer => b"unknown or disconnected peer\0",
            Self::Refused => b"refused by the peer (network, version, pattern or key)\0",
            Self::Limit => b"a configured limit was reached\0",
            Self::Malformed => b"malformed input: dropped\0",
            Self::NoResponders => b"no responders for that subject or service\0",
            Self::Cancelled => b"cancelled\0",
            Self::RemoteError => b"the remote handler failed\0",
            Self::Io => b"transport or OS error\0",
            Self::Closed => b"the node is stopped\0",
            Self::Config => b"invalid configuration\0",
            Self::Other => b"error\0",
            Self::Panic => b"internal panic caught at the C boundary; free the handle\0",
        }
    }
}

/// A static, NUL-terminated English description of `result`; an unknown code gives
/// "unknown result code". Never NULL; the caller must not free it.
///
/// Thread safety: any thread, any time.
#[no_mangle]
pub extern "C" fn meshlink_result_message(result: u32) -> *const c_char {
    let all = [
        MeshlinkResult::Ok,
        MeshlinkResult::InvalidArgument,
        MeshlinkResult::BufferTooSmall,
        MeshlinkResult::WouldBlock,
        MeshlinkResult::Timeout,
        MeshlinkResult::UnknownPeer,
        MeshlinkResult::Refused,
        MeshlinkResult::Limit,
        MeshlinkResult::Malformed,
        MeshlinkResult::NoResponders,
        MeshlinkResult::Cancelled,
        MeshlinkResult::RemoteError,
        MeshlinkResult::Io,
        MeshlinkResult::Closed,
        MeshlinkResult::Config,
        MeshlinkResult::Other,
        MeshlinkResult::Panic,
    ];
    let msg = all.iter().find(|r| **r as u32 == result).map_or(&b"unknown result code\0"[..], |r| r.message());
    msg.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_code_has_its_own_message() {
        let mut seen = std::collections::HashSet::new();
        for code in 0..=16u32 {
            let m = unsafe { CStr::from_ptr(meshlink_result_message(code)) }.to_str().unwrap();
            assert!(seen.insert(m.to_owned()), "code {code} repeats {m:?}");
        }
        let unknown = unsafe { CStr::from_ptr(meshlink_result_message(999)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown result code");
    }
}
