//! The driver: one tokio task that owns the core `Node` and does its I/O.
//!
//! Loop: after every input or command, drain `poll_transmit` (stream output batched per
//! connection and handed to that connection's writer task; datagrams sent at once), then
//! `poll_event` (turned into owned [`HostEvent`]s), then arm a timer at `poll_timeout`.
//! Then wait for the next command, socket input, timer, or room to deliver events.
//!
//! Back-pressure: application sends wait ("park", at most `max_parked_sends` per peer)
//! while a connection's writer holds more than [`net::HIGH_WATER`] bytes, or while UDP
//! datagrams wait for room in a full socket ([`UDP_HIGH_WATER`]). Nothing else waits:
//! events go to each subscriber's own bounded queue (a slow one gets `Lagged`, see
//! [`crate::fanout`]), socket input is always read, and a peer whose writer queue passes
//! `max_write_queue` (it floods requests that need replies and never reads them) is
//! disconnected. Commands are always served, so an application that sends from its
//! event loop cannot deadlock the driver.
//!
//! Reconnection (F10) lives in [`crate::reconnect`]: the driver tells its target table
//! about sessions that start and end, and feeds it the sockets its attempts dial.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use meshlink_core::messaging::MessengerEvent;
use meshlink_core::{ConnId, DisconnectReason, Event, Instant, NodeStats, PeerId, PeerInfo, Quality, TransportKind};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::error::HostError;
use crate::fanout::{reserve, Fanout};
use crate::net::{self, ConnGuard, ConnTaskSets, ConnTasks, Dialed, Dialer, NetInput, StreamConn};
use crate::reconnect::{Policy, ReconnectTarget, Targets};
use crate::types::{HostEvent, PeerSummary, PeerUrl, Transport};

pub(crate) type CoreNode = meshlink_core::messaging::HeapMessenger;
pub(crate) type Reply<T> = oneshot::Sender<Result<T, HostError>>;

/// Socket inputs handled per driver turn after the first (commands and the timer are
/// served between turns).
const NET_BATCH: usize = 32;
/// Datagram bytes waiting for room in a full UDP socket above which application sends
/// to datagram peers park (the stream writers' `HIGH_WATER`, for UDP).
const UDP_HIGH_WATER: usize = 256 * 1024;
/// Datagram bytes waiting for one UDP socket above which the driver stops taking the
/// core's output until the socket drains: the core keeps the rest in its own bounded
/// queues, so nothing is dropped and this queue stays bounded.
const UDP_PENDING_MAX: usize = 1024 * 1024;
/// Output buffer for `poll_transmit`: a stream transmit may hold several frames.
const TX_BUF: usize = 128 * 1024;
/// How long shutdown waits for writers to flush and subscribers to take the last events.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Requests from [`crate::HostHandle`]s.
pub(crate) enum Command {
    Dialed {
        stream: StreamConn,
        transport: Transport,
        addr: SocketAddr,
        expected: Option<PeerId>,
        guard: ConnGuard,
        reply: Reply<PeerSummary>,
    },
    ConnectUdp {
        addr: SocketAddr,
        expected: Option<PeerId>,
        reply: Reply<PeerSummary>,
    },
    /// Add a reconnect target; `reply` gets the first attempt's outcome.
    ConnectPersistent {
        url: PeerUrl,
        expected: Option<PeerId>,
        reply: Reply<PeerSummary>,
    },
    StopReconnect {
        url: PeerUrl,
        reply: oneshot::Sender<bool>,
    },
    Targets {
        reply: oneshot::Sender<Vec<ReconnectTarget>>,
    },
    Send {
        peer: PeerId,
        data: Bytes,
        wait: bool,
        reply: Reply<()>,
    },
    Disconnect {
        peer: PeerId,
        reply: Reply<()>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerSummary>>,
    },
    Quality {
        peer: PeerId,
        reply: oneshot::Sender<Option<Quality>>,
    },
    Threat {
        peer: PeerId,
        score: f32,
        reply: oneshot::Sender<()>,
    },
    Stats {
        reply: oneshot::Sender<HostStats>,
    },
    Subscribe {
        tx: mpsc::Sender<HostEvent>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// Request/response and send-to-many (see [`crate::messaging`]).
    Messaging(crate::messaging::MsgCommand),
    /// Publish/subscribe (see [`crate::pubsub`]).
    PubSub(crate::pubsub::PsCommand),
}

/// Node counters (F13) plus the host's own.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct HostStats {
    pub node: NodeStats,
    /// Open TCP and WebSocket connections.
    pub stream_connections: usize,
    /// Datagrams the kernel refused (other than for a full buffer) or had no socket for.
    pub udp_send_errors: u64,
    /// Datagrams that found their socket full and waited for room (none is dropped).
    pub udp_send_waits: u64,
    /// Events dropped because nobody had subscribed.
    pub events_unobserved: u64,
    /// Events dropped for subscribers that did not keep up (each got `Lagged`).
    pub events_lagged: u64,
    /// Stream connections closed because the peer let `max_write_queue` bytes pile up.
    pub slow_peer_disconnects: u64,
    /// Inbound handshakes closed to make room for a newer one (half-open cap reached).
    pub handshakes_evicted: u64,
    /// Dial attempts of reconnect targets (configured and persistent peers), first ones included.
    pub reconnect_attempts: u64,
    /// The core's request/response counters.
    pub messaging: meshlink_core::messaging::MessagingStats,
    /// Requests refused with `Busy` because their service's queue was full.
    pub requests_busy: u64,
    /// The core's pub/sub counters.
    pub pubsub: meshlink_core::messaging::PubSubStats,
    /// The host's pub/sub counters (subscription queues, notices).
    pub pubsub_host: crate::pubsub::PsHostStats,
}

