//! Command-line parsing (clap) and the `up`, `keygen` and `id` commands; the client
//! commands that drive a running node through its control API are in `cli/client.rs`.
//!
//! Precedence: built-in defaults < config file < `MESHLINK_*` environment < flags.
//! (clap reads each flag's variable itself; a flag given on the command line wins.)

mod client;
mod rpc;
mod serve;
mod subscribe;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use meshlink_core::PeerId;
use meshlink_host::config::PeerEntry;
use meshlink_host::control::{self, ControlOptions, ControlServer};
use meshlink_host::error::reason_text;
use meshlink_host::identity;
use meshlink_host::{Host, HostConfig, HostError, HostEvent, HostHandle, PeerUrl, Transport};

#[derive(Parser)]
#[command(name = "meshlink", version, about = "Encrypted peer-to-peer messaging: run a node, or try the demo")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node until Ctrl-C (listens on tcp 7400, ws 7401, udp 7402 by default).
    Up(Box<UpArgs>),
    /// Start a small local network over real loopback sockets and show it working.
    Demo {
        /// Seconds to run before shutting down.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// Create the node's key in the data directory.
    Keygen {
        #[command(flatten)]
        dir: DataDir,
        /// Replace an existing key (the node gets a new identity).
        #[arg(long)]
        force: bool,
    },
    /// Print the node's peer id.
    Id {
        #[command(flatten)]
        dir: DataDir,
    },
    #[command(flatten)]
    Client(client::ClientCmd),
}

#[derive(Args)]
struct DataDir {
    /// Where the key (and optional config.toml) live [default: $XDG_DATA_HOME/meshlink or ~/.local/share/meshlink]
    #[arg(long, env = "MESHLINK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDir {
    fn path(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(identity::default_data_dir)
    }
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    dir: DataDir,
    /// TOML config file [default: <data-dir>/config.toml if it exists]
    #[arg(long, env = "MESHLINK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Node name sent to peers [default: the host name and the first 8 characters of the peer id]
    #[arg(long, env = "MESHLINK_NAME")]
    name: Option<String>,
    /// TCP listen addresses, or `off` [default: 0.0.0.0:7400]
    #[arg(long, env = "MESHLINK_TCP", value_delimiter = ',', value_name = "ADDR")]
    tcp: Option<Vec<String>>,
    /// WebSocket listen addresses, or `off` [default: 0.0.0.0:7401]
    #[arg(long, env = "MESHLINK_WS", value_delimiter = ',', value_name = "ADDR")]
    ws: Option<Vec<String>>,
    /// UDP listen addresses, or `off` [default: 0.0.0.0:7402]
    #[arg(long, env = "MESHLINK_UDP", value_delimiter = ',', value_name = "ADDR")]
    udp: Option<Vec<String>>,
    /// Peers to connect to: tcp://host:port, ws://host:port or udp://host:port
    #[arg(long, env = "MESHLINK_CONNECT", value_delimiter = ',', value_name = "URL")]
    connect: Vec<String>,
    /// Peer ids the --connect peers must prove, in the same order
    #[arg(long, env = "MESHLINK_EXPECT", value_delimiter = ',', value_name = "PEER_ID", value_parser = parse_peer_id)]
    expect: Vec<PeerId>,
    /// Network id: nodes of different networks cannot connect [default: meshlink]
    #[arg(long, env = "MESHLINK_NETWORK_ID")]
    network_id: Option<String>,
    /// Pre-shared network key, 64 hex characters
    #[arg(long, env = "MESHLINK_NETWORK_KEY", hide_env_values = true, value_name = "HEX")]
    network_key: Option<String>,
    /// Most open TCP/WebSocket connections
    #[arg(long, env = "MESHLINK_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Most inbound TCP/WebSocket connections from one IP address
    #[arg(long, env = "MESHLINK_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Largest message in bytes
    #[arg(long, env = "MESHLINK_MAX_MESSAGE")]
    max_message: Option<usize>,
    /// Control API address (loopback only), or `off` [default: 127.0.0.1:7410]
    #[arg(long, env = "MESHLINK_CONTROL", value_name = "ADDR")]
    control: Option<String>,
    /// Certificate chain (PEM) for the WebSocket listeners: with --ws-tls-key they serve wss://
    #[arg(long, env = "MESHLINK_WS_TLS_CERT", value_name = "FILE")]
    ws_tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --ws-tls-cert
    #[arg(long, env = "MESHLINK_WS_TLS_KEY", value_name = "FILE")]
    ws_tls_key: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for wss:// peers
    #[arg(long, env = "MESHLINK_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Print one JSON line (peer id, name, listen addresses, URLs, control URL) instead of
    /// the banner and the event lines
    #[arg(long)]
    json: bool,
}

