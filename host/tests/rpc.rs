//! RPC (spec §15.5) through the host: two in-process nodes with control servers; the
//! built-ins `get_funcs` / `get_peers` through the library, `POST /v1/call`,
//! `GET /v1/funcs/{peer}` and the `meshlink call` / `meshlink funcs` commands; an unknown
//! function; malformed `/v1/call` bodies.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use meshlink_core::Keypair;
use meshlink_host::control::{self, ControlOptions, ControlServer};
use meshlink_host::messaging::RequestOpts;
use meshlink_host::{Host, HostConfig, HostError, HostHandle, Listen};
use rand_core::OsRng;
use serde_json::{json, Value};

const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn with_control(name: &str) -> (HostHandle, ControlServer) {
    let cfg = HostConfig::default().with(|c| {
        c.name = name.into();
        c.listen = Listen::loopback();
    });
    let n = Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap();
    let mut opts = ControlOptions::new("127.0.0.1:0".parse().unwrap(), TOKEN.into());
    opts.name = name.into();
    let server = control::serve(n.clone(), opts).await.unwrap();
    (n, server)
}

async fn http(addr: SocketAddr, method: Method, path: &str, body: impl Into<String>) -> (StatusCode, Value) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json");
    let resp = tx.send_request(req.body(Full::new(Bytes::from(body.into()))).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[track_caller]
fn err(r: (StatusCode, Value), status: u16, code: &str) {
    assert_eq!(r.0.as_u16(), status, "{}", r.1);
    assert_eq!(r.1["error"]["code"], code, "{}", r.1);
}

/// `meshlink ARGS --control URL` with the token in the environment: (success, stdout, stderr).
async fn cli(api: SocketAddr, dir: std::path::PathBuf, args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        let url = format!("http://{api}");
        all.extend(["--control", &url, "--data-dir", dir.to_str().unwrap()]);
        let out = common::meshlink(&all).env("MESHLINK_TOKEN", TOKEN).output().unwrap();
        let s = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        (out.status.success(), s(&out.stdout), s(&out.stderr))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_unknown_functions_and_bad_bodies() {
    let (a, sa) = with_control("alpha").await;
    let (b, _sb) = with_control("bravo").await;
    a.connect(&format!("tcp://{}", b.local_addrs().tcp[0]), Some(b.peer_id())).await.unwrap();
    let api = sa.local_addr();
    let bp = b.peer_id().to_string();

    // The library: bravo has no functions; its one peer is alpha.
    assert_eq!(a.funcs(b.peer_id()).await.unwrap(), vec![]);
    assert_eq!(a.remote_peers(b.peer_id()).await.unwrap(), vec![a.peer_id().to_string()]);
    let r = a.call(b.peer_id(), "math.add", vec![json!(1), json!(2)], RequestOpts::new()).await;
    assert!(matches!(r, Err(HostError::UnknownFunction { ref name }) if name == "math.add"), "{r:?}");
    // Arguments with no value: refused before anything is sent.
    let r = a.call(b.peer_id(), "x", vec![json!({"$x": 1})], RequestOpts::new()).await;
    assert!(matches!(r, Err(HostError::InvalidArguments(_))), "{r:?}");
    let r = a.call(b.peer_id(), "$x", vec![], RequestOpts::new()).await;
    assert!(matches!(r, Err(HostError::Messaging(_))), "{r:?}");

    // The API.
    let call = |body: Value| http(api, Method::POST, "/v1/call", body.to_string());
    let (s, v) = call(json!({"peer": bp, "function": "get_peers"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"result": [a.peer_id().to_string()]}));
    let (s, v) = call(json!({"peer": bp, "function": "get_funcs", "args": [], "timeout_ms": 5000})).await;
    assert_eq!((s.as_u16(), v), (200, json!({"result": []})));
    let (s, v) = http(api, Method::GET, &format!("/v1/funcs/{bp}"), "").await;
    assert_eq!((s.as_u16(), v), (200, json!({"functions": []})));
    err(
        call(json!({"peer": bp, "function": "nope", "args": [1, "a", {"$bytes": "AQI="}]})).await,
        404,
        "unknown_function",
    );

    // Malformed bodies.
    err(http(api, Method::POST, "/v1/call", "{").await, 400, "invalid_json");
    err(http(api, Method::POST, "/v1/call", "[]").await, 400, "invalid_request");
    err(call(json!({"peer": bp})).await, 400, "invalid_request");
    err(call(json!({"peer": bp, "function": "f", "args": 1})).await, 400, "invalid_request");
    err(call(json!({"peer": bp, "function": "f", "extra": 1})).await, 400, "invalid_request");
    err(call(json!({"peer": "zz", "function": "f"})).await, 400, "invalid_peer_id");
    err(call(json!({"peer": bp, "function": "$f"})).await, 400, "invalid_function");
    err(call(json!({"peer": bp, "function": "a.*"})).await, 400, "invalid_function");
    err(call(json!({"peer": bp, "function": "f", "timeout_ms": 0})).await, 400, "invalid_request");
    err(call(json!({"peer": bp, "function": "f", "args": [{"$k": 1}]})).await, 400, "invalid_arguments");
    err(call(json!({"peer": bp, "function": "f", "args": [18446744073709551615u64]})).await, 400, "invalid_arguments");
    let mut deep = json!(0);
    for _ in 0..20 {
        deep = json!([deep]);
    }
    err(call(json!({"peer": bp, "function": "f", "args": [deep]})).await, 400, "invalid_arguments");
    // The document's limits, at their edges: what its schema allows reaches the peer (an
    // unknown function), what it refuses is a 400 (schemathesis checks both directions).
    err(call(json!({"peer": "", "function": "f"})).await, 400, "invalid_peer_id");
    err(call(json!({"peer": bp, "function": ""})).await, 400, "invalid_function");
    err(call(json!({"peer": bp, "function": "f", "version": "1..2"})).await, 400, "invalid_version");
    err(call(json!({"peer": bp, "function": "f", "version": ""})).await, 404, "unknown_function");
    err(call(json!({"peer": bp, "function": "a.$b", "version": "2.1-rc"})).await, 404, "unknown_function");
    let tokens = |n: usize| vec!["t"; n].join(".");
    err(call(json!({"peer": bp, "function": tokens(15)})).await, 404, "unknown_function");
    err(call(json!({"peer": bp, "function": tokens(16)})).await, 400, "invalid_function");
    err(call(json!({"peer": bp, "function": "n".repeat(251)})).await, 404, "unknown_function");
    err(call(json!({"peer": bp, "function": "n".repeat(252)})).await, 400, "invalid_function");
    err(http(api, Method::GET, "/v1/funcs/zz", "").await, 400, "invalid_peer_id");
    let doc: Value = serde_json::from_str(control::OPENAPI_JSON).unwrap();
    let schemas = &doc["components"]["schemas"];
    let props = &schemas["CallRequest"]["properties"];
    for (field, schema) in [("peer", "PeerId"), ("function", "FunctionName"), ("version", "Version")] {
        assert_eq!(props[field]["$ref"], format!("#/components/schemas/{schema}"), "{field}");
    }
    assert_eq!(schemas["FunctionName"]["minLength"], 1);
    assert_eq!(schemas["FunctionName"]["maxLength"], meshlink_core::messaging::rpc::MAX_NAME);
    let stranger = Keypair::generate(&mut OsRng).peer_id().to_string();
    err(call(json!({"peer": stranger, "function": "get_funcs"})).await, 404, "unknown_peer");
    err(http(api, Method::GET, &format!("/v1/funcs/{stranger}"), "").await, 404, "unknown_peer");

    // The CLI.
    let dir = common::tempdir("rpc-cli");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let run = |args: &[&str]| cli(api, dir.clone(), args.iter().map(|s| s.to_string()).collect());
    let (ok, out, e) = run(&["call", &bp, "get_peers"]).await;
    assert!(ok, "{e}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([a.peer_id().to_string()]));
    let (ok, out, e) = run(&["funcs", &bp]).await;
    assert!(ok && out.is_empty(), "{out} {e}");
    let (ok, out, e) = run(&["funcs", &bp, "--json"]).await;
    assert!(ok, "{e}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"functions": []}));
    let (ok, _, e) = run(&["call", &bp, "nope", "1", "-2", "\"x\""]).await;
    assert!(!ok && e.lines().count() == 1 && e.contains("unknown_function"), "{e}");
    let (ok, _, e) = run(&["call", &bp, "nope", "not json"]).await;
    assert!(!ok && e.lines().count() == 1 && e.contains("invalid_arguments"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
