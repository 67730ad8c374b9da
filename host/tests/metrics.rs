//! Issue 12, acceptance 7: the counters exported at `/metrics` never decrease across
//! connects and disconnects. A node with its control API; a second node (always the same
//! key, so its per-peer series come back under the same labels) connects over TCP and UDP
//! in turn, exchanges a few messages and is disconnected, several times. `/metrics` is
//! scraped after every step and every series typed `counter` is checked against the last
//! value seen for it.
// HostConfig is being made #[non_exhaustive]: outside the crate it is built by assignment.
#![allow(clippy::field_reassign_with_default)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use meshlink_core::{Keypair, PeerId};
use meshlink_host::control::{self, ControlOptions, ControlServer};
use meshlink_host::{Host, HostConfig, HostEvent, HostHandle, Listen, PeerUrl, Transport};
use rand_core::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const WAIT: Duration = Duration::from_secs(10);

async fn node(name: &str, key: Keypair) -> HostHandle {
    let mut cfg = HostConfig::default();
    cfg.name = name.into();
    cfg.listen = Listen::loopback();
    Host::start(cfg, key).await.unwrap()
}

async fn with_control(name: &str) -> (HostHandle, ControlServer) {
    let n = node(name, Keypair::generate(&mut OsRng)).await;
    let mut opts = ControlOptions::new("127.0.0.1:0".parse().unwrap(), TOKEN.into());
    opts.name = name.into();
    let server = control::serve(n.clone(), opts).await.unwrap();
    (n, server)
}

/// `GET /metrics` with the token, over a plain socket: the body.
async fn scrape(api: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    let req =
        format!("GET /metrics HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await.expect("a reply within 10 s").unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    body.to_string()
}

/// The exposition parsed: every sample (`name{labels}` → value) of a family typed
/// `counter`, and the names of every family with its type.
fn parse(body: &str) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let mut types = BTreeMap::new();
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "{name} typed twice");
        }
    }
    let mut counters = BTreeMap::new();
    for l in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {l:?}"));
        let family = series.split('{').next().unwrap();
        let kind = types.get(family).unwrap_or_else(|| panic!("{family} has no TYPE line"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
        if kind == "counter" {
            assert!(family.ends_with("_total"), "a counter is named *_total: {family}");
            counters.insert(series.to_string(), v);
        } else {
            assert_eq!(kind, "gauge", "{l}");
            assert!(!family.ends_with("_total"), "a gauge is not named *_total: {family}");
        }
    }
    (counters, types)
}

/// Scrapes and checks that no counter seen before went down; remembers the new values.
/// A series that is absent now (a peer that left) is not a decrease, but if it comes back
/// it must not be lower than it was.
async fn check(api: SocketAddr, seen: &mut BTreeMap<String, f64>, step: &str) -> BTreeMap<String, f64> {
    let (now, _) = parse(&scrape(api).await);
    for (series, v) in &now {
        if let Some(before) = seen.get(series) {
            assert!(v >= before, "{series} went down from {before} to {v} at step {step:?}");
        }
        seen.insert(series.clone(), *v);
    }
    now
}

async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ok().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn recv_messages(ev: &mut mpsc::Receiver<HostEvent>, from: PeerId, n: usize) {
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(WAIT, ev.recv()).await.expect("a message within 10 s") {
            Some(HostEvent::Message { peer, .. }) if peer == from => got += 1,
            Some(_) => {}
            None => panic!("node stopped"),
        }
    }
}

fn url(n: &HostHandle, t: Transport) -> String {
    let l = n.local_addrs();
    PeerUrl::for_addr(t, if t == Transport::Tcp { l.tcp[0] } else { l.udp[0] })
}

fn value(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name).unwrap_or_else(|| panic!("no counter {name}: {m:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_never_decrease_across_connects_and_disconnects() {
    let (a, server) = with_control("alpha").await;
    let api = server.local_addr();
    let b_key = Keypair::generate(&mut OsRng);
    let mut seen = BTreeMap::new();
    let first = check(api, &mut seen, "start").await;
    let (_, types) = parse(&scrape(api).await);
    // Levels are gauges, so that a disconnect may lower them.
    for g in ["sessions", "connected_peers", "half_open", "stream_connections", "control_connections"] {
        assert_eq!(types.get(&format!("meshlink_{g}")).map(String::as_str), Some("gauge"), "{g}");
    }
    let mut last = first;
    let mut a_events = a.events().await.unwrap();

    for (round, t) in [Transport::Tcp, Transport::Udp, Transport::Tcp, Transport::Udp].into_iter().enumerate() {
        // A fresh process for the second node each round, with the same key: its series
        // come back under the same labels, and a per-session figure would go down.
        let b = node("bravo", b_key.clone()).await;
        let mut b_events = b.events().await.unwrap();
        let p = b.connect(&url(&a, t), Some(a.peer_id())).await.unwrap();
        assert_eq!(p.transport, t);
        until("alpha to list bravo", async || a.peers().await.unwrap().iter().any(|p| p.peer == b.peer_id())).await;
        check(api, &mut seen, &format!("round {round} {t}: connected")).await;

        // A few messages each way, smaller every round, so that a per-session byte count
        // of a later session is below the one before.
        let n = 4 - round;
        for i in 0..n {
            b.send(a.peer_id(), Bytes::from(vec![i as u8; 300 / (round + 1)])).await.unwrap();
            a.send(b.peer_id(), Bytes::from(vec![i as u8; 200 / (round + 1)])).await.unwrap();
        }
        recv_messages(&mut a_events, b.peer_id(), n).await;
        recv_messages(&mut b_events, a.peer_id(), n).await;
        let now = check(api, &mut seen, &format!("round {round} {t}: messages")).await;
        for c in ["messages_in_total", "messages_out_total", "bytes_in_total", "bytes_out_total"] {
            let c = format!("meshlink_{c}");
            assert!(value(&now, &c) > value(&last, &c), "{c} did not grow in round {round}");
        }
        let done = value(&now, "meshlink_handshakes_completed_total");
        assert!(done >= (round + 1) as f64, "handshakes_completed {done} after {} sessions", round + 1);

        // Disconnect: even rounds from alpha, odd ones by stopping bravo.
        if round % 2 == 0 {
            a.disconnect(b.peer_id()).await.unwrap();
        }
        b.shutdown().await.unwrap();
        until("alpha to drop bravo", async || a.peers().await.unwrap().is_empty()).await;
        last = check(api, &mut seen, &format!("round {round} {t}: disconnected")).await;
        assert!(!last.keys().any(|k| k.contains("peer=")), "no per-peer counter of a gone peer: {last:?}");
    }
    // The totals kept what the four sessions carried: 4 + 3 + 2 + 1 messages each way.
    assert_eq!(value(&last, "meshlink_messages_in_total"), 10.0);
    assert_eq!(value(&last, "meshlink_messages_out_total"), 10.0);
}
