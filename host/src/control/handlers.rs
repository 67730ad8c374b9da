//! One function per endpoint. Each turns a request into a node command and its answer
//! into JSON; the node does the work (no protocol logic here).

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use meshlink_core::PeerId;

use super::api::*;
use super::events;
use super::http::{json, parse_json, respond, ApiError, Body, Route, ServerState};
use crate::driver::HostStats;
use crate::types::PeerSummary;

/// The OpenAPI 3.0 document, served as is.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

pub(crate) async fn dispatch(
    s: &Arc<ServerState>,
    route: Route,
    param: Option<&str>,
    body: Option<Bytes>,
) -> Result<Response<Body>, ApiError> {
    let body = body.unwrap_or_default();
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
            let r: ConnectRequest = parse_json(&body)?;
            check_url(&r.url)?;
            let expect = r.expect.as_deref().map(peer_id).transpose()?;
            let p = s.node.connect(&r.url, expect).await?;
            ok(&PeerJson::from(&p))
        }
        Route::Disconnect => {
            let r: PeerRequest = parse_json(&body)?;
            let peer = peer_id(&r.peer)?;
            s.node.disconnect(peer).await.map_err(|e| not_found_as_unknown(e, peer))?;
            ok(&DisconnectedJson { peer: peer.to_string(), disconnected: true })
        }
        Route::Send => {
            let r: SendRequest = parse_json(&body)?;
            let data = payload(r.data, r.data_b64, "data")?;
            let len = data.len();
            let many = match (r.peer, r.to, r.all) {
                (Some(p), None, None) => {
                    let peer = peer_id(&p)?;
                    s.node.send(peer, data).await.map_err(|e| not_found_as_unknown(e, peer))?;
                    return ok(&SentJson { peer: peer.to_string(), len });
                }
                (None, Some(to), None) => {
                    if to.is_empty() || to.len() > SEND_TO_MAX {
                        return Err(ApiError::bad_request(
                            "invalid_request",
                            format!("\"to\" must list 1..={SEND_TO_MAX} peers, not {}", to.len()),
                        ));
                    }
                    let peers = to.iter().map(|p| peer_id(p)).collect::<Result<Vec<_>, _>>()?;
                    s.node.send_many(&peers, data).await?
                }
                (None, None, Some(true)) => s.node.send_all(data).await?,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        "give exactly one of \"peer\", \"to\" (a list of peers) and \"all\": true",
                    ))
                }
            };
            let results = many
                .into_iter()
                .map(|(peer, r)| SendResultJson {
                    peer: peer.to_string(),
                    queued: r.is_ok(),
                    error: r.err().map(|e| {
                        let e = not_found_as_unknown(e, peer);
                        ErrorBody { code: e.code.into(), message: e.message }
                    }),
                })
                .collect();
            ok(&SentManyJson { len, results })
        }
        Route::Request => {
            let r: RequestRequest = parse_json(&body)?;
            let peer = peer_id(&r.peer)?;
            check_subject(&r.subject, false)?;
            let version = r.version.unwrap_or_default();
            check_version(&version)?;
            let data = payload(r.data, r.data_b64, "data")?;
            let mut opts = crate::messaging::RequestOpts::new().version(version);
            if let Some(t) = r.timeout_ms {
                if t == 0 {
                    return Err(ApiError::bad_request("invalid_request", "timeout_ms must be at least 1"));
                }
                opts = opts.timeout(std::time::Duration::from_millis(u64::from(t)));
            }
            let answer =
                s.node.request(peer, &r.subject, data, opts).await.map_err(|e| not_found_as_unknown(e, peer))?;
            ok(&ReplyJson {
                peer: peer.to_string(),
                len: answer.len(),
                data_b64: BASE64.encode(&answer),
                data: std::str::from_utf8(&answer).ok().map(str::to_string),
            })
        }
        Route::Call => {
            let r: CallRequest = parse_json(&body)?;
            let peer = peer_id(&r.peer)?;
            crate::rpc::check_name(&r.function).map_err(|e| {
                ApiError::bad_request("invalid_function", format!("{:?} is not a function name: {e}", r.function))
            })?;
            let version = r.version.unwrap_or_default();
            check_version(&version)?;
            let mut opts = crate::messaging::RequestOpts::new().version(version);
            if let Some(t) = r.timeout_ms {
                if t == 0 {
                    return Err(ApiError::bad_request("invalid_request", "timeout_ms must be at least 1"));
                }
                opts = opts.timeout(std::time::Duration::from_millis(u64::from(t)));
            }
            let result =
                s.node.call(peer, &r.function, r.args, opts).await.map_err(|e| not_found_as_unknown(e, peer))?;
            ok(&CallResultJson { result })
        }
        Route::Funcs => {
            let peer = peer_id(param.unwrap_or_default())?;
            let functions = s.node.funcs(peer).await.map_err(|e| not_found_as_unknown(e, peer))?;
            ok(&FuncsJson { functions })
        }
        Route::Serve => {
            let r: ServeRequest = parse_json(&body)?;
            check_subject(&r.pattern, true)?;
            let version = r.version.unwrap_or_default();
            check_version(&version)?;
            let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_streams",
                    format!("{} event streams are open already", s.limits.max_streams),
                )
            })?;
            let requests = s.node.serve(&r.pattern, &version).await?;
            let body = super::serve::open(s, permit, requests, &r.pattern, &version);
            let mut r = Response::new(Body::Right(body));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
        Route::Publish => {
            let r: PublishRequest = parse_json(&body)?;
            check_subject(&r.subject, false)?;
            let data = payload(r.data, r.data_b64, "data")?;
            let rep = s.node.publish(&r.subject, data).await?;
            ok(&PublishedJson { seq: rep.seq, queued: rep.queued, failed: rep.failed })
        }
        Route::Subscribe => {
            let r: SubscribeRequest = parse_json(&body)?;
            check_pattern(&r.pattern)?;
            let priority = match r.priority.as_deref() {
                None | Some("normal") => meshlink_core::Priority::Normal,
                Some("high") => meshlink_core::Priority::High,
                Some("low") => meshlink_core::Priority::Low,
                Some(p) => {
                    return Err(ApiError::bad_request(
                        "invalid_priority",
                        format!("{p:?} is not a priority (high, normal or low)"),
                    ))
                }
            };
            let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_streams",
                    format!("{} event streams are open already", s.limits.max_streams),
                )
            })?;
            let sub = s.node.subscribe(&r.pattern, priority).await?;
            let body = super::subscribe::open(s, permit, sub, &r.pattern);
            let mut r = Response::new(Body::Right(body));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
        Route::Respond => {
            let r: RespondRequest = parse_json(&body)?;
            let peer = peer_id(&r.peer)?;
            let answer = match (r.data, r.data_b64, r.error) {
                (None, None, Some(e)) => {
                    if e.code < meshlink_core::messaging::request::APP_CODE_MIN {
                        return Err(ApiError::bad_request(
                            "invalid_error_code",
                            format!("error.code {} is the protocol's; handler codes are 256..=65535", e.code),
                        ));
                    }
                    let max = meshlink_core::messaging::request::MESSAGE_MAX;
                    if e.message.len() > max || !e.message.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                        return Err(ApiError::bad_request(
                            "invalid_request",
                            format!("error.message must be at most {max} printable ASCII characters"),
                        ));
                    }
                    crate::messaging::Answer::Error { code: e.code, message: e.message }
                }
                (d, b, None) => crate::messaging::Answer::Body(payload(d, b, "data")?.into()),
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        "give exactly one of \"data\", \"data_b64\" and \"error\"",
                    ))
                }
            };
            s.node.respond_to(peer, r.id, answer).await.map_err(|e| not_found_as_unknown(e, peer))?;
            ok(&RespondedJson { peer: peer.to_string(), id: r.id, responded: true })
        }
        Route::Threat => {
            let r: ThreatRequest = parse_json(&body)?;
            let peer = peer_id(&r.peer)?;
            // Checked before narrowing to f32: 1.00000001 is out of range, not 1.0.
            if !(0.0..=1.0).contains(&r.score) {
                return Err(ApiError::bad_request("invalid_score", format!("score must be 0..=1, not {}", r.score)));
            }
            let score = r.score as f32;
            let connected = set_threat(s, peer, score).await?;
            ok(&ThreatJson { peer: peer.to_string(), score, connected })
        }
        Route::Block => {
            let r: PeerRequest = parse_json(&body)?;
            let peer = peer_id(&r.peer)?;
            let was_connected = s.node.peers().await?.iter().any(|p| p.peer == peer);
            set_threat(s, peer, 1.0).await?;
            // Under the `refuse` policy the session stays: close it too.
            match s.node.disconnect(peer).await {
                Ok(()) | Err(crate::HostError::Core(meshlink_core::Error::UnknownPeer)) => {}
                Err(e) => return Err(e.into()),
            }
            ok(&BlockedJson { peer: peer.to_string(), blocked: true, was_connected })
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
            let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_streams",
                    format!("{} event streams are open already", s.limits.max_streams),
                )
            })?;
            let body = events::open(s, permit).ok_or_else(|| {
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

/// The most peers `POST /v1/send` takes in `to` (the document's `maxItems`).
const SEND_TO_MAX: usize = 1024;

/// A message body: exactly one of `data` (UTF-8 text) and `data_b64` (base64).
fn payload(text: Option<String>, b64: Option<String>, name: &str) -> Result<Vec<u8>, ApiError> {
    match (text, b64) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(b64)) => BASE64
            .decode(b64)
            .map_err(|e| ApiError::bad_request("invalid_base64", format!("{name}_b64 is not base64: {e}"))),
        _ => Err(ApiError::bad_request(
            "invalid_request",
            format!("give exactly one of \"{name}\" (UTF-8 text) and \"{name}_b64\" (base64)"),
        )),
    }
}

