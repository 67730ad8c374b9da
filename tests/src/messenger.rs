//! The adapter between the simulator and the core's messaging layer: a
//! [`meshlink_core::messaging::HeapMessenger`] as a [`Machine`], with owned events and an
//! optional echo responder (answers every request with its own body).

use core::net::SocketAddr;

use meshlink_core::messaging::{HeapMessenger, MessagingConfig, MessengerEvent, Outcome, RefuseCode, SubId};
use meshlink_core::{Config, ConnId, Error, Event, Instant, Keypair, PeerId, TransportKind};

use crate::machine::{Boot, Machine, Outgoing, Trace};
use crate::node::{build_node, SimEvent};
use crate::{AddNodeError, NodeIdx, Sim};

/// A messenger in the simulator.
pub struct SimMessenger {
    pub inner: HeapMessenger,
    /// Answer every delivered request with its body (during `poll_event`).
    pub echo: bool,
    now: Instant,
}

/// An [`Outcome`], owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimOutcome {
    Response(Vec<u8>),
    NoResponders,
    Refused(RefuseCode),
    Failed { code: u16, message: String },
    Timeout,
    Cancelled,
    Disconnected,
}

/// A [`MessengerEvent`], owned.
#[derive(Debug, Clone, PartialEq)]
pub enum MsgEvent {
    Node(SimEvent),
    Request {
        peer: PeerId,
        id: u64,
        parent: Option<u64>,
        subject: String,
        version: String,
        body: Vec<u8>,
    },
    Outcome {
        id: u64,
        peer: PeerId,
        outcome: SimOutcome,
    },
    Cancelled {
        peer: PeerId,
        id: u64,
    },
    Publication {
        sub: SubId,
        origin: PeerId,
        from: PeerId,
        subject: String,
        seq: u64,
        body: Vec<u8>,
    },
    SubscribeActive {
        sub: SubId,
        peer: PeerId,
    },
    SlowConsumer {
        subscriber: PeerId,
        subject: String,
        seq: u64,
        dropped: u32,
    },
    InterestLimited {
        peer: PeerId,
        accepted: u16,
    },
    /// A service call ended (§15.4); `provider` and `body` for a response.
    Service {
        call: meshlink_core::messaging::CallId,
        attempts: u8,
        answered_by: Option<PeerId>,
        outcome: String,
    },
    /// One attempt of a service call failed.
    ServiceAttempt {
        call: meshlink_core::messaging::CallId,
        provider: PeerId,
        attempt: u8,
    },
    /// An RPC call of one of our functions; `args` is the encoded value list.
    Call {
        peer: PeerId,
        id: u64,
        name: String,
        args: Vec<u8>,
    },
}

fn node_event(ev: Event<'_>) -> SimEvent {
    match ev {
        Event::Connected { conn, peer, addr, kind, quality, .. } => {
            SimEvent::Connected { peer, conn, kind, addr, quality }
        }
        Event::Message { conn, peer, data, .. } => SimEvent::Message { peer, conn, data: data.to_vec() },
        Event::QualityUpdate { conn, peer, quality, .. } => SimEvent::Quality { peer, conn, quality },
        Event::RemoteError { conn, peer, code, .. } => SimEvent::RemoteError { peer, conn, code },
        Event::Disconnected { conn, peer, addr, was_connected, reason, .. } => {
            SimEvent::Disconnected { peer, conn, addr, reason, was_connected }
        }
        other => panic!("the simulator does not know core event {other:?}"),
    }
}

fn owned(ev: MessengerEvent<'_>) -> MsgEvent {
    match ev {
        MessengerEvent::Node(e) => MsgEvent::Node(node_event(e)),
        MessengerEvent::Request(r) => MsgEvent::Request {
            peer: r.peer,
            id: r.id,
            parent: r.parent,
            subject: r.subject.to_owned(),
            version: r.version.to_owned(),
            body: r.body.to_vec(),
        },
        MessengerEvent::Outcome { id, peer, outcome } => MsgEvent::Outcome {
            id,
            peer,
            outcome: match outcome {
                Outcome::Response(b) => SimOutcome::Response(b.to_vec()),
                Outcome::NoResponders => SimOutcome::NoResponders,
                Outcome::Refused(c) => SimOutcome::Refused(c),
                Outcome::Failed { code, message } => SimOutcome::Failed { code, message: message.to_owned() },
                Outcome::Timeout => SimOutcome::Timeout,
                Outcome::Cancelled => SimOutcome::Cancelled,
                Outcome::Disconnected => SimOutcome::Disconnected,
                other => panic!("the simulator does not know outcome {other:?}"),
            },
        },
        MessengerEvent::Cancelled { peer, id } => MsgEvent::Cancelled { peer, id },
        MessengerEvent::Publication { sub, origin, from, subject, seq, body } => {
            MsgEvent::Publication { sub, origin, from, subject: subject.to_owned(), seq, body: body.to_vec() }
        }
        MessengerEvent::SubscribeActive { sub, peer } => MsgEvent::SubscribeActive { sub, peer },
        MessengerEvent::SlowConsumer { subscriber, subject, seq, dropped } => {
            MsgEvent::SlowConsumer { subscriber, subject: subject.to_owned(), seq, dropped }
        }
        MessengerEvent::InterestLimited { peer, accepted } => MsgEvent::InterestLimited { peer, accepted },
        MessengerEvent::Call(c) => {
            MsgEvent::Call { peer: c.peer, id: c.id, name: c.name.to_owned(), args: rpc_args(c.args) }
        }
        MessengerEvent::Service { call, attempts, outcome, .. } => {
            use meshlink_core::messaging::ServiceOutcome;
            let answered_by = match outcome {
                ServiceOutcome::Response { provider, .. } | ServiceOutcome::Failed { provider, .. } => Some(provider),
                _ => None,
            };
            let outcome = match outcome {
                ServiceOutcome::Response { .. } => "Response".to_owned(),
                other => format!("{other:?}"),
            };
            MsgEvent::Service { call, attempts, answered_by, outcome }
        }
        MessengerEvent::ServiceAttempt { call, provider, attempt, .. } => {
            MsgEvent::ServiceAttempt { call, provider, attempt }
        }
        other => panic!("the simulator does not know messenger event {other:?}"),
    }
}

