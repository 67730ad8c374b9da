//! `meshlink_node`: a host node on its own runtime thread, and the calls on it.

use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use meshlink_core::{Keypair, PeerId, Priority};
use meshlink_host::messaging::{Answer, RequestOpts};
use meshlink_host::pubsub::SubEvent;
use meshlink_host::{Host, HostConfig, HostEvent, HostHandle, Listen};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use super::convert::{self, bytes, peer_id, result_of, text};
use super::events::{Callback, EventQueue, MeshlinkEventCallback, Queued};
use super::types::*;
use crate::guard::guard;
use crate::MeshlinkResult;

/// A running node (opaque).
pub struct MeshlinkNode {
    rt: Option<Runtime>,
    host: HostHandle,
    events: Arc<EventQueue>,
    tasks: Mutex<HashMap<u64, AbortHandle>>,
    next_id: AtomicU64,
}

impl MeshlinkNode {
    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.as_ref().expect("runtime lives until free").block_on(f)
    }
}

/// The node behind a C pointer.
///
/// # Safety
/// `node` is NULL or came from `meshlink_node_new` and was not freed.
unsafe fn node<'a>(node: *const MeshlinkNode) -> Option<&'a MeshlinkNode> {
    // SAFETY: the caller's contract.
    unsafe { node.as_ref() }
}

fn pid(p: *const MeshlinkPeerId) -> Option<PeerId> {
    // SAFETY: every exported fn documents that `peer` points to a MeshlinkPeerId.
    unsafe { p.as_ref() }.map(|p| PeerId::from_bytes(p.bytes))
}

fn status(r: Result<(), meshlink_host::HostError>) -> MeshlinkResult {
    r.map_or_else(|e| result_of(&e), |()| MeshlinkResult::Ok)
}

/// Writes `value` to `out` (non-NULL, checked by the caller).
fn put<T>(out: *mut T, value: T) {
    // SAFETY: the exported fns check `out` for NULL and document it as writable.
    unsafe { out.write(value) }
}

/// Starts a node: a tokio runtime with one worker thread (the driver thread) runs a
/// meshlink-host node listening on TCP (loopback unless `config->listen_any`), with a fresh
/// key. `config` may be NULL (all defaults). On success `*out` is the node; free it with
/// `meshlink_node_free`.
///
/// Thread safety: any thread.
///
/// # Safety
/// `config` is NULL or valid; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_new(
    config: *const MeshlinkConfig,
    out: *mut *mut MeshlinkNode,
) -> MeshlinkResult {
    guard(|| {
        if out.is_null() {
            return MeshlinkResult::InvalidArgument;
        }
        // SAFETY: the caller's contract.
        let cfg = unsafe { config.as_ref() }.copied().unwrap_or(MeshlinkConfig {
            tcp_port: 0,
            listen_any: 0,
            event_capacity: 0,
            reserved: [0; 32],
        });
        if cfg.reserved.iter().any(|b| *b != 0) {
            return MeshlinkResult::InvalidArgument;
        }
        let cap = if cfg.event_capacity == 0 { DEFAULT_EVENT_CAPACITY } else { cfg.event_capacity };
        if cap < 2 {
            return MeshlinkResult::InvalidArgument;
        }
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("meshlink-driver")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => return MeshlinkResult::Io,
        };
        let ip = if cfg.listen_any != 0 { [0, 0, 0, 0] } else { [127, 0, 0, 1] };
        let mut listen = Listen::none();
        listen.tcp = vec![std::net::SocketAddr::from((ip, cfg.tcp_port))];
        let hc = HostConfig::default().with(|c| c.listen = listen);
        let kp = Keypair::generate(&mut rand_core::OsRng);
        let events = Arc::new(EventQueue::new(cap as usize));
        let started = rt.block_on(async {
            let host = Host::start(hc, kp).await?;
            let mut rx = host.events().await?;
            let q = events.clone();
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    if let Some(e) = queued(ev) {
                        q.push(e);
                    }
                }
                q.close();
            });
            Ok::<_, meshlink_host::HostError>(host)
        });
        let host = match started {
            Ok(h) => h,
            Err(e) => return result_of(&e),
        };
        let n =
            MeshlinkNode { rt: Some(rt), host, events, tasks: Mutex::new(HashMap::new()), next_id: AtomicU64::new(1) };
        put(out, Box::into_raw(Box::new(n)));
        MeshlinkResult::Ok
    })
}

