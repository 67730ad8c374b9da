//! The publish/subscribe commands and packet handling of the [`Messenger`].

use super::interest::{Interest, NIL};
use super::packet::{
    self, InterestAckPacket, PubSubPacket, PublicationPacket, SlowConsumerPacket, ACK_LIMIT, ACK_NO_ROOM, ACK_OK,
};
use super::seen::LOCAL;
use super::{ActiveCursor, PubSub, PubSubStats, SubId, SubSlot};
use crate::buffers::Priority;
use crate::identity::PeerId;
use crate::messaging::subject::{self, MAX_SUBJECT_LEN};
use crate::messaging::{MessagingConfig, MessagingError, Messenger, MessengerEvent};
use crate::node::{conn_slot, BufferPool, Event, Node, Slot};
use crate::time::Instant;
use crate::wire::kind;

/// What [`Messenger::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishReport {
    /// The publication's sequence number (with this node's PeerId, its seen-cache key).
    pub seq: u64,
    /// Neighbours it was queued to (those with matching interest).
    pub queued: usize,
    /// Neighbours with matching interest whose queue refused it.
    pub failed: usize,
}

/// What the messenger does with a pub/sub message at the head of the node's queue.
pub(crate) enum PsStep {
    /// Handled (or dropped) and taken: look at the next event.
    Skip,
    /// Hand the head publication to subscription slot `i` (the message stays).
    Deliver(usize),
    /// Take the head SlowConsumer notice and report it.
    Notice,
    /// Report this.
    Event(MessengerEvent<'static>),
}

/// Most bytes an Interest packet adds around its entries.
const INTEREST_HEADER_MAX: usize = 1 + 32 + 10 + 5;

impl<P, S> Messenger<'_, P, S>
where
    P: BufferPool,
    S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
{
    /// Subscribes to `pattern` (wildcards allowed, §15.1); publications matching it come
    /// as [`MessengerEvent::Publication`], and the last hop sends them in `priority`'s
    /// class. The new interest goes to every neighbour; each neighbour's acknowledgement
    /// gives [`MessengerEvent::SubscribeActive`]: from then on, every publication that
    /// neighbour sees or sends reaches this subscription (NATS pain point N3).
    ///
    /// Fails at once on a bad pattern, a full table ([`MessagingError::SubLimit`],
    /// [`MessagingError::InterestLimit`]) or an interest set that outgrows the scratch
    /// buffer ([`MessagingError::TooLarge`]); then nothing changed.
    pub fn subscribe(&mut self, now: Instant, pattern: &str, priority: Priority) -> Result<SubId, MessagingError> {
        subject::validate_pattern(pattern)?;
        let ps = &mut self.pubsub;
        let limit = self.config.max_subs.min(ps.subs.len());
        if ps.own == NIL {
            return Err(MessagingError::SubLimit { limit: 0 });
        }
        // The subscription table is small and caller-sized: a command walks it.
        let i = ps.subs[..limit].iter().position(|s| !s.used).ok_or(MessagingError::SubLimit { limit })?;
        let mut text = heapless::String::<MAX_SUBJECT_LEN>::new();
        text.push_str(pattern)
            .map_err(|()| subject::SubjectError::TooLong { len: pattern.len(), max: MAX_SUBJECT_LEN })?;
        let gen = ps.subs[i].gen.wrapping_add(1);
        ps.subs[i] = SubSlot { used: true, gen, prio: priority, pattern: text, ver: ps.ver + 1, ..SubSlot::EMPTY };
        let fits = ps.rebuild_own() && self.own_interest_len().is_some();
        if !fits {
            let ps = &mut self.pubsub;
            ps.subs[i] = SubSlot { gen, ..SubSlot::EMPTY };
            ps.rebuild_own();
            let full = ps.interest.entries_used + 1 > ps.entries.len();
            return Err(if full {
                MessagingError::InterestLimit { limit: ps.entries.len() }
            } else {
                MessagingError::TooLarge { size: INTEREST_HEADER_MAX, max: self.scratch.len() }
            });
        }
        self.pubsub.ver += 1;
        self.flood_own(now);
        Ok(SubId::new(i, gen))
    }

    /// Ends a subscription: no more publications for it, and the smaller interest set
    /// goes to every neighbour (which forget what no one else wants).
    pub fn unsubscribe(&mut self, now: Instant, sub: SubId) -> Result<(), MessagingError> {
        let ps = &mut self.pubsub;
        let s =
            ps.subs.get_mut(sub.slot()).filter(|s| s.used && s.gen == sub.gen()).ok_or(MessagingError::UnknownSub)?;
        *s = SubSlot { gen: s.gen, ..SubSlot::EMPTY };
        ps.rebuild_own();
        // A SubscribeActive still owed for it is not reported (`pubsub_owed` skips free slots).
        ps.ver += 1;
        self.flood_own(now);
        Ok(())
    }

    /// Publishes `body` on the literal `subject`: queued to every neighbour whose
    /// interest matches (in the best class among the matching entries), nowhere else.
    /// This node's own subscriptions do not get it (as NATS `no_echo`).
    pub fn publish(&mut self, now: Instant, subject: &str, body: &[u8]) -> Result<PublishReport, MessagingError> {
        subject::validate_subject(subject)?;
        let me = self.node.peer_id();
        let seq = self.pubsub.next_seq;
        let pkt = PubSubPacket::Publication(PublicationPacket { hops: 0, origin: me.0, seq, subject, body });
        let max = self.scratch.len();
        let n = pkt
            .encode(&mut self.scratch)
            .map_err(|_| MessagingError::TooLarge { size: body.len() + subject.len() + 1 + 32 + 10 + 4, max })?;
        let Messenger { node, pubsub: ps, scratch, .. } = self;
        ps.next_seq += 1;
        ps.stats.published += 1;
        ps.seen.insert(&mut ps.seen_t, &me, seq, LOCAL);
        let (queued, failed) = ps.fan_out(node, now, &scratch[..n], subject, LOCAL, &me);
        self.wake = true;
        Ok(PublishReport { seq, queued, failed })
    }

    /// Frees `n` places in `sub`'s delivery queue ([`MessagingConfig::sub_queue`]): the
    /// application has processed that many of its publications.
    pub fn consumed(&mut self, sub: SubId, n: u16) -> Result<(), MessagingError> {
        let s = self.pubsub.subs.get_mut(sub.slot()).filter(|s| s.used && s.gen == sub.gen());
        let s = s.ok_or(MessagingError::UnknownSub)?;
        s.queued = s.queued.saturating_sub(n);
        Ok(())
    }

    /// Publications dropped at `sub`'s full queue so far.
    pub fn sub_dropped(&self, sub: SubId) -> Option<u64> {
        self.pubsub.subs.get(sub.slot()).filter(|s| s.used && s.gen == sub.gen()).map(|s| s.dropped)
    }

    pub fn pubsub_stats(&self) -> PubSubStats {
        self.pubsub.stats
    }

    /// Sets the high 32 bits of this node's publication sequence numbers and interest
    /// versions. Call it once, before the first subscribe or publish, with a value that
    /// differs at each start (random, or a boot counter): peers drop a publication whose
    /// (origin, seq) they have seen, and an interest version not above the one they hold.
    pub fn set_pubsub_epoch(&mut self, epoch: u32) {
        let base = u64::from(epoch) << 32;
        let ps = &mut self.pubsub;
        ps.next_seq = ps.next_seq.max(base | 1);
        ps.ver = ps.ver.max(base);
    }

    /// The encoded length of this node's interest set, if it fits the scratch buffer.
    fn own_interest_len(&mut self) -> Option<usize> {
        let ps = &self.pubsub;
        let room = self.scratch.len().checked_sub(INTEREST_HEADER_MAX)?;
        Interest::encode_entries(&ps.origins, &ps.entries, ps.own, &mut self.scratch[..room])
    }

    /// Sends this node's interest set to every neighbour.
    fn flood_own(&mut self, now: Instant) {
        let Messenger { node, pubsub: ps, scratch, .. } = self;
        let own = ps.own;
        ps.origins[own as usize].ver = ps.ver;
        let Some(n) = ps.encode_interest(own, scratch) else { return };
        let mut c = ps.live;
        while c != NIL {
            let next = ps.conns[c as usize].next_live;
            ps.send(node, now, c as usize, kind::INTEREST, Priority::High, &scratch[..n]);
            c = next;
        }
        self.wake = true;
    }

    /// Full interest sync of the sessions that came up (what every origin wants, except
    /// what the neighbour itself taught), then owed work. Called before every poll.
    pub(crate) fn pubsub_service(&mut self, now: Instant) {
        let Messenger { node, pubsub: ps, scratch, wake, .. } = self;
        while ps.sync != NIL {
            let slot = ps.sync as usize;
            let c = &mut ps.conns[slot];
            ps.sync = c.next_sync;
            c.in_sync = false;
            if !core::mem::take(&mut c.sync) || !c.live {
                continue;
            }
            // O(origins) once per new session.
            for o in 0..ps.origins.len() {
                let x = &ps.origins[o];
                if !x.used || usize::from(x.via) == slot || (o as u32 == ps.own && x.ver == 0) {
                    continue;
                }
                if let Some(n) = ps.encode_interest(o as u32, scratch) {
                    ps.send(node, now, slot, kind::INTEREST, Priority::High, &scratch[..n]);
                    *wake = true;
                }
            }
        }
    }

    /// A `SubscribeActive` owed from an acknowledgement.
    pub(crate) fn pubsub_owed(&mut self) -> Option<MessengerEvent<'static>> {
        let ps = &mut self.pubsub;
        let mut cur = ps.active?;
        while cur.next < ps.subs.len() {
            let i = cur.next;
            cur.next += 1;
            let s = &ps.subs[i];
            if s.used && s.ver > cur.lo && s.ver <= cur.hi {
                ps.active = Some(cur);
                return Some(MessengerEvent::SubscribeActive { sub: SubId::new(i, s.gen), peer: cur.peer });
            }
        }
        ps.active = None;
        None
    }

