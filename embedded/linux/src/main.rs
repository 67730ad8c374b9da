//! Level 3 of the firmware proof (issue 15): the meshlink-embedded adapter, unchanged, on
//! Linux through embassy-executor's std platform, embassy-net over a TAP device
//! (embassy-net-tuntap), against a real `meshlink` daemon. scripts/embedded-net-test.sh
//! creates a network namespace with the TAP device and the daemon, then runs this binary
//! once per transport and asserts what both sides print.
//!
//! One run: bring up embassy-net with a static address on the TAP device, build a node
//! with keys from the OS RNG, connect to the daemon (`--mode tcp` or `udp`), send
//! `--send` messages, receive `--expect` messages, wait for quality figures from a ping
//! round, and exit 0. Every step prints one `EMB ...` line the script checks; a step that
//! does not happen within its timeout prints `EMB FAIL ...` and exits 1.
//!
//! `--drop-every N` makes the TAP driver drop every Nth received frame: the loss the
//! namespace cannot inject (no netem), so TCP's retransmission under the adapter is
//! exercised.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::exit;
use std::str::FromStr;

use embassy_executor::Spawner;
use embassy_net::tcp::TcpSocket;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as Cs;
use embassy_time::{with_timeout, Duration, Timer};
use meshlink_embedded::{run, Buffers, Channels, Config, MeshNode, Mode, NodeStorage, PeerId, TcpLink};
use rand_core::{OsRng, RngCore};
use static_cell::{ConstStaticCell, StaticCell};

mod lossy;

use lossy::Lossy;

const PEERS: usize = 2;
/// `slot_len(&config())`: max(2 + max_frame, max_datagram) + max_message + send_queue.
const SLOT: usize = 1200 + 1024 + 4096;
const MSG: usize = 1024;

static STORAGE: ConstStaticCell<NodeStorage<PEERS, SLOT>> = ConstStaticCell::new(NodeStorage::new());
static NODE: StaticCell<MeshNode> = StaticCell::new();
static BUFS: ConstStaticCell<Buffers<1500, 1500>> = ConstStaticCell::new(Buffers::new());
static CH: Channels<Cs, MSG, 8> = Channels::new();
static RESOURCES: ConstStaticCell<StackResources<4>> = ConstStaticCell::new(StackResources::new());

/// What the script passes.
struct Args {
    tap: String,
    ip: Ipv4Cidr,
    server: Ipv4Addr,
    port: u16,
    server_id: PeerId,
    udp: bool,
    send: usize,
    expect: usize,
    drop_every: u32,
}

fn usage(why: &str) -> ! {
    eprintln!("meshlink-embedded-linux: {why}");
    eprintln!(
        "usage: meshlink-embedded-linux --tap NAME --ip A.B.C.D/LEN --server A.B.C.D --port P --server-id ID \
         [--mode tcp|udp] [--send N] [--expect N] [--drop-every N]"
    );
    exit(2)
}

