//! Caller-owned storage for the messaging layer, in the style of smoltcp's
//! `ManagedSlice`: each table is a slice the caller lends (`&'a mut [T]`, a `static` on
//! firmware) or, with feature `alloc`, one the messenger owns (`Box<[T]>`). Its length is
//! the table's hard capacity; [`super::MessagingConfig`] sets run-time limits within it.

use core::ops::{Deref, DerefMut};

use super::pending::{ConnEntry, RequestSlot};
use super::pubsub::{InterestEntry, OriginSlot, PeerSub, SeenEntry, SubSlot};
use super::request::HandlerSlot;

/// One table: borrowed from the caller or (feature `alloc`) owned on the heap.
#[derive(Debug)]
pub enum Store<'a, T> {
    Borrowed(&'a mut [T]),
    #[cfg(feature = "alloc")]
    Owned(alloc::boxed::Box<[T]>),
}

impl<T> Store<'_, T> {
    /// An empty table (capacity 0).
    pub fn empty() -> Self {
        Store::Borrowed(&mut [])
    }
}

#[cfg(feature = "alloc")]
impl<T: Clone> Store<'_, T> {
    /// A heap table of `n` copies of `fill`.
    pub fn heap(n: usize, fill: T) -> Self {
        Store::Owned(alloc::vec![fill; n].into_boxed_slice())
    }
}

impl<T> Deref for Store<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Store::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            Store::Owned(b) => b,
        }
    }
}

impl<T> DerefMut for Store<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Store::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            Store::Owned(b) => b,
        }
    }
}

impl<'a, T> From<&'a mut [T]> for Store<'a, T> {
    fn from(s: &'a mut [T]) -> Self {
        Store::Borrowed(s)
    }
}

#[cfg(feature = "alloc")]
impl<T> From<alloc::boxed::Box<[T]>> for Store<'_, T> {
    fn from(b: alloc::boxed::Box<[T]>) -> Self {
        Store::Owned(b)
    }
}

#[cfg(feature = "alloc")]
impl<T> From<alloc::vec::Vec<T>> for Store<'_, T> {
    fn from(v: alloc::vec::Vec<T>) -> Self {
        Store::Owned(v.into_boxed_slice())
    }
}

/// Every table of the messaging layer. Built empty and filled table by table, so a table
/// added by a later pattern (subscriptions, interest, a seen-cache) is one more builder
/// method with an empty default, never a breaking change:
///
/// ```
/// use meshlink_core::messaging::{ConnEntry, HandlerSlot, MessengerStorage, RequestSlot};
/// // On firmware these live in `static`s (through `static_cell`); leaked here.
/// let requests: &'static mut [RequestSlot] = Box::leak(Box::new([RequestSlot::EMPTY; 8]));
/// let conns: &'static mut [ConnEntry] = Box::leak(Box::new([ConnEntry::EMPTY; 4]));
/// let handlers: &'static mut [HandlerSlot] = Box::leak(Box::new([HandlerSlot::EMPTY; 2]));
/// let scratch: &'static mut [u8] = Box::leak(Box::new([0u8; 1024]));
/// let storage = MessengerStorage::new().requests(requests).conns(conns).handlers(handlers).scratch(scratch);
/// assert_eq!(storage.request_capacity(), 8);
/// ```
#[derive(Debug)]
pub struct MessengerStorage<'a> {
    pub(crate) requests: Store<'a, RequestSlot>,
    pub(crate) conns: Store<'a, ConnEntry>,
    pub(crate) handlers: Store<'a, HandlerSlot>,
    pub(crate) scratch: Store<'a, u8>,
    pub(crate) subs: Store<'a, SubSlot>,
    pub(crate) peer_subs: Store<'a, PeerSub>,
    pub(crate) origins: Store<'a, OriginSlot>,
    pub(crate) interest: Store<'a, InterestEntry>,
    pub(crate) seen: Store<'a, SeenEntry>,
    pub(crate) functions: Store<'a, super::rpc::FnSlot>,
    pub(crate) services: Store<'a, super::service::ServiceSlot>,
    pub(crate) calls: Store<'a, super::service::CallSlot>,
    pub(crate) call_bodies: Store<'a, u8>,
}