/// A subject (literal) or pattern, as the core checks it, before anything is sent.
fn check_subject(s: &str, pattern: bool) -> Result<(), ApiError> {
    use meshlink_core::messaging::subject;
    let r = if pattern { subject::validate_pattern(s).map(|_| ()) } else { subject::validate_subject(s) };
    r.map_err(|e| ApiError::bad_request("invalid_subject", format!("{s:?} is not a valid subject: {e}")))
}

/// A subscription pattern, as the core checks it.
fn check_pattern(s: &str) -> Result<(), ApiError> {
    meshlink_core::messaging::subject::validate_pattern(s)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request("invalid_pattern", format!("{s:?} is not a valid pattern: {e}")))
}

fn check_version(v: &str) -> Result<(), ApiError> {
    meshlink_core::messaging::request::parse_version(v).map(|_| ()).map_err(|_| {
        ApiError::bad_request(
            "invalid_version",
            format!("{v:?} is not a version (major[.minor[.patch]][-pre][+build])"),
        )
    })
}

fn ok(body: &impl serde::Serialize) -> Result<Response<Body>, ApiError> {
    Ok(json(StatusCode::OK, body))
}

/// Standard base64 with padding. Non-zero trailing bits (`AB==`) are taken: the
/// document's pattern allows them, so the server must too.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// A peer id exactly as the document's pattern says (no surrounding blanks).
fn peer_id(s: &str) -> Result<PeerId, ApiError> {
    s.parse::<PeerId>().map_err(|e| {
        ApiError::bad_request("invalid_peer_id", format!("{s:?} is not a peer id (52 base32 characters): {e}"))
    })
}

