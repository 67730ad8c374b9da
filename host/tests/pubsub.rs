//! Publish/subscribe through the host (issue 14, "The host"): the library between
//! in-process hosts, the control API (`POST /v1/publish`, `POST /v1/subscribe` as SSE)
//! and the CLI between three real `meshlink up` daemons.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use meshlink_host::control::{self, ControlOptions, ControlServer};
use serde_json::{json, Value};

mod common;

use common::{meshlink, tempdir, Lines};

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

#[tokio::test]
async fn subscription_table_is_bounded_and_dropping_frees_its_slot() {
    let a = host(|c| {
        c.messaging.max_subs = 1;
        c.messaging.max_interest_per_origin = 1;
    })
    .await;
    let first = a.subscribe("a.>", Priority::Normal).await.unwrap();
    let r = a.subscribe("b", Priority::Normal).await;
    assert!(
        matches!(
            r,
            Err(meshlink_host::HostError::Messaging(meshlink_core::messaging::MessagingError::SubLimit { limit: 1 }))
        ),
        "{r:?}"
    );
    // The unsubscribe of a dropped Subscription is queued before the next command.
    drop(first);
    a.subscribe("b", Priority::Normal).await.unwrap();
    // Out-of-range caps are refused at start, by name.
    for f in [|c: &mut HostConfig| c.messaging.sub_queue = 0, |c: &mut HostConfig| c.messaging.max_subs = 0] {
        let mut cfg = HostConfig::default().with(|c| c.listen = Listen::loopback());
        f(&mut cfg);
        let Err(e) = Host::start(cfg, Keypair::generate(&mut OsRng)).await else { panic!("started") };
        let e = e.to_string();
        assert!(e.contains("messaging."), "{e}");
    }
}

// ---------------------------------------------------------------- control API

const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const WAIT: Duration = Duration::from_secs(10);

async fn with_control(name: &str) -> (HostHandle, ControlServer) {
    let n = host(|c| c.name = name.into()).await;
    let mut opts = ControlOptions::new("127.0.0.1:0".parse().unwrap(), TOKEN.into());
    opts.name = name.into();
    let server = control::serve(n.clone(), opts).await.unwrap();
    (n, server)
}

async fn open(addr: SocketAddr, path: &str, body: &str) -> Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json");
    tx.send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap()
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = open(addr, path, &body.to_string()).await;
    let status = resp.status();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[track_caller]
fn err(r: (StatusCode, Value), status: u16, code: &str) {
    assert_eq!(r.0.as_u16(), status, "{}", r.1);
    assert_eq!(r.1["error"]["code"], code, "{}", r.1);
}

/// `POST /v1/subscribe`'s event stream.
struct Sse {
    body: Incoming,
    buf: String,
}

