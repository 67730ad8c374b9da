//! The JSON bodies of the control API, shared by the server and the client (so that the
//! two cannot drift apart). Units are in the field names: `_us` microseconds, `_ms`
//! milliseconds, `_bps` bytes per second; `loss`, `score` and `threat` are 0..=1.
//! In requests and small responses `peer` is a 52-character peer id; objects that
//! describe a peer call it `id`.

use std::collections::BTreeMap;

use meshlink_core::{Hello, Quality};
use serde::{Deserialize, Serialize};

use crate::driver::HostStats;
use crate::types::{LocalAddrs, PeerSummary};

/// Quality figures of one link (F06, F11-F14).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityJson {
    /// Smoothed round-trip time; null before the first pong.
    pub rtt_us: Option<u64>,
    pub rtt_min_us: Option<u64>,
    pub rtt_var_us: u64,
    pub jitter_us: u64,
    pub loss: f32,
    pub score: f32,
    pub pings_sent: u64,
    pub pongs_received: u64,
    pub pings_lost: u64,
    pub bw_in_bps: u64,
    pub bw_out_bps: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
}

impl From<&Quality> for QualityJson {
    fn from(q: &Quality) -> Self {
        QualityJson {
            rtt_us: q.rtt_us,
            rtt_min_us: q.rtt_min_us,
            rtt_var_us: q.rtt_var_us,
            jitter_us: q.jitter_us,
            loss: q.loss,
            score: q.score,
            pings_sent: q.pings_sent,
            pongs_received: q.pongs_received,
            pings_lost: q.pings_lost,
            bw_in_bps: q.bw_in_bps,
            bw_out_bps: q.bw_out_bps,
            bytes_in: q.counters.bytes_in,
            bytes_out: q.counters.bytes_out,
            msgs_in: q.counters.msgs_in,
            msgs_out: q.counters.msgs_out,
        }
    }
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerJson {
    pub id: String,
    /// The name from the peer's Hello.
    pub name: String,
    pub addr: String,
    /// `tcp`, `ws` or `udp`.
    pub transport: String,
    /// `initiator` (we dialled) or `responder`.
    pub role: String,
    pub connected_for_ms: u64,
    pub threat: f32,
    pub quality: QualityJson,
}

impl From<&PeerSummary> for PeerJson {
    fn from(p: &PeerSummary) -> Self {
        PeerJson {
            id: p.peer.to_string(),
            name: p.name.clone(),
            addr: p.addr.to_string(),
            transport: p.transport.to_string(),
            role: match p.role {
                meshlink_core::noise::Role::Initiator => "initiator".into(),
                meshlink_core::noise::Role::Responder => "responder".into(),
            },
            connected_for_ms: p.connected_for.as_millis() as u64,
            threat: p.threat,
            quality: (&p.quality).into(),
        }
    }
}

/// What a peer said about itself in its handshake (F15).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloJson {
    pub version: u8,
    pub capabilities: Vec<String>,
    pub location: String,
    pub resources: BTreeMap<String, u32>,
    pub metadata: BTreeMap<String, String>,
    pub max_message: u32,
}

impl From<&Hello> for HelloJson {
    fn from(h: &Hello) -> Self {
        HelloJson {
            version: h.version,
            capabilities: h.capabilities.iter().map(|c| c.as_str().to_string()).collect(),
            location: h.location.as_str().to_string(),
            resources: h.resources.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
            metadata: h.metadata.iter().map(|(k, v)| (k.as_str().to_string(), v.as_str().to_string())).collect(),
            max_message: h.max_message,
        }
    }
}

/// One row of the node table (F16): every node seen since the control API started,
/// connected or not, and peers given a threat score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeJson {
    pub id: String,
    pub name: String,
    /// `connected`, `disconnected`, or `known` (a threat score was set; never connected).
    pub state: String,
    pub addr: Option<String>,
    pub transport: Option<String>,
    pub role: Option<String>,
    /// Set while connected.
    pub connected_for_ms: Option<u64>,
    /// 0 while connected.
    pub last_seen_ms_ago: u64,
    pub disconnect_reason: Option<String>,
    pub threat: f32,
    /// Live while connected, the last figures after.
    pub quality: Option<QualityJson>,
    pub hello: Option<HelloJson>,
}

