#![no_std]
#![forbid(unsafe_code)]
#[cfg(feature = "std")]
extern crate std;

pub mod buffers;
pub mod config;
pub mod error;
pub mod identity;
pub mod node;
pub mod noise;
pub mod quality;
pub mod replay;
pub mod session;
pub mod time;
pub mod wire;

pub use config::{Config, ThreatPolicy};
pub use error::Error;
pub use identity::{Keypair, PeerId};
pub use node::{ConnId, Event, Node, NodeStats, PeerInfo, Transmit};
pub use quality::Quality;
pub use session::{DisconnectReason, TransportKind};
pub use time::Instant;
pub use wire::{CloseReason, ErrorCode, Hello};
