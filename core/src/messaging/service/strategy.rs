//! Provider selection: a pure function over the candidates of one attempt, so every
//! strategy is unit-tested without a network.

use crate::identity::PeerId;
use crate::wire::hello::CAPABILITY_LEN_MAX;

/// How a service call picks its provider among the direct neighbours that advertise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy<'a> {
    /// The next provider after the one this node picked last for the same service, in
    /// PeerId order (one cursor per service, [`super::RR_CURSORS`] services kept).
    RoundRobin,
    /// Uniform, from the caller's random value (each failover draws again from it).
    Random(u64),
    /// The smallest smoothed RTT (`Quality::rtt_us`, RFC 6298 srtt of the node's pings);
    /// providers without a measurement come last. Ties: round-robin order.
    LowestLatency,
    /// The fewest requests in flight from this node to the provider (the pending table's
    /// per-session count). Ties: round-robin order.
    LeastPending,
    /// Only providers whose Hello lists this capability (§8.6 `capabilities`), in
    /// round-robin order. None: the call finds no provider.
    Capability(&'a str),
}

/// What a call keeps of its strategy, to pick again on failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    RoundRobin,
    Random,
    LowestLatency,
    LeastPending,
    Capability,
}

/// The stored strategy of a call.
#[derive(Debug, Clone)]
pub(crate) struct Picker {
    pub(crate) kind: Kind,
    pub(crate) rand: u64,
    pub(crate) capability: heapless::String<CAPABILITY_LEN_MAX>,
}

impl Picker {
    pub(crate) const EMPTY: Picker = Picker { kind: Kind::RoundRobin, rand: 0, capability: heapless::String::new() };

    /// `None`: a capability longer than any Hello can carry (it could never match).
    pub(crate) fn new(s: Strategy<'_>) -> Option<Picker> {
        let mut p = Picker::EMPTY;
        match s {
            Strategy::RoundRobin => {}
            Strategy::Random(r) => {
                p.kind = Kind::Random;
                p.rand = r;
            }
            Strategy::LowestLatency => p.kind = Kind::LowestLatency,
            Strategy::LeastPending => p.kind = Kind::LeastPending,
            Strategy::Capability(c) => {
                p.kind = Kind::Capability;
                p.capability.push_str(c).ok()?;
            }
        }
        Some(p)
    }
}

/// One provider that may get the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) peer: PeerId,
    pub(crate) rtt_us: Option<u64>,
    pub(crate) pending: usize,
    pub(crate) capable: bool,
}

/// splitmix64 (Steele, Lea, Flood 2014): one draw from the call's random state.
pub(crate) fn next_rand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The index in `cands` (sorted by PeerId, the tried ones already left out) of the
/// provider `p` picks; `last` is the service's round-robin cursor. `None`: no candidate
/// qualifies. At most [`super::MAX_PROVIDERS`] candidates: two passes, no allocation.
pub(crate) fn pick(p: &mut Picker, cands: &[Candidate], last: Option<&PeerId>) -> Option<usize> {
    let ok = |c: &Candidate| p.kind != Kind::Capability || c.capable;
    let n = cands.iter().filter(|c| ok(c)).count();
    if n == 0 {
        return None;
    }
    if p.kind == Kind::Random {
        let k = (next_rand(&mut p.rand) % n as u64) as usize;
        return cands.iter().enumerate().filter(|(_, c)| ok(c)).nth(k).map(|(i, _)| i);
    }
    // Round-robin order: from the first provider after the cursor, wrapping.
    let start = last.and_then(|l| cands.iter().position(|c| c.peer.0 > l.0)).unwrap_or(0);
    let key = |c: &Candidate| match p.kind {
        Kind::LowestLatency => c.rtt_us.unwrap_or(u64::MAX),
        Kind::LeastPending => c.pending as u64,
        _ => 0,
    };
    let mut best: Option<(u64, usize)> = None;
    for k in 0..cands.len() {
        let i = (start + k) % cands.len();
        let c = &cands[i];
        if ok(c) && best.map_or(true, |(b, _)| key(c) < b) {
            best = Some((key(c), i));
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(b: u8, rtt: Option<u64>, pending: usize, capable: bool) -> Candidate {
        Candidate { peer: PeerId([b; 32]), rtt_us: rtt, pending, capable }
    }

    #[test]
    fn round_robin_walks_peer_order_from_the_cursor() {
        let cands = [c(1, None, 0, false), c(2, None, 0, false), c(3, None, 0, false)];
        let mut p = Picker::new(Strategy::RoundRobin).unwrap();
        let mut last: Option<PeerId> = None;
        let mut seen = [0; 3];
        for _ in 0..30 {
            let i = pick(&mut p, &cands, last.as_ref()).unwrap();
            seen[i] += 1;
            last = Some(cands[i].peer);
        }
        assert_eq!(seen, [10, 10, 10]);
        // The cursor past the largest wraps to the first.
        assert_eq!(pick(&mut p, &cands, Some(&PeerId([9; 32]))), Some(0));
        assert_eq!(pick(&mut p, &cands, Some(&PeerId([1; 32]))), Some(1));
    }

    #[test]
    fn lowest_latency_prefers_measured_and_smallest() {
        let cands = [c(1, None, 0, false), c(2, Some(900), 0, false), c(3, Some(300), 0, false)];
        let mut p = Picker::new(Strategy::LowestLatency).unwrap();
        assert_eq!(pick(&mut p, &cands, None), Some(2));
        // Unmeasured only: still picked (round-robin among equals).
        assert_eq!(pick(&mut p, &cands[..1], None), Some(0));
        // Ties go round-robin from the cursor.
        let tie = [c(1, Some(5), 0, false), c(2, Some(5), 0, false)];
        assert_eq!(pick(&mut p, &tie, Some(&PeerId([1; 32]))), Some(1));
    }

    #[test]
    fn least_pending_picks_the_idlest() {
        let cands = [c(1, None, 4, false), c(2, None, 1, false), c(3, None, 2, false)];
        let mut p = Picker::new(Strategy::LeastPending).unwrap();
        assert_eq!(pick(&mut p, &cands, None), Some(1));
    }

    #[test]
    fn capability_filters_and_none_capable_is_none() {
        let cands = [c(1, None, 0, false), c(2, None, 0, true), c(3, None, 0, true)];
        let mut p = Picker::new(Strategy::Capability("gpu")).unwrap();
        assert_eq!(pick(&mut p, &cands, None), Some(1));
        assert_eq!(pick(&mut p, &cands, Some(&PeerId([2; 32]))), Some(2));
        assert_eq!(pick(&mut p, &cands, Some(&PeerId([3; 32]))), Some(1));
        assert_eq!(pick(&mut p, &cands[..1], None), None);
        // A capability no Hello can carry.
        assert!(Picker::new(Strategy::Capability(&"x".repeat(CAPABILITY_LEN_MAX + 1))).is_none());
    }

    #[test]
    fn random_uses_every_candidate_and_is_reproducible() {
        let cands = [c(1, None, 0, false), c(2, None, 0, false), c(3, None, 0, false)];
        let mut p = Picker::new(Strategy::Random(7)).unwrap();
        let mut q = Picker::new(Strategy::Random(7)).unwrap();
        let mut seen = [0; 3];
        for _ in 0..300 {
            let i = pick(&mut p, &cands, None).unwrap();
            assert_eq!(Some(i), pick(&mut q, &cands, None));
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&n| n > 60), "{seen:?}");
        assert_eq!(pick(&mut p, &[], None), None);
    }
}
