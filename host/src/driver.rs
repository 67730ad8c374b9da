//! The driver: one tokio task that owns the core `Node` and does its I/O.
//!
//! Loop: after every input or command, drain `poll_transmit` (stream output batched per
//! connection and handed to that connection's writer task; datagrams sent at once), then
//! `poll_event` (turned into owned [`HostEvent`]s), then arm a timer at `poll_timeout`.
//! Then wait for the next command, socket input, timer, or room to deliver events.
//!
//! Back-pressure: socket input pauses while undelivered events pile up (a slow
//! application slows its peers down through TCP flow control), and application sends wait
//! ("park") while a connection's writer holds more than [`net::HIGH_WATER`] bytes.
//! Commands are always served, so an application that sends from its event loop cannot
//! deadlock the driver.
//!
//! Reconnection (F10) lives in [`crate::reconnect`]: the driver tells its target table
//! about sessions that start and end, and feeds it the sockets its attempts dial.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use meshlink_core::{ConnId, DisconnectReason, Event, Instant, NodeStats, PeerId, PeerInfo, Quality, TransportKind};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::error::HostError;
use crate::fanout::{reserve, Fanout};
use crate::net::{self, ConnGuard, ConnTaskSets, ConnTasks, Dialed, Dialer, NetInput, StreamConn};
use crate::reconnect::{Policy, ReconnectTarget, Targets};
use crate::types::{HostEvent, PeerSummary, PeerUrl, Transport};

pub(crate) type CoreNode = meshlink_core::HeapNode;
pub(crate) type Reply<T> = oneshot::Sender<Result<T, HostError>>;

/// Undelivered events above which socket input pauses.
const MAX_PENDING_EVENTS: usize = 1024;
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
}

/// Node counters (F13) plus the host's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostStats {
    pub node: NodeStats,
    /// Open TCP and WebSocket connections.
    pub stream_connections: usize,
    /// Datagrams the kernel would not take (socket buffer full) or had no socket for.
    pub udp_send_errors: u64,
    /// Events dropped because nobody had subscribed.
    pub events_unobserved: u64,
    /// Dial attempts of reconnect targets (configured and persistent peers), first ones included.
    pub reconnect_attempts: u64,
}

/// Driver settings beyond its channels and sockets.
pub(crate) struct DriverOpts {
    pub write_timeout: Duration,
    pub udp_recv_buffer: usize,
    pub dialer: Arc<Dialer>,
    pub reconnect: Policy,
}

pub(crate) struct Driver {
    pub node: Box<CoreNode>,
    pub epoch: std::time::Instant,
    pub cmd_rx: mpsc::Receiver<Command>,
    pub net_rx: mpsc::Receiver<NetInput>,
    pub net_tx: mpsc::Sender<NetInput>,
    pub udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    pub tasks: Vec<AbortHandle>,
    pub write_timeout: Duration,
    pub udp_recv_buffer: usize,
    targets: Targets,
    conns: HashMap<ConnId, ConnTasks>,
    sockets: ConnTaskSets,
    waiters: HashMap<ConnId, Reply<PeerSummary>>,
    peer_conn: HashMap<PeerId, ConnId>,
    parked: HashMap<PeerId, VecDeque<(Bytes, Reply<()>)>>,
    events: Fanout,
    txbuf: Vec<u8>,
    stats: HostStats,
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
            node,
            epoch,
            cmd_rx,
            targets: Targets::new(opts.reconnect, opts.dialer, net_tx.clone()),
            net_rx,
            net_tx,
            udp,
            tasks,
            write_timeout: opts.write_timeout,
            udp_recv_buffer: opts.udp_recv_buffer,
            conns: HashMap::new(),
            sockets: ConnTaskSets::default(),
            waiters: HashMap::new(),
            peer_conn: HashMap::new(),
            parked: HashMap::new(),
            events: Fanout::default(),
            txbuf: vec![0; TX_BUF],
            stats: HostStats::default(),
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
            let take_input = self.events.len() < MAX_PENDING_EVENTS;
            let waiting_on = self.events.waiting_on();
            let deliver = waiting_on.is_some();
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
                permit = reserve(waiting_on), if deliver => self.events.on_permit(permit),
                input = self.net_rx.recv(), if take_input => {
                    if let Some(i) = input {
                        self.net(i);
                    }
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
        self.events.deliver_ready();
    }

    fn drain_transmits(&mut self, now: Instant) {
        let Driver { node, txbuf, conns, udp, stats, .. } = self;
        let mut batch: Option<(ConnId, BytesMut)> = None;
        let write = |conns: &HashMap<ConnId, ConnTasks>, conn: ConnId, data: BytesMut| {
            if let Some(t) = conns.get(&conn) {
                t.write(data.freeze());
            }
        };
        while let Some(t) = node.poll_transmit(now, txbuf) {
            let data = &txbuf[..t.len];
            match (t.kind, t.conn) {
                (TransportKind::Stream, Some(conn)) => match &mut batch {
                    Some((c, buf)) if *c == conn => buf.extend_from_slice(data),
                    _ => {
                        if let Some((c, buf)) = batch.take() {
                            write(conns, c, buf);
                        }
                        batch = Some((conn, BytesMut::from(data)));
                    }
                },
                (TransportKind::Stream, None) => {}
                (TransportKind::Datagram, _) => {
                    let sock = udp.iter().find(|(local, _)| local.is_ipv4() == t.addr.is_ipv4());
                    let ok = sock.is_some_and(|(_, s)| s.try_send_to(data, t.addr).is_ok());
                    if !ok {
                        stats.udp_send_errors += 1;
                    }
                }
            }
        }
        if let Some((c, buf)) = batch {
            write(conns, c, buf);
        }
    }