impl Sse {
    async fn open(addr: SocketAddr, body: Value) -> Sse {
        let resp = open(addr, "/v1/subscribe", &body.to_string()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut s = Sse { body: resp.into_body(), buf: String::new() };
        let (ev, data) = s.next().await.unwrap();
        assert_eq!(ev, "subscribed", "{data}");
        assert_eq!(data["pattern"], body["pattern"]);
        s
    }

    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let field =
                    |name: &str| block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_string()));
                if let (Some(ev), Some(data)) = (field("event:"), field("data:")) {
                    return Some((ev, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame()).await.expect("an event within 10 s")?;
            self.buf.push_str(&String::from_utf8_lossy(&frame.unwrap().into_data().unwrap()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_subscribe_over_the_api() {
    let (a, sa) = with_control("alpha").await;
    let (b, sb) = with_control("bravo").await;
    a.connect(&format!("tcp://{}", b.local_addrs().tcp[0]), Some(b.peer_id())).await.unwrap();
    let (api_a, api_b) = (sa.local_addr(), sb.local_addr());

    let mut sub = Sse::open(api_b, json!({"pattern": "news.*.eu", "priority": "high"})).await;
    let (ev, data) = sub.next().await.unwrap();
    assert_eq!((ev.as_str(), data["peer"].as_str()), ("active", Some(a.peer_id().to_string().as_str())));

    let (s, v) = post(api_a, "/v1/publish", json!({"subject": "news.sport.eu", "data": "goal"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["queued"].as_u64(), v["failed"].as_u64()), (Some(1), Some(0)));
    let seq = v["seq"].as_u64().unwrap();
    // Not matching: queued nowhere.
    let (s, v) = post(api_a, "/v1/publish", json!({"subject": "news.sport.us", "data": "x"})).await;
    assert_eq!((s.as_u16(), v["queued"].as_u64()), (200, Some(0)), "{v}");
    let (s, v) = post(api_a, "/v1/publish", json!({"subject": "news.x.eu", "data_b64": "AAEC/w=="})).await;
    assert_eq!(s, 200, "{v}");

    let (ev, m) = sub.next().await.unwrap();
    assert_eq!(ev, "message", "{m}");
    assert_eq!(
        (m["subject"].as_str(), m["data"].as_str(), m["seq"].as_u64()),
        (Some("news.sport.eu"), Some("goal"), Some(seq))
    );
    assert_eq!(m["origin"], a.peer_id().to_string());
    let (ev, m) = sub.next().await.unwrap();
    assert_eq!(ev, "message", "{m}");
    assert_eq!(
        (m["subject"].as_str(), m["data_b64"].as_str(), m["len"].as_u64()),
        (Some("news.x.eu"), Some("AAEC/w=="), Some(4))
    );
    assert!(m.get("data").is_none(), "not UTF-8: {m}");

    // Malformed bodies: 400 with a named code, nothing published or subscribed.
    err(post(api_a, "/v1/publish", json!({"subject": "news.*", "data": ""})).await, 400, "invalid_subject");
    err(post(api_a, "/v1/publish", json!({"subject": "a..b", "data": ""})).await, 400, "invalid_subject");
    err(post(api_a, "/v1/publish", json!({"subject": "a"})).await, 400, "invalid_request");
    err(post(api_a, "/v1/publish", json!({"subject": "a", "data": "", "data_b64": ""})).await, 400, "invalid_request");
    err(post(api_a, "/v1/publish", json!({"subject": "a", "data": "", "extra": 1})).await, 400, "invalid_request");
    err(post(api_b, "/v1/subscribe", json!({"pattern": "news.>.x"})).await, 400, "invalid_pattern");
    err(post(api_b, "/v1/subscribe", json!({"pattern": ""})).await, 400, "invalid_pattern");
    err(post(api_b, "/v1/subscribe", json!({"pattern": "a", "priority": "urgent"})).await, 400, "invalid_priority");
    err(post(api_b, "/v1/subscribe", json!({"priority": "low"})).await, 400, "invalid_request");

    // Closing the stream unsubscribes: alpha stops queueing for bravo.
    drop(sub);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, v) = post(api_a, "/v1/publish", json!({"subject": "news.y.eu", "data": ""})).await;
        if v["queued"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "interest never withdrawn");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- three daemons

struct Daemon {
    proc: Lines,
    dir: std::path::PathBuf,
    id: String,
    tcp: String,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = tempdir(&format!("ps-{name}"));
        let lo = "127.0.0.1:0";
        let d = dir.to_str().unwrap();
        let args = ["up", "--data-dir", d, "--name", name, "--tcp", lo, "--ws", "off", "--udp", "off", "--control", lo];
        let mut proc = Lines::spawn(meshlink(&args));
        let id = proc.wait_for("peer id").split_whitespace().last().unwrap().to_string();
        let tcp = proc.wait_for("tcp://").split_whitespace().last().unwrap().to_string();
        proc.wait_for("control");
        Daemon { proc, dir, id, tcp }
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        common::client_ok(&self.dir, args)
    }

    fn spawn(&self, args: &[&str]) -> Lines {
        let mut all = args.to_vec();
        all.extend(["--data-dir", self.dir.to_str().unwrap()]);
        Lines::spawn(meshlink(&all))
    }

    fn stop(self) {
        assert!(self.proc.terminate().success());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The publication lines of a `subscribe --count` that exited, sorted.
fn messages(mut l: Lines) -> Vec<String> {
    assert!(l.wait_exit().success());
    let mut all: Vec<String> = l.seen.drain(..).chain(l.rx.iter()).collect();
    all.retain(|l| l.starts_with("news"));
    all.sort();
    all
}

#[test]
fn cli_publish_subscribe_between_three_daemons() {
    let (alpha, bravo, charlie) = (Daemon::start("alpha"), Daemon::start("bravo"), Daemon::start("charlie"));
    bravo.ok(&["connect", &alpha.tcp, "--expect", &alpha.id]);
    charlie.ok(&["connect", &alpha.tcp]);

    let mut all = bravo.spawn(&["subscribe", "news.>", "--count", "5"]);
    all.wait_for("subscribed news.>");
    all.wait_for(&format!("active {}", alpha.id));
    let mut eu = charlie.spawn(&["subscribe", "news.*.eu", "--count", "2", "--priority", "high"]);
    eu.wait_for("subscribed news.*.eu");
    eu.wait_for(&format!("active {}", alpha.id));

    // charlie's own publication reaches bravo through alpha, not charlie itself.
    let out = charlie.ok(&["publish", "news.sport.eu", "from charlie"]);
    assert!(out.starts_with("published seq ") && out.contains("queued 1"), "{out}");
    alpha.ok(&["publish", "news.weather.us", "rain"]);
    let out = alpha.ok(&["publish", "news.sport.eu", "goal"]);
    assert!(out.contains("queued 2"), "{out}");
    // `>` needs one token at least; `*` exactly one.
    assert!(alpha.ok(&["publish", "news", "bare"]).contains("queued 0"));
    alpha.ok(&["publish", "news.a.b.eu", "deep\u{1b}[31m"]);
    let json = alpha.ok(&["publish", "news.end.eu", "end", "--json"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["queued"], 2, "{v}");

    assert_eq!(
        messages(all),
        [
            "news.a.b.eu deep\\u{1b}[31m",
            "news.end.eu end",
            "news.sport.eu from charlie",
            "news.sport.eu goal",
            "news.weather.us rain"
        ]
    );
    assert_eq!(messages(eu), ["news.end.eu end", "news.sport.eu goal"]);
    alpha.stop();
    bravo.stop();
    charlie.stop();
}
