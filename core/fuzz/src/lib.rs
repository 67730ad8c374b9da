//! Fuzz harnesses for meshlink-core. Each module's `run` is one fuzz target's body; the
//! files in `fuzz_targets/` only call them, so `examples/seeds.rs` can reuse the same code
//! to write the seed corpus.
//!
//! Shared here: a small configuration, deterministic nodes, and self-checking messages
//! (every message carries its sender and a unique id, and its bytes are a function of
//! both), so a harness can tell a duplicate or a corrupted delivery from a genuine one.

use core::net::SocketAddr;

use meshlink_core::{Config, ConnId, Event, HeapNode, Instant, Keypair, PeerId};

pub mod datagram_replay;
pub mod frame_decoder;
pub mod handshake_responder;
pub mod node_ops;
pub mod packet_decoder;

/// Session capacity of every fuzzed node.
pub const PEERS: usize = 3;
/// Output buffer for `poll_transmit`: holds a full stream batch (max_frame + 2) or a datagram.
pub const TX_BUF: usize = 4096;

pub type FuzzNode = HeapNode;

/// Small limits keep each iteration cheap while still forcing chunking (messages up to
/// 4 KiB over 1200-byte datagrams and 2 KiB frames) and key rotation within seconds.
pub fn config() -> Config {
    Config::default().with(|c| {
        c.max_frame = 2048;
        c.max_datagram = 1200;
        c.max_message = 4096;
        // Every priority class holds one largest message (4200 / 5600 / 4200 bytes).
        c.send_queue = 14_000;
        c.queue_shares = meshlink_core::QueueShares::new(30, 40, 30);
        c.max_half_open = 2;
        c.rekey_after_time = core::time::Duration::from_secs(10);
        c.reject_after_time = core::time::Duration::from_secs(20);
    })
}

/// A node with a fixed key and RNG seed: every run of an input is reproducible.
pub fn node(id: u8, cfg: Config) -> FuzzNode {
    HeapNode::with_capacity(cfg, keypair(id), [id ^ 0x5a; 32], PEERS).expect("fuzz config is valid")
}

pub fn keypair(id: u8) -> Keypair {
    Keypair::from_secret([id; 32])
}

/// The public key of node `id`, cached: deriving it is a scalar multiplication, and the
/// harnesses ask for it after every operation.
pub fn peer_id(id: u8) -> PeerId {
    static IDS: std::sync::OnceLock<Vec<PeerId>> = std::sync::OnceLock::new();
    let ids = IDS.get_or_init(|| (0..4).map(|i| keypair(i).peer_id()).collect());
    ids.get(usize::from(id)).copied().unwrap_or_else(|| keypair(id).peer_id())
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

/// Builds a self-checking message: `sender | id u32le | len u32le | pattern`.
pub fn message(sender: u8, id: u32, len: usize) -> Vec<u8> {
    let len = len.max(9);
    let mut m = Vec::with_capacity(len);
    m.push(sender);
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&(len as u32).to_le_bytes());
    m.extend((9..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(id) as u8 ^ sender));
    m
}

/// Checks a delivered message against [`message`]; returns (sender, id). Panics (a fuzz
/// finding) on any message the harness never sent: that would be corruption.
pub fn check_message(data: &[u8]) -> (u8, u32) {
    assert!(data.len() >= 9, "delivered message too short to be one we sent: {} bytes", data.len());
    let sender = data[0];
    let id = u32::from_le_bytes(data[1..5].try_into().unwrap());
    let len = u32::from_le_bytes(data[5..9].try_into().unwrap()) as usize;
    assert_eq!(
        data,
        &message(sender, id, len)[..],
        "delivered message differs from the one sent (sender {sender}, id {id})"
    );
    (sender, id)
}

/// How deep a run got, for the seed generator's self-checks (fuzz targets ignore it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Handshakes completed, summed over the nodes of the run.
    pub handshakes: u64,
    /// Messages delivered.
    pub messages: usize,
}

/// What one drain of a node's events showed, owned (events borrow the node).
#[derive(Debug, Default)]
pub struct Drained {
    pub connected: Vec<PeerId>,
    pub messages: Vec<(PeerId, Vec<u8>)>,
    pub disconnected: Vec<ConnId>,
}

/// Drains every pending event.
pub fn drain_events(n: &mut FuzzNode) -> Drained {
    let mut d = Drained::default();
    // Bounded: each event clears a flag, so a node never yields more than a few per slot.
    for _ in 0..64 * PEERS {
        match n.poll_event() {
            None => break,
            Some(Event::Connected { peer, .. }) => d.connected.push(peer),
            Some(Event::Message { peer, data, .. }) => d.messages.push((peer, data.to_vec())),
            Some(Event::Disconnected { conn, .. }) => d.disconnected.push(conn),
            Some(_) => {}
        }
    }
    d
}

/// Checks the node-wide bounds that must hold whatever the input.
pub fn check_limits(n: &FuzzNode) {
    let st = n.stats();
    let cfg = n.config();
    assert!(
        st.sessions <= cfg.max_peers && cfg.max_peers <= PEERS,
        "sessions {} over limit {}",
        st.sessions,
        cfg.max_peers
    );
    assert!(st.half_open <= cfg.max_half_open, "half-open {} over limit {}", st.half_open, cfg.max_half_open);
    assert!(st.connected <= st.sessions);
    assert!(n.peers().count() == st.connected);
}
