//! The node's error type: one enum, typed variants carrying the numbers a user needs.

use core::fmt;

use crate::config::ConfigError;
use crate::identity::PeerId;
use crate::noise::NoiseError;
use crate::replay::ReplayError;
use crate::wire::{RejectCode, VersionRange, WireError};

/// Everything that can go wrong in the node, from hostile bytes to a full queue.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Bytes from the network did not decode.
    Wire(WireError),
    /// The Noise layer refused: authentication failure, low-order key, out of order...
    Noise(NoiseError),
    /// A datagram counter was replayed, too old, or past the reject limit.
    Replay(ReplayError),
    /// No session with this connection id (it may have closed).
    UnknownConn,
    /// No connected session with this peer.
    UnknownPeer,
    /// The session exists but has not finished its handshake.
    NotConnected,
    /// The call does not fit this session's transport (for example `handle_stream` on a datagram session).
    WrongTransport,
    /// All peer slots are in use.
    PeerLimit { limit: usize },
    /// Too many handshakes in progress.
    HalfOpenLimit { limit: usize },
    /// `connect` named a key and the peer proved another one (F04).
    PeerKeyMismatch { expected: PeerId, got: PeerId },
    /// The responder refused our initiation.
    Rejected(RejectCode),
    /// The peer is on another network (network tag mismatch).
    NetworkMismatch,
    /// The peer's wire versions and ours do not overlap (or the peer chose one outside ours).
    VersionMismatch { ours: VersionRange, theirs: VersionRange },
    /// The peer used a handshake pattern this node does not accept (e.g. no network key).
    PatternMismatch,
    /// The handshake did not finish within `handshake_timeout`.
    HandshakeTimeout,
    /// Nothing authenticated arrived within `dead_peer_timeout`.
    PeerTimeout,
    /// A message larger than the limit (ours on send, the peer's on receive).
    TooLarge { size: usize, max: usize },
    /// A send call was given a kind it does not take: `send_kind` takes application kinds
    /// (`0x40..=0x7f`) only, `send_with` also Data (`0x03`).
    InvalidKind { kind: u8 },
    /// The per-peer send queue (of the message's priority class) cannot take this message now.
    QueueFull { needed: usize, free: usize },
    /// The peer's threat score is above the threshold (F05).
    Threat,
    /// A record arrived under a key older than `reject_after_time`.
    KeyExpired,
    /// A received message waits in `poll_event`; drain events, then feed the rest.
    WouldBlock,
    /// A record that does not belong in the session's current state.
    UnexpectedRecord,
    /// A caller buffer is too small.
    BufferTooSmall { required: usize },
    /// The configuration is inconsistent; the text says what (adapters' own checks).
    Config(&'static str),
    /// A configuration field is zero, absurd or inconsistent ([`crate::Config::validate`]).
    InvalidConfig(ConfigError),
    /// The buffer pool had no buffer for this session (a fixed pool smaller than the slot
    /// table, or a slot built without one).
    NoBuffer,
    /// The handshake reached our own static key: this node dialled itself.
    SelfConnect,
    /// The half-open table was full and a newer inbound handshake took this one's place.
    HandshakeEvicted,
    /// A datagram Init whose `mac1` is wrong (PROTOCOL.md §5.12): dropped unanswered.
    BadMac1,
    /// A datagram Init under load whose non-zero `mac2` is not valid (a cookie from a
    /// rotated secret or another address, or forged): answered with a fresh Cookie.
    BadMac2,
    /// A datagram Init under load without a cookie (zero `mac2`): answered with a Cookie
    /// reply, no session created.
    CookieRequired,
    /// The call needs a crate feature this build leaves out (for example
    /// `connect(TransportKind::Datagram, ..)` without `datagram`); `feature` names it.
    Unsupported { feature: &'static str },
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::InvalidConfig(e)
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::Wire(e)
    }
}
impl From<NoiseError> for Error {
    fn from(e: NoiseError) -> Self {
        Error::Noise(e)
    }
}
impl From<ReplayError> for Error {
    fn from(e: ReplayError) -> Self {
        Error::Replay(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Wire(e) => write!(f, "wire: {e}"),
            Error::Noise(e) => write!(f, "noise: {e}"),
            Error::Replay(e) => write!(f, "replay: {e:?}"),
            Error::UnknownConn => f.write_str("unknown connection"),
            Error::UnknownPeer => f.write_str("peer not connected"),
            Error::NotConnected => f.write_str("handshake not finished"),
            Error::WrongTransport => f.write_str("wrong transport for this session"),
            Error::PeerLimit { limit } => write!(f, "peer limit of {limit} reached"),
            Error::HalfOpenLimit { limit } => write!(f, "half-open handshake limit of {limit} reached"),
            Error::PeerKeyMismatch { expected, got } => write!(f, "peer key mismatch: expected {expected}, got {got}"),
            Error::Rejected(c) => write!(f, "rejected by responder: {c:?}"),
            Error::NetworkMismatch => f.write_str("peer is on another network"),
            Error::VersionMismatch { ours, theirs } => {
                write!(f, "peer speaks wire version {theirs}, this node {ours}")
            }
            Error::PatternMismatch => f.write_str("handshake pattern not accepted (network key mismatch?)"),
            Error::HandshakeTimeout => f.write_str("handshake timed out"),
            Error::PeerTimeout => f.write_str("peer timed out"),
            Error::TooLarge { size, max } => write!(f, "message of {size} bytes exceeds the limit of {max}"),
            Error::InvalidKind { kind } => write!(f, "packet kind 0x{kind:02x} cannot be sent here"),
            Error::QueueFull { needed, free } => write!(f, "send queue full: {needed} bytes needed, {free} free"),
            Error::Threat => f.write_str("peer refused: threat score above threshold"),
            Error::KeyExpired => f.write_str("record under an expired key"),
            Error::WouldBlock => f.write_str("a received message is waiting in poll_event"),
            Error::UnexpectedRecord => f.write_str("unexpected record for the session state"),
            Error::BufferTooSmall { required } => write!(f, "buffer too small: {required} bytes required"),
            Error::Config(field) => write!(f, "invalid configuration: {field}"),
            Error::InvalidConfig(e) => write!(f, "invalid configuration: {e}"),
            Error::NoBuffer => f.write_str("no slot buffer available for the session"),
            Error::SelfConnect => f.write_str("the peer is this node itself"),
            Error::HandshakeEvicted => f.write_str("handshake evicted by a newer one (half-open table full)"),
            Error::BadMac1 => f.write_str("datagram Init with a bad mac1"),
            Error::BadMac2 => f.write_str("datagram Init under load with a bad mac2 (cookie reply sent)"),
            Error::CookieRequired => f.write_str("datagram Init under load without a cookie (cookie reply sent)"),
            Error::Unsupported { feature } => write!(f, "not in this build: needs the `{feature}` feature"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
