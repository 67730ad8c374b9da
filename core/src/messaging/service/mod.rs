//! Services (F25, PROTOCOL.md §15.4): named request handlers that advertise themselves
//! through pub/sub interest, and requests that go to **one** provider picked by a
//! strategy, failing over to the next within a deadline and a retry cap.
//!
//! # Model
//!
//! - A **provider** registers a service `name` ([`crate::messaging::Messenger::register_service`]):
//!   the messenger registers a request handler for the subject `$SVC.<name>` and
//!   subscribes to that same literal subject, so the interest propagation of §15.3
//!   tells every node who provides it. There is no registry: a provider is known from
//!   interest, and forgotten with it (unsubscribe, or the session that taught it closing).
//! - A **requester** ([`crate::messaging::Messenger::request_service`]) looks up the
//!   interest entries equal to `$SVC.<name>` (the subject's first-token bucket and the
//!   wildcard list of the interest index, never the whole table; a wildcard subscription
//!   is not a provider), keeps the origins that are **direct neighbours** (routed
//!   delivery to farther providers is issue 16), and picks one by a [`Strategy`].
//! - Each attempt is an ordinary request (§15.2) with a timeout derived from what is
//!   left of the call's deadline. NoResponders, a layer refusal, an attempt timeout or a
//!   disconnect ends the attempt ([`MessengerEvent::ServiceAttempt`]) and the next goes to
//!   a provider not tried yet; a Response or a handler error ends the call
//!   ([`MessengerEvent::Service`]).
//!
//! Sources: NATS queue groups (one member of a group gets each message) and the NATS
//! service API (ADR-32: `$SRV` discovery subjects, name + version + description), the
//! research note `../shared/research/messaging.md`. Where meshlink departs: the
//! requester, not the server, picks the provider (so it can use its own RTT and pending
//! figures), and failover is the layer's, bounded by a deadline and a retry cap.
//!
//! [`MessengerEvent::ServiceAttempt`]: crate::messaging::MessengerEvent::ServiceAttempt
//! [`MessengerEvent::Service`]: crate::messaging::MessengerEvent::Service

pub(crate) mod api;
pub mod calls;
pub mod registry;
pub mod strategy;

pub use calls::CallSlot;
pub use registry::ServiceSlot;
pub use strategy::Strategy;

use crate::buffers::Priority;
use crate::identity::PeerId;
use crate::messaging::request::RefuseCode;
use core::time::Duration;

/// The subject prefix of services: a service `name` is served on `$SVC.<name>`.
pub const PREFIX: &str = "$SVC.";
/// The longest service name: a subject of at most 256 bytes with the prefix.
pub const MAX_NAME: usize = crate::messaging::subject::MAX_SUBJECT_LEN - PREFIX.len();
/// The longest service description.
pub const DESCRIPTION_MAX: usize = 128;
/// Most attempts one call can make (the retry cap is at most `MAX_ATTEMPTS - 1`).
pub const MAX_ATTEMPTS: usize = 8;
/// Most providers a requester considers for one attempt (the `max_providers` bound).
pub const MAX_PROVIDERS: usize = 16;
/// Round-robin cursors kept (one per recently requested service; the oldest is reused).
pub const RR_CURSORS: usize = 8;

/// The service name of a `$SVC.` subject, as an incoming request carries it.
pub fn name_of(subject: &str) -> Option<&str> {
    subject.strip_prefix(PREFIX)
}

/// A registered service, as [`crate::messaging::Messenger::register_service`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceId(pub u16);

/// A service request, as [`crate::messaging::Messenger::request_service`] returns it: the
/// table slot in the low 16 bits, a generation above, so a stale id never names a new call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u32);

impl CallId {
    pub(crate) fn new(slot: usize, gen: u16) -> Self {
        CallId((u32::from(gen) << 16) | slot as u32)
    }
    pub(crate) fn slot(self) -> usize {
        (self.0 & 0xffff) as usize
    }
    pub(crate) fn gen(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Why one attempt failed (the call then goes on with the next provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptError {
    /// The provider has no handler (it unregistered, or its interest is stale).
    NoResponders,
    /// The provider refused: busy, version mismatch, expired, malformed.
    Refused(RefuseCode),
    /// No answer within the attempt's timeout.
    Timeout,
    /// The session to the provider ended.
    Disconnected,
    /// This node could not queue it (queue full, per-peer pending limit...).
    NotSent,
}

/// How a service call ended, in [`crate::messaging::MessengerEvent::Service`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceOutcome<'a> {
    /// A provider answered.
    Response { provider: PeerId, body: &'a [u8] },
    /// A provider's handler answered with an error: an answer, so no failover.
    Failed { provider: PeerId, code: u16, message: &'a str },
    /// No provider left that was not tried (or none known at a retry).
    NoResponders,
    /// The call's deadline passed.
    Timeout,
    /// The retry cap was reached.
    RetryCap,
    /// [`crate::messaging::Messenger::cancel_service`] ended it.
    Cancelled,
}

/// The options of one service call; start from [`ServiceOptions::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ServiceOptions<'a> {
    /// The whole call's deadline from now; `None`: `MessagingConfig::default_timeout`.
    pub deadline: Option<Duration>,
    /// Attempts after the first; `None`: `MessagingConfig::service_retries`.
    pub retries: Option<u8>,
    /// The version the caller speaks (§15.2); empty: any.
    pub version: &'a str,
    pub priority: Option<Priority>,
    pub parent: Option<u64>,
}

impl<'a> ServiceOptions<'a> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }
    pub fn retries(mut self, n: u8) -> Self {
        self.retries = Some(n);
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
    pub fn parent(mut self, id: u64) -> Self {
        self.parent = Some(id);
        self
    }
}

/// Counters of services; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceStats {
    pub calls: u64,
    pub attempts: u64,
    /// Attempts that failed over to another provider.
    pub failovers: u64,
    pub answered: u64,
    /// Calls that ended without an answer (NoResponders, Timeout, RetryCap).
    pub unanswered: u64,
}
