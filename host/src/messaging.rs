//! Request/response, services and send-to-many for host users (issue 14, "The host").
//!
//! Everything here moves bytes, time and results between tasks and the driver; the
//! protocol (ids, deadlines, refusals, matching) is the core's
//! [`Messenger`](meshlink_core::messaging::Messenger), which the driver owns.
//!
//! - [`HostHandle::request`](crate::HostHandle::request) resolves to the answer's body
//!   or to one typed error per outcome ([`HostError::NoResponders`], [`HostError::Timeout`],
//!   [`HostError::Cancelled`], [`HostError::Disconnected`], [`HostError::Refused`],
//!   [`HostError::Failed`], [`HostError::PendingLimit`]). Dropping the future cancels
//!   the request (the peer is told).
//! - [`HostHandle::serve`](crate::HostHandle::serve) registers a handler and returns
//!   [`Requests`], a [`Stream`](futures_util::Stream) of [`Request`]s, each answered with
//!   [`Request::respond`] or [`Request::respond_error`]. Its queue holds
//!   `messaging.serve_queue` requests; one more is refused with `Busy` at once (counted
//!   in [`HostStats::requests_busy`](crate::HostStats::requests_busy)), so a slow service
//!   costs its requesters a refusal, never the node memory. Dropping it unregisters.
//! - [`HostHandle::send_many`](crate::HostHandle::send_many) and
//!   [`send_all`](crate::HostHandle::send_all) queue one message for many peers and
//!   report each peer.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use meshlink_core::messaging::{HandlerId, MessengerEvent, Outcome, RefuseCode, RequestOptions, SendReport};
use meshlink_core::{Instant, PeerId, Priority};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Command, CoreNode, Reply};
use crate::error::HostError;

/// The options of [`HostHandle::request`](crate::HostHandle::request); the defaults are
/// the node's (`messaging.default_timeout_ms`, any version, normal priority).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOpts {
    pub timeout: Option<Duration>,
    /// The version the caller speaks (`1`, `1.2`, `1.2.3-rc.1`); empty: any.
    pub version: String,
    /// The request this one is part of (for tracing across nodes).
    pub parent: Option<u64>,
    pub priority: Option<Priority>,
}

impl RequestOpts {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.version = v.into();
        self
    }
    pub fn parent(mut self, id: u64) -> Self {
        self.parent = Some(id);
        self
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = Some(p);
        self
    }
}

/// One request for a service of this node, from [`Requests`]. Answer it once, with
/// [`respond`](Self::respond) or [`respond_error`](Self::respond_error); one left
/// unanswered times out at the requester.
#[derive(Debug)]
#[non_exhaustive]
pub struct Request {
    pub peer: PeerId,
    /// The requester's id for it (with `peer`, what an answer names).
    pub id: u64,
    pub parent: Option<u64>,
    pub subject: String,
    pub version: String,
    /// The requester stops waiting this long after it sent the request.
    pub timeout_ms: u32,
    pub body: Bytes,
    cmd: mpsc::Sender<Command>,
}

impl Request {
    /// Sends `body` as the answer.
    pub async fn respond(self, body: impl Into<Bytes>) -> Result<(), HostError> {
        let answer = Answer::Body(body.into());
        respond(&self.cmd, self.peer, self.id, answer).await
    }

    /// Answers with a handler error: `code` from 256 on (lower codes are the protocol's),
    /// `message` at most 128 bytes. The requester gets [`HostError::Failed`].
    pub async fn respond_error(self, code: u16, message: impl Into<String>) -> Result<(), HostError> {
        let answer = Answer::Error { code, message: message.into() };
        respond(&self.cmd, self.peer, self.id, answer).await
    }
}

/// Answers request `id` of `peer` through the driver.
pub(crate) async fn respond(
    cmd: &mpsc::Sender<Command>,
    peer: PeerId,
    id: u64,
    answer: Answer,
) -> Result<(), HostError> {
    let (tx, rx) = oneshot::channel();
    cmd.send(Command::Messaging(MsgCommand::Respond { peer, id, answer, reply: tx }))
        .await
        .map_err(|_| HostError::Stopped)?;
    rx.await.map_err(|_| HostError::Stopped)?
}

/// An answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Body(Bytes),
    Error { code: u16, message: String },
}

/// The requests of one registered handler ([`HostHandle::serve`](crate::HostHandle::serve)),
/// in arrival order; a [`Stream`](futures_util::Stream). Dropping it unregisters the
/// handler: later requests for its pattern get `NoResponders`.
pub struct Requests {
    rx: mpsc::Receiver<Incoming>,
    handler: HandlerId,
    gen: u64,
    cmd: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests").field("handler", &self.handler).finish_non_exhaustive()
    }
}

impl Requests {
    pub(crate) fn new(rx: mpsc::Receiver<Incoming>, handler: HandlerId, gen: u64, cmd: mpsc::Sender<Command>) -> Self {
        Requests { rx, handler, gen, cmd }
    }

