//! Host values to C structs and host errors to result codes.

use std::ffi::{c_char, CStr};

use meshlink_core::{PeerId, Quality};
use meshlink_host::{HostError, PeerSummary, Transport};

use super::types::{MeshlinkPeerId, MeshlinkPeerInfo, MeshlinkQuality};
use crate::MeshlinkResult;

pub(crate) fn result_of(e: &HostError) -> MeshlinkResult {
    use MeshlinkResult as R;
    match e {
        HostError::Timeout | HostError::ConnectTimeout { .. } => R::Timeout,
        HostError::NoResponders => R::NoResponders,
        HostError::Cancelled => R::Cancelled,
        HostError::Failed { .. } => R::RemoteError,
        HostError::Refused { .. } | HostError::Handshake { .. } => R::Refused,
        HostError::Disconnected | HostError::NotDelivered => R::UnknownPeer,
        HostError::Stopped => R::Closed,
        HostError::Io { .. } | HostError::File { .. } | HostError::Resolve { .. } | HostError::WebSocket { .. } => {
            R::Io
        }
        HostError::InvalidUrl { .. } => R::InvalidArgument,
        HostError::Config(_) | HostError::Key(_) => R::Config,
        HostError::ConnectionLimit { .. } | HostError::PendingLimit { .. } => R::Limit,
        HostError::Core(c) => core_result(c),
        HostError::Messaging(_) => R::InvalidArgument,
        _ => R::Other,
    }
}

fn core_result(e: &meshlink_core::Error) -> MeshlinkResult {
    // The core's error text names the case; its variants are many and grow, so the
    // mapping goes by the few a caller acts on and leaves the rest to `Other`.
    let text = format!("{e:?}");
    if text.starts_with("UnknownPeer") || text.starts_with("NotConnected") {
        MeshlinkResult::UnknownPeer
    } else if text.contains("TooLarge") || text.contains("Full") || text.contains("Limit") {
        MeshlinkResult::Limit
    } else {
        MeshlinkResult::Other
    }
}

pub(crate) fn quality(q: &Quality) -> MeshlinkQuality {
    MeshlinkQuality {
        has_rtt: u8::from(q.rtt_us.is_some()),
        rtt_us: q.rtt_us.unwrap_or(0),
        jitter_us: q.jitter_us,
        loss: q.loss,
        bw_in_bps: q.bw_in_bps,
        bw_out_bps: q.bw_out_bps,
        score: q.score,
        reserved: [0; 32],
    }
}

pub(crate) fn peer_id(p: &PeerId) -> MeshlinkPeerId {
    MeshlinkPeerId { bytes: *p.as_bytes() }
}

/// Copies `s` NUL-terminated into `dst`, truncated at a char boundary.
pub(crate) fn fill_text<const N: usize>(dst: &mut [u8; N], s: &str) {
    let mut end = s.len().min(N - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    dst[..end].copy_from_slice(&s.as_bytes()[..end]);
    dst[end..].fill(0);
}

pub(crate) fn peer_info(p: &PeerSummary) -> MeshlinkPeerInfo {
    let mut info = MeshlinkPeerInfo {
        peer: peer_id(&p.peer),
        addr: [0; 64],
        name: [0; 64],
        transport: match p.transport {
            Transport::Tcp => 0,
            Transport::Ws => 1,
            Transport::Udp => 2,
            _ => 3,
        },
        threat: p.threat,
        connected_ms: u64::try_from(p.connected_for.as_millis()).unwrap_or(u64::MAX),
        quality: quality(&p.quality),
        reserved: [0; 32],
    };
    fill_text(&mut info.addr, &p.addr.to_string());
    fill_text(&mut info.name, &p.name);
    info
}

/// A NUL-terminated UTF-8 C string, `None` if NULL or not UTF-8.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn text<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_str().ok()
}

/// A byte slice from a C pointer and length (`NULL, 0` is the empty slice).
///
/// # Safety
/// `p` is NULL with `len == 0`, or points to `len` readable bytes valid for `'a`.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        return (len == 0).then_some(&[][..]);
    }
    // SAFETY: the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(p, len) })
}
