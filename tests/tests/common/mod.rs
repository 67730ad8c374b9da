//! Helpers shared by the simulator acceptance tests.
#![allow(dead_code)] // each test file uses a different subset

use core::time::Duration;

use meshlink_core::{DisconnectReason, Instant, TransportKind};
use meshlink_sim::{NodeIdx, Sim, SimEvent};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs until `a` and `b` both report the other connected; panics with context if not
/// within `within`.
pub fn run_connected(sim: &mut Sim, a: NodeIdx, b: NodeIdx, within: Duration, what: &str) {
    let ok = sim.run_until_cond(within, |s| s.is_connected(a, b) && s.is_connected(b, a));
    assert!(ok, "{what}: not connected after {within:?}; a events {:?}, b events {:?}", kinds(sim, a), kinds(sim, b));
}

/// A compact list of event kinds with times, for failure messages.
pub fn kinds(sim: &Sim, n: NodeIdx) -> Vec<String> {
    sim.events(n)
        .iter()
        .filter(|e| !matches!(e.event, SimEvent::Quality { .. }))
        .map(|e| {
            let what = match &e.event {
                SimEvent::Connected { kind, .. } => format!("Connected({kind:?})"),
                SimEvent::Message { data, .. } => format!("Message({}B)", data.len()),
                SimEvent::Quality { .. } => "Quality".into(),
                SimEvent::RemoteError { code, .. } => format!("RemoteError({code:?})"),
                SimEvent::Disconnected { reason, was_connected, .. } => {
                    format!("Disconnected({reason:?}, {was_connected})")
                }
            };
            format!("{}ms {what}", e.at.as_micros() / 1000)
        })
        .collect()
}

/// Payloads of every Message event at `n`, with the sender's index.
pub fn messages(sim: &Sim, n: NodeIdx) -> Vec<(NodeIdx, Vec<u8>)> {
    sim.events(n)
        .iter()
        .filter_map(|e| match &e.event {
            SimEvent::Message { peer, data, .. } => Some((sim.idx_of(peer).expect("known sender"), data.clone())),
            _ => None,
        })
        .collect()
}

/// How many Message events `n` has seen (cheap enough to poll every step).
pub fn message_count(sim: &Sim, n: NodeIdx) -> usize {
    sim.events(n).iter().filter(|e| matches!(e.event, SimEvent::Message { .. })).count()
}

/// (time, reason, was_connected) of every Disconnected event at `n` after `since`.
pub fn disconnects(sim: &Sim, n: NodeIdx, since: Instant) -> Vec<(Instant, DisconnectReason, bool)> {
    sim.events(n)
        .iter()
        .filter(|e| e.at >= since)
        .filter_map(|e| match &e.event {
            SimEvent::Disconnected { reason, was_connected, .. } => Some((e.at, *reason, *was_connected)),
            _ => None,
        })
        .collect()
}

/// The kinds of the Connected events at `n` whose peer is `peer`.
pub fn connected_kinds(sim: &Sim, n: NodeIdx, peer: NodeIdx) -> Vec<TransportKind> {
    let id = sim.peer_id(peer);
    sim.events(n)
        .iter()
        .filter_map(|e| match &e.event {
            SimEvent::Connected { peer, kind, .. } if *peer == id => Some(*kind),
            _ => None,
        })
        .collect()
}

/// A message body that names its sequence number and can be checked byte for byte.
pub fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(4));
    v.extend_from_slice(&seq.to_le_bytes());
    let mut x = seq.wrapping_mul(2654435761).wrapping_add(1);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v
}

/// The sequence number of a body made by [`payload`], after checking every byte.
pub fn check_payload(data: &[u8]) -> u32 {
    let seq = u32::from_le_bytes(data[..4].try_into().expect("at least 4 bytes"));
    assert_eq!(data, payload(seq, data.len()).as_slice(), "message {seq} corrupted");
    seq
}
