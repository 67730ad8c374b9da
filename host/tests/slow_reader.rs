//! A peer that makes the node reply and never reads the replies is disconnected with a
//! reason (issue 13, item 4): control replies (Pongs) count against the writer's bound
//! `limits.max_write_queue` like everything else. Before: they bypassed it, the queue
//! grew without limit, and only the write timeout (if ever) ended the connection.
//!
//! The hostile peer is a real node whose bytes pass a relay: once the session is up,
//! the relay stops reading what the victim sends back (and keeps a tiny receive
//! buffer), while the attacker pings every millisecond and the victim keeps sending. The RSS figure of the same
//! attack, with default limits, is printed by `cargo run --release --example
//! slow_reader_rss`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meshlink_core::{DisconnectReason, Error, Keypair};
use meshlink_host::{Host, HostConfig, HostEvent, Listen};
use rand_core::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

/// Forwards one connection to `to`; after `mute` is set, stops reading `to`'s replies.
async fn muting_relay(to: SocketAddr, mute: Arc<AtomicBool>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut a, _) = l.accept().await.unwrap();
        let s = TcpSocket::new_v4().unwrap();
        s.set_recv_buffer_size(4096).unwrap(); // the victim's bytes back up quickly
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
                match tokio::time::timeout(Duration::from_millis(20), br.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => {
                        if aw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
            std::future::pending::<()>().await; // muted: never read again
        };
        tokio::join!(up, down);
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_pings_and_never_reads_is_disconnected_with_a_reason() {
    const MAX_WRITE_QUEUE: usize = 64 * 1024;
    let mut cfg = HostConfig::default()
        .with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = vec!["127.0.0.1:0".parse().unwrap()]));
    cfg.limits.max_write_queue = MAX_WRITE_QUEUE;
    // Only the bound may end it: no write or dead-peer timeout within the test.
    cfg.timers.write_timeout_ms = 600_000;
    let victim = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let mut attacker_cfg = HostConfig::default().with(|c| c.listen = Listen::none());
    attacker_cfg.timers.ping_interval_ms = 10; // the core's floor (Config::validate)
    attacker_cfg.timers.dead_peer_timeout_ms = 600_000;
    attacker_cfg.reconnect.enabled = false;
    let attacker = Host::start(attacker_cfg, Keypair::generate(&mut OsRng)).await.unwrap();

    let mute = Arc::new(AtomicBool::new(false));
    let via = muting_relay(victim.local_addrs().tcp[0], mute.clone()).await;
    let mut events = victim.events().await.unwrap();
    attacker.connect(&format!("tcp://{via}"), Some(victim.peer_id())).await.unwrap();
    while victim.peers().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await; // the victim confirms a moment later
    }
    mute.store(true, Ordering::SeqCst);
    // Replies to 1 ms pings alone take minutes to fill loopback's kernel buffers (several
    // MiB): the victim's own messages to the peer fill them at once. They pass the
    // application high-water mark (above this bound); what the core then writes counts
    // against the bound like the Pongs.
    let bulk = {
        let (v, to) = (victim.clone(), attacker.peer_id());
        tokio::spawn(async move { while v.send(to, vec![0u8; 16 * 1024]).await.is_ok() {} })
    };
    let reason = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Some(HostEvent::Disconnected { peer: Some(p), reason, .. }) if p == attacker.peer_id() => break reason,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("the peer that never reads is disconnected");
    match reason {
        DisconnectReason::Error(Error::QueueFull { needed, free }) => {
            assert!(needed > free && free <= MAX_WRITE_QUEUE, "needed {needed}, free {free}")
        }
        r => panic!("disconnected for another reason: {r:?}"),
    }
    bulk.await.unwrap(); // its last send failed: the peer is gone
    let s = victim.stats().await.unwrap();
    assert_eq!((s.slow_peer_disconnects, s.stream_connections), (1, 0));
    assert!(victim.peers().await.unwrap().is_empty());
    attacker.shutdown().await.unwrap();
    victim.shutdown().await.unwrap();
}

/// Sends waiting for a congested peer are capped (`limits.max_parked_sends`): past the
/// cap `send` fails at once with `QueueFull` instead of queueing without bound.
/// Before: every waiting send was kept, however many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_waiting_for_a_peer_that_never_reads_are_capped() {
    let mut cfg = HostConfig::default()
        .with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = vec!["127.0.0.1:0".parse().unwrap()]));
    cfg.limits.max_parked_sends = 2;
    cfg.timers.write_timeout_ms = 600_000;
    let victim = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let mut peer_cfg = HostConfig::default().with(|c| c.listen = Listen::none());
    peer_cfg.timers.dead_peer_timeout_ms = 600_000;
    let peer = Host::start(peer_cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let mute = Arc::new(AtomicBool::new(false));
    let via = muting_relay(victim.local_addrs().tcp[0], mute.clone()).await;
    peer.connect(&format!("tcp://{via}"), Some(victim.peer_id())).await.unwrap();
    while victim.peers().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mute.store(true, Ordering::SeqCst);
    let to = peer.peer_id();
    // Send until a send waits (the socket and the writer's high-water mark are full).
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first = {
        let (v, sent) = (victim.clone(), sent.clone());
        tokio::spawn(async move {
            loop {
                v.send(to, vec![0u8; 16 * 1024]).await.unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break; // one send is parked and stays parked: the peer never reads
        }
        last = now;
    }
    // More sends, one at a time: at most `max_parked_sends` (2) of them can wait, so one
    // of the first three extra sends fails at once with QueueFull. (Spawned, so a machine
    // too loaded for the heuristic above to be exact cannot hang the test.)
    let mut extra = Vec::new();
    let full = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let v = victim.clone();
            let h = tokio::spawn(async move { v.send(to, vec![0u8; 16]).await });
            tokio::time::sleep(Duration::from_millis(300)).await;
            if h.is_finished() {
                match h.await.unwrap() {
                    Err(meshlink_host::HostError::Core(Error::QueueFull { .. })) => break,
                    Ok(()) => {}
                    r => panic!("expected QueueFull, got {r:?}"),
                }
            } else {
                extra.push(h);
            }
        }
    })
    .await;
    full.expect("a send past the cap fails at once");
    assert!(extra.len() <= 2, "at most max_parked_sends wait: {}", extra.len());
    assert!(extra.iter().all(|h| !h.is_finished()), "the ones within the cap still wait");
    first.abort();
    peer.shutdown().await.unwrap();
    victim.shutdown().await.unwrap();
}
