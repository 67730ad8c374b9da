//! Hostile stream input closes only the offending connection; the node keeps serving its
//! real peer.

use std::time::Duration;

use meshlink_core::Keypair;
use meshlink_host::{Host, HostConfig, HostEvent, Listen};
use rand_core::{OsRng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server closed `s` within `within`.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {} // a Reject or Error record first is fine
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalled_frames_close_only_their_connection() {
    let mut cfg = HostConfig::default()
        .with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = vec!["127.0.0.1:0".parse().unwrap()]));
    cfg.timers.handshake_timeout_ms = 1000;
    let b = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let a = Host::start(HostConfig::default().with(|c| c.listen = Listen::none()), Keypair::generate(&mut OsRng))
        .await
        .unwrap();
    let addr = b.local_addrs().tcp[0];
    a.connect(&format!("tcp://{addr}"), Some(b.peer_id())).await.unwrap();
    let mut events = b.events().await.unwrap();

    // Random bytes: not a valid frame or Init.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    let mut junk = [0u8; 300];
    OsRng.fill_bytes(&mut junk);
    junk[..2].copy_from_slice(&[0x00, 0x40]); // a plausible length, then nonsense
    garbage.write_all(&junk).await.unwrap();
    // Half a frame, then silence: the handshake deadline ends it.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x00, 0x80, 0x01]).await.unwrap();

    assert!(closed_by_server(&mut garbage, Duration::from_secs(3)).await, "garbage connection kept open");
    assert!(closed_by_server(&mut stalled, Duration::from_secs(5)).await, "stalled connection kept open");

    // The real peer was not affected.
    a.send(b.peer_id(), &b"still here"[..]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Some(HostEvent::Message { peer, data }) => break (peer, data),
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!((got.0, &got.1[..]), (a.peer_id(), &b"still here"[..]));
    assert_eq!(b.peers().await.unwrap().len(), 1);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
