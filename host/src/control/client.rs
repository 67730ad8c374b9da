//! A client for the control API: what the `meshlink` client commands use, and a small
//! example of driving a node from another program. One TCP connection per request
//! (loopback: cheap), HTTP/1.1 via hyper.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;

use super::api::ErrorJson;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may take by default, answer included. `connect` can take the dial
/// (10 s) plus the handshake (30 s) at the node's defaults; this covers both.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the client behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The whole request: connect, send, and the answer's head (and, except for event
    /// streams, its body).
    pub timeout: Duration,
    /// Send the token to a host that is not loopback. The API is plain HTTP: whoever is
    /// on the path reads the token. Off unless asked for.
    pub allow_remote: bool,
}

crate::config::impl_with!(ClientOptions);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { timeout: DEFAULT_TIMEOUT, allow_remote: false }
    }
}

#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The control URL is not `http://host:port`.
    Url(String),
    /// Nothing answered at the URL.
    Unreachable { url: String, source: std::io::Error },
    /// The node answered with an error.
    Api { status: u16, code: String, message: String },
    /// The answer was not HTTP or JSON as expected.
    Protocol(String),
    /// No answer within the request timeout.
    Timeout { url: String, after: Duration },
    /// The URL names a host that is not loopback, and remote use was not allowed.
    Remote { url: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(s) => write!(f, "control URL {s:?}: expected http://HOST:PORT"),
            ClientError::Unreachable { url, source } => write!(
                f,
                "cannot reach the node's control API at {url}: {source} (is `meshlink up` running? see --control)"
            ),
            ClientError::Api { message, .. } => f.write_str(message),
            ClientError::Protocol(s) => write!(f, "unexpected answer from the control API: {s}"),
            ClientError::Timeout { url, after } => {
                write!(f, "the control API at {url} did not answer within {} s (see --timeout)", after.as_secs_f64())
            }
            ClientError::Remote { url } => write!(
                f,
                "refusing to send the control token to {url}: not a loopback address and the API is plain HTTP \
                 (pass --allow-remote-control or set MESHLINK_ALLOW_REMOTE_CONTROL=1 to do it anyway)"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

fn protocol(e: impl fmt::Display) -> ClientError {
    ClientError::Protocol(e.to_string())
}

/// A control API endpoint plus its token.
#[derive(Debug, Clone)]
pub struct Client {
    /// `host:port`
    authority: String,
    token: String,
    opts: ClientOptions,
}

impl Client {
    /// `url`: `http://127.0.0.1:7410` or just `127.0.0.1:7410`; loopback only (an IP
    /// literal or `localhost`), with the default timeout.
    pub fn new(url: &str, token: impl Into<String>) -> Result<Self, ClientError> {
        Self::with_options(url, token, ClientOptions::default())
    }

    pub fn with_options(url: &str, token: impl Into<String>, opts: ClientOptions) -> Result<Self, ClientError> {
        let u = url.trim();
        if u.starts_with("https://") {
            return Err(ClientError::Url(format!("{u} (the control API is plain HTTP on loopback)")));
        }
        let authority = u.strip_prefix("http://").unwrap_or(u).trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
            return Err(ClientError::Url(u.to_string()));
        }
        if !opts.allow_remote && !is_loopback(authority) {
            return Err(ClientError::Remote { url: format!("http://{authority}") });
        }
        Ok(Client { authority: authority.to_string(), token: token.into(), opts })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.authority)
    }

    /// Runs `f` under the request timeout.
    async fn timed<T>(&self, f: impl std::future::Future<Output = Result<T, ClientError>>) -> Result<T, ClientError> {
        tokio::time::timeout(self.opts.timeout, f)
            .await
            .unwrap_or_else(|_| Err(ClientError::Timeout { url: self.url(), after: self.opts.timeout }))
    }

    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Response<Incoming>, ClientError> {
        let unreachable = |source| ClientError::Unreachable { url: self.url(), source };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
            .map_err(unreachable)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(protocol)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(protocol)?;
        sender.send_request(req).await.map_err(protocol)
    }

    /// The whole body of a successful answer; an error answer becomes `ClientError::Api`.
    async fn body(&self, resp: Response<Incoming>) -> Result<Bytes, ClientError> {
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(protocol)?.to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(match serde_json::from_slice::<ErrorJson>(&bytes) {
            Ok(e) => ClientError::Api { status: status.as_u16(), code: e.error.code, message: e.error.message },
            Err(_) => ClientError::Protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes))),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.timed(async {
            let resp = self.send(Method::GET, path, None).await?;
            serde_json::from_slice(&self.body(resp).await?).map_err(protocol)
        })
        .await
    }

    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        self.timed(async {
            let resp = self.send(Method::GET, path, None).await?;
            Ok(String::from_utf8_lossy(&self.body(resp).await?).into_owned())
        })
        .await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let json = serde_json::to_vec(body).map_err(protocol)?;
        self.timed(async {
            let resp = self.send(Method::POST, path, Some(json)).await?;
            serde_json::from_slice(&self.body(resp).await?).map_err(protocol)
        })
        .await
    }

    /// Opens `GET /v1/events`: the timeout covers the answer's head; the stream then
    /// runs until the node stops.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        self.stream(Method::GET, "/v1/events", None).await
    }

    /// Opens `POST /v1/serve` (a handler's requests as SSE), as [`events`](Self::events).
    pub async fn serve(&self, body: &impl Serialize) -> Result<EventStream, ClientError> {
        let json = serde_json::to_vec(body).map_err(protocol)?;
        self.stream(Method::POST, "/v1/serve", Some(json)).await
    }

    /// Opens `POST /v1/subscribe` (a subscription's publications as SSE).
    pub async fn subscribe(&self, body: &impl Serialize) -> Result<EventStream, ClientError> {
        let json = serde_json::to_vec(body).map_err(protocol)?;
        self.stream(Method::POST, "/v1/subscribe", Some(json)).await
    }

    async fn stream(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<EventStream, ClientError> {
        let resp = self.timed(self.send(method, path, body)).await?;
        if !resp.status().is_success() {
            return Err(self.timed(self.body(resp)).await.err().unwrap_or_else(|| protocol("event stream refused")));
        }
        Ok(EventStream { body: resp.into_body(), buf: Vec::new() })
    }
}