fn queued(ev: HostEvent) -> Option<Queued> {
    let none = MeshlinkPeerId { bytes: [0; 32] };
    Some(match ev {
        HostEvent::Connected { peer, quality, .. } => {
            let mut q = Queued::new(MeshlinkEventKind::Connected, peer_id(&peer), Bytes::new());
            q.ev.quality = convert::quality(&quality);
            q
        }
        HostEvent::Disconnected { peer: Some(peer), was_connected: true, .. } => {
            Queued::new(MeshlinkEventKind::Disconnected, peer_id(&peer), Bytes::new())
        }
        HostEvent::Message { peer, data } => Queued::new(MeshlinkEventKind::Message, peer_id(&peer), data),
        HostEvent::Quality { peer, quality } => {
            let mut q = Queued::new(MeshlinkEventKind::Quality, peer_id(&peer), Bytes::new());
            q.ev.quality = convert::quality(&quality);
            q
        }
        HostEvent::Lagged { dropped } => {
            let mut q = Queued::new(MeshlinkEventKind::Lagged, none, Bytes::new());
            q.ev.dropped = dropped;
            q
        }
        _ => return None,
    })
}

/// Stops the node: every peer gets a Close, then the driver stops; later calls give
/// `MESHLINK_RESULT_CLOSED`. Idempotent. Queued events stay pollable.
///
/// Thread safety: any thread.
///
/// # Safety
/// `node` is NULL or a live node.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_stop(node: *mut MeshlinkNode) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let Some(n) = (unsafe { self::node(node) }) else { return MeshlinkResult::InvalidArgument };
        for (_, t) in n.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            t.abort();
        }
        status(n.run(n.host.shutdown()))
    })
}

/// Stops (if not stopped) and frees the node. NULL is a no-op.
///
/// Thread safety: the last call on `node`; no other thread may be using it. Must not be
/// called from an event callback.
///
/// # Safety
/// `node` is NULL or a live node, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_free(node: *mut MeshlinkNode) {
    let _ = guard(|| {
        if node.is_null() {
            return MeshlinkResult::Ok;
        }
        // SAFETY: from Box::into_raw in meshlink_node_new; the caller gives it up.
        let mut n = unsafe { Box::from_raw(node) };
        let _ = n.run(n.host.shutdown());
        n.tasks.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if let Some(rt) = n.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        MeshlinkResult::Ok
    });
}

/// This node's peer id.
///
/// Thread safety: any thread.
///
/// # Safety
/// `node` is a live node, `out` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_peer_id(node: *const MeshlinkNode, out: *mut MeshlinkPeerId) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let Some(n) = (unsafe { self::node(node) }) else { return MeshlinkResult::InvalidArgument };
        if out.is_null() {
            return MeshlinkResult::InvalidArgument;
        }
        put(out, peer_id(&n.host.peer_id()));
        MeshlinkResult::Ok
    })
}

/// The TCP port the node listens on (the ephemeral one resolved).
///
/// Thread safety: any thread.
///
/// # Safety
/// `node` is a live node, `out` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_tcp_port(node: *const MeshlinkNode, out: *mut u16) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let Some(n) = (unsafe { self::node(node) }) else { return MeshlinkResult::InvalidArgument };
        let Some(a) = n.host.local_addrs().tcp.first() else { return MeshlinkResult::Other };
        if out.is_null() {
            return MeshlinkResult::InvalidArgument;
        }
        put(out, a.port());
        MeshlinkResult::Ok
    })
}

