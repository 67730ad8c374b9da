//! Request/response, RPC calls and send-to-many through the host (issue 14, acceptance 6): the
//! library between two in-process hosts, and the CLI between three real `meshlink up`
//! daemons (ephemeral ports, temporary data directories).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use meshlink_core::messaging::RefuseCode;
use meshlink_core::Keypair;
use meshlink_host::messaging::RequestOpts;
use meshlink_host::{Host, HostConfig, HostError, HostHandle, Listen};
use rand_core::OsRng;

mod common;

use common::{meshlink, tempdir, Lines};

// ---------------------------------------------------------------- library

async fn host(f: impl FnOnce(&mut HostConfig)) -> HostHandle {
    let mut cfg = HostConfig::default().with(|c| c.listen = Listen::loopback());
    f(&mut cfg);
    Host::start(cfg, Keypair::generate(&mut OsRng)).await.unwrap()
}

fn opts(ms: u64) -> RequestOpts {
    RequestOpts::new().timeout(Duration::from_millis(ms))
}

#[tokio::test]
async fn library_request_outcomes_between_two_hosts() {
    let a = host(|c| {
        c.messaging.max_pending = 8;
        c.messaging.max_pending_per_peer = 3;
    })
    .await;
    let b = host(|c| c.messaging.serve_queue = 2).await;
    a.connect(&format!("tcp://{}", b.local_addrs().tcp[0]), Some(b.peer_id())).await.unwrap();
    let bp = b.peer_id();

    // An echo service with a failing operation.
    let mut svc = b.serve("svc.*", "1").await.unwrap();
    tokio::spawn(async move {
        while let Some(r) = svc.next().await {
            let body = r.body.clone();
            let _ =
                if r.subject == "svc.fail" { r.respond_error(300, "bad input").await } else { r.respond(body).await };
        }
    });
    let answer = a.request(bp, "svc.echo", &b"ping"[..], opts(5000)).await.unwrap();
    assert_eq!(&answer[..], b"ping");
    for i in 0..50u32 {
        let body = i.to_be_bytes().to_vec();
        assert_eq!(a.request(bp, "svc.echo", body.clone(), opts(5000)).await.unwrap(), body);
    }
    match a.request(bp, "svc.fail", &b""[..], opts(5000)).await {
        Err(HostError::Failed { code: 300, message }) => assert_eq!(message, "bad input"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(a.request(bp, "nobody.home", &b""[..], opts(5000)).await, Err(HostError::NoResponders)));
    let v2 = RequestOpts::new().timeout(Duration::from_secs(5)).version("2.0");
    let r = a.request(bp, "svc.echo", &b""[..], v2).await;
    assert!(matches!(r, Err(HostError::Refused { code: RefuseCode::VersionMismatch })), "{r:?}");
    assert!(matches!(a.request(bp, "bad..subject", &b""[..], opts(100)).await, Err(HostError::Messaging(_))));

    // A service that never reads: its queue of 2 fills, the next request is refused Busy.
    let silent = b.serve("slow.>", "").await.unwrap();
    let queued: Vec<_> = ["slow.one", "slow.two"]
        .into_iter()
        .map(|s| {
            let a = a.clone();
            tokio::spawn(async move { a.request(bp, s, &b""[..], opts(400)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = a.request(bp, "slow.three", &b""[..], opts(2000)).await;
    assert!(matches!(r, Err(HostError::Refused { code: RefuseCode::Busy })), "{r:?}");
    assert_eq!(b.stats().await.unwrap().requests_busy, 1);
    // The queued ones are never answered: Timeout, distinct from the rest.
    for q in queued {
        assert!(matches!(q.await.unwrap(), Err(HostError::Timeout)));
    }

    // Per-peer pending cap: three in flight, the fourth fails at once, nothing sent.
    let _hang = (b.serve("hang.*", "").await.unwrap(), b.serve("hang2.*", "").await.unwrap());
    let pend: Vec<_> = ["hang.0", "hang.1", "hang2.0"]
        .into_iter()
        .map(|s| {
            let a = a.clone();
            tokio::spawn(async move { a.request(bp, s, &b""[..], opts(600)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = a.request(bp, "hang.x", &b""[..], opts(600)).await;
    assert!(matches!(r, Err(HostError::PendingLimit { limit: 3, per_peer: true })), "{r:?}");
    for p in pend {
        let r = p.await.unwrap();
        assert!(matches!(r, Err(HostError::Timeout)), "{r:?}");
    }

    // Dropping the stream unregisters the handler.
    drop(silent);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match a.request(bp, "slow.three", &b""[..], opts(2000)).await {
            Err(HostError::NoResponders) => break,
            r => assert!(Instant::now() < deadline, "still served: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.stats().await.unwrap().messaging.timeouts, 5, "the two queued and the three hanging");

    // Send to many: one result per peer, an unknown peer reported, not fatal.
    let stranger = Keypair::generate(&mut OsRng).peer_id();
    let mut events = b.events().await.unwrap();
    let r = a.send_many(&[bp, stranger], &b"hi all"[..]).await.unwrap();
    assert_eq!(r.len(), 2);
    assert!(r[0].0 == bp && r[0].1.is_ok(), "{r:?}");
    assert!(matches!(r[1], (p, Err(HostError::Core(meshlink_core::Error::UnknownPeer))) if p == stranger), "{r:?}");
    let all = a.send_all(&b"hi everyone"[..]).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].0 == bp && all[0].1.is_ok());
    let mut got = Vec::new();
    while got.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
        if let meshlink_host::HostEvent::Message { data, .. } = ev {
            got.push(data);
        }
    }
    assert_eq!(got, vec![&b"hi all"[..], &b"hi everyone"[..]]);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn dropping_the_request_future_cancels_it_and_a_lost_peer_is_disconnected() {
    let a = host(|_| {}).await;
    let b = host(|_| {}).await;
    a.connect(&format!("tcp://{}", b.local_addrs().tcp[0]), None).await.unwrap();
    let mut svc = b.serve("work", "").await.unwrap();
    // Dropped before the answer: the request is cancelled, its slot freed.
    let r =
        tokio::time::timeout(Duration::from_millis(200), a.request(b.peer_id(), "work", &b""[..], opts(10_000))).await;
    assert!(r.is_err(), "no answer yet");
    let req = svc.next().await.unwrap();
    assert_eq!(req.subject, "work");
    // The session ends while a request waits: Disconnected, not a timeout.
    let pending = tokio::spawn({
        let (a, p) = (a.clone(), b.peer_id());
        async move { a.request(p, "work", &b""[..], opts(10_000)).await }
    });
    let _second = svc.next().await.unwrap();
    b.shutdown().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    assert!(matches!(r, Err(HostError::Disconnected)), "{r:?}");
    assert_eq!(a.stats().await.unwrap().messaging.timeouts, 0);
    a.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- three daemons

struct Daemon {
    proc: Lines,
    dir: PathBuf,
    id: String,
    tcp: String,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        Daemon::start_with(name, &[])
    }

    /// With more `up` options.
    fn start_with(name: &str, extra: &[&str]) -> Daemon {
        let dir = tempdir(&format!("msg-{name}"));
        let lo = "127.0.0.1:0";
        let d = dir.to_str().unwrap();
        let mut args = vec!["up", "--data-dir", d, "--name", name, "--tcp", lo, "--ws", "off", "--udp", "off"];
        args.extend(["--control", lo]);
        args.extend(extra);
        let mut proc = Lines::spawn(meshlink(&args));
        let id = proc.wait_for("peer id").split_whitespace().last().unwrap().to_string();
        let tcp = proc.wait_for("tcp://").split_whitespace().last().unwrap().to_string();
        proc.wait_for("control");
        Daemon { proc, dir, id, tcp }
    }

    fn run(&self, args: &[&str]) -> Output {
        common::client(&self.dir, args)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        common::client_ok(&self.dir, args)
    }

    /// A one-line error; the line.
    #[track_caller]
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("meshlink: error: "), "{err}");
        err
    }

    /// A long-running client command (serve, events) on this daemon.
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

#[test]
fn cli_request_serve_and_send_to_many_between_three_daemons() {
    let (alpha, bravo, charlie) = (Daemon::start("alpha"), Daemon::start("bravo"), Daemon::start("charlie"));
    bravo.ok(&["connect", &alpha.tcp, "--expect", &alpha.id]);
    charlie.ok(&["connect", &alpha.tcp]);

    // bravo echoes, charlie upper-cases through a command and has a slow service.
    let mut echo = bravo.spawn(&["serve", "svc.echo", "--echo"]);
    echo.wait_for("serving svc.echo");
    let mut upper = charlie.spawn(&["serve", "svc.upper", "--exec", "tr a-z A-Z"]);
    upper.wait_for("serving svc.upper");
    let mut slow = charlie.spawn(&["serve", "svc.slow", "--exec", "sleep 5; cat"]);
    slow.wait_for("serving svc.slow");
    let mut failing = charlie.spawn(&["serve", "svc.fail", "--exec", "echo nope >&2; exit 3"]);
    failing.wait_for("serving svc.fail");

    // Peer names resolve as for `send`.
    assert_eq!(alpha.ok(&["request", "bravo", "svc.echo", "hello bravo"]), "hello bravo");
    echo.wait_for(&format!("from {}: svc.echo (11 bytes)", alpha.id));
    assert_eq!(alpha.ok(&["request", &charlie.id[..10], "svc.upper", "shout"]), "SHOUT");
    // Each outcome is its own one-line error.
    let e = alpha.fails(&["request", "bravo", "svc.nothing", "x"]);
    assert!(e.contains("no_responders"), "{e}");
    let began = Instant::now();
    let e = alpha.fails(&["request", "charlie", "svc.slow", "x", "--timeout-ms", "300"]);
    assert!(e.contains("timeout") && !e.contains("no_responders"), "{e}");
    assert!(began.elapsed() < Duration::from_secs(4), "{:?}", began.elapsed());
    let e = alpha.fails(&["request", "charlie", "svc.fail", "x"]);
    assert!(e.contains("handler_failed") && e.contains("nope"), "{e}");
    let e = alpha.fails(&["request", "bravo", "svc.echo", "x", "--version", "not a version"]);
    assert!(e.contains("invalid_version"), "{e}");
    let e = alpha.fails(&["request", "bravo", "svc.*", "x"]);
    assert!(e.contains("invalid_subject"), "{e}");

    // RPC calls between the daemons: alpha's built-in get_peers names both others.
    let out = bravo.ok(&["call", "alpha", "get_peers"]);
    let mut peers: Vec<String> = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    peers.sort();
    let mut want = vec![bravo.id.clone(), charlie.id.clone()];
    want.sort();
    assert_eq!(peers, want, "{out}");
    let out = charlie.ok(&["call", "alpha", "get_peers"]);
    assert!(out.contains(&bravo.id) && out.contains(&charlie.id), "{out}");
    let funcs: serde_json::Value = serde_json::from_str(&charlie.ok(&["funcs", "alpha", "--json"])).unwrap();
    assert_eq!(funcs, serde_json::json!({"functions": []}));
    let e = bravo.fails(&["call", "alpha", "math.add", "1", "2"]);
    assert!(e.contains("unknown_function"), "{e}");
    let e = bravo.fails(&["call", "alpha", "math.add", "not json"]);
    assert!(e.contains("invalid_arguments"), "{e}");
    let e = bravo.fails(&["call", "alpha", "$x"]);
    assert!(e.contains("invalid_function"), "{e}");

    // Send to many: per-peer results, delivered.
    let mut on_bravo = bravo.spawn(&["events", "--only", "message", "--count", "2", "--json"]);
    on_bravo.wait_for("ready");
    let out = alpha.ok(&["send", "--to", "bravo,charlie", "to two"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("queued") && lines[0].contains(&bravo.id), "{out}");
    assert!(lines[1].starts_with("queued") && lines[1].contains(&charlie.id), "{out}");
    let out = alpha.ok(&["send", "--all", "to all"]);
    assert_eq!(out.lines().filter(|l| l.starts_with("queued")).count(), 2, "{out}");
    assert!(out.contains(&bravo.id) && out.contains(&charlie.id), "{out}");
    on_bravo.wait_for("to two");
    on_bravo.wait_for("to all");
    let json = alpha.ok(&["send", "--to", &format!("{},{}", bravo.id, charlie.id), "j", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 2, "{v}");
    // A peer that is not connected is reported, and the command fails.
    let stranger = Keypair::generate(&mut OsRng).peer_id().to_string();
    let out = alpha.run(&["send", "--to", &format!("bravo,{stranger}"), "x"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("queued") && stdout.contains(&format!("failed  {stranger}: unknown_peer")), "{stdout}");
    // bravo has one peer: --all reaches only it.
    let out = bravo.ok(&["send", "--all", "from bravo"]);
    assert_eq!(out.lines().count(), 1, "{out}");

    // Stopping `serve` unregisters: the next request gets no_responders.
    drop(echo);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = alpha.run(&["request", "bravo", "svc.echo", "x", "--timeout-ms", "2000"]);
        if String::from_utf8_lossy(&out.stderr).contains("no_responders") {
            break;
        }
        assert!(Instant::now() < deadline, "still served");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop((upper, slow, failing));
    alpha.stop();
    bravo.stop();
    charlie.stop();
}

/// A command that exits without reading its standard input fails its request, and only
/// it: `serve` used to die of SIGPIPE writing the body into the closed pipe, leaving the
/// request to time out and the service gone. A body larger than a pipe's buffer (64 KiB
/// on Linux) makes that write certain to find the pipe closed; a small one only raced.
#[test]
fn cli_serve_survives_a_command_that_does_not_read_its_input() {
    let big = ["--max-message", "1048576"];
    let (delta, echo) = (Daemon::start_with("delta", &big), Daemon::start_with("echo", &big));
    delta.ok(&["connect", &echo.tcp, "--expect", &echo.id]);
    let mut deaf = echo.spawn(&["serve", "svc.deaf", "--exec", "echo deaf >&2; exit 3"]);
    deaf.wait_for("serving svc.deaf");
    let file = delta.dir.join("body");
    std::fs::write(&file, vec![b'x'; 100 * 1024]).unwrap();
    let file = file.to_str().unwrap();
    for _ in 0..2 {
        let e = delta.fails(&["request", "echo", "svc.deaf", "--file", file]);
        assert!(e.contains("handler_failed") && e.contains("deaf"), "{e}");
        deaf.wait_for("svc.deaf (102400 bytes)");
    }
    assert!(deaf.child.try_wait().unwrap().is_none(), "serve exited");
    // A small body (the race the three-daemon test hit now and then) is answered alike.
    let e = delta.fails(&["request", "echo", "svc.deaf", "x"]);
    assert!(e.contains("handler_failed") && e.contains("deaf"), "{e}");
    drop(deaf);

    // With SIGPIPE ignored, a closed standard output (`serve ... | head -1`) ends `serve`
    // quietly: the request it was printing is still answered, then it exits 0.
    let mut args = vec!["serve", "svc.head", "--echo", "--data-dir"];
    args.push(echo.dir.to_str().unwrap());
    let mut head = meshlink(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(head.stdout.take().unwrap()).read_line(&mut first).unwrap(); // dropped: closed
    assert!(first.starts_with("serving svc.head"), "{first}");
    assert_eq!(delta.ok(&["request", "echo", "svc.head", "still answered"]), "still answered");
    let out = head.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    delta.stop();
    echo.stop();
}
