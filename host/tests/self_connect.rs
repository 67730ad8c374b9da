//! Issue 13, item 6: a node asked to connect to its own address refuses with a typed
//! error (the core's `Error::SelfConnect`), over TCP and UDP, through the `HostHandle`,
//! the control API (409 `self_connect`) and the CLI (one line, non-zero exit). It never
//! lists itself as a peer, and a persistent target that turns out to be itself is not
//! re-dialled.
// HostConfig is being made #[non_exhaustive]: outside the crate it is built by assignment.
#![allow(clippy::field_reassign_with_default)]

use std::time::Duration;

use meshlink_core::{DisconnectReason, Error, Keypair};
use meshlink_host::control::{self, ControlOptions};
use meshlink_host::{Host, HostConfig, HostError, HostHandle, Listen, PeerUrl, Transport};
use rand_core::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::{meshlink, tempdir, Lines};

const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn node() -> HostHandle {
    let mut cfg = HostConfig::default();
    cfg.name = "selfish".into();
    cfg.listen = Listen::loopback();
    // Quick retries, so that a target that kept re-dialling itself would show it.
    cfg.reconnect.base_ms = 20;
    cfg.reconnect.max_ms = 40;
    Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap()
}

fn own_url(n: &HostHandle, t: Transport) -> String {
    let l = n.local_addrs();
    PeerUrl::for_addr(t, if t == Transport::Tcp { l.tcp[0] } else { l.udp[0] })
}

#[track_caller]
fn is_self_connect(e: &HostError) -> bool {
    matches!(
        e,
        HostError::Core(Error::SelfConnect)
            | HostError::Handshake { reason: DisconnectReason::Error(Error::SelfConnect), .. }
    )
}

/// After a refused self-connect: no peer, and nothing half open left behind for long.
async fn no_self_peer(n: &HostHandle) {
    let peers = n.peers().await.unwrap();
    assert!(peers.iter().all(|p| p.peer != n.peer_id()), "the node lists itself: {peers:?}");
    assert!(peers.is_empty(), "{peers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_refuses_to_connect_to_itself() {
    let n = node().await;
    for t in [Transport::Tcp, Transport::Udp] {
        let url = own_url(&n, t);
        // Unpinned: the handshake finds our own key.
        let e = tokio::time::timeout(Duration::from_secs(10), n.connect(&url, None))
            .await
            .unwrap_or_else(|_| panic!("{t}: the self-connect is refused at once, not after a timeout"))
            .unwrap_err();
        assert!(is_self_connect(&e), "{t}: {e:?}");
        assert!(e.to_string().contains("this node itself"), "{t}: {e}");
        // Pinned to our own id: refused before any packet.
        let e = n.connect(&url, Some(n.peer_id())).await.unwrap_err();
        assert!(is_self_connect(&e), "{t} pinned: {e:?}");
        no_self_peer(&n).await;
    }
    assert_eq!(n.stats().await.unwrap().node.connected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_target_that_is_this_node_is_dropped_not_redialled() {
    let n = node().await;
    for t in [Transport::Tcp, Transport::Udp] {
        let e = n.connect_persistent(&own_url(&n, t), None).await.unwrap_err();
        assert!(is_self_connect(&e), "{t}: {e:?}");
        let e = n.connect_persistent(&own_url(&n, t), Some(n.peer_id())).await.unwrap_err();
        assert!(is_self_connect(&e), "{t} pinned: {e:?}");
    }
    // With 20-40 ms backoff, a target still alive would have re-dialled many times by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let targets = n.reconnect_targets().await.unwrap();
    assert!(targets.is_empty(), "a self target is kept: {targets:?}");
    let before = n.stats().await.unwrap().node.handshakes_failed;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(n.stats().await.unwrap().node.handshakes_failed, before, "it keeps re-dialling itself");
    no_self_peer(&n).await;
}

/// `POST /v1/connect` with our own URL: a 409 with code `self_connect`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_answers_409_self_connect() {
    let n = node().await;
    let server =
        control::serve(n.clone(), ControlOptions::new("127.0.0.1:0".parse().unwrap(), TOKEN.into())).await.unwrap();
    for t in [Transport::Tcp, Transport::Udp] {
        for expect in [None, Some(n.peer_id().to_string())] {
            let mut body = serde_json::json!({ "url": own_url(&n, t) });
            if let Some(e) = &expect {
                body["expect"] = e.clone().into();
            }
            let body = body.to_string();
            let mut s = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
            let req = format!(
                "POST /v1/connect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await.unwrap().unwrap();
            let text = String::from_utf8(buf).unwrap();
            let (head, json) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 409"), "{t} {expect:?}: {text}");
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(v["error"]["code"], "self_connect", "{v}");
            assert!(v["error"]["message"].as_str().unwrap().contains("itself"), "{v}");
        }
    }
    no_self_peer(&n).await;
}

/// The CLI: `meshlink connect <own url>` prints one error line and exits non-zero;
/// `peers` stays empty.
#[test]
fn the_cli_prints_one_line_and_the_node_lists_no_peer() {
    let dir = tempdir("selfconnect");
    let d = dir.to_str().unwrap();
    let lo = "127.0.0.1:0";
    let args = ["up", "--data-dir", d, "--name", "me", "--tcp", lo, "--ws", "off", "--udp", lo, "--control", lo];
    let mut up = Lines::spawn(meshlink(&args));
    let tcp = up.wait_for("tcp://").split_whitespace().last().unwrap().to_string();
    let udp = up.wait_for("udp://").split_whitespace().last().unwrap().to_string();
    up.wait_for("control");
    for url in [&tcp, &udp] {
        let out = meshlink(&["connect", url, "--data-dir", d]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: connected to itself: {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(err.trim_end().lines().count(), 1, "{url}: one line: {err:?}");
        assert!(err.contains("itself"), "{url}: {err}");
        let out = meshlink(&["peers", "--json", "--data-dir", d]).output().unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let list = v.get("peers").unwrap_or(&v);
        assert_eq!(list.as_array().map(Vec::len), Some(0), "{url}: {v}");
    }
    assert!(up.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}
