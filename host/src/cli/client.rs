//! The client commands (`connect`, `peers`, `send`, `events`, ...): each is one request
//! to a running node's control API, printed as a table (like `wg show`) or, with
//! `--json`, as the API's JSON.
//!
//! The node is found through `--control URL` / `MESHLINK_CONTROL_URL`, else the URL the
//! node wrote to `<data-dir>/control.url`, else `http://127.0.0.1:7410`; the token through
//! `MESHLINK_TOKEN`, else `<data-dir>/control.token`. (`MESHLINK_CONTROL` is the listen
//! address of `up`, not read here.) The token goes to loopback only unless
//! `--allow-remote-control` says otherwise; a data directory others can write to is refused.
//!
//! Everything a peer chose (names, message text) goes through `table::printable` before
//! it reaches the terminal.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

use base64::Engine;
use clap::{Args, Subcommand};
use meshlink_core::PeerId;
use meshlink_host::control::api::*;
use meshlink_host::control::client::{Client, ClientOptions};
use meshlink_host::control::{self, token};
use meshlink_host::table::{bytes, ms, printable};

use super::DataDir;

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// The event names of `GET /v1/events` (besides `ready`).
const EVENTS: [&str; 6] = ["connected", "message", "quality", "remote_error", "disconnected", "lagged"];

#[derive(Args)]
pub struct Target {
    /// The node's control API URL [default: <data-dir>/control.url, else http://127.0.0.1:7410]
    #[arg(long, env = "MESHLINK_CONTROL_URL", value_name = "URL")]
    control: Option<String>,
    #[command(flatten)]
    dir: DataDir,
    /// Print the API's JSON instead of a table
    #[arg(long)]
    json: bool,
    /// Send the token to a control URL that is not loopback (plain HTTP: anyone on the
    /// path can read it)
    #[arg(long, env = "MESHLINK_ALLOW_REMOTE_CONTROL", value_parser = clap::builder::FalseyValueParser::new())]
    allow_remote_control: bool,
    /// Give up on a request after this many seconds
    #[arg(long, env = "MESHLINK_TIMEOUT", value_name = "SECONDS", default_value_t = 60.0, value_parser = parse_timeout)]
    timeout: f64,
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= 86_400.0 => Ok(t),
        _ => Err(format!("{s:?}: expected a number of seconds, above 0 and at most 86400")),
    }
}

impl Target {
    /// A client whose timeout also covers a request of `request_ms` (plus 5 s for the rest).
    fn client_for(&self, request_ms: Option<u32>) -> Result<Client> {
        let need = request_ms.map_or(0.0, |ms| f64::from(ms) / 1000.0 + 5.0);
        let t = Target { timeout: self.timeout.max(need), ..self.clone_parts() };
        t.client()
    }

    fn clone_parts(&self) -> Target {
        Target {
            control: self.control.clone(),
            dir: DataDir { data_dir: self.dir.data_dir.clone() },
            json: self.json,
            allow_remote_control: self.allow_remote_control,
            timeout: self.timeout,
        }
    }

    pub(super) fn client(&self) -> Result<Client> {
        let dir = self.dir.path();
        if self.control.is_none() {
            // `MESHLINK_CONTROL` is where `up` listens (an address, or off); a URL there
            // was meant for the client and would otherwise be ignored without a word.
            if let Ok(v) = std::env::var("MESHLINK_CONTROL") {
                if v.trim().starts_with("http") {
                    return Err(format!(
                        "MESHLINK_CONTROL={v} is the listen address of `meshlink up`; \
                         the client commands read MESHLINK_CONTROL_URL (or --control)"
                    )
                    .into());
                }
            }
        }
        let from_env = std::env::var("MESHLINK_TOKEN").ok().filter(|t| !t.trim().is_empty());
        let file_url = match &self.control {
            Some(_) => None,
            None => {
                token::check_data_dir(&dir)?;
                control::read_url_file(&dir)
            }
        };
        let url =
            self.control.clone().or(file_url).unwrap_or_else(|| format!("http://{}", control::DEFAULT_CONTROL_ADDR));
        let token = match from_env {
            Some(t) => t.trim().to_string(),
            None => {
                token::check_data_dir(&dir)?;
                token::load(&dir)?
            }
        };
        let opts = ClientOptions::default().with(|o| {
            o.timeout = std::time::Duration::from_secs_f64(self.timeout);
            o.allow_remote = self.allow_remote_control;
        });
        Ok(Client::with_options(&url, token, opts)?)
    }
}

