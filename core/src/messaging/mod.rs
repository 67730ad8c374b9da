//! The messaging layer (feature `messaging`, PROTOCOL.md §15): subjects, request/response
//! and send-to-many over the session layer, with the same rules as the core: sans-IO,
//! bounded, no allocator, every capacity the caller's.
//!
//! # Design
//!
//! The [`Node`](crate::Node) stays the session layer. A [`Messenger`] **owns** the node
//! and the messaging tables ([`MessengerStorage`]):
//!
//! - it forwards the sans-IO calls (`handle_*`, `poll_*`) and every command of the node
//!   stays reachable through [`Messenger::node_mut`];
//! - the node hands each complete message of an implemented messaging kind
//!   (`wire::kind::MESSAGING`: `0x10..=0x13` request/response, `0x18..=0x1b` pub/sub) up as an `Event::Message` instead of
//!   answering `UnknownKind` (one hook, `Session::on_messaging`); the messenger consumes
//!   those events and yields its own [`MessengerEvent`], which carries every other node
//!   event unchanged ([`MessengerEvent::Node`]);
//! - timers: [`Messenger::poll_timeout`] is the earlier of the node's and the earliest
//!   request deadline (an indexed heap: O(1) peek); responses find their request in O(1)
//!   (the id holds its slot), and a closed session ends its own requests through a
//!   per-session list, never a scan.
//!
//! Storage follows smoltcp: each table is a slice the caller lends (`static` on firmware)
//! or, with `alloc`, a boxed one ([`HeapMessenger::with_capacity`]). A slice's length is
//! the hard capacity, [`MessagingConfig`] the run-time limits within it. Later patterns
//! (pub/sub subscriptions and interest, a seen-cache, services) add their tables to
//! [`MessengerStorage`] as more builder methods with empty defaults, their kinds in the
//! ranges kept for them (`0x18..=0x1f` pub/sub, `0x20..=0x27` RPC, `0x28..` services), and
//! their arms to the messenger's dispatch.
//!
//! # Poll order
//!
//! As for the node: after any input or command, drain [`Messenger::poll_transmit`], then
//! [`Messenger::poll_event`], then arm a timer at [`Messenger::poll_timeout`] that calls
//! [`Messenger::handle_timeout`]. Automatic replies (`NoResponders` and the other
//! refusals) are queued while events are polled; `poll_timeout` then returns the current
//! instant, so the driver's `handle_timeout` at once, and the transmits it drains after it,
//! send them without waiting for more input.
//!
//! # Request/response outcomes
//!
//! Every request ends in exactly one [`MessengerEvent::Outcome`]: [`Outcome::Response`],
//! [`Outcome::NoResponders`] (the peer has no handler: one round trip),
//! [`Outcome::Refused`] (version mismatch, busy, expired, malformed),
//! [`Outcome::Failed`] (the handler's error), [`Outcome::Timeout`],
//! [`Outcome::Cancelled`] or [`Outcome::Disconnected`] (the session it went on ended).
//! A response after any of the last three is dropped and counted
//! ([`MessagingStats::late_responses`]).

mod fanout;
mod messenger;
pub mod pending;
pub mod pubsub;
pub mod request;
pub mod rpc;
pub mod service;
mod storage;
pub mod subject;
#[cfg(all(test, feature = "std"))]
mod tests;

use core::fmt;
use core::time::Duration;

pub use fanout::{FanoutSummary, SendReport};
#[cfg(feature = "alloc")]
pub use messenger::HeapMessenger;
pub use messenger::{IncomingRequest, Messenger, MessengerEvent, Outcome};
pub use pending::{ConnEntry, RequestSlot};
pub use pubsub::{InterestEntry, OriginSlot, PeerSub, PubSubStats, PublishReport, SeenEntry, SubId, SubSlot};
pub use request::{HandlerSlot, RefuseCode};
pub use service::{
    AttemptError, CallId, CallSlot, ServiceId, ServiceOptions, ServiceOutcome, ServiceSlot, ServiceStats, Strategy,
};
pub use storage::{MessengerStorage, Store};
pub use subject::SubjectError;

use crate::buffers::Priority;
use crate::config::ConfigError;
use crate::error::Error;

