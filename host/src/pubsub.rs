//! Publish/subscribe for host users (issue 14, "The host"; spec §15).
//!
//! The protocol (subjects, wildcards, interest flooding, the seen-cache, reverse-path
//! forwarding, acknowledgements) is the core's
//! [`Messenger`](meshlink_core::messaging::Messenger), which the driver owns; this module
//! moves publications from the driver to the tasks that read them.
//!
//! - [`HostHandle::subscribe`](crate::HostHandle::subscribe) returns a [`Subscription`],
//!   a [`Stream`](futures_util::Stream) of [`SubEvent`]s. Its queue holds
//!   `messaging.sub_queue` events; a publication that finds it full is dropped (the
//!   newest goes, the driver never waits) and counted, and the reader gets
//!   [`SubEvent::Lagged`] once it has drained the queue. Dropping it unsubscribes.
//! - [`Subscription::active`] resolves once a neighbour acknowledged the interest: from
//!   then on every publication that neighbour sees reaches this subscription.
//! - [`HostHandle::publish`](crate::HostHandle::publish) sends to every neighbour whose
//!   interest matches. Like the core (NATS `no_echo`), this node's own subscriptions do
//!   not get its own publications.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use meshlink_core::messaging::{MessengerEvent, PublishReport, SubId};
use meshlink_core::{Instant, PeerId, Priority};
use tokio::sync::{mpsc, watch};

use crate::driver::{Command, CoreNode, Reply};
use crate::error::HostError;

/// One publication received by a [`Subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Publication {
    pub subject: String,
    /// The node that published it.
    pub origin: PeerId,
    /// The neighbour it came from (the last hop).
    pub from: PeerId,
    /// The origin's sequence number for it.
    pub seq: u64,
    pub body: Bytes,
}

/// What a [`Subscription`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubEvent {
    Message(Publication),
    /// Neighbour `peer` acknowledged the interest (best effort: not queued when the queue
    /// is full; [`Subscription::active`] does not miss it).
    Active {
        peer: PeerId,
    },
    /// `dropped` publications did not fit in the queue since the last `Lagged`.
    Lagged {
        dropped: u64,
    },
}

/// The publications of one subscription ([`HostHandle::subscribe`](crate::HostHandle::subscribe)),
/// in arrival order. Dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<SubEvent>,
    lost: Arc<AtomicU64>,
    active: watch::Receiver<Option<PeerId>>,
    sub: SubId,
    cmd: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("sub", &self.sub).finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next event; `None` once the node has stopped.
    pub async fn next(&mut self) -> Option<SubEvent> {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }

    /// Waits until a neighbour holds this interest and returns it (`None`: the node
    /// stopped). With no neighbour it waits for the first one to acknowledge.
    pub async fn active(&mut self) -> Option<PeerId> {
        let v = self.active.wait_for(|v| v.is_some()).await.ok()?;
        *v
    }

    pub fn id(&self) -> SubId {
        self.sub
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<SubEvent>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(e)) => Poll::Ready(Some(e)),
            // Drops happen only at a full queue, so a drained queue is where the gap is.
            other => match self.lost.swap(0, Ordering::Relaxed) {
                0 => other,
                dropped => Poll::Ready(Some(SubEvent::Lagged { dropped })),
            },
        }
    }
}

