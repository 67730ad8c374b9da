//! Sockets: listeners, dialers, per-connection reader and writer tasks, connection limits.
//!
//! No protocol logic here: readers hand bytes to the driver, writers write what the
//! driver gives them. A WebSocket carries the same byte stream as TCP; message
//! boundaries mean nothing (a binary message may hold any chunk of the frame stream).
//!
//! Time limits on sockets: the TCP connect, the TLS handshake and the WebSocket upgrade
//! share the connect timeout; a write that makes no progress ends at the write timeout;
//! TCP keepalive probes idle sockets. Once a session exists, the core's handshake and
//! dead-peer timers bound idle connections.
//!
//! An accepted socket reaches the driver (and takes one of the core's half-open
//! handshake slots) only once its first handshake bytes arrived, within the first-byte
//! timeout. Until then it is "unheard": it holds a socket slot, and when the socket
//! limit is reached the oldest unheard socket is closed to make room, so that silent
//! sockets cannot lock out a peer that speaks at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use meshlink_core::ConnId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::error::HostError;
use crate::tls::WsIo;
use crate::types::{PeerUrl, Transport};

/// Read chunk per syscall on streams.
const READ_CHUNK: usize = 64 * 1024;
/// Most bytes one writer batch (one vectored write, one WebSocket message) carries.
const WRITE_BATCH: usize = 256 * 1024;
/// Largest WebSocket message or frame accepted from a peer: bounds memory per socket.
const WS_MAX_MESSAGE: usize = 1 << 20;
/// After we close a connection, its reader keeps reading (and discarding) until the peer
/// closes too, at most this long. Closing a socket with unread input makes the kernel
/// send RST, and a RST can destroy our own last bytes (the Close packet) in the peer's
/// receive queue before it reads them.
pub(crate) const LINGER: Duration = Duration::from_secs(3);

/// What socket tasks tell the driver.
pub(crate) enum NetInput {
    /// An accepted socket and its first bytes (TCP) or first binary message (WebSocket).
    Accepted {
        stream: StreamConn,
        transport: Transport,
        addr: SocketAddr,
        guard: ConnGuard,
        first: Bytes,
    },
    Stream {
        conn: ConnId,
        data: Bytes,
    },
    StreamClosed {
        conn: ConnId,
    },
    /// Datagrams read in one wakeup of a UDP socket, in arrival order.
    Datagrams {
        batch: Vec<(SocketAddr, Bytes)>,
    },
    /// A reconnect attempt of target `id` dialled (generation `gen`, to drop stale ones).
    Redial {
        id: u64,
        gen: u64,
        result: Result<Dialed, HostError>,
    },
    /// A congested writer fell below the low watermark: parked sends may proceed.
    Drained {
        conn: ConnId,
    },
    /// ICMP port unreachable answered the probe sent beside a UDP dial to `addr`.
    UdpUnreachable {
        conn: ConnId,
        addr: SocketAddr,
    },
}

/// An established stream socket.
pub(crate) enum StreamConn {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<WsIo>>),
}

/// A dialled transport, ready for the core's `connect`.
pub(crate) enum Dialed {
    Stream { stream: StreamConn, transport: Transport, addr: SocketAddr, guard: ConnGuard },
    Udp { addr: SocketAddr },
}

pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(WS_MAX_MESSAGE)).max_frame_size(Some(WS_MAX_MESSAGE))
}

// ---------------------------------------------------------------------- limits

