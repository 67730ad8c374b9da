//! Two real nodes in one process, over real loopback sockets, for each transport:
//! connect, check identities both ways, exchange 10,000 messages each way (mixed sizes up
//! to the maximum message size, every byte verified), and read RTT figures on both sides.
//!
//! UDP has no retransmission of data in the protocol, so its sender is paced by an
//! application-level window: at most `UDP_WINDOW` bytes of messages the peer has not yet
//! acknowledged (the receiver sends its running count back). Over loopback that makes the
//! run lossless; a lost datagram would show up as a missing message index and fail.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshlink_core::{Keypair, PeerId};
use meshlink_host::{Host, HostConfig, HostError, HostEvent, HostHandle, Listen, PeerUrl, Transport};
use rand_core::OsRng;
use tokio::sync::{mpsc, Notify};

const MESSAGES: u32 = 10_000;
const MAX_MESSAGE: usize = 16 * 1024;
const UDP_WINDOW: u64 = 32 * 1024;
const DATA: u8 = b'D';
const ACK: u8 = b'A';

fn config(name: &str, t: Transport, ip: &str) -> HostConfig {
    let addr = format!("{ip}:0").parse().unwrap();
    let mut listen = Listen::none();
    match t {
        Transport::Tcp => listen.tcp.push(addr),
        Transport::Ws => listen.ws.push(addr),
        Transport::Udp => listen.udp.push(addr),
        other => panic!("transport {other} is not covered by this test"),
    }
    let mut c = HostConfig::default().with(|c| {
        c.name = name.into();
        c.listen = listen;
    });
    c.limits.max_message = MAX_MESSAGE;
    c.limits.send_queue = 64 * 1024;
    // Frequent pings: more RTT samples during the run.
    c.timers.ping_interval_ms = 200;
    c
}

/// SplitMix64: a fast generator for test content (the workspace builds some crates
/// without SIMD, where a ChaCha keystream would dominate the run).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Message `i` of direction `dir`: tag, index, then bytes from a PRNG seeded by both.
/// Sizes: mostly small, a quarter medium, an eighth large (4-16 KiB), and every 97th
/// exactly the maximum.
fn message(dir: u8, i: u32) -> Vec<u8> {
    let mut rng = SplitMix((u64::from(dir) << 32) | u64::from(i));
    let r = rng.next() as usize;
    let size = if i % 97 == 0 {
        MAX_MESSAGE
    } else {
        match r % 16 {
            0..=9 => 5 + r % 64,
            10..=13 => 64 + r % 1200,
            14 => 1200 + r % 3000,
            _ => 4096 + r % (MAX_MESSAGE - 4096 + 1),
        }
    };
    let mut m = vec![0u8; size];
    m[0] = DATA;
    m[1..5].copy_from_slice(&i.to_le_bytes());
    for chunk in m[5..].chunks_mut(8) {
        let x = rng.next().to_le_bytes();
        chunk.copy_from_slice(&x[..chunk.len()]);
    }
    m
}

fn ack(count: u32) -> Vec<u8> {
    let mut m = vec![ACK];
    m.extend_from_slice(&count.to_le_bytes());
    m
}

struct Counters {
    received: AtomicU32,
    peer_acked: AtomicU32,
    wake: Notify,
}

/// Reads events: verifies every data message in order, records acknowledgements.
async fn receive(
    mut events: mpsc::Receiver<HostEvent>,
    peer: PeerId,
    peer_dir: u8,
    c: Arc<Counters>,
) -> Result<(), String> {
    while let Some(ev) = events.recv().await {
        match ev {
            HostEvent::Message { peer: from, data } => {
                if from != peer {
                    return Err(format!("message from unexpected peer {from}"));
                }
                let tag = data.first().copied();
                let n = data.get(1..5).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                match (tag, n) {
                    (Some(ACK), Some(n)) => {
                        c.peer_acked.fetch_max(n, Ordering::AcqRel);
                    }
                    (Some(DATA), Some(i)) => {
                        let want = c.received.load(Ordering::Acquire);
                        if i != want {
                            return Err(format!("got message {i}, expected {want} (lost or reordered)"));
                        }
                        if data[..] != message(peer_dir, i)[..] {
                            return Err(format!("message {i} ({} bytes) has wrong content", data.len()));
                        }
                        c.received.store(want + 1, Ordering::Release);
                    }
                    _ => return Err(format!("malformed message of {} bytes", data.len())),
                }
                c.wake.notify_one();
            }
            HostEvent::Disconnected { reason, .. } => return Err(format!("disconnected: {reason:?}")),
            _ => {}
        }
    }
    Ok(())
}

