//! Links: what carries a node's bytes. [`TcpLink`] and [`UdpLink`] wrap embassy-net
//! sockets; [`MemLink`] is an in-memory datagram or stream pair with a fixed latency, for
//! tests and emulators that have no network device.

use core::cell::{Cell, RefCell};
use core::net::SocketAddr;

use embassy_net::tcp::{TcpReader, TcpSocket, TcpWriter};
#[cfg(feature = "datagram")]
use embassy_net::udp::UdpSocket;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::channel::Channel;
use embassy_time::{Duration, Instant, Timer};
use meshlink_core::TransportKind;

/// A link failed (the socket closed or errored); the runner stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkError {
    /// The stream was closed by the peer.
    Closed,
    /// The network stack refused the operation (no route, buffer, socket state).
    Io,
}

/// A transport for one node. Stream links carry a byte stream to one remote; datagram
/// links carry whole datagrams, each with its address.
///
/// The methods take `&self` because the runner receives while it waits to send: two
/// peers that both write more than the other side buffers would otherwise block each
/// other forever. Both futures must be cancel-safe (dropping one loses no data).
#[allow(async_fn_in_trait)] // used with static dispatch only: no Send bound is needed
pub trait Link {
    /// Which transport mode the node runs over this link.
    fn kind(&self) -> TransportKind;
    /// Receives bytes into `buf`: their length and sender. A stream returns `Closed` at EOF.
    async fn recv(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), LinkError>;
    /// Sends a prefix of `buf` to `to` and returns its length (a datagram link sends all
    /// of it at once; a stream ignores `to`: it has one remote).
    async fn send(&self, buf: &[u8], to: SocketAddr) -> Result<usize, LinkError>;
}

/// Stream mode over a connected embassy-net TCP socket, split so that reading and writing
/// wait independently.
pub struct TcpLink<'s> {
    reader: RefCell<TcpReader<'s>>,
    writer: RefCell<TcpWriter<'s>>,
    remote: SocketAddr,
}

impl<'s> TcpLink<'s> {
    /// Wraps a socket that is already connected (or accepted); `None` if it has no remote.
    pub fn new(socket: &'s mut TcpSocket<'_>) -> Option<Self> {
        let remote = socket.remote_endpoint()?.into();
        let (reader, writer) = socket.split();
        Some(TcpLink { reader: RefCell::new(reader), writer: RefCell::new(writer), remote })
    }

    /// The remote endpoint.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }
}

// The runner has at most one recv and one send in flight, so each RefCell has one
// borrower at a time, even across the await.
#[allow(clippy::await_holding_refcell_ref)]
impl Link for TcpLink<'_> {
    fn kind(&self) -> TransportKind {
        TransportKind::Stream
    }

    async fn recv(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), LinkError> {
        let mut r = self.reader.try_borrow_mut().map_err(|_| LinkError::Io)?;
        match r.read(buf).await {
            Ok(0) | Err(_) => Err(LinkError::Closed),
            Ok(n) => Ok((n, self.remote)),
        }
    }

    async fn send(&self, buf: &[u8], _to: SocketAddr) -> Result<usize, LinkError> {
        let mut w = self.writer.try_borrow_mut().map_err(|_| LinkError::Io)?;
        match w.write(buf).await {
            Ok(0) | Err(_) => Err(LinkError::Closed),
            Ok(n) => Ok(n),
        }
    }
}

/// Datagram mode over a bound embassy-net UDP socket (feature `datagram`).
#[cfg(feature = "datagram")]
pub struct UdpLink<'s, 'a> {
    socket: &'s UdpSocket<'a>,
}

#[cfg(feature = "datagram")]
impl<'s, 'a> UdpLink<'s, 'a> {
    /// Wraps a bound socket.
    pub fn new(socket: &'s UdpSocket<'a>) -> Self {
        UdpLink { socket }
    }
}

#[cfg(feature = "datagram")]
impl Link for UdpLink<'_, '_> {
    fn kind(&self) -> TransportKind {
        TransportKind::Datagram
    }

    async fn recv(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), LinkError> {
        loop {
            match self.socket.recv_from(buf).await {
                Ok((n, meta)) => return Ok((n, meta.endpoint.into())),
                // A datagram larger than `buf` is dropped by the stack: that is the peer's
                // problem, not a reason to stop.
                Err(_) => continue,
            }
        }
    }