    /// The next request; `None` once the node has stopped.
    pub async fn next(&mut self) -> Option<Request> {
        let i = self.rx.recv().await?;
        Some(self.wrap(i))
    }

    fn wrap(&self, i: Incoming) -> Request {
        let Incoming { peer, id, parent, subject, version, timeout_ms, body } = i;
        Request { peer, id, parent, subject, version, timeout_ms, body, cmd: self.cmd.clone() }
    }

    pub fn handler(&self) -> HandlerId {
        self.handler
    }
}

impl futures_util::Stream for Requests {
    type Item = Request;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        self.rx.poll_recv(cx).map(|o| o.map(|i| self.wrap(i)))
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        let c = Command::Messaging(MsgCommand::Unserve { handler: self.handler, gen: self.gen });
        // The command queue is bounded: when it is full, a task sends it later (the
        // generation keeps a late unregister from removing a newer handler).
        if let Err(mpsc::error::TrySendError::Full(c)) = self.cmd.try_send(c) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let cmd = self.cmd.clone();
                rt.spawn(async move {
                    let _ = cmd.send(c).await;
                });
            }
        }
    }
}

/// What the driver queues for a service: an owned copy of the core's request.
#[derive(Debug)]
pub(crate) struct Incoming {
    peer: PeerId,
    id: u64,
    parent: Option<u64>,
    subject: String,
    version: String,
    timeout_ms: u32,
    body: Bytes,
}

/// One result per peer of a send-to-many, in order.
pub type SendResults = Vec<(PeerId, Result<(), HostError>)>;

/// Messaging commands for the driver.
pub(crate) enum MsgCommand {
    Request {
        peer: PeerId,
        subject: String,
        body: Bytes,
        opts: RequestOpts,
        /// Gets the request's id once it is sent (for cancel-on-drop).
        started: oneshot::Sender<u64>,
        reply: Reply<Bytes>,
    },
    Cancel {
        id: u64,
    },
    Serve {
        pattern: String,
        version: String,
        reply: Reply<(HandlerId, u64, mpsc::Receiver<Incoming>)>,
    },
    Unserve {
        handler: HandlerId,
        gen: u64,
    },
    Respond {
        peer: PeerId,
        id: u64,
        answer: Answer,
        reply: Reply<()>,
    },
    /// `peers: None`: every connected peer.
    SendMany {
        peers: Option<Vec<PeerId>>,
        data: Bytes,
        reply: oneshot::Sender<Result<SendResults, HostError>>,
    },
}

/// A messaging event of the core, owned (so the driver can act on the node after it).
pub(crate) enum Owned {
    Request { handler: HandlerId, incoming: Incoming },
    Outcome { id: u64, result: Result<Bytes, HostError> },
    Ignored,
}

impl Owned {
    /// `ev` must not be `MessengerEvent::Node` (the driver handles those).
    pub(crate) fn from_event(ev: MessengerEvent<'_>) -> Owned {
        match ev {
            MessengerEvent::Request(r) => Owned::Request {
                handler: r.handler,
                incoming: Incoming {
                    peer: r.peer,
                    id: r.id,
                    parent: r.parent,
                    subject: r.subject.to_string(),
                    version: r.version.to_string(),
                    timeout_ms: r.timeout_ms,
                    body: Bytes::copy_from_slice(r.body),
                },
            },
            MessengerEvent::Outcome { id, outcome, .. } => Owned::Outcome { id, result: outcome_result(outcome) },
            // A requester cancelled: the service's work is its own business; an answer
            // sent after it is dropped (and counted) by the requester's core.
            _ => Owned::Ignored,
        }
    }
}

fn outcome_result(o: Outcome<'_>) -> Result<Bytes, HostError> {
    match o {
        Outcome::Response(b) => Ok(Bytes::copy_from_slice(b)),
        Outcome::NoResponders => Err(HostError::NoResponders),
        Outcome::Refused(code) => Err(HostError::Refused { code }),
        Outcome::Failed { code, message } => Err(HostError::Failed { code, message: message.to_string() }),
        Outcome::Timeout => Err(HostError::Timeout),
        Outcome::Cancelled => Err(HostError::Cancelled),
        Outcome::Disconnected => Err(HostError::Disconnected),
        _ => Err(HostError::Disconnected),
    }
}

struct Service {
    tx: mpsc::Sender<Incoming>,
    gen: u64,
}

/// The driver's messaging state: who waits for which request, and the services' queues.
/// Both maps are bounded by the core's tables (`max_pending`, `max_handlers`).
pub(crate) struct MsgState {
    waiting: HashMap<u64, Reply<Bytes>>,
    services: HashMap<HandlerId, Service>,
    next_gen: u64,
    serve_queue: usize,
    /// Requests refused with `Busy` for a full service queue.
    pub busy: u64,
}

impl MsgState {
    pub(crate) fn new(serve_queue: usize) -> Self {
        MsgState { waiting: HashMap::new(), services: HashMap::new(), next_gen: 0, serve_queue, busy: 0 }
    }

