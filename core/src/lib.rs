//! # meshlink-core
//!
//! The sans-IO core of meshlink, an encrypted peer-to-peer messaging protocol. It is
//! `#![no_std]` and needs no allocator: the same code runs in the tokio host, in the
//! browser (WASM), on Cortex-M firmware (embassy) and behind the C ABI.
//!
//! - No sockets, clocks, threads or global state: time comes in as [`Instant`], randomness
//!   as a seed, bytes through `handle_*`, and output through `poll_*` (see [`Node`]).
//! - Storage is the caller's: a [`Node`] works over a slot table and a buffer pool it is
//!   given, so it is built in place (never as a large stack value) and sized at run time
//!   ([`HeapNode::with_capacity`] on a host, static slots on firmware; see [`node`]).
//! - Hostile input never panics and never allocates: it gets a typed [`Error`], the record
//!   is dropped and every other session carries on.
//!
//! Modules, one per concept: [`identity`] (keys and peer ids), [`noise`] (our Noise
//! XX/XXpsk3/IK state machine), [`wire`] (records, framing, packets, Hello), [`replay`]
//! (datagram replay window), [`cookie`] (mac1/mac2 and Cookie replies for datagram Inits
//! under load), [`quality`] (RTT, jitter, loss, bandwidth, score),
//! [`session`] (one peer), [`node`] (many peers), [`config`] (every limit, named).
//! `docs/PROTOCOL.md` in the repository is the normative wire specification.
//!
//! ## Features
//! - `std` (default): `std::error::Error` for [`Error`] and [`Instant::since`]. Nothing in
//!   the protocol depends on it; build with `default-features = false` for firmware.
//! - `alloc` (in `std`): [`HeapNode`], a heap slot table and the [`node::HeapPool`].
//! - `full` (default) = `ik` + `psk` + `datagram` + `quality-extras` + `messaging`. A
//!   firmware names only what it uses; with none of them a node still has streams, XX and
//!   every security property (authentication, replay protection, every limit). What a
//!   build without a feature does, when a caller or a peer asks for it:
//!
//! | feature | what it adds | without it: the API | without it: a peer sees |
//! | --- | --- | --- | --- |
//! | `ik` | the IK pattern (one round trip when `connect` names the key) | [`noise::Pattern::Ik`] and [`Config::ik_fast_path`] are absent; `connect` uses XX | an IK Init is answered `Reject(Auth)`, as by an IK responder that cannot decrypt message 1, so the initiator falls back to XX once (a stream stays open for it) and connects |
//! | `psk` | XXpsk3 under a network key | [`noise::Pattern::XxPsk3`] and [`Config::network_key`] are absent | an XXpsk3 Init is answered `Reject(Pattern)` (as for a node without a network key) |
//! | `datagram` | datagram sessions, [`Node::handle_datagram`], handshake retransmission, anti-amplification, stateless Rejects | `handle_datagram` is absent; `connect(TransportKind::Datagram, ..)` returns [`Error::Unsupported`] `{ feature: "datagram" }` and takes no slot | nothing: the node has no datagram socket |
//! | `quality-extras` | jitter, bandwidth windows and the score (see [`quality`]) | [`quality::Jitter`], [`quality::Bandwidth`], [`quality::score`] and the `jitter_us`, `bw_in_bps`, `bw_out_bps`, `score` fields of [`Quality`] are absent; RTT, loss and counters stay | nothing (local figures only) |
//! | `messaging` | the messaging layer, [`messaging`] (subjects, request/response, send-to-many) over the node | [`messaging`] is absent | the messaging kinds are answered `UnknownKind` |
//!
//! No feature changes the wire format; `docs/PROTOCOL.md` §3.1 "Implementation profiles".
//!
//! ## API stability
//! Types that will grow are `#[non_exhaustive]`, so that a variant or a field can be added
//! in a minor release: every public enum whose set may grow ([`Event`], [`Error`],
//! [`DisconnectReason`], [`ErrorCode`], [`CloseReason`], [`Priority`], [`ThreatPolicy`],
//! the [`wire`] enums (`Packet`, `PacketKind`, `Header`, `RecordType`, `RejectCode`,
//! `WireError`, `KindClass`), [`noise::NoiseError`], [`noise::Pattern`],
//! [`replay::ReplayError`], [`identity::ParsePeerIdError`]), the settings structs
//! ([`Config`], [`QueueShares`], [`Hello`]), the error struct [`ConfigError`] and the
//! snapshots ([`PeerInfo`], [`NodeStats`], [`Transmit`], [`Quality`],
//! [`quality::Counters`]). A `match` on them outside this crate needs a `_` arm (an
//! adapter logs and skips an event it does not know). They cannot be built with a struct
//! literal outside this crate: start from the default and set fields, or use `with` where
//! an expression is needed, and [`QueueShares::new`]:
//! ```
//! use meshlink_core::{Config, QueueShares};
//! let mut a = Config::default();
//! a.max_message = 4096;
//! let b = Config::default().with(|c| {
//!     c.max_message = 4096;
//!     c.queue_shares = QueueShares::new(20, 50, 30);
//! });
//! assert!(a.validate().is_ok() && b.validate().is_ok());
//! ```
//! Left exhaustive, because their sets are closed by definition: [`noise::Role`]
//! (initiator or responder), [`TransportKind`] (the two framings the core implements; a
//! third needs new I/O in every adapter, so it must break their matches, not fall into a
//! `_` arm), [`wire::FrameProgress`] (a frame is complete or not), [`VersionRange`]
//! (two ends), and the Noise layer's [`noise::HandshakeParams`] and [`noise::Transport`]
//! (the parameters and results of the Noise specification's `Initialize` and `Split`).

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod buffers;
pub mod config;
pub mod cookie;
pub mod error;
pub mod identity;
#[cfg(feature = "messaging")]
pub mod messaging;
pub mod node;
pub mod noise;
pub mod quality;
pub mod reassembly;
pub mod replay;
mod rng;
pub mod session;
pub mod time;
pub mod wire;

pub use buffers::Priority;
pub use config::{Config, ConfigError, QueueShares, ThreatPolicy};
pub use error::Error;
pub use identity::{Keypair, PeerId};
#[cfg(feature = "alloc")]
pub use node::HeapNode;
pub use node::{BufferPool, ConnId, Event, Node, NodeStats, PeerInfo, Slot, SlotBound, Transmit};
pub use quality::Quality;
pub use session::{DisconnectReason, FlowInfo, TransportKind, DATAGRAM_WINDOW_MAX};
pub use time::Instant;
pub use wire::{CloseReason, ErrorCode, Hello, VersionRange};