/// The document's `PeerUrl` pattern, checked by hand, so that every URL the schema
/// allows parses and every other one is a 400 (the URL parser itself is more lenient:
/// upper-case schemes, any host characters).
pub(crate) fn check_url(url: &str) -> Result<(), ApiError> {
    url_shape(url).map_err(|why| crate::HostError::InvalidUrl { url: url.to_string(), why: why.to_string() }.into())
}

fn url_shape(url: &str) -> Result<(), &'static str> {
    if url.len() > URL_MAX {
        return Err("longer than 300 characters");
    }
    let (scheme, rest) = url.split_once("://").ok_or("expected scheme://host:port")?;
    let takes_path = match scheme {
        "tcp" | "udp" => false,
        "ws" | "wss" => true,
        _ => return Err("scheme must be tcp, ws, wss or udp (lower case)"),
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if !path.is_empty() && !takes_path {
        return Err("only ws:// and wss:// addresses take a path");
    }
    if !path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~/-".contains(&b)) {
        return Err("the path may hold letters, digits and . _ ~ / - only");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, p) = v6.split_once(']').ok_or("unclosed [ in IPv6 address")?;
            if h.len() < 2 || h.len() > 45 || !h.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                return Err("an IPv6 address in brackets holds hex digits, : and . only");
            }
            (h, p.strip_prefix(':').ok_or("missing :port")?)
        }
        None => {
            let (h, p) = authority.split_once(':').ok_or("missing :port")?;
            if h.is_empty() || h.len() > 253 || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err("the host holds letters, digits, . and - only (IPv6 in brackets)");
            }
            (h, p)
        }
    };
    let _ = host;
    let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    if !digits || port.starts_with('0') || port.parse::<u32>().map_or(true, |p| p > 65535) {
        return Err("port must be a number 1-65535");
    }
    Ok(())
}

/// The longest URL `POST /v1/connect` takes (the document's `maxLength`).
const URL_MAX: usize = 300;

