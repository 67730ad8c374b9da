//! The control API's messaging endpoints end to end (issue 14, acceptance 6): two nodes
//! with their control servers on loopback, a plain hyper client, `POST /v1/request`,
//! `POST /v1/serve` (SSE), `POST /v1/respond` and `POST /v1/send` with `to` / `all`,
//! each outcome and each malformed body.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use meshlink_core::Keypair;
use meshlink_host::control::{self, ControlOptions, ControlServer};
use meshlink_host::{Host, HostConfig, HostHandle, Listen};
use rand_core::OsRng;
use serde_json::{json, Value};

const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const WAIT: Duration = Duration::from_secs(10);

async fn with_control(name: &str, serve_queue: usize) -> (HostHandle, ControlServer) {
    let mut cfg = HostConfig::default().with(|c| {
        c.name = name.into();
        c.listen = Listen::loopback();
    });
    cfg.messaging.serve_queue = serve_queue;
    let n = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
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
fn err(r: (StatusCode, Value), status: u16, code: &str) -> String {
    assert_eq!(r.0.as_u16(), status, "{}", r.1);
    assert_eq!(r.1["error"]["code"], code, "{}", r.1);
    r.1["error"]["message"].as_str().unwrap().to_string()
}

/// `POST /v1/serve`'s event stream.
struct Serve {
    body: Incoming,
    buf: String,
}

impl Serve {
    async fn open(addr: SocketAddr, body: Value) -> Serve {
        let resp = open(addr, "/v1/serve", &body.to_string()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut s = Serve { body: resp.into_body(), buf: String::new() };
        let (ev, data) = s.next().await.unwrap();
        assert_eq!(ev, "serving", "{data}");
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

    async fn request(&mut self) -> Value {
        let (ev, data) = self.next().await.expect("a request");
        assert_eq!(ev, "request", "{data}");
        data
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_serve_respond_and_send_to_many_over_the_api() {
    let (a, sa) = with_control("alpha", 2).await;
    let (b, sb) = with_control("bravo", 2).await;
    a.connect(&format!("tcp://{}", b.local_addrs().tcp[0]), Some(b.peer_id())).await.unwrap();
    let (api_a, api_b) = (sa.local_addr(), sb.local_addr());
    let bp = b.peer_id().to_string();

    // bravo serves svc.* from an API client; alpha asks through its API.
    let mut svc = Serve::open(api_b, json!({"pattern": "svc.*", "version": "1.2"})).await;
    let ask = |body: Value| tokio::spawn(async move { post(api_a, "/v1/request", body).await });
    let pending = ask(json!({"peer": bp, "subject": "svc.echo", "data": "hello", "timeout_ms": 5000, "version": "1"}));
    let r = svc.request().await;
    assert_eq!(
        (r["subject"].as_str(), r["data"].as_str(), r["version"].as_str()),
        (Some("svc.echo"), Some("hello"), Some("1"))
    );
    assert_eq!(r["peer"], a.peer_id().to_string());
    let (s, v) = post(api_b, "/v1/respond", json!({"peer": r["peer"], "id": r["id"], "data_b64": "AAEC/w=="})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["responded"], true);
    let (s, v) = pending.await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["len"].as_u64(), v["data_b64"].as_str()), (Some(4), Some("AAEC/w==")));
    assert!(v.get("data").is_none(), "not UTF-8: {v}");
    assert_eq!(v["peer"], bp);

    // A handler error.
    let pending = ask(json!({"peer": bp, "subject": "svc.fail", "data_b64": ""}));
    let r = svc.request().await;
    let e = json!({"code": 300, "message": "no such thing"});
    assert_eq!(post(api_b, "/v1/respond", json!({"peer": r["peer"], "id": r["id"], "error": e})).await.0, 200);
    let m = err(pending.await.unwrap(), 502, "handler_failed");
    assert!(m.contains("300") && m.contains("no such thing"), "{m}");
    // No handler: at once, not a timeout.
    err(post(api_a, "/v1/request", json!({"peer": bp, "subject": "other", "data": ""})).await, 503, "no_responders");
    // Version mismatch is a refusal.
    let m = err(
        post(api_a, "/v1/request", json!({"peer": bp, "subject": "svc.x", "data": "", "version": "2"})).await,
        502,
        "refused",
    );
    assert!(m.contains("version"), "{m}");
    // Unanswered: timeout (and the stream saw it).
    let began = Instant::now();
    let pending = ask(json!({"peer": bp, "subject": "svc.slow", "data": "", "timeout_ms": 300}));
    assert_eq!(svc.request().await["subject"], "svc.slow");
    err(pending.await.unwrap(), 504, "timeout");
    assert!(began.elapsed() < Duration::from_secs(5));
    // A reader that stops reading: the stream's chunks, the socket, then the handler's
    // queue (2) fill, and requests are refused busy: nothing grows without bound. Large
    // bodies fill the socket buffers in a few requests.
    let big = "x".repeat(30_000);
    let mut outcomes = Vec::new();
    for i in 0..200 {
        let body = json!({"peer": bp, "subject": format!("svc.q{i}"), "data": big, "timeout_ms": 100});
        let r = post(api_a, "/v1/request", body).await;
        outcomes.push(r.1["error"]["code"].as_str().unwrap_or("ok").to_string());
        if outcomes.last().unwrap() == "refused" {
            break;
        }
    }
    assert_eq!(outcomes.last().unwrap(), "refused", "{outcomes:?}");
    assert!(b.stats().await.unwrap().requests_busy >= 1);
    // Closing the stream unregisters the handler.
    drop(svc);
    let deadline = Instant::now() + WAIT;
    loop {
        let r =
            post(api_a, "/v1/request", json!({"peer": bp, "subject": "svc.echo", "data": "", "timeout_ms": 500})).await;
        if r.1["error"]["code"] == "no_responders" {
            break;
        }
        assert!(Instant::now() < deadline, "still served: {}", r.1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stranger = Keypair::generate(&mut OsRng).peer_id().to_string();
    err(
        post(api_a, "/v1/request", json!({"peer": stranger, "subject": "svc.echo", "data": ""})).await,
        404,
        "unknown_peer",
    );

    // Send to many, per-peer results.
    let (s, v) = post(api_a, "/v1/send", json!({"to": [bp, stranger], "data": "hi"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["len"], 2);
    let res = v["results"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!((res[0]["peer"].as_str(), res[0]["queued"].as_bool()), (Some(bp.as_str()), Some(true)));
    assert!(res[0].get("error").is_none());
    assert_eq!((res[1]["queued"].as_bool(), res[1]["error"]["code"].as_str()), (Some(false), Some("unknown_peer")));
    let (s, v) = post(api_a, "/v1/send", json!({"all": true, "data_b64": "aGk="})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    assert_eq!(v["results"][0]["peer"], bp);
    // The one-peer form is unchanged.
    let (s, v) = post(api_a, "/v1/send", json!({"peer": bp, "data": "one"})).await;
    assert_eq!((s.as_u16(), v["len"].as_u64()), (200, Some(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messaging_bodies_get_400() {
    let (a, sa) = with_control("alpha", 4).await;
    let api = sa.local_addr();
    let p = a.peer_id().to_string();
    for (path, body, code) in [
        ("/v1/request", json!({"peer": p, "subject": "a..b", "data": ""}), "invalid_subject"),
        ("/v1/request", json!({"peer": p, "subject": "a.*", "data": ""}), "invalid_subject"),
        ("/v1/request", json!({"peer": p, "subject": "a b", "data": ""}), "invalid_subject"),
        ("/v1/request", json!({"peer": p, "subject": "x".repeat(257), "data": ""}), "invalid_subject"),
        ("/v1/request", json!({"peer": p, "subject": "a", "data": "", "version": "v1"}), "invalid_version"),
        ("/v1/request", json!({"peer": p, "subject": "a", "data": "", "timeout_ms": 0}), "invalid_request"),
        ("/v1/request", json!({"peer": p, "subject": "a", "data": "", "timeout_ms": 4294967296u64}), "invalid_request"),
        ("/v1/request", json!({"peer": p, "subject": "a"}), "invalid_request"),
        ("/v1/request", json!({"peer": p, "subject": "a", "data": "", "data_b64": ""}), "invalid_request"),
        ("/v1/request", json!({"peer": p, "subject": "a", "data_b64": "!!"}), "invalid_base64"),
        ("/v1/request", json!({"peer": "nope", "subject": "a", "data": ""}), "invalid_peer_id"),
        ("/v1/request", json!({"peer": p, "subject": "a", "data": "", "extra": 1}), "invalid_request"),
        ("/v1/serve", json!({"pattern": "a.>.b"}), "invalid_subject"),
        ("/v1/serve", json!({"pattern": ""}), "invalid_subject"),
        ("/v1/serve", json!({"pattern": "a", "version": "1..2"}), "invalid_version"),
        ("/v1/serve", json!({}), "invalid_request"),
        ("/v1/respond", json!({"peer": p, "id": 1, "error": {"code": 5}}), "invalid_error_code"),
        (
            "/v1/respond",
            json!({"peer": p, "id": 1, "error": {"code": 300, "message": "x".repeat(129)}}),
            "invalid_request",
        ),
        ("/v1/respond", json!({"peer": p, "id": 1, "error": {"code": 300, "message": "é"}}), "invalid_request"),
        ("/v1/respond", json!({"peer": p, "id": 1, "data": "x", "error": {"code": 300}}), "invalid_request"),
        ("/v1/respond", json!({"peer": p, "id": 1}), "invalid_request"),
        ("/v1/respond", json!({"peer": p, "id": -1, "data": ""}), "invalid_request"),
        ("/v1/send", json!({"to": [], "data": "x"}), "invalid_request"),
        ("/v1/send", json!({"to": [p], "peer": p, "data": "x"}), "invalid_request"),
        ("/v1/send", json!({"all": false, "data": "x"}), "invalid_request"),
        ("/v1/send", json!({"all": true, "to": [p], "data": "x"}), "invalid_request"),
        ("/v1/send", json!({"data": "x"}), "invalid_request"),
        ("/v1/send", json!({"to": ["nope"], "data": "x"}), "invalid_peer_id"),
        ("/v1/send", json!({"to": vec![p.clone(); 1025], "data": "x"}), "invalid_request"),
    ] {
        let r = post(api, path, body.clone()).await;
        assert_eq!(r.0, 400, "{path} {body}: {}", r.1);
        assert_eq!(r.1["error"]["code"], code, "{path} {body}: {}", r.1);
    }
    // Bodies that are not JSON, or not an object, on every messaging endpoint.
    let paths = ["/v1/request", "/v1/serve", "/v1/respond", "/v1/publish", "/v1/subscribe", "/v1/call", "/v1/send"];
    for path in paths {
        for (body, code) in
            [("{", "invalid_json"), ("", "invalid_json"), ("[]", "invalid_request"), ("42", "invalid_request")]
        {
            let resp = open(api, path, body).await;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (400, Some(code)), "{path} {body:?}: {v}");
        }
    }
    // Answering a peer that is not connected.
    let stranger = Keypair::generate(&mut OsRng).peer_id().to_string();
    err(post(api, "/v1/respond", json!({"peer": stranger, "id": 7, "data": "x"})).await, 404, "unknown_peer");
    // The handler table is bounded: max_handlers serves, then handler_limit.
    let mut streams = Vec::new();
    for i in 0..16 {
        streams.push(Serve::open(api, json!({"pattern": format!("h{i}.>")})).await);
    }
    err(post(api, "/v1/serve", json!({"pattern": "one.more"})).await, 503, "handler_limit");
}
