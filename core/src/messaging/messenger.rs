//! The [`Messenger`]: a [`Node`] plus the messaging tables, behind the same sans-IO calls.

#[cfg(feature = "datagram")]
use core::net::SocketAddr;

use super::pending::{ConnEntry, Ended, Pending, RequestSlot};
use super::pubsub::api::PsStep;
use super::pubsub::{PubSub, SubId};
use super::request::{
    self, CancelPacket, HandlerSlot, Packet, RefusalPacket, RefuseCode, RequestPacket, ResponsePacket, APP_CODE_MIN,
    MESSAGE_MAX,
};
use super::storage::{MessengerStorage, Store};
use super::subject::{self, MAX_SUBJECT_LEN};
use super::{HandlerId, MessagingConfig, MessagingError, MessagingStats, RequestOptions};
use crate::buffers::Priority;
use crate::error::Error;
use crate::identity::PeerId;
use crate::node::{BufferPool, ConnId, Event, Node, Slot, Transmit};
use crate::time::Instant;
use crate::wire::kind::{self, KindClass};

/// A messenger whose node and tables are all on the heap (feature `alloc`).
#[cfg(feature = "alloc")]
pub type HeapMessenger = Messenger<'static, crate::node::HeapPool, alloc::boxed::Box<[Slot<alloc::boxed::Box<[u8]>>]>>;

/// How a request ended, tied to it by [`MessengerEvent::Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// The handler's answer.
    Response(&'a [u8]),
    /// The peer has no handler for the subject (within one round trip).
    NoResponders,
    /// The peer refused: version mismatch, busy, expired, malformed.
    Refused(RefuseCode),
    /// The handler answered with an error ([`Messenger::respond_error`]).
    Failed { code: u16, message: &'a str },
    /// No answer within the request's timeout.
    Timeout,
    /// [`Messenger::cancel`] ended it.
    Cancelled,
    /// The session the request went on ended before an answer.
    Disconnected,
}

/// A request for one of our handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncomingRequest<'a> {
    pub conn: ConnId,
    pub peer: PeerId,
    /// The requester's id: answer with [`Messenger::respond`] (peer, id).
    pub id: u64,
    pub parent: Option<u64>,
    /// The handler whose pattern matched.
    pub handler: HandlerId,
    pub subject: &'a str,
    pub version: &'a str,
    /// The requester stops waiting this long after it sent the request.
    pub timeout_ms: u32,
    pub body: &'a [u8],
}

