//! The control API end to end: a real node with its control server on ephemeral
//! loopback ports, a real HTTP client (hyper, independent of the crate's own client),
//! every endpoint, the token, the error bodies, and the event stream.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use meshlink_core::{Keypair, PeerId};
use meshlink_host::control::{self, ControlOptions, ControlServer};
use meshlink_host::{Host, HostConfig, HostEvent, HostHandle, Listen, PeerUrl, Transport};
use rand_core::OsRng;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const WAIT: Duration = Duration::from_secs(10);

async fn node(name: &str) -> HostHandle {
    let mut cfg = HostConfig::default().with(|c| {
        c.name = name.into();
        c.listen = Listen::loopback();
    });
    cfg.limits.max_message = 4096;
    Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap()
}

async fn with_control(name: &str) -> (HostHandle, ControlServer) {
    let n = node(name).await;
    let mut opts = ControlOptions::new("127.0.0.1:0".parse().unwrap(), TOKEN.into());
    opts.name = name.into();
    opts.max_message = 4096;
    let server = control::serve(n.clone(), opts).await.unwrap();
    (n, server)
}

fn url(n: &HostHandle, t: Transport) -> String {
    let l = n.local_addrs();
    let a = match t {
        Transport::Tcp => l.tcp[0],
        Transport::Ws => l.ws[0],
        _ => l.udp[0],
    };
    PeerUrl::for_addr(t, a)
}

fn random_id() -> String {
    Keypair::generate(&mut OsRng).peer_id().to_string()
}

/// One request on a fresh connection; the response with its body still streaming.
async fn open(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>, body: &str) -> Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(path);
    req = req.header("host", addr.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if method == "POST" {
        req = req.header("content-type", "application/json");
    }
    tx.send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap()
}

/// A request with the right token; status and JSON body.
async fn call(addr: SocketAddr, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    raw(addr, method, path, Some(&format!("Bearer {TOKEN}")), &body).await
}

async fn raw(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>, body: &str) -> (StatusCode, Value) {
    let resp = open(addr, method, path, auth, body).await;
    let status = resp.status();
    let is_json = resp.headers()["content-type"] == "application/json";
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = if is_json { serde_json::from_slice(&bytes).unwrap() } else { Value::String(text(&bytes)) };
    (status, v)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts an error response: status, code, and a message that says something.
#[track_caller]
fn err(r: (StatusCode, Value), status: u16, code: &str) -> String {
    assert_eq!(r.0.as_u16(), status, "{}", r.1);
    assert_eq!(r.1["error"]["code"], code, "{}", r.1);
    let msg = r.1["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.len() > 10, "{msg}");
    msg
}

/// Server-Sent Events from `/v1/events`, parsed by hand.
struct Sse {
    body: Incoming,
    buf: String,
}

impl Sse {
    async fn open(addr: SocketAddr) -> Sse {
        let resp = open(addr, "GET", "/v1/events", Some(&format!("Bearer {TOKEN}")), "").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut s = Sse { body: resp.into_body(), buf: String::new() };
        assert_eq!(s.next().await.unwrap().0, "ready");
        s
    }

    /// The next `(event, data)`, or None when the stream ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let field =
                    |name: &str| block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_string()));
                if let (Some(ev), Some(data)) = (field("event:"), field("data:")) {
                    return Some((ev, serde_json::from_str(&data).unwrap()));
                }
                continue; // a comment (keepalive)
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame()).await.expect("an event within 10 s")?;
            self.buf.push_str(&text(&frame.unwrap().into_data().unwrap()));
        }
    }

    /// Skips to the next event named `name` (quality updates come at any time).
    async fn expect(&mut self, name: &str) -> Value {
        loop {
            match self.next().await {
                Some((ev, data)) if ev == name => return data,
                Some(_) => {}
                None => panic!("stream ended before a {name} event"),
            }
        }
    }
}

