//! Fault tests (issue 3, acceptance 3): a node killed mid-transfer is noticed and
//! re-dialled when it returns, over TCP (a `meshlink up` child killed with SIGKILL) and
//! UDP (where only the dead-peer timeout can tell); re-dialling backs off and stops when
//! told; hostile stream input that `hostile.rs` does not cover (an oversized frame over
//! TCP, oversized and partial WebSocket frames) closes only its connection; and `wss://`
//! carries a meshlink session through TLS with a self-signed certificate.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshlink_core::{DisconnectReason, Keypair, PeerId};
use meshlink_host::{Host, HostConfig, HostError, HostEvent, HostHandle, Listen, Transport};
use rand_core::{OsRng, RngCore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_meshlink");
const DEAD_PEER: Duration = Duration::from_millis(1000);

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshlink-faults-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Short core timers, so that a dead peer shows within a second, and quick re-dials.
fn fast(mut c: HostConfig) -> HostConfig {
    c.timers.ping_interval_ms = 200;
    c.timers.dead_peer_timeout_ms = DEAD_PEER.as_millis() as u64;
    c.timers.handshake_timeout_ms = 1500;
    c.timers.connect_timeout_ms = 1000;
    c.reconnect.base_ms = 100;
    c.reconnect.max_ms = 800;
    c
}

fn listen_on(t: Transport) -> Listen {
    let lo = vec!["127.0.0.1:0".parse().unwrap()];
    match t {
        Transport::Tcp => Listen::none().with(|c| c.tcp = lo),
        Transport::Ws => Listen::none().with(|c| c.ws = lo),
        Transport::Udp => Listen::none().with(|c| c.udp = lo),
        other => panic!("transport {other} is not covered by this test"),
    }
}

async fn next_event(ev: &mut mpsc::Receiver<HostEvent>, within: Duration, what: &str) -> HostEvent {
    match tokio::time::timeout(within, ev.recv()).await {
        Ok(Some(e)) => e,
        r => panic!("waiting for {what}: {r:?}"),
    }
}

/// Waits for the first event `pick` accepts; the others are skipped.
async fn wait_event<T>(
    ev: &mut mpsc::Receiver<HostEvent>,
    within: Duration,
    what: &str,
    mut pick: impl FnMut(&HostEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Some(x) = pick(&next_event(ev, left, what).await) {
            return x;
        }
    }
}

/// A `meshlink up` child whose stdout lines arrive on a channel.
struct Daemon {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MESHLINK_")) {
            cmd.env_remove(k);
        }
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Daemon { child, lines, seen: Vec::new() }
    }

    async fn wait_for(&mut self, pat: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => {
                    let hit = l.contains(pat);
                    self.seen.push(l);
                    if hit {
                        return self.seen.last().cloned().unwrap_or_default();
                    }
                }
                _ => {
                    panic!("no line with {pat:?}; saw:\n{}", self.seen[self.seen.len().saturating_sub(30)..].join("\n"))
                }
            }
        }
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, &self.child.id().to_string()]).status();
    }

    fn reap(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

/// A node killed with SIGKILL while a transfer to it runs: the survivor sees the TCP
/// connection die at once (well within the dead-peer timeout), re-dials with backoff
/// while the port is closed, and reconnects on its own when the node returns with the
/// same key on the same port. `disconnect` then stops the re-dialling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_tcp_node_is_noticed_and_redialled_when_it_returns() {
    let dir = tempdir("tcp");
    let d = dir.to_str().unwrap();
    let common = ["up", "--data-dir", d, "--name", "victim", "--ws", "off", "--udp", "off", "--control", "off"];
    let mut victim = Daemon::start(&[&common[..], &["--tcp", "127.0.0.1:0"]].concat());
    let id: PeerId =
        victim.wait_for("peer id", Duration::from_secs(20)).await.split_whitespace().last().unwrap().parse().unwrap();
    let url = victim.wait_for("tcp://", Duration::from_secs(5)).await.split_whitespace().last().unwrap().to_string();
    let port = url.rsplit(':').next().unwrap().to_string();

    let survivor =
        Host::start(fast(HostConfig::default().with(|c| c.listen = Listen::none())), Keypair::generate(&mut OsRng))
            .await
            .unwrap();
    let mut ev = survivor.events().await.unwrap();
    assert_eq!(survivor.connect_persistent(&url, Some(id)).await.unwrap().peer, id);

    // The transfer: 1 KiB messages as fast as the victim takes them.
    let (s2, sent) = (survivor.clone(), std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)));
    let sent2 = sent.clone();
    let transfer = tokio::spawn(async move {
        loop {
            if s2.send(id, vec![b'x'; 1024]).await.is_ok() {
                sent2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    victim.wait_for("message", Duration::from_secs(5)).await;
    victim.signal("-KILL");
    let killed = Instant::now();
    let _ = victim.child.wait();
    let reason = wait_event(&mut ev, Duration::from_secs(5), "Disconnected", |e| match e {
        HostEvent::Disconnected { peer: Some(p), reason, .. } if *p == id => Some(*reason),
        _ => None,
    })
    .await;
    let noticed = killed.elapsed();
    // Noticed by the socket closing, not by the dead-peer timer (the figure is printed).
    assert!(
        matches!(reason, DisconnectReason::TransportClosed | DisconnectReason::Error(_)),
        "TCP death noticed as {reason:?} after {noticed:?}"
    );
    assert!(sent.load(std::sync::atomic::Ordering::Relaxed) > 0, "the transfer was running");

    // While the node is down, the survivor keeps trying (refused dials back off).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let t = survivor.reconnect_targets().await.unwrap();
    assert_eq!(t.len(), 1);
    assert!(!t[0].connected && t[0].failures >= 1, "{t:?}");

    let mut victim = Daemon::start(&[&common[..], &["--tcp", &format!("127.0.0.1:{port}")]].concat());
    victim.wait_for("peer id", Duration::from_secs(20)).await;
    let back = Instant::now();
    wait_event(&mut ev, Duration::from_secs(10), "reconnection", |e| match e {
        HostEvent::Connected { peer, .. } if *peer == id => Some(()),
        _ => None,
    })
    .await;
    let reconnect = back.elapsed();
    eprintln!("tcp: death noticed after {noticed:?}; reconnected {reconnect:?} after the node was back");
    transfer.abort();
    survivor.send(id, &b"after the restart"[..]).await.unwrap();
    victim.wait_for("after the restart", Duration::from_secs(5)).await;

    // The user's disconnect ends the re-dialling: no new session follows.
    survivor.disconnect(id).await.unwrap();
    assert!(survivor.reconnect_targets().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(survivor.peers().await.unwrap().is_empty(), "re-dialled after disconnect");
    victim.reap();
    survivor.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The UDP victim runs in its own runtime, so that the test can kill it abruptly: shutting
/// the runtime down drops its tasks and sockets without a Close going out, as a crash.
struct RtNode {
    rt: tokio::runtime::Runtime,
    node: HostHandle,
}

impl RtNode {
    fn start(secret: [u8; 32], udp: &str) -> RtNode {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let mut cfg = fast(HostConfig::default().with(|c| c.name = "victim".into()));
        cfg.listen = Listen::none().with(|c| c.udp = vec![udp.parse().unwrap()]);
        // The port was just freed by the killed runtime: retry briefly if the bind races it.
        let node = rt.block_on(async {
            for _ in 0..50 {
                match Host::start(cfg.clone(), Keypair::from_secret(secret)).await {
                    Ok(n) => return n,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            panic!("cannot bind {udp}");
        });
        RtNode { rt, node }
    }

    /// Sends `text-N` to `peer` every 20 ms from inside the victim's runtime.
    fn chatter(&self, peer: PeerId, text: &'static str) {
        let n = self.node.clone();
        self.rt.spawn(async move {
            for i in 0u64.. {
                let _ = n.send(peer, format!("{text}-{i}").into_bytes()).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    fn kill(self) {
        self.rt.shutdown_timeout(Duration::from_secs(2));
    }
}

/// Over UDP a killed node just goes silent: the survivor (a `meshlink up` child with the
/// victim as a configured peer) reports it after the dead-peer timeout, keeps re-dialling,
/// and is connected again soon after the victim is back on the same port with the same
/// key; the victim's messages then flow again.
#[test]
fn killed_udp_node_times_out_and_configured_peer_is_redialled() {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let id = Keypair::from_secret(secret).peer_id();
    let victim = RtNode::start(secret, "127.0.0.1:0");
    let udp = victim.node.local_addrs().udp[0].to_string();

    let dir = tempdir("udp");
    let conf = dir.join("config.toml");
    std::fs::write(
        &conf,
        "[timers]\nping_interval_ms = 200\ndead_peer_timeout_ms = 1000\nhandshake_timeout_ms = 1500\n\
         [reconnect]\nbase_ms = 100\nmax_ms = 800\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let url = format!("udp://{udp}");
    let id_s = id.to_string();
    let args = ["up", "--data-dir", d, "--config", conf.to_str().unwrap(), "--tcp", "off", "--ws", "off"];
    let rest = ["--udp", "127.0.0.1:0", "--control", "off", "--connect", &url, "--expect", &id_s];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut survivor = Daemon::start(&[&args[..], &rest[..]].concat());

    rt.block_on(survivor.wait_for("] connected", Duration::from_secs(20)));
    let survivor_id: PeerId = survivor
        .seen
        .iter()
        .find(|l| l.contains("peer id"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    victim.chatter(survivor_id, "before");
    rt.block_on(survivor.wait_for("before-3", Duration::from_secs(5)));

    victim.kill();
    let killed = Instant::now();
    let line = rt.block_on(survivor.wait_for(&format!("disconnected  {id_s}"), Duration::from_secs(5)));
    let noticed = killed.elapsed();
    assert!(line.contains("timed out"), "{line}");
    // By the dead-peer timer ("timed out"), the only way to notice a silent UDP peer.

    std::thread::sleep(Duration::from_millis(500)); // a few failed handshakes
    let victim = RtNode::start(secret, &udp);
    let back = Instant::now();
    rt.block_on(survivor.wait_for("] connected", Duration::from_secs(10)));
    let reconnect = back.elapsed();
    eprintln!("udp: death noticed after {noticed:?}; reconnected {reconnect:?} after the node was back");
    victim.chatter(survivor_id, "after");
    rt.block_on(survivor.wait_for("after-3", Duration::from_secs(5)));
    victim.kill();
    survivor.reap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A persistent peer that never answers is re-dialled with growing, jittered delays
/// (not in a tight loop), and `stop_reconnect` ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redialling_a_dead_address_backs_off_and_stops_when_told() {
    // A port with nothing behind it: bind, note, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = fast(HostConfig::default().with(|c| c.listen = Listen::none()));
    cfg.reconnect.base_ms = 50;
    cfg.reconnect.max_ms = 400;
    let a = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let url = format!("tcp://{dead}");
    match a.connect_persistent(&url, None).await {
        Err(HostError::Io { .. }) => {}
        r => panic!("expected a refused dial, got {r:?}"),
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let attempts = a.stats().await.unwrap().reconnect_attempts;
    // Ceilings 50, 100, 200, 400, 400...: expected delays sum to about 1.6 s over the
    // first 6 failures, so roughly 6-12 attempts in 2 s; a tight loop would make thousands,
    // no retry at all would make 1. (Loose bounds: a loaded machine runs fewer.)
    eprintln!("redial: {attempts} attempts in 2 s");
    assert!((2..=40).contains(&attempts), "{attempts} attempts in 2 s");
    let t = a.reconnect_targets().await.unwrap();
    assert_eq!((t.len(), t[0].connected), (1, false));
    assert!(u64::from(t[0].failures) + 1 >= attempts, "{t:?} after {attempts} attempts");
    assert!(a.stop_reconnect(&url).await.unwrap());
    assert!(!a.stop_reconnect(&url).await.unwrap(), "already stopped");
    let after = a.stats().await.unwrap().reconnect_attempts;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(a.stats().await.unwrap().reconnect_attempts, after, "still dialling after stop_reconnect");
    a.shutdown().await.unwrap();
}

/// A persistent target whose peer is already connected (it dialled us) stands by: the
/// call returns that session, no second one is made, and when that session ends the
/// target dials the peer itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_target_stands_by_while_its_peer_is_connected_inbound() {
    let a = Host::start(
        fast(HostConfig::default().with(|c| c.listen = listen_on(Transport::Tcp))),
        Keypair::generate(&mut OsRng),
    )
    .await
    .unwrap();
    let b = Host::start(
        fast(HostConfig::default().with(|c| c.listen = listen_on(Transport::Tcp))),
        Keypair::generate(&mut OsRng),
    )
    .await
    .unwrap();
    let mut ev = a.events().await.unwrap();
    b.connect(&format!("tcp://{}", a.local_addrs().tcp[0]), Some(a.peer_id())).await.unwrap();
    let is_b = |e: &HostEvent| match e {
        HostEvent::Connected { peer, conn, .. } if *peer == b.peer_id() => Some(*conn),
        _ => None,
    };
    let inbound = wait_event(&mut ev, Duration::from_secs(5), "the inbound session", is_b).await;
    let s = a.connect_persistent(&format!("tcp://{}", b.local_addrs().tcp[0]), Some(b.peer_id())).await.unwrap();
    assert_eq!((s.peer, s.addr), (b.peer_id(), a.peers().await.unwrap()[0].addr), "the existing session");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = a.peers().await.unwrap();
    assert_eq!((before.len(), before[0].conn, before[0].role), (1, inbound, meshlink_core::noise::Role::Responder));
    assert_eq!(a.stats().await.unwrap().node.handshakes_completed, 1, "no second handshake");

    // The inbound session ends (b closes it): a's target wakes and dials b.
    b.disconnect(a.peer_id()).await.unwrap();
    let conn = wait_event(&mut ev, Duration::from_secs(5), "a new session", is_b).await;
    assert_ne!(conn, inbound);
    let p = a.peers().await.unwrap();
    assert_eq!((p.len(), p[0].role), (1, meshlink_core::noise::Role::Initiator), "a dialled this time");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Whether the server closed `s` within `within` (EOF or reset); bytes before that (a
/// Reject, a WebSocket Close) are fine.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// A raw WebSocket client: the HTTP upgrade by hand, so that frames can be malformed.
async fn raw_ws(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut r = BufReader::new(&mut s);
    let mut status = String::new();
    r.read_line(&mut status).await.unwrap();
    assert!(status.contains(" 101 "), "upgrade refused: {status}");
    loop {
        let mut l = String::new();
        r.read_line(&mut l).await.unwrap();
        if l == "\r\n" {
            break;
        }
    }
    s
}

/// Malformed input the TCP test in `hostile.rs` does not cover, each on its own
/// connection: a maximal frame of junk over TCP, a WebSocket frame announcing more than
/// the frame limit, a WebSocket frame cut off half way, and an unmasked (server-style)
/// frame from a client. Each is closed; the real peer on the same node keeps talking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_partial_frames_close_only_their_connection() {
    let mut cfg = HostConfig::default()
        .with(|cfg| cfg.listen = listen_on(Transport::Tcp).with(|c| c.ws = vec!["127.0.0.1:0".parse().unwrap()]));
    // No handshake deadline within the test: whatever closes these sockets in time is the
    // frame check, or the first-byte timeout for the frame that never completes.
    cfg.timers.handshake_timeout_ms = 600_000;
    cfg.timers.first_byte_timeout_ms = 2000;
    let b = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let a = Host::start(HostConfig::default().with(|c| c.listen = Listen::none()), Keypair::generate(&mut OsRng))
        .await
        .unwrap();
    let (tcp, ws) = (b.local_addrs().tcp[0], b.local_addrs().ws[0]);
    a.connect(&format!("ws://{ws}"), Some(b.peer_id())).await.unwrap();
    let mut events = b.events().await.unwrap();

    // The largest length prefix, then that many junk bytes: the core takes the whole
    // frame, finds no valid record, and closes, without waiting for the handshake deadline.
    let mut big = TcpStream::connect(tcp).await.unwrap();
    let mut junk = vec![0u8; 2 + 65535];
    OsRng.fill_bytes(&mut junk);
    junk[..3].copy_from_slice(&[0xff, 0xff, 0xee]);
    big.write_all(&junk).await.unwrap();
    // A frame header announcing 2^40 bytes: over the WebSocket frame limit at once.
    let mut ws_big = raw_ws(ws).await;
    let mut hdr = vec![0x82, 0x80 | 127];
    hdr.extend_from_slice(&(1u64 << 40).to_be_bytes());
    hdr.extend_from_slice(&[1, 2, 3, 4]);
    ws_big.write_all(&hdr).await.unwrap();
    // 10 of 100 announced bytes, then silence: no first message, the first-byte timeout ends it.
    let mut ws_part = raw_ws(ws).await;
    ws_part.write_all(&[0x82, 0x80 | 100, 9, 9, 9, 9]).await.unwrap();
    ws_part.write_all(&[0u8; 10]).await.unwrap();
    // Clients must mask their frames (RFC 6455 5.1).
    let mut ws_unmasked = raw_ws(ws).await;
    ws_unmasked.write_all(&[0x82, 4, 0, 0, 0, 0]).await.unwrap();

    assert!(closed_by_server(&mut big, Duration::from_secs(10)).await, "junk frame kept open");
    assert!(closed_by_server(&mut ws_big, Duration::from_secs(3)).await, "oversized WebSocket frame kept open");
    assert!(closed_by_server(&mut ws_unmasked, Duration::from_secs(3)).await, "unmasked frame kept open");
    // First-byte timeout (2 s).
    assert!(closed_by_server(&mut ws_part, Duration::from_secs(8)).await, "partial WebSocket frame kept open");

    a.send(b.peer_id(), &b"still here"[..]).await.unwrap();
    let got = wait_event(&mut events, Duration::from_secs(5), "the real peer's message", |e| match e {
        HostEvent::Message { peer, data } => Some((*peer, data.clone())),
        _ => None,
    })
    .await;
    assert_eq!((got.0, &got.1[..]), (a.peer_id(), &b"still here"[..]));
    assert_eq!(b.peers().await.unwrap().len(), 1);
    // Closed sockets linger until their peer closes too (`net::LINGER`): close ours.
    drop((big, ws_big, ws_unmasked, ws_part));
    for _ in 0..500 {
        if b.open_connections() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.open_connections(), 1, "every hostile socket was released");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// `wss://`: a listener with a self-signed certificate (made here with rcgen); a node
/// that trusts it completes the meshlink handshake inside TLS and exchanges messages both
/// ways, by IP address and by name. A node without the CA, and a plain `ws://` dial to the
/// TLS port, both fail cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_self_signed_certificate_carries_a_session() {
    let dir = tempdir("wss");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();

    let mut cfg = HostConfig::default().with(|c| c.listen = listen_on(Transport::Ws));
    cfg.listen.ws_tls_cert = Some(cert.clone());
    cfg.listen.ws_tls_key = Some(key);
    let b = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let port = b.local_addrs().ws[0].port();
    assert_eq!(b.local_addrs().urls(), vec![format!("wss://127.0.0.1:{port}/")]);
    let mut b_events = b.events().await.unwrap();

    for host in ["127.0.0.1", "localhost"] {
        let cfg = HostConfig::default().with(|c| {
            c.listen = Listen::none();
            c.tls_ca = Some(cert.clone());
        });
        let a = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
        let s = a.connect(&format!("wss://{host}:{port}/"), Some(b.peer_id())).await.unwrap();
        assert_eq!((s.peer, s.transport), (b.peer_id(), Transport::Ws));
        let seen = wait_event(&mut b_events, Duration::from_secs(5), "Connected", |e| match e {
            HostEvent::Connected { peer, .. } => Some(*peer),
            _ => None,
        })
        .await;
        assert_eq!(seen, a.peer_id(), "identity checked both ways");
        let mut a_events = a.events().await.unwrap();
        for i in 0..50u32 {
            let mut m = vec![0u8; 1000 + (i as usize) * 300];
            OsRng.fill_bytes(&mut m);
            a.send(b.peer_id(), m.clone()).await.unwrap();
            let got = wait_event(&mut b_events, Duration::from_secs(5), "a message", |e| match e {
                HostEvent::Message { data, .. } => Some(data.clone()),
                _ => None,
            })
            .await;
            assert_eq!(&got[..], &m[..], "message {i} over wss");
            b.send(a.peer_id(), got).await.unwrap();
            let echo = wait_event(&mut a_events, Duration::from_secs(5), "the echo", |e| match e {
                HostEvent::Message { data, .. } => Some(data.clone()),
                _ => None,
            })
            .await;
            assert_eq!(&echo[..], &m[..], "echo {i} over wss");
        }
        a.shutdown().await.unwrap();
    }

    let mut cfg = HostConfig::default().with(|c| c.listen = Listen::none());
    cfg.timers.connect_timeout_ms = 1000;
    let c = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    match c.connect(&format!("wss://127.0.0.1:{port}/"), None).await {
        Err(HostError::WebSocket { why, .. }) => assert!(why.contains("TLS"), "{why}"),
        r => panic!("an untrusted certificate was accepted: {r:?}"),
    }
    assert!(c.connect(&format!("ws://127.0.0.1:{port}/"), None).await.is_err(), "plain ws:// to a TLS port");
    assert_eq!(c.open_connections(), 0);
    c.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
