//! `POST /v1/serve`: a registered handler whose requests stream out as Server-Sent Events;
//! the client answers each with `POST /v1/respond`.
//!
//! Bounded end to end: the stream's socket buffer is `CHUNKS` frames; while the client
//! does not read, the handler's own queue (`messaging.serve_queue`) fills and the node
//! refuses further requests with `Busy`. A client that stops reading costs only its own
//! requesters; one that goes away unregisters the handler.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::api::{RequestEvent, ServingEvent};
use super::events::{frame, SseBody};
use super::http::ServerState;
use crate::messaging::{Request, Requests};

const CHUNKS: usize = 16;
const KEEPALIVE: Duration = Duration::from_secs(15);

pub(crate) fn open(
    state: &Arc<ServerState>,
    permit: OwnedSemaphorePermit,
    requests: Requests,
    pattern: &str,
    version: &str,
) -> SseBody {
    let (tx, body) = mpsc::channel(CHUNKS);
    let node = state.node.peer_id().to_string();
    let ready = frame("serving", &ServingEvent { node, pattern: pattern.into(), version: version.into() });
    tokio::spawn(stream(requests, tx, ready, permit));
    SseBody(body)
}

async fn stream(mut requests: Requests, tx: mpsc::Sender<Bytes>, ready: Bytes, _permit: OwnedSemaphorePermit) {
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let mut next = Some(ready);
    while let Some(chunk) = next.take() {
        if tx.send(chunk).await.is_err() {
            break; // the client went away: dropping `requests` unregisters the handler
        }
        next = tokio::select! {
            r = requests.next() => r.map(|r| format(&r)),
            _ = keepalive.tick() => Some(Bytes::from_static(b": keepalive\n\n")),
            _ = tx.closed() => None,
        };
    }
}

fn format(r: &Request) -> Bytes {
    frame(
        "request",
        &RequestEvent {
            peer: r.peer.to_string(),
            id: r.id,
            parent: r.parent,
            subject: r.subject.clone(),
            version: r.version.clone(),
            timeout_ms: r.timeout_ms,
            len: r.body.len(),
            data_b64: base64::engine::general_purpose::STANDARD.encode(&r.body),
            data: std::str::from_utf8(&r.body).ok().map(str::to_string),
        },
    )
}