/// Connects to `url` (`tcp://127.0.0.1:7400`, `ws://`, `wss://`, `udp://`) and completes
/// the handshake; with `expected` non-NULL the peer must prove that key (else
/// `MESHLINK_RESULT_REFUSED`). Blocks until the session is confirmed or fails. `out` may be
/// NULL; else it gets the peer and its first quality figures.
///
/// Thread safety: any thread; not from an event callback (it would wait on itself).
///
/// # Safety
/// `node` live, `url` a NUL-terminated string, `expected` NULL or valid, `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_connect(
    node: *const MeshlinkNode,
    url: *const c_char,
    expected: *const MeshlinkPeerId,
    out: *mut MeshlinkPeerInfo,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(url)) = (unsafe { self::node(node) }, unsafe { text(url) }) else {
            return MeshlinkResult::InvalidArgument;
        };
        match n.run(n.host.connect(url, pid(expected))) {
            Ok(p) => {
                if !out.is_null() {
                    put(out, convert::peer_info(&p));
                }
                MeshlinkResult::Ok
            }
            Err(e) => result_of(&e),
        }
    })
}

/// Closes the session with `peer` (it gets a Close). `MESHLINK_RESULT_UNKNOWN_PEER` if not
/// connected.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `peer` valid.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_disconnect(
    node: *const MeshlinkNode,
    peer: *const MeshlinkPeerId,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(p)) = (unsafe { self::node(node) }, pid(peer)) else {
            return MeshlinkResult::InvalidArgument;
        };
        status(n.run(n.host.disconnect(p)))
    })
}

/// The connected peers (the known nodes) with their info and quality. Writes
/// `*out_len` = their number; if it exceeds `cap` nothing else is written and the result
/// is `MESHLINK_RESULT_BUFFER_TOO_SMALL` (call again with a larger array). `out` may be
/// NULL when `cap` is 0.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `out` NULL or `cap` writable elements, `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_peers(
    node: *const MeshlinkNode,
    out: *mut MeshlinkPeerInfo,
    cap: usize,
    out_len: *mut usize,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let Some(n) = (unsafe { self::node(node) }) else { return MeshlinkResult::InvalidArgument };
        if out_len.is_null() || (out.is_null() && cap > 0) {
            return MeshlinkResult::InvalidArgument;
        }
        let peers = match n.run(n.host.peers()) {
            Ok(p) => p,
            Err(e) => return result_of(&e),
        };
        put(out_len, peers.len());
        if peers.len() > cap {
            return MeshlinkResult::BufferTooSmall;
        }
        for (i, p) in peers.iter().enumerate() {
            // SAFETY: i < cap elements, the caller's contract.
            put(unsafe { out.add(i) }, convert::peer_info(p));
        }
        MeshlinkResult::Ok
    })
}

/// One connected peer's info (`MESHLINK_RESULT_UNKNOWN_PEER` if not connected).
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `peer` valid, `out` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_get_peer(
    node: *const MeshlinkNode,
    peer: *const MeshlinkPeerId,
    out: *mut MeshlinkPeerInfo,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(p)) = (unsafe { self::node(node) }, pid(peer)) else {
            return MeshlinkResult::InvalidArgument;
        };
        if out.is_null() {
            return MeshlinkResult::InvalidArgument;
        }
        match n.run(n.host.peers()) {
            Ok(all) => match all.iter().find(|s| s.peer == p) {
                Some(s) => {
                    put(out, convert::peer_info(s));
                    MeshlinkResult::Ok
                }
                None => MeshlinkResult::UnknownPeer,
            },
            Err(e) => result_of(&e),
        }
    })
}