/// Node counters (F13) plus the host's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsJson {
    pub sessions: usize,
    pub connected: usize,
    pub half_open: usize,
    pub handshakes_completed: u64,
    pub handshakes_failed: u64,
    pub records_dropped: u64,
    pub rejects_sent: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub cookies_sent: u64,
    pub bad_mac1: u64,
    pub bad_mac2: u64,
    pub inits_admitted: u64,
    pub stream_connections: usize,
    pub udp_send_errors: u64,
    pub events_unobserved: u64,
}

impl From<&HostStats> for StatsJson {
    fn from(s: &HostStats) -> Self {
        let n = &s.node;
        StatsJson {
            sessions: n.sessions,
            connected: n.connected,
            half_open: n.half_open,
            handshakes_completed: n.handshakes_completed,
            handshakes_failed: n.handshakes_failed,
            records_dropped: n.records_dropped,
            rejects_sent: n.rejects_sent,
            bytes_in: n.bytes_in,
            bytes_out: n.bytes_out,
            msgs_in: n.msgs_in,
            msgs_out: n.msgs_out,
            cookies_sent: n.cookies_sent,
            bad_mac1: n.bad_mac1,
            bad_mac2: n.bad_mac2,
            inits_admitted: n.inits_admitted,
            stream_connections: s.stream_connections,
            udp_send_errors: s.udp_send_errors,
            events_unobserved: s.events_unobserved,
        }
    }
}

/// The control server's own counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlStatsJson {
    pub requests: u64,
    pub unauthorized: u64,
    /// Event streams open now.
    pub event_streams: u64,
    /// Events skipped because a stream's client read too slowly.
    pub events_lagged: u64,
    /// Control connections open now.
    pub connections: u64,
    /// Control connections closed to make room for a new one (oldest unauthenticated first).
    pub evicted: u64,
}

/// `GET /v1/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsJson {
    pub node: StatsJson,
    pub control: ControlStatsJson,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenJson {
    pub tcp: Vec<String>,
    pub ws: Vec<String>,
    pub udp: Vec<String>,
}

impl From<&LocalAddrs> for ListenJson {
    fn from(l: &LocalAddrs) -> Self {
        let s = |v: &[std::net::SocketAddr]| v.iter().map(|a| a.to_string()).collect();
        ListenJson { tcp: s(&l.tcp), ws: s(&l.ws), udp: s(&l.udp) }
    }
}

/// `GET /v1/node`: this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfoJson {
    pub id: String,
    pub name: String,
    pub version: String,
    pub listen: ListenJson,
    /// The listen addresses as URLs a peer on this machine can dial.
    pub urls: Vec<String>,
    /// This API's base URL.
    pub control: String,
    pub uptime_ms: u64,
    pub stats: StatsJson,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeersJson {
    pub peers: Vec<PeerJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodesJson {
    pub nodes: Vec<NodeJson>,
}

/// `GET /v1/peers/{peer}/quality`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerQualityJson {
    pub peer: String,
    pub quality: QualityJson,
}

/// `POST /v1/connect`. `expect` pins the peer's id (F04; enables the IK fast path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// `POST /v1/disconnect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRequest {
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisconnectedJson {
    pub peer: String,
    pub disconnected: bool,
}

/// `POST /v1/send`: exactly one of `data` (UTF-8 text) and `data_b64` (standard base64),
/// and exactly one of `peer`, `to` (a list of peers) and `all: true` (every connected peer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_b64: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentJson {
    pub peer: String,
    /// Message length in bytes.
    pub len: usize,
}

/// `POST /v1/send` with `to` or `all`: one result per peer, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentManyJson {
    /// Message length in bytes.
    pub len: usize,
    pub results: Vec<SendResultJson>,
}

/// Whether the message was queued for one peer (no waiting: a congested peer is `queue_full`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResultJson {
    pub peer: String,
    pub queued: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// `POST /v1/request`: a request for `subject` to a connected peer; the body is exactly
/// one of `data` (UTF-8 text) and `data_b64`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRequest {
    pub peer: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_b64: Option<String>,
    /// Default: the node's `messaging.default_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// The version the caller speaks (`1`, `1.2.3-rc.1`); default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The answer to a request (also the shape of a served request's body in SSE `request`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyJson {
    pub peer: String,
    pub len: usize,
    pub data_b64: String,
    /// Present when the bytes are valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `POST /v1/serve`: registers a handler and streams its requests (SSE).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeRequest {
    /// A subject pattern (`svc.echo`, `svc.*`, `svc.>`).
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// SSE `serving`: the handler is registered; requests follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingEvent {
    pub node: String,
    pub pattern: String,
    pub version: String,
}