/// Run-time limits and defaults of the messaging layer, each named and checked by
/// [`MessagingConfig::validate`]. Table capacities are the storage's; these limits apply
/// within them (a limit above its table is lowered to it, as `Config::max_peers` is).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessagingConfig {
    /// Requests in flight from this node (research note §8.1: 8 on an MCU, 1024 on a host).
    pub max_pending: usize,
    /// Requests in flight to one peer (4 on an MCU, 64 on a host).
    pub max_pending_per_peer: usize,
    /// Registered request handlers (sizes the heap table of `with_capacity`).
    pub max_handlers: usize,
    /// The timeout of a request that names none (libp2p request-response: 10 s).
    pub default_timeout: Duration,
    /// The class of requests and responses that name none.
    pub default_priority: Priority,
    /// Subscriptions of this node (pub/sub, §15.3; sizes the heap `subs` table).
    pub max_subs: usize,
    /// Interest entries kept per origin (a subscribing node); an origin announcing more
    /// gets an InterestAck `Limit` and its extra entries are ignored. At least `max_subs`.
    pub max_interest_per_origin: usize,
    /// Heap table sizes of `with_capacity`: origins known, interest entries in all, and
    /// seen-cache entries (its window, pubsub::seen).
    pub max_origins: usize,
    pub max_interest: usize,
    pub seen_cache: usize,
    /// Links a publication, an interest set or a notice crosses at most; beyond, it is
    /// dropped and counted (`PubSubStats::hops_exceeded`).
    pub max_hops: u8,
    /// Publications a subscription holds delivered but not yet `Messenger::consumed`;
    /// a full one drops and counts, and tells the publisher. `0`: no accounting (the
    /// application consumes each event as it polls it).
    pub sub_queue: u16,
    /// At most one SlowConsumer notice per subscription per interval.
    pub slow_notice_interval: Duration,
    /// Services (§15.4): services this node provides (sizes the heap `services` table;
    /// each also takes a handler and a subscription).
    pub max_services: usize,
    /// Service calls in progress (sizes the heap `calls` table); beyond: `ServiceCallLimit`.
    pub max_service_calls: usize,
    /// The largest body of a service call (kept for failover; the heap body table is
    /// `max_service_calls × service_body_max`); beyond: `ServiceBodyTooLong`.
    pub service_body_max: usize,
    /// Attempts after the first of a call that names none (`0..MAX_ATTEMPTS`).
    pub service_retries: u8,
    /// Providers considered per attempt (`1..=MAX_PROVIDERS`); further ones are ignored.
    pub max_providers: usize,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        MessagingConfig {
            max_pending: 1024,
            max_pending_per_peer: 64,
            max_handlers: 16,
            default_timeout: Duration::from_secs(10),
            default_priority: Priority::Normal,
            max_subs: 64,
            max_interest_per_origin: 64,
            max_origins: 256,
            max_interest: 1024,
            seen_cache: 1024,
            max_hops: 16,
            sub_queue: 0,
            slow_notice_interval: Duration::from_secs(1),
            max_services: 8,
            max_service_calls: 64,
            service_body_max: 1024,
            service_retries: 2,
            max_providers: service::MAX_PROVIDERS,
        }
    }
}

impl MessagingConfig {
    /// A copy changed by `f` (for the struct is `#[non_exhaustive]`).
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }

    /// The longest timeout a request carries: its wire field is u32 milliseconds.
    pub const MAX_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, problem| Err(ConfigError { field, problem });
        if self.max_pending == 0 || self.max_pending > 0xffff {
            return bad("max_pending", "must be 1..=65535 requests");
        }
        if self.max_pending_per_peer == 0 || self.max_pending_per_peer > self.max_pending {
            return bad("max_pending_per_peer", "must be 1..=max_pending");
        }
        if self.default_timeout.is_zero() || self.default_timeout > Self::MAX_TIMEOUT {
            return bad("default_timeout", "must be 1 ms..=u32::MAX ms");
        }
        if usize::from(self.service_retries) >= service::MAX_ATTEMPTS {
            return bad("service_retries", "must be below service::MAX_ATTEMPTS (8)");
        }
        if self.max_providers == 0 || self.max_providers > service::MAX_PROVIDERS {
            return bad("max_providers", "must be 1..=service::MAX_PROVIDERS (16)");
        }
        pubsub::api::validate(self)
    }
}

/// The options of one request; start from [`RequestOptions::new`] (the config's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RequestOptions<'a> {
    /// `None`: [`MessagingConfig::default_timeout`].
    pub timeout: Option<Duration>,
    /// The request this one is part of (F23), for tracing across nodes.
    pub parent: Option<u64>,
    /// The version the caller speaks ([`request::parse_version`]); empty: any.
    pub version: &'a str,
    /// `None`: [`MessagingConfig::default_priority`].
    pub priority: Option<Priority>,
}

impl<'a> RequestOptions<'a> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    pub fn parent(mut self, id: u64) -> Self {
        self.parent = Some(id);
        self
    }
    pub fn version(mut self, v: &'a str) -> Self {
        self.version = v;
        self
    }
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = Some(p);
        self
    }
}

/// A registered handler, as [`Messenger::register`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandlerId(pub u16);

/// Counters of the messaging layer; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessagingStats {
    pub requests_sent: u64,
    pub requests_received: u64,
    /// Responses (or refusals) for a request that already ended (timeout, cancel,
    /// disconnect) or that this node never sent: dropped.
    pub late_responses: u64,
    /// Requests refused automatically (no handler, version, expired, malformed).
    pub refusals_sent: u64,
    /// Messaging packets that did not decode.
    pub malformed: u64,
    pub timeouts: u64,
}