/// Sends this side's messages (within `window` unacknowledged bytes, if any) and
/// acknowledges what it received, until both directions are complete.
async fn exchange(
    node: HostHandle,
    peer: PeerId,
    dir: u8,
    events: mpsc::Receiver<HostEvent>,
    window: Option<u64>,
) -> Result<u64, String> {
    let c = Arc::new(Counters { received: AtomicU32::new(0), peer_acked: AtomicU32::new(0), wake: Notify::new() });
    let rx = tokio::spawn(receive(events, peer, 3 - dir, c.clone()));
    let (mut next, mut acked_sent, mut bytes) = (0u32, 0u32, 0u64);
    let mut in_flight: VecDeque<(u32, u64)> = VecDeque::new();
    let mut outstanding = 0u64;
    let err = |e: HostError| e.to_string();
    loop {
        let received = c.received.load(Ordering::Acquire);
        if received > acked_sent {
            node.send(peer, ack(received)).await.map_err(err)?;
            acked_sent = received;
        }
        let peer_acked = c.peer_acked.load(Ordering::Acquire);
        while in_flight.front().is_some_and(|(i, _)| *i < peer_acked) {
            outstanding -= in_flight.pop_front().map_or(0, |(_, n)| n);
        }
        if next == MESSAGES && peer_acked == MESSAGES && received == MESSAGES {
            break;
        }
        if next < MESSAGES && (outstanding == 0 || window.is_none_or(|w| outstanding < w)) {
            let m = message(dir, next);
            let n = m.len() as u64;
            node.send(peer, m).await.map_err(err)?;
            in_flight.push_back((next, n));
            outstanding += n;
            bytes += n;
            next += 1;
            continue;
        }
        if tokio::time::timeout(Duration::from_millis(100), c.wake.notified()).await.is_err() {
            if rx.is_finished() {
                return Err(rx.await.map_err(|e| e.to_string())?.err().unwrap_or_else(|| "events ended".into()));
            }
            // Idle: repeat the last acknowledgement in case a datagram carrying it was lost.
            if received > 0 {
                node.send(peer, ack(received)).await.map_err(err)?;
            }
        }
    }
    rx.abort();
    Ok(bytes)
}

async fn start(name: &str, t: Transport, ip: &str) -> HostHandle {
    Host::start(config(name, t, ip), Keypair::generate(&mut OsRng)).await.expect("node starts")
}

fn url_of(node: &HostHandle, t: Transport) -> String {
    let l = node.local_addrs();
    let addr = match t {
        Transport::Tcp => l.tcp[0],
        Transport::Ws => l.ws[0],
        Transport::Udp => l.udp[0],
        other => panic!("transport {other} is not covered by this test"),
    };
    PeerUrl::for_addr(t, addr)
}

/// Connects `a` to `b` and checks who is who on both sides.
async fn connect_pair(
    a: &HostHandle,
    b: &HostHandle,
    t: Transport,
) -> (mpsc::Receiver<HostEvent>, mpsc::Receiver<HostEvent>) {
    let mut ev_a = a.events().await.unwrap();
    let mut ev_b = b.events().await.unwrap();
    let s = a.connect(&url_of(b, t), Some(b.peer_id())).await.expect("connect");
    assert_eq!(s.peer, b.peer_id(), "a sees b's identity");
    assert_eq!(s.transport, t);
    assert_eq!(s.name, "b");
    let connected = async |ev: &mut mpsc::Receiver<HostEvent>| loop {
        match ev.recv().await {
            Some(HostEvent::Connected { peer, transport, hello, .. }) => {
                break (peer, transport, hello.name.to_string())
            }
            Some(_) => {}
            None => panic!("events ended"),
        }
    };
    let within = Duration::from_secs(10);
    let (pb, tb, nb) = tokio::time::timeout(within, connected(&mut ev_b)).await.expect("b sees a connect");
    assert_eq!((pb, tb, nb.as_str()), (a.peer_id(), t, "a"), "b sees a's identity");
    let (pa, ta, _) = tokio::time::timeout(within, connected(&mut ev_a)).await.expect("a's Connected event");
    assert_eq!((pa, ta), (b.peer_id(), t));
    for (node, other) in [(a, b), (b, a)] {
        let peers = node.peers().await.unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!((peers[0].peer, peers[0].transport), (other.peer_id(), t));
    }
    (ev_a, ev_b)
}