/// SSE `request`: answer it with `POST /v1/respond` (`peer`, `id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEvent {
    pub peer: String,
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    pub subject: String,
    pub version: String,
    pub timeout_ms: u32,
    pub len: usize,
    pub data_b64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `POST /v1/respond`: exactly one of `data`, `data_b64` and `error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondRequest {
    pub peer: String,
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_b64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RespondError>,
}

/// A handler error: `code` 256..=65535 (lower ones are the protocol's), `message` at
/// most 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondError {
    pub code: u16,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RespondedJson {
    pub peer: String,
    pub id: u64,
    pub responded: bool,
}

/// `POST /v1/threat` (F05): a score in 0..=1; above the node's threshold its policy applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreatRequest {
    pub peer: String,
    /// f64 so that the range is checked on the number as sent (1.00000001 is refused).
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreatJson {
    pub peer: String,
    pub score: f32,
    /// Whether the peer is still connected (a score above the threshold with the `drop`
    /// policy closes the session).
    pub connected: bool,
}

/// `POST /v1/block`: the peer's threat score is set to 1 and its session closed, so a
/// peer that re-dials is refused (while the node's threat threshold is below 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedJson {
    pub peer: String,
    pub blocked: bool,
    pub was_connected: bool,
}

/// Every error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorJson {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

// ---------------------------------------------------------------- events (SSE `data:`)

/// `ready`: the stream is subscribed; every later event is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadyEvent {
    pub node: String,
}

/// `connected`: a session finished its handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectedEvent {
    pub peer: String,
    pub name: String,
    pub addr: String,
    pub transport: String,
    pub quality: QualityJson,
    pub hello: HelloJson,
}

/// `message`: always base64; `data` too when the bytes are valid UTF-8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub peer: String,
    pub len: usize,
    pub data_b64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `quality`: new figures for a connected peer (after each pong).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityEvent {
    pub peer: String,
    pub quality: QualityJson,
}

/// `remote_error`: the peer reported an error (`too_large`, `malformed`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteErrorEvent {
    pub peer: String,
    pub code: String,
    pub code_num: u16,
}

/// `disconnected`: a session ended (`peer` is null if it ended during the handshake).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisconnectedEvent {
    pub peer: Option<String>,
    pub addr: String,
    pub transport: String,
    pub was_connected: bool,
    /// `local`, `remote`, `transport_closed`, `timeout` or `error`.
    pub reason_kind: String,
    /// In words, e.g. `closed by peer (Shutdown)`.
    pub reason: String,
}

/// `lagged`: this stream's client read too slowly and `missed` events were skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaggedEvent {
    pub missed: u64,
}

/// `POST /v1/publish`: a publication on the literal `subject`; the body is exactly one of
/// `data` (UTF-8 text) and `data_b64`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_b64: Option<String>,
}

/// What `POST /v1/publish` did: its sequence number and the neighbours it was queued
/// to (`failed`: matching neighbours whose queue refused it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedJson {
    pub seq: u64,
    pub queued: usize,
    pub failed: usize,
}

/// `POST /v1/subscribe`: subscribes to `pattern` and streams its publications (SSE).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// A subject pattern (`news.eu`, `news.*.eu`, `news.>`).
    pub pattern: String,
    /// `high`, `normal` (default) or `low`: the class of the last hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// SSE `subscribed`: the subscription exists; publications follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedEvent {
    pub node: String,
    pub pattern: String,
}

/// SSE `active`: neighbour `peer` holds the interest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveEvent {
    pub peer: String,
}

/// SSE `message`: one publication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicationEvent {
    pub subject: String,
    pub origin: String,
    pub seq: u64,
    pub len: usize,
    pub data_b64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// SSE `lagged` of `/v1/subscribe`: `dropped` publications did not fit in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubLaggedEvent {
    pub dropped: u64,
}

/// `POST /v1/call`: calls RPC function `function` on a connected peer (§15.5) with the
/// JSON `args` (the JSON mapping of §15.5.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    pub peer: String,
    pub function: String,
    #[serde(default)]
    pub args: Vec<serde_json::Value>,
    /// Default: the node's `messaging.default_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// The version the caller speaks; default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The result of a call, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallResultJson {
    pub result: serde_json::Value,
}

/// `GET /v1/funcs/{peer}`: the peer's registered functions (`get_funcs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuncsJson {
    pub functions: Vec<crate::rpc::FunctionInfo>,
}
