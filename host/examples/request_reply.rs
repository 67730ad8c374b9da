//! Request/response between two hosts on loopback: `b` serves `svc.echo` (and answers
//! `svc.fail` with a handler error), `a` asks. Prints each outcome; exits non-zero if one
//! is not what it should be.
//!
//! Run: `cargo run -p meshlink-host --example request_reply`

use std::time::Duration;

use meshlink_core::Keypair;
use meshlink_host::messaging::RequestOpts;
use meshlink_host::{Host, HostConfig, HostError, Listen};
use rand_core::OsRng;

#[tokio::main]
async fn main() -> Result<(), HostError> {
    let cfg = || HostConfig::default().with(|c| c.listen = Listen::loopback());
    let a = Host::start(cfg(), Keypair::generate(&mut OsRng)).await?;
    let b = Host::start(cfg(), Keypair::generate(&mut OsRng)).await?;
    let url = format!("tcp://{}", b.local_addrs().tcp[0]);
    a.connect(&url, Some(b.peer_id())).await?;

    // b's services: every request for svc.* arrives on this stream.
    let mut svc = b.serve("svc.*", "1").await?;
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let _ = match req.subject.as_str() {
                "svc.echo" => {
                    let body = req.body.clone();
                    req.respond(body).await
                }
                _ => req.respond_error(0x100, "no such operation").await,
            };
        }
    });

    let opts = || RequestOpts::new().timeout(Duration::from_secs(2)).version("1.0");
    let answer = a.request(b.peer_id(), "svc.echo", &b"hello"[..], opts()).await?;
    println!("svc.echo -> {:?}", String::from_utf8_lossy(&answer));
    let failed = a.request(b.peer_id(), "svc.fail", &b""[..], opts()).await;
    println!("svc.fail -> {}", failed.as_ref().map_or_else(|e| e.to_string(), |_| "answered".into()));
    let none = a.request(b.peer_id(), "other.subject", &b""[..], opts()).await;
    println!("other.subject -> {}", none.as_ref().map_or_else(|e| e.to_string(), |_| "answered".into()));
    let results = a.send_all(&b"to everyone"[..]).await?;
    println!("send_all -> {} peer(s), {} queued", results.len(), results.iter().filter(|(_, r)| r.is_ok()).count());

    let ok = &answer[..] == b"hello"
        && matches!(failed, Err(HostError::Failed { code: 0x100, .. }))
        && matches!(none, Err(HostError::NoResponders));
    a.shutdown().await?;
    b.shutdown().await?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