/// `host:port` names this machine: a loopback IP literal, or `localhost`.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// The events of `GET /v1/events`, parsed as they arrive.
pub struct EventStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl EventStream {
    /// The next event; `None` when the node closed the stream (it stopped).
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(ev) = parse_block(&String::from_utf8_lossy(&block)) {
                    return Ok(Some(ev));
                }
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(protocol(e)),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        // Normalise CRLF so that one separator search fits every server.
                        self.buf.extend(data.iter().filter(|&&b| b != b'\r'));
                    }
                }
            }
        }
    }
}

/// `event:` and `data:` lines of one event; comments (`:`) alone make no event.
fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut event, mut data, mut any) = (String::from("message"), Vec::new(), false);
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => (event, any) = (value.to_string(), true),
            "data" => {
                data.push(value.to_string());
                any = true;
            }
            _ => {}
        }
    }
    any.then(|| SseEvent { event, data: data.join("\n") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_and_urls() {
        assert_eq!(
            parse_block("event: message\ndata: {\"a\":1}\n"),
            Some(SseEvent { event: "message".into(), data: "{\"a\":1}".into() })
        );
        assert_eq!(parse_block(": keepalive\n"), None);
        assert_eq!(parse_block("data: a\ndata: b\n").unwrap().data, "a\nb");
        assert_eq!(Client::new("http://127.0.0.1:7410/", "t").unwrap().url(), "http://127.0.0.1:7410");
        assert_eq!(Client::new("[::1]:7410", "t").unwrap().url(), "http://[::1]:7410");
        assert!(Client::new("https://127.0.0.1:7410", "t").is_err());
        assert!(Client::new("http://127.0.0.1:7410/v1", "t").is_err());
    }

    /// The token goes to this machine only, unless remote use is asked for.
    #[test]
    fn non_loopback_urls_are_refused_unless_allowed() {
        for ok in ["http://127.0.0.1:7410", "127.8.0.1:1", "[::1]:7410", "localhost:7410", "[::ffff:127.0.0.1]:1"] {
            assert!(Client::new(ok, "t").is_ok(), "{ok}");
        }
        for remote in
            ["http://192.0.2.1:7410", "example.com:7410", "[2001:db8::1]:7410", "0.0.0.0:7410", "127.0.0.1.nip.io:1"]
        {
            let e = Client::new(remote, "t").unwrap_err();
            assert!(matches!(e, ClientError::Remote { .. }), "{remote}: {e}");
            assert!(e.to_string().contains("--allow-remote-control"), "{e}");
            let opts = ClientOptions { allow_remote: true, ..ClientOptions::default() };
            assert!(Client::with_options(remote, "t", opts).is_ok(), "{remote} when allowed");
        }
    }

    /// A server that accepts and never answers: the client gives up after its timeout.
    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let opts = ClientOptions { timeout: Duration::from_millis(200), ..ClientOptions::default() };
        let c = Client::with_options(&addr.to_string(), "t", opts).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(20), c.get::<serde_json::Value>("/v1/node")).await;
        let e = r.expect("the client's own timeout fires first").unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
        let r = tokio::time::timeout(Duration::from_secs(20), c.events()).await.expect("events too");
        assert!(matches!(r, Err(ClientError::Timeout { .. })));
    }
}
