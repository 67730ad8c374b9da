//! Event fan-out: every subscriber gets every event, in order. Events wait in one queue;
//! the front event goes to subscriber 0, 1, ... in turn, and leaves the queue once the
//! last one has it. A full subscriber holds the queue (the driver then stops reading its
//! sockets: back-pressure); a dropped one is forgotten.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use crate::types::HostEvent;

#[derive(Default)]
pub(crate) struct Fanout {
    subs: Vec<mpsc::Sender<HostEvent>>,
    pending: VecDeque<HostEvent>,
    /// The subscriber the front event goes to next.
    next: usize,
    /// Events dropped because nobody had subscribed.
    pub unobserved: u64,
}

/// Waits for room in `sub` (never resolves without one). Owned, so that the permit does
/// not borrow the driver across `select!` arms.
pub(crate) async fn reserve(sub: Option<mpsc::Sender<HostEvent>>) -> Option<mpsc::OwnedPermit<HostEvent>> {
    match sub {
        Some(s) => s.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

impl Fanout {
    pub fn subscribe(&mut self, tx: mpsc::Sender<HostEvent>) {
        self.subs.push(tx);
    }

    pub fn push(&mut self, ev: HostEvent) {
        if self.subs.is_empty() {
            self.unobserved += 1;
        } else {
            self.pending.push_back(ev);
        }
    }

    /// Events not yet delivered to everyone.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The subscriber to wait for, if an event is waiting.
    pub fn waiting_on(&self) -> Option<mpsc::Sender<HostEvent>> {
        if self.pending.is_empty() {
            return None;
        }
        self.subs.get(self.next).cloned()
    }

    /// Hands out events without waiting, as far as every subscriber has room.
    pub fn deliver_ready(&mut self) {
        while let Some(ev) = self.pending.front() {
            while self.next < self.subs.len() {
                match self.subs[self.next].try_send(ev.clone()) {
                    Ok(()) => self.next += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => return,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.subs.remove(self.next);
                    }
                }
            }
            self.advance();
        }
    }

    /// Room appeared in the awaited subscriber (`Some`), or it hung up (`None`).
    pub fn on_permit(&mut self, permit: Option<mpsc::OwnedPermit<HostEvent>>) {
        match permit {
            Some(p) => {
                if let Some(ev) = self.pending.front() {
                    p.send(ev.clone());
                    self.next += 1;
                }
            }
            None => {
                if self.next < self.subs.len() {
                    self.subs.remove(self.next);
                }
            }
        }
        if self.next >= self.subs.len() {
            self.advance();
        }
    }

    /// The front event reached every subscriber (or there are none left).
    fn advance(&mut self) {
        self.pending.pop_front();
        self.next = 0;
        if self.subs.is_empty() {
            self.unobserved += self.pending.len() as u64;
            self.pending.clear();
        }
    }

    /// Delivers what is left, waiting for slow subscribers until `deadline` (shutdown).
    pub async fn flush_until(&mut self, deadline: tokio::time::Instant) {
        loop {
            self.deliver_ready();
            let Some(sub) = self.waiting_on() else { return };
            match tokio::time::timeout_at(deadline, reserve(Some(sub))).await {
                Ok(p) => self.on_permit(p),
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshlink_core::PeerId;

    fn msg(n: u8) -> HostEvent {
        HostEvent::Message { peer: PeerId([0; 32]), data: bytes::Bytes::from(vec![n]) }
    }

    fn byte(ev: HostEvent) -> u8 {
        match ev {
            HostEvent::Message { data, .. } => data[0],
            e => panic!("{e:?}"),
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order_and_a_full_one_holds_the_queue() {
        let mut f = Fanout::default();
        f.push(msg(0));
        assert_eq!((f.len(), f.unobserved), (0, 1), "nobody listening: dropped, counted");
        let (t1, mut r1) = mpsc::channel(8);
        let (t2, mut r2) = mpsc::channel(1);
        f.subscribe(t1);
        f.subscribe(t2);
        for i in 1..=3 {
            f.push(msg(i));
        }
        f.deliver_ready();
        // r2 holds one: event 1 went everywhere, event 2 reached r1 only and waits for r2.
        assert_eq!(f.len(), 2);
        assert!(f.waiting_on().is_some());
        assert_eq!(byte(r2.recv().await.unwrap()), 1);
        let p = reserve(f.waiting_on()).await;
        f.on_permit(p);
        f.deliver_ready();
        assert_eq!(byte(r2.recv().await.unwrap()), 2);
        f.deliver_ready();
        assert_eq!(byte(r2.recv().await.unwrap()), 3);
        assert_eq!(f.len(), 0);
        for i in 1..=3 {
            assert_eq!(byte(r1.recv().await.unwrap()), i);
        }
        // A dropped subscriber no longer holds anything.
        drop(r2);
        f.push(msg(4));
        f.deliver_ready();
        assert_eq!((f.len(), byte(r1.recv().await.unwrap())), (0, 4));
    }
}
