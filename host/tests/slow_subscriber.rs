//! One subscriber that never reads does not freeze the node (issue 13, item 2): each
//! subscriber has its own bounded queue, and one that falls behind misses events and is
//! told so (`Lagged { dropped }`) instead of holding back socket input or the others.
//! Before: the stuck subscriber's full queue stopped the driver reading every socket,
//! and the exchange below never finished.

use std::time::Duration;

use meshlink_core::{Keypair, PeerId};
use meshlink_host::{Host, HostConfig, HostEvent, HostHandle, Listen};
use rand_core::OsRng;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

const MESSAGES: u32 = 10_000;
/// Messages a sender may have ahead of the peer's reading subscriber: well under that
/// subscriber's queue (1,024 events), so the reader that keeps up never lags, however
/// the two shared cores schedule it. The stuck subscriber still gets all 10,000.
const AHEAD: usize = 256;

async fn node() -> HostHandle {
    let tcp = vec!["127.0.0.1:0".parse().unwrap()];
    Host::start(
        HostConfig::default().with(|cfg| cfg.listen = Listen::none().with(|c| c.tcp = tcp)),
        Keypair::generate(&mut OsRng),
    )
    .await
    .unwrap()
}

/// Sends `MESSAGES` to `to` (at most `AHEAD` beyond what `to`'s reader has taken, through
/// `send_credit`) while counting the messages `events` brings, each returned to the peer
/// as `recv_credit`; returns that count.
async fn exchange(
    node: HostHandle,
    to: PeerId,
    mut events: mpsc::Receiver<HostEvent>,
    send_credit: Arc<Semaphore>,
    recv_credit: Arc<Semaphore>,
) -> u32 {
    let sender = tokio::spawn(async move {
        for i in 0..MESSAGES {
            send_credit.acquire().await.unwrap().forget();
            node.send(to, i.to_be_bytes().to_vec()).await.unwrap();
        }
    });
    let mut got = 0;
    while got < MESSAGES {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Some(HostEvent::Message { data, .. })) => {
                assert_eq!(data[..], got.to_be_bytes(), "in order, none missed by a reader that keeps up");
                got += 1;
                recv_credit.add_permits(1);
            }
            Ok(Some(HostEvent::Lagged { dropped })) => panic!("a reader that keeps up lagged by {dropped}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    sender.await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_holds_back_no_peer_and_gets_lagged() {
    let (a, b) = (node().await, node().await);
    // On both nodes: one subscriber that reads, and one that is never read (yet).
    let (ev_a, ev_b) = (a.events().await.unwrap(), b.events().await.unwrap());
    let (mut stuck_a, mut stuck_b) = (a.events().await.unwrap(), b.events().await.unwrap());
    a.connect(&format!("tcp://{}", b.local_addrs().tcp[0]), Some(b.peer_id())).await.unwrap();
    while b.peers().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await; // b confirms a moment later
    }
    let (ab, ba) = (Arc::new(Semaphore::new(AHEAD)), Arc::new(Semaphore::new(AHEAD)));
    let (got_b, got_a) = tokio::join!(
        exchange(a.clone(), b.peer_id(), ev_a, ab.clone(), ba.clone()),
        exchange(b.clone(), a.peer_id(), ev_b, ba, ab)
    );
    assert_eq!((got_a, got_b), (MESSAGES, MESSAGES), "both peers got every message");

    // The stuck subscribers' queues filled; what did not fit is counted, and the notice
    // comes as soon as there is room again.
    for (stuck, node) in [(&mut stuck_a, &a), (&mut stuck_b, &b)] {
        let mut delivered = 0u64;
        let dropped = loop {
            match tokio::time::timeout(Duration::from_secs(10), stuck.recv()).await.expect("the notice comes") {
                Some(HostEvent::Lagged { dropped }) => break dropped,
                Some(_) => delivered += 1,
                None => panic!("events ended"),
            }
        };
        // It saw `delivered` events, then missed `dropped`: every message is one or the other.
        assert!(dropped > 0 && delivered + dropped >= u64::from(MESSAGES), "{delivered} + {dropped}");
        assert!(node.stats().await.unwrap().events_lagged >= dropped);
    }
    // And it is served again from here on (sent once both stuck readers have caught up,
    // so that the new message cannot race the Lagged notice for the last free place).
    a.send(b.peer_id(), &b"again"[..]).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(HostEvent::Message { data, .. }) = stuck_b.recv().await {
                break data;
            }
        }
    })
    .await
    .expect("the lagged subscriber gets new events");
    assert_eq!(&again[..], b"again");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
