//! One function per endpoint. Each turns a request into a node command and its answer
//! into JSON; the node does the work (no protocol logic here).

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use meshlink_core::PeerId;

use super::api::*;
use super::events;
use super::http::{json, read_json, respond, ApiError, Body, Route, ServerState};
use crate::driver::HostStats;
use crate::types::PeerSummary;

/// The OpenAPI 3.0 document, served as is.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

pub(crate) async fn dispatch(
    s: &Arc<ServerState>,
    route: Route,
    param: Option<&str>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    match route {
        Route::Node => ok(&node_info(s).await?),
        Route::Peers => {
            let peers = s.node.peers().await?;
            ok(&PeersJson { peers: peers.iter().map(PeerJson::from).collect() })
        }
        Route::PeerQuality => {
            let peer = peer_id(param.unwrap_or_default())?;
            let q = s.node.quality(peer).await?.ok_or_else(|| ApiError::unknown_peer(peer))?;
            ok(&PeerQualityJson { peer: peer.to_string(), quality: (&q).into() })
        }
        Route::Nodes => ok(&NodesJson { nodes: nodes(s).await? }),
        Route::NodeOne => {
            let peer = peer_id(param.unwrap_or_default())?;
            let id = peer.to_string();
            let node = nodes(s).await?.into_iter().find(|n| n.id == id);
            let node = node
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_peer", format!("no node {peer} known")))?;
            ok(&node)
        }
        Route::Connect => {
            let r: ConnectRequest = read_json(req, s.max_body).await?;
            let expect = r.expect.as_deref().map(peer_id).transpose()?;
            let p = s.node.connect(r.url.trim(), expect).await?;
            ok(&PeerJson::from(&p))
        }
        Route::Disconnect => {
            let r: PeerRequest = read_json(req, s.max_body).await?;
            let peer = peer_id(&r.peer)?;
            s.node.disconnect(peer).await.map_err(|e| not_found_as_unknown(e, peer))?;
            ok(&DisconnectedJson { peer: peer.to_string(), disconnected: true })
        }
        Route::Send => {
            let r: SendRequest = read_json(req, s.max_body).await?;
            let peer = peer_id(&r.peer)?;
            let data = match (r.data, r.data_b64) {
                (Some(text), None) => text.into_bytes(),
                (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| ApiError::bad_request("invalid_base64", format!("data_b64 is not base64: {e}")))?,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        "give exactly one of \"data\" (UTF-8 text) and \"data_b64\" (base64)",
                    ))
                }
            };
            let len = data.len();
            s.node.send(peer, data).await.map_err(|e| not_found_as_unknown(e, peer))?;
            ok(&SentJson { peer: peer.to_string(), len })
        }
        Route::Threat => {
            let r: ThreatRequest = read_json(req, s.max_body).await?;
            let peer = peer_id(&r.peer)?;
            if !(0.0..=1.0).contains(&r.score) {
                return Err(ApiError::bad_request("invalid_score", format!("score must be 0..=1, not {}", r.score)));
            }
            s.node.set_threat_score(peer, r.score).await?;
            if let Ok(mut t) = s.table.lock() {
                t.set_threat(peer, r.score, std::time::Instant::now());
            }
            let connected = s.node.peers().await?.iter().any(|p| p.peer == peer);
            ok(&ThreatJson { peer: peer.to_string(), score: r.score, connected })
        }
        Route::Metrics => {
            let stats = s.node.stats().await?;
            ok(&MetricsJson { node: (&stats).into(), control: control_stats(s) })
        }
        Route::Prometheus => {
            let (stats, peers) = (s.node.stats().await?, s.node.peers().await?);
            Ok(respond(StatusCode::OK, "text/plain; version=0.0.4", prometheus(&stats, &peers, &control_stats(s))))
        }
        Route::Events => {
            let body = events::open(s).ok_or_else(|| {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "node_stopped", "the node has stopped")
            })?;
            let mut r = Response::new(Body::Right(body));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
        Route::OpenApi => Ok(respond(StatusCode::OK, "application/json", OPENAPI)),
    }
}

fn ok(body: &impl serde::Serialize) -> Result<Response<Body>, ApiError> {
    Ok(json(StatusCode::OK, body))
}

fn peer_id(s: &str) -> Result<PeerId, ApiError> {
    s.trim().parse::<PeerId>().map_err(|e| {
        ApiError::bad_request("invalid_peer_id", format!("{s:?} is not a peer id (52 base32 characters): {e}"))
    })
}

