//! Node configuration: every limit and timer, named, with the reason for its default.
//! The same names appear in `docs/PROTOCOL.md` §Constants and in every binding.

use core::time::Duration;

use heapless::Vec;

use crate::wire::{Hello, VersionRange, WireError, FRAME_PREFIX_LEN, MAX_FRAME_LEN, WIRE_VERSION};

/// Longest network id, in bytes.
pub const NETWORK_ID_MAX: usize = 32;

/// What a node does with a peer whose threat score is above the threshold (F05).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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

impl QueueShares {
    /// The shares of the three classes, in percent (`Config::validate` checks they sum to
    /// 100). The way to build one outside this crate: the struct is `#[non_exhaustive]`
    /// so that a class can be added, and a class added later gets 0 % here.
    pub const fn new(high: u8, normal: u8, low: u8) -> Self {
        QueueShares { high, normal, low }
    }
}

/// Everything a [`crate::Node`] can be told. `Config::default()` is a working node.
/// `Debug` never prints the network key.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Network id, bound into the prologue: nodes of different networks cannot connect (F03).
    pub network_id: Vec<u8, NETWORK_ID_MAX>,
    /// Optional pre-shared network key: outsiders cannot even complete a handshake (F03).
    /// Needs the `psk` feature (XXpsk3).
    #[cfg(feature = "psk")]
    pub network_key: Option<[u8; 32]>,
    /// Our node information, sent in the handshake (F15). `max_frame`, `max_datagram` and `max_message` are
    /// filled in by the node from the limits below.
    pub hello: Hello,
    /// Most sessions (connected plus handshaking), at most the slot table's length (the
    /// node lowers it to that).
    pub max_peers: usize,
    /// Most sessions still in the handshake (flood cap; WireGuard-style half-open bound).
    pub max_half_open: usize,
    /// Most handshakes in progress started by one remote IP address (inbound only), so
    /// that one source cannot take every half-open slot.
    pub max_half_open_per_ip: usize,
    /// Cookies (PROTOCOL.md §5.12): while this many inbound datagram handshakes are
    /// half-open, a new datagram Init must carry a valid `mac2` (a cookie proving its
    /// source address) or it gets a stateless Cookie reply and no Diffie-Hellman. 0 makes
    /// every new datagram Init need a cookie; above `max_half_open`, the half-open cap
    /// refuses (`Reject(Busy)`) before cookies are ever asked for. At most 65535.
    /// Streams never use cookies. Default 8, half of `max_half_open`.
    pub cookie_half_open: usize,
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
    /// Needs the `ik` feature.
    #[cfg(feature = "ik")]
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
    /// Datagram flow control (PROTOCOL.md §8.8): how many records this node lets a peer
    /// have in flight towards it, advertised in the Hello. Default 64; at most
    /// [`crate::session::DATAGRAM_WINDOW_MAX`]; 0 turns it off (as with a peer that does
    /// not advertise it). Streams are not affected.
    pub datagram_window: u32,
    /// Batching (PROTOCOL.md §9.2): the most packets this node seals into one record, and
    /// accepts in one, advertised in the Hello (extension `0x03`). Default 16; 1 turns it
    /// off (one packet per record, as with a peer that does not advertise it); at most 255.
    pub max_batch: usize,
}

impl Config {
    /// `self` changed by `f`: the struct-update expression of a `#[non_exhaustive]` struct,
    /// `Config::default().with(|c| c.max_message = 4096)`. The same as `let mut c =
    /// Config::default(); c.max_message = 4096;`, but usable where an expression is needed.
    #[must_use]
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network_id: Vec::from_slice(b"meshlink").unwrap_or_default(),
            #[cfg(feature = "psk")]
            network_key: None,
            hello: Hello::default(),
            max_peers: usize::MAX,
            max_half_open: 16,
            max_half_open_per_ip: 4,
            cookie_half_open: 8,
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
            #[cfg(feature = "ik")]
            ik_fast_path: true,
            rekey_after_time: Duration::from_secs(120),
            reject_after_time: Duration::from_secs(180),
            rekey_after_messages: 1 << 60,
            threat_threshold: 0.8,
            threat_policy: ThreatPolicy::Drop,
            min_version: WIRE_VERSION,
            max_version: WIRE_VERSION,
            datagram_window: 64,
            max_batch: 16,
        }
    }
}