    /// Handles the pub/sub message at the head of the node's queue.
    pub(crate) fn pubsub_step(&mut self) -> PsStep {
        let now = self.node.last_now();
        if let Some((next, origin, seq)) = self.pubsub.delivering {
            // Still the publication being delivered (the application may have closed its
            // session between polls): go on with it, else handle the new head afresh.
            let same = matches!(self.node.peek_message(), Some((_, _, k, d))
                if k == kind::PUBLICATION && matches!(PubSubPacket::decode(k, d),
                    Ok(PubSubPacket::Publication(p)) if p.origin == origin && p.seq == seq));
            if same {
                return self.next_delivery(now, next);
            }
            self.pubsub.delivering = None;
        }
        let Some((conn, _peer, k, data)) = self.node.peek_message() else { return PsStep::Skip };
        let n = data.len();
        if n > self.scratch.len() {
            self.pubsub.stats.malformed += 1;
            let _ = self.node.poll_event();
            return PsStep::Skip;
        }
        self.scratch[..n].copy_from_slice(data);
        let slot = conn_slot(conn);
        let me = self.node.peer_id();
        let max_hops = self.config.max_hops;
        let per_origin = self.config.max_interest_per_origin;
        let Messenger { node, pubsub: ps, scratch, .. } = self;
        let pkt = match PubSubPacket::decode(k, &scratch[..n]) {
            Ok(p) => p,
            Err(_) => {
                ps.stats.malformed += 1;
                let _ = node.poll_event();
                return PsStep::Skip;
            }
        };
        let hops = match pkt {
            PubSubPacket::Publication(p) => p.hops,
            PubSubPacket::Interest(p) => p.hops,
            PubSubPacket::SlowConsumer(p) => p.hops,
            PubSubPacket::InterestAck(_) => 0,
        };
        if hops >= max_hops {
            ps.stats.hops_exceeded += 1;
            let _ = node.poll_event();
            return PsStep::Skip;
        }
        let step = match pkt {
            PubSubPacket::Publication(p) => {
                let origin = PeerId(p.origin);
                if origin == me {
                    // Our own, back around a cycle after the cache forgot it: never echoed.
                    ps.stats.duplicates += 1;
                    PsStep::Skip
                } else if !ps.seen.insert(&mut ps.seen_t, &origin, p.seq, slot as u16) {
                    ps.stats.duplicates += 1;
                    PsStep::Skip
                } else {
                    let mut subj = heapless::String::<MAX_SUBJECT_LEN>::new();
                    let _ = subj.push_str(p.subject);
                    let seq = p.seq;
                    // Forward the same bytes with the hop count one higher: it is the
                    // first byte (a raw postcard u8), below `max_hops` here.
                    scratch[0] = hops + 1;
                    let (queued, _) = ps.fan_out(node, now, &scratch[..n], &subj, slot as u16, &origin);
                    self.wake |= queued > 0;
                    ps.delivering = Some((0, origin.0, seq));
                    return self.next_delivery(now, 0);
                }
            }
            PubSubPacket::Interest(p) => {
                let (origin, ver) = (PeerId(p.origin), p.ver);
                let verdict = ps.apply_interest(&me, slot, per_origin, &p);
                if let Some((status, kept)) = verdict.ack {
                    ps.ack(node, now, slot, &origin, ver, status, kept);
                }
                if verdict.flood {
                    scratch[0] = hops + 1;
                    ps.flood(node, now, &scratch[..n], slot, &origin);
                }
                self.wake = true;
                PsStep::Skip
            }
            PubSubPacket::InterestAck(a) => ps.on_ack(slot, &me, &a),
            PubSubPacket::SlowConsumer(p) => {
                if p.origin == me.0 {
                    return PsStep::Notice;
                }
                let back = ps.seen.came_from(&ps.seen_t, &PeerId(p.origin), p.seq);
                scratch[0] = hops + 1;
                ps.relay_notice(node, now, slot, back, &scratch[..n]);
                self.wake = true;
                PsStep::Skip
            }
        };
        let _ = self.node.poll_event();
        step
    }

