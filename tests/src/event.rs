//! Owned copies of the node's events, and the trace hash they feed.

use core::net::SocketAddr;

use blake2::{Blake2s256, Digest};
use meshlink_core::{ConnId, DisconnectReason, ErrorCode, Event, Instant, PeerId, Quality, TransportKind};

/// An [`Event`] copied out of the node, so it outlives the next `poll_event`.
#[derive(Debug, Clone, PartialEq)]
pub enum SimEvent {
    Connected { peer: PeerId, conn: ConnId, kind: TransportKind, addr: SocketAddr, quality: Quality },
    Message { peer: PeerId, conn: ConnId, data: Vec<u8> },
    Quality { peer: PeerId, conn: ConnId, quality: Quality },
    RemoteError { peer: PeerId, conn: ConnId, code: ErrorCode },
    Disconnected { peer: Option<PeerId>, conn: ConnId, addr: SocketAddr, reason: DisconnectReason, was_connected: bool },
}

/// An event with the virtual time it was polled at.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEvent {
    pub at: Instant,
    pub event: SimEvent,
}

impl SimEvent {
    pub(crate) fn from_core(ev: Event<'_>) -> Self {
        match ev {
            Event::Connected { conn, peer, addr, kind, quality, .. } => {
                SimEvent::Connected { peer, conn, kind, addr, quality }
            }
            Event::Message { conn, peer, data, .. } => SimEvent::Message { peer, conn, data: data.to_vec() },
            Event::QualityUpdate { conn, peer, quality } => SimEvent::Quality { peer, conn, quality },
            Event::RemoteError { conn, peer, code } => SimEvent::RemoteError { peer, conn, code },
            Event::Disconnected { conn, peer, addr, was_connected, reason } => {
                SimEvent::Disconnected { peer, conn, addr, reason, was_connected }
            }
        }
    }

    /// The connection the event belongs to.
    pub fn conn(&self) -> ConnId {
        match self {
            SimEvent::Connected { conn, .. }
            | SimEvent::Message { conn, .. }
            | SimEvent::Quality { conn, .. }
            | SimEvent::RemoteError { conn, .. }
            | SimEvent::Disconnected { conn, .. } => *conn,
        }
    }

    /// Feeds every field into the trace hash. Floats go in by bit pattern, so equal
    /// traces hash equal and any difference shows.
    pub(crate) fn hash_into(&self, h: &mut Blake2s256) {
        match self {
            SimEvent::Connected { peer, conn, kind, addr, quality } => {
                h.update([1]);
                h.update(peer.as_bytes());
                h.update(conn.0.to_le_bytes());
                h.update([*kind as u8]);
                h.update(addr.to_string());
                hash_quality(h, quality);
            }
            SimEvent::Message { peer, conn, data } => {
                h.update([2]);
                h.update(peer.as_bytes());
                h.update(conn.0.to_le_bytes());
                h.update((data.len() as u64).to_le_bytes());
                h.update(data);
            }
            SimEvent::Quality { peer, conn, quality } => {
                h.update([3]);
                h.update(peer.as_bytes());
                h.update(conn.0.to_le_bytes());
                hash_quality(h, quality);
            }
            SimEvent::RemoteError { peer, conn, code } => {
                h.update([4]);
                h.update(peer.as_bytes());
                h.update(conn.0.to_le_bytes());
                h.update(code.to_u16().to_le_bytes());
            }
            SimEvent::Disconnected { peer, conn, addr, reason, was_connected } => {
                h.update([5]);
                h.update(peer.map_or([0; 32], |p| p.0));
                h.update(conn.0.to_le_bytes());
                h.update(addr.to_string());
                // DisconnectReason carries nested enums; its Debug text is complete and stable.
                h.update(format!("{reason:?}"));
                h.update([u8::from(*was_connected)]);
            }
        }
    }
}

fn hash_quality(h: &mut Blake2s256, q: &Quality) {
    for v in [q.rtt_us.unwrap_or(u64::MAX), q.rtt_min_us.unwrap_or(u64::MAX), q.rtt_var_us, q.jitter_us] {
        h.update(v.to_le_bytes());
    }
    for v in [q.pings_sent, q.pongs_received, q.pings_lost, q.bw_in_bps, q.bw_out_bps] {
        h.update(v.to_le_bytes());
    }
    let c = &q.counters;
    for v in [c.bytes_in, c.bytes_out, c.msgs_in, c.msgs_out] {
        h.update(v.to_le_bytes());
    }
    h.update(q.loss.to_bits().to_le_bytes());
    h.update(q.score.to_bits().to_le_bytes());
}