fn parse_peer_id(s: &str) -> Result<PeerId, String> {
    s.trim().parse::<PeerId>().map_err(|e| e.to_string())
}

fn parse_listen(flag: &str, values: &[String]) -> Result<Vec<SocketAddr>, HostError> {
    if values.iter().any(|v| v == "off" || v == "none") {
        return Ok(Vec::new());
    }
    values
        .iter()
        .map(|v| {
            v.trim().parse().map_err(|_| {
                HostError::Config(format!("--{flag} {v:?}: expected ADDR:PORT like 0.0.0.0:7400 or [::]:7400, or off"))
            })
        })
        .collect()
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Up(_) | Cmd::Client(client::ClientCmd::Serve { .. })) {
        // `meshlink events | head -1`: a closed pipe ends the command quietly, as it does
        // any Unix tool. (`up` keeps SIGPIPE ignored and its output ignores write errors,
        // so that its peers still get a Close. `serve` keeps it ignored too: it writes
        // request bodies into its commands' standard input, and a command that exits
        // without reading it must fail that request with EPIPE, not kill the service;
        // its own output ends it quietly on a closed pipe, see `serve::say`.)
        restore_sigpipe();
    }
    init_logging(matches!(cli.cmd, Cmd::Demo { .. } | Cmd::Client(_)));
    match cli.cmd {
        Cmd::Keygen { dir, force } => {
            let path = dir.path();
            let kp = identity::create(&path, force)?;
            println!("{}", kp.peer_id());
            eprintln!("key written to {}", identity::key_path(&path).display());
            Ok(())
        }
        Cmd::Id { dir } => {
            println!("{}", identity::load(&dir.path())?.peer_id());
            Ok(())
        }
        Cmd::Demo { seconds } => Ok(runtime()?.block_on(meshlink_host::demo::run(
            meshlink_host::demo::DemoOptions::default().with(|o| o.seconds = seconds),
        ))?),
        Cmd::Up(args) => Ok(runtime()?.block_on(up(*args))?),
        Cmd::Client(cmd) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| HostError::io("start runtime", e))?;
            rt.block_on(client::run(cmd))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, HostError> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| HostError::io("start runtime", e))
}

#[cfg(unix)]
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}

/// Logs go to stderr, coloured only for a terminal and without `NO_COLOR`; every field
/// value goes through `printable` (a peer's name reaches the logs). The driver's
/// connected/disconnected lines are debug-only by default: `up` prints each event once,
/// on stdout.
fn init_logging(quiet: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::field::MakeExt;
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "warn" } else { "warn,meshlink_host=info,meshlink_host::driver=warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = meshlink_host::table::printable(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{}={text}", field.name())
        }
    })
    .delimited(" ");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .fmt_fields(fields)
        .with_target(false)
        .try_init();
}

/// A line on stdout; a closed or full stdout is not an error for a daemon.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Defaults, then the config file, then environment and flags.
fn build_config(args: &UpArgs, data_dir: &std::path::Path) -> Result<HostConfig, HostError> {
    let implicit = data_dir.join("config.toml");
    let mut c = match &args.config {
        Some(path) => HostConfig::from_file(path)?,
        None if implicit.exists() => HostConfig::from_file(&implicit)?,
        None => HostConfig::default(),
    };
    if let Some(v) = &args.name {
        c.name = v.clone();
    }
    if let Some(v) = &args.tcp {
        c.listen.tcp = parse_listen("tcp", v)?;
    }
    if let Some(v) = &args.ws {
        c.listen.ws = parse_listen("ws", v)?;
    }
    if let Some(v) = &args.udp {
        c.listen.udp = parse_listen("udp", v)?;
    }
    if let Some(v) = &args.network_id {
        c.network_id = v.clone();
    }
    if let Some(v) = &args.network_key {
        c.network_key = Some(v.clone());
    }
    if let Some(v) = args.max_connections {
        c.limits.max_connections = v;
    }
    if let Some(v) = args.max_connections_per_ip {
        c.limits.max_connections_per_ip = v;
    }
    if let Some(v) = args.max_message {
        c.limits.max_message = v;
    }
    if let Some(v) = &args.control {
        c.control.listen = v.clone();
    }
    c.control.addr()?; // a non-loopback control address is an error before anything starts
    c.control.limits()?;
    if let Some(v) = &args.ws_tls_cert {
        c.listen.ws_tls_cert = Some(v.clone());
    }
    if let Some(v) = &args.ws_tls_key {
        c.listen.ws_tls_key = Some(v.clone());
    }
    if let Some(v) = &args.tls_ca {
        c.tls_ca = Some(v.clone());
    }
    if args.expect.len() > args.connect.len() {
        return Err(HostError::Config("more --expect than --connect values".into()));
    }
    for (i, url) in args.connect.iter().enumerate() {
        PeerUrl::parse(url)?;
        c.peers.push(PeerEntry::new(url.clone(), args.expect.get(i).map(|p| p.to_string())));
    }
    c.core_config()?; // report config errors before touching the key or sockets
    Ok(c)
}