    /// Finds the next subscription from slot `from` for the head publication; drops for
    /// full queues on the way (and tells the publisher, at most once per interval).
    fn next_delivery(&mut self, now: Instant, from: usize) -> PsStep {
        let sub_queue = self.config.sub_queue;
        let interval = self.config.slow_notice_interval;
        let me = self.node.peer_id();
        let Some((conn, _, k, data)) = self.node.peek_message() else {
            self.pubsub.delivering = None;
            return PsStep::Skip;
        };
        let Ok(PubSubPacket::Publication(p)) = PubSubPacket::decode(k, data) else {
            self.pubsub.delivering = None;
            let _ = self.node.poll_event();
            return PsStep::Skip;
        };
        let (origin, seq) = (p.origin, p.seq);
        let mut subj = heapless::String::<MAX_SUBJECT_LEN>::new();
        let _ = subj.push_str(p.subject);
        let slot = conn_slot(conn);
        let Messenger { node, pubsub: ps, .. } = self;
        // The subscription table is caller-sized and small: walked, O(subs · L).
        for i in from..ps.subs.len() {
            let s = &mut ps.subs[i];
            if !s.used || !subject::matches(&s.pattern, &subj) {
                continue;
            }
            if sub_queue > 0 && s.queued >= sub_queue {
                s.dropped += 1;
                s.unreported = s.unreported.saturating_add(1);
                ps.stats.dropped_slow += 1;
                if now >= s.next_notice {
                    s.next_notice = now.saturating_add(interval);
                    let dropped = core::mem::take(&mut s.unreported);
                    let pkt = PubSubPacket::SlowConsumer(SlowConsumerPacket {
                        hops: 0,
                        origin,
                        seq,
                        subscriber: me.0,
                        dropped,
                        subject: &subj,
                    });
                    let mut buf = [0u8; NOTICE_MAX];
                    if let Ok(n) = pkt.encode(&mut buf) {
                        if ps.send(node, now, slot, kind::SLOW_CONSUMER, Priority::High, &buf[..n]) {
                            ps.stats.notices_sent += 1;
                        }
                    }
                    self.wake = true;
                }
                continue;
            }
            if sub_queue > 0 {
                s.queued += 1;
            }
            ps.stats.delivered += 1;
            ps.delivering = Some((i + 1, origin, seq));
            return PsStep::Deliver(i);
        }
        ps.delivering = None;
        let _ = node.poll_event();
        PsStep::Skip
    }

