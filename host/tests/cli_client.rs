//! The client commands against two real `meshlink up` daemons (the built binary,
//! ephemeral ports, temporary data directories): `connect`, `send`, `peers`, `quality`,
//! `nodes`, `disconnect`, `status`, `events`, human and `--json`, with the effects
//! checked on the other daemon.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

mod common;

use common::{meshlink, tempdir, Lines};

/// The next JSON line of `events --json`.
fn next_event(watch: &mut Lines) -> Value {
    let l = watch.rx.recv_timeout(Duration::from_secs(15)).expect("an event line");
    let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
    assert_ne!(v["event"], "quality", "filtered out by --only");
    v
}

struct Daemon {
    proc: Lines,
    dir: PathBuf,
    id: String,
    tcp: String,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = tempdir(name);
        let lo = "127.0.0.1:0";
        let d = dir.to_str().unwrap();
        let args = ["up", "--data-dir", d, "--name", name, "--tcp", lo, "--ws", "off", "--udp", lo, "--control", lo];
        let mut proc = Lines::spawn(meshlink(&args));
        let id = proc.wait_for("peer id").split_whitespace().last().unwrap().to_string();
        let tcp = proc.wait_for("tcp://").split_whitespace().last().unwrap().to_string();
        let control = proc.wait_for("control").split_whitespace().nth(1).unwrap().to_string();
        assert!(control.starts_with("http://127.0.0.1:"), "{control}");
        assert_eq!(std::fs::read_to_string(dir.join("control.url")).unwrap().trim(), control);
        Daemon { proc, dir, id, tcp }
    }

    fn run(&self, args: &[&str]) -> Output {
        common::client(&self.dir, args)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        common::client_ok(&self.dir, args)
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs it, expecting a one-line error; the line.
    #[track_caller]
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("meshlink: error: "), "{err}");
        err
    }

    fn stop(self) -> PathBuf {
        assert!(self.proc.terminate().success());
        self.dir
    }
}

