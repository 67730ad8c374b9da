//! The `meshlink` binary used the way a new user and a hostile peer would (issue 13,
//! items 3, 8, 9, 14-16, 18, 19, and issue 12's `up --json`): each test fails without
//! its fix.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{meshlink, tempdir};
use serde_json::Value;

/// A peer name that tries to recolour the terminal and forge a line of `peers`.
const HOSTILE: &str = "x\u{1b}[31mRED\n  threat: 0.00";

/// A daemon whose stdout and stderr lines both arrive on channels.
struct Node {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    dir: PathBuf,
    seen: Vec<String>,
}

fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    rx
}

impl Node {
    fn spawn(tag: &str, extra: &[&str]) -> Node {
        Self::spawn_env(tag, extra, &[])
    }

    fn spawn_env(tag: &str, extra: &[&str], env: &[(&str, &str)]) -> Node {
        let dir = tempdir(tag);
        let lo = "127.0.0.1:0";
        let d = dir.to_str().unwrap().to_string();
        let mut args = vec!["up", "--data-dir", &d];
        for (flag, v) in [("--tcp", lo), ("--ws", "off"), ("--udp", "off"), ("--control", lo)] {
            if !extra.contains(&flag) {
                args.extend([flag, v]);
            }
        }
        args.extend(extra);
        let mut cmd = meshlink(&args);
        cmd.env_remove("RUST_LOG").env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let out = lines(child.stdout.take().unwrap());
        let err = lines(child.stderr.take().unwrap());
        Node { child, out, err, dir, seen: Vec::new() }
    }

