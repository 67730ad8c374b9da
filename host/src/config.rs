//! Host configuration: listen addresses, limits, timers and node identity settings.
//!
//! Every field has a default good enough to run with nothing set. The same structure is
//! read from the optional TOML config file; CLI flags and `MESHLINK_*` variables override
//! it (see `main.rs`).
//!
//! Default ports: TCP 7400, WebSocket 7401, UDP 7402, on all IPv4 interfaces.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshlink_core::{Config, Hello, ThreatPolicy};
use serde::Deserialize;

use crate::error::HostError;

pub const DEFAULT_TCP_PORT: u16 = 7400;
pub const DEFAULT_WS_PORT: u16 = 7401;
pub const DEFAULT_UDP_PORT: u16 = 7402;

/// Default of `limits.max_peers`: the node's session capacity. An idle session costs its
/// slot (a few KB; its buffer is lent only while it holds bytes), so this can be raised
/// freely up to [`MAX_SESSIONS`].
pub const DEFAULT_MAX_PEERS: usize = 1024;
/// The most `limits.max_peers` may be: the core's slot-table ceiling (16-bit slot numbers).
pub const MAX_SESSIONS: usize = meshlink_core::node::MAX_SLOTS;

/// The whole host configuration, as in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HostConfig {
    /// Node name sent in the Hello (at most 32 bytes). Default: the host name.
    pub name: String,
    /// Nodes of different networks cannot connect (F03).
    pub network_id: String,
    /// Optional pre-shared network key, 64 hex characters (F03).
    pub network_key: Option<String>,
    pub listen: Listen,
    pub limits: Limits,
    pub timers: Timers,
    pub threat: Threat,
    /// Extra CA certificates (a PEM file) trusted for `wss://` dials, besides the
    /// built-in web roots (a self-signed or private-CA listener).
    pub tls_ca: Option<PathBuf>,
    /// Peers `meshlink up` connects to at start, and re-dials after a disconnect or a
    /// failed dial (see [`Reconnect`]; library users call `HostHandle::connect_persistent`).
    pub peers: Vec<PeerEntry>,
    pub reconnect: Reconnect,
    /// The local control API (F42): `meshlink up` serves it; the library does not.
    pub control: crate::control::ControlConfig,
    /// Request/response limits (see [`Messaging`]).
    pub messaging: Messaging,
}

/// Request/response limits (`[messaging]`): the core's `MessagingConfig` caps plus the
/// host's per-service queue. Every table and queue they size is bounded.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Messaging {
    /// Requests in flight from this node, 1..=65535; one more fails at once (`pending_limit`).
    pub max_pending: usize,
    /// Requests in flight to one peer, 1..=max_pending.
    pub max_pending_per_peer: usize,
    /// Registered request handlers (`serve`), 1..=1024.
    pub max_handlers: usize,
    /// Requests waiting for one service's reader, 1..=65536; a request that finds its
    /// queue full is refused with `Busy` (and counted) instead of waiting.
    pub serve_queue: usize,
    /// The timeout of a request that names none.
    pub default_timeout_ms: u64,
    /// Subscriptions of this node (pub/sub), 1..=1024.
    pub max_subs: usize,
    /// Interest entries kept per subscribing node, at least `max_subs`.
    pub max_interest_per_origin: usize,
    /// Subscribing nodes known, interest entries in all, and the seen-cache's window
    /// (publications remembered to drop the copies that loop).
    pub max_origins: usize,
    pub max_interest: usize,
    pub seen_cache: usize,
    /// Links a publication or an interest set crosses at most.
    pub max_hops: u8,
    /// Events queued per subscription for its reader, 1..=65536; a publication that finds
    /// the queue full is dropped (the newest), counted, and the reader told `Lagged`.
    /// The host bounds the queue itself, so the core's own accounting stays off.
    pub sub_queue: usize,
}

