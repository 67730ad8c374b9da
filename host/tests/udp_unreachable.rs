//! A UDP dial to a closed port fails at once with a clear error (issue 13, item 17): a
//! probe from a connected socket beside the handshake sees ICMP port unreachable as
//! ECONNREFUSED. Before: nothing answered and the dial waited out the handshake timeout
//! (30 s by default), then failed as a timeout.

use std::time::Duration;

use meshlink_core::Keypair;
use meshlink_host::{Host, HostConfig, HostError, Listen};
use rand_core::OsRng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_dial_to_a_closed_port_fails_as_port_unreachable() {
    let mut cfg = HostConfig::default().with(|c| c.listen = Listen::none());
    cfg.timers.handshake_timeout_ms = 600_000; // only the ICMP answer can end it in time
    let a = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // and closed again
    let r = tokio::time::timeout(Duration::from_secs(60), a.connect(&format!("udp://{closed}"), None))
        .await
        .expect("the dial ends before the handshake timeout");
    match r {
        Err(e @ HostError::Io { .. }) => {
            let text = e.to_string();
            assert!(text.contains("port unreachable") && text.contains(&closed.to_string()), "{text}");
            let HostError::Io { source, .. } = e else { unreachable!() };
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected port unreachable, got {other:?}"),
    }
    // The half-open session is gone, and the node still dials fine.
    let s = a.stats().await.unwrap();
    assert_eq!((s.node.sessions, s.node.half_open), (0, 0));
    a.shutdown().await.unwrap();
}