    /// The next stdout line containing `pat` (20 s at most).
    fn wait_for(&mut self, pat: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.out.recv_timeout(left) {
                Ok(l) if l.contains(pat) => return l,
                Ok(l) => self.seen.push(l),
                Err(_) => break,
            }
        }
        panic!("no line with {pat:?}; saw:\n{}", self.seen.join("\n"));
    }

    /// The next stderr line containing `pat`.
    fn wait_for_log(&mut self, pat: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        self.seen.clear();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.err.recv_timeout(left) {
                Ok(l) if l.contains(pat) => return l,
                Ok(l) => self.seen.push(l),
                Err(_) => break,
            }
        }
        panic!("no log line with {pat:?}; saw:\n{}", self.seen.join("\n"));
    }

    /// Its stderr lines so far.
    fn logs(&self) -> Vec<String> {
        self.err.try_iter().collect()
    }

    fn up_banner(&mut self) -> (String, String) {
        let id = self.wait_for("peer id").split_whitespace().last().unwrap().to_string();
        let tcp = self.wait_for("tcp://").split_whitespace().last().unwrap().to_string();
        self.wait_for("control");
        (id, tcp)
    }

    fn run(&self, args: &[&str]) -> Output {
        common::client(&self.dir, args)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        common::client_ok(&self.dir, args)
    }

    fn control_addr(&self) -> String {
        let url = std::fs::read_to_string(self.dir.join("control.url")).unwrap();
        url.trim().trim_start_matches("http://").to_string()
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("control.token")).unwrap().trim().to_string()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let s = wait(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
        s
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Items 9 and 16: a peer's name reaches no terminal raw (peers, nodes, quality, events,
/// the `up` lines, the logs); each event is printed once; logs carry no colour codes
/// when stderr is not a terminal.
#[test]
fn a_hostile_peer_name_is_escaped_on_every_output() {
    let mut a = Node::spawn("esc-a", &[]);
    let (a_id, a_tcp) = a.up_banner();
    let mut b = Node::spawn("esc-b", &["--name", HOSTILE, "--connect", &a_tcp, "--expect", &a_id]);
    b.up_banner();
    let line = a.wait_for("connected");
    assert!(!line.contains('\u{1b}') && line.contains("x\\u{1b}[31mRED\\u{a}  threat: 0.00"), "{line}");

    for cmd in [&["peers"][..], &["nodes"], &["quality"]] {
        let out = a.ok(cmd);
        assert!(!out.contains('\u{1b}'), "{cmd:?}: {out}");
        assert!(out.contains("x\\u{1b}[31mRED"), "{cmd:?} shows the name, escaped: {out}");
    }
    let peers = a.ok(&["peers"]);
    assert_eq!(peers.lines().filter(|l| l.trim_start().starts_with("threat:")).count(), 1, "no forged line: {peers}");
    // `events` prints the connected event of a new session the same way.
    let mut watch = meshlink(&["events", "--only", "connected", "--count", "1", "--data-dir", a.dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ev = lines(watch.stdout.take().unwrap());
    assert!(ev.recv_timeout(Duration::from_secs(20)).unwrap().starts_with("listening to node"));
    a.ok(&["disconnect", &b_id(&a)]); // b re-dials (it was started with --connect)
    let l = ev.recv_timeout(Duration::from_secs(20)).expect("the re-dial's connected event");
    assert!(l.starts_with("connected") && !l.contains('\u{1b}') && l.contains("\\u{1b}"), "{l}");
    assert!(wait(&mut watch).success());

    // Logs at debug level include the driver's lines with the name: escaped, no colour.
    let logs = a.logs();
    assert!(logs.iter().all(|l| !l.contains('\u{1b}')), "no escape codes in logs: {logs:?}");
    // Each event once: the stdout line, not also an INFO log.
    assert!(!logs.iter().any(|l| l.contains("INFO") && l.contains("connected")), "{logs:?}");
    b.stop();
    a.stop();

    // With the driver's own lines on (debug), the name in them is escaped too.
    let mut c = Node::spawn("esc-c", &["--name", HOSTILE]);
    let (c_id, c_tcp) = c.up_banner();
    let mut d =
        Node::spawn_env("esc-d", &["--connect", &c_tcp, "--expect", &c_id], &[("RUST_LOG", "meshlink_host=debug")]);
    d.up_banner();
    let log = d.wait_for_log("RED");
    assert!(!log.contains('\u{1b}') && log.contains("\\u{1b}"), "{log}");
    d.stop();
    c.stop();
}

/// The full id of the only peer of `n`.
fn b_id(n: &Node) -> String {
    let v: Value = serde_json::from_str(&n.ok(&["peers", "--json"])).unwrap();
    v["peers"][0]["id"].as_str().unwrap().to_string()
}

/// Items 14 and 16: `events | head -1` ends quietly on the closed pipe; `events` says so
/// and exits non-zero when the node stops.
#[test]
fn events_end_quietly_on_a_closed_pipe_and_loudly_when_the_node_stops() {
    let mut a = Node::spawn("pipe-a", &[]);
    let (a_id, a_tcp) = a.up_banner();
    let d = a.dir.to_str().unwrap().to_string();
    let mut head =
        meshlink(&["events", "--data-dir", &d]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(head.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("listening to node"), "{first}");
    drop(out); // `head -1` exits
               // Events now have nowhere to go.
    let mut b = Node::spawn("pipe-b", &["--connect", &a_tcp, "--expect", &a_id]);
    b.up_banner();
    a.wait_for("connected");
    let status = wait(&mut head);
    let mut err = String::new();
    head.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(status.success() || status.signal() == Some(13), "ended like a Unix tool: {status:?}");
    }
    assert!(err.is_empty(), "no message, no panic: {err}");

    let mut watch =
        meshlink(&["events", "--data-dir", &d]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let ev = lines(watch.stdout.take().unwrap());
    assert!(ev.recv_timeout(Duration::from_secs(20)).unwrap().starts_with("listening"));
    b.stop();
    a.stop();
    let status = wait(&mut watch);
    let mut err = String::new();
    watch.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success() && err.contains("the node stopped"), "{status:?}: {err}");
}

/// Item 15: threat scores are numbers within 0..=1, checked as written; `-1` is a value.
#[test]
fn threat_scores_are_checked_with_clear_errors() {
    let id = meshlink_core::Keypair::generate(&mut rand_core::OsRng).peer_id().to_string();
    for (score, says) in [
        ("NaN", "out of range"),
        ("-1", "out of range"),
        ("1.00000001", "out of range"),
        ("abc", "not a number"),
        ("inf", "out of range"),
    ] {
        let out = meshlink(&["threat", &id, score, "--data-dir", "/nonexistent"]).output().unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{score} taken");
        assert!(err.contains(says) && err.contains("0..=1"), "{score}: {err}");
        assert!(!err.contains("unexpected argument") && !err.contains("f32"), "{score}: {err}");
    }
}

/// Item 18: `disconnect` says a re-dialling peer comes back, and `block` keeps it out.
/// Item 3 at the binary: the same node's API under siege still answers the CLI.
#[test]
fn disconnect_warns_of_the_redial_and_block_keeps_the_peer_out() {
    let mut a = Node::spawn("block-a", &[]);
    let (a_id, a_tcp) = a.up_banner();
    let mut b = Node::spawn("block-b", &["--connect", &a_tcp, "--expect", &a_id]);
    b.up_banner();
    a.wait_for("connected");
    let bid = b_id(&a);
    let out = a.ok(&["disconnect", &bid]);
    assert!(out.contains("comes back") && out.contains("meshlink block"), "{out}");
    a.wait_for("connected"); // it did come back
    b.wait_for_log("reconnected");
    let out = a.ok(&["block", &bid[..8]]);
    assert!(out.starts_with(&format!("blocked {bid}")) && out.contains("unblocks"), "{out}");
    a.wait_for("disconnected");
    // b dials again (the first line), is refused, and will dial again (the second).
    b.wait_for_log("reconnecting");
    let again = b.wait_for_log("reconnecting");
    assert!(again.contains("closed by peer (Threat)"), "refused for its threat score: {again}");
    let node: Value = serde_json::from_str(&a.ok(&["nodes", "--json"])).unwrap();
    assert_eq!(node["nodes"][0]["threat"], 1.0, "{node}");

    // 64 silent sockets, 64 event streams, 64 bodies that never end: `status` still works.
    let (addr, token) = (a.control_addr(), a.token());
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(TcpStream::connect(&addr).unwrap());
    }
    for _ in 0..64 {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(s, "GET /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n").unwrap();
        held.push(s);
    }
    for _ in 0..64 {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(s, "POST /v1/send HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 999\r\n\r\n{{").unwrap();
        held.push(s);
    }
    let out = a.run(&["status", "--json", "--timeout", "10"]);
    assert!(out.status.success(), "the CLI under siege: {}", stderr(&out));
    drop(held);
    b.stop();
    a.stop();
}

/// Issue 12's `up --json`, item 16's unique default names and the banner's addresses,
/// item 8's banner suggestion.
#[test]
fn up_json_line_unique_default_names_and_a_banner_that_shows_what_to_dial() {
    let host = meshlink_host::HostConfig::default().name;
    let mut names = Vec::new();
    let mut nodes = Vec::new();
    for tag in ["json-a", "json-b"] {
        let dir = tempdir(tag);
        let d = dir.to_str().unwrap().to_string();
        let lo = "127.0.0.1:0";
        let mut child =
            meshlink(&["up", "--json", "--data-dir", &d, "--tcp", lo, "--ws", lo, "--udp", lo, "--control", lo])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
        let out = lines(child.stdout.take().unwrap());
        let line = out.recv_timeout(Duration::from_secs(20)).expect("the JSON line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let id = v["peer_id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 52);
        assert!(v["control"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{v}");
        assert!(v["listen"]["tcp"][0].as_str().unwrap().starts_with("127.0.0.1:"), "{v}");
        assert_eq!(v["urls"].as_array().unwrap().len(), 3, "{v}");
        let name = v["name"].as_str().unwrap().to_string();
        assert!(name.ends_with(&id[..8]) && name.starts_with(&host[..host.len().min(8)]), "{name} for {id}");
        assert!(out.recv_timeout(Duration::from_millis(300)).is_err(), "one line only");
        names.push(name);
        nodes.push((child, dir));
    }
    assert_ne!(names[0], names[1], "two nodes on one machine have two names");
    for (mut child, dir) in nodes {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        assert!(wait(&mut child).success());
        let _ = std::fs::remove_dir_all(dir);
    }

    // Bound to every interface: the banner shows what to dial, as `status` does.
    let mut n = Node::spawn("banner", &["--udp", "0.0.0.0:0"]);
    n.wait_for("peer id");
    let udp = n.wait_for("udp://");
    assert!(udp.contains("udp://127.0.0.1:"), "{udp}");
    n.wait_for("every interface");
    let paste = n.wait_for("meshlink up --data-dir");
    let suggested = paste.split_whitespace().nth(3).unwrap().to_string();
    assert_eq!(suggested, format!("{}-2", n.dir.display()), "beside this node's own directory: {paste}");
    let status = n.ok(&["status"]);
    assert!(status.contains(&format!("listening: {}", udp.split_whitespace().last().unwrap())), "{status}");
    n.stop();
}

/// Item 8: a data directory others can write to is refused (by `up` and the client); the
/// token goes to loopback only unless forced; item 19: `MESHLINK_CONTROL` (the listen
/// address of `up`) does not confuse the client; item 3: the client gives up in time.
#[cfg(unix)]
#[test]
fn data_dir_modes_remote_urls_the_control_variables_and_the_client_timeout() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("mode");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let d = dir.to_str().unwrap();
    let out =
        meshlink(&["up", "--data-dir", d, "--tcp", "127.0.0.1:0", "--ws", "off", "--udp", "off"]).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("chmod 700"), "{}", stderr(&out));
    let out = meshlink(&["peers", "--data-dir", d]).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("writable by other users"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);

    let token = "0".repeat(64);
    let out =
        meshlink(&["peers", "--control", "http://192.0.2.1:7410"]).env("MESHLINK_TOKEN", &token).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("refusing to send the control token"), "{err}");
    assert!(err.contains("--allow-remote-control"), "{err}");

    // A listener that never answers: the client's timeout ends the call.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let began = Instant::now();
    let out =
        meshlink(&["peers", "--control", &url, "--timeout", "0.5"]).env("MESHLINK_TOKEN", &token).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("did not answer"), "{}", stderr(&out));
    assert!(began.elapsed() < Duration::from_secs(30));

    let mut n = Node::spawn("envs", &[]);
    n.up_banner();
    let nd = n.dir.to_str().unwrap().to_string();
    let out = meshlink(&["peers", "--data-dir", &nd]).env("MESHLINK_CONTROL", "off").output().unwrap();
    assert!(out.status.success(), "MESHLINK_CONTROL=off is for `up`: {}", stderr(&out));
    let url = std::fs::read_to_string(n.dir.join("control.url")).unwrap();
    let out = meshlink(&["peers", "--data-dir", &nd]).env("MESHLINK_CONTROL", url.trim()).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("MESHLINK_CONTROL_URL"), "{}", stderr(&out));
    let out =
        meshlink(&["peers"]).env("MESHLINK_CONTROL_URL", url.trim()).env("MESHLINK_DATA_DIR", &nd).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    n.stop();
}