impl Default for Messaging {
    fn default() -> Self {
        let d = meshlink_core::messaging::MessagingConfig::default();
        Messaging {
            max_pending: d.max_pending,
            max_pending_per_peer: d.max_pending_per_peer,
            max_handlers: d.max_handlers,
            serve_queue: 64,
            default_timeout_ms: d.default_timeout.as_millis() as u64,
            max_subs: d.max_subs,
            max_interest_per_origin: d.max_interest_per_origin,
            max_origins: d.max_origins,
            max_interest: d.max_interest,
            seen_cache: d.seen_cache,
            max_hops: d.max_hops,
            sub_queue: 256,
        }
    }
}

impl Messaging {
    /// The core's messaging configuration for these settings, validated.
    pub fn core_config(&self) -> Result<meshlink_core::messaging::MessagingConfig, HostError> {
        let bad = |s: String| HostError::Config(s);
        if self.max_handlers == 0 || self.max_handlers > 1024 {
            return Err(bad("messaging.max_handlers must be 1..=1024".into()));
        }
        if self.serve_queue == 0 || self.serve_queue > 65_536 {
            return Err(bad("messaging.serve_queue must be 1..=65536".into()));
        }
        if self.max_subs == 0 || self.max_subs > 1024 {
            return Err(bad("messaging.max_subs must be 1..=1024".into()));
        }
        if self.sub_queue == 0 || self.sub_queue > 65_536 {
            return Err(bad("messaging.sub_queue must be 1..=65536".into()));
        }
        for (v, name) in
            [(self.max_origins, "max_origins"), (self.max_interest, "max_interest"), (self.seen_cache, "seen_cache")]
        {
            if v > 1 << 20 {
                return Err(bad(format!("messaging.{name} must be at most 1048576")));
            }
        }
        let c = meshlink_core::messaging::MessagingConfig::default().with(|c| {
            c.max_pending = self.max_pending;
            c.max_pending_per_peer = self.max_pending_per_peer;
            c.max_handlers = self.max_handlers;
            c.default_timeout = Duration::from_millis(self.default_timeout_ms);
            c.max_subs = self.max_subs;
            c.max_interest_per_origin = self.max_interest_per_origin;
            c.max_origins = self.max_origins;
            c.max_interest = self.max_interest;
            c.seen_cache = self.seen_cache;
            c.max_hops = self.max_hops;
            c.sub_queue = 0;
        });
        c.validate().map_err(|e| bad(format!("messaging.{}: {}", e.field, e.problem)))?;
        Ok(c)
    }
}

/// Addresses to listen on, per transport. An empty list disables that transport.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Listen {
    pub tcp: Vec<SocketAddr>,
    pub ws: Vec<SocketAddr>,
    pub udp: Vec<SocketAddr>,
    /// Certificate chain (PEM) for the WebSocket listeners: with `ws_tls_key` they serve
    /// `wss://` (browsers on https pages may only open those). Noise still runs inside.
    pub ws_tls_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) for `ws_tls_cert`.
    pub ws_tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Sessions (connected plus handshaking): the node's capacity, 1..=65535 (default 1024).
    pub max_peers: usize,
    /// Handshakes in progress (flood cap).
    pub max_half_open: usize,
    /// Inbound handshakes in progress from one IP address.
    pub max_half_open_per_ip: usize,
    /// Inbound UDP handshakes in progress from which a new UDP Init must first prove its
    /// source address with a cookie (PROTOCOL.md §5.12); 0 = always.
    pub cookie_half_open: usize,
    /// Open stream sockets (TCP and WebSocket, in and out).
    pub max_connections: usize,
    /// Inbound stream sockets from one IP address.
    pub max_connections_per_ip: usize,
    /// Largest application message, in bytes.
    pub max_message: usize,
    /// Bytes of queued outgoing messages per peer inside the core.
    pub send_queue: usize,
    /// UDP socket receive buffer to ask the kernel for (capped by net.core.rmem_max).
    pub udp_recv_buffer: usize,
    // Host-side bounds on what a peer that does not read can make the node hold (issue 13).
    /// Bytes queued for one stream connection's socket, control replies included; a
    /// peer that lets more pile up (it floods and never reads) is disconnected. Keep it
    /// above the application high-water mark (512 KiB) plus `send_queue`: below that,
    /// bulk sends to a peer that merely reads slowly fill it too.
    pub max_write_queue: usize,
    /// Application sends waiting in the host for one peer's queue or socket to drain;
    /// beyond it `send` fails with `QueueFull` at once.
    pub max_parked_sends: usize,
    /// Datagram flow control (PROTOCOL.md §8.8): records a UDP peer may have in flight
    /// towards this node (the core's `datagram_window`; 0 = off, at most 16384).
    pub datagram_window: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Timers {
    /// TCP connect plus WebSocket upgrade deadline.
    pub connect_timeout_ms: u64,
    /// A socket write that makes no progress this long closes the connection.
    pub write_timeout_ms: u64,
    pub ping_interval_ms: u64,
    pub dead_peer_timeout_ms: u64,
    pub handshake_timeout_ms: u64,
    /// TCP keepalive idle time on every TCP and WebSocket socket (0: off). Probes then
    /// follow at a third of it; the kernel ends a connection whose probes go unanswered.
    pub tcp_keepalive_ms: u64,
    /// An accepted TCP/WebSocket socket must send its first handshake bytes within
    /// this long; until then it holds no handshake slot, and it is closed after.
    pub first_byte_timeout_ms: u64,
}

