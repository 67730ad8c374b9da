//! A driver wrapper that drops every Nth received frame: the loss a test needs, injected
//! by the test's own driver (the namespace has no netem).

use core::sync::atomic::{AtomicU32, Ordering};
use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken};
use embassy_net_tuntap::TunTapDevice;

/// Frames dropped so far (all `Lossy` devices), for the run's report.
pub static DROPPED: AtomicU32 = AtomicU32::new(0);

/// The TAP device, dropping every `every`th received frame (0: none).
pub struct Lossy {
    inner: TunTapDevice,
    every: u32,
    seen: u32,
}

impl Lossy {
    pub fn new(inner: TunTapDevice, every: u32) -> Self {
        Lossy { inner, every, seen: 0 }
    }
}

impl Driver for Lossy {
    type RxToken<'a>
        = <TunTapDevice as Driver>::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = <TunTapDevice as Driver>::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let every = self.every;
        let (rx, tx) = self.inner.receive(cx)?;
        self.seen = self.seen.wrapping_add(1);
        if every > 0 && self.seen.is_multiple_of(every) {
            // Read and discard the frame, then ask to be polled again for the next one.
            rx.consume(|_| ());
            DROPPED.fetch_add(1, Ordering::Relaxed);
            let _ = tx;
            cx.waker().wake_by_ref();
            return None;
        }
        Some((rx, tx))
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(cx)
    }

    fn link_state(&mut self, cx: &mut Context) -> LinkState {
        self.inner.link_state(cx)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn hardware_address(&self) -> HardwareAddress {
        self.inner.hardware_address()
    }
}