impl futures_util::Stream for Subscription {
    type Item = SubEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SubEvent>> {
        self.poll(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let c = Command::PubSub(PsCommand::Unsubscribe { sub: self.sub });
        // The command queue is bounded: when it is full, a task sends it later (the
        // SubId's generation keeps a late one from ending a newer subscription).
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

/// Pub/sub commands for the driver.
pub(crate) enum PsCommand {
    Subscribe { pattern: String, priority: Priority, reply: Reply<Parts> },
    Unsubscribe { sub: SubId },
    Publish { subject: String, body: Bytes, reply: Reply<PublishReport> },
}

/// What the driver hands back for a new subscription.
pub(crate) type Parts = (SubId, mpsc::Receiver<SubEvent>, Arc<AtomicU64>, watch::Receiver<Option<PeerId>>);

struct Sink {
    tx: mpsc::Sender<SubEvent>,
    lost: Arc<AtomicU64>,
    active: watch::Sender<Option<PeerId>>,
}

/// The host's pub/sub counters (in [`HostStats`](crate::HostStats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PsHostStats {
    /// Publications dropped at a full subscription queue of this host.
    pub lagged: u64,
    /// SlowConsumer notices about our publications (a subscriber somewhere dropped some).
    pub slow_consumer_notices: u64,
    /// Neighbours that kept only part of our interest set (their limit).
    pub interest_limited: u64,
}

/// The driver's pub/sub state: the queue of each subscription (bounded by the core's
/// subscription table, `max_subs`).
pub(crate) struct PsState {
    subs: HashMap<SubId, Sink>,
    queue: usize,
    pub stats: PsHostStats,
}

impl PsState {
    pub(crate) fn new(queue: usize) -> Self {
        PsState { subs: HashMap::new(), queue: queue.max(1), stats: PsHostStats::default() }
    }

    pub(crate) fn command(&mut self, node: &mut CoreNode, now: Instant, c: PsCommand) {
        match c {
            PsCommand::Subscribe { pattern, priority, reply } => {
                let r = node.subscribe(now, &pattern, priority).map_err(HostError::from).map(|sub| {
                    let (tx, rx) = mpsc::channel(self.queue);
                    let lost = Arc::new(AtomicU64::new(0));
                    let (active, active_rx) = watch::channel(None);
                    self.subs.insert(sub, Sink { tx, lost: lost.clone(), active });
                    (sub, rx, lost, active_rx)
                });
                if let Err(Ok((sub, ..))) = reply.send(r) {
                    // The caller went away before it got its Subscription.
                    self.subs.remove(&sub);
                    let _ = node.unsubscribe(now, sub);
                }
            }
            PsCommand::Unsubscribe { sub } => {
                if self.subs.remove(&sub).is_some() {
                    let _ = node.unsubscribe(now, sub);
                }
            }
            PsCommand::Publish { subject, body, reply } => {
                let _ = reply.send(node.publish(now, &subject, &body).map_err(HostError::from));
            }
        }
    }

    /// Takes a pub/sub event of the core (the driver routes the others elsewhere).
    pub(crate) fn on_event(&mut self, ev: MessengerEvent<'_>) {
        match ev {
            MessengerEvent::Publication { sub, origin, from, subject, seq, body } => {
                let Some(s) = self.subs.get(&sub) else { return };
                let p =
                    Publication { subject: subject.to_string(), origin, from, seq, body: Bytes::copy_from_slice(body) };
                if let Err(mpsc::error::TrySendError::Full(_)) = s.tx.try_send(SubEvent::Message(p)) {
                    s.lost.fetch_add(1, Ordering::Relaxed);
                    self.stats.lagged += 1;
                }
            }
            MessengerEvent::SubscribeActive { sub, peer } => {
                if let Some(s) = self.subs.get(&sub) {
                    s.active.send_if_modified(|v| v.replace(peer).is_none());
                    let _ = s.tx.try_send(SubEvent::Active { peer });
                }
            }
            MessengerEvent::SlowConsumer { subscriber, subject, seq, dropped } => {
                self.stats.slow_consumer_notices += 1;
                tracing::info!(
                    "slow consumer {} dropped {dropped} on {subject:?} (up to seq {seq})",
                    subscriber.short()
                );
            }
            MessengerEvent::InterestLimited { peer, accepted } => {
                self.stats.interest_limited += 1;
                tracing::warn!("{} kept only {accepted} entries of our interest set", peer.short());
            }
            _ => {}
        }
    }

    /// Shutdown: every subscription's stream ends.
    pub(crate) fn stop(&mut self) {
        self.subs.clear();
    }
}

/// Subscribes through the driver.
pub(crate) async fn subscribe(
    cmd: &mpsc::Sender<Command>,
    pattern: String,
    priority: Priority,
) -> Result<Subscription, HostError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    cmd.send(Command::PubSub(PsCommand::Subscribe { pattern, priority, reply: tx }))
        .await
        .map_err(|_| HostError::Stopped)?;
    let (sub, rx, lost, active) = rx.await.map_err(|_| HostError::Stopped)??;
    Ok(Subscription { rx, lost, active, sub, cmd: cmd.clone() })
}

/// Publishes through the driver.
pub(crate) async fn publish(
    cmd: &mpsc::Sender<Command>,
    subject: String,
    body: Bytes,
) -> Result<PublishReport, HostError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    cmd.send(Command::PubSub(PsCommand::Publish { subject, body, reply: tx })).await.map_err(|_| HostError::Stopped)?;
    rx.await.map_err(|_| HostError::Stopped)?
}
