//! # meshlink-embedded
//!
//! A meshlink node on a microcontroller: an async adapter that drives a
//! [`meshlink_core`] node over embassy-net (TCP stream mode, UDP datagram mode) and
//! embassy-time. `#![no_std]`, no allocator: the node, its buffers and the channels are
//! the caller's statics.
//!
//! - [`MeshNode`]: the node, over a [`NodeStorage`] in a `static`, with keys from the
//!   caller's RNG (the board's TRNG).
//! - [`Link`]: what carries its bytes: [`TcpLink`], [`UdpLink`], or [`MemLink`] (in memory).
//! - [`Channels`]: how the application talks to it: [`Channels::send`], [`Channels::recv`],
//!   [`Channels::quality`], [`Channels::status`].
//! - [`run`]: the task body that joins them; it returns when the link closes.
//!
//! See README.md for wiring, memory sizing and the RNG.
//!
//! ## Features
//! The default is the budget node: TCP stream mode, the XX handshake, direct messages, and
//! no optional core feature. `datagram` adds UDP ([`UdpLink`] and the core's datagram
//! sessions); `ik`, `psk` and `quality-extras` forward to the core's features of the same
//! name; `full` is all of them. Their cost in bytes is in SIZE.md §0. Without `datagram`,
//! [`run`] in `Mode::Connect` over a datagram link returns
//! `RunError::Node(Error::Unsupported { feature: "datagram" })` at once, and in
//! `Mode::Accept` every datagram is refused (counted in `Status::rejected`).

#![no_std]
// One audited `unsafe` block, in node.rs: the slot table is written in place in its static.
#![deny(unsafe_code)]

mod link;
mod node;

use core::cell::RefCell;
use core::net::SocketAddr;

use embassy_futures::select::{select, select4, Either, Either4};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Instant, Timer};

#[cfg(feature = "datagram")]
pub use link::UdpLink;
pub use link::{Link, LinkError, MemLink, Packet, Pipe, TcpLink};
pub use meshlink_core::{Config, Error, NodeStats, PeerId, Quality, TransportKind};
use node::NodeEvent;
pub use node::{slot_len, MeshNode, NodeStorage};

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::debug!($($arg)*);
        #[cfg(feature = "log")]
        log::debug!($($arg)*);
    }};
}

/// One message to or from a peer, at most `MSG` bytes.
#[derive(Debug, Clone)]
pub struct Msg<const MSG: usize> {
    pub peer: PeerId,
    pub data: heapless::Vec<u8, MSG>,
}

/// What the runner last saw, for the application (read with [`Channels::status`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Status {
    /// The connected peer, once the handshake is done; `None` again after it ends.
    pub peer: Option<PeerId>,
    /// The latest quality figures (after the handshake, then after every pong).
    pub quality: Option<Quality>,
    /// Received frames or datagrams the node rejected (bad authentication, replay, malformed).
    pub rejected: u32,
    /// Messages the application queued that the node refused (too large, no session).
    pub send_failed: u32,
    /// Handshakes completed on this link.
    pub connects: u32,
    /// Sessions that ended; `ended_by_error` counts those a protocol error closed.
    pub disconnects: u32,
    pub ended_by_error: u32,
}

/// The application's side of a running node: bounded channels both ways (`DEPTH`
/// messages of up to `MSG` bytes each) and the status. Put it in a `static` with a
/// `CriticalSectionRawMutex` when the application runs in another task or priority, or use
/// `NoopRawMutex` inside one executor.
pub struct Channels<M: RawMutex, const MSG: usize, const DEPTH: usize> {
    outgoing: Channel<M, Msg<MSG>, DEPTH>,
    incoming: Channel<M, Msg<MSG>, DEPTH>,
    status: Mutex<M, RefCell<Status>>,
    changed: Signal<M, ()>,
}

impl<M: RawMutex, const MSG: usize, const DEPTH: usize> Default for Channels<M, MSG, DEPTH> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex, const MSG: usize, const DEPTH: usize> Channels<M, MSG, DEPTH> {
    pub const fn new() -> Self {
        Channels {
            outgoing: Channel::new(),
            incoming: Channel::new(),
            status: Mutex::new(RefCell::new(Status {
                peer: None,
                quality: None,
                rejected: 0,
                send_failed: 0,
                connects: 0,
                disconnects: 0,
                ended_by_error: 0,
            })),
            changed: Signal::new(),
        }
    }

