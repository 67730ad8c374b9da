//! Connection limits and timeouts at the socket level (F11).

use std::time::Duration;

use meshlink_core::Keypair;
use meshlink_host::{Host, HostConfig, HostError, Listen};
use rand_core::OsRng;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

async fn node(cfg: HostConfig) -> meshlink_host::HostHandle {
    Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap()
}

/// Whether the server closed `s` within `within` (EOF or reset), rather than keeping it.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 16];
    matches!(tokio::time::timeout(within, s.read(&mut b)).await, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_limit_refuses_extra_sockets_at_accept_and_frees_slots() {
    let mut cfg = HostConfig::default()
        .with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = vec!["127.0.0.1:0".parse().unwrap()]));
    cfg.limits.max_connections_per_ip = 2;
    let b = node(cfg).await;
    let addr = b.local_addrs().tcp[0];
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the acceptor take both before the extra ones arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let mut extra = TcpStream::connect(addr).await.unwrap();
        assert!(closed_by_server(&mut extra, Duration::from_secs(2)).await, "socket over the per-IP limit was kept");
    }
    for s in &mut held {
        assert!(!closed_by_server(s, Duration::from_millis(200)).await, "socket within the limit was closed");
    }
    assert_eq!(b.open_connections(), 2);
    drop(held);
    // Closing the idle sockets frees the slots: a real node then connects.
    let a = node(HostConfig::default().with(|c| c.listen = Listen::none())).await;
    let url = format!("tcp://{addr}");
    let mut connected = None;
    for _ in 0..50 {
        match a.connect(&url, Some(b.peer_id())).await {
            Ok(s) => {
                connected = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(connected.expect("connects once slots are free").peer, b.peer_id());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_limit_counts_outbound_connections() {
    let target = node(
        HostConfig::default()
            .with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = vec!["127.0.0.1:0".parse().unwrap()])),
    )
    .await;
    let mut cfg = HostConfig::default().with(|c| c.listen = Listen::none());
    cfg.limits.max_connections = 1;
    let a = node(cfg).await;
    let url = format!("tcp://{}", target.local_addrs().tcp[0]);
    a.connect(&url, None).await.unwrap();
    match a.connect(&url, None).await {
        Err(HostError::ConnectionLimit { limit: 1 }) => {}
        r => panic!("expected the connection limit, got {r:?}"),
    }
    a.shutdown().await.unwrap();
    target.shutdown().await.unwrap();
}

/// A server that accepts TCP but never answers the WebSocket upgrade: the dial gives up
/// after the connect timeout with a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_that_never_answers_times_out() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let keep = tokio::spawn(async move {
        let mut socks = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            socks.push(s);
        }
    });
    let mut cfg = HostConfig::default().with(|c| c.listen = Listen::none());
    cfg.timers.connect_timeout_ms = 300;
    let a = node(cfg).await;
    let began = std::time::Instant::now();
    match a.connect(&format!("ws://{addr}"), None).await {
        Err(HostError::ConnectTimeout { addr: got }) => assert_eq!(got, addr),
        r => panic!("expected a connect timeout, got {r:?}"),
    }
    assert!(began.elapsed() < Duration::from_secs(3));
    assert_eq!(a.open_connections(), 0, "the failed dial released its slot");
    keep.abort();
    a.shutdown().await.unwrap();
}
