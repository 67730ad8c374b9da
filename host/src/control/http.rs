//! The HTTP side of the control API: accept loop, connection accounting, authentication,
//! routing, bodies and errors. Plain HTTP/1.1 (hyper) on a loopback socket.
//!
//! No local client can lock the API out (issue 13, item 3):
//! - sockets are capped ([`ControlLimits::max_connections`]); at the cap a new socket
//!   closes the one that matters least: one that never sent the token first, then an
//!   idle keep-alive one, then one still sending its body, oldest first. Requests being
//!   handled and event streams are never closed for room;
//! - event streams have their own cap (`max_streams`; the next one gets 503
//!   `too_many_streams`), and so do requests being handled (`max_requests`; 503 `busy`);
//! - a request head must arrive within `header_timeout`, its body within `body_timeout`
//!   (408 `body_timeout`);
//! - a 401 closes the connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
use tokio::task::{AbortHandle, JoinSet};

use super::api::{ErrorBody, ErrorJson};
use super::events::{Pushed, SseBody};
use super::nodes::NodeTable;
use super::{handlers, token, ControlLimits};
use crate::error::HostError;
use crate::HostHandle;

/// Longest request target; longer ones get 414 `uri_too_long` (a JSON body).
pub(crate) const MAX_URI: usize = 8 << 10;
/// Most bytes of header names and values; more get 431 `headers_too_large` (JSON).
pub(crate) const MAX_HEADERS: usize = 16 << 10;
/// hyper's own read buffer: a head larger than this never reaches the handler, and hyper
/// answers a bare 431 itself. It sits well above the two limits above so that every head
/// a client can reasonably send gets the JSON answer.
const HEAD_BUFFER: usize = 64 << 10;

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
    Request,
    Serve,
    Respond,
    Threat,
    Block,
    Metrics,
    Prometheus,
    Events,
    OpenApi,
    Publish,
    Subscribe,
    Call,
    Funcs,
}

impl Route {
    /// POST routes take a JSON object; the others read no body.
    fn takes_body(self) -> bool {
        ROUTE_TABLE.iter().any(|(m, _, r)| *r == self && *m == "POST")
    }
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
    ("POST", "/v1/request", Route::Request),
    ("POST", "/v1/serve", Route::Serve),
    ("POST", "/v1/respond", Route::Respond),
    ("POST", "/v1/threat", Route::Threat),
    ("POST", "/v1/block", Route::Block),
    ("GET", "/v1/metrics", Route::Metrics),
    ("GET", "/metrics", Route::Prometheus),
    ("GET", "/v1/events", Route::Events),
    ("GET", "/v1/openapi.json", Route::OpenApi),
    ("POST", "/v1/publish", Route::Publish),
    ("POST", "/v1/subscribe", Route::Subscribe),
    ("POST", "/v1/call", Route::Call),
    ("GET", "/v1/funcs/{peer}", Route::Funcs),
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
    /// Connections closed to make room for a new one.
    pub evicted: AtomicU64,
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
    pub limits: ControlLimits,
    pub conns: Mutex<Registry>,
    /// Event streams open (one permit each, held by the stream's task).
    pub streams: Arc<Semaphore>,
    /// Requests being handled (one permit each, after the body is in).
    pub requests: Arc<Semaphore>,
}

/// Where a control connection is; at the socket cap the lowest phase, oldest first, is
/// closed to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// No request with the token yet.
    Unauthenticated,
    /// Between requests (keep-alive).
    Idle,
    /// Authenticated, its body still arriving.
    Reading,
    /// Being handled: never closed for room.
    Busy,
    /// An event stream: never closed for room (they have their own cap).
    Stream,
}

struct Entry {
    phase: Phase,
    since: Instant,
    abort: Option<AbortHandle>,
}

/// The open control connections.
#[derive(Default)]
pub(crate) struct Registry {
    next: u64,
    map: HashMap<u64, Entry>,
}

impl Registry {
    /// Admits a new connection. At `cap`, the connection that matters least (see
    /// [`Phase`]) is removed and returned for closing; `None` if every open connection is
    /// busy or streaming (the new one is then refused).
    fn admit(&mut self, cap: usize, now: Instant) -> Option<(u64, Option<AbortHandle>)> {
        let mut victim = None;
        if self.map.len() >= cap {
            let v = self
                .map
                .iter()
                .filter(|(_, e)| e.phase <= Phase::Reading)
                .min_by_key(|(id, e)| (e.phase, e.since, **id))
                .map(|(id, _)| *id)?;
            victim = self.map.remove(&v).map(|e| e.abort);
        }
        self.next += 1;
        self.map.insert(self.next, Entry { phase: Phase::Unauthenticated, since: now, abort: None });
        Some((self.next, victim.flatten()))
    }