/// Counts open stream sockets, in total and per remote IP (inbound only), so that a
/// flood is refused at accept time before any byte reaches the core (F11).
pub(crate) struct Limiter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Holds one slot of the limiter until dropped (when the connection's tasks end).
pub(crate) struct ConnGuard {
    limiter: Arc<Limiter>,
    ip: Option<IpAddr>,
}

impl Limiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Limiter { max_total, max_per_ip, state: Mutex::new((0, HashMap::new())) })
    }

    /// Takes a slot for an inbound (`Some(ip)`) or outbound (`None`) connection.
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnGuard, HostError> {
        self.try_acquire(ip).map_err(|(_, limit)| HostError::ConnectionLimit { limit })
    }

    /// Like `acquire`; the error says whether the total (`true`) or the IP's cap is full.
    fn try_acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnGuard, (bool, usize)> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ip = ip.map(canonical_ip);
        if let Some(ip) = ip {
            if st.1.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
                return Err((false, self.max_per_ip));
            }
        }
        if st.0 >= self.max_total {
            return Err((true, self.max_total));
        }
        if let Some(ip) = ip {
            *st.1.entry(ip).or_insert(0) += 1;
        }
        st.0 += 1;
        Ok(ConnGuard { limiter: self.clone(), ip })
    }

    pub fn open(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// Accepted sockets that have not sent a byte yet, oldest first, each with its limiter
/// slot: evicting one frees its slot at once (its task then just closes the socket).
#[derive(Default)]
pub(crate) struct Unheard {
    /// The last id given, and the waiting sockets: id, slot, and how to tell its task.
    state: Mutex<(u64, std::collections::VecDeque<UnheardSocket>)>,
}

type UnheardSocket = (u64, ConnGuard, Arc<tokio::sync::Notify>);

impl Unheard {
    fn add(&self, guard: ConnGuard) -> (u64, Arc<tokio::sync::Notify>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 += 1;
        let (id, kick) = (st.0, Arc::new(tokio::sync::Notify::new()));
        st.1.push_back((id, guard, kick.clone()));
        (id, kick)
    }

    /// The socket spoke (or gave up): its slot, unless it was evicted meanwhile.
    fn take(&self, id: u64) -> Option<ConnGuard> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let i = st.1.iter().position(|(x, _, _)| *x == id)?;
        st.1.remove(i).map(|(_, g, _)| g)
    }

    /// Frees the slot of the oldest unheard socket and tells its task to close it;
    /// whether there was one.
    fn evict_oldest(&self) -> bool {
        let e = self.state.lock().unwrap_or_else(|p| p.into_inner()).1.pop_front();
        // Dropped here, outside the lock: the limiter takes its own.
        e.map(|(_, _guard, kick)| kick.notify_one()).is_some()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut st = self.limiter.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = st.0.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = st.1.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    st.1.remove(&ip);
                }
            }
        }
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

// ---------------------------------------------------------------------- binding