impl Default for MessengerStorage<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> MessengerStorage<'a> {
    /// Every table empty.
    pub fn new() -> Self {
        MessengerStorage {
            requests: Store::empty(),
            conns: Store::empty(),
            handlers: Store::empty(),
            scratch: Store::empty(),
            subs: Store::empty(),
            peer_subs: Store::empty(),
            origins: Store::empty(),
            interest: Store::empty(),
            seen: Store::empty(),
            functions: Store::empty(),
            services: Store::empty(),
            calls: Store::empty(),
            call_bodies: Store::empty(),
        }
    }
    /// The pending-request table: the most requests in flight (at most 65,535).
    pub fn requests(mut self, t: impl Into<Store<'a, RequestSlot>>) -> Self {
        self.requests = t.into();
        self
    }
    /// One entry per node slot (at least `Node::capacity()` entries): per-session counts.
    pub fn conns(mut self, t: impl Into<Store<'a, ConnEntry>>) -> Self {
        self.conns = t.into();
        self
    }
    /// The handler table: the most registered request handlers.
    pub fn handlers(mut self, t: impl Into<Store<'a, HandlerSlot>>) -> Self {
        self.handlers = t.into();
        self
    }
    /// Where outgoing messaging packets are encoded: the largest request or response
    /// packet (`Config::max_message` is enough for any the node would send).
    pub fn scratch(mut self, t: impl Into<Store<'a, u8>>) -> Self {
        self.scratch = t.into();
        self
    }
    /// Pub/sub (§15.3): this node's subscriptions. Empty: `subscribe` fails `SubLimit`.
    pub fn subs(mut self, t: impl Into<Store<'a, SubSlot>>) -> Self {
        self.subs = t.into();
        self
    }
    /// Pub/sub: one entry per node slot (at least `Node::capacity()`, or none: pub/sub
    /// then ignores every neighbour).
    pub fn peer_subs(mut self, t: impl Into<Store<'a, PeerSub>>) -> Self {
        self.peer_subs = t.into();
        self
    }
    /// Pub/sub: the origins (subscribing nodes, this one included) known. Empty: pub/sub off.
    pub fn origins(mut self, t: impl Into<Store<'a, OriginSlot>>) -> Self {
        self.origins = t.into();
        self
    }
    /// Pub/sub: the interest entries of every origin together.
    pub fn interest(mut self, t: impl Into<Store<'a, InterestEntry>>) -> Self {
        self.interest = t.into();
        self
    }
    /// Pub/sub: the seen-cache (4-way sets; its window, `pubsub::seen`).
    pub fn seen(mut self, t: impl Into<Store<'a, SeenEntry>>) -> Self {
        self.seen = t.into();
        self
    }
    /// The RPC function table (§15.5): the most registered functions. Empty (the
    /// default): RPC is off, and `$RPC.` requests go to the request handlers.
    pub fn functions(mut self, t: impl Into<Store<'a, super::rpc::FnSlot>>) -> Self {
        self.functions = t.into();
        self
    }
    /// Services (§15.4): the services this node provides. Empty: `register_service`
    /// fails `ServiceLimit`.
    pub fn services(mut self, t: impl Into<Store<'a, super::service::ServiceSlot>>) -> Self {
        self.services = t.into();
        self
    }
    /// Services: the calls in progress (at most 65,535). Empty: `request_service` fails
    /// `ServiceCallLimit`.
    pub fn calls(mut self, t: impl Into<Store<'a, super::service::CallSlot>>) -> Self {
        self.calls = t.into();
        self
    }
    /// Services: the call bodies, kept for failover; each call slot gets an equal share.
    pub fn call_bodies(mut self, t: impl Into<Store<'a, u8>>) -> Self {
        self.call_bodies = t.into();
        self
    }
    pub fn request_capacity(&self) -> usize {
        self.requests.len()
    }

    /// Heap tables sized for a node of `node_capacity` slots and `max_message` bytes.
    #[cfg(feature = "alloc")]
    pub fn heap(
        config: &super::MessagingConfig,
        node_capacity: usize,
        max_message: usize,
    ) -> MessengerStorage<'static> {
        MessengerStorage {
            requests: Store::heap(config.max_pending, RequestSlot::EMPTY),
            conns: Store::heap(node_capacity, ConnEntry::EMPTY),
            handlers: Store::heap(config.max_handlers, HandlerSlot::EMPTY),
            scratch: Store::heap(max_message, 0u8),
            subs: Store::heap(config.max_subs, SubSlot::EMPTY),
            peer_subs: Store::heap(node_capacity, PeerSub::EMPTY),
            origins: Store::heap(config.max_origins, OriginSlot::EMPTY),
            interest: Store::heap(config.max_interest, InterestEntry::EMPTY),
            seen: Store::heap(config.seen_cache, SeenEntry::EMPTY),
            // RPC functions: as many as request handlers.
            functions: Store::heap(config.max_handlers, super::rpc::FnSlot::EMPTY),
            services: Store::heap(config.max_services, super::service::ServiceSlot::EMPTY),
            calls: Store::heap(config.max_service_calls, super::service::CallSlot::EMPTY),
            call_bodies: Store::heap(config.max_service_calls * config.service_body_max, 0u8),
        }
    }
}
