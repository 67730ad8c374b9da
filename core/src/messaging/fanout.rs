//! Send to many (F21): one message to a list of peers, or to every connected peer, with
//! a per-peer report in a caller-provided slice (no allocation).

use crate::buffers::Priority;
use crate::error::Error;
use crate::identity::PeerId;
use crate::node::{BufferPool, Node, Slot};
use crate::time::Instant;

use super::MessagingError;

/// Whether the message was queued for one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendReport {
    pub peer: PeerId,
    /// `Ok` when queued; else the node's error (`UnknownPeer`, `QueueFull`, `TooLarge`...).
    pub result: Result<(), Error>,
}

impl SendReport {
    /// A blank entry, for result arrays: `[SendReport::EMPTY; N]`.
    pub const EMPTY: SendReport = SendReport { peer: PeerId([0; 32]), result: Ok(()) };
}

impl Default for SendReport {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Totals of one send-to-many; the first `reported` entries of the result slice are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FanoutSummary {
    pub queued: usize,
    pub failed: usize,
    pub reported: usize,
}

impl<P, S> Node<P, S>
where
    P: BufferPool,
    S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
{
    /// Queues `data` (kind Data `0x03` or an application kind, as [`Node::send_with`]) to
    /// each of `peers`, reporting each in `results[i]`. `results` must hold at least
    /// `peers.len()` entries, else nothing is sent ([`MessagingError::ResultsTooSmall`]).
    /// One peer's failure does not stop the others.
    #[allow(clippy::too_many_arguments)]
    pub fn send_many(
        &mut self,
        now: Instant,
        peers: &[PeerId],
        kind: u8,
        priority: Priority,
        data: &[u8],
        results: &mut [SendReport],
    ) -> Result<FanoutSummary, MessagingError> {
        if results.len() < peers.len() {
            return Err(MessagingError::ResultsTooSmall { needed: peers.len() });
        }
        let mut sum = FanoutSummary::default();
        for (peer, r) in peers.iter().zip(results.iter_mut()) {
            let result = self.send_with(now, peer, kind, priority, data);
            tally(&mut sum, &result);
            *r = SendReport { peer: *peer, result };
        }
        Ok(sum)
    }

    /// Queues `data` to every connected peer, reporting each in `results`, which must
    /// hold at least `stats().connected` entries, else nothing is sent
    /// ([`MessagingError::ResultsTooSmall`]). Visits every slot once.
    pub fn send_all(
        &mut self,
        now: Instant,
        kind: u8,
        priority: Priority,
        data: &[u8],
        results: &mut [SendReport],
    ) -> Result<FanoutSummary, MessagingError> {
        let needed = self.stats().connected;
        if results.len() < needed {
            return Err(MessagingError::ResultsTooSmall { needed });
        }
        if kind != crate::wire::kind::DATA && !crate::wire::kind::is_application(kind) {
            return Err(Error::InvalidKind { kind }.into());
        }
        let mut sum = FanoutSummary::default();
        for slot in 0..self.capacity() {
            let Some(peer) = self.connected_peer_at(slot) else { continue };
            let Some(r) = results.get_mut(sum.reported) else { break };
            let result = self.send_with(now, &peer, kind, priority, data);
            tally(&mut sum, &result);
            *r = SendReport { peer, result };
        }
        Ok(sum)
    }
}

fn tally(sum: &mut FanoutSummary, r: &Result<(), Error>) {
    sum.reported += 1;
    match r {
        Ok(()) => sum.queued += 1,
        Err(_) => sum.failed += 1,
    }
}