async fn up(args: UpArgs) -> Result<(), HostError> {
    let data_dir = args.dir.path();
    // The data dir's owner and mode first (as ssh does), then the lock: a second node on
    // this dir must fail before it touches anything in it.
    control::token::check_data_dir(&data_dir)?;
    let _lock = meshlink_host::lock::lock_data_dir(&data_dir)?;
    let mut config = build_config(&args, &data_dir)?;
    let (kp, created) = identity::load_or_create(&data_dir)?;
    if args.name.is_none() && config.name == HostConfig::default().name {
        // Nodes on one machine would all be called after it: add the id's first
        // characters, so that `send NAME` names one node.
        config.name = default_name(&config.name, &kp.peer_id().to_string());
    }
    let mut peers = Vec::new();
    for p in &config.peers {
        let expect = match &p.expect {
            Some(s) => Some(parse_peer_id(s).map_err(|e| HostError::Config(format!("peer {}: {e}", p.url)))?),
            None => None,
        };
        peers.push((p.url.clone(), expect));
    }
    let name = config.name.clone();
    let persistent = config.reconnect.enabled;
    let (control_cfg, max_message) = (config.control.clone(), config.limits.max_message);
    let node = Host::start(config, kp).await?;
    let control = start_control(&node, &control_cfg, &name, max_message, &data_dir).await?;
    let control_url = control.as_ref().map(ControlServer::url);
    if args.json {
        out!("{}", up_json(&node, &name, &data_dir, control_url.as_deref()));
    } else {
        print_banner(&node, &name, &data_dir, created, control_url.as_deref());
        let events = node.events().await?;
        tokio::spawn(print_events(events, Instant::now()));
    }
    for (url, expect) in peers {
        let node = node.clone();
        tokio::spawn(async move {
            // Configured peers are kept connected: re-dialled with backoff (F10).
            let r =
                if persistent { node.connect_persistent(&url, expect).await } else { node.connect(&url, expect).await };
            if let Err(e) = r {
                // A target that is this node itself is dropped, not re-dialled.
                let itself = e.is_self_connect();
                let retry = if persistent && !itself { " (will retry)" } else { "" };
                let e = meshlink_host::table::printable(&e.to_string()).into_owned();
                eprintln!("meshlink: cannot connect to {url}: {e}{retry}");
            }
        });
    }
    wait_for_signal().await?;
    eprintln!("shutting down: closing every session");
    let r = node.shutdown().await;
    if let Some(c) = control {
        control::remove_url_file(&data_dir, &c.url());
    }
    r
}

/// Serves the control API (F42) unless it is off: token and URL go to the data directory,
/// where the client commands find them.
async fn start_control(
    node: &HostHandle,
    cfg: &control::ControlConfig,
    name: &str,
    max_message: usize,
    data_dir: &std::path::Path,
) -> Result<Option<ControlServer>, HostError> {
    let Some(addr) = cfg.addr()? else { return Ok(None) };
    let (token, _) = control::token::load_or_create(data_dir)?;
    let mut opts = ControlOptions::new(addr, token);
    opts.limits = cfg.limits()?;
    opts.name = name.to_string();
    opts.max_message = max_message;
    // Only the default port gives way: a second node on this machine still gets an API
    // (its URL is in its data directory); an address asked for must be had.
    opts.fallback_to_free_port = cfg.listen == control::DEFAULT_CONTROL_ADDR;
    let server = control::serve(node.clone(), opts).await?;
    control::write_url_file(data_dir, &server.url())?;
    Ok(Some(server))
}

