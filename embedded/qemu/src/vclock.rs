//! A virtual clock for embassy-time and a one-future executor that jumps the clock forward
//! when nothing is runnable. The test is therefore deterministic and takes no wall time:
//! a 5 s ping interval passes in microseconds of emulation, and a latency of 5 ms on the
//! in-memory link is exactly 5 ms of virtual time.

use core::cell::Cell;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use critical_section::Mutex;
use embassy_time_driver::Driver;

/// Virtual microseconds since boot.
static NOW: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));
/// The earliest wake-up any timer asked for. All futures share one waker (one top-level
/// future), so the earliest deadline is all the queue there needs to be.
static NEXT: Mutex<Cell<Option<u64>>> = Mutex::new(Cell::new(None));
static WOKEN: AtomicBool = AtomicBool::new(false);
static POLLS: AtomicU32 = AtomicU32::new(0);

/// Polls the last `block_on` took.
pub fn polls() -> u32 {
    POLLS.load(Ordering::Relaxed)
}

struct VirtualClock;

impl Driver for VirtualClock {
    fn now(&self) -> u64 {
        critical_section::with(|cs| NOW.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        if at == u64::MAX {
            return; // "never" (a timer with no deadline)
        }
        if at <= self.now() {
            waker.wake_by_ref();
            return;
        }
        critical_section::with(|cs| {
            let next = NEXT.borrow(cs);
            next.set(Some(next.get().map_or(at, |n| n.min(at))));
        });
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: VirtualClock = VirtualClock);

fn waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(core::ptr::null(), &VTABLE)
    }
    fn wake(_: *const ()) {
        WOKEN.store(true, Ordering::Release);
    }
    fn drop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);
    // SAFETY: the vtable's functions ignore the data pointer and uphold the RawWaker
    // contract trivially (no state to clone or free).
    unsafe { Waker::from_raw(RawWaker::new(core::ptr::null(), &VTABLE)) }
}

/// Polls allowed for one `block_on`: each phase of the test needs a few hundred, so a
/// future that keeps waking itself without finishing (a livelock) fails instead of
/// spinning until the script's timeout.
const MAX_POLLS: u32 = 100_000;

/// Runs `f` to completion. When it is pending and nothing woke it, the clock jumps to the
/// earliest timer; with no timer either, the test is deadlocked and fails.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    for n in 1..=MAX_POLLS {
        POLLS.store(n, Ordering::Relaxed);
        WOKEN.store(false, Ordering::Release);
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        if WOKEN.load(Ordering::Acquire) {
            continue;
        }
        let next = critical_section::with(|cs| NEXT.borrow(cs).take());
        match next {
            Some(t) => critical_section::with(|cs| {
                let now = NOW.borrow(cs);
                now.set(now.get().max(t));
            }),
            None => panic!("deadlock: nothing runnable and no timer armed"),
        }
    }
    panic!("livelock: {} polls without finishing", MAX_POLLS)
}
