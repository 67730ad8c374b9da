//! The public API: [`Host::start`] binds the sockets and spawns the driver; the
//! [`HostHandle`] it returns (cheap to clone, `Send + Sync`) sends it commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use meshlink_core::{Keypair, PeerId, Quality};
use rand_core::{OsRng, RngCore};
use tokio::sync::{mpsc, oneshot};

use crate::config::HostConfig;
use crate::driver::{Command, CoreNode, Driver, HostStats};
use crate::error::HostError;
use crate::net::{self, Limiter, StreamConn};
use crate::types::{HostEvent, LocalAddrs, PeerSummary, PeerUrl, Transport};

/// Events buffered per subscriber before the driver waits for it.
const EVENT_CAPACITY: usize = 1024;
const COMMAND_CAPACITY: usize = 256;
const NET_CAPACITY: usize = 256;
/// Stack for building the node (several times its size, for unoptimised builds).
const NODE_INIT_STACK: usize = 32 << 20;

/// Starts nodes.
pub struct Host;

impl Host {
    /// Binds every listen address, creates the core node and spawns the driver task on
    /// the current tokio runtime.
    pub async fn start(config: HostConfig, keypair: Keypair) -> Result<HostHandle, HostError> {
        let core = config.core_config()?;
        let len = core.slot_buffer_len();
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let peer_id = keypair.peer_id();
        // The node holds MAX_SESSIONS sessions inline (over 1 MiB) and `Node::new` returns it
        // by value: build it on a thread with a roomy stack, not on a runtime worker's.
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("meshlink-init".into())
            .stack_size(NODE_INIT_STACK)
            .spawn(move || {
                let _ = tx.send(CoreNode::new(core, keypair, seed, || vec![0u8; len]).map(Box::new));
            })
            .map_err(|e| HostError::io("spawn node init thread", e))?;
        let node = rx.await.map_err(|_| HostError::Config("node construction failed".into()))??;

        let limiter = Limiter::new(config.limits.max_connections, config.limits.max_connections_per_ip);
        let (net_tx, net_rx) = mpsc::channel(NET_CAPACITY);
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
        let mut local = LocalAddrs::default();
        let mut tasks = Vec::new();
        let connect_timeout = config.connect_timeout();
        for (transport, list) in [(Transport::Tcp, &config.listen.tcp), (Transport::Ws, &config.listen.ws)] {
            for addr in list {
                let l = net::bind_tcp(*addr)?;
                let bound = l.local_addr().map_err(|e| HostError::io("listener address", e))?;
                match transport {
                    Transport::Tcp => local.tcp.push(bound),
                    _ => local.ws.push(bound),
                }
                let task = net::accept_loop(l, transport, limiter.clone(), net_tx.clone(), connect_timeout);
                tasks.push(tokio::spawn(task).abort_handle());
            }
        }
        let mut udp = Vec::new();
        for addr in &config.listen.udp {
            let s = Arc::new(net::bind_udp(*addr, config.limits.udp_recv_buffer)?);
            let bound = s.local_addr().map_err(|e| HostError::io("udp address", e))?;
            local.udp.push(bound);
            tasks.push(tokio::spawn(net::udp_reader(s.clone(), net_tx.clone())).abort_handle());
            udp.push((bound, s));
        }
        let driver = Driver::new(
            node,
            std::time::Instant::now(),
            cmd_rx,
            net_rx,
            net_tx,
            udp,
            tasks,
            config.write_timeout(),
            config.limits.udp_recv_buffer,
        );
        tokio::spawn(driver.run());
        Ok(HostHandle { cmd: cmd_tx, inner: Arc::new(Inner { peer_id, local, limiter, connect_timeout }) })
    }
}

struct Inner {
    peer_id: PeerId,
    local: LocalAddrs,
    limiter: Arc<Limiter>,
    connect_timeout: Duration,
}

/// Commands a running node. Every method fails with [`HostError::Stopped`] once the node
/// has shut down.
#[derive(Clone)]
pub struct HostHandle {
    cmd: mpsc::Sender<Command>,
    inner: Arc<Inner>,
}