    /// Queues a message for `peer`, waiting while the queue is full. A message longer than
    /// `MSG` is refused with `TooLarge` (the node's own `max_message` applies after that).
    pub async fn send(&self, peer: PeerId, data: &[u8]) -> Result<(), Error> {
        let data = heapless::Vec::from_slice(data).map_err(|_| Error::TooLarge { size: data.len(), max: MSG })?;
        self.outgoing.send(Msg { peer, data }).await;
        Ok(())
    }

    /// The next message received from a peer.
    pub async fn recv(&self) -> Msg<MSG> {
        self.incoming.receive().await
    }

    /// A received message, if one is waiting.
    pub fn try_recv(&self) -> Option<Msg<MSG>> {
        self.incoming.try_receive().ok()
    }

    /// The latest quality figures of the connected peer.
    pub fn quality(&self) -> Option<Quality> {
        self.status().quality
    }

    /// A copy of the status.
    pub fn status(&self) -> Status {
        self.status.lock(|s| *s.borrow())
    }

    /// Waits until `f(status)` holds, re-checking at every status change.
    pub async fn wait_for(&self, mut f: impl FnMut(&Status) -> bool) -> Status {
        loop {
            let s = self.status();
            if f(&s) {
                return s;
            }
            self.changed.wait().await;
        }
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        self.status.lock(|s| f(&mut s.borrow_mut()));
        self.changed.signal(());
    }
}

/// How the runner starts its session.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Start a handshake to `addr`. With `expected`, the peer must prove that key.
    Connect { addr: SocketAddr, expected: Option<PeerId> },
    /// Answer: for a stream, the peer at `addr` connected to us; for datagrams, every
    /// peer that sends an Init is answered (`addr` is unused).
    Accept { addr: SocketAddr },
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunError {
    /// The node refused to start the session (limits, config).
    Node(Error),
    /// The link closed or failed.
    Link(LinkError),
    /// The stream session ended; the caller may reconnect.
    Ended,
}

/// Buffers the runner works in: `rx` at least the largest datagram or a good TCP read
/// chunk, `tx` at least `max_frame + 2` (stream) or `max_datagram` bytes (datagram).
/// Static, so they add nothing to the task's future.
pub struct Buffers<const RX: usize, const TX: usize> {
    pub rx: [u8; RX],
    pub tx: [u8; TX],
}

impl<const RX: usize, const TX: usize> Buffers<RX, TX> {
    pub const fn new() -> Self {
        Buffers { rx: [0; RX], tx: [0; TX] }
    }
}

impl<const RX: usize, const TX: usize> Default for Buffers<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

fn now_us() -> u64 {
    Instant::now().as_micros()
}

