//! The node table (F16): every node this node has seen since the control API started,
//! connected or not, with its last quality figures, its Hello and its threat score. It
//! is fed by the event stream and merged with the live peer list on every read, so that
//! connected rows always carry current figures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use meshlink_core::{PeerId, Quality};

use super::api::{HelloJson, NodeJson, PeerJson, QualityJson};
use crate::error::reason_text;
use crate::types::{HostEvent, PeerSummary, Transport};

/// Rows kept; past it the longest-unseen disconnected row goes.
const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connected,
    Disconnected,
    Known,
}

struct Row {
    name: String,
    addr: Option<SocketAddr>,
    transport: Option<Transport>,
    hello: Option<HelloJson>,
    state: State,
    last_seen: Instant,
    quality: Option<Quality>,
    threat: f32,
    reason: Option<String>,
}

impl Row {
    fn new(now: Instant) -> Self {
        Row {
            name: String::new(),
            addr: None,
            transport: None,
            hello: None,
            state: State::Known,
            last_seen: now,
            quality: None,
            threat: 0.0,
            reason: None,
        }
    }
}

#[derive(Default)]
pub(crate) struct NodeTable {
    rows: HashMap<PeerId, Row>,
}

impl NodeTable {
    fn row(&mut self, peer: PeerId, now: Instant) -> &mut Row {
        if !self.rows.contains_key(&peer) && self.rows.len() >= CAPACITY {
            let oldest = self
                .rows
                .iter()
                .filter(|(_, r)| r.state != State::Connected)
                .min_by_key(|(_, r)| r.last_seen)
                .map(|(p, _)| *p);
            if let Some(p) = oldest {
                self.rows.remove(&p);
            }
        }
        self.rows.entry(peer).or_insert_with(|| Row::new(now))
    }

    pub fn observe(&mut self, ev: &HostEvent, now: Instant) {
        match ev {
            HostEvent::Connected { peer, addr, transport, hello, quality, .. } => {
                let r = self.row(*peer, now);
                r.name = hello.name.as_str().to_string();
                r.addr = Some(*addr);
                r.transport = Some(*transport);
                r.hello = Some(hello.as_ref().into());
                r.state = State::Connected;
                r.last_seen = now;
                r.quality = Some(*quality);
                r.reason = None;
            }
            HostEvent::Quality { peer, quality } => {
                if let Some(r) = self.rows.get_mut(peer) {
                    r.quality = Some(*quality);
                    r.last_seen = now;
                }
            }
            HostEvent::Disconnected { peer: Some(peer), was_connected: true, reason, .. } => {
                if let Some(r) = self.rows.get_mut(peer) {
                    r.state = State::Disconnected;
                    r.last_seen = now;
                    r.reason = Some(reason_text(reason));
                }
            }
            HostEvent::Message { peer, .. } => {
                if let Some(r) = self.rows.get_mut(peer) {
                    r.last_seen = now;
                }
            }
            HostEvent::Disconnected { .. } | HostEvent::RemoteError { .. } | HostEvent::Lagged { .. } => {}
        }
    }

    pub fn set_threat(&mut self, peer: PeerId, score: f32, now: Instant) {
        self.row(peer, now).threat = score;
    }

    /// Every row, live peers' figures merged in; connected first, then by name.
    pub fn snapshot(&mut self, live: &[PeerSummary], now: Instant) -> Vec<NodeJson> {
        for p in live {
            let r = self.row(p.peer, now);
            r.name = p.name.clone();
            r.addr = Some(p.addr);
            r.transport = Some(p.transport);
            r.state = State::Connected;
            r.last_seen = now;
            r.quality = Some(p.quality);
            r.threat = p.threat;
            r.reason = None;
        }
        let mut out: Vec<NodeJson> = self
            .rows
            .iter_mut()
            .map(|(id, r)| {
                let peer = live.iter().find(|p| p.peer == *id);
                if peer.is_none() && r.state == State::Connected {
                    // The Disconnected event is on its way; the live list is the truth.
                    r.state = State::Disconnected;
                }
                row_json(id, r, peer.map(PeerJson::from), now)
            })
            .collect();
        out.sort_by(|a, b| (a.state != "connected", &a.name, &a.id).cmp(&(b.state != "connected", &b.name, &b.id)));
        out
    }
}

fn row_json(id: &PeerId, r: &Row, live: Option<PeerJson>, now: Instant) -> NodeJson {
    let state = match r.state {
        State::Connected => "connected",
        State::Disconnected => "disconnected",
        State::Known => "known",
    };
    NodeJson {
        id: id.to_string(),
        name: r.name.clone(),
        state: state.into(),
        addr: r.addr.map(|a| a.to_string()),
        transport: r.transport.map(|t| t.to_string()),
        role: live.as_ref().map(|p| p.role.clone()),
        connected_for_ms: live.as_ref().map(|p| p.connected_for_ms),
        last_seen_ms_ago: now.saturating_duration_since(r.last_seen).as_millis() as u64,
        disconnect_reason: r.reason.clone(),
        threat: r.threat,
        quality: r.quality.as_ref().map(QualityJson::from),
        hello: r.hello.clone(),
    }
}