/// Re-dialling of configured peers (F10): exponential backoff with full jitter. After
/// a failed dial or a lost session the next attempt waits a random time in
/// `0..=min(max_ms, base_ms * 2^n)`, `n` counting failures since the last session that
/// lived at least `stable_ms`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Reconnect {
    /// Re-dial `peers` (off: `meshlink up` dials each once).
    pub enabled: bool,
    pub base_ms: u64,
    pub max_ms: u64,
    pub stable_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Threat {
    /// Score above which the policy applies (F05).
    pub threshold: f32,
    /// `"drop"` (refuse and close) or `"refuse"` (refuse new handshakes only).
    pub policy: String,
}

/// A peer to dial at start.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PeerEntry {
    /// `tcp://host:port`, `ws://host:port` or `udp://host:port`.
    pub url: String,
    /// The peer id the remote must prove (enables the IK fast path).
    pub expect: Option<String>,
}

/// `with(f)`: `self` changed by `f`, the struct-update expression of a `#[non_exhaustive]`
/// settings struct, e.g. `HostConfig::default().with(|c| c.name = "a".into())` (the same as
/// `let mut c = HostConfig::default(); c.name = ...;`). Fields can then be added to these
/// structs without breaking their users.
macro_rules! impl_with {
    ($($t:ty),* $(,)?) => {$(
        impl $t {
            /// `self` changed by `f` (the struct is `#[non_exhaustive]`).
            #[must_use]
            pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
                f(&mut self);
                self
            }
        }
    )*};
}
pub(crate) use impl_with;

impl_with!(HostConfig, Listen, Limits, Timers, Reconnect, Threat, Messaging);

impl PeerEntry {
    /// A peer to dial at `url`, which must prove `expect` if given (the struct is
    /// `#[non_exhaustive]`, so this is how it is built outside this crate).
    pub fn new(url: impl Into<String>, expect: Option<String>) -> Self {
        PeerEntry { url: url.into(), expect }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            name: default_name(),
            network_id: "meshlink".into(),
            network_key: None,
            listen: Listen::default(),
            limits: Limits::default(),
            timers: Timers::default(),
            threat: Threat::default(),
            tls_ca: None,
            peers: Vec::new(),
            reconnect: Reconnect::default(),
            control: crate::control::ControlConfig::default(),
            messaging: Messaging::default(),
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
        Listen {
            tcp: vec![any(DEFAULT_TCP_PORT)],
            ws: vec![any(DEFAULT_WS_PORT)],
            udp: vec![any(DEFAULT_UDP_PORT)],
            ws_tls_cert: None,
            ws_tls_key: None,
        }
    }
}

