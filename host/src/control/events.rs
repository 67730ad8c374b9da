//! `GET /v1/events`: Server-Sent Events.
//!
//! One subscription to the node (the pump) feeds the node table and a broadcast channel;
//! each stream reads the channel on its own task. A client that reads too slowly misses
//! events (it gets a `lagged` event saying how many) instead of slowing the node down:
//! the pump's own subscription to the node is bounded too, and a `Lagged` it gets from
//! the node is passed on to every stream as a `lagged` event.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use hyper::body::{Body, Frame};
use meshlink_core::{DisconnectReason, ErrorCode};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit};

use super::api::*;
use super::http::ServerState;
use crate::error::reason_text;
use crate::types::HostEvent;

/// Events buffered for the slowest stream before it starts missing some.
pub(crate) const BROADCAST_CAPACITY: usize = 1024;
/// A comment line this often lets proxies and clients see a live stream, and lets the
/// server notice a client that went away.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Formatted chunks waiting for the socket, per stream.
const CHUNKS: usize = 16;

#[derive(Clone)]
pub(crate) enum Pushed {
    Event(Arc<HostEvent>),
    /// The node stopped: streams end.
    Stopped,
}

/// Reads the node's events until it stops.
pub(crate) async fn pump(mut events: mpsc::Receiver<HostEvent>, state: Arc<ServerState>) {
    while let Some(ev) = events.recv().await {
        if let Ok(mut t) = state.table.lock() {
            t.observe(&ev, std::time::Instant::now());
        }
        // No stream open: the event is simply not kept.
        let _ = state.events.send(Pushed::Event(Arc::new(ev)));
    }
    state.stopped.store(true, Ordering::SeqCst);
    let _ = state.events.send(Pushed::Stopped);
}

/// A response body fed by a channel of ready-made chunks.
pub(crate) struct SseBody(pub(crate) mpsc::Receiver<Bytes>);

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// Subscribes and starts the stream's task. `None` if the node has stopped.
pub(crate) fn open(state: &Arc<ServerState>, permit: OwnedSemaphorePermit) -> Option<SseBody> {
    // Subscribe first, then check: a stop after this point arrives as `Stopped`.
    let rx = state.events.subscribe();
    if state.stopped.load(Ordering::SeqCst) {
        return None;
    }
    let (tx, body) = mpsc::channel(CHUNKS);
    let ready = frame("ready", &ReadyEvent { node: state.node.peer_id().to_string() });
    tokio::spawn(stream(rx, tx, ready, state.clone(), permit));
    Some(SseBody(body))
}

/// One stream; `_permit` is its place under the stream cap, given back when it ends.
async fn stream(
    mut rx: broadcast::Receiver<Pushed>,
    tx: mpsc::Sender<Bytes>,
    ready: Bytes,
    state: Arc<ServerState>,
    _permit: OwnedSemaphorePermit,
) {
    state.counters.event_streams.fetch_add(1, Ordering::Relaxed);
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let mut next = Some(ready);
    while let Some(chunk) = next.take() {
        // The client went away (hyper dropped the body): stop.
        if tx.send(chunk).await.is_err() {
            break;
        }
        next = tokio::select! {
            r = rx.recv() => match r {
                Ok(Pushed::Event(ev)) => {
                    if let HostEvent::Lagged { dropped } = *ev {
                        state.counters.events_lagged.fetch_add(dropped, Ordering::Relaxed); // the pump's own lag
                    }
                    Some(format(&ev))
                }
                Ok(Pushed::Stopped) | Err(broadcast::error::RecvError::Closed) => None,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    state.counters.events_lagged.fetch_add(missed, Ordering::Relaxed);
                    Some(frame("lagged", &LaggedEvent { missed }))
                }
            },
            _ = keepalive.tick() => Some(Bytes::from_static(b": keepalive\n\n")),
            _ = tx.closed() => None,
        };
    }
    state.counters.event_streams.fetch_sub(1, Ordering::Relaxed);
}

/// One SSE event: `event: NAME`, `data: JSON` (one line: serde_json never breaks lines).
pub(crate) fn frame(name: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

fn format(ev: &HostEvent) -> Bytes {
    match ev {
        HostEvent::Connected { peer, addr, transport, hello, quality, .. } => frame(
            "connected",
            &ConnectedEvent {
                peer: peer.to_string(),
                name: hello.name.as_str().to_string(),
                addr: addr.to_string(),
                transport: transport.to_string(),
                quality: quality.into(),
                hello: hello.as_ref().into(),
            },
        ),
        HostEvent::Message { peer, data } => frame(
            "message",
            &MessageEvent {
                peer: peer.to_string(),
                len: data.len(),
                data_b64: base64::engine::general_purpose::STANDARD.encode(data),
                data: std::str::from_utf8(data).ok().map(str::to_string),
            },
        ),
        // The pump itself fell behind the node: its streams missed these too.
        HostEvent::Lagged { dropped } => frame("lagged", &LaggedEvent { missed: *dropped }),
        HostEvent::Quality { peer, quality } => {
            frame("quality", &QualityEvent { peer: peer.to_string(), quality: quality.into() })
        }
        HostEvent::RemoteError { peer, code } => frame(
            "remote_error",
            &RemoteErrorEvent { peer: peer.to_string(), code: error_code_name(code).into(), code_num: code.to_u16() },
        ),
        HostEvent::Disconnected { peer, addr, transport, was_connected, reason, .. } => frame(
            "disconnected",
            &DisconnectedEvent {
                peer: peer.map(|p| p.to_string()),
                addr: addr.to_string(),
                transport: transport.to_string(),
                was_connected: *was_connected,
                reason_kind: match reason {
                    DisconnectReason::Local(_) => "local",
                    DisconnectReason::Remote(_) => "remote",
                    DisconnectReason::TransportClosed => "transport_closed",
                    DisconnectReason::Timeout => "timeout",
                    DisconnectReason::Error(_) => "error",
                    _ => "other",
                }
                .into(),
                reason: reason_text(reason),
            },
        ),
    }
}

fn error_code_name(c: &ErrorCode) -> &'static str {
    match c {
        ErrorCode::UnknownKind => "unknown_kind",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::Malformed => "malformed",
        ErrorCode::Busy => "busy",
        _ => "other",
    }
}