/// Driver settings beyond its channels and sockets.
pub(crate) struct DriverOpts {
    pub write_timeout: Duration,
    pub udp_recv_buffer: usize,
    pub dialer: Arc<Dialer>,
    pub reconnect: Policy,
    pub max_write_queue: usize,
    pub max_parked_sends: usize,
    /// Requests queued per service before more are refused `Busy`.
    pub serve_queue: usize,
    /// Events queued per subscription before publications are dropped (`Lagged`).
    pub sub_queue: usize,
}

/// One UDP socket and the datagrams waiting for room in it, in order.
pub(crate) struct UdpOut {
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    pending: VecDeque<(SocketAddr, Bytes)>,
    pending_bytes: usize,
}

impl UdpOut {
    fn new(local: SocketAddr, sock: Arc<UdpSocket>) -> Self {
        UdpOut { local, sock, pending: VecDeque::new(), pending_bytes: 0 }
    }

    /// Sends what waits, in order, until the socket is full again.
    fn flush(&mut self, errors: &mut u64) {
        while let Some((to, d)) = self.pending.front() {
            match self.sock.try_send_to(d, *to) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                r => {
                    if let Err(e) = r {
                        tracing::trace!("udp send to {to}: {e}");
                        *errors += 1;
                    }
                    self.pending_bytes -= d.len();
                    self.pending.pop_front();
                }
            }
        }
    }
}

/// Whether a socket bound to `local` should carry datagrams to `to`: same family, and a
/// loopback-bound socket only for loopback destinations (it cannot reach others).
/// `Some(rank)`, lower is better: a loopback socket for a loopback peer, then a wildcard
/// one, then one bound to a specific address.
fn udp_rank(local: SocketAddr, to: SocketAddr) -> Option<u8> {
    if local.is_ipv4() != to.is_ipv4() {
        return None;
    }
    match (local.ip().is_loopback(), to.ip().is_loopback(), local.ip().is_unspecified()) {
        (true, true, _) => Some(0),
        (true, false, _) => None,
        (_, _, true) => Some(1),
        (false, false, false) => Some(2),
        (false, true, false) => None,
    }
}

/// The socket to send to `to` from, by destination.
fn pick_udp(socks: &[UdpOut], to: SocketAddr) -> Option<usize> {
    (0..socks.len()).filter_map(|i| udp_rank(socks[i].local, to).map(|r| (r, i))).min().map(|(_, i)| i)
}

/// Resolves once `sock` may take a datagram (never without a socket).
async fn writable(sock: Option<Arc<UdpSocket>>) {
    match sock {
        Some(s) => {
            let _ = s.writable().await;
        }
        None => std::future::pending().await,
    }
}

pub(crate) struct Driver {
    pub node: Box<CoreNode>,
    pub epoch: std::time::Instant,
    pub cmd_rx: mpsc::Receiver<Command>,
    pub net_rx: mpsc::Receiver<NetInput>,
    pub net_tx: mpsc::Sender<NetInput>,
    pub udp: Vec<UdpOut>,
    pub tasks: Vec<AbortHandle>,
    pub write_timeout: Duration,
    pub udp_recv_buffer: usize,
    max_write_queue: usize,
    max_parked_sends: usize,
    /// Set when a UDP socket's queue passed `UDP_PENDING_MAX`: stop taking core output.
    udp_full: bool,
    /// Connections the host closed itself, with the reason their `Disconnected` carries.
    closing: HashMap<ConnId, DisconnectReason>,
    /// Inbound stream handshakes in progress, oldest first (for eviction).
    inbound: VecDeque<(ConnId, IpAddr)>,
    /// ICMP probes beside UDP dials, ended once their handshake does.
    probes: HashMap<ConnId, AbortHandle>,
    half_open_per_ip: usize,
    targets: Targets,
    conns: HashMap<ConnId, ConnTasks>,
    sockets: ConnTaskSets,
    waiters: HashMap<ConnId, Reply<PeerSummary>>,
    peer_conn: HashMap<PeerId, ConnId>,
    parked: HashMap<PeerId, VecDeque<(Bytes, Reply<()>)>>,
    events: Fanout,
    txbuf: Vec<u8>,
    stats: HostStats,
    msg: crate::messaging::MsgState,
    ps: crate::pubsub::PsState,
}

