//! Node configuration: every limit and timer, named, with the reason for its default.
//! The same names appear in `docs/PROTOCOL.md` §Constants and in every binding.

use core::time::Duration;

use heapless::Vec;

use crate::wire::{Hello, VersionRange, WireError, FRAME_PREFIX_LEN, MAX_FRAME_LEN, WIRE_VERSION};

/// Longest network id, in bytes.
pub const NETWORK_ID_MAX: usize = 32;

/// What a node does with a peer whose threat score is above the threshold (F05).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreatPolicy {
    /// Refuse new handshakes from the peer; an existing session stays.
    Refuse,
    /// Refuse new handshakes and close the existing session at once.
    Drop,
}

/// How a peer's send queue (`Config::send_queue` bytes) is split between the priority
/// classes ([`crate::Priority`]), in percent; the three sum to 100. Each class is a FIFO with
/// its own byte cap, so a full class refuses only its own messages (`QueueFull`). A class
/// with 0 % refuses every message. Default 10 / 60 / 30: the low class holds a whole
/// default-size (64 KiB) message, the high class is for small urgent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueShares {
    pub high: u8,
    pub normal: u8,
    pub low: u8,
}

impl Default for QueueShares {
    fn default() -> Self {
        QueueShares { high: 10, normal: 60, low: 30 }
    }
}

/// Everything a [`crate::Node`] can be told. `Config::default()` is a working node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Network id, bound into the prologue: nodes of different networks cannot connect (F03).
    pub network_id: Vec<u8, NETWORK_ID_MAX>,
    /// Optional pre-shared network key: outsiders cannot even complete a handshake (F03).
    pub network_key: Option<[u8; 32]>,
    /// Our node information, sent in the handshake (F15). `max_frame`, `max_datagram` and `max_message` are
    /// filled in by the node from the limits below.
    pub hello: Hello,
    /// Most sessions (connected plus handshaking), at most the node's `PEERS` capacity.
    pub max_peers: usize,
    /// Most sessions still in the handshake (flood cap; WireGuard-style half-open bound).
    pub max_half_open: usize,
    /// Most handshakes in progress started by one remote IP address (inbound only), so
    /// that one source cannot take every half-open slot.
    pub max_half_open_per_ip: usize,
    /// Largest stream frame body accepted, at most 65535 and the per-peer buffer.
    pub max_frame: usize,
    /// Largest datagram sent or accepted. 1200 keeps clear of IP fragmentation (as QUIC).
    pub max_datagram: usize,
    /// Largest application message (F31). Larger messages are refused with `TooLarge`;
    /// messages larger than one record are chunked and reassembled.
    pub max_message: usize,
    /// Bytes of queued outgoing messages per peer; a full queue refuses `send` with `QueueFull`.
    pub send_queue: usize,
    /// How `send_queue` is split between the priority classes.
    pub queue_shares: QueueShares,
    /// Most message bytes in one record. A record is the unit at which a higher priority
    /// class overtakes a long message, so this bounds how long an urgent message waits
    /// behind a bulk one: 16 KiB, TLS's largest record.
    pub max_chunk: usize,
    /// Ping period (F12): 5 s, as the node daemon users already know.
    pub ping_interval: Duration,
    /// A ping without a pong after this long counts as lost.
    pub pong_timeout: Duration,
    /// No authenticated record for this long ends the session with `Disconnected(Timeout)`.
    pub dead_peer_timeout: Duration,
    /// Whole-handshake deadline; also how long a responder keeps a half-open handshake.
    pub handshake_timeout: Duration,
    /// First handshake retransmission delay on datagrams; doubles up to `handshake_retry_max`.
    pub handshake_retry: Duration,
    /// Cap of the retransmission delay: WireGuard's REKEY_TIMEOUT (5 s).
    pub handshake_retry_max: Duration,
    /// Random jitter added to each retransmission: WireGuard's 334 ms.
    pub handshake_jitter: Duration,
    /// Use the IK pattern when `connect` names the peer's key and no network key is set.
    pub ik_fast_path: bool,
    /// Rotate the sending key after this long: WireGuard's REKEY_AFTER_TIME (120 s).
    pub rekey_after_time: Duration,
    /// Refuse records under a receive key older than this: WireGuard's REJECT_AFTER_TIME (180 s).
    /// Records under the previous key are accepted for `reject_after_time - rekey_after_time`
    /// after a rotation. Must exceed `rekey_after_time + ping_interval`.
    pub reject_after_time: Duration,
    /// Rotate the sending key after this many records: WireGuard's REKEY_AFTER_MESSAGES (2^60).
    pub rekey_after_messages: u64,
    /// Threat score above which the policy applies (F05).
    pub threat_threshold: f32,
    pub threat_policy: ThreatPolicy,
    /// Lowest wire version this node accepts (PROTOCOL.md §3). Default [`WIRE_VERSION`].
    pub min_version: u8,
    /// Highest wire version this node announces. Default [`WIRE_VERSION`]. This code speaks
    /// the version-2 format under every number of its range; other ranges exist to test
    /// negotiation and for a later implementation. `1 <= min_version <= max_version`.
    pub max_version: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network_id: Vec::from_slice(b"meshlink").unwrap_or_default(),
            network_key: None,
            hello: Hello::default(),
            max_peers: usize::MAX,
            max_half_open: 16,
            max_half_open_per_ip: 4,
            max_frame: MAX_FRAME_LEN,
            max_datagram: 1200,
            max_message: 64 * 1024,
            send_queue: 256 * 1024,
            queue_shares: QueueShares::default(),
            max_chunk: 16 * 1024,
            ping_interval: Duration::from_secs(5),
            pong_timeout: Duration::from_secs(5),
            dead_peer_timeout: Duration::from_secs(20),
            handshake_timeout: Duration::from_secs(30),
            handshake_retry: Duration::from_secs(1),
            handshake_retry_max: Duration::from_secs(5),
            handshake_jitter: Duration::from_millis(334),
            ik_fast_path: true,
            rekey_after_time: Duration::from_secs(120),
            reject_after_time: Duration::from_secs(180),
            rekey_after_messages: 1 << 60,
            threat_threshold: 0.8,
            threat_policy: ThreatPolicy::Drop,
            min_version: WIRE_VERSION,
            max_version: WIRE_VERSION,
        }
    }
}

