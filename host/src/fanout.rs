//! Event fan-out: every subscriber gets every event, in order, through its own bounded
//! queue (the channel `HostHandle::events` returns). A subscriber whose queue is full
//! misses events instead of holding anything back: the driver counts what it missed and,
//! as soon as the queue has room, hands it `HostEvent::Lagged { dropped }` before the
//! next event. Socket input and the other subscribers never wait for a slow one (a
//! stuck SSE client or a script that stopped reading must not halt every peer). A
//! dropped receiver is forgotten.

use tokio::sync::mpsc;

use crate::types::HostEvent;

struct Sub {
    tx: mpsc::Sender<HostEvent>,
    /// Events missed since the last one delivered; a `Lagged` notice is owed while > 0.
    dropped: u64,
}

#[derive(Default)]
pub(crate) struct Fanout {
    subs: Vec<Sub>,
    /// Events dropped because nobody had subscribed.
    pub unobserved: u64,
    /// Events dropped for subscribers that did not keep up, summed over subscribers.
    pub lagged: u64,
}

/// Waits for room in `sub` (never resolves without one). Owned, so that the permit does
/// not borrow the driver across `select!` arms.
pub(crate) async fn reserve(sub: Option<mpsc::Sender<HostEvent>>) -> Option<mpsc::OwnedPermit<HostEvent>> {
    match sub {
        Some(s) => s.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

impl Sub {
    /// Sends the owed `Lagged` notice if there is room; whether nothing is owed now.
    fn settle(&mut self) -> Result<bool, ()> {
        if self.dropped == 0 {
            return Ok(true);
        }
        match self.tx.try_send(HostEvent::Lagged { dropped: self.dropped }) {
            Ok(()) => {
                self.dropped = 0;
                Ok(true)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        }
    }

    /// Delivers `ev` or counts it as missed; `Err` if the receiver is gone.
    fn offer(&mut self, ev: &HostEvent) -> Result<(), ()> {
        if !self.settle()? {
            self.dropped += 1;
            return Ok(());
        }
        match self.tx.try_send(ev.clone()) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped = 1;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        }
    }
}

impl Fanout {
    pub fn subscribe(&mut self, tx: mpsc::Sender<HostEvent>) {
        self.subs.push(Sub { tx, dropped: 0 });
    }

    /// Hands `ev` to every subscriber that has room; never waits.
    pub fn push(&mut self, ev: HostEvent) {
        if self.subs.is_empty() {
            self.unobserved += 1;
            return;
        }
        let mut lagged = 0;
        self.subs.retain_mut(|s| {
            let before = s.dropped;
            let keep = s.offer(&ev).is_ok();
            lagged += u64::from(s.dropped > before);
            keep
        });
        self.lagged += lagged;
        if self.subs.is_empty() {
            self.unobserved += 1;
        }
    }

    /// A subscriber that is owed a `Lagged` notice, to wait for room in.
    pub fn lagging(&self) -> Option<mpsc::Sender<HostEvent>> {
        self.subs.iter().find(|s| s.dropped > 0).map(|s| s.tx.clone())
    }

    /// Room appeared in a lagging subscriber (`Some`), or it hung up (`None`).
    pub fn on_permit(&mut self, permit: Option<mpsc::OwnedPermit<HostEvent>>) {
        match permit {
            Some(p) => {
                let tx = p.release();
                if let Some(s) = self.subs.iter_mut().find(|s| s.tx.same_channel(&tx)) {
                    let _ = s.settle();
                }
            }
            None => self.subs.retain(|s| !s.tx.is_closed()),
        }
    }

    /// Sends the `Lagged` notices still owed, waiting for room until `deadline` (shutdown).
    pub async fn flush_until(&mut self, deadline: tokio::time::Instant) {
        while let Some(sub) = self.lagging() {
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
    async fn a_full_subscriber_misses_events_gets_lagged_and_holds_back_nobody() {
        let mut f = Fanout::default();
        f.push(msg(0));
        assert_eq!(f.unobserved, 1, "nobody listening: dropped, counted");
        let (t1, mut r1) = mpsc::channel(8);
        let (t2, mut r2) = mpsc::channel(1);
        f.subscribe(t1);
        f.subscribe(t2);
        for i in 1..=4 {
            f.push(msg(i));
        }
        // The roomy subscriber got everything at once, in order.
        for i in 1..=4 {
            assert_eq!(byte(r1.try_recv().unwrap()), i);
        }
        // The full one holds event 1 and missed 2..=4; room makes the driver owe a notice.
        assert_eq!(f.lagged, 3);
        assert_eq!(byte(r2.try_recv().unwrap()), 1);
        let p = reserve(f.lagging()).await;
        f.on_permit(p);
        assert!(matches!(r2.try_recv().unwrap(), HostEvent::Lagged { dropped: 3 }));
        assert!(f.lagging().is_none());
        f.push(msg(5));
        assert_eq!(byte(r2.try_recv().unwrap()), 5);
        assert_eq!(byte(r1.try_recv().unwrap()), 5);
        // A notice still owed goes out before the next event.
        f.push(msg(6));
        f.push(msg(7));
        assert_eq!(byte(r2.try_recv().unwrap()), 6);
        f.push(msg(8));
        assert!(matches!(r2.try_recv().unwrap(), HostEvent::Lagged { dropped: 1 }));
        assert!(r2.try_recv().is_err(), "event 8 found the queue full again: owed, not delivered");
        // A dropped subscriber is forgotten.
        drop(r2);
        f.push(msg(9));
        assert!(f.lagging().is_none());
        assert_eq!(f.subs.len(), 1);
    }
}