/// What the messenger reports: messaging events, and every other node event as is.
#[derive(Debug)]
#[non_exhaustive]
pub enum MessengerEvent<'a> {
    /// A node event (connections, plain messages, quality...).
    Node(Event<'a>),
    /// A request for a registered handler.
    Request(IncomingRequest<'a>),
    /// One of our requests ended.
    Outcome { id: u64, peer: PeerId, outcome: Outcome<'a> },
    /// The requester cancelled a request it sent us: its work can stop.
    Cancelled { peer: PeerId, id: u64 },
    /// A publication for subscription `sub` (§15.3): published by `origin` as its `seq`,
    /// handed over by neighbour `from`.
    Publication { sub: SubId, origin: PeerId, from: PeerId, subject: &'a str, seq: u64, body: &'a [u8] },
    /// Neighbour `peer` holds `sub`'s interest: every publication it sees from now on
    /// reaches the subscription.
    SubscribeActive { sub: SubId, peer: PeerId },
    /// A subscriber (`subscriber`, any hops away) dropped `dropped` of our publications
    /// on `subject` at its full queue; `seq` is the latest that overflowed.
    SlowConsumer { subscriber: PeerId, subject: &'a str, seq: u64, dropped: u32 },
    /// Neighbour `peer` kept only `accepted` entries of our interest set (its limit).
    InterestLimited { peer: PeerId, accepted: u16 },
    /// A call of one of our RPC functions (§15.5).
    Call(super::rpc::IncomingCall<'a>),
    /// A service call (§15.4) ended after `attempts` attempts; `last` is the failure of
    /// the last failed attempt, if any.
    Service {
        call: super::service::CallId,
        attempts: u8,
        last: Option<super::service::AttemptError>,
        outcome: super::service::ServiceOutcome<'a>,
    },
    /// Attempt number `attempt` of a service call, to `provider`, failed; the next goes
    /// to another provider, or the call ends ([`MessengerEvent::Service`]).
    ServiceAttempt { call: super::service::CallId, provider: PeerId, attempt: u8, error: super::service::AttemptError },
}

/// What `poll_event` does with the node's next event (decided before taking it).
enum Step {
    PassThrough,
    /// Take the event and report it from the message.
    Deliver,
    /// Take the event; nothing to report (a late response, a malformed packet).
    Drop,
    /// A pub/sub message: `Messenger::pubsub_step` handles it.
    PubSub,
    /// Take the event and refuse the request.
    Refuse {
        peer: PeerId,
        id: u64,
        code: RefuseCode,
    },
    /// Take the event and refuse an RPC call with a layer code and a message.
    RpcRefuse {
        peer: PeerId,
        id: u64,
        code: u16,
        message: &'static str,
    },
    /// Take the event and answer an RPC built-in.
    Builtin {
        peer: PeerId,
        id: u64,
        which: super::rpc::Builtin,
    },
}

/// A [`Node`] with request/response and send-to-many (see the module docs).
pub struct Messenger<'a, P: BufferPool, S> {
    pub(crate) node: Node<P, S>,
    pub(crate) config: MessagingConfig,
    requests: Store<'a, RequestSlot>,
    conns: Store<'a, ConnEntry>,
    handlers: Store<'a, HandlerSlot>,
    pub(crate) scratch: Store<'a, u8>,
    /// RPC functions (§15.5); empty: RPC off.
    pub(crate) functions: Store<'a, super::rpc::FnSlot>,
    pending: Pending,
    /// Publish/subscribe tables (pubsub/).
    pub(crate) pubsub: PubSub<'a>,
    stats: MessagingStats,
    /// Services (§15.4): provided services and calls in progress.
    pub(crate) services: Store<'a, super::service::ServiceSlot>,
    pub(crate) svc: super::service::calls::Calls<'a>,
    /// A packet was queued since the last `handle_timeout`: `poll_timeout` says "now",
    /// so a reply queued while events are polled goes out without waiting for input.
    pub(crate) wake: bool,
}

impl<P: BufferPool, S> core::fmt::Debug for Messenger<'_, P, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Messenger")
            .field("node", &self.node)
            .field("pending", &self.pending.in_use())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "alloc")]
impl HeapMessenger {
    /// A messenger over `node` with every table on the heap, sized from `config`
    /// (requests, handlers), the node's capacity and its `max_message`.
    pub fn with_capacity(node: crate::HeapNode, config: MessagingConfig) -> Result<Self, MessagingError> {
        config.validate()?;
        let storage = MessengerStorage::heap(&config, node.capacity(), node.config().max_message);
        Messenger::new(node, config, storage)
    }
}

impl<'a, P, S> Messenger<'a, P, S>
where
    P: BufferPool,
    S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
{
    /// Wraps `node`. `config` is validated; its limits are lowered to the tables'
    /// capacities. The storage needs a request table (1..=65,535 slots), one
    /// [`ConnEntry`] per node slot, and a scratch buffer.
    pub fn new(
        node: Node<P, S>,
        mut config: MessagingConfig,
        storage: MessengerStorage<'a>,
    ) -> Result<Self, MessagingError> {
        config.validate()?;
        let MessengerStorage {
            mut requests,
            mut conns,
            mut handlers,
            scratch,
            subs,
            peer_subs,
            origins,
            interest,
            seen,
            mut functions,
            mut services,
            calls,
            call_bodies,
        } = storage;
        let bad = |field, problem| Err(MessagingError::InvalidConfig(crate::config::ConfigError { field, problem }));
        if requests.is_empty() || requests.len() > 0xffff {
            return bad("requests", "the request table must hold 1..=65535 slots");
        }
        if conns.len() < node.capacity() {
            return bad("conns", "needs one entry per node slot (Node::capacity)");
        }
        if !peer_subs.is_empty() && peer_subs.len() < node.capacity() {
            return bad("peer_subs", "needs one entry per node slot (Node::capacity), or none");
        }
        if scratch.len() < request::REQUEST_OVERHEAD_MAX {
            return bad("scratch", "must hold at least a request without a body (REQUEST_OVERHEAD_MAX)");
        }
        config.max_pending = config.max_pending.min(requests.len());
        config.max_pending_per_peer = config.max_pending_per_peer.min(config.max_pending);
        config.max_handlers = config.max_handlers.min(handlers.len());
        for h in handlers.iter_mut() {
            *h = HandlerSlot::EMPTY;
        }
        for f in functions.iter_mut() {
            *f = super::rpc::FnSlot::EMPTY;
        }
        for s in services.iter_mut() {
            *s = super::service::ServiceSlot::EMPTY;
        }
        if calls.len() > 0xffff {
            return bad("calls", "the service call table holds at most 65535 slots");
        }
        let svc = super::service::calls::Calls::new(calls, call_bodies);
        let pending = Pending::new(&mut requests, &mut conns);
        let stats = MessagingStats::default();
        config.max_subs = config.max_subs.min(subs.len());
        let pubsub = PubSub::new(node.peer_id(), subs, peer_subs, origins, interest, seen);
        Ok(Messenger {
            node,
            config,
            requests,
            conns,
            handlers,
            scratch,
            functions,
            pending,
            pubsub,
            stats,
            services,
            svc,
            wake: false,
        })
    }

    pub fn node(&self) -> &Node<P, S> {
        &self.node
    }
    /// The node, for its own commands (connect, send, disconnect...).
    pub fn node_mut(&mut self) -> &mut Node<P, S> {
        &mut self.node
    }
    pub fn config(&self) -> &MessagingConfig {
        &self.config
    }
    pub fn stats(&self) -> MessagingStats {
        self.stats
    }
    /// Requests holding a slot: in flight, or ended with their outcome not yet polled.
    pub fn pending(&self) -> usize {
        self.pending.in_use()
    }
    /// Requests holding a slot on the session currently used for `peer`.
    pub fn pending_to(&self, peer: &PeerId) -> usize {
        self.node.peer_conn(peer).map_or(0, |c| self.pending.on_conn(&self.conns, c))
    }

    // ------------------------------------------------------------------ handlers

    /// Registers a handler for `pattern` (wildcards allowed) at `version` ("" for any).
    /// A request goes to the first registered handler whose pattern matches its subject;
    /// none gives the requester `NoResponders`, a different major version `Refused`.
    pub fn register(&mut self, pattern: &str, version: &str) -> Result<HandlerId, MessagingError> {
        let wild = subject::validate_pattern(pattern)?;
        let major = request::parse_version(version)?;
        let limit = self.config.max_handlers;
        let i = self.handlers[..limit].iter().position(|h| !h.used).ok_or(MessagingError::HandlerLimit { limit })?;
        let mut text = heapless::String::<MAX_SUBJECT_LEN>::new();
        // Cannot fail: a valid pattern is at most MAX_SUBJECT_LEN bytes.
        text.push_str(pattern)
            .map_err(|()| subject::SubjectError::TooLong { len: pattern.len(), max: MAX_SUBJECT_LEN })?;
        self.handlers[i] = HandlerSlot { used: true, wild, major, pattern: text };
        Ok(HandlerId(i as u16))
    }

    pub fn unregister(&mut self, h: HandlerId) -> Result<(), MessagingError> {
        let slot = self.handlers.get_mut(h.0 as usize).filter(|s| s.used).ok_or(MessagingError::UnknownHandler)?;
        *slot = HandlerSlot::EMPTY;
        Ok(())
    }

    // ------------------------------------------------------------------ requests

    /// Sends a request for `subject` (literal) to a connected `peer`; returns its id.
    /// Fails at once, with nothing sent and nothing kept, on a full table
    /// ([`MessagingError::PendingLimit`], [`MessagingError::PeerPendingLimit`]), a bad
    /// subject or version, or a node error (not connected, queue full, too large).
    pub fn request(
        &mut self,
        now: Instant,
        peer: &PeerId,
        subject: &str,
        body: &[u8],
        opts: RequestOptions<'_>,
    ) -> Result<u64, MessagingError> {
        subject::validate_subject(subject)?;
        request::parse_version(opts.version)?;
        let timeout = opts.timeout.unwrap_or(self.config.default_timeout).min(MessagingConfig::MAX_TIMEOUT);
        let timeout_ms = timeout.as_millis().max(1) as u32;
        let priority = opts.priority.unwrap_or(self.config.default_priority);
        let conn = self.node.peer_conn(peer).ok_or(Error::UnknownPeer)?;
        if self.pending.in_use() >= self.config.max_pending {
            return Err(MessagingError::PendingLimit { limit: self.config.max_pending });
        }
        if self.pending.on_conn(&self.conns, conn) >= self.config.max_pending_per_peer {
            return Err(MessagingError::PeerPendingLimit { limit: self.config.max_pending_per_peer });
        }
        let deadline = now.saturating_add(core::time::Duration::from_millis(u64::from(timeout_ms)));
        let (slot, id) = self
            .pending
            .insert(&mut self.requests, &mut self.conns, *peer, conn, deadline)
            .ok_or(MessagingError::PendingLimit { limit: self.config.max_pending })?;
        let pkt = Packet::Request(RequestPacket {
            id,
            parent: opts.parent,
            timeout_ms,
            version: opts.version,
            subject,
            body,
        });
        match self.send_packet(now, peer, priority, &pkt, body.len()) {
            Ok(_) => {
                self.stats.requests_sent += 1;
                Ok(id)
            }
            Err(e) => {
                self.pending.release(&mut self.requests, &mut self.conns, slot);
                Err(e)
            }
        }
    }

    /// Ends a pending request: its outcome is [`Outcome::Cancelled`], its slot is freed
    /// when that is polled, and the peer is told (best effort) so it can drop the work.
    pub fn cancel(&mut self, now: Instant, id: u64) -> Result<(), MessagingError> {
        let slot = self.pending.find(&self.requests, id, None).ok_or(MessagingError::UnknownRequest)?;
        let (peer, _) = Pending::peer_of(&self.requests, slot);
        self.pending.end(&mut self.requests, &mut self.conns, slot, Ended::Cancelled);
        let _ = self.send_packet(now, &peer, Priority::High, &Packet::Cancel(CancelPacket { id }), 0);
        Ok(())
    }

    /// Answers request `id` from `peer` at the default priority.
    pub fn respond(&mut self, now: Instant, peer: &PeerId, id: u64, body: &[u8]) -> Result<(), MessagingError> {
        self.respond_with(now, peer, id, self.config.default_priority, body)
    }

    /// Answers request `id` from `peer` in the queue of `priority`.
    pub fn respond_with(
        &mut self,
        now: Instant,
        peer: &PeerId,
        id: u64,
        priority: Priority,
        body: &[u8],
    ) -> Result<(), MessagingError> {
        self.send_packet(now, peer, priority, &Packet::Response(ResponsePacket { id, body }), body.len()).map(|_| ())
    }

    /// Answers request `id` with a handler error: `code` from [`APP_CODE_MIN`] on (lower
    /// codes are the layer's), `message` at most [`MESSAGE_MAX`] bytes. The requester gets
    /// [`Outcome::Failed`].
    pub fn respond_error(
        &mut self,
        now: Instant,
        peer: &PeerId,
        id: u64,
        code: u16,
        message: &str,
    ) -> Result<(), MessagingError> {
        if code < APP_CODE_MIN {
            return Err(MessagingError::InvalidErrorCode { code });
        }
        if message.len() > MESSAGE_MAX {
            return Err(MessagingError::MessageTooLong { max: MESSAGE_MAX });
        }
        let pkt = Packet::Refusal(RefusalPacket { id, code, message });
        self.send_packet(now, peer, self.config.default_priority, &pkt, 0).map(|_| ())
    }

    /// Refuses request `id` from `peer` with a layer code an application may send itself:
    /// [`RefuseCode::Busy`] (its queue of requests is full, so the requester can try
    /// another provider) or [`RefuseCode::Expired`]. Every other layer code is the layer's
    /// own decision and gives [`MessagingError::InvalidErrorCode`]; handler errors go
    /// through [`Messenger::respond_error`].
    pub fn refuse(&mut self, now: Instant, peer: &PeerId, id: u64, code: RefuseCode) -> Result<(), MessagingError> {
        if !matches!(code, RefuseCode::Busy | RefuseCode::Expired) {
            return Err(MessagingError::InvalidErrorCode { code: code.to_u16() });
        }
        let pkt = Packet::Refusal(RefusalPacket { id, code: code.to_u16(), message: "" });
        self.send_packet(now, peer, Priority::High, &pkt, 0).map(|_| ())
    }

    /// Queues `bytes` unchecked as a message of an implemented messaging kind: for tests
    /// and fuzzing (hostile peers), never needed by an application.
    #[doc(hidden)]
    pub fn send_raw_messaging(&mut self, now: Instant, peer: &PeerId, kind: u8, bytes: &[u8]) -> Result<(), Error> {
        if kind::class(kind) != KindClass::Messaging {
            return Err(Error::InvalidKind { kind });
        }
        self.node.send_message_kind(now, peer, kind, Priority::Normal, bytes)?;
        self.wake = true;
        Ok(())
    }

    /// Queues a Refusal with any code (the layer's included): for the RPC layer.
    pub(super) fn refuse_raw(
        &mut self,
        now: Instant,
        peer: &PeerId,
        id: u64,
        code: u16,
        message: &str,
    ) -> Result<(), Error> {
        let pkt = Packet::Refusal(RefusalPacket { id, code, message });
        self.send_packet(now, peer, Priority::High, &pkt, 0).map(|_| ()).map_err(|e| match e {
            MessagingError::Node(e) => e,
            _ => Error::Wire(crate::wire::WireError::MalformedPacket),
        })
    }

    fn send_packet(
        &mut self,
        now: Instant,
        peer: &PeerId,
        priority: Priority,
        pkt: &Packet<'_>,
        body_len: usize,
    ) -> Result<ConnId, MessagingError> {
        let max = self.scratch.len();
        let n = pkt.encode(&mut self.scratch).map_err(|e| match e {
            crate::wire::WireError::BufferTooSmall { .. } => {
                MessagingError::TooLarge { size: body_len + request::REQUEST_OVERHEAD_MAX, max }
            }
            e => MessagingError::Node(Error::Wire(e)),
        })?;
        let conn = self.node.send_message_kind(now, peer, pkt.kind(), priority, &self.scratch[..n])?;
        self.wake = true;
        Ok(conn)
    }

    // ------------------------------------------------------------------ sans-IO

    pub fn handle_stream(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) -> Result<usize, Error> {
        self.node.handle_stream(conn, now, bytes)
    }
    pub fn handle_stream_closed(&mut self, conn: ConnId, now: Instant) {
        self.node.handle_stream_closed(conn, now)
    }
    #[cfg(feature = "datagram")]
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Error> {
        self.node.handle_datagram(now, from, bytes)
    }
    /// The node's timers, then every request whose deadline has passed (its
    /// [`Outcome::Timeout`] waits in `poll_event`).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.wake = false;
        self.node.handle_timeout(now);
        self.pending.expire(&mut self.requests, &mut self.conns, now);
        self.pubsub_service(now);
    }
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.node.poll_transmit(now, buf)
    }
    /// The earlier of the node's next timer and the earliest request deadline, or the
    /// latest input's instant when a packet was queued since `handle_timeout` (a reply
    /// queued while events were polled). O(1).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.wake || self.svc_owed() {
            return Some(self.node.last_now());
        }
        match (self.node.poll_timeout(), self.pending.next_deadline(&self.requests)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event. Owed outcomes (timeouts, cancels, disconnects) come first, then
    /// the node's events, messaging messages turned into messaging events. A borrowed
    /// event lends the messenger until the next call.
    pub fn poll_event(&mut self) -> Option<MessengerEvent<'_>> {
        loop {
            self.pubsub_service(self.node.last_now());
            if let Some(ev) = self.pubsub_owed() {
                return Some(ev);
            }
            if let Some(ev) = self.svc_poll() {
                return Some(ev);
            }
            if let Some((id, peer, ended)) = self.pending.pop_done(&mut self.requests) {
                let outcome = match ended {
                    Ended::Timeout => {
                        self.stats.timeouts += 1;
                        Outcome::Timeout
                    }
                    Ended::Cancelled => Outcome::Cancelled,
                    Ended::Disconnected => Outcome::Disconnected,
                };
                let error = match ended {
                    Ended::Timeout => super::service::AttemptError::Timeout,
                    _ => super::service::AttemptError::Disconnected,
                };
                if let Some(ev) = self.svc_on_end(id, peer, error) {
                    return Some(ev);
                }
                return Some(MessengerEvent::Outcome { id, peer, outcome });
            }
            // Decide from a look at the next message, then take the event: a borrow of
            // the node is only ever returned, never held across a command.
            let step = match self.node.peek_message() {
                Some((_, _, k, _)) if (kind::PUBLICATION..=kind::SLOW_CONSUMER).contains(&k) => Step::PubSub,
                Some((_, peer, k, data)) if kind::class(k) == KindClass::Messaging => decide(
                    &self.pending,
                    &self.requests,
                    &self.handlers,
                    &self.functions,
                    &mut self.stats,
                    peer,
                    k,
                    data,
                ),
                _ => Step::PassThrough,
            };
            match step {
                Step::PassThrough => {
                    let ev = self.node.poll_event()?;
                    match ev {
                        Event::Disconnected { conn, .. } => {
                            // Its requests' outcomes are owed and come on the next polls.
                            self.pending.end_conn(&mut self.requests, &mut self.conns, conn);
                            self.pubsub.on_disconnected(crate::node::conn_slot(conn), conn);
                        }
                        Event::Connected { conn, peer, .. } => {
                            // The full interest set goes out on the next poll or timeout.
                            self.pubsub.on_connected(crate::node::conn_slot(conn), conn, peer);
                            self.wake = true;
                        }
                        _ => {}
                    }
                    return Some(MessengerEvent::Node(ev));
                }
                Step::PubSub => match self.pubsub_step() {
                    PsStep::Skip => continue,
                    step => return self.pubsub_event(step),
                },
                Step::Drop => {
                    let _ = self.node.poll_event();
                }
                Step::Refuse { peer, id, code } => {
                    let _ = self.node.poll_event();
                    let pkt = Packet::Refusal(RefusalPacket { id, code: code.to_u16(), message: "" });
                    let now = self.node.last_now();
                    if self.send_packet(now, &peer, Priority::High, &pkt, 0).is_ok() {
                        self.stats.refusals_sent += 1;
                    }
                }
                Step::RpcRefuse { peer, id, code, message } => {
                    let _ = self.node.poll_event();
                    let now = self.node.last_now();
                    if self.refuse_raw(now, &peer, id, code, message).is_ok() {
                        self.stats.refusals_sent += 1;
                    }
                }
                Step::Builtin { peer, id, which } => {
                    let _ = self.node.poll_event();
                    let now = self.node.last_now();
                    self.answer_builtin(now, &peer, id, which);
                }
                Step::Deliver => {
                    let Messenger { node, pending, requests, conns, handlers, functions, svc, .. } = self;
                    let Some(Event::Message { conn, peer, kind, data }) = node.poll_event() else { return None };
                    // `decide` decoded it already: this cannot fail.
                    let pkt = Packet::decode(kind, data).ok()?;
                    return Some(match pkt {
                        Packet::Request(r) if !functions.is_empty() && r.subject.starts_with(super::rpc::PREFIX) => {
                            MessengerEvent::Call(super::rpc::api_incoming(functions, conn, peer, &r)?)
                        }
                        Packet::Request(r) => {
                            let handler = handlers.iter().position(|h| h.matches(r.subject)).unwrap_or(0);
                            MessengerEvent::Request(IncomingRequest {
                                conn,
                                peer,
                                id: r.id,
                                parent: r.parent,
                                handler: HandlerId(handler as u16),
                                subject: r.subject,
                                version: r.version,
                                timeout_ms: r.timeout_ms,
                                body: r.body,
                            })
                        }
                        Packet::Cancel(c) => MessengerEvent::Cancelled { peer, id: c.id },
                        Packet::Response(r) => {
                            if let Some(slot) = pending.find(requests, r.id, Some(&peer)) {
                                pending.release(requests, conns, slot);
                            }
                            let reply = super::service::api::Reply::Response(r.body);
                            if let Some(ev) = super::service::api::on_reply(svc, r.id, peer, reply) {
                                return Some(ev);
                            }
                            MessengerEvent::Outcome { id: r.id, peer, outcome: Outcome::Response(r.body) }
                        }
                        Packet::Refusal(r) => {
                            if let Some(slot) = pending.find(requests, r.id, Some(&peer)) {
                                pending.release(requests, conns, slot);
                            }
                            let reply = super::service::api::Reply::Refusal { code: r.code, message: r.message };
                            if let Some(ev) = super::service::api::on_reply(svc, r.id, peer, reply) {
                                return Some(ev);
                            }
                            let outcome = match r.code {
                                c if c >= APP_CODE_MIN => Outcome::Failed { code: c, message: r.message },
                                c => match RefuseCode::from_u16(c) {
                                    RefuseCode::NoResponders => Outcome::NoResponders,
                                    code => Outcome::Refused(code),
                                },
                            };
                            MessengerEvent::Outcome { id: r.id, peer, outcome }
                        }
                    });
                }
            }
        }
    }
}

