//! The host's error type: what can go wrong around the core (sockets, files, config) plus
//! the core's own typed errors, passed through unchanged.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use meshlink_core::DisconnectReason;

/// Everything the host API can fail with. Display is one line, fit for a CLI error.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostError {
    /// The core refused (typed: peer limit, queue full, key mismatch, ...).
    Core(meshlink_core::Error),
    /// A socket operation failed; `what` says which one.
    Io { what: String, source: std::io::Error },
    /// A file (key, config) could not be read or written.
    File { path: PathBuf, what: &'static str, source: std::io::Error },
    /// A peer URL did not parse or uses an unsupported scheme.
    InvalidUrl { url: String, why: String },
    /// Name resolution gave no address.
    Resolve { host: String },
    /// The socket (or WebSocket upgrade) did not connect within the connect timeout.
    ConnectTimeout { addr: SocketAddr },
    /// The WebSocket upgrade failed.
    WebSocket { addr: SocketAddr, why: String },
    /// The handshake failed or the session ended before it was confirmed.
    Handshake { addr: SocketAddr, reason: DisconnectReason },
    /// The host's connection limit is reached.
    ConnectionLimit { limit: usize },
    /// A send waited in the host queue and the peer went away (or the node shut down).
    NotDelivered,
    /// Configuration error (config file, flags or environment).
    Config(String),
    /// The key file is missing, malformed or has unsafe permissions.
    Key(String),
    /// The node has shut down.
    Stopped,
    /// A request: the peer has no handler for the subject (within one round trip).
    NoResponders,
    /// A request: no answer within its timeout.
    Timeout,
    /// A request: cancelled before its answer.
    Cancelled,
    /// A request: the session it went on ended before an answer.
    Disconnected,
    /// A request: the peer refused it (version mismatch, busy, expired, malformed).
    Refused { code: meshlink_core::messaging::RefuseCode },
    /// A request: the peer's handler answered with an error.
    Failed { code: u16, message: String },
    /// A request: `limit` requests are in flight already (from this node, or to this
    /// peer with `per_peer`); nothing was sent.
    PendingLimit { limit: usize, per_peer: bool },
    /// Another messaging call failed (subject, version, handler table, ...).
    Messaging(meshlink_core::messaging::MessagingError),
    /// A call: the peer does RPC but has no function of this name (§15.5.2, refusal 6).
    UnknownFunction { name: String },
    /// A call: the peer refused the arguments (refusal 7; a valid host never provokes it).
    BadArguments,
    /// A call: the peer does not do RPC at all (NoResponders for `$RPC.`).
    NoRpc,
    /// A call: the arguments (JSON) have no value (§15.5.1); nothing was sent.
    InvalidArguments(crate::rpc::JsonValueError),
    /// A call: the peer's result is not a valid value.
    BadResult(crate::rpc::JsonValueError),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Core(e) => write!(f, "{e}"),
            HostError::Io { what, source } => write!(f, "{what}: {source}"),
            HostError::File { path, what, source } => write!(f, "cannot {what} {}: {source}", path.display()),
            HostError::InvalidUrl { url, why } => write!(f, "invalid peer address {url:?}: {why}"),
            HostError::Resolve { host } => write!(f, "cannot resolve {host:?}"),
            HostError::ConnectTimeout { addr } => write!(f, "connecting to {addr} timed out"),
            HostError::WebSocket { addr, why } => write!(f, "WebSocket upgrade with {addr} failed: {why}"),
            HostError::Handshake { addr, reason } => write!(f, "handshake with {addr} failed: {}", reason_text(reason)),
            HostError::ConnectionLimit { limit } => write!(f, "connection limit of {limit} reached"),
            HostError::NotDelivered => f.write_str("message not sent: the peer disconnected or the node stopped"),
            HostError::Config(s) => write!(f, "configuration: {s}"),
            HostError::Key(s) => write!(f, "key: {s}"),
            HostError::Stopped => f.write_str("the node has stopped"),
            HostError::NoResponders => f.write_str("no responders: the peer serves nothing for this subject"),
            HostError::Timeout => f.write_str("request timed out"),
            HostError::Cancelled => f.write_str("request cancelled"),
            HostError::Disconnected => f.write_str("the peer disconnected before it answered"),
            HostError::Refused { code } => write!(f, "request refused by the peer: {}", refuse_text(*code)),
            HostError::Failed { code, message } => write!(f, "the handler failed (code {code}): {message}"),
            HostError::PendingLimit { limit, per_peer: false } => {
                write!(f, "{limit} requests are in flight already (messaging.max_pending)")
            }
            HostError::PendingLimit { limit, per_peer: true } => {
                write!(f, "{limit} requests to this peer are in flight already (messaging.max_pending_per_peer)")
            }
            HostError::Messaging(e) => write!(f, "{e}"),
            HostError::UnknownFunction { name } => write!(f, "unknown function {name:?} on the peer"),
            HostError::BadArguments => f.write_str("the peer refused the arguments"),
            HostError::NoRpc => f.write_str("the peer does not do RPC"),
            HostError::InvalidArguments(e) => write!(f, "invalid arguments: {e}"),
            HostError::BadResult(e) => write!(f, "the peer's result is not a valid value: {e}"),
        }
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HostError::Core(e) => Some(e),
            HostError::Io { source, .. } | HostError::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<meshlink_core::Error> for HostError {
    fn from(e: meshlink_core::Error) -> Self {
        HostError::Core(e)
    }
}

impl From<meshlink_core::messaging::MessagingError> for HostError {
    fn from(e: meshlink_core::messaging::MessagingError) -> Self {
        use meshlink_core::messaging::MessagingError as M;
        match e {
            M::Node(e) => HostError::Core(e),
            M::PendingLimit { limit } => HostError::PendingLimit { limit, per_peer: false },
            M::PeerPendingLimit { limit } => HostError::PendingLimit { limit, per_peer: true },
            e => HostError::Messaging(e),
        }
    }
}

/// A refusal code in words.
pub fn refuse_text(c: meshlink_core::messaging::RefuseCode) -> String {
    use meshlink_core::messaging::RefuseCode as R;
    match c {
        R::NoResponders => "no responders".into(),
        R::VersionMismatch => "version mismatch".into(),
        R::Busy => "busy".into(),
        R::Expired => "expired".into(),
        R::Malformed => "malformed".into(),
        other => format!("code {}", other.to_u16()),
    }
}

impl HostError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        HostError::Io { what: what.into(), source }
    }

    /// The peer turned out to be this node itself (its own address dialled, or its own id
    /// pinned): every later attempt would find the same, so it is not retried.
    pub fn is_self_connect(&self) -> bool {
        use meshlink_core::Error::SelfConnect;
        matches!(
            self,
            HostError::Core(SelfConnect) | HostError::Handshake { reason: DisconnectReason::Error(SelfConnect), .. }
        )
    }
}

/// A disconnect reason in words, for logs and CLI output.
pub fn reason_text(r: &DisconnectReason) -> String {
    match r {
        DisconnectReason::Local(c) => format!("closed locally ({c:?})"),
        DisconnectReason::Remote(c) => format!("closed by peer ({c:?})"),
        DisconnectReason::TransportClosed => "connection closed".into(),
        DisconnectReason::Timeout => "peer timed out".into(),
        DisconnectReason::Error(e) => e.to_string(),
        other => format!("{other:?}"),
    }
}

pub type Result<T, E = HostError> = std::result::Result<T, E>;
