//! The local control API (F42): HTTP/JSON on loopback, for programs in any language and
//! for the `meshlink` client commands (`peers`, `send`, `events`, ...).
//!
//! - Loopback only (a non-loopback address is refused: the API is plain HTTP), default
//!   `127.0.0.1:7410`.
//! - Every request carries `Authorization: Bearer <token>`; the token is
//!   `<data-dir>/control.token` (see [`token`]). Without it: 401.
//! - Routes: [`routes`]; the OpenAPI 3.0 document at `GET /v1/openapi.json` lists the
//!   same. Bodies are the types in [`api`]. Errors are `{"error": {"code", "message"}}`.
//! - `GET /v1/events` streams Server-Sent Events (connected, message, quality,
//!   remote_error, disconnected).
//! - No local client can lock it out: [`ControlLimits`] (socket, stream and request caps,
//!   head and body timeouts; sockets without the token are closed first for room).
//! - Bodies are JSON objects with `Content-Type: application/json`; values are checked
//!   exactly as the document's patterns say, so that a schema-valid value is never a 400
//!   (`scripts/schemathesis.sh` checks the server against the document).
//!
//! Why hyper and a hand-written router rather than axum + utoipa: the connection
//! accounting and eviction live in our accept loop, below any router, and stay whatever
//! the router; the route table is checked against the document by a test, and every
//! answer against the document by schemathesis.
//!
//! ```no_run
//! # async fn demo(node: meshlink_host::HostHandle) -> Result<(), meshlink_host::HostError> {
//! use meshlink_host::control::{self, ControlOptions};
//! let token = control::token::load_or_create(std::path::Path::new("/var/lib/meshlink"))?.0;
//! let server = control::serve(node, ControlOptions::new("127.0.0.1:7410".parse().unwrap(), token)).await?;
//! println!("control API at {}", server.url());
//! # Ok(()) }
//! ```

pub mod api;
pub mod client;
mod events;
mod handlers;
mod http;
mod nodes;
mod serve;
mod subscribe;
pub mod token;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};
use tokio::task::AbortHandle;

pub use http::routes;

use crate::error::HostError;
use crate::HostHandle;

pub const DEFAULT_CONTROL_PORT: u16 = 7410;
pub const DEFAULT_CONTROL_ADDR: &str = "127.0.0.1:7410";
/// Where `meshlink up` writes its control URL, for the client commands.
pub const URL_FILE: &str = "control.url";
/// The OpenAPI document the server serves at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = handlers::OPENAPI;

/// The `[control]` section of the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ControlConfig {
    /// `127.0.0.1:PORT`, `[::1]:PORT` (or `http://...`), or `off`.
    pub listen: String,
    /// See [`ControlLimits`].
    pub max_connections: usize,
    pub max_streams: usize,
    pub max_requests: usize,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
}

crate::config::impl_with!(ControlConfig, ControlLimits);

impl Default for ControlConfig {
    fn default() -> Self {
        let l = ControlLimits::default();
        ControlConfig {
            listen: DEFAULT_CONTROL_ADDR.into(),
            max_connections: l.max_connections,
            max_streams: l.max_streams,
            max_requests: l.max_requests,
            header_timeout_ms: l.header_timeout.as_millis() as u64,
            body_timeout_ms: l.body_timeout.as_millis() as u64,
        }
    }
}

impl ControlConfig {
    /// The address to listen on, `None` when the API is off.
    pub fn addr(&self) -> Result<Option<SocketAddr>, HostError> {
        parse_listen(&self.listen)
    }

    /// The limits, checked: none may be zero.
    pub fn limits(&self) -> Result<ControlLimits, HostError> {
        let l = ControlLimits {
            max_connections: self.max_connections,
            max_streams: self.max_streams,
            max_requests: self.max_requests,
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            body_timeout: std::time::Duration::from_millis(self.body_timeout_ms),
        };
        l.check()?;
        Ok(l)
    }
}