    fn set(&mut self, id: u64, phase: Phase) {
        if let Some(e) = self.map.get_mut(&id) {
            if e.phase != phase {
                (e.phase, e.since) = (phase, Instant::now());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// One connection's place in the registry; dropped with the connection's task.
struct ConnRef {
    id: u64,
    state: Arc<ServerState>,
}

impl ConnRef {
    fn set(&self, phase: Phase) {
        if let Ok(mut r) = self.state.conns.lock() {
            r.set(self.id, phase);
        }
    }
}

impl Drop for ConnRef {
    fn drop(&mut self) {
        if let Ok(mut r) = self.state.conns.lock() {
            r.map.remove(&self.id);
        }
    }
}

/// An error response: `{"error": {"code", "message"}}` with a status.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The methods a path takes, for a 405's `Allow` header.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), allow: None }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unknown_peer(peer: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "unknown_peer", format!("no connected peer {peer}"))
    }
    pub fn into_response(self) -> Response<Body> {
        let body = ErrorJson { error: ErrorBody { code: self.code.into(), message: self.message } };
        let mut r = json(self.status, &body);
        if let Some(v) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        r
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
            // Dialling our own address (or pinning our own id) is the caller's mistake
            // about the node's state, not a failing peer (issue 13, item 6).
            HostError::Core(C::SelfConnect)
            | HostError::Handshake { reason: meshlink_core::DisconnectReason::Error(C::SelfConnect), .. } => {
                (S::CONFLICT, "self_connect")
            }
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
            // Request outcomes, each its own code (issue 14: never one ambiguous timeout).
            HostError::NoResponders => (S::SERVICE_UNAVAILABLE, "no_responders"),
            HostError::Timeout => (S::GATEWAY_TIMEOUT, "timeout"),
            HostError::Cancelled => (S::SERVICE_UNAVAILABLE, "cancelled"),
            HostError::Disconnected => (S::BAD_GATEWAY, "disconnected"),
            HostError::Refused { .. } => (S::BAD_GATEWAY, "refused"),
            HostError::Failed { .. } => (S::BAD_GATEWAY, "handler_failed"),
            HostError::PendingLimit { .. } => (S::SERVICE_UNAVAILABLE, "pending_limit"),
            // Call outcomes (§15.5.2), each its own code.
            HostError::UnknownFunction { .. } => (S::NOT_FOUND, "unknown_function"),
            HostError::BadArguments => (S::BAD_GATEWAY, "bad_arguments"),
            HostError::NoRpc => (S::SERVICE_UNAVAILABLE, "no_rpc"),
            HostError::InvalidArguments(_) => (S::BAD_REQUEST, "invalid_arguments"),
            HostError::BadResult(_) => (S::BAD_GATEWAY, "bad_result"),
            HostError::Messaging(m) => {
                use meshlink_core::messaging::MessagingError as M;
                match m {
                    M::Subject(_) => (S::BAD_REQUEST, "invalid_subject"),
                    M::InvalidVersion => (S::BAD_REQUEST, "invalid_version"),
                    M::InvalidErrorCode { .. } => (S::BAD_REQUEST, "invalid_error_code"),
                    M::MessageTooLong { .. } => (S::BAD_REQUEST, "invalid_request"),
                    M::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "message_too_large"),
                    M::HandlerLimit { .. } => (S::SERVICE_UNAVAILABLE, "handler_limit"),
                    M::SubLimit { .. } => (S::SERVICE_UNAVAILABLE, "sub_limit"),
                    M::InterestLimit { .. } => (S::SERVICE_UNAVAILABLE, "interest_limit"),
                    _ => (S::BAD_GATEWAY, "protocol_error"),
                }
            }
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

/// Reads a request body: it must say it is JSON (415 otherwise), be at most `max` bytes
/// (413) and arrive within `timeout` (408).
async fn read_body(req: Request<Incoming>, max: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !ct.is_some_and(is_json) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the body must be JSON (Content-Type: application/json), not {}",
                ct.map_or("no Content-Type".into(), |c| format!("{c:?}"))
            ),
        ));
    }
    match tokio::time::timeout(timeout, Limited::new(req.into_body(), max).collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {} ms", timeout.as_millis()),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body larger than {max} bytes"),
        )),
        Ok(Err(e)) => Err(ApiError::bad_request("bad_body", format!("cannot read the request body: {e}"))),
    }
}