fn socket_for(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        // So that `0.0.0.0:p` and `[::]:p` can both be bound, each for its own family.
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

pub(crate) fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, HostError> {
    let err = |e| HostError::io(format!("cannot listen on tcp {addr}"), e);
    let s = socket_for(addr, socket2::Type::STREAM).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    s.listen(1024).map_err(err)?;
    TcpListener::from_std(s.into()).map_err(err)
}

pub(crate) fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> Result<UdpSocket, HostError> {
    let err = |e| HostError::io(format!("cannot bind udp {addr}"), e);
    let s = socket_for(addr, socket2::Type::DGRAM).map_err(err)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(recv_buffer);
    s.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(s.into()).map_err(err)
}

// ---------------------------------------------------------------------- accepting

/// How a listener treats its connections.
#[derive(Clone)]
pub(crate) struct AcceptOpts {
    pub transport: Transport,
    /// Deadline for the TLS handshake and WebSocket upgrade (the connect timeout).
    pub upgrade_timeout: Duration,
    pub keepalive: Option<Duration>,
    /// WebSocket listeners with a certificate serve `wss://`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// How long an accepted socket may stay silent (after the upgrade, for WebSocket).
    pub first_byte_timeout: Duration,
}

/// Accepts TCP (or WebSocket, with the TLS handshake and upgrade done here) connections
/// and hands them to the driver once they have spoken, refusing those over the limits.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    opts: AcceptOpts,
    limiter: Arc<Limiter>,
    unheard: Arc<Unheard>,
    net: mpsc::Sender<NetInput>,
) {
    let transport = opts.transport;
    loop {
        let (sock, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept on {transport} failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut evicted = false;
        let guard = loop {
            match limiter.try_acquire(Some(addr.ip())) {
                Ok(g) => break Some(g),
                // The total is reached: a silent socket yields its slot to this one.
                Err((true, _)) if unheard.evict_oldest() => evicted = true,
                Err((_, limit)) => {
                    tracing::debug!("refused {transport} connection from {addr}: connection limit of {limit} reached");
                    break None;
                }
            }
        };
        if evicted {
            // Let the evicted socket's task close it before accepting more: its slot is
            // free already, its descriptor not yet, and a hot accept loop would pile up
            // descriptors (EMFILE) faster than those tasks run.
            tokio::task::yield_now().await;
        }
        let Some(guard) = guard else { continue }; // dropping `sock` closes it
        tune(&sock, opts.keepalive);
        let (id, kick) = unheard.add(guard);
        tokio::spawn(greet(sock, addr, opts.clone(), (id, kick), unheard.clone(), net.clone()));
    }
}

/// Waits for an accepted socket's first bytes (TLS and WebSocket upgrade first, for
/// `ws`), then hands it to the driver; a socket silent past its deadline, or evicted
/// meanwhile, is closed.
async fn greet(
    sock: TcpStream,
    addr: SocketAddr,
    opts: AcceptOpts,
    (id, kick): (u64, Arc<tokio::sync::Notify>),
    unheard: Arc<Unheard>,
    net: mpsc::Sender<NetInput>,
) {
    let transport = opts.transport;
    let heard = async {
        match transport {
            Transport::Ws => {
                let up = async {
                    let io = match opts.tls {
                        Some(tls) => {
                            WsIo::Tls(Box::new(tls.accept(sock).await.map_err(|e| format!("TLS: {e}"))?.into()))
                        }
                        None => WsIo::Plain(sock),
                    };
                    tokio_tungstenite::accept_async_with_config(io, Some(ws_config())).await.map_err(|e| e.to_string())
                };
                let mut ws = match tokio::time::timeout(opts.upgrade_timeout, up).await {
                    Ok(r) => r?,
                    Err(_) => return Err("WebSocket upgrade timed out".to_string()),
                };
                let first = tokio::time::timeout(opts.first_byte_timeout, async {
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Binary(b))) if !b.is_empty() => return Ok(b),
                            Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                            _ => return Err("closed before its first message".to_string()),
                        }
                    }
                })
                .await
                .map_err(|_| "silent past the first-byte timeout".to_string())??;
                Ok((StreamConn::Ws(Box::new(ws)), first))
            }
            _ => {
                let mut sock = sock;
                let mut buf = BytesMut::with_capacity(READ_CHUNK);
                match tokio::time::timeout(opts.first_byte_timeout, sock.read_buf(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => Ok((StreamConn::Tcp(sock), buf.freeze())),
                    Ok(_) => Err("closed before its first byte".to_string()),
                    Err(_) => Err("silent past the first-byte timeout".to_string()),
                }
            }
        }
    };
    let r = tokio::select! {
        r = heard => r,
        () = kick.notified() => Err("evicted while silent (socket limit)".to_string()),
    };
    let Some(guard) = unheard.take(id) else {
        tracing::debug!("{transport} connection from {addr} closed: evicted while silent (socket limit)");
        return; // evicted just as it spoke
    };
    match r {
        Ok((stream, first)) => {
            let _ = net.send(NetInput::Accepted { stream, transport, addr, guard, first }).await;
        }
        Err(why) => tracing::debug!("{transport} connection from {addr} closed: {why}"),
    }
}

/// Datagrams handed to the driver in one message at most: UDP has no flow control, so
/// the reader must keep up with a fast sender, and one channel hop (and one driver turn)
/// per datagram is what made it fall behind and the kernel drop.
const UDP_BATCH: usize = 64;

