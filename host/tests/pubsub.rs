//! Publish/subscribe through the host (issue 14, "The host"): the library between
//! in-process hosts.

use std::time::Duration;

use meshlink_core::{Keypair, Priority};
use meshlink_host::pubsub::{SubEvent, Subscription};
use meshlink_host::{Host, HostConfig, HostHandle, Listen};
use rand_core::OsRng;

async fn host(f: impl FnOnce(&mut HostConfig)) -> HostHandle {
    let mut cfg = HostConfig::default().with(|c| c.listen = Listen::loopback());
    f(&mut cfg);
    Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap()
}

async fn next(s: &mut Subscription) -> SubEvent {
    tokio::time::timeout(Duration::from_secs(10), s.next()).await.expect("no event in 10 s").expect("stream ended")
}

/// The next publication, skipping `Active` notices.
async fn message(s: &mut Subscription) -> (String, Vec<u8>) {
    loop {
        match next(s).await {
            SubEvent::Message(p) => return (p.subject, p.body.to_vec()),
            SubEvent::Active { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn library_subscribe_publish_and_lagged() {
    let a = host(|_| {}).await;
    let b = host(|c| c.messaging.sub_queue = 2).await;
    a.connect(&format!("tcp://{}", b.local_addrs().tcp[0]), Some(b.peer_id())).await.unwrap();

    let mut all = b.subscribe("news.>", Priority::Normal).await.unwrap();
    let mut eu = b.subscribe("news.*.eu", Priority::High).await.unwrap();
    let never_read = b.subscribe("flood.*", Priority::Low).await.unwrap();
    let wait = Duration::from_secs(10);
    assert_eq!(tokio::time::timeout(wait, all.active()).await.unwrap(), Some(a.peer_id()));
    assert_eq!(tokio::time::timeout(wait, eu.active()).await.unwrap(), Some(a.peer_id()));
    let mut never_read = never_read;
    tokio::time::timeout(wait, never_read.active()).await.unwrap();

    // A bad pattern or subject fails at once.
    assert!(b.subscribe("news..x", Priority::Normal).await.is_err());
    assert!(a.publish("news.*", &b"x"[..]).await.is_err());

    let r = a.publish("news.sport.eu", &b"goal"[..]).await.unwrap();
    assert_eq!((r.queued, r.failed), (1, 0));
    let r2 = a.publish("news.weather.us", &b"rain"[..]).await.unwrap();
    assert!(r2.seq > r.seq);
    assert_eq!(message(&mut all).await, ("news.sport.eu".into(), b"goal".to_vec()));
    assert_eq!(message(&mut all).await, ("news.weather.us".into(), b"rain".to_vec()));
    assert_eq!(message(&mut eu).await, ("news.sport.eu".into(), b"goal".to_vec()));
    // Nobody wants "other": nothing is queued.
    assert_eq!(a.publish("other", &b"?"[..]).await.unwrap().queued, 0);

    // The queue of 2 holds the Active notice and one publication; the rest is dropped
    // and reported once the queue is drained.
    for i in 0..5u8 {
        a.publish("flood.x", vec![i]).await.unwrap();
    }
    // A publication after the flood, through a subscription that reads, proves the
    // flood has arrived (same path, same order).
    a.publish("news.end", &b"end"[..]).await.unwrap();
    assert_eq!(message(&mut all).await, ("news.end".into(), b"end".to_vec()));
    let mut got = Vec::new();
    let mut dropped = 0;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), never_read.next()).await {
        match e {
            SubEvent::Message(p) => got.push(p.body[0]),
            SubEvent::Lagged { dropped: d } => dropped += d,
            SubEvent::Active { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, vec![0], "drop-newest keeps the first that fit");
    assert_eq!(dropped, 4);
    assert_eq!(b.stats().await.unwrap().pubsub_host.lagged, 4);
    // eu saw nothing but its one message.
    assert!(tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            if let SubEvent::Message(p) = next(&mut eu).await {
                return p;
            }
        }
    })
    .await
    .is_err());

    // Dropping a subscription unsubscribes: after its interest is gone at `a`, nothing is queued.
    drop(never_read);
    drop(eu);
    drop(all);
    let deadline = tokio::time::Instant::now() + wait;
    while a.publish("news.x", &b""[..]).await.unwrap().queued != 0 {
        assert!(tokio::time::Instant::now() < deadline, "interest never withdrawn");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = a.stats().await.unwrap();
    assert!(s.pubsub.published >= 9);
}