/// Drives `node` over `link` until the link closes (or, in stream mode, the session ends):
/// input from the link, messages from `ch`, timers from embassy-time; output to the
/// link, messages and status to `ch`. Spawn it as (the body of) an embassy task.
///
/// It never blocks one direction on the other: while a transmit waits for room in the
/// link it keeps receiving, and everything it holds is bounded (one pending transmit, one
/// message each way, one receive buffer).
#[allow(clippy::too_many_lines)]
pub async fn run<L: Link, M: RawMutex, const MSG: usize, const DEPTH: usize, const RX: usize, const TX: usize>(
    node: &mut MeshNode,
    link: &L,
    mode: Mode,
    ch: &Channels<M, MSG, DEPTH>,
    bufs: &mut Buffers<RX, TX>,
) -> RunError {
    let kind = link.kind();
    let stream = kind == TransportKind::Stream;
    let conn = match mode {
        Mode::Connect { addr, expected } => node.connect(now_us(), kind, addr, expected).map(Some),
        Mode::Accept { addr } if stream => node.accept(now_us(), addr).map(Some),
        Mode::Accept { .. } => Ok(None),
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => return RunError::Node(e),
    };
    let Buffers { rx, tx } = bufs;
    // Received bytes the node has not taken yet (it waits for its events to be drained):
    // rx[start..end], from `from`.
    let mut pend: Option<(usize, usize, SocketAddr)> = None;
    // A transmit being written: tx[sent..len] still to go to `to`.
    let mut out: Option<(usize, usize, SocketAddr)> = None;
    // A message from the application the node's queue could not take yet.
    let mut held_out: Option<Msg<MSG>> = None;
    // A message from the node the application's channel could not take yet.
    let mut held_in: Option<Msg<MSG>> = None;
    // In stream mode: our session ended; return once its last transmit is out.
    let mut ended = false;
    loop {
        // 1. Everything that needs no waiting, until nothing moves.
        loop {
            let mut moved = false;
            if let Some(m) = held_in.take() {
                if let Err(embassy_sync::channel::TrySendError::Full(m)) = ch.incoming.try_send(m) {
                    held_in = Some(m);
                }
            }
            while held_in.is_none() {
                let Some(ev) = node.event() else { break };
                moved = true;
                match ev {
                    NodeEvent::Message { peer, data } => match heapless::Vec::from_slice(data) {
                        Ok(data) => {
                            if let Err(embassy_sync::channel::TrySendError::Full(m)) =
                                ch.incoming.try_send(Msg { peer, data })
                            {
                                held_in = Some(m);
                            }
                        }
                        // max_message <= MSG is the caller's sizing; a longer message cannot
                        // be delivered whole, so it is counted, never cut.
                        Err(()) => ch.update(|s| s.rejected += 1),
                    },
                    NodeEvent::Connected { peer, quality } => {
                        trace!("meshlink: connected");
                        ch.update(|s| {
                            s.peer = Some(peer);
                            s.quality = Some(quality);
                            s.connects += 1;
                        });
                    }
                    NodeEvent::Quality { peer, quality } => ch.update(|s| {
                        if s.peer == Some(peer) {
                            s.quality = Some(quality);
                        }
                    }),
                    NodeEvent::Disconnected { conn: gone, peer, was_connected, error } => {
                        trace!("meshlink: disconnected");
                        ch.update(|s| {
                            if peer.is_some() && s.peer == peer {
                                s.peer = None;
                            }
                            s.disconnects += u32::from(was_connected);
                            s.ended_by_error += u32::from(error);
                        });
                        // Only our own session ends a stream run: a session left over from
                        // an earlier run (its link died) reports here too.
                        ended |= stream && conn == Some(gone);
                    }
                    NodeEvent::Other => {}
                }
            }
            if let Some((start, end, from)) = pend {
                let r = match conn.filter(|_| stream) {
                    Some(c) => node.input_stream(c, now_us(), &rx[start..end]).map(|n| start + n),
                    None => node.input_datagram(now_us(), from, &rx[start..end]).map(|()| end),
                };
                pend = match r {
                    Ok(at) if at < end => Some((at, end, from)),
                    Ok(_) => None,
                    // The datagram waits until the node's last message is drained.
                    Err(Error::WouldBlock) => Some((start, end, from)),
                    Err(_) => {
                        ch.update(|s| s.rejected += 1);
                        None
                    }
                };
                moved |= pend.map_or(true, |p| p.0 != start);
            }
            if let Some(m) = held_out.take() {
                match node.send(now_us(), &m.peer, &m.data) {
                    Ok(()) => moved = true,
                    Err(Error::QueueFull { .. }) if node.quality(&m.peer).is_some() => held_out = Some(m),
                    Err(_) => ch.update(|s| s.send_failed += 1),
                }
            }
            if out.is_none() {
                if let Some((len, to)) = node.transmit(now_us(), tx) {
                    out = Some((0, len, to));
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        if ended && out.is_none() {
            return RunError::Ended;
        }
        // 2. Wait for whichever comes first: room to send, input (unless some is pending),
        // room for a held message, a message to send (unless one is held), the next timer.
        let deadline = node.deadline().map_or(Instant::MAX, Instant::from_micros);
        let send = async {
            match out {
                Some((sent, len, to)) => link.send(&tx[sent..len], to).await,
                None => core::future::pending().await,
            }
        };
        let recv = async {
            if pend.is_some() {
                core::future::pending().await
            } else {
                link.recv(rx).await
            }
        };
        let room = async {
            if held_in.is_some() {
                core::future::poll_fn(|cx| ch.incoming.poll_ready_to_send(cx)).await
            } else {
                core::future::pending().await
            }
        };
        let app = async {
            if held_out.is_some() {
                core::future::pending().await
            } else {
                ch.outgoing.receive().await
            }
        };
        match select4(send, recv, select(room, app), Timer::at(deadline)).await {
            Either4::First(Ok(n)) => {
                out = out.and_then(|(sent, len, to)| (sent + n < len).then_some((sent + n, len, to)));
            }
            Either4::First(Err(e)) => {
                if let Some(c) = conn.filter(|_| stream) {
                    node.stream_closed(c, now_us());
                }
                return RunError::Link(e);
            }
            Either4::Second(Ok((n, from))) => pend = Some((0, n, from)),
            Either4::Second(Err(e)) => {
                if let Some(c) = conn.filter(|_| stream) {
                    node.stream_closed(c, now_us());
                }
                return RunError::Link(e);
            }
            Either4::Third(Either::First(())) => {}
            Either4::Third(Either::Second(m)) => {
                if m.data.len() > node.max_message() {
                    ch.update(|s| s.send_failed += 1);
                } else {
                    held_out = Some(m);
                }
            }
            Either4::Fourth(()) => node.timeout(now_us()),
        }
    }
}
