//! Reconnection (F10): peers connected with [`crate::HostHandle::connect_persistent`]
//! (`meshlink up` connects its configured peers that way) are re-dialled after a lost
//! session or a failed dial, with exponential backoff and full jitter.
//!
//! The driver owns a [`Targets`] table. Each attempt is one spawned task (sleep, then
//! dial: resolve, TCP, TLS, WebSocket) that reports back as [`NetInput::Redial`]; the
//! driver hands the socket to the core and tells the table what became of the session.
//! A target whose peer is connected anyway (it dialled us, or won a duplicate race)
//! waits in standby until that session ends. `disconnect(peer)`, `stop_reconnect(url)`
//! and shutdown end a target.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use meshlink_core::{ConnId, PeerId};
use rand_core::{OsRng, RngCore};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::Reconnect;
use crate::driver::Reply;
use crate::error::HostError;
use crate::net::{Dialer, NetInput};
use crate::types::{PeerSummary, PeerUrl};

/// Backoff settings, from [`Reconnect`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub base: Duration,
    pub max: Duration,
    /// A session that lived this long resets the backoff.
    pub stable: Duration,
}

impl Policy {
    pub fn new(c: &Reconnect) -> Self {
        let ms = Duration::from_millis;
        Policy { base: ms(c.base_ms), max: ms(c.max_ms.max(c.base_ms)), stable: ms(c.stable_ms) }
    }
}

/// Exponential backoff with full jitter: after `n` failures the delay is uniform in
/// `0..=min(max, base * 2^n)`. Full jitter spreads the retries of many nodes that lost
/// the same peer at once, so that they do not all come back in the same instant.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The delay before the next attempt, given a uniformly random `random`.
    pub fn next(&mut self, p: &Policy, random: u64) -> Duration {
        let ceiling = p.base.saturating_mul(1u32 << self.failures.min(20)).min(p.max);
        self.failures = self.failures.saturating_add(1);
        let us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(random % us.saturating_add(1))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// SplitMix64 seeded from the OS: jitter needs spread, not secrecy.
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

enum State {
    /// An attempt task is sleeping or dialling.
    Waiting {
        until: tokio::time::Instant,
    },
    Handshaking,
    Connected {
        since: tokio::time::Instant,
    },
    /// The peer is connected through another session.
    Standby,
}

struct Target {
    url: PeerUrl,
    expected: Option<PeerId>,
    /// Learned from the first session (or `expected`).
    peer: Option<PeerId>,
    backoff: Backoff,
    /// Generation of the current attempt: results of older (aborted) ones are dropped.
    gen: u64,
    task: Option<AbortHandle>,
    state: State,
    /// Who waits for the first attempt (`connect_persistent`).
    first: Option<Reply<PeerSummary>>,
}

/// A reconnect target as [`crate::HostHandle::reconnect_targets`] lists it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReconnectTarget {
    pub url: String,
    pub expected: Option<PeerId>,
    /// The peer met on this target's last session.
    pub peer: Option<PeerId>,
    pub connected: bool,
    /// Failed attempts since the last stable session.
    pub failures: u32,
    /// When the next attempt starts (zero: dialling now); `None` while connected.
    pub next_attempt_in: Option<Duration>,
}

pub(crate) struct Targets {
    policy: Policy,
    dialer: Arc<Dialer>,
    net: mpsc::Sender<NetInput>,
    map: BTreeMap<u64, Target>,
    by_conn: HashMap<ConnId, u64>,
    next_id: u64,
    jitter: Jitter,
    /// Dial attempts started, first ones included (for stats).
    pub attempts: u64,
}

impl Targets {
    pub fn new(policy: Policy, dialer: Arc<Dialer>, net: mpsc::Sender<NetInput>) -> Self {
        let jitter = Jitter(OsRng.next_u64());
        Targets { policy, dialer, net, map: BTreeMap::new(), by_conn: HashMap::new(), next_id: 0, jitter, attempts: 0 }
    }

    /// Adds a target and dials it at once.
    pub fn add(&mut self, url: PeerUrl, expected: Option<PeerId>, first: Option<Reply<PeerSummary>>) {
        let id = self.next_id;
        self.next_id += 1;
        let state = State::Waiting { until: tokio::time::Instant::now() };
        let t = Target { url, expected, peer: expected, backoff: Backoff::default(), gen: 0, task: None, state, first };
        self.map.insert(id, t);
        self.dial(id, Duration::ZERO);
    }