impl Driver {
    pub fn new(
        node: Box<CoreNode>,
        epoch: std::time::Instant,
        cmd_rx: mpsc::Receiver<Command>,
        (net_rx, net_tx): (mpsc::Receiver<NetInput>, mpsc::Sender<NetInput>),
        udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
        tasks: Vec<AbortHandle>,
        opts: DriverOpts,
    ) -> Self {
        Driver {
            half_open_per_ip: node.node().config().max_half_open_per_ip,
            node,
            epoch,
            cmd_rx,
            targets: Targets::new(opts.reconnect, opts.dialer, net_tx.clone()),
            net_rx,
            net_tx,
            udp: udp.into_iter().map(|(l, s)| UdpOut::new(l, s)).collect(),
            tasks,
            write_timeout: opts.write_timeout,
            udp_recv_buffer: opts.udp_recv_buffer,
            max_write_queue: opts.max_write_queue,
            max_parked_sends: opts.max_parked_sends,
            udp_full: false,
            closing: HashMap::new(),
            inbound: VecDeque::new(),
            probes: HashMap::new(),
            conns: HashMap::new(),
            sockets: ConnTaskSets::default(),
            waiters: HashMap::new(),
            peer_conn: HashMap::new(),
            parked: HashMap::new(),
            events: Fanout::default(),
            txbuf: vec![0; TX_BUF],
            stats: HostStats::default(),
            msg: crate::messaging::MsgState::new(opts.serve_queue),
            ps: crate::pubsub::PsState::new(opts.sub_queue),
        }
    }

    fn now(&self) -> Instant {
        Instant::since(self.epoch)
    }

    fn deadline(&self, t: Instant) -> tokio::time::Instant {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
        self.epoch
            .checked_add(Duration::from_micros(t.as_micros()))
            .map_or(far, tokio::time::Instant::from_std)
            .min(far)
    }