async fn recv_message(ev: &mut mpsc::Receiver<HostEvent>) -> (PeerId, Bytes) {
    loop {
        match tokio::time::timeout(WAIT, ev.recv()).await.expect("a message within 10 s") {
            Some(HostEvent::Message { peer, data }) => return (peer, data),
            Some(_) => {}
            None => panic!("node stopped"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_with_a_real_http_client() {
    let (a, server) = with_control("alpha").await;
    let api = server.local_addr();
    assert!(api.ip().is_loopback());
    let b = node("bravo").await;
    let bid = b.peer_id().to_string();
    let mut b_events = b.events().await.unwrap();
    let mut sse = Sse::open(api).await;

    // GET /v1/node
    let (s, n) = call(api, "GET", "/v1/node", Value::Null).await;
    assert_eq!(s, 200);
    assert_eq!((n["id"].as_str().unwrap(), n["name"].as_str().unwrap()), (a.peer_id().to_string().as_str(), "alpha"));
    assert_eq!(n["listen"]["tcp"][0], a.local_addrs().tcp[0].to_string());
    assert_eq!(n["control"], server.url());
    assert_eq!(n["stats"]["connected"], 0);

    // POST /v1/connect, pinned: the peer and its first quality figures come back.
    let (s, p) = call(api, "POST", "/v1/connect", json!({"url": url(&b, Transport::Tcp), "expect": bid})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (p["id"].as_str(), p["name"].as_str(), p["transport"].as_str()),
        (Some(&*bid), Some("bravo"), Some("tcp"))
    );
    assert_eq!(p["role"], "initiator");
    assert!(p["quality"]["rtt_us"].as_u64().unwrap() > 0, "the handshake gives a first RTT: {p}");
    let c = sse.expect("connected").await;
    assert_eq!((c["peer"].as_str(), c["name"].as_str()), (Some(&*bid), Some("bravo")));

    // GET /v1/peers, /v1/peers/{peer}/quality, /v1/nodes, /v1/nodes/{peer}
    let (s, ps) = call(api, "GET", "/v1/peers", Value::Null).await;
    assert_eq!(
        (s.as_u16(), ps["peers"].as_array().unwrap().len(), ps["peers"][0]["id"].as_str()),
        (200, 1, Some(&*bid))
    );
    let (s, q) = call(api, "GET", &format!("/v1/peers/{bid}/quality"), Value::Null).await;
    assert_eq!((s.as_u16(), q["peer"].as_str()), (200, Some(&*bid)));
    assert!(q["quality"]["rtt_us"].as_u64().unwrap() > 0 && q["quality"]["score"].as_f64().unwrap() > 0.0, "{q}");
    let (s, ns) = call(api, "GET", "/v1/nodes", Value::Null).await;
    assert_eq!(s, 200);
    let row = &ns["nodes"][0];
    assert_eq!(
        (row["id"].as_str(), row["state"].as_str(), row["name"].as_str()),
        (Some(&*bid), Some("connected"), Some("bravo"))
    );
    assert!(row["quality"]["rtt_us"].as_u64().unwrap() > 0 && row["threat"] == 0.0, "{row}");
    assert_eq!(row["hello"]["max_message"], 4096, "the Hello is kept: {row}");
    let (s, one) = call(api, "GET", &format!("/v1/nodes/{bid}"), Value::Null).await;
    assert_eq!((s.as_u16(), one["id"].as_str(), one["transport"].as_str()), (200, Some(&*bid), Some("tcp")));

    // POST /v1/send: text and binary arrive at the peer byte for byte.
    let (s, r) = call(api, "POST", "/v1/send", json!({"peer": bid, "data": "hello bravo ✓"})).await;
    assert_eq!((s.as_u16(), r["len"].as_u64()), (200, Some("hello bravo ✓".len() as u64)), "{r}");
    assert_eq!(recv_message(&mut b_events).await, (a.peer_id(), Bytes::from("hello bravo ✓")));
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&binary);
    let (s, _) = call(api, "POST", "/v1/send", json!({"peer": bid, "data_b64": b64})).await;
    assert_eq!(s, 200);
    assert_eq!(recv_message(&mut b_events).await.1, binary);

    // Messages to this node appear on the event stream: UTF-8 with its text, binary without.
    b.send(a.peer_id(), &b"from bravo"[..]).await.unwrap();
    b.send(a.peer_id(), vec![0xff, 0x00, 0xfe]).await.unwrap();
    let m = sse.expect("message").await;
    assert_eq!(
        (m["peer"].as_str(), m["data"].as_str(), m["len"].as_u64()),
        (Some(&*bid), Some("from bravo"), Some(10))
    );
    let m = sse.expect("message").await;
    assert_eq!(m["data_b64"], "/wD+");
    assert!(m.get("data").is_none(), "invalid UTF-8 has no text form: {m}");

    // GET /v1/metrics and the Prometheus text.
    let (s, mt) = call(api, "GET", "/v1/metrics", Value::Null).await;
    assert_eq!(s, 200);
    assert_eq!((mt["node"]["msgs_out"].as_u64(), mt["node"]["msgs_in"].as_u64()), (Some(2), Some(2)), "{mt}");
    assert_eq!(mt["control"]["event_streams"], 1);
    assert!(mt["control"]["requests"].as_u64().unwrap() >= 10);
    let (s, prom) = call(api, "GET", "/metrics", Value::Null).await;
    let prom = prom.as_str().unwrap().to_string();
    assert_eq!(s, 200);
    assert!(
        prom.contains("\nmeshlink_messages_out_total 2\n") && prom.contains("\nmeshlink_connected_peers 1\n"),
        "{prom}"
    );
    assert!(prom.contains(&format!("meshlink_peer_rtt_seconds{{peer=\"{bid}\",name=\"bravo\",transport=\"tcp\"}} ")));

    // POST /v1/disconnect: the peer is told, the table remembers it.
    let (s, d) = call(api, "POST", "/v1/disconnect", json!({"peer": bid})).await;
    assert_eq!((s.as_u16(), d["disconnected"].as_bool()), (200, Some(true)));
    let d = sse.expect("disconnected").await;
    assert_eq!((d["peer"].as_str(), d["reason_kind"].as_str()), (Some(&*bid), Some("local")));
    let (_, ps) = call(api, "GET", "/v1/peers", Value::Null).await;
    assert_eq!(ps["peers"], json!([]));
    let (_, one) = call(api, "GET", &format!("/v1/nodes/{bid}"), Value::Null).await;
    assert_eq!(one["state"], "disconnected");
    assert_eq!(one["connected_for_ms"], Value::Null);

    // Again over UDP, unpinned; then a threat score above the threshold drops it (F05).
    let (s, p) = call(api, "POST", "/v1/connect", json!({"url": url(&b, Transport::Udp)})).await;
    assert_eq!((s.as_u16(), p["transport"].as_str()), (200, Some("udp")), "{p}");
    sse.expect("connected").await;
    let (s, t) = call(api, "POST", "/v1/threat", json!({"peer": bid, "score": 0.95})).await;
    assert_eq!((s.as_u16(), t["connected"].as_bool()), (200, Some(false)), "{t}");
    let d = sse.expect("disconnected").await;
    assert!(d["reason"].as_str().unwrap().contains("Threat"), "{d}");
    let (_, one) = call(api, "GET", &format!("/v1/nodes/{bid}"), Value::Null).await;
    assert_eq!(one["state"], "disconnected");
    assert!((one["threat"].as_f64().unwrap() - 0.95).abs() < 1e-6, "{one}");
    // A score for a peer never seen is kept too (it is refused when it comes).
    let stranger = random_id();
    let (s, t) = call(api, "POST", "/v1/threat", json!({"peer": stranger, "score": 1.0})).await;
    assert_eq!((s.as_u16(), t["connected"].as_bool()), (200, Some(false)));
    assert_eq!(call(api, "GET", &format!("/v1/nodes/{stranger}"), Value::Null).await.1["state"], "known");

    // The node stops: the event stream ends.
    a.shutdown().await.unwrap();
    while sse.next().await.is_some() {}
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_error_bodies() {
    let (a, server) = with_control("alpha").await;
    let api = server.local_addr();
    let b = node("bravo").await;

    // 401 without the token, with a wrong one, and with another scheme; nothing leaks.
    for auth in [None, Some(format!("Bearer {}", TOKEN.replace('0', "1"))), Some(format!("Basic {TOKEN}"))] {
        for (m, path) in [("GET", "/v1/peers"), ("POST", "/v1/send"), ("GET", "/v1/openapi.json"), ("GET", "/nope")] {
            let resp = open(api, m, path, auth.as_deref(), "{}").await;
            assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"meshlink\"");
            let status = resp.status();
            let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
            err((status, body), 401, "unauthorized");
        }
    }
    let (_, mt) = call(api, "GET", "/v1/metrics", Value::Null).await;
    assert_eq!(mt["control"]["unauthorized"], 12);

    // 400: malformed JSON, wrong shapes, bad values; each message says what is wrong.
    let bad = |path: &'static str, body: &'static str| async move {
        raw(api, "POST", path, Some(&format!("Bearer {TOKEN}")), body).await
    };
    assert!(err(bad("/v1/connect", "{\"url\": ").await, 400, "invalid_json").contains("JSON"));
    assert!(err(bad("/v1/send", "not json").await, 400, "invalid_json").contains("JSON"));
    assert!(err(bad("/v1/send", "").await, 400, "invalid_json").contains("empty"));
    assert!(err(bad("/v1/disconnect", "{}").await, 400, "invalid_request").contains("missing field `peer`"));
    assert!(err(bad("/v1/threat", "{\"peer\": 5, \"score\": 1}").await, 400, "invalid_request").contains("string"));
    assert!(err(bad("/v1/send", "{\"peer\": \"x\", \"dat\": \"y\"}").await, 400, "invalid_request").contains("dat"));
    let bid = b.peer_id().to_string();
    let msg = err(call(api, "POST", "/v1/send", json!({"peer": "abc", "data": "x"})).await, 400, "invalid_peer_id");
    assert!(msg.contains("\"abc\""), "{msg}");
    err(
        call(api, "POST", "/v1/send", json!({"peer": bid, "data": "x", "data_b64": "eA=="})).await,
        400,
        "invalid_request",
    );
    err(call(api, "POST", "/v1/send", json!({"peer": bid})).await, 400, "invalid_request");
    err(call(api, "POST", "/v1/send", json!({"peer": bid, "data_b64": "%%%"})).await, 400, "invalid_base64");
    err(call(api, "POST", "/v1/threat", json!({"peer": bid, "score": 1.5})).await, 400, "invalid_score");
    err(call(api, "POST", "/v1/threat", json!({"peer": bid, "score": -0.1})).await, 400, "invalid_score");
    err(call(api, "POST", "/v1/connect", json!({"url": "carrier-pigeon://x:1"})).await, 400, "invalid_url");
    err(
        call(api, "POST", "/v1/connect", json!({"url": "tcp://127.0.0.1:1", "expect": "zz"})).await,
        400,
        "invalid_peer_id",
    );
    err(call(api, "GET", "/v1/nodes/not-an-id", Value::Null).await, 400, "invalid_peer_id");

    // 404: unknown peers and routes; 405: wrong method.
    let nobody = random_id();
    err(call(api, "GET", &format!("/v1/peers/{nobody}/quality"), Value::Null).await, 404, "unknown_peer");
    err(call(api, "GET", &format!("/v1/nodes/{nobody}"), Value::Null).await, 404, "unknown_peer");
    err(call(api, "POST", "/v1/send", json!({"peer": nobody, "data": "x"})).await, 404, "unknown_peer");
    err(call(api, "POST", "/v1/disconnect", json!({"peer": nobody})).await, 404, "unknown_peer");
    err(call(api, "GET", "/v1/nope", Value::Null).await, 404, "not_found");
    assert!(err(call(api, "DELETE", "/v1/peers", Value::Null).await, 405, "method_not_allowed").contains("GET"));
    let r = open(api, "PUT", "/v1/send", Some(&format!("Bearer {TOKEN}")), "").await;
    assert_eq!((r.status().as_u16(), r.headers()["allow"].to_str().unwrap()), (405, "POST"), "405 names the method");
    assert!(err(call(api, "GET", "/v1/connect", Value::Null).await, 405, "method_not_allowed").contains("POST"));

    // 413: a message over the node's limit, and a body over the API's.
    a.connect(&url(&b, Transport::Tcp), None).await.unwrap();
    let big = "x".repeat(5000);
    err(call(api, "POST", "/v1/send", json!({"peer": bid, "data": big})).await, 413, "message_too_large");
    let huge = format!("{{\"peer\": \"{bid}\", \"data\": \"{}\"}}", "x".repeat(200_000));
    let r = raw(api, "POST", "/v1/send", Some(&format!("Bearer {TOKEN}")), &huge).await;
    err(r, 413, "body_too_large");

    // 502: nothing listens there; the pinned key is not the one the peer proves.
    err(call(api, "POST", "/v1/connect", json!({"url": "tcp://127.0.0.1:1"})).await, 502, "connect_failed");
    let r = call(api, "POST", "/v1/connect", json!({"url": url(&b, Transport::Ws), "expect": nobody})).await;
    err(r, 502, "peer_key_mismatch");

    // 503 once the node has stopped.
    a.shutdown().await.unwrap();
    err(call(api, "GET", "/v1/peers", Value::Null).await, 503, "node_stopped");
    b.shutdown().await.unwrap();
}

/// The OpenAPI document lists exactly what the server serves: its paths against the
/// route table, and every documented operation answered (not a routing 404/405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_served_routes() {
    let (a, server) = with_control("alpha").await;
    let api = server.local_addr();
    let (s, doc) = call(api, "GET", "/v1/openapi.json", Value::Null).await;
    assert_eq!(s, 200);
    assert_eq!(doc, serde_json::from_str::<Value>(control::OPENAPI_JSON).unwrap());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            assert!(op["responses"]["401"].is_object(), "{method} {path} documents 401");
            // Every schema it names exists.
            for r in op.to_string().split("#/components/schemas/").skip(1) {
                let name = r.split('"').next().unwrap();
                assert!(doc["components"]["schemas"][name].is_object(), "{name} in {method} {path}");
            }
        }
    }
    let served: BTreeSet<(String, String)> = control::routes().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, served);
    // Every status any request can get is documented on every operation; a 405 names
    // its `Allow` header, and the server sends it with the path's methods.
    assert_eq!(doc["components"]["responses"]["MethodNotAllowed"]["headers"]["Allow"]["required"], true);
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let mut want = vec!["200", "401", "405", "414", "431", "500", "503"];
            if method == "post" {
                want.extend(["400", "408", "413", "415"]);
            }
            if path.contains("{peer}") {
                want.extend(["400", "404"]);
            }
            for code in want {
                assert!(op["responses"][code].is_object(), "{method} {path} documents {code}");
            }
        }
        let allow: Vec<String> = ops.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        let path = path.replace("{peer}", &random_id());
        let resp = open(api, "PATCH", &path, Some(&format!("Bearer {TOKEN}")), "").await;
        assert_eq!(resp.status(), 405, "PATCH {path}");
        assert_eq!(resp.headers()["allow"].to_str().unwrap(), allow.join(", "), "{path}");
    }
    assert!(doc["paths"]["/v1/connect"]["post"]["responses"]["403"].is_object(), "a threatened peer");
    let events = &doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"];
    assert!(events["text/event-stream"].is_object(), "{events}");
    let some_peer = random_id();
    for (method, path) in &documented {
        let path = path.replace("{peer}", &some_peer);
        let resp = open(api, method, &path, Some(&format!("Bearer {TOKEN}")), "{}").await;
        let status = resp.status();
        if status.as_u16() == 404 || status.as_u16() == 405 {
            let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
            let code = body["error"]["code"].as_str().unwrap().to_string();
            assert!(code != "not_found" && code != "method_not_allowed", "{method} {path}: {body}");
        }
    }
    a.shutdown().await.unwrap();
}

