//! The bounded event queue between the driver thread and the pollers.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::types::{MeshlinkEvent, MeshlinkEventKind, MeshlinkPeerId, MeshlinkQuality};

/// An event as queued: the C struct and the body it names.
pub(crate) struct Queued {
    pub ev: MeshlinkEvent,
    pub data: Bytes,
}

impl Queued {
    pub fn new(kind: MeshlinkEventKind, peer: MeshlinkPeerId, data: Bytes) -> Self {
        let ev = MeshlinkEvent {
            kind,
            peer,
            data_len: data.len(),
            request_id: 0,
            sub_id: 0,
            dropped: 0,
            subject: [0; 256],
            quality: MeshlinkQuality::default(),
            reserved: [0; 32],
        };
        Queued { ev, data }
    }
}

/// Called on the driver thread for every event, before it is queued: `event` and `data`
/// are valid only during the call. Return nothing; the event is queued for polling as well
/// unless the callback was registered with `consume` set.
pub type MeshlinkEventCallback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const MeshlinkEvent, data: *const u8)>;

pub(crate) struct Callback {
    pub f: unsafe extern "C" fn(*mut c_void, *const MeshlinkEvent, *const u8),
    pub userdata: *mut c_void,
    pub consume: bool,
}
// SAFETY: the caller registers a callback knowing it runs on the driver thread (documented
// at meshlink_node_set_event_callback); the pointer is only handed back to it.
unsafe impl Send for Callback {}

struct State {
    q: VecDeque<Queued>,
    lost: u64,
    closed: bool,
}

pub(crate) struct EventQueue {
    cap: usize,
    state: Mutex<State>,
    ready: Condvar,
    pub callback: Mutex<Option<Callback>>,
}

impl EventQueue {
    pub fn new(cap: usize) -> Self {
        let state = State { q: VecDeque::with_capacity(cap.min(4096)), lost: 0, closed: false };
        EventQueue { cap, state: Mutex::new(state), ready: Condvar::new(), callback: Mutex::new(None) }
    }

    /// Queues `e` (after the callback): when full the new event is dropped and counted,
    /// and the count comes out as one `LAGGED` event once there is room again.
    pub fn push(&self, e: Queued) {
        if let Some(cb) = self.callback.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // SAFETY: registered by the caller with this contract; `e` outlives the call.
            unsafe { (cb.f)(cb.userdata, &e.ev, e.data.as_ptr()) };
            if cb.consume {
                return;
            }
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // One slot stays free for the LAGGED marker.
        if s.q.len() + 1 >= self.cap {
            s.lost += 1;
            return;
        }
        if s.lost > 0 {
            let mut lag = Queued::new(MeshlinkEventKind::Lagged, MeshlinkPeerId { bytes: [0; 32] }, Bytes::new());
            lag.ev.dropped = std::mem::take(&mut s.lost);
            s.q.push_back(lag);
        }
        s.q.push_back(e);
        self.ready.notify_all();
    }

    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.ready.notify_all();
    }

    /// Waits up to `timeout` for the first event and hands it to `take`, which says whether
    /// to remove it. `Err(true)`: closed and empty; `Err(false)`: timed out.
    pub fn with_front<T>(&self, timeout: Duration, take: impl FnOnce(&Queued) -> (bool, T)) -> Result<T, bool> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut s, _) = self
            .ready
            .wait_timeout_while(s, timeout, |s| s.q.is_empty() && !s.closed)
            .unwrap_or_else(|p| p.into_inner());
        if s.lost > 0 && s.q.is_empty() {
            let mut lag = Queued::new(MeshlinkEventKind::Lagged, MeshlinkPeerId { bytes: [0; 32] }, Bytes::new());
            lag.ev.dropped = std::mem::take(&mut s.lost);
            s.q.push_back(lag);
        }
        let Some(front) = s.q.front() else { return Err(s.closed) };
        let (remove, out) = take(front);
        if remove {
            s.q.pop_front();
        }
        Ok(out)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).q.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u8) -> Queued {
        Queued::new(MeshlinkEventKind::Message, MeshlinkPeerId { bytes: [n; 32] }, Bytes::from(vec![n]))
    }

    #[test]
    fn a_full_queue_drops_and_reports_lagged_without_growing() {
        let q = EventQueue::new(4);
        for n in 0..10 {
            q.push(msg(n));
        }
        assert_eq!(q.len(), 3, "bounded by the capacity, one slot kept for LAGGED");
        for n in 0..3 {
            let kind = q.with_front(Duration::ZERO, |e| (true, e.data[0])).unwrap();
            assert_eq!(kind, n);
        }
        let lag = q.with_front(Duration::ZERO, |e| (true, (e.ev.kind, e.ev.dropped))).unwrap();
        assert_eq!(lag, (MeshlinkEventKind::Lagged, 7));
        assert_eq!(q.with_front(Duration::ZERO, |_| (true, ())), Err(false));
    }
}