/// Receives datagrams and hands them to the driver, as many as are queued at once.
///
/// On Unix the reading happens on a thread of its own: a reader task waits behind the
/// busy runtime workers (a bulk sender's driver, say), and every millisecond it waits
/// the kernel buffer can overflow. A woken thread is scheduled at once. The thread ends
/// when this future is dropped (the driver aborts it) or the driver goes away.
pub(crate) async fn udp_reader(sock: Arc<UdpSocket>, net: mpsc::Sender<NetInput>) {
    #[cfg(unix)]
    {
        struct StopOnDrop(Arc<AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let _stop = StopOnDrop(stop.clone());
        let (done, ended) = tokio::sync::oneshot::channel::<()>();
        let (s, n) = (sock.clone(), net.clone());
        let spawned = std::thread::Builder::new().name("meshlink-udp".into()).spawn(move || {
            read_udp_blocking(&s, &n, &stop);
            drop(done);
        });
        if spawned.is_ok() {
            let _ = ended.await;
            return;
        }
    }
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let mut batch = vec![(from, Bytes::copy_from_slice(&buf[..n]))];
                while batch.len() < UDP_BATCH {
                    match sock.try_recv_from(&mut buf) {
                        Ok((n, from)) => batch.push((from, Bytes::copy_from_slice(&buf[..n]))),
                        Err(_) => break,
                    }
                }
                if net.send(NetInput::Datagrams { batch }).await.is_err() {
                    return;
                }
            }
            // ICMP port-unreachable surfaces as ECONNREFUSED on Linux: not fatal.
            Err(e) => tracing::trace!("udp recv: {e}"),
        }
    }
}

/// Datagram bytes the reader thread keeps while the driver's channel is full, reading
/// on meanwhile: the kernel buffer (net.core.rmem_max, often a few MiB) is all the slack
/// a datagram sender otherwise gets while the driver is busy, and the protocol has no
/// flow control for datagram data. Past this the thread waits and the kernel drops.
const UDP_READ_AHEAD: usize = 16 << 20;

/// The reader thread: poll(2) for input (waking every 100 ms to see `stop`), then read
/// with plain syscalls (tokio's `try_recv_from` would trust the runtime's cached
/// readiness, which nobody updates for this socket).
#[cfg(unix)]
fn read_udp_blocking(sock: &UdpSocket, net: &mpsc::Sender<NetInput>, stop: &AtomicBool) {
    use std::collections::VecDeque;
    use std::os::fd::AsRawFd;
    let raw = socket2::SockRef::from(sock);
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 65536];
    let mut backlog: VecDeque<(Vec<(SocketAddr, Bytes)>, usize)> = VecDeque::new();
    let mut backlog_bytes = 0;
    while !stop.load(Ordering::SeqCst) && !net.is_closed() {
        // Hand over what waits; with a backlog, poll briefly so it moves on soon.
        while let Some((batch, n)) = backlog.pop_front() {
            match net.try_send(NetInput::Datagrams { batch }) {
                Ok(()) => backlog_bytes -= n,
                Err(mpsc::error::TrySendError::Full(NetInput::Datagrams { batch })) => {
                    if backlog_bytes < UDP_READ_AHEAD {
                        backlog.push_front((batch, n));
                        break;
                    }
                    // Full up: wait for the driver (the kernel buffer takes the rest).
                    if net.blocking_send(NetInput::Datagrams { batch }).is_err() {
                        return;
                    }
                    backlog_bytes -= n;
                }
                Err(_) => return,
            }
        }
        let mut pfd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let wait = if backlog.is_empty() { 100 } else { 1 };
        // SAFETY: one valid pollfd, for a socket this thread keeps open (it holds `sock`).
        if unsafe { libc::poll(&mut pfd, 1, wait) } <= 0 {
            continue;
        }
        let (mut batch, mut bytes) = (Vec::new(), 0);
        while batch.len() < UDP_BATCH {
            match raw.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let Some(from) = from.as_socket() else { continue };
                    // SAFETY: `recv_from` initialised the first `n` bytes.
                    let data = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
                    batch.push((from, Bytes::copy_from_slice(data)));
                    bytes += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP port-unreachable surfaces as ECONNREFUSED on Linux: not fatal.
                Err(e) => {
                    tracing::trace!("udp recv: {e}");
                    break;
                }
            }
        }
        if !batch.is_empty() {
            backlog_bytes += bytes;
            backlog.push_back((batch, bytes));
        }
    }
}

/// How long a UDP dial listens for ICMP port unreachable beside its handshake, and the
/// pauses between its probes (ICMP is rate-limited and can be lost).
const UDP_PROBES_MS: [u64; 3] = [250, 750, 2000];