/// The quality figures of a connected peer (`MESHLINK_RESULT_UNKNOWN_PEER` if not).
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `peer` valid, `out` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_quality(
    node: *const MeshlinkNode,
    peer: *const MeshlinkPeerId,
    out: *mut MeshlinkQuality,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(p)) = (unsafe { self::node(node) }, pid(peer)) else {
            return MeshlinkResult::InvalidArgument;
        };
        if out.is_null() {
            return MeshlinkResult::InvalidArgument;
        }
        match n.run(n.host.quality(p)) {
            Ok(Some(q)) => {
                put(out, convert::quality(&q));
                MeshlinkResult::Ok
            }
            Ok(None) => MeshlinkResult::UnknownPeer,
            Err(e) => result_of(&e),
        }
    })
}

/// Sets a peer's threat score, within 0..=1 (else `MESHLINK_RESULT_INVALID_ARGUMENT`);
/// above the configured threshold the node drops it.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `peer` valid.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_set_threat_score(
    node: *const MeshlinkNode,
    peer: *const MeshlinkPeerId,
    score: f32,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(p)) = (unsafe { self::node(node) }, pid(peer)) else {
            return MeshlinkResult::InvalidArgument;
        };
        if !(0.0..=1.0).contains(&score) {
            return MeshlinkResult::InvalidArgument;
        }
        status(n.run(n.host.set_threat_score(p, score)))
    })
}

/// Sends `len` bytes to a connected peer; waits while its queue is full.
/// `MESHLINK_RESULT_UNKNOWN_PEER` if not connected, `MESHLINK_RESULT_LIMIT` if too large.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `peer` valid, `data` `len` readable bytes (NULL if 0).
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_send(
    node: *const MeshlinkNode,
    peer: *const MeshlinkPeerId,
    data: *const u8,
    len: usize,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(p), Some(d)) = (unsafe { self::node(node) }, pid(peer), unsafe { bytes(data, len) }) else {
            return MeshlinkResult::InvalidArgument;
        };
        status(n.run(n.host.send(p, Bytes::copy_from_slice(d))))
    })
}

fn write_results(
    rs: meshlink_host::messaging::SendResults,
    out: *mut MeshlinkSendResult,
    cap: usize,
    out_len: *mut usize,
) -> MeshlinkResult {
    put(out_len, rs.len());
    if rs.len() > cap {
        return MeshlinkResult::BufferTooSmall;
    }
    for (i, (p, r)) in rs.iter().enumerate() {
        let result = r.as_ref().map_or_else(result_of, |()| MeshlinkResult::Ok);
        // SAFETY: i < cap elements (the caller's contract).
        put(unsafe { out.add(i) }, MeshlinkSendResult { peer: peer_id(p), result });
    }
    MeshlinkResult::Ok
}

/// Queues `data` for each of `n_peers` peers without waiting; `results` (room for
/// `n_peers`) gets each peer's own result, in order. The call's result is OK when the
/// per-peer results were written, whatever they are.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `peers` `n_peers` ids, `data` `len` bytes, `results` `n_peers` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_send_many(
    node: *const MeshlinkNode,
    peers: *const MeshlinkPeerId,
    n_peers: usize,
    data: *const u8,
    len: usize,
    results: *mut MeshlinkSendResult,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(d)) = (unsafe { self::node(node) }, unsafe { bytes(data, len) }) else {
            return MeshlinkResult::InvalidArgument;
        };
        if (peers.is_null() || results.is_null()) && n_peers > 0 {
            return MeshlinkResult::InvalidArgument;
        }
        let ids: Vec<PeerId> = (0..n_peers)
            // SAFETY: i < n_peers elements.
            .map(|i| PeerId::from_bytes(unsafe { (*peers.add(i)).bytes }))
            .collect();
        let mut written = 0;
        match n.run(n.host.send_many(&ids, Bytes::copy_from_slice(d))) {
            Ok(rs) => write_results(rs, results, n_peers, &mut written),
            Err(e) => result_of(&e),
        }
    })
}

