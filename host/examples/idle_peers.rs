//! Benchmark (issue 12, acceptance 5): a host holding many idle connected peers on
//! loopback, and its resident memory per idle peer (target: at most 16 KiB).
//!
//! The node under test runs in a child process (this example, re-run with `--server`), so
//! its RSS is not muddled by the clients. The parent drives the clients: each is a bare
//! core node (`HeapNode` of one slot) on its own TCP socket, from 127.0.0.2.. so the
//! per-IP caps see several hosts, at most `--concurrent` (default 8) handshakes at a time; afterwards
//! they only answer pings. Figures are printed, never asserted.
//!
//! Run: `cargo run --release -p meshlink-host --example idle_peers -- [PEERS] [--concurrent=N]
//! [--half-open=N]` (defaults 10,000, 8, 64). It raises its own RLIMIT_NOFILE soft limit
//! to PEERS + 1024 (the hard limit must allow that: `ulimit -Hn`).
//!
//! `--half-open` is the server's `limits.max_half_open`. It must cover the burst, not
//! only the clients' `--concurrent` gate: a client counts itself connected (and lets the
//! next one start) once the responder's message arrives, but the server keeps that
//! session half open until the client's first record is read. On a loaded machine that
//! lag piles up, and at the cap the server evicts its oldest half-open session, which is
//! a client that already counted itself connected. With the core default (16) and a burst,
//! a few of 10,000 were lost that way; the server's `handshakes_evicted` figure shows it.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meshlink_core::{Config, Event, HeapNode, Instant, Keypair, PeerId, TransportKind};
use meshlink_host::{Host, HostConfig, Listen};
use rand_core::{OsRng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

/// `--name=N` as a number.
fn flag(name: &str, default: usize) -> usize {
    let pre = format!("--{name}=");
    std::env::args().find_map(|a| a.strip_prefix(&pre).and_then(|v| v.parse().ok())).unwrap_or(default)
}

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

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn peers_arg() -> usize {
    std::env::args().skip(1).find(|a| !a.starts_with("--")).and_then(|a| a.parse().ok()).unwrap_or(10_000)
}

/// The node under test: prints its port and id, runs until stdin closes.
async fn server(peers: usize) {
    if std::env::var_os("RUST_LOG").is_some() {
        // `RUST_LOG=meshlink_host=debug` shows why the server closed a socket.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    raise_nofile(peers as u64 + 1024);
    let mut cfg = HostConfig::default()
        .with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = vec!["127.0.0.1:0".parse().unwrap()]));
    cfg.limits.max_peers = peers + 64;
    cfg.limits.max_connections = peers + 128;
    cfg.limits.max_connections_per_ip = peers;
    cfg.limits.max_half_open = flag("half-open", 64);
    cfg.limits.max_half_open_per_ip = 16;
    cfg.name = "idle-bench".into();
    let h = Host::start(cfg, Keypair::generate(&mut OsRng)).await.expect("server starts");
    println!("READY {} {}", h.local_addrs().tcp[0], h.peer_id());
    std::io::stdout().flush().unwrap();
    // Wait for the parent to close stdin, in a blocking thread.
    let _ = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
    })
    .await;
    let st = h.stats().await.ok();
    eprintln!("server stats at exit: {st:?}");
}