impl Machine for SimMessenger {
    type Event = MsgEvent;
    type Error = Error;
    const MAX_TRANSMIT: usize = <crate::SimNode as Machine>::MAX_TRANSMIT;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        self.now = now;
        self.inner.handle_datagram(now, from, bytes)
    }
    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Result<ConnId, Error> {
        self.now = now;
        self.inner.node_mut().accept(now, from)
    }
    fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) -> Result<usize, Error> {
        self.now = now;
        self.inner.handle_stream(conn, now, bytes)
    }
    fn handle_stream_closed(&mut self, conn: ConnId, now: Instant) {
        self.now = now;
        self.inner.handle_stream_closed(conn, now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.inner.handle_timeout(now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        let t = self.inner.poll_transmit(now, buf)?;
        Some(match (t.kind, t.conn) {
            (TransportKind::Datagram, _) => Outgoing::Datagram { to: t.addr, len: t.len },
            (_, Some(conn)) => Outgoing::Stream { conn, len: t.len },
            (_, None) => Outgoing::Stream { conn: ConnId(u32::MAX), len: t.len },
        })
    }
    fn poll_event(&mut self) -> Option<MsgEvent> {
        let ev = owned(self.inner.poll_event()?);
        if let (true, MsgEvent::Request { peer, id, body, .. }) = (self.echo, &ev) {
            // A full queue is the test's to see: the requester then times out.
            let _ = self.inner.respond(self.now, peer, *id, body);
        }
        Some(ev)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn closes_stream(event: &MsgEvent) -> Option<ConnId> {
        match event {
            MsgEvent::Node(SimEvent::Disconnected { conn, .. }) => Some(*conn),
            _ => None,
        }
    }
    fn trace_event(event: &MsgEvent, trace: &mut Trace) {
        trace.update(format!("{event:?}"));
    }
}

/// Builds a messenger as the sim does: a core node from [`build_node`], tables on the heap.
pub fn build_messenger(
    config: &Config,
    messaging: &MessagingConfig,
    keypair: &Keypair,
    boot: &Boot,
) -> Result<SimMessenger, Error> {
    let node = build_node(config, keypair, boot)?;
    let inner = HeapMessenger::with_capacity(node, messaging.clone()).map_err(|_| Error::Config("messaging config"))?;
    Ok(SimMessenger { inner, echo: false, now: Instant::ZERO })
}

impl Sim<SimMessenger> {
    /// Adds a messenger with a keypair derived from the sim seed.
    pub fn add_messenger(
        &mut self,
        config: Config,
        messaging: MessagingConfig,
    ) -> Result<NodeIdx, AddNodeError<Error>> {
        let keypair = Keypair::from_secret(self.derive_seed(b"key", self.node_count() as u64, 0));
        self.add_machine(move |boot| build_messenger(&config, &messaging, &keypair, boot))
    }

    /// Opens a session from `a` to `b` (as [`Sim::connect`] for core nodes).
    pub fn connect_messengers(&mut self, a: NodeIdx, b: NodeIdx, kind: TransportKind) -> Result<ConnId, Error> {
        let expected = Some(self.messenger_peer(b));
        if kind == TransportKind::Datagram {
            self.flush();
            let to = self.addr(b);
            return self.with_node(a, |m, now| m.inner.node_mut().connect(now, kind, to, expected));
        }
        self.open_stream(a, b, |m, now, to| m.inner.node_mut().connect(now, kind, to, expected))
    }

    pub fn messenger_peer(&self, idx: NodeIdx) -> PeerId {
        self.node(idx).inner.node().peer_id()
    }

    /// Whether `a` is running and connected to `b`.
    pub fn messengers_connected(&self, a: NodeIdx, b: NodeIdx) -> bool {
        let peer = self.messenger_peer(b);
        self.is_up(a) && self.node(a).inner.node().peers().any(|p| p.peer == peer)
    }
}

// ------------------------------------------------------------------ RPC (§15.5)

/// The encoded value list of a call's arguments, owned.
fn rpc_args(args: meshlink_core::messaging::rpc::List<'_>) -> Vec<u8> {
    use meshlink_core::messaging::rpc::{Value, ValueWriter, MAX_SIZE};
    let mut buf = vec![0u8; MAX_SIZE + 16];
    let mut w = ValueWriter::new(&mut buf);
    Value::List(args).write(&mut w).expect("a decoded list fits its own size");
    let n = w.len();
    buf.truncate(n);
    buf
}