    pub async fn run(mut self) {
        let sleep = tokio::time::sleep(Duration::from_secs(86_400));
        tokio::pin!(sleep);
        let mut shutdown_reply = None;
        loop {
            self.flush();
            self.sockets.reap();
            let timer = self.node.poll_timeout();
            if let Some(t) = timer {
                sleep.as_mut().reset(self.deadline(t));
            }
            let lagging = self.events.lagging();
            let owe_lagged = lagging.is_some();
            let blocked = self.udp.iter().position(|u| !u.pending.is_empty());
            let blocked_sock = blocked.map(|i| self.udp[i].sock.clone());
            // Unbiased: a flood of commands must not starve socket input or the timer.
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        shutdown_reply = Some(reply);
                        break;
                    }
                    Some(c) => self.command(c),
                    None => break, // every handle dropped
                },
                permit = reserve(lagging), if owe_lagged => self.events.on_permit(permit),
                input = self.net_rx.recv() => {
                    if let Some(i) = input {
                        self.net(i);
                        // Take what else is queued before the next full turn: fewer
                        // turns per byte is what lets the UDP reader keep up.
                        for _ in 0..NET_BATCH {
                            let Ok(i) = self.net_rx.try_recv() else { break };
                            self.drain_events();
                            self.net(i);
                        }
                    }
                }
                () = writable(blocked_sock), if blocked.is_some() => {
                    if let Some(u) = blocked.and_then(|i| self.udp.get_mut(i)) {
                        u.flush(&mut self.stats.udp_send_errors);
                    }
                    self.udp_full = self.udp.iter().any(|u| u.pending_bytes >= UDP_PENDING_MAX);
                }
                () = &mut sleep, if timer.is_some() => {
                    let now = self.now();
                    self.node.handle_timeout(now);
                }
            }
        }
        self.shutdown().await;
        if let Some(r) = shutdown_reply {
            let _ = r.send(());
        }
    }

    /// Drains the core until it is quiet: transmits, events, parked sends.
    fn flush(&mut self) {
        for _ in 0..64 {
            let now = self.now();
            self.drain_transmits(now);
            let events = self.drain_events();
            let sent = self.retry_parked(now);
            if events == 0 && !sent {
                break;
            }
        }
    }

    fn drain_transmits(&mut self, now: Instant) {
        let Driver { node, txbuf, conns, udp, stats, udp_full, max_write_queue, .. } = self;
        let mut batch: Option<(ConnId, BytesMut)> = None;
        let mut overflowed: Vec<(ConnId, usize)> = Vec::new();
        let mut write = |conn: ConnId, data: BytesMut| {
            if let Some(t) = conns.get(&conn) {
                if t.state.queued() + data.len() > *max_write_queue {
                    overflowed.push((conn, t.state.queued() + data.len()));
                } else {
                    t.write(data.freeze());
                }
            }
        };
        while !*udp_full {
            let Some(t) = node.poll_transmit(now, txbuf) else { break };
            let data = &txbuf[..t.len];
            match (t.kind, t.conn) {
                (TransportKind::Stream, Some(conn)) => match &mut batch {
                    Some((c, buf)) if *c == conn => buf.extend_from_slice(data),
                    _ => {
                        if let Some((c, buf)) = batch.take() {
                            write(c, buf);
                        }
                        batch = Some((conn, BytesMut::from(data)));
                    }
                },
                (TransportKind::Stream, None) => {}
                (TransportKind::Datagram, _) => {
                    let Some(u) = pick_udp(udp, t.addr).and_then(|i| udp.get_mut(i)) else {
                        stats.udp_send_errors += 1;
                        continue;
                    };
                    if u.pending.is_empty() {
                        match u.sock.try_send_to(data, t.addr) {
                            Ok(_) => continue,
                            // A full socket: the datagram waits for room, in order.
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                            Err(e) => {
                                tracing::trace!("udp send to {}: {e}", t.addr);
                                stats.udp_send_errors += 1;
                                continue;
                            }
                        }
                    }
                    stats.udp_send_waits += 1;
                    u.pending_bytes += data.len();
                    u.pending.push_back((t.addr, Bytes::copy_from_slice(data)));
                    *udp_full = u.pending_bytes >= UDP_PENDING_MAX;
                }
            }
        }
        if let Some((c, buf)) = batch {
            write(c, buf);
        }
        for (conn, queued) in overflowed {
            self.drop_slow_reader(now, conn, queued);
        }
    }

    /// A peer let `max_write_queue` bytes pile up for its socket: close the connection
    /// now (its writer cannot flush anyway) and say why in its `Disconnected`.
    fn drop_slow_reader(&mut self, now: Instant, conn: ConnId, queued: usize) {
        if self.closing.contains_key(&conn) {
            return;
        }
        let Some(t) = self.conns.get(&conn) else { return };
        tracing::warn!(
            "closing {conn:?}: the peer does not read ({queued} bytes would be queued, limit {})",
            self.max_write_queue
        );
        t.writer.abort();
        t.reader.abort();
        self.stats.slow_peer_disconnects += 1;
        let free = self.max_write_queue.saturating_sub(t.state.queued());
        let why = meshlink_core::Error::QueueFull { needed: queued - t.state.queued(), free };
        self.closing.insert(conn, DisconnectReason::Error(why));
        self.node.handle_stream_closed(conn, now);
    }

    fn drain_events(&mut self) -> usize {
        let mut n = 0;
        loop {
            let mut ev = {
                let Some(ev) = self.node.poll_event() else { break };
                let ev = match ev {
                    MessengerEvent::Node(ev) => ev,
                    ev @ (MessengerEvent::Publication { .. }
                    | MessengerEvent::SubscribeActive { .. }
                    | MessengerEvent::SlowConsumer { .. }
                    | MessengerEvent::InterestLimited { .. }) => {
                        self.ps.on_event(ev);
                        n += 1;
                        continue;
                    }
                    other => {
                        // Request/response: owned first, then acted on (it may answer).
                        let owned = crate::messaging::Owned::from_event(other);
                        let now = self.now();
                        self.msg.on_event(&mut self.node, now, owned);
                        n += 1;
                        continue;
                    }
                };
                // An event kind newer than this host: nothing here acts on it.
                let Some(ev) = own_event(ev, &self.conns) else { continue };
                ev
            };
            if let HostEvent::Disconnected { conn, reason, .. } = &mut ev {
                if let Some(r) = self.closing.remove(conn) {
                    *reason = r;
                }
            }
            n += 1;
            self.on_event(ev);
        }
        n
    }

    fn on_event(&mut self, ev: HostEvent) {
        match &ev {
            HostEvent::Connected { conn, peer, addr, transport, hello, .. } => {
                tracing::info!("connected {} ({}) via {transport} {addr}", peer.short(), hello.name);
                self.handshake_over(*conn);
                self.peer_conn.insert(*peer, *conn);
                self.targets.on_connected(*conn, *peer);
                if let Some(w) = self.waiters.remove(conn) {
                    let _ = w.send(self.summary(*conn).ok_or(HostError::Stopped));
                }
            }
            HostEvent::Disconnected { conn, peer, addr, transport, reason, .. } => {
                tracing::info!(
                    "disconnected {} via {transport} {addr}: {}",
                    peer.map_or("(handshake)".to_string(), |p| p.short().to_string()),
                    crate::error::reason_text(reason)
                );
                self.handshake_over(*conn);
                if let Some(t) = self.conns.remove(conn) {
                    // Dropping the sender lets the writer flush what is queued (a Close),
                    // then send FIN. The reader lingers until the peer closes (see
                    // `net::LINGER`); its input is ignored from now on.
                    let reader = t.reader;
                    tokio::spawn(async move {
                        tokio::time::sleep(net::LINGER).await;
                        reader.abort();
                    });
                }
                if let Some(p) = peer {
                    if self.peer_conn.get(p) == Some(conn) {
                        self.peer_conn.remove(p);
                    }
                }
                if let Some(w) = self.waiters.remove(conn) {
                    // Lost a duplicate race to a session with the same peer: that one is the answer.
                    let existing = peer.and_then(|p| self.peer_conn.get(&p).copied()).and_then(|c| self.summary(c));
                    let r = match (reason, existing) {
                        (DisconnectReason::Local(meshlink_core::CloseReason::Duplicate), Some(s)) => Ok(s),
                        _ => Err(HostError::Handshake { addr: *addr, reason: *reason }),
                    };
                    let _ = w.send(r);
                }
                if let Some(p) = peer.filter(|p| !self.peer_conn.contains_key(p)) {
                    for (_, r) in self.parked.remove(&p).unwrap_or_default() {
                        let _ = r.send(Err(HostError::NotDelivered));
                    }
                }
                if matches!(reason, DisconnectReason::Error(meshlink_core::Error::HandshakeEvicted)) {
                    // The core made room itself (its half-open cap): count it with the
                    // host's own evictions, which `handshakes_failed` misses when the
                    // evicted session was established but not yet confirmed.
                    self.stats.handshakes_evicted += 1;
                }
                if matches!(reason, DisconnectReason::Error(meshlink_core::Error::SelfConnect)) {
                    self.targets.self_connect(*conn);
                }
                let why = crate::error::reason_text(reason);
                self.targets.on_disconnected(*conn, *peer, |p| self.peer_conn.contains_key(p), &why);
            }
            HostEvent::RemoteError { peer, code } => tracing::debug!("peer {} reported {code:?}", peer.short()),
            HostEvent::Message { .. } | HostEvent::Quality { .. } | HostEvent::Lagged { .. } => {}
        }
        self.events.push(ev);
    }

    fn handshake_over(&mut self, conn: ConnId) {
        self.inbound.retain(|(c, _)| *c != conn);
        if let Some(p) = self.probes.remove(&conn) {
            p.abort();
        }
    }

    /// `accept`, making room when the half-open cap is reached: the oldest inbound stream
    /// handshake (from the same IP, if that IP's cap is the one reached) is closed. A
    /// flood of Inits then cannot lock out a peer that completes its handshake promptly.
    fn accept_evicting(&mut self, now: Instant, addr: SocketAddr) -> Result<ConnId, meshlink_core::Error> {
        match self.node.node_mut().accept(now, addr) {
            Err(meshlink_core::Error::HalfOpenLimit { .. }) => {
                let same_ip = self.inbound.iter().filter(|(_, ip)| *ip == addr.ip()).count();
                let victim = if same_ip >= self.half_open_per_ip {
                    self.inbound.iter().position(|(_, ip)| *ip == addr.ip())
                } else {
                    (!self.inbound.is_empty()).then_some(0)
                };
                let Some((old, _)) = victim.and_then(|i| self.inbound.remove(i)) else {
                    return self.node.node_mut().accept(now, addr);
                };
                tracing::debug!("half-open cap reached: closing the oldest inbound handshake {old:?} for {addr}");
                self.stats.handshakes_evicted += 1;
                let _ = self.node.node_mut().close(now, old);
                self.node.node_mut().accept(now, addr)
            }
            r => r,
        }
    }

    fn summary(&self, conn: ConnId) -> Option<PeerSummary> {
        let now = self.now();
        self.node.node().peers().find(|p| p.conn == conn).map(|p| summarize(&p, now, &self.conns))
    }

    // ------------------------------------------------------------------ input

    fn net(&mut self, input: NetInput) {
        let now = self.now();
        match input {
            NetInput::Accepted { stream, transport, addr, guard, first } => match self.accept_evicting(now, addr) {
                Ok(conn) => {
                    self.inbound.push_back((conn, addr.ip()));
                    self.add_conn(conn, stream, transport, guard);
                    self.feed_stream(conn, &first);
                }
                Err(e) => tracing::debug!("refused {transport} connection from {addr}: {e}"),
            },
            NetInput::UdpUnreachable { conn, addr } => {
                self.probes.remove(&conn);
                if let Some(w) = self.waiters.remove(&conn) {
                    let e = std::io::Error::from(ErrorKind::ConnectionRefused);
                    let _ = w.send(Err(HostError::io(format!("udp://{addr}: port unreachable (ICMP)"), e)));
                    let _ = self.node.node_mut().close(now, conn);
                }
            }
            NetInput::Stream { conn, data } => {
                if self.conns.contains_key(&conn) {
                    self.feed_stream(conn, &data);
                }
            }
            NetInput::StreamClosed { conn } => {
                if self.conns.contains_key(&conn) {
                    self.node.handle_stream_closed(conn, now);
                }
            }
            NetInput::Datagrams { batch } => {
                for (from, data) in batch {
                    if let Err(e) = self.node.handle_datagram(self.now(), from, &data) {
                        tracing::trace!("datagram from {from} dropped: {e}");
                    }
                    // A message waiting in `poll_event` would make the next datagram of
                    // its session bounce (WouldBlock): take events after each one.
                    self.drain_events();
                }
            }
            NetInput::Drained { conn } => tracing::trace!("{conn:?} drained"), // flush() retries parked sends
            NetInput::Redial { id, gen, result } => self.redialled(id, gen, result),
        }
    }

    /// A reconnect attempt dialled: hand the transport to the core, or note the failure.
    fn redialled(&mut self, id: u64, gen: u64, result: Result<Dialed, HostError>) {
        let Some((expected, known)) = self.targets.dialled(id, gen) else { return }; // stopped meanwhile
        if let Some((p, conn)) = known.and_then(|p| self.peer_conn.get(&p).map(|c| (p, *c))) {
            // Connected already (it dialled us meanwhile): no second session; a dialled
            // socket just closes. A first-attempt waiter gets the existing session.
            if let Some(w) = self.targets.standby(id, p) {
                let _ = w.send(self.summary(conn).ok_or(HostError::Stopped));
            }
            return;
        }
        let now = self.now();
        let r = result.and_then(|d| match d {
            Dialed::Stream { stream, transport, addr, guard } => {
                let conn = self.node.node_mut().connect(now, TransportKind::Stream, addr, expected)?;
                self.add_conn(conn, stream, transport, guard);
                Ok(conn)
            }
            Dialed::Udp { addr } => {
                self.ensure_udp(addr)?;
                let conn = self.node.node_mut().connect(now, TransportKind::Datagram, addr, expected)?;
                self.probe_udp(conn, addr);
                Ok(conn)
            }
        });
        match r {
            Ok(conn) => {
                if let Some(reply) = self.targets.started(id, conn) {
                    self.waiters.insert(conn, reply);
                }
            }
            Err(e) => {
                if let Some(reply) = self.targets.failed(id, &e) {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }

    /// Feeds stream bytes, honouring partial consumption: when the core stops at a
    /// received message, take the events (and send what they caused) and feed the rest.
    fn feed_stream(&mut self, conn: ConnId, data: &[u8]) {
        let mut off = 0;
        while off < data.len() {
            let now = self.now();
            match self.node.handle_stream(conn, now, &data[off..]) {
                Ok(n) => {
                    off += n;
                    if off < data.len() {
                        self.drain_transmits(now);
                        if self.drain_events() == 0 && n == 0 {
                            break; // the session closed; the rest is moot
                        }
                    }
                }
                Err(e) => {
                    // The core closes the session (Disconnected follows) on every error but
                    // TooLarge; the rest of this chunk cannot be placed either way.
                    tracing::debug!("stream {conn:?}: {e}");
                    break;
                }
            }
        }
    }

    fn add_conn(&mut self, conn: ConnId, stream: StreamConn, transport: Transport, guard: ConnGuard) {
        let t =
            net::spawn_conn(conn, stream, transport, guard, self.net_tx.clone(), &mut self.sockets, self.write_timeout);
        self.conns.insert(conn, t);
    }

    // ------------------------------------------------------------------ commands

    fn command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::Dialed { stream, transport, addr, expected, guard, reply } => {
                match self.node.node_mut().connect(now, TransportKind::Stream, addr, expected) {
                    Ok(conn) => {
                        self.add_conn(conn, stream, transport, guard);
                        self.waiters.insert(conn, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::ConnectUdp { addr, expected, reply } => {
                let r = self.ensure_udp(addr).and_then(|()| {
                    self.node.node_mut().connect(now, TransportKind::Datagram, addr, expected).map_err(HostError::from)
                });
                match r {
                    Ok(conn) => {
                        self.waiters.insert(conn, reply);
                        self.probe_udp(conn, addr);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Send { peer, data, wait, reply } => self.cmd_send(now, peer, data, wait, reply),
            Command::Disconnect { peer, reply } => {
                // The user's word ends reconnecting too (before the Disconnected event,
                // which would otherwise schedule a re-dial).
                let stopped = self.targets.stop_peer(&peer);
                let r = match self.node.node_mut().disconnect(now, &peer) {
                    Err(meshlink_core::Error::UnknownPeer) if stopped => Ok(()),
                    r => r.map_err(HostError::from),
                };
                let _ = reply.send(r);
            }
            Command::ConnectPersistent { url, expected, reply } => self.targets.add(url, expected, Some(reply)),
            Command::StopReconnect { url, reply } => {
                let _ = reply.send(self.targets.stop_url(&url));
            }
            Command::Targets { reply } => {
                let _ = reply.send(self.targets.list());
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.node.node().peers().map(|p| summarize(&p, now, &self.conns)).collect());
            }
            Command::Quality { peer, reply } => {
                let _ = reply.send(self.node.node().quality(&peer));
            }
            Command::Threat { peer, score, reply } => {
                self.node.node_mut().set_threat_score(now, peer, score);
                let _ = reply.send(());
            }
            Command::Stats { reply } => {
                let mut s = self.stats;
                s.events_unobserved = self.events.unobserved;
                s.events_lagged = self.events.lagged;
                s.node = self.node.node().stats();
                s.stream_connections = self.conns.len();
                s.reconnect_attempts = self.targets.attempts;
                s.messaging = self.node.stats();
                s.requests_busy = self.msg.busy;
                s.pubsub = self.node.pubsub_stats();
                s.pubsub_host = self.ps.stats;
                let _ = reply.send(s);
            }
            Command::Subscribe { tx } => self.events.subscribe(tx),
            Command::Messaging(c) => self.msg.command(&mut self.node, now, c),
            Command::PubSub(c) => self.ps.command(&mut self.node, now, c),
            Command::Shutdown { .. } => {} // handled in run()
        }
    }

    fn probe_udp(&mut self, conn: ConnId, addr: SocketAddr) {
        let task = tokio::spawn(net::udp_probe(conn, addr, self.net_tx.clone()));
        self.probes.insert(conn, task.abort_handle());
    }

    /// A UDP socket that can reach `addr` (see [`udp_rank`]); an outbound-only node, or
    /// one listening on loopback only, binds a wildcard one on first use.
    fn ensure_udp(&mut self, addr: SocketAddr) -> Result<(), HostError> {
        if pick_udp(&self.udp, addr).is_some() {
            return Ok(());
        }
        let any: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let sock = Arc::new(net::bind_udp(any, self.udp_recv_buffer)?);
        let local = sock.local_addr().map_err(|e| HostError::io("udp local address", e))?;
        self.tasks.push(tokio::spawn(net::udp_reader(sock.clone(), self.net_tx.clone())).abort_handle());
        self.udp.push(UdpOut::new(local, sock));
        Ok(())
    }

    fn cmd_send(&mut self, now: Instant, peer: PeerId, data: Bytes, wait: bool, reply: Reply<()>) {
        let queued_behind = self.parked.get(&peer).is_some_and(|q| !q.is_empty());
        let r = if queued_behind { Err(None) } else { self.try_send(now, &peer, &data) };
        match r {
            Ok(()) => {
                let _ = reply.send(Ok(()));
            }
            Err(None) if wait && self.parked.get(&peer).map_or(0, VecDeque::len) < self.max_parked_sends => {
                self.parked.entry(peer).or_default().push_back((data, reply))
            }
            Err(None) => {
                let e = meshlink_core::Error::QueueFull { needed: data.len(), free: 0 };
                let _ = reply.send(Err(e.into()));
            }
            Err(Some(e)) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// `Err(None)`: no room now (core queue full or the socket is congested).
    fn try_send(&mut self, now: Instant, peer: &PeerId, data: &[u8]) -> Result<(), Option<HostError>> {
        if let Some(conn) = self.peer_conn.get(peer) {
            if let Some(t) = self.conns.get(conn) {
                if t.state.queued() >= net::HIGH_WATER {
                    t.state.want_drain.store(true, Ordering::SeqCst);
                    // Re-check: the writer may have drained between the load and the store.
                    if t.state.queued() >= net::HIGH_WATER {
                        return Err(None);
                    }
                }
            } else if self.udp_full || self.udp.iter().any(|u| u.pending_bytes >= UDP_HIGH_WATER) {
                return Err(None); // a datagram peer, and datagrams wait for socket room
            }
        }
        match self.node.node_mut().send(now, peer, data) {
            Ok(()) => Ok(()),
            Err(meshlink_core::Error::QueueFull { .. }) => Err(None),
            Err(e) => Err(Some(e.into())),
        }
    }

    fn retry_parked(&mut self, now: Instant) -> bool {
        if self.parked.is_empty() {
            return false;
        }
        let mut progressed = false;
        let peers: Vec<PeerId> = self.parked.keys().copied().collect();
        for peer in peers {
            while let Some(data) = self.parked.get(&peer).and_then(|q| q.front()).map(|(d, _)| d.clone()) {
                let r = self.try_send(now, &peer, &data);
                if matches!(r, Err(None)) {
                    break;
                }
                progressed = true;
                if let Some((_, reply)) = self.parked.get_mut(&peer).and_then(|q| q.pop_front()) {
                    let _ = reply.send(r.map_err(|e| e.unwrap_or(HostError::NotDelivered)));
                }
            }
            if self.parked.get(&peer).is_some_and(|q| q.is_empty()) {
                self.parked.remove(&peer);
            }
        }
        progressed
    }

    // ------------------------------------------------------------------ shutdown

    /// Graceful: every peer gets a Close, writers flush, subscribers get the last events.
    async fn shutdown(&mut self) {
        for t in self.tasks.iter().chain(self.probes.values()) {
            t.abort(); // listeners, UDP readers, probes: no new input
        }
        for w in self.targets.stop_all() {
            let _ = w.send(Err(HostError::Stopped));
        }
        let now = self.now();
        self.node.node_mut().close_all(now);
        self.flush();
        // Datagrams (Closes among them) still waiting for socket room get a moment.
        let grace = tokio::time::Instant::now() + Duration::from_millis(200);
        for u in &mut self.udp {
            while !u.pending.is_empty() && tokio::time::timeout_at(grace, u.sock.writable()).await.is_ok() {
                u.flush(&mut self.stats.udp_send_errors);
            }
        }
        for (_, q) in self.parked.drain() {
            for (_, r) in q {
                let _ = r.send(Err(HostError::NotDelivered));
            }
        }
        for (_, w) in self.waiters.drain() {
            let _ = w.send(Err(HostError::Stopped));
        }
        self.msg.stop();
        self.ps.stop();
        // Dropping the senders lets each writer flush and send FIN; readers end when the
        // peer closes its side.
        // Closing our input makes readers stop forwarding and just drain until EOF.
        self.net_rx.close();
        self.conns.clear();
        self.sockets.finish(tokio::time::Instant::now() + SHUTDOWN_GRACE).await;
        self.events.flush_until(tokio::time::Instant::now() + SHUTDOWN_GRACE).await;
    }
}

fn transport_of(conn: ConnId, kind: TransportKind, conns: &HashMap<ConnId, ConnTasks>) -> Transport {
    match kind {
        TransportKind::Datagram => Transport::Udp,
        TransportKind::Stream => conns.get(&conn).map_or(Transport::Tcp, |t| t.transport),
    }
}

fn summarize(p: &PeerInfo, now: Instant, conns: &HashMap<ConnId, ConnTasks>) -> PeerSummary {
    PeerSummary {
        peer: p.peer,
        conn: p.conn,
        addr: p.addr,
        transport: transport_of(p.conn, p.kind, conns),
        role: p.role,
        name: p.name.as_str().to_string(),
        connected_for: now.saturating_since(p.connected_at),
        quality: p.quality,
        threat: p.threat,
    }
}

/// The host's owned copy of a core event; `None` for an event kind this host does not
/// know (`Event` is `#[non_exhaustive]`), which is logged and skipped.
fn own_event(ev: Event<'_>, conns: &HashMap<ConnId, ConnTasks>) -> Option<HostEvent> {
    Some(match ev {
        Event::Connected { conn, peer, addr, kind, hello, quality } => HostEvent::Connected {
            conn,
            peer,
            addr,
            transport: transport_of(conn, kind, conns),
            hello: Box::new(hello.clone()),
            quality,
        },
        Event::Message { peer, data, .. } => HostEvent::Message { peer, data: Bytes::copy_from_slice(data) },
        Event::QualityUpdate { peer, quality, .. } => HostEvent::Quality { peer, quality },
        Event::RemoteError { peer, code, .. } => HostEvent::RemoteError { peer, code },
        Event::Disconnected { conn, peer, addr, was_connected, reason } => {
            // A datagram session has no entry in `conns`; a stream one still has (it is
            // removed while handling this event).
            let transport = if conns.contains_key(&conn) {
                transport_of(conn, TransportKind::Stream, conns)
            } else {
                Transport::Udp
            };
            HostEvent::Disconnected { conn, peer, addr, transport, was_connected, reason }
        }
        other => {
            tracing::debug!("core event not handled by this host: {other:?}");
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(local: &str, to: &str) -> Option<u8> {
        udp_rank(local.parse().unwrap(), to.parse().unwrap())
    }

    #[test]
    fn udp_socket_is_picked_by_destination() {
        // A loopback-bound socket cannot reach another host: never for remote peers.
        assert_eq!(rank("127.0.0.1:7402", "192.0.2.7:7402"), None);
        assert_eq!(rank("127.0.0.1:7402", "127.0.0.1:9"), Some(0));
        assert_eq!(rank("0.0.0.0:7402", "127.0.0.1:9"), Some(1));
        assert_eq!(rank("0.0.0.0:7402", "192.0.2.7:9"), Some(1));
        assert_eq!(rank("192.0.2.1:7402", "192.0.2.7:9"), Some(2));
        assert_eq!(rank("192.0.2.1:7402", "127.0.0.1:9"), None);
        // Families never mix (IPv6 sockets are v6-only).
        assert_eq!(rank("[::]:7402", "127.0.0.1:9"), None);
        assert_eq!(rank("0.0.0.0:7402", "[::1]:9"), None);
        assert_eq!(rank("[::1]:7402", "[::1]:9"), Some(0));
    }
}