    /// The event of a [`PsStep::Deliver`] or [`PsStep::Notice`].
    pub(crate) fn pubsub_event(&mut self, step: PsStep) -> Option<MessengerEvent<'_>> {
        match step {
            PsStep::Deliver(i) => {
                let gen = self.pubsub.subs[i].gen;
                let (_, from, k, data) = self.node.peek_message()?;
                let Ok(PubSubPacket::Publication(p)) = PubSubPacket::decode(k, data) else { return None };
                Some(MessengerEvent::Publication {
                    sub: SubId::new(i, gen),
                    origin: PeerId(p.origin),
                    from,
                    subject: p.subject,
                    seq: p.seq,
                    body: p.body,
                })
            }
            PsStep::Notice => {
                let Some(Event::Message { kind, data, .. }) = self.node.poll_event() else { return None };
                let Ok(PubSubPacket::SlowConsumer(p)) = PubSubPacket::decode(kind, data) else { return None };
                Some(MessengerEvent::SlowConsumer {
                    subscriber: PeerId(p.subscriber),
                    subject: p.subject,
                    seq: p.seq,
                    dropped: p.dropped,
                })
            }
            PsStep::Event(e) => Some(e),
            PsStep::Skip => None,
        }
    }
}

/// The largest SlowConsumer packet: hops, two ids, seq, dropped, subject.
const NOTICE_MAX: usize = 1 + 32 + 10 + 32 + 5 + 2 + MAX_SUBJECT_LEN;