/// Queues `data` for every connected peer; `*out_len` = the number of peers, their results
/// in `results` (`MESHLINK_RESULT_BUFFER_TOO_SMALL` if more than `cap`: the data was still
/// queued; size the array from `meshlink_node_peers`).
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `data` `len` bytes, `results` `cap` writable, `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_send_all(
    node: *const MeshlinkNode,
    data: *const u8,
    len: usize,
    results: *mut MeshlinkSendResult,
    cap: usize,
    out_len: *mut usize,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(d)) = (unsafe { self::node(node) }, unsafe { bytes(data, len) }) else {
            return MeshlinkResult::InvalidArgument;
        };
        if out_len.is_null() || (results.is_null() && cap > 0) {
            return MeshlinkResult::InvalidArgument;
        }
        match n.run(n.host.send_all(Bytes::copy_from_slice(d))) {
            Ok(rs) => write_results(rs, results, cap, out_len),
            Err(e) => result_of(&e),
        }
    })
}

/// Sends a request for `subject` to `peer` and waits up to `timeout_ms` (0: the host's
/// default) for its outcome. OK: the answer is in `out` and `*out_len` its length;
/// `MESHLINK_RESULT_BUFFER_TOO_SMALL`: `*out_len` is the answer's length and the answer is
/// lost (size `out` for the largest answer you accept). Other outcomes: `NO_RESPONDERS`,
/// `TIMEOUT`, `CANCELLED`, `REMOTE_ERROR` (the handler failed), `UNKNOWN_PEER`, `LIMIT`.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `peer` valid, `subject` a C string, `body` `len` bytes, `out` `cap`
/// writable bytes (NULL if 0), `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_request(
    node: *const MeshlinkNode,
    peer: *const MeshlinkPeerId,
    subject: *const c_char,
    body: *const u8,
    len: usize,
    timeout_ms: u32,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(p), Some(s), Some(b)) =
            (unsafe { self::node(node) }, pid(peer), unsafe { text(subject) }, unsafe { bytes(body, len) })
        else {
            return MeshlinkResult::InvalidArgument;
        };
        if out_len.is_null() || (out.is_null() && cap > 0) {
            return MeshlinkResult::InvalidArgument;
        }
        let mut opts = RequestOpts::new();
        if timeout_ms > 0 {
            opts = opts.timeout(Duration::from_millis(timeout_ms.into()));
        }
        match n.run(n.host.request(p, s, Bytes::copy_from_slice(b), opts)) {
            Ok(answer) => {
                put(out_len, answer.len());
                if answer.len() > cap {
                    return MeshlinkResult::BufferTooSmall;
                }
                // SAFETY: answer.len() <= cap writable bytes.
                unsafe { ptr::copy_nonoverlapping(answer.as_ptr(), out, answer.len()) };
                MeshlinkResult::Ok
            }
            Err(e) => result_of(&e),
        }
    })
}

/// Serves `pattern` (wildcards `*`, `>`): each request for it arrives as a
/// `MESHLINK_EVENT_KIND_REQUEST` event; answer with `meshlink_node_respond`. `*out_id`
/// names the registration for `meshlink_node_unserve`.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `pattern` a C string, `out_id` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_serve(
    node: *const MeshlinkNode,
    pattern: *const c_char,
    out_id: *mut u64,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(pat)) = (unsafe { self::node(node) }, unsafe { text(pattern) }) else {
            return MeshlinkResult::InvalidArgument;
        };
        if out_id.is_null() {
            return MeshlinkResult::InvalidArgument;
        }
        let mut reqs = match n.run(n.host.serve(pat, "")) {
            Ok(r) => r,
            Err(e) => return result_of(&e),
        };
        let q = n.events.clone();
        let task = n.rt.as_ref().expect("live").spawn(async move {
            while let Some(req) = reqs.next().await {
                let mut e = Queued::new(MeshlinkEventKind::Request, peer_id(&req.peer), req.body.clone());
                e.ev.request_id = req.id;
                convert::fill_text(&mut e.ev.subject, &req.subject);
                // Dropping `req` leaves it unanswered; `meshlink_node_respond` answers by id.
                q.push(e);
            }
        });
        let id = n.next_id.fetch_add(1, Ordering::Relaxed);
        n.tasks.lock().unwrap_or_else(|p| p.into_inner()).insert(id, task.abort_handle());
        put(out_id, id);
        MeshlinkResult::Ok
    })
}

