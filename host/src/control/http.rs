//! The HTTP side of the control API: accept loop, authentication, routing, bodies and
//! errors. Plain HTTP/1.1 (hyper) on a loopback socket.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinSet;

use super::api::{ErrorBody, ErrorJson};
use super::events::{Pushed, SseBody};
use super::nodes::NodeTable;
use super::{handlers, token};
use crate::error::HostError;
use crate::HostHandle;

/// Control connections open at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request head within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Body = Either<Full<Bytes>, SseBody>;

/// What the server serves. The OpenAPI document must list exactly these (a test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Node,
    Peers,
    PeerQuality,
    Nodes,
    NodeOne,
    Connect,
    Disconnect,
    Send,
    Threat,
    Metrics,
    Prometheus,
    Events,
    OpenApi,
}

/// `(method, path pattern, route)`; `{peer}` matches one path segment.
const ROUTE_TABLE: &[(&str, &str, Route)] = &[
    ("GET", "/v1/node", Route::Node),
    ("GET", "/v1/peers", Route::Peers),
    ("GET", "/v1/peers/{peer}/quality", Route::PeerQuality),
    ("GET", "/v1/nodes", Route::Nodes),
    ("GET", "/v1/nodes/{peer}", Route::NodeOne),
    ("POST", "/v1/connect", Route::Connect),
    ("POST", "/v1/disconnect", Route::Disconnect),
    ("POST", "/v1/send", Route::Send),
    ("POST", "/v1/threat", Route::Threat),
    ("GET", "/v1/metrics", Route::Metrics),
    ("GET", "/metrics", Route::Prometheus),
    ("GET", "/v1/events", Route::Events),
    ("GET", "/v1/openapi.json", Route::OpenApi),
];

/// Every `(method, path pattern)` the server answers.
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTE_TABLE.iter().map(|(m, p, _)| (*m, *p))
}

#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub unauthorized: AtomicU64,
    pub event_streams: AtomicU64,
    pub events_lagged: AtomicU64,
}

pub(crate) struct ServerState {
    pub node: HostHandle,
    pub token: String,
    pub name: String,
    pub url: String,
    pub started: std::time::Instant,
    pub max_body: usize,
    pub table: Mutex<NodeTable>,
    pub events: broadcast::Sender<Pushed>,
    pub stopped: AtomicBool,
    pub counters: Counters,
}

/// An error response: `{"error": {"code", "message"}}` with a status.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unknown_peer(peer: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "unknown_peer", format!("no connected peer {peer}"))
    }
    pub fn into_response(self) -> Response<Body> {
        let body = ErrorJson { error: ErrorBody { code: self.code.into(), message: self.message } };
        json(self.status, &body)
    }
}

/// The node's errors, each with a status and a stable code.
impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        use meshlink_core::Error as C;
        use StatusCode as S;
        let (status, code) = match &e {
            HostError::Core(C::UnknownPeer) => (S::NOT_FOUND, "unknown_peer"),
            HostError::Core(C::NotConnected) => (S::CONFLICT, "not_connected"),
            HostError::Core(C::TooLarge { .. }) => (S::PAYLOAD_TOO_LARGE, "message_too_large"),
            HostError::Core(C::QueueFull { .. }) => (S::SERVICE_UNAVAILABLE, "queue_full"),
            HostError::Core(C::PeerLimit { .. } | C::HalfOpenLimit { .. }) => (S::SERVICE_UNAVAILABLE, "peer_limit"),
            HostError::Core(C::PeerKeyMismatch { .. }) => (S::BAD_GATEWAY, "peer_key_mismatch"),
            HostError::Core(C::Threat) => (S::FORBIDDEN, "threat"),
            HostError::Core(_) => (S::BAD_GATEWAY, "protocol_error"),
            HostError::InvalidUrl { .. } => (S::BAD_REQUEST, "invalid_url"),
            HostError::Resolve { .. } => (S::BAD_GATEWAY, "resolve_failed"),
            HostError::ConnectTimeout { .. } => (S::GATEWAY_TIMEOUT, "connect_timeout"),
            HostError::WebSocket { .. } => (S::BAD_GATEWAY, "websocket_failed"),
            HostError::Handshake {
                reason: meshlink_core::DisconnectReason::Error(C::PeerKeyMismatch { .. }), ..
            } => (S::BAD_GATEWAY, "peer_key_mismatch"),
            HostError::Handshake { .. } => (S::BAD_GATEWAY, "handshake_failed"),
            HostError::Io { .. } => (S::BAD_GATEWAY, "connect_failed"),
            HostError::ConnectionLimit { .. } => (S::SERVICE_UNAVAILABLE, "connection_limit"),
            HostError::NotDelivered => (S::SERVICE_UNAVAILABLE, "not_delivered"),
            HostError::Stopped => (S::SERVICE_UNAVAILABLE, "node_stopped"),
            HostError::Config(_) | HostError::Key(_) | HostError::File { .. } => (S::INTERNAL_SERVER_ERROR, "internal"),
            #[allow(unreachable_patterns)] // HostError may grow variants (TLS, ...)
            _ => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    respond(status, "application/json", bytes)
}

pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Either::Left(Full::new(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Reads a JSON request body of at most `max` bytes into `T`.
pub(crate) async fn read_json<T: DeserializeOwned>(req: Request<Incoming>, max: usize) -> Result<T, ApiError> {
    let bytes = match Limited::new(req.into_body(), max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body larger than {max} bytes"),
            ))
        }
        Err(e) => return Err(ApiError::bad_request("bad_body", format!("cannot read the request body: {e}"))),
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_request("invalid_json", "the request body is empty; send a JSON object"));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            // Well-formed JSON of the wrong shape: a missing or unknown field, a wrong type.
            Category::Data => ApiError::bad_request("invalid_request", format!("invalid request: {e}")),
            _ => ApiError::bad_request("invalid_json", format!("malformed JSON body: {e}")),
        }
    })
}

/// Finds the route for a request, and the `{peer}` segment if the pattern has one.
pub(crate) fn route<'a>(method: &Method, path: &'a str) -> Result<(Route, Option<&'a str>), ApiError> {
    let mut allowed = Vec::new();
    for (m, pattern, r) in ROUTE_TABLE {
        if let Some(param) = matches(pattern, path) {
            if method.as_str() == *m {
                return Ok((*r, param));
            }
            allowed.push(*m);
        }
    }
    if allowed.is_empty() {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such endpoint: {path} (see /v1/openapi.json)"),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes {}, not {method}", allowed.join(", ")),
        ))
    }
}

/// `Some(param)` if `path` fits `pattern` (`param` is the `{peer}` segment, if any).
fn matches<'a>(pattern: &str, path: &'a str) -> Option<Option<&'a str>> {
    let mut param = None;
    let (mut pat, mut segs) = (pattern.split('/'), path.split('/'));
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(param),
            (Some("{peer}"), Some(s)) if !s.is_empty() => param = Some(s),
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

async fn handle(state: Arc<ServerState>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    // Authentication comes first: without the token nothing, not even the route list.
    let auth = req.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    if !token::authorized(&state.token, auth) {
        state.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        let msg = if auth.is_some() { "wrong bearer token" } else { "missing Authorization: Bearer <token> header" };
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("{msg} (the token is in <data-dir>/control.token)"),
        )
        .into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"meshlink\""));
        return Ok(r);
    }
    let path = req.uri().path().to_string();
    let resp = match route(req.method(), &path) {
        Ok((r, param)) => handlers::dispatch(&state, r, param, req).await.unwrap_or_else(ApiError::into_response),
        Err(e) => e.into_response(),
    };
    Ok(resp)
}

/// Serves until aborted. Each connection is its own task; aborting this one drops the
/// set, which aborts them all (open event streams included).
pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let sock = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("control API accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(sock), svc);
        conns.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("control connection: {e}");
            }
            drop(permit);
        });
    }
}

/// The address as a base URL (`http://127.0.0.1:7410`).
pub(crate) fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_exact_paths_and_one_peer_segment() {
        assert_eq!(route(&Method::GET, "/v1/nodes").unwrap(), (Route::Nodes, None));
        assert_eq!(route(&Method::GET, "/v1/nodes/abc").unwrap(), (Route::NodeOne, Some("abc")));
        assert_eq!(route(&Method::GET, "/v1/peers/abc/quality").unwrap(), (Route::PeerQuality, Some("abc")));
        assert_eq!(route(&Method::GET, "/v1/nodes/").unwrap_err().code, "not_found");
        assert_eq!(route(&Method::GET, "/v1/nodes/a/b").unwrap_err().code, "not_found");
        assert_eq!(route(&Method::GET, "/v1/peers/x/y").unwrap_err().code, "not_found");
        let e = route(&Method::GET, "/v1/send").unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
        assert!(e.message.contains("POST"), "{}", e.message);
    }
}