/// Bounds of [`Config::validate`]: a timer outside them is a mistake, not a tuning.
pub mod bounds {
    use core::time::Duration;
    /// Shortest ping period: below it pings are a busy loop, not a liveness check.
    pub const MIN_PING_INTERVAL: Duration = Duration::from_millis(10);
    /// Shortest first handshake retransmission: below it a lost Resp becomes an Init storm.
    pub const MIN_HANDSHAKE_RETRY: Duration = Duration::from_millis(10);
    /// Longest of any timer: a day. Longer values are typos (seconds given as millis...).
    pub const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);
    /// Shortest key rotation period (WireGuard's is 120 s; a second is a test setting).
    pub const MIN_REKEY_AFTER_TIME: Duration = Duration::from_secs(1);
    /// Largest datagram: the most a UDP payload can carry over IPv4.
    pub const MAX_DATAGRAM: usize = 65_507;
}

/// Which configuration field is wrong, and why ([`Config::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The field's name, as in [`Config`] (and `docs/PROTOCOL.md` §Constants).
    pub field: &'static str,
    /// What it must be.
    pub problem: &'static str,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

impl core::fmt::Debug for Config {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("Config");
        d.field("network_id", &self.network_id);
        // The key is a secret: say only whether there is one.
        #[cfg(feature = "psk")]
        d.field("network_key", &self.network_key.as_ref().map(|_| "<redacted>"));
        d.field("hello", &self.hello);
        d.field("max_peers", &self.max_peers);
        d.field("max_half_open", &self.max_half_open);
        d.field("max_half_open_per_ip", &self.max_half_open_per_ip);
        d.field("cookie_half_open", &self.cookie_half_open);
        d.field("max_frame", &self.max_frame);
        d.field("max_datagram", &self.max_datagram);
        d.field("max_message", &self.max_message);
        d.field("send_queue", &self.send_queue);
        d.field("ping_interval", &self.ping_interval);
        d.field("pong_timeout", &self.pong_timeout);
        d.field("dead_peer_timeout", &self.dead_peer_timeout);
        d.field("handshake_timeout", &self.handshake_timeout);
        d.field("handshake_retry", &self.handshake_retry);
        d.field("handshake_retry_max", &self.handshake_retry_max);
        d.field("handshake_jitter", &self.handshake_jitter);
        #[cfg(feature = "ik")]
        d.field("ik_fast_path", &self.ik_fast_path);
        d.field("rekey_after_time", &self.rekey_after_time);
        d.field("reject_after_time", &self.reject_after_time);
        d.field("rekey_after_messages", &self.rekey_after_messages);
        d.field("threat_threshold", &self.threat_threshold);
        d.field("threat_policy", &self.threat_policy);
        d.finish()
    }
}

