//! Benchmark (issue 13, item 5): 20,000 UDP messages of 16 KiB over loopback, sent as
//! fast as `HostHandle::send` takes them; prints throughput and losses.
//!
//! `cargo run --release -p meshlink-host --example udp_bulk_bench [MESSAGES] [WINDOW]`
//!
//! `WINDOW` is `limits.datagram_window` on both nodes (default 64; 0 turns datagram flow
//! control off, which is how UDP behaved before PROTOCOL.md §8.8).

use std::time::{Duration, Instant};

use meshlink_core::Keypair;
use meshlink_host::{Host, HostConfig, HostEvent, Listen};
use rand_core::OsRng;

#[tokio::main]
async fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let window: u32 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    const SIZE: usize = 16 * 1024;
    let udp = vec!["127.0.0.1:0".parse().unwrap()];
    let cfg = HostConfig::default().with(|c| c.limits.datagram_window = window);
    let b = Host::start(
        cfg.clone().with(|cfg| cfg.listen = Listen::none().with(|c| c.udp = udp)),
        Keypair::generate(&mut OsRng),
    )
    .await
    .unwrap();
    let a = Host::start(cfg.with(|c| c.listen = Listen::none()), Keypair::generate(&mut OsRng)).await.unwrap();
    let mut events = b.events().await.unwrap();
    a.connect(&format!("udp://{}", b.local_addrs().udp[0]), Some(b.peer_id())).await.unwrap();
    let began = Instant::now();
    let (a2, to) = (a.clone(), b.peer_id());
    tokio::spawn(async move {
        for _ in 0..n {
            a2.send(to, vec![7u8; SIZE]).await.unwrap();
        }
    });
    let (mut got, mut lagged) = (0u32, 0u64);
    let mut last = began;
    while u64::from(got) + lagged < u64::from(n) {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(HostEvent::Message { .. })) => {
                got += 1;
                last = Instant::now();
            }
            Ok(Some(HostEvent::Lagged { dropped })) => lagged += dropped,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let t = (last - began).as_secs_f64().max(1e-9);
    let s = a.stats().await.unwrap();
    println!(
        "udp bulk (datagram_window {window}): {got} of {n} x {SIZE} B arrived ({} lost) in {t:.2} s, {:.0} msg/s ({:.1} MB/s), {lagged} missed by this slow reader; sender: {} send errors, {} datagrams waited for socket room",
        n - got - lagged as u32,
        f64::from(got) / t,
        f64::from(got) * SIZE as f64 / t / 1e6,
        s.udp_send_errors,
        s.udp_send_waits
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
