//! Benchmark (issue 13, item 4): the node's RSS while a peer pings every millisecond and
//! never reads, with the default `limits.max_write_queue`. Prints RSS once a second and
//! when the node disconnects the peer. The node also sends to that peer, so that the
//! loopback kernel buffers (several MiB) fill within seconds instead of minutes.
//!
//! `cargo run --release -p meshlink-host --example slow_reader_rss [SECONDS]`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshlink_core::Keypair;
use meshlink_host::{Host, HostConfig, HostEvent, Listen};
use rand_core::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Forwards one connection to `to`; once `mute` is set, never reads `to` again.
async fn muting_relay(to: SocketAddr, mute: Arc<AtomicBool>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut a, _) = l.accept().await.unwrap();
        let s = TcpSocket::new_v4().unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        let b = s.connect(to).await.unwrap();
        let (mut br, mut bw) = b.into_split();
        let (mut ar, mut aw) = a.split();
        let up = async {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = ar.read(&mut buf).await {
                if n == 0 || bw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        let down = async {
            let mut buf = vec![0u8; 65536];
            while !mute.load(Ordering::SeqCst) {
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(20), br.read(&mut buf)).await {
                    match r {
                        Ok(n) if n > 0 && aw.write_all(&buf[..n]).await.is_ok() => {}
                        _ => break,
                    }
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::join!(up, down);
    });
    addr
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut cfg = HostConfig::default()
        .with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = vec!["127.0.0.1:0".parse().unwrap()]));
    cfg.timers.write_timeout_ms = 600_000; // only the queue bound may end it
    let max = cfg.limits.max_write_queue;
    let victim = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let mut acfg = HostConfig::default().with(|c| c.listen = Listen::none());
    acfg.timers.ping_interval_ms = 10; // the core's floor (Config::validate)
    acfg.timers.dead_peer_timeout_ms = 600_000;
    acfg.reconnect.enabled = false;
    let attacker = Host::start(acfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let mute = Arc::new(AtomicBool::new(false));
    let via = muting_relay(victim.local_addrs().tcp[0], mute.clone()).await;
    let mut events = victim.events().await.unwrap();
    attacker.connect(&format!("tcp://{via}"), Some(victim.peer_id())).await.unwrap();
    while victim.peers().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mute.store(true, Ordering::SeqCst);
    let (v, to) = (victim.clone(), attacker.peer_id());
    tokio::spawn(async move { while v.send(to, vec![0u8; 16 * 1024]).await.is_ok() {} });
    let began = Instant::now();
    let rss0 = rss_kib();
    println!("slow reader: max_write_queue {max} B; RSS at start {} MiB", rss0 / 1024);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut peak = rss0;
    while began.elapsed() < Duration::from_secs(secs) {
        tokio::select! {
            _ = tick.tick() => {
                let r = rss_kib();
                peak = peak.max(r);
                println!("  {:5.1} s  RSS {:6.1} MiB", began.elapsed().as_secs_f64(), r as f64 / 1024.0);
            }
            ev = events.recv() => {
                if let Some(HostEvent::Disconnected { peer: Some(p), reason, .. }) = ev {
                    if p == attacker.peer_id() {
                        println!("  {:5.1} s  disconnected: {}", began.elapsed().as_secs_f64(), meshlink_host::error::reason_text(&reason));
                    }
                }
            }
        }
    }
    let s = victim.stats().await.unwrap();
    println!(
        "peak RSS {} MiB (start {} MiB); slow-peer disconnects {}",
        peak / 1024,
        rss0 / 1024,
        s.slow_peer_disconnects
    );
    attacker.shutdown().await.unwrap();
    victim.shutdown().await.unwrap();
}