/// An event-stream client that never reads does not slow the node: it misses events
/// (and is told how many), the node takes every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_event_stream_does_not_hold_the_node() {
    let (a, server) = with_control("alpha").await;
    let api = server.local_addr();
    let b = node("bravo").await;
    let mut stalled = Sse::open(api).await;
    b.connect(&url(&a, Transport::Tcp), Some(a.peer_id())).await.unwrap();
    const N: u64 = 6000;
    let chunk = vec![b'm'; 2048];
    for _ in 0..N {
        b.send(a.peer_id(), chunk.clone()).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, mt) = call(api, "GET", "/v1/metrics", Value::Null).await;
        if mt["node"]["msgs_in"].as_u64() == Some(N) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the node took only {} messages", mt["node"]["msgs_in"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut messages, mut missed) = (0u64, 0u64);
    while messages + missed < N {
        match stalled.next().await.unwrap() {
            (ev, _) if ev == "message" => messages += 1,
            (ev, d) if ev == "lagged" => missed += d["missed"].as_u64().unwrap(),
            _ => {}
        }
    }
    assert!(missed > 0, "6000 messages of 2 KiB cannot all wait for a client that does not read");
    let (_, mt) = call(api, "GET", "/v1/metrics", Value::Null).await;
    assert!(mt["control"]["events_lagged"].as_u64().unwrap() >= missed);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn loopback_only_and_a_taken_port() {
    let a = node("alpha").await;
    for addr in ["0.0.0.0:0", "[::]:0", "10.1.2.3:7410"] {
        let opts = ControlOptions::new(addr.parse().unwrap(), TOKEN.into());
        let e = control::serve(a.clone(), opts).await.err().expect("refused").to_string();
        assert!(e.contains("loopback only"), "{addr}: {e}");
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = ControlOptions::new(taken.local_addr().unwrap(), TOKEN.into());
    assert!(control::serve(a.clone(), opts.clone()).await.is_err(), "an address asked for must be had");
    opts.fallback_to_free_port = true;
    let s = control::serve(a.clone(), opts).await.unwrap();
    assert_ne!(s.local_addr(), taken.local_addr().unwrap());
    assert_eq!(call(s.local_addr(), "GET", "/v1/peers", Value::Null).await.0, 200);
    // Dropping the server closes it.
    let addr = s.local_addr();
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    a.shutdown().await.unwrap();
}

/// Hostile local clients cannot lock the API out (issue 13, item 3): 64 sockets that
/// never send the token, 64 open event streams and 64 requests whose body never ends,
/// all at once, and a CLI call (the crate's client, as `meshlink` uses it) still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_streams_and_unfinished_bodies_leave_a_cli_call_working() {
    use tokio::io::AsyncWriteExt;
    let (a, server) = with_control("alpha").await;
    let api = server.local_addr();
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(tokio::net::TcpStream::connect(api).await.unwrap());
    }
    let mut streams = Vec::new();
    for _ in 0..64 {
        streams.push(Sse::open(api).await);
    }
    for _ in 0..64 {
        let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
        let head = format!(
            "POST /v1/send HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"peer\""
        );
        s.write_all(head.as_bytes()).await.unwrap();
        held.push(s);
    }
    let opts = control::client::ClientOptions::default().with(|c| c.timeout = Duration::from_secs(5));
    let client = control::client::Client::with_options(&server.url(), TOKEN, opts).unwrap();
    let node: Value = client.get("/v1/node").await.expect("a CLI call while the API is under siege");
    assert_eq!(node["id"], a.peer_id().to_string());
    let m: Value = client.get("/v1/metrics").await.unwrap();
    assert_eq!(m["control"]["event_streams"], 64, "{m}");
    assert!(m["control"]["connections"].as_u64().unwrap() >= 192, "{m}");
    drop((held, streams));
    a.shutdown().await.unwrap();
}

