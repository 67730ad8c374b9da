//! Graceful shutdown: every peer of the stopping node is told (a Close packet), on every
//! transport, whichever side initiated.

use std::time::Duration;

use meshlink_core::{CloseReason, DisconnectReason, Keypair};
use meshlink_host::{Host, HostConfig, HostEvent, HostHandle, Listen, PeerUrl, Transport};
use rand_core::OsRng;

async fn node(name: &str) -> HostHandle {
    let cfg = HostConfig::default().with(|c| {
        c.name = name.into();
        c.listen = Listen::loopback();
    });
    Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap()
}

fn url(n: &HostHandle, t: Transport) -> String {
    let l = n.local_addrs();
    PeerUrl::for_addr(
        t,
        match t {
            Transport::Tcp => l.tcp[0],
            Transport::Ws => l.ws[0],
            Transport::Udp => l.udp[0],
            other => panic!("transport {other} is not covered by this test"),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_hears_close_from_a_node_that_shuts_down() {
    for t in [Transport::Tcp, Transport::Ws, Transport::Udp] {
        for pin in [true, false] {
            for initiator_stops in [true, false] {
                let (a, b) = (node("a").await, node("b").await);
                a.connect(&url(&b, t), pin.then(|| b.peer_id())).await.unwrap();
                let (stopper, survivor) = if initiator_stops { (a, b) } else { (b, a) };
                let mut ev = survivor.events().await.unwrap();
                // The survivor keeps sending while the other side stops, so the stopper
                // closes with unread input (which must not cost the survivor the Close).
                let (s2, peer) = (survivor.clone(), stopper.peer_id());
                let chatter = tokio::spawn(async move {
                    while s2.send(peer, vec![7u8; 2000]).await.is_ok() {
                        tokio::task::yield_now().await;
                    }
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                stopper.shutdown().await.unwrap();
                let reason = loop {
                    match tokio::time::timeout(Duration::from_secs(5), ev.recv()).await {
                        Ok(Some(HostEvent::Disconnected { reason, .. })) => break reason,
                        Ok(Some(_)) => {}
                        r => panic!("{t} pin={pin} initiator_stops={initiator_stops}: no Disconnected ({r:?})"),
                    }
                };
                assert_eq!(
                    reason,
                    DisconnectReason::Remote(CloseReason::Shutdown),
                    "{t} pin={pin} initiator_stops={initiator_stops}"
                );
                chatter.abort();
                survivor.shutdown().await.unwrap();
            }
        }
    }
}