impl Config {
    /// Checks every limit and timer; [`crate::Node::new`] calls it. Zero or absurd values
    /// (a zero ping interval is a busy loop, a zero retransmission delay an Init storm) and
    /// inconsistent pairs are refused, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use bounds::*;
        let err = |field, problem| Err(ConfigError { field, problem });
        let timer = |d: Duration| d > Duration::ZERO && d <= MAX_TIMER;
        if self.max_peers == 0 {
            return err("max_peers", "must be at least 1");
        }
        if self.max_half_open == 0 {
            return err("max_half_open", "must be at least 1");
        }
        if self.max_half_open_per_ip == 0 {
            return err("max_half_open_per_ip", "must be at least 1");
        }
        if self.cookie_half_open > crate::node::MAX_SLOTS {
            // No node holds more sessions: a larger value is a typo, not "never".
            return err("cookie_half_open", "must be at most 65535");
        }
        if self.max_frame == 0 || self.max_frame > MAX_FRAME_LEN {
            return err("max_frame", "must be 1..=65535");
        }
        if self.max_frame < crate::session::HANDSHAKE_RECORD_MAX {
            return err("max_frame", "too small for a handshake record");
        }
        if self.max_datagram < crate::session::INIT_MAX_DATAGRAM.min(1200) {
            return err("max_datagram", "too small for a handshake");
        }
        if self.max_datagram > MAX_DATAGRAM {
            return err("max_datagram", "must be at most 65507 (a UDP payload)");
        }
        if self.max_message == 0 {
            return err("max_message", "must be at least 1");
        }
        if self.max_message > u32::MAX as usize {
            return err("max_message", "must fit in 32 bits");
        }
        if !timer(self.ping_interval) || self.ping_interval < MIN_PING_INTERVAL {
            return err("ping_interval", "must be 10 ms..=24 h");
        }
        if !timer(self.pong_timeout) {
            return err("pong_timeout", "must be above zero and at most 24 h");
        }
        if !timer(self.dead_peer_timeout) {
            return err("dead_peer_timeout", "must be above zero and at most 24 h");
        }
        if self.dead_peer_timeout <= self.ping_interval {
            // A peer answers a ping at the earliest one interval later: the timeout must
            // leave room for at least one.
            return err("dead_peer_timeout", "must exceed ping_interval");
        }
        if !timer(self.handshake_timeout) {
            return err("handshake_timeout", "must be above zero and at most 24 h");
        }
        if !timer(self.handshake_retry) || self.handshake_retry < MIN_HANDSHAKE_RETRY {
            return err("handshake_retry", "must be 10 ms..=24 h");
        }
        if !timer(self.handshake_retry_max) || self.handshake_retry_max < self.handshake_retry {
            return err("handshake_retry_max", "must be at least handshake_retry and at most 24 h");
        }
        if self.handshake_jitter > MAX_TIMER {
            return err("handshake_jitter", "must be at most 24 h");
        }
        if self.rekey_after_time < MIN_REKEY_AFTER_TIME || self.rekey_after_time > MAX_TIMER {
            return err("rekey_after_time", "must be 1 s..=24 h");
        }
        if self.rekey_after_time + self.ping_interval >= self.reject_after_time {
            // The peer must rotate (it does so when it sends, at least every ping) before
            // its key reaches reject_after_time at our end.
            return err("reject_after_time", "must exceed rekey_after_time + ping_interval");
        }
        if self.reject_after_time > MAX_TIMER * 2 {
            return err("reject_after_time", "must be at most 48 h");
        }
        if self.rekey_after_messages == 0 || self.rekey_after_messages >= crate::replay::REJECT_AFTER_MESSAGES {
            return err("rekey_after_messages", "must be 1..REJECT_AFTER_MESSAGES");
        }
        if !(0.0..=1.0).contains(&self.threat_threshold) {
            return err("threat_threshold", "must be 0..=1 (not NaN)");
        }
        if self.min_version == 0 || self.min_version > self.max_version {
            return err("min_version", "must be 1..=max_version");
        }
        let QueueShares { high, normal, low } = self.queue_shares;
        if u32::from(high) + u32::from(normal) + u32::from(low) != 100 {
            return err("queue_shares", "must sum to 100");
        }
        if self.class_caps()[1] < self.max_message.min(1024) + crate::buffers::ENTRY_PREFIX {
            return err("send_queue", "its normal share must hold at least one message");
        }
        if self.datagram_window > crate::session::DATAGRAM_WINDOW_MAX {
            return err("datagram_window", "must be at most 16384 records (0 = off)");
        }
        if self.max_batch == 0 || self.max_batch > 255 {
            return err("max_batch", "must be 1..=255 packets per record (1 = off)");
        }
        if self.max_chunk == 0 {
            return err("max_chunk", "must be at least 1");
        }
        Ok(())
    }

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

    pub(crate) fn rx_len(&self) -> usize {
        // Stream frames need the prefix; datagrams are decrypted into the same space.
        (FRAME_PREFIX_LEN + self.max_frame).max(self.max_datagram)
    }
}
