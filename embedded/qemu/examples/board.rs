//! How a board wires meshlink-embedded into its embassy setup (README.md, "Wiring").
//! Compiled by scripts/embedded-test.sh for thumbv7em-none-eabihf against
//! embassy-executor 0.10 (`platform-cortex-m`, `executor-thread`) and embassy-net 0.9.1;
//! not run, because QEMU's boards have no network device embassy drives. A real board
//! creates the embassy-net `Stack` from its driver and spawns these tasks with it.
#![no_std]
#![no_main]

#[path = "../src/vclock.rs"]
#[allow(dead_code)]
mod vclock; // a time driver, so that the image links

use core::net::{SocketAddr, SocketAddrV4};

use cortex_m_rt::entry;
use embassy_executor::Executor;
use embassy_net::tcp::TcpSocket;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as Cs;
use embassy_time::Timer;
use meshlink_embedded::{run, Buffers, Channels, Config, MeshNode, Mode, NodeStorage, PeerId, TcpLink, UdpLink};
use static_cell::{ConstStaticCell, StaticCell};

const PEERS: usize = 2;
/// `slot_len(&config())`: max(2 + max_frame, max_datagram) + max_message + send_queue.
const SLOT: usize = 1200 + 1024 + 2048;

// Field by field, not a struct literal: Config is #[non_exhaustive] outside the core.
#[allow(clippy::field_reassign_with_default)]
fn config() -> Config {
    let mut c = Config::default();
    c.max_frame = 1024;
    c.max_datagram = 1200;
    c.max_message = 1024;
    c.send_queue = 2048;
    c
}

static EXECUTOR: StaticCell<Executor> = StaticCell::new();
// The node's slot table and slot buffers: const-initialised, so `.bss` and never on the stack.
static STORAGE: ConstStaticCell<NodeStorage<PEERS, SLOT>> = ConstStaticCell::new(NodeStorage::new());
static NODE: StaticCell<MeshNode> = StaticCell::new();
static BUFS: ConstStaticCell<Buffers<1280, 1280>> = ConstStaticCell::new(Buffers::new());
static SOCKET_BUFS: ConstStaticCell<([u8; 2048], [u8; 2048])> = ConstStaticCell::new(([0; 2048], [0; 2048]));
static CH: Channels<Cs, 1024, 4> = Channels::new();

/// Stream mode: connect, run until the session or the socket ends, back off, reconnect.
#[embassy_executor::task]
async fn meshlink_tcp(stack: Stack<'static>, node: &'static mut MeshNode, server: SocketAddrV4, id: PeerId) -> ! {
    let bufs = BUFS.take();
    let (rx, tx) = SOCKET_BUFS.take();
    loop {
        let mut socket = TcpSocket::new(stack, rx, tx);
        if socket.connect(server).await.is_ok() {
            if let Some(link) = TcpLink::new(&mut socket) {
                let mode = Mode::Connect { addr: SocketAddr::V4(server), expected: Some(id) };
                let _ = run(node, &link, mode, &CH, bufs).await;
            }
        }
        Timer::after_secs(5).await;
    }
}

/// Datagram mode: one bound socket answers every peer's handshake.
#[embassy_executor::task]
async fn meshlink_udp(stack: Stack<'static>, node: &'static mut MeshNode) {
    static META: ConstStaticCell<([PacketMetadata; 4], [PacketMetadata; 4])> =
        ConstStaticCell::new(([PacketMetadata::EMPTY; 4], [PacketMetadata::EMPTY; 4]));
    static PAYLOAD: ConstStaticCell<([u8; 4096], [u8; 4096])> = ConstStaticCell::new(([0; 4096], [0; 4096]));
    static BUFS_UDP: ConstStaticCell<Buffers<1280, 1280>> = ConstStaticCell::new(Buffers::new());
    let (rm, tm) = META.take();
    let (rp, tp) = PAYLOAD.take();
    let mut socket = UdpSocket::new(stack, rm, rp, tm, tp);
    if socket.bind(7000).is_err() {
        return;
    }
    let link = UdpLink::new(&socket);
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    let _ = run(node, &link, Mode::Accept { addr: any }, &CH, BUFS_UDP.take()).await;
}

/// The application: wait for the peer, send, read the reply and the quality figures.
#[embassy_executor::task]
async fn app(server: PeerId) {
    CH.wait_for(|s| s.peer.is_some()).await;
    let _ = CH.send(server, b"hello from the board").await;
    let _reply = CH.recv().await;
    let _rtt_us = CH.quality().and_then(|q| q.rtt_us);
}

#[entry]
fn main() -> ! {
    // A real board: its TRNG. This example has none, so a fixed-seed DRBG stands in.
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
    let node = match MeshNode::new(config(), STORAGE.take(), &mut rng) {
        Ok(n) => NODE.init(n),
        Err(_) => panic!("config refused"),
    };
    let server_id = PeerId::from_bytes([0; 32]);
    // embassy-net is built IPv4-only here, so sockets take a SocketAddrV4.
    let server = SocketAddrV4::new(core::net::Ipv4Addr::new(192, 168, 1, 10), 7000);
    EXECUTOR.init(Executor::new()).run(|spawner| {
        // A board creates its stack here (embassy_net::new with its driver), spawns the
        // stack's runner, then one of these:
        let _ = (meshlink_tcp, meshlink_udp, node, server);
        // embassy-executor 0.10: a task function returns Result<SpawnToken, _> (the task's
        // pool may be busy); spawn takes the token.
        if let Ok(token) = app(server_id) {
            spawner.spawn(token);
        }
    })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::asm::udf()
}
