//! Silent sockets and an Init flood do not lock out a real peer (issue 13, item 1).
//!
//! An accepted socket takes no handshake slot before its first bytes arrive, and is
//! closed after `timers.first_byte_timeout_ms`; when the socket limit is reached the
//! oldest silent socket makes room; when the half-open cap is reached the oldest inbound
//! handshake makes room. Before: every accepted socket took one of the 16 half-open
//! slots for the 30 s handshake timeout, so 16 silent sockets locked every peer out.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meshlink_core::Keypair;
use meshlink_host::{Host, HostConfig, HostHandle, Listen};
use rand_core::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Room for the clients' sockets and the node's: raise the soft limit to the hard one.
fn raise_nofile(want: u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

async fn node(first_byte_timeout_ms: u64) -> HostHandle {
    let mut cfg = HostConfig::default()
        .with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = vec!["127.0.0.1:0".parse().unwrap()]));
    cfg.timers.first_byte_timeout_ms = first_byte_timeout_ms;
    Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap()
}

async fn dial_from(src: Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    let s = TcpSocket::new_v4().ok()?;
    s.bind((src, 0).into()).ok()?;
    tokio::time::timeout(Duration::from_secs(5), s.connect(to)).await.ok()?.ok()
}

/// Whether the server closes `s` within `within` (EOF or reset).
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_hold_no_handshake_slot_and_close_at_the_first_byte_timeout() {
    let b = node(500).await;
    let to = b.local_addrs().tcp[0];
    let mut socks = Vec::new();
    for _ in 0..20 {
        socks.push(dial_from(Ipv4Addr::LOCALHOST, to).await.unwrap());
    }
    while b.open_connections() < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await; // all accepted
    }
    let s = b.stats().await.unwrap();
    assert_eq!((s.node.half_open, s.node.sessions), (0, 0), "silence takes no handshake slot");
    for s in &mut socks {
        assert!(closed_by_server(s, Duration::from_secs(10)).await, "a silent socket is closed");
    }
    // The client sees the close a moment before the server's task ends and counts it.
    for _ in 0..500 {
        if b.open_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.open_connections(), 0);
    b.shutdown().await.unwrap();
}

/// The first bytes a node sends when it dials: an XX Init, replayable by a flood.
async fn capture_init() -> Vec<u8> {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let c = Host::start(HostConfig::default().with(|c| c.listen = Listen::none()), Keypair::generate(&mut OsRng))
        .await
        .unwrap();
    let dial = tokio::spawn(async move { c.connect(&url, None).await });
    let (mut s, _) = l.accept().await.unwrap();
    let mut b = vec![0u8; 4096];
    let n = s.read(&mut b).await.unwrap();
    dial.abort();
    b.truncate(n);
    assert!(n > 0);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_peer_connects_through_1000_silent_sockets_and_an_init_flood() {
    raise_nofile(8192);
    let b = node(3_000).await;
    let to = b.local_addrs().tcp[0];
    let init = Arc::new(capture_init().await);
    let stop = Arc::new(AtomicBool::new(false));
    let (silent_opened, inits_sent) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    // 1,000 silent sockets from 127.0.0.2..=41 (25 each, under the per-IP limit of 32),
    // reopened as soon as the node closes them.
    for i in 0..1000u32 {
        let (stop, opened) = (stop.clone(), silent_opened.clone());
        tasks.push(tokio::spawn(async move {
            let src = Ipv4Addr::new(127, 0, 0, 2 + (i % 40) as u8);
            while !stop.load(Ordering::Relaxed) {
                if let Some(mut s) = dial_from(src, to).await {
                    opened.fetch_add(1, Ordering::Relaxed);
                    let _ = closed_by_server(&mut s, Duration::from_secs(1)).await;
                    if !stop.load(Ordering::Relaxed) && closed_by_server(&mut s, Duration::from_secs(60)).await {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    // An Init flood: 4 sockets from each of 127.0.0.50..=57 (the per-IP half-open cap),
    // each sending a real Init and then nothing, reopened when closed.
    for i in 0..32u32 {
        let (stop, init, sent) = (stop.clone(), init.clone(), inits_sent.clone());
        tasks.push(tokio::spawn(async move {
            let src = Ipv4Addr::new(127, 0, 0, 50 + (i % 8) as u8);
            while !stop.load(Ordering::Relaxed) {
                if let Some(mut s) = dial_from(src, to).await {
                    if s.write_all(&init).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                        let _ = closed_by_server(&mut s, Duration::from_secs(60)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    // The flood is in place: the socket limit and the half-open cap are both reached.
    let cap = HostConfig::default().limits.max_half_open;
    let mut stats = b.stats().await.unwrap();
    for _ in 0..3000 {
        if stats.node.half_open >= cap && b.open_connections() >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stats = b.stats().await.unwrap();
    }
    assert_eq!(stats.node.half_open, cap, "the Init flood fills the half-open cap");
    assert!(b.open_connections() >= 500, "the silent sockets fill the socket limit: {}", b.open_connections());

    let a = Host::start(HostConfig::default().with(|c| c.listen = Listen::none()), Keypair::generate(&mut OsRng))
        .await
        .unwrap();
    // A real peer retries like the reconnect logic would; under the flood, a few tries
    // at most (each handshake can be evicted only by 16 newer ones).
    let mut tries = 0;
    let connected = loop {
        tries += 1;
        match a.connect(&format!("tcp://{to}"), Some(b.peer_id())).await {
            Ok(s) => break Some(s),
            Err(e) if tries < 3 => eprintln!("try {tries}: {e}"),
            Err(e) => {
                eprintln!("try {tries}: {e}");
                break None;
            }
        }
    };
    let s = b.stats().await.unwrap();
    eprintln!(
        "silent flood: {} silent sockets opened, {} Inits sent; {} open sockets, {} half-open, {} handshakes evicted; \
         real peer in {tries} tries",
        silent_opened.load(Ordering::Relaxed),
        inits_sent.load(Ordering::Relaxed),
        b.open_connections(),
        s.node.half_open,
        s.handshakes_evicted,
    );
    let summary = connected.expect("the real peer connects while the flood runs");
    assert_eq!(summary.peer, b.peer_id());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