/// Sets a threat score in the node and the node table; whether the peer is still connected.
async fn set_threat(s: &ServerState, peer: PeerId, score: f32) -> Result<bool, ApiError> {
    s.node.set_threat_score(peer, score).await?;
    if let Ok(mut t) = s.table.lock() {
        t.set_threat(peer, score, std::time::Instant::now());
    }
    Ok(s.node.peers().await?.iter().any(|p| p.peer == peer))
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
        connections: s.conns.lock().map_or(0, |r| r.len() as u64),
        evicted: c.evicted.load(Ordering::Relaxed),
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
    metric("cookies_sent_total", "counter", "Cookie replies sent to datagram Inits under load.", n.cookies_sent);
    metric("bad_mac1_total", "counter", "Datagram Inits dropped for a bad mac1.", n.bad_mac1);
    metric("bad_mac2_total", "counter", "Datagram Inits under load with a bad mac2.", n.bad_mac2);
    metric("inits_admitted_total", "counter", "Datagram Inits admitted under load on a cookie.", n.inits_admitted);
    metric("stream_connections", "gauge", "Open TCP and WebSocket connections.", stats.stream_connections as u64);
    metric("udp_send_errors_total", "counter", "Datagrams the kernel did not take.", stats.udp_send_errors);
    metric("control_requests_total", "counter", "Control API requests.", control.requests);
    metric("control_unauthorized_total", "counter", "Control API requests without the token.", control.unauthorized);
    metric("control_event_streams", "gauge", "Open control API event streams.", control.event_streams);
    metric("control_connections", "gauge", "Open control API connections.", control.connections);
    metric("control_evicted_total", "counter", "Control API connections closed to make room.", control.evicted);
    type Get = fn(&PeerSummary) -> Option<f64>;
    let gauges: [(&str, &str, Get); 6] = [
        ("peer_rtt_seconds", "Smoothed round-trip time.", |p| p.quality.rtt_us.map(|us| us as f64 / 1e6)),
        ("peer_jitter_seconds", "RTT jitter.", |p| Some(p.quality.jitter_us as f64 / 1e6)),
        ("peer_loss_ratio", "Ping loss over the last 64 pings.", |p| Some(f64::from(p.quality.loss))),
        ("peer_quality_score", "Link quality score, 0..1.", |p| Some(f64::from(p.quality.score))),
        ("peer_threat_score", "Threat score, 0..1.", |p| Some(f64::from(p.threat))),
        // A gauge, not a counter: it counts one session and starts again when the peer
        // reconnects, so under the same labels it goes down (issue 12, acceptance 7).
        ("peer_session_bytes_in", "Application bytes received from the peer in its current session.", |p| {
            Some(p.quality.counters.bytes_in as f64)
        }),
    ];
    for (name, help, get) in gauges {
        let _ = write!(out, "# HELP meshlink_{name} {help}\n# TYPE meshlink_{name} gauge\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand check agrees with the document's pattern on the edges.
    #[test]
    fn urls_are_checked_as_the_document_says() {
        for ok in [
            "tcp://127.0.0.1:7400",
            "udp://h:1",
            "ws://example.com:65535/",
            "wss://a-b.c:443/x/y_z.~",
            "tcp://[::1]:9",
            "ws://[fe80::1]:80",
        ] {
            assert_eq!(url_shape(ok), Ok(()), "{ok}");
            assert!(crate::PeerUrl::parse(ok).is_ok(), "the parser takes what the check takes: {ok}");
        }
        for bad in [
            "TCP://h:1",
            " tcp://h:1",
            "tcp://h:1 ",
            "tcp://h:0",
            "tcp://h:65536",
            "tcp://h:07400",
            "tcp://h:",
            "tcp://:1",
            "tcp://h:1/",
            "udp://h:1/p",
            "ws://h:1/a b",
            "ws://h_x:1",
            "tcp://[::1:9",
            "tcp://[]:9",
            "tcp://h",
            "carrier-pigeon://x:1",
            "tcp://h:1:2",
        ] {
            assert!(url_shape(bad).is_err(), "{bad}");
        }
        assert!(url_shape(&format!("tcp://{}:1", "a".repeat(300))).is_err());
    }

    #[test]
    fn base64_takes_trailing_bits() {
        assert_eq!(BASE64.decode("AB==").unwrap(), vec![0]);
        assert_eq!(BASE64.decode("/wD+").unwrap(), vec![0xff, 0, 0xfe]);
        assert!(BASE64.decode(" /wD+").is_err());
    }
}
