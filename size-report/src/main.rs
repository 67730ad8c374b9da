//! Firmware image for the size report. It runs one node the way an interrupt-free main
//! loop would: every input (clock, received datagram, keys) is read from statics a driver
//! would fill, and every output is written to them, so LTO can drop nothing the real
//! firmware would keep. Scalars go through `read_volatile`/`write_volatile`; the packet
//! buffers go *by reference* through `black_box`. A volatile access to a whole array
//! cannot be merged, so it compiles to one load/store sequence per byte: 52 KB of the
//! image, measuring the harness instead of the node (embedded/SIZE.md §1).
//!
//! Without the `datagram` feature (the budget node) the node runs over one stream: bytes
//! in through `handle_stream`. With it, over datagrams through `handle_datagram`. Either
//! way it also reads the peer's quality, as a firmware showing link figures would.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::mem::MaybeUninit;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use cortex_m_rt::entry;
use meshlink_core::node::{Slot, SlotBound};
use meshlink_core::{Event, Instant, Keypair, PeerId, TransportKind};
use meshlink_size_report::{config, Buf, FirmwareNode, PEERS, SLOT};
use panic_halt as _;

const MTU: usize = 1200;

/// The node's fixed state, statically allocated: its size is the symbol size of `NODE`.
#[no_mangle]
static mut NODE: MaybeUninit<FirmwareNode> = MaybeUninit::uninit();
/// The caller-owned storage: the slot table (written in place at boot) and the slot
/// buffers, the symbols `SLOTS` and `BUFS`.
#[no_mangle]
static mut SLOTS: MaybeUninit<[Slot<Buf>; PEERS]> = MaybeUninit::uninit();
#[no_mangle]
static mut BUFS: [[u8; SLOT]; PEERS] = [[0; SLOT]; PEERS];

// Stand-ins for provisioning storage, a hardware timer and a network driver's buffers.
static mut SECRET: [u8; 32] = [1; 32];
static mut SEED: [u8; 32] = [2; 32];
static mut PEER_KEY: [u8; 32] = [3; 32];
static mut CLOCK_US: u64 = 0;
static mut RX: [u8; MTU] = [0; MTU];
static mut RX_LEN: usize = 0;
static mut RX_FROM: (u32, u16) = (0, 0);
static mut TX: [u8; MTU] = [0; MTU];
static mut TX_LEN: usize = 0;
static mut TX_TO: (u32, u16) = (0, 0);
static mut DELIVERED: usize = 0;
static mut OUTBOX_LEN: usize = 0;
static mut WAKE_AT_US: u64 = 0;
static mut RTT_US: u64 = 0;

fn v4(a: (u32, u16)) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(a.0), a.1))
}

#[entry]
fn main() -> ! {
    // SAFETY: single-threaded firmware with no interrupts touching these statics; every
    // access is a volatile read or write of a plain value.
    let (secret, seed, peer, now) = unsafe {
        (
            read_volatile(addr_of!(SECRET)),
            read_volatile(addr_of!(SEED)),
            read_volatile(addr_of!(PEER_KEY)),
            read_volatile(addr_of!(CLOCK_US)),
        )
    };
    // SAFETY: SLOTS and BUFS are touched only here, once, before any other reference to
    // them exists; each of the PEERS slots is written before the table is used.
    let slots: &'static mut [Slot<Buf>] = unsafe {
        let first = addr_of_mut!(SLOTS).cast::<Slot<Buf>>();
        for (i, buf) in (*addr_of_mut!(BUFS)).iter_mut().enumerate() {
            first.add(i).write(Slot::with_buffer(&mut buf[..]));
        }
        (*addr_of_mut!(SLOTS)).assume_init_mut()
    };
    let Ok(node) = FirmwareNode::new(config(), Keypair::from_secret(secret), seed, slots, SlotBound::new()) else {
        panic!()
    };
    // SAFETY: NODE is written once here, before any reference to it exists.
    let node: &mut FirmwareNode = unsafe { (*addr_of_mut!(NODE)).write(node) };
    let peer = PeerId::from_bytes(peer);
    let server = v4(unsafe { read_volatile(addr_of!(RX_FROM)) });
    #[cfg(feature = "datagram")]
    let kind = TransportKind::Datagram;
    #[cfg(not(feature = "datagram"))]
    let kind = TransportKind::Stream;
    let Ok(conn) = node.connect(Instant::from_micros(now), kind, server, Some(peer)) else { panic!() };

    let mut tx = [0u8; MTU];
    loop {
        // SAFETY: as above.
        unsafe {
            let now = Instant::from_micros(read_volatile(addr_of!(CLOCK_US)));
            let len = read_volatile(addr_of!(RX_LEN)).min(MTU);
            if len > 0 {
                let rx: &[u8; MTU] = black_box(&*addr_of!(RX));
                #[cfg(feature = "datagram")]
                let _ = (conn, node.handle_datagram(now, v4(read_volatile(addr_of!(RX_FROM))), &rx[..len]));
                #[cfg(not(feature = "datagram"))]
                let _ = node.handle_stream(conn, now, &rx[..len]);
                write_volatile(addr_of_mut!(RX_LEN), 0);
            }
            node.handle_timeout(now);
            let out = read_volatile(addr_of!(OUTBOX_LEN)).min(MTU);
            let outbox: &[u8; MTU] = black_box(&*addr_of!(TX));
            if out > 0 && node.send(now, &peer, &outbox[..out]).is_ok() {
                write_volatile(addr_of_mut!(OUTBOX_LEN), 0);
            }
            while let Some(t) = node.poll_transmit(now, &mut tx) {
                black_box(&mut *addr_of_mut!(TX)).copy_from_slice(&tx);
                write_volatile(addr_of_mut!(TX_LEN), t.len);
                if let SocketAddr::V4(a) = t.addr {
                    write_volatile(addr_of_mut!(TX_TO), (u32::from(*a.ip()), a.port()));
                }
            }
            while let Some(ev) = node.poll_event() {
                if let Event::Message { data, .. } = ev {
                    write_volatile(addr_of_mut!(DELIVERED), data.len());
                }
            }
            if let Some(q) = node.quality(&peer) {
                write_volatile(addr_of_mut!(RTT_US), q.rtt_us.unwrap_or(0));
            }
            write_volatile(addr_of_mut!(WAKE_AT_US), node.poll_timeout().map_or(u64::MAX, |t| t.as_micros()));
        }
    }
}