    fn drain_events(&mut self) -> usize {
        let mut n = 0;
        loop {
            let ev = {
                let Some(ev) = self.node.poll_event() else { break };
                own_event(ev, &self.conns)
            };
            n += 1;
            self.on_event(ev);
        }
        n
    }

    fn on_event(&mut self, ev: HostEvent) {
        match &ev {
            HostEvent::Connected { conn, peer, addr, transport, hello, .. } => {
                tracing::info!("connected {} ({}) via {transport} {addr}", peer.short(), hello.name);
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
                let why = crate::error::reason_text(reason);
                self.targets.on_disconnected(*conn, *peer, |p| self.peer_conn.contains_key(p), &why);
            }
            HostEvent::RemoteError { peer, code } => tracing::debug!("peer {} reported {code:?}", peer.short()),
            HostEvent::Message { .. } | HostEvent::Quality { .. } => {}
        }
        self.events.push(ev);
    }

    fn summary(&self, conn: ConnId) -> Option<PeerSummary> {
        let now = self.now();
        self.node.peers().find(|p| p.conn == conn).map(|p| summarize(&p, now, &self.conns))
    }

    // ------------------------------------------------------------------ input

    fn net(&mut self, input: NetInput) {
        let now = self.now();
        match input {
            NetInput::Accepted { stream, transport, addr, guard } => match self.node.accept(now, addr) {
                Ok(conn) => self.add_conn(conn, stream, transport, guard),
                Err(e) => tracing::debug!("refused {transport} connection from {addr}: {e}"),
            },
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
            NetInput::Datagram { from, data } => {
                if let Err(e) = self.node.handle_datagram(now, from, &data) {
                    tracing::trace!("datagram from {from} dropped: {e}");
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
                let conn = self.node.connect(now, TransportKind::Stream, addr, expected)?;
                self.add_conn(conn, stream, transport, guard);
                Ok(conn)
            }
            Dialed::Udp { addr } => {
                self.ensure_udp(addr)?;
                Ok(self.node.connect(now, TransportKind::Datagram, addr, expected)?)
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
                match self.node.connect(now, TransportKind::Stream, addr, expected) {
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
                    self.node.connect(now, TransportKind::Datagram, addr, expected).map_err(HostError::from)
                });
                match r {
                    Ok(conn) => {
                        self.waiters.insert(conn, reply);
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
                let r = match self.node.disconnect(now, &peer) {
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
                let _ = reply.send(self.node.peers().map(|p| summarize(&p, now, &self.conns)).collect());
            }
            Command::Quality { peer, reply } => {
                let _ = reply.send(self.node.quality(&peer));
            }
            Command::Threat { peer, score, reply } => {
                self.node.set_threat_score(now, peer, score);
                let _ = reply.send(());
            }
            Command::Stats { reply } => {
                let mut s = self.stats;
                s.events_unobserved = self.events.unobserved;
                s.node = self.node.stats();
                s.stream_connections = self.conns.len();
                s.reconnect_attempts = self.targets.attempts;
                let _ = reply.send(s);
            }
            Command::Subscribe { tx } => self.events.subscribe(tx),
            Command::Shutdown { .. } => {} // handled in run()
        }
    }

    /// A UDP socket of `addr`'s family; an outbound-only node binds one on first use.
    fn ensure_udp(&mut self, addr: SocketAddr) -> Result<(), HostError> {
        if self.udp.iter().any(|(l, _)| l.is_ipv4() == addr.is_ipv4()) {
            return Ok(());
        }
        let any: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let sock = Arc::new(net::bind_udp(any, self.udp_recv_buffer)?);
        let local = sock.local_addr().map_err(|e| HostError::io("udp local address", e))?;
        self.tasks.push(tokio::spawn(net::udp_reader(sock.clone(), self.net_tx.clone())).abort_handle());
        self.udp.push((local, sock));
        Ok(())
    }

    fn cmd_send(&mut self, now: Instant, peer: PeerId, data: Bytes, wait: bool, reply: Reply<()>) {
        let queued_behind = self.parked.get(&peer).is_some_and(|q| !q.is_empty());
        let r = if queued_behind { Err(None) } else { self.try_send(now, &peer, &data) };
        match r {
            Ok(()) => {
                let _ = reply.send(Ok(()));
            }
            Err(None) if wait => self.parked.entry(peer).or_default().push_back((data, reply)),
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
        if let Some(t) = self.peer_conn.get(peer).and_then(|c| self.conns.get(c)) {
            if t.state.queued() >= net::HIGH_WATER {
                t.state.want_drain.store(true, Ordering::SeqCst);
                // Re-check: the writer may have drained between the load and the store.
                if t.state.queued() >= net::HIGH_WATER {
                    return Err(None);
                }
            }
        }
        match self.node.send(now, peer, data) {
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
        for t in &self.tasks {
            t.abort(); // listeners and UDP readers: no new input
        }
        for w in self.targets.stop_all() {
            let _ = w.send(Err(HostError::Stopped));
        }
        let now = self.now();
        self.node.close_all(now);
        self.flush();
        for (_, q) in self.parked.drain() {
            for (_, r) in q {
                let _ = r.send(Err(HostError::NotDelivered));
            }
        }
        for (_, w) in self.waiters.drain() {
            let _ = w.send(Err(HostError::Stopped));
        }
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

fn own_event(ev: Event<'_>, conns: &HashMap<ConnId, ConnTasks>) -> HostEvent {
    match ev {
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
    }
}