async fn client(i: usize, server: SocketAddr, server_id: PeerId, gate: Arc<Semaphore>, up: Arc<AtomicUsize>) {
    let mut permit = Some(gate.acquire_owned().await.unwrap());
    let epoch = std::time::Instant::now();
    let src = Ipv4Addr::new(127, 0, (1 + i / 250 % 250) as u8, (2 + i % 250) as u8);
    let sock = TcpSocket::new_v4().unwrap();
    if let Err(e) = sock.bind((src, 0).into()) {
        eprintln!("client {i}: bind {src}: {e}");
        return;
    }
    let mut s = match sock.connect(server).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("client {i}: connect: {e}");
            return;
        }
    };
    let cfg = Config::default().with(|c| {
        c.max_message = 1024;
        c.send_queue = 4096;
        c.max_frame = 2048;
    });
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let mut node = HeapNode::with_capacity(cfg, Keypair::generate(&mut OsRng), seed, 1).unwrap();
    let now = || Instant::since(epoch);
    let conn = node.connect(now(), TransportKind::Stream, server, Some(server_id)).unwrap();
    let mut out = vec![0u8; 4096];
    let mut inb = vec![0u8; 4096];
    loop {
        while let Some(t) = node.poll_transmit(now(), &mut out) {
            if s.write_all(&out[..t.len]).await.is_err() {
                return;
            }
        }
        if !drain(i, &mut node, &mut permit, &up) {
            return;
        }
        let wait = node.poll_timeout().map_or(Duration::from_secs(60), |t| {
            Duration::from_micros(t.as_micros().saturating_sub(now().as_micros()))
        });
        tokio::select! {
            r = s.read(&mut inb) => {
                let n = match r { Ok(0) | Err(_) => { node.handle_stream_closed(conn, now()); 0 } Ok(n) => n };
                let mut at = 0;
                while at < n {
                    match node.handle_stream(conn, now(), &inb[at..n]) {
                        Ok(used) => at += used,
                        Err(e) => {
                            eprintln!("client {i}: {e}");
                            break;
                        }
                    }
                    if !drain(i, &mut node, &mut permit, &up) {
                        return;
                    }
                }
            }
            _ = tokio::time::sleep(wait) => node.handle_timeout(now()),
        }
    }
}

/// Handles a client's events; false once its session is gone.
fn drain(
    i: usize,
    node: &mut HeapNode,
    permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    up: &AtomicUsize,
) -> bool {
    while let Some(e) = node.poll_event() {
        match e {
            Event::Connected { .. } => {
                up.fetch_add(1, Ordering::Relaxed);
                *permit = None; // the next client may start its handshake
            }
            Event::Disconnected { reason, was_connected, .. } => {
                if was_connected {
                    up.fetch_sub(1, Ordering::Relaxed);
                }
                eprintln!("client {i}: disconnected: {reason:?}");
                return false;
            }
            _ => {}
        }
    }
    true
}

fn main() {
    let peers = peers_arg();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if std::env::args().any(|a| a == "--server") {
        rt.block_on(server(peers));
        return;
    }
    raise_nofile(peers as u64 + 1024);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--server".to_string(), peers.to_string(), format!("--half-open={}", flag("half-open", 64))])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let mut it = line.split_whitespace().skip(1);
    let addr: SocketAddr = it.next().unwrap().parse().unwrap();
    let id: PeerId = it.next().unwrap().parse().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = rss_kib(pid);
    let up = Arc::new(AtomicUsize::new(0));
    let began = std::time::Instant::now();
    rt.block_on(async {
        let gate = Arc::new(Semaphore::new(flag("concurrent", 8)));
        for i in 0..peers {
            tokio::spawn(client(i, addr, id, gate.clone(), up.clone()));
        }
        // Until all are up, or no progress for 10 s (a client that failed is reported).
        let (mut last, mut since) = (0, std::time::Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let n = up.load(Ordering::Relaxed);
            if n != last {
                (last, since) = (n, std::time::Instant::now());
            }
            if n >= peers || since.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        let setup = began.elapsed();
        // Let the peers sit idle through a few ping rounds (5 s interval).
        tokio::time::sleep(Duration::from_secs(12)).await;
        let n = up.load(Ordering::Relaxed);
        let rss1 = rss_kib(pid);
        println!(
            "idle_peers: {n} of {peers} connected in {:.1} s; server RSS {rss0} KiB idle -> {rss1} KiB; \
             {:.1} KiB per idle peer (target <= 16)",
            setup.as_secs_f64(),
            (rss1.saturating_sub(rss0)) as f64 / n.max(1) as f64,
        );
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