/// Beside a UDP handshake to `addr`: empty datagrams from a socket connected to `addr`,
/// on which Linux reports ICMP port unreachable as ECONNREFUSED (the driver's own sockets
/// are unconnected and never see it). Then a dial to a closed port fails at once instead
/// of at the handshake timeout. A live node drops the empty datagrams as malformed.
pub(crate) async fn udp_probe(conn: ConnId, addr: SocketAddr, net: mpsc::Sender<NetInput>) {
    let any: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let Ok(sock) = UdpSocket::bind(any).await else { return };
    if sock.connect(addr).await.is_err() {
        return;
    }
    let refused = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused;
    let mut buf = [0u8; 16];
    for wait in UDP_PROBES_MS {
        if let Err(e) = sock.send(&[]).await {
            if refused(&e) {
                let _ = net.send(NetInput::UdpUnreachable { conn, addr }).await;
                return;
            }
        }
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_millis(wait), sock.recv(&mut buf)).await {
            if refused(&e) {
                let _ = net.send(NetInput::UdpUnreachable { conn, addr }).await;
                return;
            }
        }
    }
}

/// Socket options for every TCP connection: no Nagle delay (frames are small and
/// latency-sensitive), and keepalive probes so that a vanished peer's socket is noticed
/// by the kernel even while no session timer runs (a lingering or half-closed socket).
fn tune(sock: &TcpStream, keepalive: Option<Duration>) {
    let _ = sock.set_nodelay(true);
    if let Some(idle) = keepalive {
        let ka = socket2::TcpKeepalive::new().with_time(idle);
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos", target_os = "freebsd", windows))]
        let ka = ka.with_interval((idle / 3).max(Duration::from_secs(1)));
        if let Err(e) = socket2::SockRef::from(sock).set_tcp_keepalive(&ka) {
            tracing::debug!("cannot set TCP keepalive: {e}");
        }
    }
}

// ---------------------------------------------------------------------- dialing

/// Opens outbound transports: resolve, TCP connect, TLS, WebSocket upgrade, all within
/// the connect timeout. Shared by `HostHandle::connect` and the reconnect tasks.
pub(crate) struct Dialer {
    pub limiter: Arc<Limiter>,
    pub timeout: Duration,
    pub keepalive: Option<Duration>,
    pub tls: tokio_rustls::TlsConnector,
}

impl Dialer {
    pub async fn dial(&self, url: &PeerUrl) -> Result<Dialed, HostError> {
        let addr = resolve(url).await?;
        if url.transport == Transport::Udp {
            return Ok(Dialed::Udp { addr });
        }
        let guard = self.limiter.acquire(None)?;
        let sock = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| HostError::ConnectTimeout { addr })?
            .map_err(|e| HostError::io(format!("cannot connect to {addr}"), e))?;
        tune(&sock, self.keepalive);
        let stream = match url.transport {
            Transport::Ws => {
                let ws = tokio::time::timeout(self.timeout, self.upgrade(sock, addr, url))
                    .await
                    .map_err(|_| HostError::ConnectTimeout { addr })??;
                StreamConn::Ws(Box::new(ws))
            }
            _ => StreamConn::Tcp(sock),
        };
        Ok(Dialed::Stream { stream, transport: url.transport, addr, guard })
    }

    /// TLS (for `wss://`), then the WebSocket upgrade (`url` gives the Host header and path).
    async fn upgrade(
        &self,
        sock: TcpStream,
        addr: SocketAddr,
        url: &PeerUrl,
    ) -> Result<WebSocketStream<WsIo>, HostError> {
        let fail = |why: String| HostError::WebSocket { addr, why };
        let io = if url.tls {
            let name =
                crate::tls::server_name(&url.host).ok_or_else(|| fail(format!("invalid TLS name {:?}", url.host)))?;
            let tls = self.tls.connect(name, sock).await.map_err(|e| fail(format!("TLS: {e}")))?;
            WsIo::Tls(Box::new(tls.into()))
        } else {
            WsIo::Plain(sock)
        };
        let (ws, _resp) = tokio_tungstenite::client_async_with_config(url.to_string(), io, Some(ws_config()))
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(ws)
    }
}

async fn resolve(url: &PeerUrl) -> Result<SocketAddr, HostError> {
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, url.port));
    }
    let mut addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|_| HostError::Resolve { host: url.host.clone() })?;
    addrs.next().ok_or_else(|| HostError::Resolve { host: url.host.clone() })
}

// ---------------------------------------------------------------------- per connection