/// `<host>-<first 8 characters of the id>`, within the Hello's 32-byte name limit.
fn default_name(host: &str, id: &str) -> String {
    let tag = &id[..8.min(id.len())];
    let room = meshlink_core::wire::hello::NAME_MAX.saturating_sub(tag.len() + 1);
    let mut cut = host.len().min(room);
    while !host.is_char_boundary(cut) {
        cut -= 1;
    }
    if cut == 0 {
        return tag.to_string();
    }
    format!("{}-{tag}", &host[..cut])
}

/// What `up --json` prints: one line for scripts.
fn up_json(node: &HostHandle, name: &str, data_dir: &std::path::Path, control: Option<&str>) -> serde_json::Value {
    let l = node.local_addrs();
    serde_json::json!({
        "peer_id": node.peer_id().to_string(),
        "name": name,
        "listen": control::api::ListenJson::from(l),
        "urls": l.urls(),
        "control": control,
        "data_dir": data_dir.display().to_string(),
    })
}

fn print_banner(node: &HostHandle, name: &str, data_dir: &std::path::Path, created: bool, control: Option<&str>) {
    let l = node.local_addrs();
    out!("meshlink node {name:?} is up");
    out!("  peer id   {}", node.peer_id());
    // What a peer dials, as `status` shows it: 0.0.0.0 becomes 127.0.0.1.
    let bound = l.tcp.iter().map(|a| (Transport::Tcp, a)).chain(l.ws.iter().map(|a| (Transport::Ws, a)));
    let bound: Vec<_> = bound.chain(l.udp.iter().map(|a| (Transport::Udp, a))).collect();
    for ((t, _), url) in bound.iter().zip(l.urls()) {
        out!("  {t:<4}      {url}");
    }
    if bound.iter().any(|(_, a)| a.ip().is_unspecified()) {
        out!("            (listening on every interface: from another machine, dial this machine's address)");
    }
    let state = if created { "key created" } else { "existing key" };
    out!("  data dir  {} ({state})", data_dir.display());
    if let Some(url) = control {
        let token = control::token::token_path(data_dir);
        // The client commands find this node through its data directory.
        let dir = if data_dir == identity::default_data_dir() {
            String::new()
        } else {
            format!(" --data-dir {}", data_dir.display())
        };
        out!("  control   {url} (token in {}; try `meshlink status{dir}`)", token.display());
    }
    if let Some(target) = l.urls().first() {
        // Beside this node's own directory (private, under the home directory by
        // default), never a guessable name in a shared /tmp.
        let second = format!("{}-2", data_dir.display());
        out!("\nStart a second node in another terminal and connect it to this one:");
        out!(
            "  meshlink up --data-dir {second} --tcp 127.0.0.1:0 --ws 127.0.0.1:0 --udp 127.0.0.1:0 --control 127.0.0.1:0 --connect {target} --expect {}",
            node.peer_id()
        );
    }
    out!();
}

async fn print_events(mut events: tokio::sync::mpsc::Receiver<HostEvent>, started: Instant) {
    use meshlink_host::table::printable;
    let at = || format!("[{:8.3}s]", started.elapsed().as_secs_f64());
    while let Some(ev) = events.recv().await {
        match ev {
            HostEvent::Connected { peer, addr, transport, hello, quality, .. } => out!(
                "{} connected     {peer} ({}) via {transport} {addr}, rtt {}",
                at(),
                printable(hello.name.as_str()),
                meshlink_host::table::ms(quality.rtt_us)
            ),
            HostEvent::Message { peer, data } => {
                let text = String::from_utf8_lossy(&data[..data.len().min(200)]).into_owned();
                out!("{} message       {} ({} bytes): {text:?}", at(), peer.short(), data.len());
            }
            HostEvent::RemoteError { peer, code } => out!("{} peer error    {}: {code:?}", at(), peer.short()),
            HostEvent::Disconnected { peer, addr, transport, reason, .. } => out!(
                "{} disconnected  {} via {transport} {addr}: {}",
                at(),
                peer.map_or("(during handshake)".into(), |p| p.to_string()),
                printable(&reason_text(&reason))
            ),
            HostEvent::Quality { .. } => {}
            HostEvent::Lagged { dropped } => {
                println!("{} lagged        {dropped} events missed (this reader was too slow)", at())
            }
            // An event kind newer than this CLI: nothing to print for it.
            _ => {}
        }
    }
}

async fn wait_for_signal() -> Result<(), HostError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| HostError::io("install SIGTERM handler", e))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| HostError::io("wait for Ctrl-C", e)),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.map_err(|e| HostError::io("wait for Ctrl-C", e))
}