/// What a messaging call can fail with; each variant names the numbers a user needs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum MessagingError {
    /// The node refused (not connected, queue full, too large...).
    Node(Error),
    Subject(SubjectError),
    /// The pending table holds `limit` requests ([`MessagingConfig::max_pending`]).
    PendingLimit {
        limit: usize,
    },
    /// `limit` requests are in flight to this peer ([`MessagingConfig::max_pending_per_peer`]).
    PeerPendingLimit {
        limit: usize,
    },
    /// The handler table is full.
    HandlerLimit {
        limit: usize,
    },
    /// No pending request (or handler) with this id.
    UnknownRequest,
    UnknownHandler,
    /// Not a version [`request::parse_version`] accepts.
    InvalidVersion,
    /// A handler error code below [`request::APP_CODE_MIN`] (those are the layer's).
    InvalidErrorCode {
        code: u16,
    },
    /// A message longer than [`request::MESSAGE_MAX`].
    MessageTooLong {
        max: usize,
    },
    /// The encoded packet does not fit the scratch buffer.
    TooLarge {
        size: usize,
        max: usize,
    },
    /// The result slice of a send-to-many holds fewer entries than peers to report.
    ResultsTooSmall {
        needed: usize,
    },
    /// The configuration or the storage does not fit.
    InvalidConfig(ConfigError),
    /// The subscription table holds `limit` subscriptions ([`MessagingConfig::max_subs`]).
    SubLimit {
        limit: usize,
    },
    /// The interest-entry table (`limit` entries) has no room for the subscription.
    InterestLimit {
        limit: usize,
    },
    /// No subscription with this id.
    UnknownSub,
    /// The service table holds `limit` services ([`MessagingConfig::max_services`]).
    ServiceLimit {
        limit: usize,
    },
    /// This node already provides a service of that name.
    ServiceExists,
    /// A service name starting with `$` (reserved).
    InvalidServiceName,
    UnknownService,
    /// No service call with this id (it ended, or never was).
    UnknownCall,
    /// No direct neighbour advertises the service (or none could be sent to).
    NoProviders,
    /// `limit` service calls are in progress ([`MessagingConfig::max_service_calls`]).
    ServiceCallLimit {
        limit: usize,
    },
    /// A service call body over `max` bytes (its share of the body table, or
    /// [`MessagingConfig::service_body_max`]).
    ServiceBodyTooLong {
        max: usize,
    },
    /// A retry cap above `max` ([`service::MAX_ATTEMPTS`] − 1).
    RetryLimit {
        max: u8,
    },
}

impl From<Error> for MessagingError {
    fn from(e: Error) -> Self {
        MessagingError::Node(e)
    }
}
impl From<SubjectError> for MessagingError {
    fn from(e: SubjectError) -> Self {
        MessagingError::Subject(e)
    }
}
impl From<ConfigError> for MessagingError {
    fn from(e: ConfigError) -> Self {
        MessagingError::InvalidConfig(e)
    }
}

impl fmt::Display for MessagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessagingError::Node(e) => write!(f, "{e}"),
            MessagingError::Subject(e) => write!(f, "subject: {e}"),
            MessagingError::PendingLimit { limit } => write!(f, "pending-request limit of {limit} reached"),
            MessagingError::PeerPendingLimit { limit } => {
                write!(f, "per-peer pending-request limit of {limit} reached")
            }
            MessagingError::HandlerLimit { limit } => write!(f, "handler limit of {limit} reached"),
            MessagingError::UnknownRequest => f.write_str("no such pending request"),
            MessagingError::UnknownHandler => f.write_str("no such handler"),
            MessagingError::InvalidVersion => f.write_str("invalid version text"),
            MessagingError::InvalidErrorCode { code } => {
                write!(f, "error code {code} is reserved (handler codes start at {})", request::APP_CODE_MIN)
            }
            MessagingError::MessageTooLong { max } => write!(f, "message longer than {max} bytes"),
            MessagingError::TooLarge { size, max } => write!(f, "packet of {size} bytes exceeds {max}"),
            MessagingError::ResultsTooSmall { needed } => write!(f, "result slice needs {needed} entries"),
            MessagingError::InvalidConfig(e) => write!(f, "invalid messaging configuration: {e}"),
            MessagingError::SubLimit { limit } => write!(f, "subscription limit of {limit} reached"),
            MessagingError::InterestLimit { limit } => write!(f, "interest table of {limit} entries is full"),
            MessagingError::UnknownSub => f.write_str("no such subscription"),
            MessagingError::ServiceLimit { limit } => write!(f, "service limit of {limit} reached"),
            MessagingError::ServiceExists => f.write_str("service already provided"),
            MessagingError::InvalidServiceName => f.write_str("service names must not start with '$'"),
            MessagingError::UnknownService => f.write_str("no such service"),
            MessagingError::UnknownCall => f.write_str("no such service call"),
            MessagingError::NoProviders => f.write_str("no reachable provider for the service"),
            MessagingError::ServiceCallLimit { limit } => write!(f, "service call limit of {limit} reached"),
            MessagingError::ServiceBodyTooLong { max } => write!(f, "service call body longer than {max} bytes"),
            MessagingError::RetryLimit { max } => write!(f, "retry cap above {max}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for MessagingError {}