/// Bytes queued for a writer that mark it congested / drained again. Small enough that
/// pings queued behind bulk data still measure a sensible RTT, large enough to keep a
/// loopback or LAN link busy.
pub(crate) const HIGH_WATER: usize = 512 * 1024;
const LOW_WATER: usize = 128 * 1024;

/// What the driver and a writer share: bytes queued but not yet written.
#[derive(Default)]
pub(crate) struct WriterState {
    queued: AtomicUsize,
    /// Set by the driver when it parks a send on this connection; the writer then reports
    /// `Drained` once below the low watermark.
    pub want_drain: AtomicBool,
}

impl WriterState {
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

/// The driver's handle on one stream connection's tasks.
pub(crate) struct ConnTasks {
    pub transport: Transport,
    pub tx: mpsc::UnboundedSender<Bytes>,
    pub state: Arc<WriterState>,
    pub reader: tokio::task::AbortHandle,
    pub writer: tokio::task::AbortHandle,
}

impl ConnTasks {
    /// Queues bytes for the writer (never blocks; `HIGH_WATER` gates new application
    /// sends, and the driver checks `max_write_queue` before calling).
    pub fn write(&self, data: Bytes) {
        self.state.queued.fetch_add(data.len(), Ordering::AcqRel);
        let _ = self.tx.send(data);
    }
}

/// Every connection's tasks, so that shutdown can wait for writers to flush and readers
/// to see the peer close.
#[derive(Default)]
pub(crate) struct ConnTaskSets {
    pub writers: tokio::task::JoinSet<()>,
    pub readers: tokio::task::JoinSet<()>,
}

impl ConnTaskSets {
    /// Frees finished tasks.
    pub fn reap(&mut self) {
        while self.writers.try_join_next().is_some() {}
        while self.readers.try_join_next().is_some() {}
    }

    /// Waits for writers, then readers, to finish, until `deadline`; then aborts the rest.
    pub async fn finish(&mut self, deadline: tokio::time::Instant) {
        let _ = tokio::time::timeout_at(deadline, async {
            while self.writers.join_next().await.is_some() {}
            while self.readers.join_next().await.is_some() {}
        })
        .await;
        self.writers.abort_all();
        self.readers.abort_all();
    }
}

/// Starts the reader and writer tasks of a stream connection.
pub(crate) fn spawn_conn(
    conn: ConnId,
    stream: StreamConn,
    transport: Transport,
    guard: ConnGuard,
    net: mpsc::Sender<NetInput>,
    tasks: &mut ConnTaskSets,
    write_timeout: Duration,
) -> ConnTasks {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(WriterState::default());
    let guard = Arc::new(guard); // released when both tasks have ended
    let w = Writer { conn, rx, state: state.clone(), net: net.clone(), timeout: write_timeout, _guard: guard.clone() };
    let (reader, writer) = match stream {
        StreamConn::Tcp(s) => {
            let (r, wh) = s.into_split();
            let writer = tasks.writers.spawn(w.run_tcp(wh));
            (tasks.readers.spawn(read_tcp(conn, r, net, guard)), writer)
        }
        StreamConn::Ws(ws) => {
            let (sink, stream) = (*ws).split();
            let writer = tasks.writers.spawn(w.run_ws(sink));
            (tasks.readers.spawn(read_ws(conn, stream, net, guard)), writer)
        }
    };
    ConnTasks { transport, tx, state, reader, writer }
}

async fn read_tcp(
    conn: ConnId,
    mut r: tokio::net::tcp::OwnedReadHalf,
    net: mpsc::Sender<NetInput>,
    _g: Arc<ConnGuard>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let data = buf.split().freeze();
                if net.send(NetInput::Stream { conn, data }).await.is_err() {
                    // The driver is gone (shutdown): linger until the peer closes too.
                    let _ = tokio::time::timeout(LINGER, async {
                        while matches!(r.read_buf(&mut buf).await, Ok(n) if n > 0) {
                            buf.clear();
                        }
                    })
                    .await;
                    return;
                }
            }
        }
    }
    let _ = net.send(NetInput::StreamClosed { conn }).await;
}