#[derive(Subcommand)]
pub enum ClientCmd {
    /// Connect the running node to a peer (tcp://, ws:// or udp://HOST:PORT).
    Connect {
        url: String,
        /// The peer id the remote must prove
        #[arg(long, value_name = "PEER_ID")]
        expect: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Close the session with a peer (a peer that re-dials comes back: see `block`).
    Disconnect {
        /// Peer id, id prefix or name
        peer: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show the connected peers.
    Peers {
        #[command(flatten)]
        target: Target,
    },
    /// Show the node table: every node seen, connected or not.
    Nodes {
        #[command(flatten)]
        target: Target,
    },
    /// Show quality figures: of one peer, or of every connected peer.
    Quality {
        /// Peer id, id prefix or name
        peer: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Send a message to a connected peer (`send PEER TEXT`), to several (`send --to
    /// a,b,c TEXT`) or to every connected peer (`send --all TEXT`).
    Send {
        /// PEER (id, id prefix or name) then TEXT; TEXT alone with --to or --all
        #[arg(num_args = 0..=2, value_name = "PEER TEXT")]
        args: Vec<String>,
        /// Send this file's bytes instead of TEXT (`-`: standard input)
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Send to these peers (comma-separated ids, prefixes or names); prints one result each
        #[arg(long, value_delimiter = ',', value_name = "PEERS", conflicts_with = "all")]
        to: Vec<String>,
        /// Send to every connected peer; prints one result each
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Send a request to a peer and print its answer; exits 1 with one line per outcome
    /// (no_responders, timeout, disconnected, refused, handler_failed, ...).
    Request {
        /// Peer id, id prefix or name
        peer: String,
        /// A literal subject (`svc.echo`)
        subject: String,
        /// The request body (text); `--file` instead
        #[arg(required_unless_present = "file")]
        body: Option<String>,
        /// Send this file's bytes as the body (`-`: standard input)
        #[arg(long, conflicts_with = "body", value_name = "FILE")]
        file: Option<PathBuf>,
        /// The request's timeout [default: the node's messaging.default_timeout_ms]
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..))]
        timeout_ms: Option<u32>,
        /// The version the caller speaks (`1`, `1.2`, `1.2.3-rc.1`)
        #[arg(long, value_name = "V")]
        version: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Call an RPC function on a peer and print its result as JSON; exits 1 with one line
    /// per outcome (unknown_function, no_rpc, timeout, handler_failed, ...)
    Call {
        /// Peer id, id prefix or name
        peer: String,
        /// The function's name (`math.add`; built-ins `get_funcs`, `get_peers`)
        function: String,
        /// The arguments, one JSON value each (`42`, '"text"', '{"$bytes": "AQI="}')
        #[arg(allow_negative_numbers = true, value_name = "JSON_ARG")]
        args: Vec<String>,
        /// The call's timeout [default: the node's messaging.default_timeout_ms]
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..))]
        timeout_ms: Option<u32>,
        /// The version the caller speaks (`1`, `1.2`)
        #[arg(long, value_name = "V")]
        version: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List the RPC functions a peer has registered (name and version)
    Funcs {
        /// Peer id, id prefix or name
        peer: String,
        #[command(flatten)]
        target: Target,
    },
    /// Serve requests for a subject pattern until stopped: answer each with its own body
    /// (`--echo`) or with the standard output of a command given the body on standard input
    /// (`--exec CMD`, run by `sh -c`; a failing command answers a handler error).
    Serve {
        /// A subject pattern (`svc.echo`, `svc.*`, `svc.>`)
        pattern: String,
        #[arg(long, conflicts_with = "exec", required_unless_present = "exec")]
        echo: bool,
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// The handler's version (`""`: any)
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Requests answered at once; more wait (and, past the node's queue, are refused busy)
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
        concurrency: u32,
        /// Exit after answering this many requests
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Publish a message on a literal subject to every neighbour whose interest matches;
    /// prints its sequence number and how many neighbours it was queued to.
    Publish {
        /// A literal subject (`news.sport.eu`)
        subject: String,
        /// The message (text); `--file` instead
        #[arg(required_unless_present = "file")]
        body: Option<String>,
        /// Publish this file's bytes (`-`: standard input)
        #[arg(long, conflicts_with = "body", value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Subscribe to a subject pattern (`*` one token, `>` the rest) and print each
    /// publication of other nodes as it comes (`SUBJECT BODY`), until stopped.
    Subscribe {
        /// A subject pattern (`news.eu`, `news.*.eu`, `news.>`)
        pattern: String,
        /// Exit after this many publications
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// The class of the last hop
        #[arg(long, value_parser = ["high", "normal", "low"])]
        priority: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Set a peer's threat score, 0..1 (above the threshold the node refuses or drops it).
    Threat {
        /// Peer id, id prefix or name
        peer: String,
        /// A number within 0..=1
        #[arg(allow_hyphen_values = true, value_parser = parse_score)]
        score: f64,
        #[command(flatten)]
        target: Target,
    },
    /// Block a peer: close its session and refuse it when it dials again (threat score 1;
    /// `threat PEER 0` unblocks).
    Block {
        /// Peer id, id prefix or name
        peer: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show the node's counters.
    Metrics {
        #[command(flatten)]
        target: Target,
    },
    /// Show this node: id, addresses, counters.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Print the node's events as they happen, until it stops.
    Events {
        /// Exit after this many events (not counting `ready`)
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Only these events (comma-separated)
        #[arg(long, value_delimiter = ',', value_name = "EVENT", value_parser = EVENTS)]
        only: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
}

/// A threat score: a finite number within 0..=1, checked as written (1.00000001 is out
/// of range, not rounded to 1.0); `-1` is a value, not a flag.
fn parse_score(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number; give a score within 0..=1"))?;
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(format!("{s} is out of range; give a score within 0..=1"));
    }
    Ok(v)
}

pub async fn run(cmd: ClientCmd) -> Result<()> {
    match cmd {
        ClientCmd::Connect { url, expect, target } => {
            let c = target.client()?;
            let p: PeerJson = c.post("/v1/connect", &ConnectRequest { url, expect }).await?;
            if target.json {
                return print_json(&p);
            }
            println!(
                "connected to {} ({}) via {} {} as {}, rtt {}, score {:.2}",
                p.id,
                printable(&p.name),
                p.transport,
                p.addr,
                p.role,
                ms(p.quality.rtt_us),
                p.quality.score
            );
        }
        ClientCmd::Disconnect { peer, target } => {
            let c = target.client()?;
            let peer = resolve(&c, &peer).await?;
            let r: DisconnectedJson = c.post("/v1/disconnect", &PeerRequest { peer }).await?;
            if target.json {
                return print_json(&r);
            }
            println!("disconnected {}", r.peer);
            println!(
                "(a peer that dials again, such as one started with --connect, comes back at once; \
                 `meshlink block {}` refuses it)",
                &r.peer[..8.min(r.peer.len())]
            );
        }
        ClientCmd::Block { peer, target } => {
            let c = target.client()?;
            let peer = resolve(&c, &peer).await?;
            let r: BlockedJson = c.post("/v1/block", &PeerRequest { peer }).await?;
            if target.json {
                return print_json(&r);
            }
            let was = if r.was_connected { "disconnected; " } else { "" };
            println!(
                "blocked {} ({was}threat score 1: refused when it dials again; `meshlink threat {} 0` unblocks)",
                r.peer,
                &r.peer[..8.min(r.peer.len())]
            );
        }
        ClientCmd::Peers { target } => {
            let r: PeersJson = target.client()?.get("/v1/peers").await?;
            if target.json {
                return print_json(&r);
            }
            print!("{}", peer_blocks(&r.peers));
        }
        ClientCmd::Nodes { target } => {
            let r: NodesJson = target.client()?.get("/v1/nodes").await?;
            if target.json {
                return print_json(&r);
            }
            print!("{}", nodes_table(&r.nodes));
        }
        ClientCmd::Quality { peer: Some(peer), target } => {
            let c = target.client()?;
            let peer = resolve(&c, &peer).await?;
            let r: PeerQualityJson = c.get(&format!("/v1/peers/{peer}/quality")).await?;
            if target.json {
                return print_json(&r);
            }
            print!("{}", quality_block(&r.peer, &r.quality));
        }
        ClientCmd::Quality { peer: None, target } => {
            let r: PeersJson = target.client()?.get("/v1/peers").await?;
            if target.json {
                return print_json(&r);
            }
            print!("{}", quality_table(&r.peers));
        }
        ClientCmd::Send { args, file, to, all, target } => send(args, file, to, all, target).await?,
        ClientCmd::Request { peer, subject, body, file, timeout_ms, version, target } => {
            let c = target.client_for(timeout_ms)?;
            let peer = resolve(&c, &peer).await?;
            let (data, data_b64) = payload(body, file)?;
            let req = RequestRequest { peer, subject, data, data_b64, timeout_ms, version };
            let r: ReplyJson = c.post("/v1/request", &req).await.map_err(outcome)?;
            if target.json {
                return print_json(&r);
            }
            use std::io::Write;
            let bytes = base64::engine::general_purpose::STANDARD.decode(&r.data_b64)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            if !bytes.ends_with(b"\n") && std::io::IsTerminal::is_terminal(&out) {
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        ClientCmd::Call { peer, function, args, timeout_ms, version, target } => {
            let args = super::rpc::parse_args(&args)?;
            let c = target.client_for(timeout_ms)?;
            let peer = resolve(&c, &peer).await?;
            super::rpc::call(&c, peer, function, args, timeout_ms, version).await?;
        }
        ClientCmd::Funcs { peer, target } => {
            let c = target.client()?;
            let peer = resolve(&c, &peer).await?;
            super::rpc::funcs(&c, &peer, target.json).await?;
        }
        ClientCmd::Serve { pattern, echo, exec, version, concurrency, count, target } => {
            let how = if echo { None } else { exec };
            super::serve::run(target.client()?, pattern, version, how, concurrency as usize, count).await?;
        }
        ClientCmd::Publish { subject, body, file, target } => {
            let c = target.client()?;
            let (data, data_b64) = payload(body, file)?;
            let r: PublishedJson =
                c.post("/v1/publish", &PublishRequest { subject, data, data_b64 }).await.map_err(outcome)?;
            if target.json {
                return print_json(&r);
            }
            println!("published seq {} queued {} failed {}", r.seq, r.queued, r.failed);
        }
        ClientCmd::Subscribe { pattern, count, priority, target } => {
            super::subscribe::run(target.client()?, pattern, priority, count, target.json).await?;
        }
        ClientCmd::Threat { peer, score, target } => {
            let c = target.client()?;
            let peer = resolve(&c, &peer).await?;
            let r: ThreatJson = c.post("/v1/threat", &ThreatRequest { peer, score }).await?;
            if target.json {
                return print_json(&r);
            }
            let state = if r.connected { "connected" } else { "not connected" };
            println!("threat score of {} set to {:.2} ({state})", r.peer, r.score);
        }
        ClientCmd::Metrics { target } => {
            let r: MetricsJson = target.client()?.get("/v1/metrics").await?;
            if target.json {
                return print_json(&r);
            }
            print!("{}", key_values(&serde_json::to_value(&r)?));
        }
        ClientCmd::Status { target } => {
            let r: NodeInfoJson = target.client()?.get("/v1/node").await?;
            if target.json {
                return print_json(&r);
            }
            print!("{}", status_block(&r));
        }
        ClientCmd::Events { count, only, target } => events(target, count, &only).await?,
    }
    Ok(())
}

/// A request's failure as one line that names its outcome (`timeout: request timed out`).
fn outcome(e: meshlink_host::control::client::ClientError) -> Box<dyn Error> {
    match e {
        meshlink_host::control::client::ClientError::Api { code, message, .. } => format!("{code}: {message}").into(),
        e => e.into(),
    }
}

/// TEXT or `--file` as the API's `data` / `data_b64`.
fn payload(text: Option<String>, file: Option<PathBuf>) -> Result<(Option<String>, Option<String>)> {
    match (text, file) {
        (Some(text), None) => Ok((Some(text), None)),
        (None, Some(path)) => {
            let bytes = read_input(&path)?;
            Ok((None, Some(base64::engine::general_purpose::STANDARD.encode(bytes))))
        }
        (Some(_), Some(_)) => Err("give the message text or --file, not both".into()),
        (None, None) => Err("give the message text or --file".into()),
    }
}

async fn send(args: Vec<String>, file: Option<PathBuf>, to: Vec<String>, all: bool, target: Target) -> Result<()> {
    let c = target.client()?;
    let many = all || !to.is_empty();
    let mut args = args.into_iter();
    let peer = if many { None } else { Some(args.next().ok_or("give the peer, or --to PEERS or --all")?) };
    let text = args.next();
    if args.next().is_some() {
        return Err("too many arguments: give PEER TEXT, or --to PEERS TEXT, or --all TEXT".into());
    }
    let (data, data_b64) = payload(text, file)?;
    let mut req = SendRequest { data, data_b64, ..SendRequest::default() };
    if let Some(peer) = peer {
        req.peer = Some(resolve(&c, &peer).await?);
        let r: SentJson = c.post("/v1/send", &req).await?;
        if target.json {
            return print_json(&r);
        }
        println!("sent {} bytes to {}", r.len, r.peer);
        return Ok(());
    }
    if all {
        req.all = Some(true);
    } else {
        let mut ids = Vec::with_capacity(to.len());
        for p in to.iter().filter(|p| !p.trim().is_empty()) {
            ids.push(resolve(&c, p).await?);
        }
        req.to = Some(ids);
    }
    let r: SentManyJson = c.post("/v1/send", &req).await?;
    if target.json {
        return print_json(&r);
    }
    if r.results.is_empty() {
        println!("no connected peers: nothing sent");
    }
    for p in &r.results {
        match &p.error {
            None => println!("queued  {} ({} bytes)", p.peer, r.len),
            Some(e) => println!("failed  {}: {}: {}", p.peer, e.code, printable(&e.message)),
        }
    }
    let failed = r.results.iter().filter(|p| !p.queued).count();
    if failed > 0 {
        return Err(format!("{failed} of {} peers failed", r.results.len()).into());
    }
    Ok(())
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

fn read_input(path: &PathBuf) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut buf)?;
    } else {
        buf = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    }
    Ok(buf)
}

/// A full peer id as is; otherwise a node name or id prefix from the node table.
async fn resolve(c: &Client, s: &str) -> Result<String> {
    if let Ok(id) = s.trim().parse::<PeerId>() {
        return Ok(id.to_string());
    }
    let nodes: NodesJson = c.get("/v1/nodes").await?;
    let by_name: Vec<&NodeJson> = nodes.nodes.iter().filter(|n| n.name == s).collect();
    let hits = if by_name.is_empty() {
        let prefix = s.trim().to_ascii_lowercase();
        nodes.nodes.iter().filter(|n| !prefix.is_empty() && n.id.starts_with(&prefix)).collect()
    } else {
        by_name
    };
    match hits.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(format!("no node is named {s:?} or has an id starting with it (see `meshlink nodes`)").into()),
        many => {
            let ids: Vec<&str> = many.iter().map(|n| n.id.as_str()).collect();
            Err(format!("{s:?} matches {} nodes: {}; give more of the id", many.len(), ids.join(", ")).into())
        }
    }
}

async fn events(target: Target, count: Option<u64>, only: &[String]) -> Result<()> {
    let mut stream = target.client()?.events().await?;
    let mut seen = 0u64;
    while count.is_none_or(|n| seen < n) {
        // Both ends mean the node went away: a stop ends the stream, an exit cuts it.
        let ev = match stream.next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Err("the node stopped: its event stream ended".into()),
            Err(e) => return Err(format!("the node stopped: its event stream broke off ({e})").into()),
        };
        // `ready` always shows: a script knows from it that nothing after is missed.
        if ev.event != "ready" && !only.is_empty() && !only.contains(&ev.event) {
            continue;
        }
        let data: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or(serde_json::Value::Null);
        if target.json {
            println!("{}", serde_json::json!({ "event": ev.event, "data": data }));
        } else {
            println!("{}", event_line(&ev.event, &data));
        }
        if ev.event != "ready" {
            seen += 1;
        }
    }
    Ok(())
}

fn event_line(event: &str, d: &serde_json::Value) -> String {
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
    let short = |k: &str| s(k).chars().take(8).collect::<String>();
    match event {
        "ready" => format!("listening to node {}", s("node")),
        "connected" => format!(
            "connected     {} ({}) via {} {}, rtt {}",
            s("peer"),
            printable(&s("name")),
            s("transport"),
            s("addr"),
            ms(d.pointer("/quality/rtt_us").and_then(|v| v.as_u64()))
        ),
        "message" => {
            let len = d.get("len").and_then(|v| v.as_u64()).unwrap_or(0);
            match d.get("data").and_then(|v| v.as_str()) {
                Some(text) => {
                    let shown: String = text.chars().take(200).collect();
                    format!("message       {} ({len} bytes): {shown:?}", short("peer"))
                }
                None => format!("message       {} ({len} bytes, binary)", short("peer")),
            }
        }
        "quality" => format!(
            "quality       {}: rtt {}, loss {:.1}%, score {:.2}",
            short("peer"),
            ms(d.pointer("/quality/rtt_us").and_then(|v| v.as_u64())),
            d.pointer("/quality/loss").and_then(|v| v.as_f64()).unwrap_or(0.0) * 100.0,
            d.pointer("/quality/score").and_then(|v| v.as_f64()).unwrap_or(0.0)
        ),
        "remote_error" => format!("peer error    {}: {}", short("peer"), s("code")),
        "disconnected" => {
            let peer = d.get("peer").and_then(|v| v.as_str()).unwrap_or("(during handshake)");
            format!("disconnected  {peer} via {} {}: {}", s("transport"), s("addr"), printable(&s("reason")))
        }
        other => format!("{other:<13} {}", printable(&d.to_string())),
    }
}

// ---------------------------------------------------------------- human output

/// Columns padded to their widest cell, two spaces apart.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut cells = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    cells.extend(rows);
    meshlink_host::table::render(&cells)
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

fn duration(ms_total: u64) -> String {
    let s = ms_total / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn pct(x: f32) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `wg show`-style: one block per peer.
fn peer_blocks(peers: &[PeerJson]) -> String {
    if peers.is_empty() {
        return "no connected peers\n".into();
    }
    let mut out = String::new();
    for p in peers {
        let q = &p.quality;
        let _ = writeln!(out, "peer: {}", p.id);
        let _ = writeln!(out, "  name: {}", printable(&or_dash(&p.name)));
        let _ = writeln!(out, "  endpoint: {}://{}", p.transport, p.addr);
        let _ = writeln!(out, "  connected: {} ago (as {})", duration(p.connected_for_ms), p.role);
        let _ = writeln!(
            out,
            "  rtt: {} (min {}, jitter {}), loss {}, score {:.2}",
            ms(q.rtt_us),
            ms(q.rtt_min_us),
            ms(Some(q.jitter_us)),
            pct(q.loss),
            q.score
        );
        let _ = writeln!(
            out,
            "  transfer: {} received, {} sent ({} / {} messages)",
            bytes(q.bytes_in),
            bytes(q.bytes_out),
            q.msgs_in,
            q.msgs_out
        );
        let _ = writeln!(out, "  threat: {:.2}\n", p.threat);
    }
    out
}

fn quality_table(peers: &[PeerJson]) -> String {
    if peers.is_empty() {
        return "no connected peers\n".into();
    }
    let header =
        ["ID", "NAME", "VIA", "ADDRESS", "RTT", "MIN", "JITTER", "LOSS", "SCORE", "MSGS IN/OUT", "BYTES IN/OUT"];
    let rows = peers
        .iter()
        .map(|p| {
            let q = &p.quality;
            vec![
                p.id.chars().take(8).collect(),
                or_dash(&p.name),
                p.transport.clone(),
                p.addr.clone(),
                ms(q.rtt_us),
                ms(q.rtt_min_us),
                ms(Some(q.jitter_us)),
                pct(q.loss),
                format!("{:.2}", q.score),
                format!("{}/{}", q.msgs_in, q.msgs_out),
                format!("{}/{}", bytes(q.bytes_in), bytes(q.bytes_out)),
            ]
        })
        .collect();
    table(&header, rows)
}

fn nodes_table(nodes: &[NodeJson]) -> String {
    if nodes.is_empty() {
        return "no nodes seen yet\n".into();
    }
    let header = ["ID", "NAME", "STATE", "VIA", "ADDRESS", "RTT", "JITTER", "LOSS", "SCORE", "THREAT", "SEEN"];
    let rows = nodes
        .iter()
        .map(|n| {
            let q = n.quality.as_ref();
            vec![
                n.id.chars().take(8).collect(),
                or_dash(&n.name),
                n.state.clone(),
                n.transport.clone().unwrap_or_else(|| "-".into()),
                n.addr.clone().unwrap_or_else(|| "-".into()),
                ms(q.and_then(|q| q.rtt_us)),
                q.map_or("-".into(), |q| ms(Some(q.jitter_us))),
                q.map_or("-".into(), |q| pct(q.loss)),
                q.map_or("-".into(), |q| format!("{:.2}", q.score)),
                format!("{:.2}", n.threat),
                if n.state == "connected" { "now".into() } else { format!("{} ago", duration(n.last_seen_ms_ago)) },
            ]
        })
        .collect();
    table(&header, rows)
}

fn quality_block(peer: &str, q: &QualityJson) -> String {
    let rows: [(&str, String); 10] = [
        ("rtt", ms(q.rtt_us)),
        ("rtt min", ms(q.rtt_min_us)),
        ("rtt var", ms(Some(q.rtt_var_us))),
        ("jitter", ms(Some(q.jitter_us))),
        ("loss", format!("{} ({} of {} pings lost)", pct(q.loss), q.pings_lost, q.pings_sent)),
        ("score", format!("{:.2}", q.score)),
        ("bandwidth", format!("{}/s in, {}/s out", bytes(q.bw_in_bps), bytes(q.bw_out_bps))),
        ("received", format!("{} in {} messages", bytes(q.bytes_in), q.msgs_in)),
        ("sent", format!("{} in {} messages", bytes(q.bytes_out), q.msgs_out)),
        ("pongs", q.pongs_received.to_string()),
    ];
    let mut out = format!("peer: {peer}\n");
    for (k, v) in rows {
        let _ = writeln!(out, "  {k}: {v}");
    }
    out
}

fn status_block(n: &NodeInfoJson) -> String {
    let mut out = format!("node: {}\n  name: {}\n  version: {}\n", n.id, printable(&or_dash(&n.name)), n.version);
    let bound = n.listen.tcp.iter().chain(&n.listen.ws).chain(&n.listen.udp);
    for (u, b) in n.urls.iter().zip(bound) {
        let all = if b.starts_with("0.0.0.0:") || b.starts_with("[::]:") { " (all interfaces)" } else { "" };
        let _ = writeln!(out, "  listening: {u}{all}");
    }
    let _ = writeln!(out, "  control: {}", n.control);
    let _ = writeln!(out, "  uptime: {}", duration(n.uptime_ms));
    let s = &n.stats;
    let _ = writeln!(out, "  peers: {} connected, {} handshaking", s.connected, s.half_open);
    let _ = writeln!(
        out,
        "  transfer: {} received, {} sent ({} / {} messages)",
        bytes(s.bytes_in),
        bytes(s.bytes_out),
        s.msgs_in,
        s.msgs_out
    );
    out
}

/// Nested JSON objects as `section.key: value` lines.
fn key_values(v: &serde_json::Value) -> String {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut rows = Vec::new();
    walk("", v, &mut rows);
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().map(|(k, v)| format!("{k:<w$}  {v}\n")).collect()
}