/// Answers request `request_id` of `peer` (from a `REQUEST` event): with `body` when
/// `error_code` is 0, else with that handler error code (256 or more) and `body` as its
/// UTF-8 message (at most 128 bytes).
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `peer` valid, `body` `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_respond(
    node: *const MeshlinkNode,
    peer: *const MeshlinkPeerId,
    request_id: u64,
    error_code: u16,
    body: *const u8,
    len: usize,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(p), Some(b)) = (unsafe { self::node(node) }, pid(peer), unsafe { bytes(body, len) }) else {
            return MeshlinkResult::InvalidArgument;
        };
        let answer = if error_code == 0 {
            Answer::Body(Bytes::copy_from_slice(b))
        } else {
            let Ok(msg) = std::str::from_utf8(b) else { return MeshlinkResult::InvalidArgument };
            Answer::Error { code: error_code, message: msg.to_string() }
        };
        status(n.run(n.host.respond_to(p, request_id, answer)))
    })
}

/// Subscribes to `pattern` at `priority` (0 high, 1 normal, 2 low); each matching
/// publication arrives as a `PUBLICATION` event with `sub_id` = `*out_id`.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `pattern` a C string, `out_id` writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_subscribe(
    node: *const MeshlinkNode,
    pattern: *const c_char,
    priority: u32,
    out_id: *mut u64,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(pat)) = (unsafe { self::node(node) }, unsafe { text(pattern) }) else {
            return MeshlinkResult::InvalidArgument;
        };
        let prio = match priority {
            0 => Priority::High,
            1 => Priority::Normal,
            2 => Priority::Low,
            _ => return MeshlinkResult::InvalidArgument,
        };
        if out_id.is_null() {
            return MeshlinkResult::InvalidArgument;
        }
        let mut sub = match n.run(n.host.subscribe(pat, prio)) {
            Ok(s) => s,
            Err(e) => return result_of(&e),
        };
        let id = n.next_id.fetch_add(1, Ordering::Relaxed);
        let q = n.events.clone();
        let task = n.rt.as_ref().expect("live").spawn(async move {
            while let Some(ev) = sub.next().await {
                let e = match ev {
                    SubEvent::Message(p) => {
                        let mut e = Queued::new(MeshlinkEventKind::Publication, peer_id(&p.origin), p.body);
                        convert::fill_text(&mut e.ev.subject, &p.subject);
                        e
                    }
                    SubEvent::Lagged { dropped } => {
                        let mut e =
                            Queued::new(MeshlinkEventKind::Lagged, MeshlinkPeerId { bytes: [0; 32] }, Bytes::new());
                        e.ev.dropped = dropped;
                        e
                    }
                    _ => continue,
                };
                let mut e = e;
                e.ev.sub_id = id;
                q.push(e);
            }
        });
        n.tasks.lock().unwrap_or_else(|p| p.into_inner()).insert(id, task.abort_handle());
        put(out_id, id);
        MeshlinkResult::Ok
    })
}

/// Ends a subscription or a served pattern (`id` from `meshlink_node_subscribe` or
/// `meshlink_node_serve`); `MESHLINK_RESULT_INVALID_ARGUMENT` for an unknown id.
///
/// Thread safety: any thread.
///
/// # Safety
/// `node` live.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_unsubscribe(node: *const MeshlinkNode, id: u64) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let Some(n) = (unsafe { self::node(node) }) else { return MeshlinkResult::InvalidArgument };
        match n.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
            Some(t) => {
                t.abort();
                MeshlinkResult::Ok
            }
            None => MeshlinkResult::InvalidArgument,
        }
    })
}

/// Publishes `body` on the literal `subject` to every neighbour whose interest matches;
/// `*out_queued` (may be NULL) = how many it was queued to.
///
/// Thread safety: any thread; not from an event callback.
///
/// # Safety
/// `node` live, `subject` a C string, `body` `len` bytes, `out_queued` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_publish(
    node: *const MeshlinkNode,
    subject: *const c_char,
    body: *const u8,
    len: usize,
    out_queued: *mut u32,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let (Some(n), Some(s), Some(b)) =
            (unsafe { self::node(node) }, unsafe { text(subject) }, unsafe { bytes(body, len) })
        else {
            return MeshlinkResult::InvalidArgument;
        };
        match n.run(n.host.publish(s, Bytes::copy_from_slice(b))) {
            Ok(rep) => {
                if !out_queued.is_null() {
                    put(out_queued, u32::try_from(rep.queued).unwrap_or(u32::MAX));
                }
                MeshlinkResult::Ok
            }
            Err(e) => result_of(&e),
        }
    })
}

/// Waits up to `timeout_ms` (0: do not wait) for an event. OK: `*event` is it and its body
/// (`event->data_len` bytes) is in `buf`; it is removed. `MESHLINK_RESULT_BUFFER_TOO_SMALL`:
/// `*event` is written (with `data_len`) but the event stays queued: poll again with a
/// larger buffer. `MESHLINK_RESULT_WOULD_BLOCK`: no event in time. `MESHLINK_RESULT_CLOSED`:
/// the node stopped and every event was taken.
///
/// Thread safety: any thread; several pollers share one queue (each event goes to one).
///
/// # Safety
/// `node` live, `event` writable, `buf` `cap` writable bytes (NULL if 0).
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_poll_event(
    node: *const MeshlinkNode,
    timeout_ms: u32,
    event: *mut MeshlinkEvent,
    buf: *mut u8,
    cap: usize,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let Some(n) = (unsafe { self::node(node) }) else { return MeshlinkResult::InvalidArgument };
        if event.is_null() || (buf.is_null() && cap > 0) {
            return MeshlinkResult::InvalidArgument;
        }
        let got = n.events.with_front(Duration::from_millis(timeout_ms.into()), |e| {
            put(event, e.ev);
            if e.data.len() > cap {
                return (false, MeshlinkResult::BufferTooSmall);
            }
            // SAFETY: data.len() <= cap writable bytes.
            unsafe { ptr::copy_nonoverlapping(e.data.as_ptr(), buf, e.data.len()) };
            (true, MeshlinkResult::Ok)
        });
        match got {
            Ok(r) => r,
            Err(true) => MeshlinkResult::Closed,
            Err(false) => MeshlinkResult::WouldBlock,
        }
    })
}

/// Registers `callback` (NULL: removes it), called for every event on the driver thread
/// with `userdata` first; `event` and `data` (`event->data_len` bytes) are valid during the
/// call only. The callback must return quickly and must not call any `meshlink_node_*` function
/// (they wait on the driver thread it runs on). With `consume` non-zero the events it sees
/// are not queued for polling.
///
/// Thread safety: any thread; `userdata` is used from the driver thread.
///
/// # Safety
/// `node` live; `callback` safe to call from another thread with `userdata`.
#[no_mangle]
pub unsafe extern "C" fn meshlink_node_set_event_callback(
    node: *const MeshlinkNode,
    callback: MeshlinkEventCallback,
    userdata: *mut c_void,
    consume: u8,
) -> MeshlinkResult {
    guard(|| {
        // SAFETY: the caller's contract.
        let Some(n) = (unsafe { self::node(node) }) else { return MeshlinkResult::InvalidArgument };
        *n.events.callback.lock().unwrap_or_else(|p| p.into_inner()) =
            callback.map(|f| Callback { f, userdata, consume: consume != 0 });
        MeshlinkResult::Ok
    })
}