async fn with_limits(limits: control::ControlLimits) -> (HostHandle, ControlServer) {
    let n = node("alpha").await;
    let mut opts = ControlOptions::new("127.0.0.1:0".parse().unwrap(), TOKEN.into());
    opts.limits = limits;
    let server = control::serve(n.clone(), opts).await.unwrap();
    (n, server)
}

/// Each limit at its edge: the socket cap closes the oldest socket without the token,
/// the stream cap answers 503, a body that does not arrive gets 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_limits_at_their_edges() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = control::ControlLimits::default().with(|c| {
        c.max_connections = 4;
        c.max_streams = 2;
        c.body_timeout = Duration::from_millis(300);
    });
    let (a, server) = with_limits(limits).await;
    let api = server.local_addr();
    // Four silent sockets fill the cap; a request with the token still gets through,
    // and the oldest silent socket is the one closed.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(tokio::net::TcpStream::connect(api).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(call(api, "GET", "/v1/peers", Value::Null).await.0, 200);
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(WAIT, silent[0].read(&mut buf)).await.expect("closed, not left open");
    assert!(matches!(n, Ok(0) | Err(_)), "the oldest socket without the token is closed: {n:?}");
    let (_, m) = call(api, "GET", "/v1/metrics", Value::Null).await;
    assert!(m["control"]["evicted"].as_u64().unwrap() >= 1, "{m}");
    drop(silent);

    // Streams: two open, the third is refused at once; one closed makes room.
    let s1 = Sse::open(api).await;
    let _s2 = Sse::open(api).await;
    err(call(api, "GET", "/v1/events", Value::Null).await, 503, "too_many_streams");
    drop(s1);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = open(api, "GET", "/v1/events", Some(&format!("Bearer {TOKEN}")), "").await;
        if r.status() == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "a closed stream gives its place back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A body that never completes: 408 after the body timeout.
    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    let head = format!(
        "POST /v1/disconnect HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut answer)).await.expect("an answer");
    let answer = text(&answer);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"), "{answer}");
    // A head that never comes (a silent socket, or half a head): closed after the header timeout.
    let (b, quick) = with_limits(limits.with(|c| c.header_timeout = Duration::from_millis(300))).await;
    let api = quick.local_addr();
    let mut silent = tokio::net::TcpStream::connect(api).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(api).await.unwrap();
    half.write_all(b"GET /v1/node HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    for s in [&mut silent, &mut half] {
        let mut sink = Vec::new();
        let r = tokio::time::timeout(WAIT, s.read_to_end(&mut sink)).await;
        assert!(r.is_ok(), "the server closes a socket whose head does not arrive");
    }
    assert!(control::ControlConfig::default().with(|c| c.max_streams = 0).limits().is_err(), "zero is refused");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Item 10/11: what the document promises about bodies and heads, the server keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_json_objects_and_heads_have_json_limits() {
    let (a, server) = with_control("alpha").await;
    let api = server.local_addr();
    let auth = format!("Bearer {TOKEN}");
    // 415: a body that does not say it is JSON.
    let tcp = tokio::net::TcpStream::connect(api).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::post("/v1/disconnect")
        .header("host", "x")
        .header("authorization", &auth)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from("peer=x")))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 415);
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    // Arrays are not taken positionally; null fields are refused; blanks around ids too.
    let bid = random_id();
    let r = raw(api, "POST", "/v1/connect", Some(&auth), "[\"tcp://127.0.0.1:1\"]").await;
    assert!(err(r, 400, "invalid_request").contains("object"));
    let r = raw(api, "POST", "/v1/threat", Some(&auth), &format!("[\"{bid}\", 0.5]")).await;
    err(r, 400, "invalid_request");
    err(
        call(api, "POST", "/v1/connect", json!({"url": "tcp://127.0.0.1:1", "expect": null})).await,
        400,
        "invalid_request",
    );
    err(call(api, "POST", "/v1/disconnect", json!({"peer": format!(" {bid}")})).await, 400, "invalid_peer_id");
    err(call(api, "POST", "/v1/connect", json!({"url": " tcp://127.0.0.1:1"})).await, 400, "invalid_url");
    err(call(api, "POST", "/v1/connect", json!({"url": "TCP://127.0.0.1:1"})).await, 400, "invalid_url");
    // Item 15: the range is checked on the number as sent.
    let r =
        raw(api, "POST", "/v1/threat", Some(&auth), &format!("{{\"peer\": \"{bid}\", \"score\": 1.00000001}}")).await;
    err(r, 400, "invalid_score");
    assert_eq!(call(api, "POST", "/v1/threat", json!({"peer": bid, "score": 1})).await.0, 200);
    // 414 and 431 with JSON bodies.
    let long = format!("/v1/nodes/{}", "a".repeat(9000));
    err(call(api, "GET", &long, Value::Null).await, 414, "uri_too_long");
    let tcp = tokio::net::TcpStream::connect(api).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("/v1/node")
        .header("host", "x")
        .header("authorization", &auth)
        .header("x-big", "b".repeat(20_000))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 431);
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large");
    // The document's peer-id pattern takes a real id (and the server takes what it takes).
    let doc: Value = serde_json::from_str(control::OPENAPI_JSON).unwrap();
    let pat = doc["components"]["schemas"]["PeerId"]["pattern"].as_str().unwrap();
    assert_eq!(pat, "^[a-zA-Z2-7]{51}[aAqQ]$");
    let in_pattern = |id: &str| {
        id.len() == 52
            && id.bytes().all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
            && matches!(id.as_bytes()[51], b'a' | b'A' | b'q' | b'Q')
    };
    // Real ids fit the pattern, and strings that fit it are ids (both ways, so that no
    // schema-valid id is a 400 and no 400 is schema-valid).
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let id = random_id();
        assert!(in_pattern(&id), "{id}");
        let mut s: String = (0..51).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char).collect();
        s.push(['a', 'A', 'q', 'Q'][(next() % 4) as usize]);
        assert!(s.parse::<PeerId>().is_ok(), "{s} fits the pattern");
        let mut bad = s.clone();
        bad.replace_range(51.., "b");
        assert!(!in_pattern(&bad) && bad.parse::<PeerId>().is_err(), "{bad}");
    }
    a.shutdown().await.unwrap();
}