impl PubSub<'_> {
    /// Rebuilds this node's origin entries from the subscriptions; `false` when the
    /// entry table is full (then the set is partial: the caller undoes its change).
    fn rebuild_own(&mut self) -> bool {
        let own = self.own;
        self.interest.clear_entries(&mut self.origins, &mut self.entries, own);
        let mut ok = true;
        for s in self.subs.iter().filter(|s| s.used) {
            ok &= self.interest.add_entry(&mut self.origins, &mut self.entries, own, s.prio, &s.pattern);
        }
        ok
    }

    /// Encodes origin `o`'s Interest packet into `out` (the entries first at their
    /// offset, then the header in front of them); `None` when it does not fit.
    fn encode_interest(&self, o: u32, out: &mut [u8]) -> Option<usize> {
        let x = &self.origins[o as usize];
        let room = out.len().checked_sub(INTEREST_HEADER_MAX)?;
        let n = Interest::encode_entries(&self.origins, &self.entries, o, &mut out[INTEREST_HEADER_MAX..][..room])?;
        let mut head = [0u8; INTEREST_HEADER_MAX];
        let h = postcard::to_slice(&(x.hops, x.peer.0, x.ver, n as u64), &mut head).ok()?.len();
        out.copy_within(INTEREST_HEADER_MAX..INTEREST_HEADER_MAX + n, h);
        out[..h].copy_from_slice(&head[..h]);
        Some(h + n)
    }

    /// Queues a pub/sub packet to the neighbour at `slot`; counts a failure.
    fn send<P, S>(&mut self, node: &mut Node<P, S>, now: Instant, slot: usize, k: u8, prio: Priority, b: &[u8]) -> bool
    where
        P: BufferPool,
        S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
    {
        let Some(c) = self.conns.get(slot).filter(|c| c.live) else { return false };
        let ok = node.send_message_kind(now, &c.peer, k, prio, b).is_ok();
        if !ok {
            self.stats.send_failed += 1;
        }
        ok
    }

    /// Queues `bytes` (a Publication) to the `via` neighbour of every origin whose
    /// interest matches `subject`, once each, never to `from` nor to the origin.
    /// Returns (queued, failed).
    pub(crate) fn fan_out<P, S>(
        &mut self,
        node: &mut Node<P, S>,
        now: Instant,
        bytes: &[u8],
        subject: &str,
        from: u16,
        origin: &PeerId,
    ) -> (usize, usize)
    where
        P: BufferPool,
        S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
    {
        self.stamp = self.stamp.wrapping_add(1).max(1);
        let st = self.stamp;
        let mut head = NIL;
        let PubSub { interest, entries, origins, conns, .. } = self;
        interest.for_matches(entries, subject, |e| {
            let v = origins[e.origin as usize].via;
            if v == LOCAL || v == from {
                return;
            }
            let Some(c) = conns.get_mut(usize::from(v)) else { return };
            if !c.live || c.peer == *origin {
                return;
            }
            if c.stamp != st {
                c.stamp = st;
                c.prio = e.prio;
                c.next_out = head;
                head = u32::from(v);
            } else if e.prio < c.prio {
                c.prio = e.prio;
            }
        });
        let (mut queued, mut failed) = (0, 0);
        let mut c = head;
        while c != NIL {
            let (next, prio, peer) = {
                let x = &self.conns[c as usize];
                (x.next_out, x.prio, x.peer)
            };
            match node.send_message_kind(now, &peer, kind::PUBLICATION, prio, bytes) {
                Ok(_) => queued += 1,
                Err(_) => {
                    failed += 1;
                    self.stats.send_failed += 1;
                }
            }
            c = next;
        }
        self.stats.forwarded += queued as u64;
        (queued, failed)
    }

    /// Takes an Interest set from the neighbour at `slot` into the tables: a newer
    /// version replaces the origin's entries (up to `per_origin`, and the table's room).
    fn apply_interest(
        &mut self,
        me: &PeerId,
        slot: usize,
        per_origin: usize,
        p: &packet::InterestPacket<'_>,
    ) -> Verdict {
        self.stats.interest_received += 1;
        let origin = PeerId(p.origin);
        let direct = p.hops == 0;
        let count = packet::entries(p.entries).count();
        if origin == *me {
            return Verdict { flood: false, ack: None };
        }
        let o = match self.interest.find(&self.origins, &origin) {
            Some(o) if p.ver <= self.origins[o as usize].ver => {
                self.stats.interest_stale += 1;
                let x = &mut self.origins[o as usize];
                if p.ver == x.ver && usize::from(x.via) != slot {
                    // A second way to the same origin: kept for when `via` closes.
                    x.alt = self.conns.get(slot).map_or(u32::MAX, |c| c.conn.0);
                }
                return Verdict { flood: false, ack: direct.then_some((ACK_OK, count as u16)) };
            }
            Some(o) => o,
            None => match self.interest.alloc_origin(&mut self.origins, &origin) {
                Some(o) => o,
                None => {
                    self.stats.interest_refused += count as u64;
                    return Verdict { flood: false, ack: Some((ACK_NO_ROOM, 0)) };
                }
            },
        };
        self.interest.clear_entries(&mut self.origins, &mut self.entries, o);
        let mut kept = 0usize;
        for (prio, pat) in packet::entries(p.entries).flatten() {
            if kept >= per_origin || !self.interest.add_entry(&mut self.origins, &mut self.entries, o, prio, pat) {
                break;
            }
            kept += 1;
        }
        let x = &mut self.origins[o as usize];
        x.ver = p.ver;
        x.hops = p.hops.saturating_add(1);
        x.alt = u32::MAX;
        self.interest.set_via(&mut self.origins, &mut self.conns, o, slot as u16);
        let ack = if kept < count {
            self.stats.interest_refused += (count - kept) as u64;
            Some((ACK_LIMIT, kept as u16))
        } else {
            direct.then_some((ACK_OK, kept as u16))
        };
        Verdict { flood: true, ack }
    }

    #[allow(clippy::too_many_arguments)]
    fn ack<P, S>(
        &mut self,
        node: &mut Node<P, S>,
        now: Instant,
        slot: usize,
        origin: &PeerId,
        ver: u64,
        status: u8,
        accepted: u16,
    ) where
        P: BufferPool,
        S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
    {
        let a = InterestAckPacket { origin: origin.0, ver, status, accepted };
        let mut buf = [0u8; 64];
        if let Ok(n) = PubSubPacket::InterestAck(a).encode(&mut buf) {
            self.send(node, now, slot, kind::INTEREST_ACK, Priority::High, &buf[..n]);
        }
    }

    /// Floods an Interest packet on to every neighbour but `from` and its origin.
    fn flood<P, S>(&mut self, node: &mut Node<P, S>, now: Instant, raw: &[u8], from: usize, origin: &PeerId)
    where
        P: BufferPool,
        S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
    {
        let mut c = self.live;
        while c != NIL {
            let (next, peer) = (self.conns[c as usize].next_live, self.conns[c as usize].peer);
            if c as usize != from && peer != *origin {
                self.send(node, now, c as usize, kind::INTEREST, Priority::High, raw);
            }
            c = next;
        }
    }

    fn on_ack(&mut self, slot: usize, me: &PeerId, a: &InterestAckPacket) -> PsStep {
        if a.origin != me.0 {
            return PsStep::Skip;
        }
        let Some(c) = self.conns.get_mut(slot).filter(|c| c.live) else { return PsStep::Skip };
        let peer = c.peer;
        if a.ver > c.acked_self && a.ver <= self.ver {
            self.active = Some(ActiveCursor { peer, lo: c.acked_self, hi: a.ver, next: 0 });
            c.acked_self = a.ver;
        }
        if a.status != ACK_OK {
            return PsStep::Event(MessengerEvent::InterestLimited { peer, accepted: a.accepted });
        }
        PsStep::Skip
    }

    /// Sends a SlowConsumer notice one hop back towards its publisher: to the neighbour
    /// the seen-cache says the publication came from.
    fn relay_notice<P, S>(&mut self, node: &mut Node<P, S>, now: Instant, slot: usize, back: Option<u16>, raw: &[u8])
    where
        P: BufferPool,
        S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
    {
        match back {
            Some(f)
                if f != LOCAL && usize::from(f) != slot && self.conns.get(usize::from(f)).is_some_and(|c| c.live) =>
            {
                self.send(node, now, usize::from(f), kind::SLOW_CONSUMER, Priority::High, raw);
            }
            _ => self.stats.notices_unroutable += 1,
        }
    }
}

/// What taking an Interest set decided.
struct Verdict {
    flood: bool,
    ack: Option<(u8, u16)>,
}

/// The limits the pub/sub layer reads from the config, checked by `validate`.
pub(crate) fn validate(c: &MessagingConfig) -> Result<(), crate::config::ConfigError> {
    let bad = |field, problem| Err(crate::config::ConfigError { field, problem });
    if c.max_subs > c.max_interest_per_origin {
        return bad("max_subs", "must be at most max_interest_per_origin (peers keep that many of a node's entries)");
    }
    if c.max_hops == 0 {
        return bad("max_hops", "must be at least 1");
    }
    Ok(())
}
