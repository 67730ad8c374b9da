//! The plain structs of the managed layer. Each growable struct ends in reserved bytes
//! (zero them) so that fields can be appended without breaking the ABI.

/// How a managed node starts. Zero it (`memset`) and set what you need: every zero field
/// means its default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MeshlinkConfig {
    /// TCP port to listen on, on 127.0.0.1 only when `listen_any` is 0; 0: an ephemeral port.
    pub tcp_port: u16,
    /// Non-zero: listen on 0.0.0.0 instead of loopback.
    pub listen_any: u8,
    /// Events kept for `meshlink_node_poll_event` before the oldest undelivered ones are
    /// dropped (and counted in a `LAGGED` event); 0: [`DEFAULT_EVENT_CAPACITY`].
    pub event_capacity: u32,
    /// Must be zero.
    pub reserved: [u8; 32],
}

/// The event queue's capacity when the config leaves it 0.
pub const DEFAULT_EVENT_CAPACITY: u32 = 1024;

/// A peer's public key, its identity (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshlinkPeerId {
    pub bytes: [u8; 32],
}

/// A connection's quality figures. Unknown figures are 0 (`has_rtt` says whether the RTT
/// is measured yet).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MeshlinkQuality {
    /// 1 once a round trip was measured.
    pub has_rtt: u8,
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u64,
    /// RFC 3550 jitter of the ping round trips, microseconds.
    pub jitter_us: u64,
    /// Loss over the last 64 pings, 0..=1.
    pub loss: f32,
    /// Receive and send rates, bytes per second.
    pub bw_in_bps: u64,
    pub bw_out_bps: u64,
    /// Overall score, 0..=1 (1 best).
    pub score: f32,
    pub reserved: [u8; 32],
}

/// A connected peer.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MeshlinkPeerInfo {
    pub peer: MeshlinkPeerId,
    /// Its address as text, NUL-terminated (`127.0.0.1:7400`, `[::1]:7400`).
    pub addr: [u8; 64],
    /// Its announced name, NUL-terminated, truncated to 63 bytes.
    pub name: [u8; 64],
    /// The transport: 0 tcp, 1 ws, 2 udp.
    pub transport: u32,
    /// Its threat score, 0..=1.
    pub threat: f32,
    /// Milliseconds since the session was confirmed.
    pub connected_ms: u64,
    pub quality: MeshlinkQuality,
    pub reserved: [u8; 32],
}

/// What a `meshlink_event` is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshlinkEventKind {
    /// No event (the struct's value after a failed poll).
    None = 0,
    /// A session was confirmed with `peer`.
    Connected = 1,
    /// The session with `peer` ended.
    Disconnected = 2,
    /// `peer` sent the message in the data buffer.
    Message = 3,
    /// `quality` of `peer` was updated.
    Quality = 4,
    /// `peer` asks `subject` of a served pattern, body in the data buffer; answer it with
    /// `meshlink_node_respond(node, &peer, request_id, ...)`.
    Request = 5,
    /// A publication on `subject` from a subscription (`sub_id`), body in the data buffer.
    Publication = 6,
    /// The queue was full: `dropped` events were lost before this one.
    Lagged = 7,
}

/// One event. Its bytes (message, request or publication body) are copied into the
/// caller's buffer by `meshlink_node_poll_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MeshlinkEvent {
    pub kind: MeshlinkEventKind,
    pub peer: MeshlinkPeerId,
    /// The body's length (written also when the buffer was too small).
    pub data_len: usize,
    /// `REQUEST`: the id to answer. `PUBLICATION`: the subscription id.
    pub request_id: u64,
    pub sub_id: u64,
    /// `LAGGED`: events lost.
    pub dropped: u64,
    /// `REQUEST`/`PUBLICATION`: the subject, NUL-terminated (subjects are at most 255 bytes).
    pub subject: [u8; 256],
    /// `QUALITY`/`CONNECTED`: the figures.
    pub quality: MeshlinkQuality,
    pub reserved: [u8; 32],
}

/// One peer's outcome in `meshlink_node_send_many`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MeshlinkSendResult {
    pub peer: MeshlinkPeerId,
    pub result: crate::MeshlinkResult,
}
