//! Driving the nodes: the core's output contract, routing, and delivery over datagram
//! links and stream pipes.

use meshlink_core::{ConnId, TransportKind};

use crate::machine::{Machine, Outgoing};
use crate::{Action, Delivery, NodeEvent, NodeIdx, Sim};

impl<M: Machine> Sim<M> {
    /// The core's contract after an input: transmits, then events (then the timeout,
    /// which [`Sim::step`] reads when choosing the next instant).
    pub(crate) fn drain(&mut self, idx: usize) {
        if !self.hosts[idx].up {
            return;
        }
        self.hosts[idx].dirty = false;
        let now = self.now;
        let mut work = 0u64;
        while let Some(t) = self.hosts[idx].node.poll_transmit(now, &mut self.scratch) {
            work += 1;
            assert!(
                work <= self.step_limit,
                "livelock: node {idx} produced over {} transmits at {} us",
                self.step_limit,
                now.as_micros()
            );
            self.route(idx, t);
        }
        let mut closed = Vec::new();
        while let Some(ev) = self.hosts[idx].node.poll_event() {
            work += 1;
            assert!(
                work <= self.step_limit,
                "livelock: node {idx} produced over {} events at {} us",
                self.step_limit,
                now.as_micros()
            );
            self.trace.update([0xe0]);
            self.trace.update(now.as_micros().to_le_bytes());
            self.trace.update((idx as u64).to_le_bytes());
            M::trace_event(&ev, &mut self.trace);
            closed.extend(M::closes_stream(&ev));
            self.hosts[idx].events.push(NodeEvent { at: now, event: ev });
        }
        for conn in closed {
            self.close_end(idx, conn);
        }
    }

    fn route(&mut self, src: usize, t: Outgoing) {
        match t {
            Outgoing::Datagram { to, len } => match self.by_addr.get(&to) {
                Some(&dst) => self.send_datagram(src, dst, self.scratch[..len].to_vec()),
                None => self.unroutable += 1,
            },
            Outgoing::Stream { conn, len } => match self.conns.get(&(src, conn)) {
                Some(&(p, side)) => self.send_stream(p, side, len),
                None => self.unroutable += 1,
            },
        }
    }

    fn send_datagram(&mut self, src: usize, dst: usize, bytes: Vec<u8>) {
        let now = self.now;
        let link = self.link(src, dst);
        link.stats.sent += 1;
        link.stats.bytes_sent += bytes.len() as u64;
        if link.blocked {
            link.stats.dropped += 1;
            return;
        }
        // A lost datagram still occupied the link before it vanished.
        let depart = link.serialize(now, bytes.len());
        if link.lose() {
            link.stats.dropped += 1;
            return;
        }
        let mut at = depart + link.delay();
        let (reorder, extra, dup) = (link.config.reorder, link.config.reorder_delay, link.config.duplicate);
        if link.chance(reorder) {
            at = at + extra;
            link.stats.reordered += 1;
        }
        let copy_at = link.chance(dup).then(|| depart + link.delay());
        if copy_at.is_some() {
            link.stats.duplicated += 1;
        }
        if let Some(t) = copy_at {
            self.schedule(t, Action::Datagram { src, dst, bytes: bytes.clone() });
        }
        self.schedule(at, Action::Datagram { src, dst, bytes });
    }

    /// A datagram reaches the far end: into its bounded receive buffer if the link has
    /// one (dropped when full), else straight to the node.
    pub(crate) fn arrive_datagram(&mut self, src: usize, dst: usize, bytes: Vec<u8>) {
        let now = self.now;
        let link = self.link(src, dst);
        let Some((cap, per)) = link.config.rx_buffer else { return self.deliver_datagram(src, dst, bytes) };
        if link.rx_held >= cap {
            link.stats.dropped += 1;
            link.stats.rx_overflow += 1;
            return;
        }
        link.rx_held += 1;
        link.rx_free_at = link.rx_free_at.max(now) + per;
        let at = link.rx_free_at;
        self.schedule(at, Action::DatagramRead { src, dst, bytes });
    }

    pub(crate) fn read_datagram(&mut self, src: usize, dst: usize, bytes: Vec<u8>) {
        let link = self.link(src, dst);
        link.rx_held = link.rx_held.saturating_sub(1);
        self.deliver_datagram(src, dst, bytes);
    }

    pub(crate) fn deliver_datagram(&mut self, src: usize, dst: usize, bytes: Vec<u8>) {
        let up = self.hosts[dst].up;
        let link = self.link(src, dst);
        if link.blocked || !up {
            link.stats.dropped += 1;
            return;
        }
        link.stats.delivered += 1;
        link.stats.bytes_delivered += bytes.len() as u64;
        self.hash_delivery(TransportKind::Datagram, src, dst, &bytes);
        let (now, from) = (self.now, self.hosts[src].addr);
        if self.hosts[dst].node.handle_datagram(now, from, &bytes).is_err() {
            self.hosts[dst].input_errors += 1;
        }
        self.drain(dst);
    }