/// The core says `UnknownPeer` without naming it; name it.
fn not_found_as_unknown(e: crate::HostError, peer: PeerId) -> ApiError {
    match e {
        crate::HostError::Core(meshlink_core::Error::UnknownPeer) => ApiError::unknown_peer(peer),
        e => e.into(),
    }
}

async fn nodes(s: &ServerState) -> Result<Vec<NodeJson>, ApiError> {
    let live = s.node.peers().await?;
    let mut t = s.table.lock().map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "poisoned"))?;
    Ok(t.snapshot(&live, std::time::Instant::now()))
}

async fn node_info(s: &ServerState) -> Result<NodeInfoJson, ApiError> {
    let stats = s.node.stats().await?;
    let l = s.node.local_addrs();
    Ok(NodeInfoJson {
        id: s.node.peer_id().to_string(),
        name: s.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        listen: l.into(),
        urls: l.urls(),
        control: s.url.clone(),
        uptime_ms: s.started.elapsed().as_millis() as u64,
        stats: (&stats).into(),
    })
}

fn control_stats(s: &ServerState) -> ControlStatsJson {
    let c = &s.counters;
    ControlStatsJson {
        requests: c.requests.load(Ordering::Relaxed),
        unauthorized: c.unauthorized.load(Ordering::Relaxed),
        event_streams: c.event_streams.load(Ordering::Relaxed),
        events_lagged: c.events_lagged.load(Ordering::Relaxed),
    }
}

/// Prometheus text exposition format 0.0.4: node counters, then per-peer gauges.
fn prometheus(stats: &HostStats, peers: &[PeerSummary], control: &ControlStatsJson) -> String {
    let n = &stats.node;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = write!(out, "# HELP meshlink_{name} {help}\n# TYPE meshlink_{name} {kind}\nmeshlink_{name} {v}\n");
    };
    metric("sessions", "gauge", "Sessions, connected plus handshaking.", n.sessions as u64);
    metric("connected_peers", "gauge", "Connected peers.", n.connected as u64);
    metric("half_open", "gauge", "Handshakes in progress.", n.half_open as u64);
    metric("handshakes_completed_total", "counter", "Handshakes completed.", n.handshakes_completed);
    metric("handshakes_failed_total", "counter", "Handshakes failed.", n.handshakes_failed);
    metric("records_dropped_total", "counter", "Records dropped (malformed, replayed, unknown).", n.records_dropped);
    metric("rejects_sent_total", "counter", "Reject records sent.", n.rejects_sent);
    metric("bytes_in_total", "counter", "Application bytes received.", n.bytes_in);
    metric("bytes_out_total", "counter", "Application bytes sent.", n.bytes_out);
    metric("messages_in_total", "counter", "Messages received.", n.msgs_in);
    metric("messages_out_total", "counter", "Messages sent.", n.msgs_out);
    metric("stream_connections", "gauge", "Open TCP and WebSocket connections.", stats.stream_connections as u64);
    metric("udp_send_errors_total", "counter", "Datagrams the kernel did not take.", stats.udp_send_errors);
    metric("control_requests_total", "counter", "Control API requests.", control.requests);
    metric("control_unauthorized_total", "counter", "Control API requests without the token.", control.unauthorized);
    metric("control_event_streams", "gauge", "Open control API event streams.", control.event_streams);
    type Get = fn(&PeerSummary) -> Option<f64>;
    let gauges: [(&str, &str, Get); 6] = [
        ("peer_rtt_seconds", "Smoothed round-trip time.", |p| p.quality.rtt_us.map(|us| us as f64 / 1e6)),
        ("peer_jitter_seconds", "RTT jitter.", |p| Some(p.quality.jitter_us as f64 / 1e6)),
        ("peer_loss_ratio", "Ping loss over the last 64 pings.", |p| Some(f64::from(p.quality.loss))),
        ("peer_quality_score", "Link quality score, 0..1.", |p| Some(f64::from(p.quality.score))),
        ("peer_threat_score", "Threat score, 0..1.", |p| Some(f64::from(p.threat))),
        ("peer_bytes_in_total", "Application bytes received from the peer.", |p| {
            Some(p.quality.counters.bytes_in as f64)
        }),
    ];
    for (name, help, get) in gauges {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let _ = write!(out, "# HELP meshlink_{name} {help}\n# TYPE meshlink_{name} {kind}\n");
        for p in peers {
            if let Some(v) = get(p) {
                let _ = writeln!(
                    out,
                    "meshlink_{name}{{peer=\"{}\",name=\"{}\",transport=\"{}\"}} {v}",
                    p.peer,
                    label(&p.name),
                    p.transport
                );
            }
        }
    }
    out
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