async fn run_transport(t: Transport, ip: &str, window: Option<u64>) {
    let a = start("a", t, ip).await;
    let b = start("b", t, ip).await;
    let (ev_a, ev_b) = connect_pair(&a, &b, t).await;
    let began = Instant::now();
    let (ra, rb) = tokio::join!(
        exchange(a.clone(), b.peer_id(), 1, ev_a, window),
        exchange(b.clone(), a.peer_id(), 2, ev_b, window)
    );
    let secs = began.elapsed().as_secs_f64();
    let bytes = ra.expect("a's side") + rb.expect("b's side");
    for (node, other) in [(&a, &b), (&b, &a)] {
        let q = node.quality(other.peer_id()).await.unwrap().expect("still connected");
        let rtt = q.rtt_us.expect("an RTT figure");
        assert!(rtt > 0, "RTT must be non-zero");
        assert!(q.counters.msgs_in >= u64::from(MESSAGES), "msgs_in {}", q.counters.msgs_in);
    }
    let (qa, qb) = (a.quality(b.peer_id()).await.unwrap().unwrap(), b.quality(a.peer_id()).await.unwrap().unwrap());
    println!(
        "{t} over {ip}: {} messages in {secs:.2} s = {:.0} msg/s, {:.1} MB/s; rtt a->b {} us, b->a {} us",
        2 * MESSAGES,
        f64::from(2 * MESSAGES) / secs,
        bytes as f64 / secs / 1e6,
        qa.rtt_us.unwrap_or(0),
        qb.rtt_us.unwrap_or(0),
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_exchanges_10k_messages_each_way() {
    tokio::time::timeout(Duration::from_secs(120), run_transport(Transport::Tcp, "127.0.0.1", None)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_exchanges_10k_messages_each_way() {
    tokio::time::timeout(Duration::from_secs(120), run_transport(Transport::Ws, "127.0.0.1", None)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_exchanges_10k_messages_each_way_paced() {
    let run = run_transport(Transport::Udp, "127.0.0.1", Some(UDP_WINDOW));
    tokio::time::timeout(Duration::from_secs(120), run).await.unwrap();
}

/// IPv6: every transport over ::1, with a shorter exchange (the long one runs on IPv4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_works_over_ipv6() {
    for t in [Transport::Tcp, Transport::Ws, Transport::Udp] {
        let a = start("a", t, "[::1]").await;
        let b = start("b", t, "[::1]").await;
        assert!(url_of(&b, t).contains("[::1]:"), "{}", url_of(&b, t));
        let (mut ev_a, _ev_b) = connect_pair(&a, &b, t).await;
        for i in 0..100u32 {
            b.send(a.peer_id(), message(2, i)).await.unwrap();
        }
        for i in 0..100u32 {
            let data = loop {
                match tokio::time::timeout(Duration::from_secs(10), ev_a.recv()).await.unwrap() {
                    Some(HostEvent::Message { data, .. }) => break data,
                    Some(_) => {}
                    None => panic!("events ended"),
                }
            };
            assert_eq!(data[..], message(2, i)[..], "{t} message {i}");
        }
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }
}

/// The peer must prove the key `connect` names (F04): another key is a typed failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expected_key_is_a_typed_handshake_failure() {
    for t in [Transport::Tcp, Transport::Udp] {
        let a = start("a", t, "127.0.0.1").await;
        let b = start("b", t, "127.0.0.1").await;
        let impostor = Keypair::generate(&mut OsRng).peer_id();
        let e = a.connect(&url_of(&b, t), Some(impostor)).await.unwrap_err();
        match e {
            HostError::Handshake { reason, .. } => assert!(
                matches!(reason, meshlink_core::DisconnectReason::Error(meshlink_core::Error::PeerKeyMismatch { got, .. }) if got == b.peer_id()),
                "{t}: {reason:?}"
            ),
            e => panic!("{t}: {e}"),
        }
        assert!(a.peers().await.unwrap().is_empty());
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }
}
