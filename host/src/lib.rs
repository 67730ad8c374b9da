//! `meshlink-host`: the tokio driver for meshlink nodes, and the `meshlink` binary.
//!
//! One task owns a sans-IO [`meshlink_core::Node`]; sockets feed it bytes, its output goes
//! back to the right socket, its timer runs on `tokio::time`. No protocol logic lives
//! here: the host moves bytes, keeps time and owns sockets. Request/response, services and
//! send-to-many ([`HostHandle::request`], [`HostHandle::serve`], [`HostHandle::send_many`]):
//! see [`messaging`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshlink_host::HostError> {
//! use meshlink_host::{Host, HostConfig, HostEvent, Listen};
//! let kp = meshlink_core::Keypair::generate(&mut rand_core::OsRng);
//! let node = Host::start(HostConfig::default().with(|c| c.listen = Listen::loopback()), kp).await?;
//! let mut events = node.events().await?;
//! let peer = node.connect("tcp://127.0.0.1:7400", None).await?;
//! node.send(peer.peer, &b"hello"[..]).await?;
//! while let Some(ev) = events.recv().await {
//!     if let HostEvent::Message { peer, data } = ev { println!("{peer}: {data:?}"); }
//! }
//! node.shutdown().await
//! # }
//! ```

pub mod config;
pub mod control;
pub mod demo;
mod driver;
pub mod error;
mod fanout;
mod handle;
pub mod identity;
pub mod lock;
pub mod messaging;
mod net;
pub mod pubsub;
pub mod reconnect;
pub mod rpc;
pub mod table;
mod tls;
pub mod types;

pub use config::{HostConfig, Listen};
pub use driver::HostStats;
pub use error::HostError;
pub use handle::{Host, HostHandle};
pub use reconnect::ReconnectTarget;
pub use types::{HostEvent, LocalAddrs, PeerSummary, PeerUrl, Transport};