/// What to do with a messaging message from `peer` (a look only: nothing is taken).
#[allow(clippy::too_many_arguments)] // each table borrowed apart: poll_event holds the node
fn decide(
    pending: &Pending,
    requests: &[RequestSlot],
    handlers: &[HandlerSlot],
    functions: &[super::rpc::FnSlot],
    stats: &mut MessagingStats,
    peer: PeerId,
    k: u8,
    data: &[u8],
) -> Step {
    let pkt = match Packet::decode(k, data) {
        Ok(p) => p,
        Err(_) => {
            stats.malformed += 1;
            // A request we can name gets a typed refusal (F29); anything else is dropped.
            if k == kind::REQUEST {
                if let Ok((id, _)) = postcard::take_from_bytes::<u64>(data) {
                    return Step::Refuse { peer, id, code: RefuseCode::Malformed };
                }
            }
            return Step::Drop;
        }
    };
    match pkt {
        Packet::Request(r) => {
            stats.requests_received += 1;
            if r.timeout_ms == 0 {
                return Step::Refuse { peer, id: r.id, code: RefuseCode::Expired };
            }
            if let Some(name) = r.subject.strip_prefix(super::rpc::PREFIX).filter(|_| !functions.is_empty()) {
                return match super::rpc::api_decide(functions, name, r.version, r.body) {
                    super::rpc::RpcStep::Deliver => Step::Deliver,
                    super::rpc::RpcStep::Builtin(which) => Step::Builtin { peer, id: r.id, which },
                    super::rpc::RpcStep::Refuse(code, message) => Step::RpcRefuse { peer, id: r.id, code, message },
                };
            }
            // The handler table is small and caller-sized (`max_handlers`), so it is
            // walked; pub/sub's token trie will serve handlers too.
            let found = handlers.iter().position(|h| h.matches(r.subject)).map(|i| handlers[i].major);
            let theirs = request::parse_version(r.version).ok().flatten();
            match found {
                None => Step::Refuse { peer, id: r.id, code: RefuseCode::NoResponders },
                Some(Some(ours)) if theirs.is_some_and(|t| t != ours) => {
                    Step::Refuse { peer, id: r.id, code: RefuseCode::VersionMismatch }
                }
                Some(_) => Step::Deliver,
            }
        }
        Packet::Cancel(_) => Step::Deliver,
        Packet::Response(_) | Packet::Refusal(_) => {
            if pending.find(requests, pkt.id(), Some(&peer)).is_some() {
                Step::Deliver
            } else {
                stats.late_responses += 1;
                Step::Drop
            }
        }
    }
}
