//! What the simulator needs from a sans-IO machine, and nothing more.
//!
//! The contract follows the core `Node` (and quinn-proto's `Connection`): inputs come in
//! through `handle_*` with the virtual time, output leaves through `poll_*`, and the
//! machine never reads a clock or opens a socket. After every input the sim drains
//! [`Machine::poll_transmit`], then [`Machine::poll_event`], and reads
//! [`Machine::poll_timeout`] when it picks the next instant.

use core::fmt::Debug;
use core::net::SocketAddr;

use blake2::{Blake2s256, Digest};
use meshlink_core::{ConnId, Instant};

use crate::NodeIdx;

/// One buffer of output, written at the start of the sim's scratch buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    /// `len` bytes as one datagram to `to` (another node's [`crate::Sim::addr`]).
    Datagram { to: SocketAddr, len: usize },
    /// `len` bytes on the stream connection `conn` (one the machine opened through
    /// [`crate::Sim::open_stream`] or accepted in [`Machine::accept_stream`]).
    Stream { conn: ConnId, len: usize },
}

/// What a machine is built from, each time it starts: once in
/// [`crate::Sim::add_machine`] and again after every [`crate::Sim::restart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    pub idx: NodeIdx,
    /// 0 at the first start, then one more per restart.
    pub incarnation: u64,
    /// The node's virtual address (datagrams and stream listening).
    pub addr: SocketAddr,
    /// Randomness for this incarnation, derived from the sim seed, the node and the
    /// incarnation: a restarted node draws new numbers, the same seed the same ones.
    pub rng_seed: [u8; 32],
}

/// The running hash behind [`crate::Sim::trace_hash`]: feed it every field of an event.
#[derive(Clone, Default)]
pub struct Trace(Blake2s256);

impl Trace {
    pub fn update(&mut self, bytes: impl AsRef<[u8]>) {
        self.0.update(bytes);
    }
    pub(crate) fn finish(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }
}

/// A sans-IO state machine the simulator can drive: the core `Node` (see `node.rs`), or
/// a layer built on it (messaging, relay, discovery), or a toy machine in a test.
///
/// Errors from the inputs are counted ([`crate::Sim::input_errors`]), never fatal: a
/// node refusing a duplicate or a forged datagram is the protocol working.
///
/// ```
/// use core::net::SocketAddr;
/// use core::time::Duration;
/// use meshlink_core::{ConnId, Instant};
/// use meshlink_sim::{Boot, Machine, Outgoing, Sim};
///
/// /// Answers every datagram with the same bytes.
/// struct Echo { pending: Vec<(SocketAddr, Vec<u8>)>, got: u32 }
///
/// impl Machine for Echo {
///     type Event = u32; // "datagrams received so far"
///     type Error = &'static str;
///     const MAX_TRANSMIT: usize = 1500;
///     fn handle_datagram(&mut self, _: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Self::Error> {
///         self.got += 1;
///         if bytes != b"pong" { self.pending.push((from, b"pong".to_vec())); }
///         Ok(())
///     }
///     fn accept_stream(&mut self, _: Instant, _: SocketAddr) -> Result<ConnId, Self::Error> { Err("no streams") }
///     fn handle_stream(&mut self, _: ConnId, _: Instant, _: &[u8]) -> Result<usize, Self::Error> { Err("no streams") }
///     fn handle_stream_closed(&mut self, _: ConnId, _: Instant) {}
///     fn handle_timeout(&mut self, _: Instant) {}
///     fn poll_transmit(&mut self, _: Instant, buf: &mut [u8]) -> Option<Outgoing> {
///         let (to, bytes) = self.pending.pop()?;
///         buf[..bytes.len()].copy_from_slice(&bytes);
///         Some(Outgoing::Datagram { to, len: bytes.len() })
///     }
///     fn poll_event(&mut self) -> Option<u32> { None }
///     fn poll_timeout(&self) -> Option<Instant> { None }
/// }
///
/// let mut sim = Sim::<Echo>::with_seed(1);
/// let a = sim.add_machine(|_| Ok(Echo { pending: Vec::new(), got: 0 })).unwrap();
/// let b = sim.add_machine(|_| Ok(Echo { pending: Vec::new(), got: 0 })).unwrap();
/// let to = sim.addr(b);
/// sim.with_node(a, |m, _| m.pending.push((to, b"ping".to_vec())));
/// sim.run_for(Duration::from_secs(1));
/// assert_eq!((sim.node(a).got, sim.node(b).got), (1, 1));
/// ```
pub trait Machine {
    /// An event, owned (copied out of the machine) so it can be logged.
    type Event: Clone + Debug;
    type Error: Debug;
    /// The largest [`Outgoing`] the machine writes: the size of the sim's scratch buffer.
    const MAX_TRANSMIT: usize;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Self::Error>;
    /// A stream connection from `from` arrived; returns the machine's id for it.
    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Result<ConnId, Self::Error>;
    /// Stream bytes in order; returns how many were consumed. A machine keeps a partial
    /// frame itself and consumes everything, except while an event waits to be polled:
    /// then it may consume fewer (even none), and the sim drains the events and offers
    /// the rest. Consuming nothing twice in a row trips the sim's livelock guard.
    fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) -> Result<usize, Self::Error>;
    /// The stream's transport ended (the peer closed, or the connection broke).
    fn handle_stream_closed(&mut self, conn: ConnId, now: Instant);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing>;
    fn poll_event(&mut self) -> Option<Self::Event>;
    fn poll_timeout(&self) -> Option<Instant>;

    /// The stream connection this event closes, if any: the sim closes that socket
    /// (the peer sees the end once the bytes in flight have landed).
    fn closes_stream(_event: &Self::Event) -> Option<ConnId> {
        None
    }

    /// Feeds an event into the trace hash. The default hashes its `Debug` text, which
    /// is complete for derived `Debug` and stable from run to run.
    fn trace_event(event: &Self::Event, trace: &mut Trace) {
        trace.update(format!("{event:?}"));
    }
}