fn parse_args() -> Args {
    let mut a = std::env::args().skip(1);
    let (mut tap, mut ip, mut server, mut port, mut id) = (None, None, None, None, None);
    let (mut udp, mut send, mut expect, mut drop_every) = (false, 10, 10, 0);
    while let Some(flag) = a.next() {
        let mut val = || a.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let num = |v: String| v.parse::<usize>().unwrap_or_else(|_| usage("expected a number"));
        match flag.as_str() {
            "--tap" => tap = Some(val()),
            "--ip" => {
                let v = val();
                let (addr, len) = v.split_once('/').unwrap_or_else(|| usage("--ip needs A.B.C.D/LEN"));
                let addr = addr.parse().unwrap_or_else(|_| usage("bad --ip address"));
                ip = Some(Ipv4Cidr::new(addr, len.parse().unwrap_or_else(|_| usage("bad --ip prefix"))));
            }
            "--server" => server = Some(val().parse().unwrap_or_else(|_| usage("bad --server"))),
            "--port" => port = Some(val().parse().unwrap_or_else(|_| usage("bad --port"))),
            "--server-id" => id = Some(PeerId::from_str(&val()).unwrap_or_else(|_| usage("bad --server-id"))),
            "--mode" => {
                udp = match val().as_str() {
                    "tcp" => false,
                    "udp" => true,
                    _ => usage("--mode is tcp or udp"),
                }
            }
            "--send" => send = num(val()),
            "--expect" => expect = num(val()),
            "--drop-every" => drop_every = num(val()) as u32,
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    Args {
        tap: tap.unwrap_or_else(|| usage("--tap is required")),
        ip: ip.unwrap_or_else(|| usage("--ip is required")),
        server: server.unwrap_or_else(|| usage("--server is required")),
        port: port.unwrap_or_else(|| usage("--port is required")),
        server_id: id.unwrap_or_else(|| usage("--server-id is required")),
        udp,
        send,
        expect,
        drop_every,
    }
}

// Field by field: Config is #[non_exhaustive] outside the core.
#[allow(clippy::field_reassign_with_default)]
fn config() -> Config {
    let mut c = Config::default();
    c.max_frame = 1024;
    c.max_datagram = 1200;
    c.max_message = MSG;
    c.send_queue = 4096;
    // A ping round within the test's time (the default is 5 s).
    c.ping_interval = core::time::Duration::from_millis(300);
    c.hello.name = heapless::String::try_from("embassy-linux").unwrap_or_default();
    c
}

fn fail(what: &str) -> ! {
    println!("EMB FAIL {what}");
    exit(1)
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Lossy>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn tcp_task(stack: Stack<'static>, node: &'static mut MeshNode, server: SocketAddrV4, id: PeerId) {
    static SOCKET_BUFS: ConstStaticCell<([u8; 4096], [u8; 4096])> = ConstStaticCell::new(([0; 4096], [0; 4096]));
    let (rx, tx) = SOCKET_BUFS.take();
    let mut socket = TcpSocket::new(stack, rx, tx);
    if let Err(e) = socket.connect(server).await {
        fail(&format!("tcp connect to {server}: {e:?}"));
    }
    println!("EMB tcp socket connected to {server}");
    let Some(link) = TcpLink::new(&mut socket) else { fail("tcp link without a remote endpoint") };
    let mode = Mode::Connect { addr: SocketAddr::V4(server), expected: Some(id) };
    let why = run(node, &link, mode, &CH, BUFS.take()).await;
    println!("EMB runner ended: {why:?}");
}

#[cfg(feature = "datagram")]
#[embassy_executor::task]
async fn udp_task(stack: Stack<'static>, node: &'static mut MeshNode, server: SocketAddrV4, id: PeerId) {
    static META: ConstStaticCell<([PacketMetadata; 8], [PacketMetadata; 8])> =
        ConstStaticCell::new(([PacketMetadata::EMPTY; 8], [PacketMetadata::EMPTY; 8]));
    static PAYLOAD: ConstStaticCell<([u8; 8192], [u8; 8192])> = ConstStaticCell::new(([0; 8192], [0; 8192]));
    let (rm, tm) = META.take();
    let (rp, tp) = PAYLOAD.take();
    let mut socket = UdpSocket::new(stack, rm, rp, tm, tp);
    if socket.bind(7500).is_err() {
        fail("udp bind");
    }
    let link = meshlink_embedded::UdpLink::new(&socket);
    let mode = Mode::Connect { addr: SocketAddr::V4(server), expected: Some(id) };
    let why = run(node, &link, mode, &CH, BUFS.take()).await;
    println!("EMB runner ended: {why:?}");
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let args = parse_args();
    let mode = if args.udp { "udp" } else { "tcp" };
    let mut device = embassy_net_tuntap::TunTapDevice::new(&args.tap)
        .unwrap_or_else(|e| fail(&format!("open tap {}: {e}", args.tap)));
    // A fixed, locally administered unicast MAC: the namespace's neighbour cache stays
    // right from one run to the next.
    device.set_hardware_address([0x02, 0x4d, 0x4c, 0x00, 0x00, 0x02]);
    let device = Lossy::new(device, args.drop_every);
    let net = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: args.ip,
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(device, net, RESOURCES.take(), OsRng.next_u64());
    spawner.spawn(net_task(runner).unwrap_or_else(|_| fail("spawn net")));
    stack.wait_config_up().await;
    println!("EMB stack up {} on {}", args.ip, args.tap);

    // The keys: from the OS RNG here, the board's TRNG on a board.
    let node = MeshNode::new(config(), STORAGE.take(), &mut OsRng).unwrap_or_else(|e| fail(&format!("node: {e:?}")));
    let me = node.peer_id();
    println!("EMB id {me}");
    let node = NODE.init(node);
    let server = SocketAddrV4::new(args.server, args.port);
    let id = args.server_id;
    if args.udp {
        #[cfg(feature = "datagram")]
        spawner.spawn(udp_task(stack, node, server, id).unwrap_or_else(|_| fail("spawn udp")));
        #[cfg(not(feature = "datagram"))]
        fail("built without the datagram feature");
    } else {
        spawner.spawn(tcp_task(stack, node, server, id).unwrap_or_else(|_| fail("spawn tcp")));
    }

    let up = with_timeout(Duration::from_secs(20), CH.wait_for(|s| s.peer.is_some())).await;
    let Ok(status) = up else { fail(&format!("{mode} handshake with {id}: none within 20 s")) };
    if status.peer != Some(id) {
        fail(&format!("{mode} connected to the wrong peer"));
    }
    println!("EMB connected {mode} peer={id}");

    for i in 0..args.send {
        let text = format!("embassy {mode} message {i}");
        if CH.send(id, text.as_bytes()).await.is_err() {
            fail(&format!("{mode} send {i}"));
        }
    }
    println!("EMB sent {mode} {}", args.send);

    for i in 0..args.expect {
        let Ok(m) = with_timeout(Duration::from_secs(30), CH.recv()).await else {
            fail(&format!("{mode} receive: {i} of {} within 30 s each", args.expect))
        };
        if m.peer != id {
            fail(&format!("{mode} message from the wrong peer"));
        }
        println!("EMB recv {mode} {}", String::from_utf8_lossy(&m.data));
    }

    // A ping round: the first pong gives the RTT (the handshake alone may have given one).
    let q = with_timeout(
        Duration::from_secs(20),
        CH.wait_for(|s| s.quality.is_some_and(|q| q.pongs_received > 0 && q.rtt_us.is_some())),
    )
    .await;
    let Ok(status) = q else { fail(&format!("{mode} quality: no pong within 20 s")) };
    let q = status.quality.unwrap_or_else(|| fail("quality"));
    println!(
        "EMB quality {mode} rtt_us={} pings_sent={} pongs_received={} loss={:.2} rejected={}",
        q.rtt_us.unwrap_or(0),
        q.pings_sent,
        q.pongs_received,
        q.loss,
        status.rejected
    );
    // Let the last transmits (acknowledgements, a pong) leave before the process goes.
    Timer::after_millis(200).await;
    println!("EMB dropped {mode} frames={}", lossy::DROPPED.load(core::sync::atomic::Ordering::Relaxed));
    println!("EMB done {mode}");
    exit(0)
}