    fn hash_delivery(&mut self, kind: TransportKind, src: usize, dst: usize, bytes: &[u8]) {
        if let Some(c) = self.capture.as_mut() {
            c.push(Delivery { at: self.now, src: NodeIdx(src), dst: NodeIdx(dst), kind, bytes: bytes.to_vec() });
        }
        let h = &mut self.trace;
        h.update([if kind == TransportKind::Datagram { 0xd0 } else { 0x5d }]);
        h.update(self.now.as_micros().to_le_bytes());
        h.update((src as u64).to_le_bytes());
        h.update((dst as u64).to_le_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }

    /// Segments the first `len` scratch bytes onto a pipe direction.
    fn send_stream(&mut self, p: usize, side: usize, len: usize) {
        let now = self.now;
        let (src, dst) = self.pipes[p].nodes(side);
        let mss = self.link(src, dst).config.mss.max(1);
        for start in (0..len).step_by(mss) {
            let chunk = self.scratch[start..len.min(start + mss)].to_vec();
            let link = self.link(src, dst);
            link.stats.sent += 1;
            link.stats.bytes_sent += chunk.len() as u64;
            let at = link.serialize(now, chunk.len()) + link.delay();
            let at = self.pipes[p].enqueue(side, at, Some(chunk));
            self.schedule(at, Action::Stream { pipe: p, dir: side });
        }
    }

    pub(crate) fn deliver_stream(&mut self, p: usize, dir: usize) {
        let now = self.now;
        let (src, dst) = self.pipes[p].nodes(dir);
        if self.link(src, dst).blocked {
            return; // stalled: heal_one_way re-times the queue
        }
        let side = 1 - dir;
        let mut fin = false;
        while self.pipes[p].dirs[dir].front().is_some_and(|s| s.at <= now) {
            let Some(seg) = self.pipes[p].dirs[dir].pop_front() else { break };
            let Some(data) = seg.data else {
                fin = true;
                continue;
            };
            if self.pipes[p].ends[side].open {
                let stats = &mut self.link(src, dst).stats;
                stats.delivered += 1;
                stats.bytes_delivered += data.len() as u64;
                self.hash_delivery(TransportKind::Stream, src, dst, &data);
                self.pipes[p].ends[side].push(&data);
            } else {
                self.link(src, dst).stats.dropped += 1;
            }
        }
        self.feed(p, side);
        let end = &mut self.pipes[p].ends[side];
        if fin && end.open {
            let (node, conn) = (end.node, end.conn);
            end.close();
            self.conns.remove(&(node, conn));
            self.hosts[node].node.handle_stream_closed(conn, now);
            self.drain(node);
        }
    }

    /// Hands a pipe end's pending bytes to its node. `handle_stream` may stop early
    /// while a message waits in `poll_event`: drain, then feed the rest.
    fn feed(&mut self, p: usize, side: usize) {
        let mut idle = 0;
        loop {
            let end = &self.pipes[p].ends[side];
            let (node, conn) = (end.node, end.conn);
            if !end.open || end.pending().is_empty() || !self.hosts[node].up {
                return;
            }
            let r = self.hosts[node].node.handle_stream(conn, self.now, end.pending());
            let n = match r {
                Ok(n) => n,
                Err(_) => {
                    // The session failed (or answered TooLarge without saying how much it
                    // read): the stream is out of sync, drop what we hold.
                    self.hosts[node].input_errors += 1;
                    end.pending().len()
                }
            };
            self.pipes[p].ends[side].consume(n);
            self.drain(node);
            idle = if n == 0 { idle + 1 } else { 0 };
            assert!(
                idle < 2,
                "node {node} conn {conn:?}: handle_stream consumed nothing even after poll_event was drained"
            );
        }
    }

    /// The node's session for a stream ended: its socket closes and a FIN follows any
    /// bytes already in flight.
    fn close_end(&mut self, node: usize, conn: ConnId) {
        let Some((p, side)) = self.conns.remove(&(node, conn)) else { return };
        self.pipes[p].ends[side].close();
        let (src, dst) = self.pipes[p].nodes(side);
        let at = self.now + self.link(src, dst).delay();
        let at = self.pipes[p].enqueue(side, at, None);
        self.schedule(at, Action::Stream { pipe: p, dir: side });
    }

    /// Both ends see the transport fail at once; bytes in flight are lost.
    pub(crate) fn break_pipe(&mut self, p: usize) {
        let now = self.now;
        for side in 0..2 {
            let end = &mut self.pipes[p].ends[side];
            if !end.open {
                continue;
            }
            let (node, conn) = (end.node, end.conn);
            end.close();
            self.conns.remove(&(node, conn));
            if self.hosts[node].up {
                self.hosts[node].node.handle_stream_closed(conn, now);
                self.drain(node);
            }
        }
        self.pipes[p].dirs.iter_mut().for_each(|d| d.clear());
    }
}
