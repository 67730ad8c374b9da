//! `POST /v1/subscribe`: a subscription whose publications stream out as Server-Sent
//! Events (`subscribed`, `active`, `message`, `lagged`).
//!
//! Bounded end to end: the stream's socket buffer is `CHUNKS` frames; while the client
//! does not read, the subscription's own queue (`messaging.sub_queue`) fills and further
//! publications are dropped and reported as `lagged`. The driver never waits. A client
//! that goes away unsubscribes.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::api::{ActiveEvent, PublicationEvent, SubLaggedEvent, SubscribedEvent};
use super::events::{frame, SseBody};
use super::http::ServerState;
use crate::pubsub::{SubEvent, Subscription};

const CHUNKS: usize = 16;
const KEEPALIVE: Duration = Duration::from_secs(15);

pub(crate) fn open(
    state: &Arc<ServerState>,
    permit: OwnedSemaphorePermit,
    sub: Subscription,
    pattern: &str,
) -> SseBody {
    let (tx, body) = mpsc::channel(CHUNKS);
    let node = state.node.peer_id().to_string();
    let ready = frame("subscribed", &SubscribedEvent { node, pattern: pattern.into() });
    tokio::spawn(stream(sub, tx, ready, permit));
    SseBody(body)
}

async fn stream(mut sub: Subscription, tx: mpsc::Sender<Bytes>, ready: Bytes, _permit: OwnedSemaphorePermit) {
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let mut next = Some(ready);
    while let Some(chunk) = next.take() {
        if tx.send(chunk).await.is_err() {
            break; // the client went away: dropping `sub` unsubscribes
        }
        next = tokio::select! {
            e = sub.next() => e.map(|e| format(&e)),
            _ = keepalive.tick() => Some(Bytes::from_static(b": keepalive\n\n")),
            _ = tx.closed() => None,
        };
    }
}

fn format(e: &SubEvent) -> Bytes {
    match e {
        SubEvent::Message(p) => frame(
            "message",
            &PublicationEvent {
                subject: p.subject.clone(),
                origin: p.origin.to_string(),
                seq: p.seq,
                len: p.body.len(),
                data_b64: base64::engine::general_purpose::STANDARD.encode(&p.body),
                data: std::str::from_utf8(&p.body).ok().map(str::to_string),
            },
        ),
        SubEvent::Active { peer } => frame("active", &ActiveEvent { peer: peer.to_string() }),
        SubEvent::Lagged { dropped } => frame("lagged", &SubLaggedEvent { dropped: *dropped }),
        #[allow(unreachable_patterns)]
        _ => Bytes::from_static(b": unknown\n\n"),
    }
}