/// What one local client may hold of the control API, so that none can lock it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ControlLimits {
    /// Open control sockets. At the cap a new one closes the oldest that has not sent
    /// the token, else the oldest idle one, else the oldest still sending its body.
    pub max_connections: usize,
    /// Open event streams (`GET /v1/events`); more get 503 `too_many_streams`.
    pub max_streams: usize,
    /// Requests being handled at once (after their body is in); more get 503 `busy`.
    pub max_requests: usize,
    /// A request head must arrive within this (hyper closes the connection otherwise).
    pub header_timeout: std::time::Duration,
    /// A request body must arrive within this; otherwise 408 `body_timeout`.
    pub body_timeout: std::time::Duration,
}

impl Default for ControlLimits {
    fn default() -> Self {
        ControlLimits {
            max_connections: 256,
            max_streams: 64,
            max_requests: 64,
            header_timeout: std::time::Duration::from_secs(5),
            body_timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl ControlLimits {
    fn check(&self) -> Result<(), HostError> {
        let zero = [
            ("max_connections", self.max_connections == 0),
            ("max_streams", self.max_streams == 0),
            ("max_requests", self.max_requests == 0),
            ("header_timeout_ms", self.header_timeout.is_zero()),
            ("body_timeout_ms", self.body_timeout.is_zero()),
        ];
        match zero.iter().find(|(_, z)| *z) {
            Some((name, _)) => Err(HostError::Config(format!("control.{name} must be above 0"))),
            None => Ok(()),
        }
    }
}

/// `127.0.0.1:7410`, `http://[::1]:7410/` or `off`/`none`; refuses non-loopback addresses.
pub fn parse_listen(s: &str) -> Result<Option<SocketAddr>, HostError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bare = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
    let addr: SocketAddr = bare.parse().map_err(|_| {
        HostError::Config(format!("control address {s:?}: expected 127.0.0.1:PORT or [::1]:PORT, or off"))
    })?;
    check_loopback(addr)?;
    Ok(Some(addr))
}

fn check_loopback(addr: SocketAddr) -> Result<(), HostError> {
    if addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(HostError::Config(format!(
        "the control API listens on loopback only (127.0.0.1 or [::1]), not {addr}: it is plain HTTP"
    )))
}

/// How to run the control server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ControlOptions {
    /// A loopback address; port 0 picks a free port.
    pub addr: SocketAddr,
    /// The bearer token clients must send (see [`token::load_or_create`]).
    pub token: String,
    /// The node's name, for `GET /v1/node`.
    pub name: String,
    /// The node's largest message: request bodies may be a few times larger (JSON
    /// escapes, base64), no more.
    pub max_message: usize,
    /// If `addr` is taken, listen on a free port of the same address instead of failing
    /// (for the default address: a second node on one machine still gets an API).
    pub fallback_to_free_port: bool,
    pub limits: ControlLimits,
}

impl ControlOptions {
    pub fn new(addr: SocketAddr, token: String) -> Self {
        ControlOptions {
            addr,
            token,
            name: String::new(),
            max_message: meshlink_core::Config::default().max_message,
            fallback_to_free_port: false,
            limits: ControlLimits::default(),
        }
    }
}

/// A running control server. Dropping it stops the server (open event streams end).
pub struct ControlServer {
    addr: SocketAddr,
    tasks: Vec<AbortHandle>,
}

impl ControlServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:7410`
    pub fn url(&self) -> String {
        http::base_url(self.addr)
    }
    /// Stops accepting and closes every control connection.
    pub fn shutdown(self) {}
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds the control API and serves it on the current runtime, for `node`.
pub async fn serve(node: HostHandle, opts: ControlOptions) -> Result<ControlServer, HostError> {
    check_loopback(opts.addr)?;
    opts.limits.check()?;
    let what = || format!("listen for the control API on {}", opts.addr);
    let listener = match TcpListener::bind(opts.addr).await {
        Ok(l) => l,
        Err(e) if opts.fallback_to_free_port && e.kind() == std::io::ErrorKind::AddrInUse => {
            let l =
                TcpListener::bind(SocketAddr::new(opts.addr.ip(), 0)).await.map_err(|e| HostError::io(what(), e))?;
            tracing::warn!("control port {} is taken; the control API uses a free port instead", opts.addr.port());
            l
        }
        Err(e) => return Err(HostError::io(what(), e)),
    };
    let addr = listener.local_addr().map_err(|e| HostError::io("control API address", e))?;
    let (events, _) = broadcast::channel(events::BROADCAST_CAPACITY);
    let max_body = opts.max_message.saturating_mul(6).saturating_add(64 << 10).min(64 << 20);
    let state = Arc::new(http::ServerState {
        node: node.clone(),
        token: opts.token,
        name: opts.name,
        url: http::base_url(addr),
        started: std::time::Instant::now(),
        max_body,
        table: Mutex::new(nodes::NodeTable::default()),
        events,
        stopped: AtomicBool::new(false),
        counters: http::Counters::default(),
        limits: opts.limits,
        conns: Mutex::new(http::Registry::default()),
        streams: Arc::new(Semaphore::new(opts.limits.max_streams)),
        requests: Arc::new(Semaphore::new(opts.limits.max_requests)),
    });
    // Subscribed before the server answers anything: no event is missed.
    let sub = node.events().await?;
    let pump = tokio::spawn(events::pump(sub, state.clone()));
    let accept = tokio::spawn(http::accept_loop(listener, state));
    Ok(ControlServer { addr, tasks: vec![pump.abort_handle(), accept.abort_handle()] })
}

pub fn url_path(data_dir: &Path) -> PathBuf {
    data_dir.join(URL_FILE)
}

/// Records the control URL in the data directory, for the client commands.
pub fn write_url_file(data_dir: &Path, url: &str) -> Result<(), HostError> {
    let path = url_path(data_dir);
    std::fs::write(&path, format!("{url}\n")).map_err(|source| HostError::File {
        path,
        what: "write control URL file",
        source,
    })
}

/// The URL a node running on `data_dir` recorded, if any.
pub fn read_url_file(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(url_path(data_dir)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Removes the URL file if it still names `url` (another node may have replaced it).
pub fn remove_url_file(data_dir: &Path, url: &str) {
    if read_url_file(data_dir).as_deref() == Some(url) {
        let _ = std::fs::remove_file(url_path(data_dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_loopback_or_off() {
        assert_eq!(parse_listen("off").unwrap(), None);
        assert_eq!(parse_listen("127.0.0.1:7410").unwrap(), Some("127.0.0.1:7410".parse().unwrap()));
        assert_eq!(parse_listen("http://[::1]:9/").unwrap(), Some("[::1]:9".parse().unwrap()));
        assert_eq!(parse_listen("127.8.9.10:0").unwrap(), Some("127.8.9.10:0".parse().unwrap()));
        for bad in ["0.0.0.0:7410", "[::]:7410", "192.168.1.2:7410", "[::ffff:10.0.0.1]:1"] {
            let e = parse_listen(bad).unwrap_err().to_string();
            assert!(e.contains("loopback only"), "{bad}: {e}");
        }
        assert!(parse_listen("localhost").unwrap_err().to_string().contains("expected"));
        assert_eq!(ControlConfig::default().addr().unwrap(), Some("127.0.0.1:7410".parse().unwrap()));
    }

    /// The documented example states the default, and the section parses.
    #[test]
    fn example_config_states_the_default() {
        let ex = crate::HostConfig::from_toml(include_str!("../../meshlink.example.toml")).unwrap();
        assert_eq!(ex.control, ControlConfig::default());
        let c = crate::HostConfig::from_toml("[control]\nlisten = \"off\"\n").unwrap();
        assert_eq!(c.control.addr().unwrap(), None);
        assert!(crate::HostConfig::from_toml("[control]\nlisten = \"0.0.0.0:1\"\n").unwrap().control.addr().is_err());
    }
}