    pub(crate) fn command(&mut self, node: &mut CoreNode, now: Instant, c: MsgCommand) {
        match c {
            MsgCommand::Request { peer, subject, body, opts, started, reply } => {
                let mut o = RequestOptions::new().version(&opts.version);
                if let Some(t) = opts.timeout {
                    o = o.timeout(t);
                }
                if let Some(p) = opts.parent {
                    o = o.parent(p);
                }
                if let Some(p) = opts.priority {
                    o = o.priority(p);
                }
                match node.request(now, &peer, &subject, &body, o) {
                    Ok(id) => {
                        let _ = started.send(id);
                        self.waiting.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            MsgCommand::Cancel { id } => {
                // Its outcome (Cancelled) comes as an event; nobody waits for it any more.
                let _ = node.cancel(now, id);
            }
            MsgCommand::Serve { pattern, version, reply } => {
                let r = node.register(&pattern, &version).map_err(HostError::from).map(|h| {
                    let (tx, rx) = mpsc::channel(self.serve_queue);
                    self.next_gen += 1;
                    self.services.insert(h, Service { tx, gen: self.next_gen });
                    (h, self.next_gen, rx)
                });
                let _ = reply.send(r);
            }
            MsgCommand::Unserve { handler, gen } => {
                if self.services.get(&handler).is_some_and(|s| s.gen == gen) {
                    self.services.remove(&handler);
                    let _ = node.unregister(handler);
                }
            }
            MsgCommand::Respond { peer, id, answer, reply } => {
                let r = match answer {
                    Answer::Body(b) => node.respond(now, &peer, id, &b),
                    Answer::Error { code, message } => node.respond_error(now, &peer, id, code, &message),
                };
                let _ = reply.send(r.map_err(HostError::from));
            }
            MsgCommand::SendMany { peers, data, reply } => {
                let n = match &peers {
                    Some(p) => p.len(),
                    None => node.node().stats().connected,
                };
                let mut reports = vec![SendReport::EMPTY; n];
                let kind = meshlink_core::wire::kind::DATA;
                let p = Priority::Normal;
                let r = match &peers {
                    Some(list) => node.node_mut().send_many(now, list, kind, p, &data, &mut reports),
                    None => node.node_mut().send_all(now, kind, p, &data, &mut reports),
                };
                let r = r.map_err(HostError::from).map(|sum| {
                    reports.truncate(sum.reported);
                    reports.into_iter().map(|r| (r.peer, r.result.map_err(HostError::from))).collect()
                });
                let _ = reply.send(r);
            }
        }
    }

    pub(crate) fn on_event(&mut self, node: &mut CoreNode, now: Instant, ev: Owned) {
        match ev {
            Owned::Request { handler, incoming } => {
                let (peer, id) = (incoming.peer, incoming.id);
                let full = match self.services.get(&handler) {
                    Some(s) => s.tx.try_send(incoming).is_err(),
                    None => true, // unregistered while the request was in flight
                };
                if full {
                    self.busy += 1;
                    refuse_busy(node, now, &peer, id);
                }
            }
            Owned::Outcome { id, result } => {
                if let Some(w) = self.waiting.remove(&id) {
                    let _ = w.send(result);
                }
            }
            Owned::Ignored => {}
        }
    }

    /// Shutdown: every waiter and service learns the node stopped (their channels close).
    pub(crate) fn stop(&mut self) {
        for (_, w) in self.waiting.drain() {
            let _ = w.send(Err(HostError::Stopped));
        }
        self.services.clear();
    }
}

/// Refuses request `id` of `peer` with `Busy`: the host decides nothing but "my queue of
/// requests is full"; the core encodes and queues the refusal.
fn refuse_busy(node: &mut CoreNode, now: Instant, peer: &PeerId, id: u64) {
    if let Err(e) = node.refuse(now, peer, id, RefuseCode::Busy) {
        tracing::debug!("busy refusal to {}: {e:?}", peer.short());
    }
}

/// Sends a request through the driver and waits for its outcome; dropping the future
/// after the request went out cancels it.
pub(crate) async fn request(
    cmd: &mpsc::Sender<Command>,
    peer: PeerId,
    subject: String,
    body: Bytes,
    opts: RequestOpts,
) -> Result<Bytes, HostError> {
    let (started_tx, started) = oneshot::channel();
    let (tx, rx) = oneshot::channel();
    let c = MsgCommand::Request { peer, subject, body, opts, started: started_tx, reply: tx };
    cmd.send(Command::Messaging(c)).await.map_err(|_| HostError::Stopped)?;
    // The id comes first when the request went out; an error drops `started` unsent.
    let mut guard = CancelOnDrop { cmd, id: started.await.ok() };
    let r = rx.await.map_err(|_| HostError::Stopped);
    guard.id = None;
    r?
}

struct CancelOnDrop<'a> {
    cmd: &'a mpsc::Sender<Command>,
    id: Option<u64>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            // Best effort: a full command queue leaves it to time out.
            let _ = self.cmd.try_send(Command::Messaging(MsgCommand::Cancel { id }));
        }
    }
}
