//! UDP handshakes survive a lost datagram: a relay between the nodes drops the first
//! handshake response (record type 0x02), and the initiator's retransmission must
//! recover, for both the XX and the IK (pinned key) patterns.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meshlink_core::Keypair;
use meshlink_host::{Host, HostConfig, Listen};
use rand_core::OsRng;
use tokio::net::UdpSocket;

/// A two-socket UDP relay: A talks to `front`, the relay talks to `to` from `back`.
/// Drops the first datagram from B whose first byte is `drop_type`; the flag says it did.
async fn relay(to: SocketAddr, drop_type: u8) -> (SocketAddr, Arc<AtomicBool>) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let did = flag.clone();
    tokio::spawn(async move {
        let (mut a, mut dropped) = (None, false);
        let (mut fb, mut bb) = ([0u8; 2048], [0u8; 2048]);
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut fb) => {
                    a = Some(from);
                    let _ = back.send_to(&fb[..n], to).await;
                }
                Ok((n, _)) = back.recv_from(&mut bb) => {
                    if !dropped && bb[0] == drop_type {
                        dropped = true;
                        did.store(true, Ordering::SeqCst);
                        continue;
                    }
                    if let Some(a) = a {
                        let _ = front.send_to(&bb[..n], a).await;
                    }
                }
            }
        }
    });
    (addr, flag)
}

async fn handshake_through_lossy_relay(pin: bool) {
    let cfg =
        |udp: Vec<SocketAddr>| HostConfig::default().with(|cfg| cfg.listen = Listen::none().with(|c| c.udp = udp));
    let b = Host::start(cfg(vec!["127.0.0.1:0".parse().unwrap()]), Keypair::generate(&mut OsRng)).await.unwrap();
    let a = Host::start(cfg(vec![]), Keypair::generate(&mut OsRng)).await.unwrap();
    let (via, dropped) = relay(b.local_addrs().udp[0], 0x02).await;
    let expect = pin.then(|| b.peer_id());
    let r = tokio::time::timeout(Duration::from_secs(10), a.connect(&format!("udp://{via}"), expect)).await;
    let s = r.expect("handshake finishes within 10 s").expect("handshake succeeds after a retransmission");
    assert_eq!(s.peer, b.peer_id());
    assert!(dropped.load(Ordering::SeqCst), "the relay dropped a Resp: the retransmission was exercised");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xx_handshake_recovers_from_a_lost_response() {
    handshake_through_lossy_relay(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ik_handshake_recovers_from_a_lost_response() {
    handshake_through_lossy_relay(true).await;
}