    fn dial(&mut self, id: u64, delay: Duration) {
        let Some(t) = self.map.get_mut(&id) else { return };
        t.gen += 1;
        if let Some(old) = t.task.take() {
            old.abort();
        }
        let until = tokio::time::Instant::now() + delay;
        t.state = State::Waiting { until };
        let (gen, url, dialer, net) = (t.gen, t.url.clone(), self.dialer.clone(), self.net.clone());
        self.attempts += 1;
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(until).await;
            let result = dialer.dial(&url).await;
            let _ = net.send(NetInput::Redial { id, gen, result }).await;
        });
        t.task = Some(task.abort_handle());
    }

    /// Schedules the next attempt after a failure or a lost session.
    fn retry(&mut self, id: u64, why: &str) {
        let Some(t) = self.map.get_mut(&id) else { return };
        let delay = t.backoff.next(&self.policy, self.jitter.next());
        tracing::info!("reconnecting to {} in {} ms (failure {}): {why}", t.url, delay.as_millis(), t.backoff.failures);
        self.dial(id, delay);
    }

    /// A finished dial of attempt `gen`: whom to expect, or `None` if the attempt is
    /// stale (the target was stopped or re-scheduled).
    pub fn dialled(&self, id: u64, gen: u64) -> Option<(Option<PeerId>, Option<PeerId>)> {
        self.map.get(&id).filter(|t| t.gen == gen).map(|t| (t.expected, t.peer))
    }

    /// The core took the dialled socket as `conn`: the handshake runs. Returns the
    /// first-attempt waiter, for the driver to answer when the session is confirmed.
    pub fn started(&mut self, id: u64, conn: ConnId) -> Option<Reply<PeerSummary>> {
        let t = self.map.get_mut(&id)?;
        t.task = None;
        t.state = State::Handshaking;
        self.by_conn.insert(conn, id);
        t.first.take()
    }

    /// The dial or the core's `connect` failed. Returns the first-attempt waiter.
    pub fn failed(&mut self, id: u64, e: &HostError) -> Option<Reply<PeerSummary>> {
        let first = self.map.get_mut(&id).and_then(|t| {
            t.task = None;
            t.first.take()
        });
        if e.is_self_connect() {
            self.forget(id);
        } else {
            self.retry(id, &e.to_string());
        }
        first
    }

    /// The session `conn` found this node itself at the other end: its target is dropped,
    /// since every later attempt would find the same (issue 13, item 6). Call it before
    /// [`Targets::on_disconnected`], which then has nothing to re-dial.
    pub fn self_connect(&mut self, conn: ConnId) {
        if let Some(id) = self.by_conn.remove(&conn) {
            self.forget(id);
        }
    }

    fn forget(&mut self, id: u64) {
        if let Some(mut t) = self.map.remove(&id) {
            if let Some(task) = t.task.take() {
                task.abort();
            }
            tracing::warn!("not reconnecting to {}: it is this node itself", t.url);
            if let Some(w) = t.first.take() {
                let _ = w.send(Err(HostError::Core(meshlink_core::Error::SelfConnect)));
            }
        }
    }

    /// The peer is connected already (through another session): wait until it is not.
    /// Returns the first-attempt waiter, to be answered with that session.
    pub fn standby(&mut self, id: u64, peer: PeerId) -> Option<Reply<PeerSummary>> {
        let t = self.map.get_mut(&id)?;
        t.task = None;
        t.peer = Some(peer);
        t.state = State::Standby;
        t.first.take()
    }

    pub fn on_connected(&mut self, conn: ConnId, peer: PeerId) {
        let Some(t) = self.by_conn.get(&conn).and_then(|id| self.map.get_mut(id)) else { return };
        if t.backoff.failures > 0 {
            tracing::info!("reconnected to {} ({})", t.url, peer.short());
        }
        t.peer = Some(peer);
        t.state = State::Connected { since: tokio::time::Instant::now() };
    }

    /// A session ended. If it was a target's, re-dial (unless its peer is still connected
    /// elsewhere); if it was the last session of a peer some target stands by for, wake it.
    pub fn on_disconnected(
        &mut self,
        conn: ConnId,
        peer: Option<PeerId>,
        connected: impl Fn(&PeerId) -> bool,
        why: &str,
    ) {
        if let Some(id) = self.by_conn.remove(&conn) {
            let Some(t) = self.map.get_mut(&id) else { return };
            if let State::Connected { since } = t.state {
                if since.elapsed() >= self.policy.stable {
                    t.backoff.reset();
                }
            }
            if let Some(p) = peer.or(t.peer).filter(|p| connected(p)) {
                let _ = self.standby(id, p); // a first waiter, if any, is the driver's by now
            } else {
                self.retry(id, why);
            }
            return;
        }
        let Some(p) = peer.filter(|p| !connected(p)) else { return };
        let woken: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, t)| matches!(t.state, State::Standby) && t.peer == Some(p))
            .map(|(id, _)| *id)
            .collect();
        for id in woken {
            self.retry(id, why);
        }
    }

    fn stop(&mut self, keep: impl Fn(&Target) -> bool) -> Vec<Reply<PeerSummary>> {
        let gone: Vec<u64> = self.map.iter().filter(|(_, t)| !keep(t)).map(|(id, _)| *id).collect();
        let mut waiters = Vec::new();
        for id in gone {
            if let Some(mut t) = self.map.remove(&id) {
                if let Some(task) = t.task.take() {
                    task.abort();
                }
                tracing::info!("stopped reconnecting to {}", t.url);
                waiters.extend(t.first.take());
            }
        }
        self.by_conn.retain(|_, id| self.map.contains_key(id));
        waiters
    }

    /// Stops the targets of `peer` (the user disconnected it). Whether there were any.
    pub fn stop_peer(&mut self, peer: &PeerId) -> bool {
        let before = self.map.len();
        for w in self.stop(|t| t.peer.as_ref() != Some(peer) && t.expected.as_ref() != Some(peer)) {
            let _ = w.send(Err(HostError::Stopped));
        }
        self.map.len() < before
    }

    /// Stops the targets dialling `url`. Whether there were any.
    pub fn stop_url(&mut self, url: &PeerUrl) -> bool {
        let before = self.map.len();
        for w in self.stop(|t| t.url != *url) {
            let _ = w.send(Err(HostError::Stopped));
        }
        self.map.len() < before
    }

    /// Shutdown: every target ends; returns the waiters still unanswered.
    pub fn stop_all(&mut self) -> Vec<Reply<PeerSummary>> {
        self.stop(|_| false)
    }

    pub fn list(&self) -> Vec<ReconnectTarget> {
        let now = tokio::time::Instant::now();
        self.map
            .values()
            .map(|t| ReconnectTarget {
                url: t.url.to_string(),
                expected: t.expected,
                peer: t.peer,
                connected: matches!(t.state, State::Connected { .. }),
                failures: t.backoff.failures,
                next_attempt_in: match t.state {
                    State::Waiting { until } => Some(until.saturating_duration_since(now)),
                    _ => None,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(&Reconnect { enabled: true, base_ms: 500, max_ms: 30_000, stable_ms: 10_000 })
    }

    #[test]
    fn ceiling_doubles_up_to_the_cap_and_resets() {
        let p = policy();
        let mut b = Backoff::default();
        for n in 0..10u32 {
            let ceiling = Duration::from_millis((500u64 << n).min(30_000));
            let us = ceiling.as_micros() as u64;
            // A draw of exactly the ceiling gives the ceiling; one more wraps to zero.
            let mut probe = b;
            assert_eq!(probe.next(&p, us + 1), Duration::ZERO, "failure {n}");
            assert_eq!(b.next(&p, us), ceiling, "failure {n}");
        }
        b.reset();
        assert_eq!(b.next(&p, 500_000), Duration::from_millis(500));
        assert_eq!(b.next(&p, 1_000_000), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_range() {
        let p = policy();
        let mut j = Jitter(7);
        let draws: Vec<Duration> = (0..2000)
            .map(|_| {
                let mut b = Backoff { failures: 3 }; // ceiling 4 s
                b.next(&p, j.next())
            })
            .collect();
        let max = draws.iter().max().unwrap().as_millis();
        let min = draws.iter().min().unwrap().as_millis();
        let low = draws.iter().filter(|d| d.as_millis() < 1000).count();
        assert!(max <= 4000 && max > 3800, "max {max}");
        assert!(min < 200, "min {min}");
        // About a quarter below 1 s (uniform), not bunched at the ceiling.
        assert!((350..650).contains(&low), "{low} of 2000 below 1 s");
    }

    #[test]
    fn the_exponent_saturates() {
        let p = policy();
        let mut b = Backoff { failures: u32::MAX - 1 };
        assert!(b.next(&p, u64::MAX) <= Duration::from_secs(30));
        assert!(b.next(&p, u64::MAX) <= Duration::from_secs(30));
    }
}