impl HostHandle {
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// The bound listen addresses (ephemeral ports resolved).
    pub fn local_addrs(&self) -> &LocalAddrs {
        &self.inner.local
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, HostError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(make(tx)).await.map_err(|_| HostError::Stopped)?;
        rx.await.map_err(|_| HostError::Stopped)
    }

    /// Connects to `url` (`tcp://`, `ws://`, `udp://`) and completes the handshake.
    /// With `expected`, the peer must prove that key (F04). Resolves once the session is
    /// confirmed, or fails with the typed reason.
    pub async fn connect(&self, url: &str, expected: Option<PeerId>) -> Result<PeerSummary, HostError> {
        let url = PeerUrl::parse(url)?;
        let addr = resolve(&url).await?;
        let timeout = self.inner.connect_timeout;
        if url.transport == Transport::Udp {
            return self.ask(|reply| Command::ConnectUdp { addr, expected, reply }).await?;
        }
        let guard = self.inner.limiter.acquire(None)?;
        let sock = net::dial_tcp(addr, timeout).await?;
        let stream = match url.transport {
            Transport::Ws => StreamConn::Ws(Box::new(net::upgrade_ws(sock, addr, &url.to_string(), timeout).await?)),
            _ => StreamConn::Tcp(sock),
        };
        let transport = url.transport;
        self.ask(|reply| Command::Dialed { stream, transport, addr, expected, guard, reply }).await?
    }

    /// Queues a message for a connected peer. Waits while the peer's queue or socket is
    /// full (back-pressure); fails if the peer is not connected or the message is larger
    /// than the limit.
    pub async fn send(&self, peer: PeerId, data: impl Into<Bytes>) -> Result<(), HostError> {
        let data = data.into();
        self.ask(|reply| Command::Send { peer, data, wait: true, reply }).await?
    }

    /// Like [`send`](Self::send) but never waits: a full queue is `QueueFull`.
    pub async fn try_send(&self, peer: PeerId, data: impl Into<Bytes>) -> Result<(), HostError> {
        let data = data.into();
        self.ask(|reply| Command::Send { peer, data, wait: false, reply }).await?
    }

    /// Closes the session with `peer` (it gets a Close packet).
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), HostError> {
        self.ask(|reply| Command::Disconnect { peer, reply }).await?
    }

    pub async fn peers(&self) -> Result<Vec<PeerSummary>, HostError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Quality figures for a connected peer, `None` if not connected.
    pub async fn quality(&self, peer: PeerId) -> Result<Option<Quality>, HostError> {
        self.ask(|reply| Command::Quality { peer, reply }).await
    }

    /// Sets a peer's threat score (F05); above the threshold the configured policy applies.
    pub async fn set_threat_score(&self, peer: PeerId, score: f32) -> Result<(), HostError> {
        self.ask(|reply| Command::Threat { peer, score, reply }).await
    }

    pub async fn stats(&self) -> Result<HostStats, HostError> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// Subscribes to events from now on. Every subscriber gets every event; read them
    /// promptly: while a subscriber's buffer is full the node stops reading its sockets.
    pub async fn events(&self) -> Result<mpsc::Receiver<HostEvent>, HostError> {
        let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
        self.cmd.send(Command::Subscribe { tx }).await.map_err(|_| HostError::Stopped)?;
        Ok(rx)
    }

    /// Graceful shutdown: every peer gets a Close, queued bytes are flushed, sends still
    /// waiting fail with `NotDelivered`, then the driver stops. Idempotent.
    pub async fn shutdown(&self) -> Result<(), HostError> {
        match self.ask(|reply| Command::Shutdown { reply }).await {
            Ok(()) | Err(HostError::Stopped) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stream sockets open now (for limits and tests).
    pub fn open_connections(&self) -> usize {
        self.inner.limiter.open()
    }
}

async fn resolve(url: &PeerUrl) -> Result<SocketAddr, HostError> {
    if let Ok(ip) = url.host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, url.port));
    }
    let mut addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|_| HostError::Resolve { host: url.host.clone() })?;
    addrs.next().ok_or_else(|| HostError::Resolve { host: url.host.clone() })
}