impl Config {
    /// Sets the network id.
    pub fn with_network_id(mut self, id: &[u8]) -> Result<Self, WireError> {
        self.network_id = Vec::from_slice(id).map_err(|_| WireError::FieldTooLong { limit: NETWORK_ID_MAX })?;
        Ok(self)
    }

    /// The wire versions this node speaks.
    pub fn versions(&self) -> VersionRange {
        VersionRange { min: self.min_version, max: self.max_version }
    }

    /// Bytes a peer slot buffer needs for this configuration: one frame, one message and
    /// the send queue.
    pub fn slot_buffer_len(&self) -> usize {
        self.rx_len() + self.max_message + self.send_queue
    }

    /// The byte cap of each priority class's queue (high, normal, low): its share of
    /// `send_queue`, the normal class taking the rounding remainder so they sum exactly.
    pub fn class_caps(&self) -> [usize; 3] {
        let share = |pct: u8| self.send_queue / 100 * usize::from(pct) + self.send_queue % 100 * usize::from(pct) / 100;
        let (high, low) = (share(self.queue_shares.high), share(self.queue_shares.low));
        [high, self.send_queue.saturating_sub(high + low), low]
    }

    /// Checks the send queue settings: shares that sum to 100, a normal class that holds
    /// at least one message of `min(max_message, 1024)` bytes (so `send` can work), and a
    /// `max_chunk` of at least 1.
    pub(crate) fn check_queues(&self) -> Result<(), crate::Error> {
        let QueueShares { high, normal, low } = self.queue_shares;
        if u32::from(high) + u32::from(normal) + u32::from(low) != 100 {
            return Err(crate::Error::Config("queue_shares must sum to 100"));
        }
        if self.class_caps()[1] < self.max_message.min(1024) + crate::buffers::ENTRY_PREFIX {
            return Err(crate::Error::Config("send_queue's normal share must hold at least one message"));
        }
        if self.max_chunk == 0 {
            return Err(crate::Error::Config("max_chunk must be at least 1"));
        }
        Ok(())
    }

    pub(crate) fn rx_len(&self) -> usize {
        // Stream frames need the prefix; datagrams are decrypted into the same space.
        (FRAME_PREFIX_LEN + self.max_frame).max(self.max_datagram)
    }
}