/// `application/json`, parameters (`; charset=utf-8`) allowed.
fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// A request body into `T`: a JSON object (not an array, which serde would take
/// positionally), no field set to null (leave it out instead), no unknown field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("invalid_json", "the request body is empty; send a JSON object"));
    }
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON body: {e}")))?;
    let serde_json::Value::Object(fields) = &v else {
        return Err(ApiError::bad_request("invalid_request", format!("expected a JSON object, not {}", kind(&v))));
    };
    if let Some((k, _)) = fields.iter().find(|(_, v)| v.is_null()) {
        return Err(ApiError::bad_request("invalid_request", format!("field `{k}` is null; leave it out instead")));
    }
    // Well-formed JSON of the wrong shape: a missing or unknown field, a wrong type.
    serde_json::from_value(v).map_err(|e| ApiError::bad_request("invalid_request", format!("invalid request: {e}")))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
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
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes {}, not {method}", allowed.join(", ")),
        );
        e.allow = Some(allowed.join(", "));
        Err(e)
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

/// 414 or 431 (with a JSON body) for a head over the limits.
fn check_head(req: &Request<Incoming>) -> Result<(), ApiError> {
    let uri = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri > MAX_URI {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("request target of {uri} bytes; the limit is {MAX_URI}"),
        ));
    }
    let headers: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers > MAX_HEADERS {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("{headers} bytes of headers; the limit is {MAX_HEADERS}"),
        ));
    }
    Ok(())
}

async fn handle(
    state: Arc<ServerState>,
    conn: Arc<ConnRef>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = check_head(&req) {
        return Ok(e.into_response());
    }
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
        // A client without the token gets no keep-alive to sit on.
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(r);
    }
    let path = req.uri().path().to_string();
    let resp = match route(req.method(), &path) {
        Ok((r, param)) => {
            let param = param.map(str::to_string);
            serve_route(&state, &conn, r, param.as_deref(), req).await.unwrap_or_else(ApiError::into_response)
        }
        Err(e) => e.into_response(),
    };
    let streaming = matches!(resp.body(), Either::Right(_));
    conn.set(if streaming { Phase::Stream } else { Phase::Idle });
    Ok(resp)
}

async fn serve_route(
    state: &Arc<ServerState>,
    conn: &ConnRef,
    route: Route,
    param: Option<&str>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body = if route.takes_body() {
        conn.set(Phase::Reading);
        Some(read_body(req, state.max_body, state.limits.body_timeout).await?)
    } else {
        None
    };
    conn.set(Phase::Busy);
    let _permit = state.requests.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{} requests are being handled; try again", state.limits.max_requests),
        )
    })?;
    handlers::dispatch(state, route, param, body).await
}

/// Serves until aborted. Each connection is its own task; aborting this one drops the
/// set, which aborts them all (open event streams included).
pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let sock = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("control API accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admitted = state.conns.lock().ok().and_then(|mut r| r.admit(state.limits.max_connections, Instant::now()));
        let Some((id, victim)) = admitted else {
            // Every connection is being handled or streaming: this one is refused.
            tracing::debug!("control API: {} connections busy; refusing one", state.limits.max_connections);
            continue;
        };
        if let Some(v) = victim {
            state.counters.evicted.fetch_add(1, Ordering::Relaxed);
            v.abort();
        }
        let conn = Arc::new(ConnRef { id, state: state.clone() });
        let st = state.clone();
        let svc = hyper::service::service_fn(move |req| handle(st.clone(), conn.clone(), req));
        let serve = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(state.limits.header_timeout)
            .max_buf_size(HEAD_BUFFER)
            .serve_connection(TokioIo::new(sock), svc);
        let task = conns.spawn(async move {
            if let Err(e) = serve.await {
                tracing::debug!("control connection: {e}");
            }
        });
        if let Ok(mut r) = state.conns.lock() {
            if let Some(e) = r.map.get_mut(&id) {
                e.abort = Some(task);
            }
        }
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
