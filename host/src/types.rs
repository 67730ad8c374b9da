//! Owned values the host hands to applications: transports, peer URLs, peers, events.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use meshlink_core::{noise::Role, ConnId, DisconnectReason, ErrorCode, Hello, PeerId, Quality, TransportKind};

use crate::error::HostError;

/// The socket kind under a session. The core only knows stream vs datagram; the host
/// knows which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    Tcp,
    Ws,
    Udp,
}

impl Transport {
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
            Transport::Udp => "udp",
        }
    }
    pub fn kind(self) -> TransportKind {
        match self {
            Transport::Udp => TransportKind::Datagram,
            _ => TransportKind::Stream,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.scheme()) // honours width, for tables
    }
}

/// A parsed peer address: `tcp://host:port`, `ws://host:port[/path]`,
/// `wss://host:port[/path]` (WebSocket over TLS), `udp://host:port`.
/// Hosts may be names, IPv4 or bracketed IPv6 literals (`tcp://[::1]:7400`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUrl {
    pub transport: Transport,
    pub host: String,
    pub port: u16,
    /// Path for WebSocket (`/` if none); empty for the others.
    pub path: String,
    /// `wss://`: TLS under the WebSocket.
    pub tls: bool,
}

impl PeerUrl {
    pub fn parse(url: &str) -> Result<Self, HostError> {
        let bad = |why: &str| HostError::InvalidUrl { url: url.to_string(), why: why.to_string() };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("expected scheme://host:port"))?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Transport::Tcp,
            "ws" => Transport::Ws,
            "udp" => Transport::Udp,
            "wss" => Transport::Ws,
            _ => return Err(bad("scheme must be tcp, ws, wss or udp")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !path.is_empty() && transport != Transport::Ws {
            return Err(bad("only ws:// and wss:// addresses take a path"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in IPv6 address"))?;
            (h, p.strip_prefix(':').ok_or_else(|| bad("missing :port"))?)
        } else {
            authority.rsplit_once(':').ok_or_else(|| bad("missing :port"))?
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("port must be a number 1-65535"))?;
        if port == 0 {
            return Err(bad("port must be a number 1-65535"));
        }
        let path = if transport == Transport::Ws && path.is_empty() { "/".to_string() } else { path.to_string() };
        let tls = scheme.eq_ignore_ascii_case("wss");
        Ok(PeerUrl { transport, host: host.to_string(), port, path, tls })
    }

    /// The URL for a socket address, e.g. `tcp://127.0.0.1:7400`.
    pub fn for_addr(transport: Transport, addr: SocketAddr) -> String {
        match transport {
            Transport::Ws => format!("ws://{addr}/"),
            t => format!("{t}://{addr}"),
        }
    }
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let scheme = if self.tls { "wss" } else { self.transport.scheme() };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path)
    }
}

/// A connected peer (an owned `meshlink_core::PeerInfo` plus the host's transport).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerSummary {
    pub peer: PeerId,
    pub conn: ConnId,
    pub addr: SocketAddr,
    pub transport: Transport,
    pub role: Role,
    /// The name from the peer's Hello.
    pub name: String,
    pub connected_for: Duration,
    pub quality: Quality,
    pub threat: f32,
}

/// What happened, owned so that it can cross tasks and threads.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HostEvent {
    Connected {
        conn: ConnId,
        peer: PeerId,
        addr: SocketAddr,
        transport: Transport,
        hello: Box<Hello>,
        quality: Quality,
    },
    Message {
        peer: PeerId,
        data: Bytes,
    },
    Quality {
        peer: PeerId,
        quality: Quality,
    },
    RemoteError {
        peer: PeerId,
        code: ErrorCode,
    },
    Disconnected {
        conn: ConnId,
        peer: Option<PeerId>,
        addr: SocketAddr,
        transport: Transport,
        was_connected: bool,
        reason: DisconnectReason,
    },
    /// This subscriber's queue was full: `dropped` events before this one were not
    /// delivered to it (other subscribers and the peers were not held back).
    Lagged {
        dropped: u64,
    },
}

/// The addresses the node listens on, after binding (ephemeral ports resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalAddrs {
    pub tcp: Vec<SocketAddr>,
    pub ws: Vec<SocketAddr>,
    pub udp: Vec<SocketAddr>,
    /// The WebSocket listeners serve `wss://` (TLS).
    pub ws_tls: bool,
}

impl LocalAddrs {
    /// Listen addresses as URLs a peer on this machine can dial: unspecified addresses
    /// (`0.0.0.0`, `[::]`) become the loopback of the same family.
    pub fn urls(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (t, list) in [(Transport::Tcp, &self.tcp), (Transport::Ws, &self.ws), (Transport::Udp, &self.udp)] {
            for a in list {
                let url = PeerUrl::for_addr(t, dialable(*a));
                out.push(if t == Transport::Ws && self.ws_tls { url.replacen("ws://", "wss://", 1) } else { url });
            }
        }
        out
    }
}

/// `0.0.0.0:p` -> `127.0.0.1:p`, `[::]:p` -> `[::1]:p`; others unchanged.
pub fn dialable(a: SocketAddr) -> SocketAddr {
    let mut a = a;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = PeerUrl::parse("tcp://127.0.0.1:7400").unwrap();
        assert_eq!((u.transport, u.host.as_str(), u.port), (Transport::Tcp, "127.0.0.1", 7400));
        let u = PeerUrl::parse("ws://[::1]:7401").unwrap();
        assert_eq!((u.transport, u.host.as_str(), u.port, u.path.as_str()), (Transport::Ws, "::1", 7401, "/"));
        assert_eq!(u.to_string(), "ws://[::1]:7401/");
        let u = PeerUrl::parse("wss://example.org:443/mesh").unwrap();
        assert_eq!((u.transport, u.tls, u.path.as_str()), (Transport::Ws, true, "/mesh"));
        assert_eq!(u.to_string(), "wss://example.org:443/mesh");
        assert!(!PeerUrl::parse("ws://a:1").unwrap().tls);
        let u = PeerUrl::parse("UDP://example.org:9").unwrap();
        assert_eq!((u.transport, u.host.as_str()), (Transport::Udp, "example.org"));
        for bad in ["127.0.0.1:7400", "http://a:1", "tcp://a", "tcp://a:0", "tcp://a:70000", "tcp://:1", "tcp://a:1/x"]
        {
            assert!(PeerUrl::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn dialable_maps_unspecified_to_loopback() {
        assert_eq!(dialable("0.0.0.0:5".parse().unwrap()), "127.0.0.1:5".parse().unwrap());
        assert_eq!(dialable("[::]:5".parse().unwrap()), "[::1]:5".parse().unwrap());
        assert_eq!(dialable("10.1.2.3:5".parse().unwrap()), "10.1.2.3:5".parse().unwrap());
    }
}