fn cleanup(dir: &Path) {
    assert!(!dir.join("control.url").exists(), "a stopped node removes its control URL");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn two_daemons_driven_through_the_client_commands() {
    let (a, b) = (Daemon::start("alpha"), Daemon::start("bravo"));
    let bdir = b.dir.to_str().unwrap().to_string();

    // Watch bravo's events from the outside, as a script would.
    let only = "connected,message,disconnected";
    let mut watch = Lines::spawn(meshlink(&["events", "--json", "--only", only, "--count", "4", "--data-dir", &bdir]));
    assert_eq!(next_event(&mut watch)["event"], "ready");

    // connect (pinned), human output.
    let out = a.ok(&["connect", &b.tcp, "--expect", &b.id]);
    assert!(out.contains(&b.id) && out.contains("(bravo) via tcp"), "{out}");
    let ev = next_event(&mut watch);
    assert_eq!((ev["event"].as_str(), ev["data"]["peer"].as_str()), (Some("connected"), Some(a.id.as_str())));

    // send, naming the peer by name, then by id prefix with a file; bravo gets both.
    let out = a.ok(&["send", "bravo", "hello from the CLI"]);
    assert_eq!(out.trim(), format!("sent 18 bytes to {}", b.id));
    let ev = next_event(&mut watch);
    assert_eq!((ev["event"].as_str(), ev["data"]["data"].as_str()), (Some("message"), Some("hello from the CLI")));
    assert_eq!(ev["data"]["peer"], a.id);
    let file = a.dir.join("blob.bin");
    let blob: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&file, &blob).unwrap();
    let sent = a.json(&["send", &b.id[..6], "--file", file.to_str().unwrap()]);
    assert_eq!(sent["len"], 3000);
    let ev = next_event(&mut watch);
    let got = base64::engine::general_purpose::STANDARD.decode(ev["data"]["data_b64"].as_str().unwrap()).unwrap();
    assert_eq!(got, blob, "every byte arrives");

    // peers: wg-style blocks, and JSON.
    let out = a.ok(&["peers"]);
    for want in
        [format!("peer: {}", b.id), "name: bravo".into(), format!("endpoint: {}", b.tcp), "(as initiator)".into()]
    {
        assert!(out.contains(&want), "{want:?} in:\n{out}");
    }
    let peers = a.json(&["peers"]);
    assert_eq!(
        (peers["peers"][0]["id"].as_str(), peers["peers"][0]["quality"]["msgs_out"].as_u64()),
        (Some(&*b.id), Some(2))
    );

    // quality of one peer (human and JSON), and of all peers on the other side.
    let out = a.ok(&["quality", "bravo"]);
    let rtt = out.lines().find(|l| l.trim_start().starts_with("rtt:")).expect("an rtt line").to_string();
    assert!(rtt.ends_with("ms") && !rtt.contains(" -"), "{out}");
    let q = a.json(&["quality", &b.id]);
    assert!(q["quality"]["rtt_us"].as_u64().unwrap() > 0, "{q}");
    assert!(q["quality"]["bytes_out"].as_u64().unwrap() > 3000, "{q}");
    let qb = b.json(&["quality"]);
    assert_eq!(qb["peers"][0]["id"], a.id);
    assert_eq!(qb["peers"][0]["quality"]["msgs_in"], 2, "bravo counted both messages: {qb}");
    assert!(qb["peers"][0]["quality"]["rtt_us"].as_u64().unwrap() > 0, "both sides have an RTT");
    let table = b.ok(&["quality"]);
    assert!(table.starts_with("ID") && table.contains("alpha") && table.contains(" tcp "), "{table}");

    // status and nodes.
    let st = a.json(&["status"]);
    assert_eq!(
        (st["id"].as_str(), st["name"].as_str(), st["stats"]["connected"].as_u64()),
        (Some(&*a.id), Some("alpha"), Some(1))
    );
    let out = a.ok(&["nodes"]);
    assert!(out.contains(&b.id[..8]) && out.contains("connected"), "{out}");

    // Errors are one line and a non-zero exit.
    assert!(a.fails(&["send", "nobody", "x"]).contains("no node"));
    let stranger = meshlink_core::Keypair::generate(&mut rand_core::OsRng).peer_id().to_string();
    assert!(a.fails(&["quality", &stranger]).contains("no connected peer"));
    assert!(a.fails(&["connect", "tcp://127.0.0.1:1"]).contains("connect"));
    assert!(a.fails(&["peers", "--control", "http://127.0.0.1:1"]).contains("cannot reach"));
    let wrong = meshlink(&["peers", "--data-dir", &bdir]).env("MESHLINK_TOKEN", "0".repeat(64)).output().unwrap();
    assert!(!wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("wrong bearer token"));
    // The token from the environment and the URL from a flag work without the data dir.
    let token = std::fs::read_to_string(b.dir.join("control.token")).unwrap();
    let url = std::fs::read_to_string(b.dir.join("control.url")).unwrap();
    let out = meshlink(&["status", "--json", "--control", url.trim(), "--data-dir", "/nonexistent"])
        .env("MESHLINK_TOKEN", token.trim())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // disconnect: bravo sees it, alpha has no peers left.
    let out = a.ok(&["disconnect", "bravo"]);
    assert_eq!(out.lines().next(), Some(format!("disconnected {}", b.id).as_str()), "{out}");
    let ev = next_event(&mut watch);
    assert_eq!((ev["event"].as_str(), ev["data"]["reason_kind"].as_str()), (Some("disconnected"), Some("remote")));
    assert!(watch.wait_exit().success(), "events --count 4 exits after four events");
    assert_eq!(a.ok(&["peers"]).trim(), "no connected peers");
    assert_eq!(a.json(&["nodes"])["nodes"][0]["state"], "disconnected");

    let (da, db) = (a.stop(), b.stop());
    cleanup(&da);
    cleanup(&db);
}