impl Listen {
    /// Nothing bound: for outbound-only nodes and as a base for tests.
    pub fn none() -> Self {
        Listen { tcp: vec![], ws: vec![], udp: vec![], ws_tls_cert: None, ws_tls_key: None }
    }
    /// One ephemeral loopback port per transport (tests, demo).
    pub fn loopback() -> Self {
        let lo = SocketAddr::from(([127, 0, 0, 1], 0));
        Listen { tcp: vec![lo], ws: vec![lo], udp: vec![lo], ws_tls_cert: None, ws_tls_key: None }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let core = Config::default();
        Limits {
            max_peers: DEFAULT_MAX_PEERS,
            max_half_open: core.max_half_open,
            max_half_open_per_ip: core.max_half_open_per_ip,
            cookie_half_open: core.cookie_half_open,
            max_connections: 512,
            max_connections_per_ip: 32,
            max_message: core.max_message,
            send_queue: core.send_queue,
            udp_recv_buffer: 2 << 20,
            max_write_queue: 4 << 20,
            max_parked_sends: 256,
            datagram_window: core.datagram_window,
        }
    }
}

impl Default for Timers {
    fn default() -> Self {
        let core = Config::default();
        let ms = |d: Duration| d.as_millis() as u64;
        Timers {
            connect_timeout_ms: 10_000,
            write_timeout_ms: 15_000,
            ping_interval_ms: ms(core.ping_interval),
            dead_peer_timeout_ms: ms(core.dead_peer_timeout),
            handshake_timeout_ms: ms(core.handshake_timeout),
            tcp_keepalive_ms: 30_000,
            first_byte_timeout_ms: 3_000,
        }
    }
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect { enabled: true, base_ms: 500, max_ms: 30_000, stable_ms: 10_000 }
    }
}

impl Default for Threat {
    fn default() -> Self {
        Threat { threshold: Config::default().threat_threshold, policy: "drop".into() }
    }
}