type WsSink = futures_util::stream::SplitSink<WebSocketStream<WsIo>, Message>;
type WsStream = futures_util::stream::SplitStream<WebSocketStream<WsIo>>;

async fn read_ws(conn: ConnId, mut s: WsStream, net: mpsc::Sender<NetInput>, _g: Arc<ConnGuard>) {
    while let Some(msg) = s.next().await {
        match msg {
            Ok(Message::Binary(data)) => {
                if net.send(NetInput::Stream { conn, data }).await.is_err() {
                    let _ =
                        tokio::time::timeout(LINGER, async { while matches!(s.next().await, Some(Ok(_))) {} }).await;
                    return;
                }
            }
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            // Text is not part of the protocol; Close and errors end the connection.
            Ok(Message::Text(_) | Message::Close(_)) | Err(_) => break,
        }
    }
    let _ = net.send(NetInput::StreamClosed { conn }).await;
}

struct Writer {
    conn: ConnId,
    rx: mpsc::UnboundedReceiver<Bytes>,
    state: Arc<WriterState>,
    net: mpsc::Sender<NetInput>,
    timeout: Duration,
    _guard: Arc<ConnGuard>,
}

impl Writer {
    /// Takes everything queued, up to `WRITE_BATCH` bytes (at least one buffer).
    async fn next_batch(&mut self, batch: &mut Vec<Bytes>) -> Option<usize> {
        let first = self.rx.recv().await?;
        let mut n = first.len();
        batch.push(first);
        while n < WRITE_BATCH {
            match self.rx.try_recv() {
                Ok(b) => {
                    n += b.len();
                    batch.push(b);
                }
                Err(_) => break,
            }
        }
        Some(n)
    }

    async fn written(&self, n: usize) {
        let before = self.state.queued.fetch_sub(n, Ordering::SeqCst);
        let now = before - n;
        if now <= LOW_WATER && self.state.want_drain.swap(false, Ordering::SeqCst) {
            let _ = self.net.send(NetInput::Drained { conn: self.conn }).await;
        }
    }

    async fn failed(&self, why: String) {
        tracing::debug!("write on {:?} failed: {why}", self.conn);
        let _ = self.net.send(NetInput::StreamClosed { conn: self.conn }).await;
    }

    async fn run_tcp(mut self, mut w: tokio::net::tcp::OwnedWriteHalf) {
        let mut batch = Vec::new();
        while let Some(n) = self.next_batch(&mut batch).await {
            match tokio::time::timeout(self.timeout, write_all_vectored(&mut w, &mut batch)).await {
                Ok(Ok(())) => self.written(n).await,
                Ok(Err(e)) => return self.failed(e.to_string()).await,
                Err(_) => return self.failed("timed out".into()).await,
            }
            batch.clear();
        }
        // The driver dropped the sender: everything queued is written; send FIN.
        let _ = tokio::time::timeout(self.timeout, w.shutdown()).await;
    }

    async fn run_ws(mut self, mut sink: WsSink) {
        let mut batch = Vec::new();
        while let Some(n) = self.next_batch(&mut batch).await {
            let data = if batch.len() == 1 { batch.pop().unwrap_or_default() } else { Bytes::from(batch.concat()) };
            batch.clear();
            match tokio::time::timeout(self.timeout, sink.send(Message::Binary(data))).await {
                Ok(Ok(())) => self.written(n).await,
                Ok(Err(e)) => return self.failed(e.to_string()).await,
                Err(_) => return self.failed("timed out".into()).await,
            }
        }
        let _ = tokio::time::timeout(self.timeout, sink.close()).await;
    }
}

/// Writes every buffer with vectored writes, advancing over partial writes.
async fn write_all_vectored(w: &mut tokio::net::tcp::OwnedWriteHalf, bufs: &mut [Bytes]) -> std::io::Result<()> {
    let mut first = 0;
    while first < bufs.len() {
        let slices: Vec<std::io::IoSlice<'_>> =
            bufs[first..].iter().take(64).map(|b| std::io::IoSlice::new(b)).collect();
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < bufs.len() && n >= bufs[first].len() {
            n -= bufs[first].len();
            first += 1;
        }
        if n > 0 {
            let _ = bufs[first].split_to(n);
        }
    }
    Ok(())
}