    async fn send(&self, buf: &[u8], to: SocketAddr) -> Result<usize, LinkError> {
        // The adapter builds embassy-net with IPv4 only; an IPv6 peer cannot be reached.
        let SocketAddr::V4(to) = to else { return Err(LinkError::Io) };
        self.socket.send_to(buf, to).await.map_err(|_| LinkError::Io)?;
        Ok(buf.len())
    }
}

/// One datagram (or stream chunk) in flight on a [`MemLink`].
pub struct Packet<const MTU: usize> {
    deliver_at: Instant,
    from: SocketAddr,
    bytes: heapless::Vec<u8, MTU>,
}

/// One direction of a [`MemLink`] pair: a bounded queue of packets. A full pipe makes the
/// sender wait (back-pressure), it never drops.
pub type Pipe<M, const MTU: usize, const DEPTH: usize> = Channel<M, Packet<MTU>, DEPTH>;

/// An in-memory link end: sends into one pipe, receives from another, each packet
/// delivered `latency` after it was sent.
pub struct MemLink<'p, M: RawMutex, const MTU: usize, const DEPTH: usize> {
    kind: TransportKind,
    local: SocketAddr,
    latency: Duration,
    tx: &'p Pipe<M, MTU, DEPTH>,
    rx: &'p Pipe<M, MTU, DEPTH>,
    tamper: &'p Cell<usize>,
    /// The packet being received, kept here while its delivery time is awaited so that a
    /// cancelled `recv` loses nothing.
    staged: RefCell<Option<Packet<MTU>>>,
}

impl<'p, M: RawMutex, const MTU: usize, const DEPTH: usize> MemLink<'p, M, MTU, DEPTH> {
    /// A link end at `local` that sends on `tx` and receives on `rx`. Setting `tamper` to
    /// `n > 0` makes the next packet of at least `n` bytes go out twice: first with its
    /// last byte (the AEAD tag's) flipped, a forgery the receiver must reject, then intact.
    /// It is reset to 0.
    pub fn new(
        kind: TransportKind,
        local: SocketAddr,
        latency: Duration,
        tx: &'p Pipe<M, MTU, DEPTH>,
        rx: &'p Pipe<M, MTU, DEPTH>,
        tamper: &'p Cell<usize>,
    ) -> Self {
        MemLink { kind, local, latency, tx, rx, tamper, staged: RefCell::new(None) }
    }
}

impl<M: RawMutex, const MTU: usize, const DEPTH: usize> Link for MemLink<'_, M, MTU, DEPTH> {
    fn kind(&self) -> TransportKind {
        self.kind
    }

    async fn recv(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), LinkError> {
        if self.staged.borrow().is_none() {
            let p = self.rx.receive().await;
            *self.staged.borrow_mut() = Some(p);
        }
        let at = self.staged.borrow().as_ref().map_or(Instant::MIN, |p| p.deliver_at);
        Timer::at(at).await;
        let p = self.staged.borrow_mut().take().ok_or(LinkError::Io)?;
        let n = p.bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&p.bytes[..n]);
        Ok((n, p.from))
    }

    async fn send(&self, buf: &[u8], _to: SocketAddr) -> Result<usize, LinkError> {
        // One packet per call, so a cancelled send never leaves half a buffer sent.
        let deliver_at = Instant::now() + self.latency;
        let n = buf.len().min(MTU);
        let t = self.tamper.get();
        if t > 0 && n >= t {
            self.tamper.set(0);
            // The forgery goes first, so it carries a counter the receiver has not seen:
            // only authentication can reject it (not the replay window), and the genuine
            // packet after it checks that the failed forgery did not burn its counter.
            let mut bytes: heapless::Vec<u8, MTU> = heapless::Vec::from_slice(&buf[..n]).map_err(|_| LinkError::Io)?;
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x01;
            }
            self.tx.send(Packet { deliver_at, from: self.local, bytes }).await;
        }
        let bytes = heapless::Vec::from_slice(&buf[..n]).map_err(|_| LinkError::Io)?;
        self.tx.send(Packet { deliver_at, from: self.local, bytes }).await;
        Ok(n)
    }
}