/// The machine's host name (for the Hello), trimmed to the 32-byte limit.
fn default_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "meshlink".into());
    truncate_utf8(&name, meshlink_core::wire::hello::NAME_MAX).to_string()
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl HostConfig {
    /// Reads a TOML config file. Unknown keys are errors, so typos do not pass silently.
    pub fn from_file(path: &Path) -> Result<Self, HostError> {
        let text = std::fs::read_to_string(path).map_err(|source| HostError::File {
            path: path.to_path_buf(),
            what: "read config file",
            source,
        })?;
        Self::from_toml(&text).map_err(|e| HostError::Config(format!("{}: {e}", path.display())))
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.timers.connect_timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.timers.write_timeout_ms)
    }

    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.timers.first_byte_timeout_ms)
    }

    /// TCP keepalive idle time, `None` when off.
    pub fn tcp_keepalive(&self) -> Option<Duration> {
        (self.timers.tcp_keepalive_ms > 0).then(|| Duration::from_millis(self.timers.tcp_keepalive_ms))
    }

    /// The listener's certificate and key files, if TLS is configured (both or neither).
    pub fn ws_tls(&self) -> Result<Option<(&Path, &Path)>, HostError> {
        match (&self.listen.ws_tls_cert, &self.listen.ws_tls_key) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            _ => Err(HostError::Config("listen.ws_tls_cert and listen.ws_tls_key go together".into())),
        }
    }

    /// The core configuration for these settings, validated.
    pub fn core_config(&self) -> Result<Config, HostError> {
        let bad = |s: String| HostError::Config(s);
        let mut c = Config::default()
            .with_network_id(self.network_id.as_bytes())
            .map_err(|_| bad(format!("network_id longer than {} bytes", meshlink_core::config::NETWORK_ID_MAX)))?;
        if let Some(k) = &self.network_key {
            let bytes = hex::decode(k.trim()).map_err(|_| bad("network_key must be 64 hex characters".into()))?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| bad("network_key must be 64 hex characters".into()))?;
            c.network_key = Some(key);
        }
        c.hello = Hello::named(&self.name).map_err(|_| {
            bad(format!("name longer than {} bytes: {:?}", meshlink_core::wire::hello::NAME_MAX, self.name))
        })?;
        let l = &self.limits;
        if l.max_peers == 0 || l.max_peers > MAX_SESSIONS {
            return Err(bad(format!("limits.max_peers must be 1..={MAX_SESSIONS}")));
        }
        if l.max_write_queue == 0 || l.max_parked_sends == 0 {
            return Err(bad("limits.max_write_queue and limits.max_parked_sends must be positive".into()));
        }
        c.max_peers = l.max_peers;
        c.max_half_open = l.max_half_open;
        c.max_half_open_per_ip = l.max_half_open_per_ip;
        c.cookie_half_open = l.cookie_half_open;
        c.max_message = l.max_message;
        c.send_queue = l.send_queue;
        c.datagram_window = l.datagram_window;
        let t = &self.timers;
        for (name, v) in [
            ("ping_interval_ms", t.ping_interval_ms),
            ("dead_peer_timeout_ms", t.dead_peer_timeout_ms),
            ("handshake_timeout_ms", t.handshake_timeout_ms),
            ("connect_timeout_ms", t.connect_timeout_ms),
            ("write_timeout_ms", t.write_timeout_ms),
            ("first_byte_timeout_ms", t.first_byte_timeout_ms),
        ] {
            if v == 0 {
                return Err(bad(format!("timers.{name} must be positive")));
            }
        }
        c.ping_interval = Duration::from_millis(t.ping_interval_ms);
        c.dead_peer_timeout = Duration::from_millis(t.dead_peer_timeout_ms);
        c.handshake_timeout = Duration::from_millis(t.handshake_timeout_ms);
        if !(0.0..=1.0).contains(&self.threat.threshold) {
            return Err(bad("threat.threshold must be within 0..=1".into()));
        }
        let r = &self.reconnect;
        if r.base_ms == 0 || r.max_ms < r.base_ms {
            return Err(bad("reconnect: base_ms must be positive and at most max_ms".into()));
        }
        self.ws_tls()?;
        c.threat_threshold = self.threat.threshold;
        c.threat_policy = match self.threat.policy.as_str() {
            "drop" => ThreatPolicy::Drop,
            "refuse" => ThreatPolicy::Refuse,
            p => return Err(bad(format!("threat.policy must be \"drop\" or \"refuse\", not {p:?}"))),
        };
        // The core's own checks (timers, limits), named by the core's field names.
        c.validate().map_err(|e| bad(format!("core configuration: {e}")))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_make_a_valid_core_config() {
        let c = HostConfig::default().core_config().unwrap();
        assert_eq!(c.network_id.as_slice(), b"meshlink");
        assert_eq!(HostConfig::default().listen.tcp, vec!["0.0.0.0:7400".parse().unwrap()]);
    }

    #[test]
    fn toml_overrides_and_rejects_typos() {
        let c = HostConfig::from_toml(
            "name = \"n1\"\n[listen]\ntcp = [\"127.0.0.1:0\", \"[::1]:0\"]\nudp = []\n[limits]\nmax_message = 1000\n",
        )
        .unwrap();
        assert_eq!(c.name, "n1");
        assert_eq!(c.listen.tcp.len(), 2);
        assert!(c.listen.udp.is_empty());
        assert_eq!(c.listen.ws, Listen::default().ws, "unset keys keep their defaults");
        assert_eq!(c.limits.max_message, 1000);
        let e = HostConfig::from_toml("[limits]\nmax_mesage = 1\n").unwrap_err();
        assert!(e.contains("max_mesage"), "{e}");
    }

    /// The documented example states the defaults: it must parse, and agree with them.
    #[test]
    fn example_file_matches_the_defaults() {
        let text = include_str!("../meshlink.example.toml");
        let ex = HostConfig::from_toml(text).unwrap();
        let d = HostConfig::default();
        assert_eq!(ex.listen, d.listen);
        assert_eq!(ex.network_id, d.network_id);
        assert_eq!(format!("{:?}", ex.limits), format!("{:?}", d.limits));
        assert_eq!(format!("{:?}", ex.timers), format!("{:?}", d.timers));
        assert_eq!(format!("{:?}", ex.threat), format!("{:?}", d.threat));
        assert_eq!(format!("{:?}", ex.reconnect), format!("{:?}", d.reconnect));
        assert_eq!(format!("{:?}", ex.messaging), format!("{:?}", d.messaging));
        // And the commented-out lines are valid too.
        let uncommented: String = text
            .lines()
            .map(|l| l.strip_prefix("# ").filter(|r| r.contains(" = ") || r.starts_with("[[")).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let full = HostConfig::from_toml(&uncommented).unwrap();
        assert_eq!(full.name, "my-node");
        assert_eq!(full.peers.len(), 1);
        full.core_config().unwrap();
    }

    /// The session cap is configuration, not a constant: 1..=65535, default 1024.
    #[test]
    fn max_peers_is_configurable_up_to_the_core_ceiling() {
        assert_eq!(HostConfig::default().core_config().unwrap().max_peers, DEFAULT_MAX_PEERS);
        for (n, ok) in [(0, false), (1, true), (10_000, true), (65_535, true), (65_536, false)] {
            let mut c = HostConfig::default();
            c.limits.max_peers = n;
            match c.core_config() {
                Ok(core) => assert!(ok && core.max_peers == n, "{n}"),
                Err(e) => assert!(!ok && e.to_string().contains("max_peers"), "{n}: {e}"),
            }
        }
    }

    #[test]
    fn invalid_values_are_named() {
        let mut c = HostConfig { network_key: Some("abcd".into()), ..HostConfig::default() };
        assert!(c.core_config().unwrap_err().to_string().contains("network_key"));
        c.network_key = None;
        c.threat.policy = "nuke".into();
        assert!(c.core_config().unwrap_err().to_string().contains("threat.policy"));
        c.threat.policy = "refuse".into();
        c.name = "x".repeat(33);
        assert!(c.core_config().unwrap_err().to_string().contains("name"));
        c.name = "n".into();
        c.listen.ws_tls_cert = Some("cert.pem".into());
        assert!(c.core_config().unwrap_err().to_string().contains("ws_tls_key"));
        c.listen.ws_tls_cert = None;
        c.reconnect.max_ms = 1;
        assert!(c.core_config().unwrap_err().to_string().contains("reconnect"));
    }

    #[test]
    fn messaging_limits_are_validated_and_named() {
        HostConfig::default().messaging.core_config().unwrap();
        let c = HostConfig::from_toml("[messaging]\nmax_pending = 8\nmax_pending_per_peer = 2\n").unwrap();
        let m = c.messaging.core_config().unwrap();
        assert_eq!((m.max_pending, m.max_pending_per_peer), (8, 2));
        for (toml, field) in [
            ("max_pending = 0", "max_pending"),
            ("max_pending = 70000", "max_pending"),
            ("max_pending_per_peer = 2000", "max_pending_per_peer"),
            ("max_handlers = 0", "max_handlers"),
            ("serve_queue = 0", "serve_queue"),
            ("sub_queue = 0", "sub_queue"),
            ("max_subs = 0", "max_subs"),
            ("default_timeout_ms = 0", "default_timeout"),
        ] {
            let c = HostConfig::from_toml(&format!("[messaging]\n{toml}\n")).unwrap();
            let e = c.messaging.core_config().unwrap_err().to_string();
            assert!(e.contains(field), "{toml}: {e}");
        }
        assert!(HostConfig::from_toml("[messaging]\nmax_pendin = 1\n").is_err());
    }
}
