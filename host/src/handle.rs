//! The public API: [`Host::start`] binds the sockets and spawns the driver; the
//! [`HostHandle`] it returns (cheap to clone, `Send + Sync`) sends it commands.

use std::sync::Arc;

use bytes::Bytes;
use meshlink_core::{Keypair, PeerId, Priority, Quality};
use rand_core::{OsRng, RngCore};
use tokio::sync::{mpsc, oneshot};

use crate::config::HostConfig;
use crate::driver::{Command, CoreNode, Driver, DriverOpts, HostStats};
use crate::error::HostError;
use crate::net::{self, AcceptOpts, Dialed, Dialer, Limiter};
use crate::reconnect::{Policy, ReconnectTarget};
use crate::types::{HostEvent, LocalAddrs, PeerSummary, PeerUrl, Transport};

/// Events buffered per subscriber before the driver waits for it.
const EVENT_CAPACITY: usize = 1024;
const COMMAND_CAPACITY: usize = 256;
const NET_CAPACITY: usize = 256;

/// Starts nodes.
pub struct Host;

impl Host {
    /// Binds every listen address, creates the core node and spawns the driver task on
    /// the current tokio runtime.
    pub async fn start(config: HostConfig, keypair: Keypair) -> Result<HostHandle, HostError> {
        let core = config.core_config()?;
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let peer_id = keypair.peer_id();
        // The slot table is built in place on the heap and buffers are lent per session, so
        // this is cheap at any capacity and needs no special stack.
        let capacity = core.max_peers;
        let messaging = config.messaging.core_config()?;
        let node = meshlink_core::HeapNode::with_capacity(core, keypair, seed, capacity)?;
        let mut node = CoreNode::with_capacity(node, messaging).map(Box::new)?;
        // A restarted node's publications must not look already seen to its peers.
        node.set_pubsub_epoch(OsRng.next_u32());

        let limiter = Limiter::new(config.limits.max_connections, config.limits.max_connections_per_ip);
        let unheard = Arc::new(net::Unheard::default()); // shared by the listeners: one socket limit
        let (net_tx, net_rx) = mpsc::channel(NET_CAPACITY);
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
        let mut local = LocalAddrs::default();
        let mut tasks = Vec::new();
        let connect_timeout = config.connect_timeout();
        let keepalive = config.tcp_keepalive();
        let ws_tls = config.ws_tls()?.map(|(cert, key)| crate::tls::acceptor(cert, key)).transpose()?;
        local.ws_tls = ws_tls.is_some();
        let dialer = Arc::new(Dialer {
            limiter: limiter.clone(),
            timeout: connect_timeout,
            keepalive,
            tls: crate::tls::connector(config.tls_ca.as_deref())?,
        });
        for (transport, list) in [(Transport::Tcp, &config.listen.tcp), (Transport::Ws, &config.listen.ws)] {
            for addr in list {
                let l = net::bind_tcp(*addr)?;
                let bound = l.local_addr().map_err(|e| HostError::io("listener address", e))?;
                match transport {
                    Transport::Tcp => local.tcp.push(bound),
                    _ => local.ws.push(bound),
                }
                let tls = if transport == Transport::Ws { ws_tls.clone() } else { None };
                let first_byte_timeout = config.first_byte_timeout();
                let opts =
                    AcceptOpts { transport, upgrade_timeout: connect_timeout, keepalive, tls, first_byte_timeout };
                let task = net::accept_loop(l, opts, limiter.clone(), unheard.clone(), net_tx.clone());
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
        let opts = DriverOpts {
            write_timeout: config.write_timeout(),
            udp_recv_buffer: config.limits.udp_recv_buffer,
            dialer: dialer.clone(),
            reconnect: Policy::new(&config.reconnect),
            max_write_queue: config.limits.max_write_queue,
            max_parked_sends: config.limits.max_parked_sends,
            serve_queue: config.messaging.serve_queue,
            sub_queue: config.messaging.sub_queue,
        };
        let driver = Driver::new(node, std::time::Instant::now(), cmd_rx, (net_rx, net_tx), udp, tasks, opts);
        tokio::spawn(driver.run());
        Ok(HostHandle { cmd: cmd_tx, inner: Arc::new(Inner { peer_id, local, limiter, dialer }) })
    }
}

struct Inner {
    peer_id: PeerId,
    local: LocalAddrs,
    limiter: Arc<Limiter>,
    dialer: Arc<Dialer>,
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

    /// Connects to `url` (`tcp://`, `ws://`, `wss://`, `udp://`) and completes the
    /// handshake. With `expected`, the peer must prove that key (F04). Resolves once the
    /// session is confirmed, or fails with the typed reason.
    pub async fn connect(&self, url: &str, expected: Option<PeerId>) -> Result<PeerSummary, HostError> {
        let url = PeerUrl::parse(url)?;
        match self.inner.dialer.dial(&url).await? {
            Dialed::Udp { addr } => self.ask(|reply| Command::ConnectUdp { addr, expected, reply }).await?,
            Dialed::Stream { stream, transport, addr, guard } => {
                self.ask(|reply| Command::Dialed { stream, transport, addr, expected, guard, reply }).await?
            }
        }
    }

    /// Like [`connect`](Self::connect), and keeps the peer connected (F10): after a lost
    /// session or a failed dial the node dials again, with exponential backoff and jitter
    /// (the `reconnect` settings), until [`disconnect`](Self::disconnect) of that peer,
    /// [`stop_reconnect`](Self::stop_reconnect) of the URL, or shutdown. The result is the
    /// first attempt's; if it failed, the retries go on all the same.
    pub async fn connect_persistent(&self, url: &str, expected: Option<PeerId>) -> Result<PeerSummary, HostError> {
        let url = PeerUrl::parse(url)?;
        self.ask(|reply| Command::ConnectPersistent { url, expected, reply }).await?
    }

    /// Stops re-dialling `url` (a configured or persistent peer); an open session stays.
    /// Whether such a target existed.
    pub async fn stop_reconnect(&self, url: &str) -> Result<bool, HostError> {
        let url = PeerUrl::parse(url)?;
        self.ask(|reply| Command::StopReconnect { url, reply }).await
    }

    /// The peers this node keeps connected (configured and persistent), with their state.
    pub async fn reconnect_targets(&self) -> Result<Vec<ReconnectTarget>, HostError> {
        self.ask(|reply| Command::Targets { reply }).await
    }

    /// Queues a message for a connected peer. Waits while the peer's queue or socket is
    /// full (back-pressure; `QueueFull` once `limits.max_parked_sends` sends already wait
    /// for that peer); fails if the peer is not connected or the message is larger
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

    /// Closes the session with `peer` (it gets a Close packet), and stops re-dialling it.
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

    /// Subscribes to events from now on. Every subscriber gets every event it has room
    /// for (1,024 buffered); one that falls behind misses events and then receives
    /// `HostEvent::Lagged { dropped }`. A slow subscriber never holds back the node, its
    /// peers or the other subscribers.
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

    // ------------------------------------------------------------------ messaging

    /// Sends a request for `subject` (a literal dot-separated subject) to a connected
    /// `peer` and waits for its outcome: the answer's body, or one typed error per
    /// outcome — [`HostError::NoResponders`] (the peer serves nothing for it, within one
    /// round trip), [`HostError::Timeout`], [`HostError::Cancelled`],
    /// [`HostError::Disconnected`], [`HostError::Refused`] (version, busy, ...),
    /// [`HostError::Failed`] (the handler's error) — or at once
    /// [`HostError::PendingLimit`] when `messaging.max_pending(_per_peer)` requests are in
    /// flight. Dropping the future cancels the request.
    ///
    /// ```no_run
    /// # async fn demo(a: meshlink_host::HostHandle, b: meshlink_host::HostHandle) -> Result<(), meshlink_host::HostError> {
    /// use meshlink_host::messaging::RequestOpts;
    /// use std::time::Duration;
    /// let mut echo = b.serve("svc.echo", "").await?;           // b answers ...
    /// tokio::spawn(async move {
    ///     while let Some(req) = echo.next().await {
    ///         let body = req.body.clone();
    ///         let _ = req.respond(body).await;
    ///     }
    /// });
    /// let opts = RequestOpts::new().timeout(Duration::from_secs(2));
    /// let answer = a.request(b.peer_id(), "svc.echo", &b"hi"[..], opts).await?; // ... a asks
    /// assert_eq!(&answer[..], b"hi");
    /// # Ok(()) }
    /// ```
    /// `examples/request_reply.rs` runs this between two hosts on loopback.
    pub async fn request(
        &self,
        peer: PeerId,
        subject: &str,
        body: impl Into<Bytes>,
        opts: crate::messaging::RequestOpts,
    ) -> Result<Bytes, HostError> {
        crate::messaging::request(&self.cmd, peer, subject.to_string(), body.into(), opts).await
    }

    /// Registers a handler for `pattern` (wildcards `*` and `>` allowed) at `version`
    /// (`""`: any) and returns its requests as a stream. Its queue holds
    /// `messaging.serve_queue` requests; one more is refused `Busy` at once. Dropping the
    /// stream unregisters the handler.
    pub async fn serve(&self, pattern: &str, version: &str) -> Result<crate::messaging::Requests, HostError> {
        let (pattern, version) = (pattern.to_string(), version.to_string());
        let (handler, gen, rx) = self
            .ask(|reply| Command::Messaging(crate::messaging::MsgCommand::Serve { pattern, version, reply }))
            .await??;
        Ok(crate::messaging::Requests::new(rx, handler, gen, self.cmd.clone()))
    }

    /// Answers request `id` of `peer` (what [`Request::respond`](crate::messaging::Request::respond)
    /// does, for code that keeps requests by id).
    pub async fn respond_to(&self, peer: PeerId, id: u64, answer: crate::messaging::Answer) -> Result<(), HostError> {
        crate::messaging::respond(&self.cmd, peer, id, answer).await
    }

    /// Queues `data` for each of `peers` (no waiting: a congested peer reports
    /// `QueueFull`); one result per peer, in order.
    pub async fn send_many(
        &self,
        peers: &[PeerId],
        data: impl Into<Bytes>,
    ) -> Result<crate::messaging::SendResults, HostError> {
        let (peers, data) = (Some(peers.to_vec()), data.into());
        self.ask(|reply| Command::Messaging(crate::messaging::MsgCommand::SendMany { peers, data, reply })).await?
    }

    /// Queues `data` for every connected peer; one result per peer.
    pub async fn send_all(&self, data: impl Into<Bytes>) -> Result<crate::messaging::SendResults, HostError> {
        let data = data.into();
        self.ask(|reply| Command::Messaging(crate::messaging::MsgCommand::SendMany { peers: None, data, reply }))
            .await?
    }

    // ------------------------------------------------------------------ pub/sub

    /// Subscribes to `pattern` (`*` one token, `>` the rest; spec §15.1). Publications of
    /// other nodes that match come from the [`Subscription`](crate::pubsub::Subscription),
    /// whose queue holds `messaging.sub_queue` events (more are dropped and reported as
    /// `Lagged`). Fails at once on a bad pattern or a full table (`max_subs`,
    /// `max_interest_per_origin`). Dropping it unsubscribes.
    pub async fn subscribe(&self, pattern: &str, priority: Priority) -> Result<crate::pubsub::Subscription, HostError> {
        crate::pubsub::subscribe(&self.cmd, pattern.to_string(), priority).await
    }

    /// Publishes `body` on the literal `subject` to every neighbour whose interest
    /// matches; the report says how many it was queued to. This node's own
    /// subscriptions do not get it.
    pub async fn publish(
        &self,
        subject: &str,
        body: impl Into<Bytes>,
    ) -> Result<meshlink_core::messaging::PublishReport, HostError> {
        crate::pubsub::publish(&self.cmd, subject.to_string(), body.into()).await
    }

    // ------------------------------------------------------------------ RPC

    /// Calls function `name` on `peer` with JSON `args` (spec §15.5; the JSON mapping of
    /// §15.5.1) and returns its result as JSON. The arguments are checked here (nothing is
    /// sent on [`HostError::InvalidArguments`]). A call fails with its own variant:
    /// [`HostError::UnknownFunction`], [`HostError::BadArguments`], [`HostError::NoRpc`],
    /// [`HostError::Failed`] (the function's error), [`HostError::Timeout`],
    /// [`HostError::Disconnected`], ... `opts` are the request's (timeout, version).
    pub async fn call(
        &self,
        peer: PeerId,
        name: &str,
        args: Vec<serde_json::Value>,
        opts: crate::messaging::RequestOpts,
    ) -> Result<serde_json::Value, HostError> {
        crate::rpc::check_name(name)?;
        let body = crate::rpc::encode_args(&args).map_err(HostError::InvalidArguments)?;
        let r = crate::messaging::request(&self.cmd, peer, crate::rpc::subject(name), body.into(), opts).await;
        crate::rpc::call_outcome(r, name)
    }

    /// The functions `peer` has registered (the built-in `get_funcs`).
    pub async fn funcs(&self, peer: PeerId) -> Result<Vec<crate::rpc::FunctionInfo>, HostError> {
        let opts = crate::messaging::RequestOpts::new();
        crate::rpc::funcs_of(&self.call(peer, meshlink_core::messaging::rpc::GET_FUNCS, vec![], opts).await?)
    }

    /// The peers `peer` is connected to, in text form (the built-in `get_peers`).
    pub async fn remote_peers(&self, peer: PeerId) -> Result<Vec<String>, HostError> {
        let opts = crate::messaging::RequestOpts::new();
        crate::rpc::peers_of(&self.call(peer, meshlink_core::messaging::rpc::GET_PEERS, vec![], opts).await?)
    }

    /// Stream sockets open now (for limits and tests).
    pub fn open_connections(&self) -> usize {
        self.inner.limiter.open()
    }
}
