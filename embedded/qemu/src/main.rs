//! The emulated Cortex-M4 proof (scripts/embedded-test.sh runs it under
//! `qemu-system-arm -machine mps2-an386 -cpu cortex-m4` with semihosting).
//!
//! Two meshlink nodes, each driven by the meshlink-embedded runner, talk over an in-memory
//! link with 5 ms of latency each way, first in stream mode, then in datagram mode:
//! a full XX handshake, 100 messages each way, a ping round with quality figures, and a
//! forged frame that must be rejected. Every check prints a `RESULT` line; the image exits
//! with failure at the first check that does not hold. At the end it prints the peak
//! stack, measured by painting the stack at boot.
#![no_std]
#![no_main]

mod vclock;

use core::cell::Cell;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::ptr::{addr_of, addr_of_mut};

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use embassy_futures::join::join;
use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as Cs;
use embassy_time::{Duration, Timer};
use meshlink_embedded::{
    run, Buffers, Channels, Config, MemLink, MeshNode, Mode, Msg, NodeStorage, PeerId, Pipe, TransportKind,
};
use static_cell::{ConstStaticCell, StaticCell};

/// The firmware node of the budget: two peers, 1 KiB messages, a 2 KiB send queue, 1 KiB
/// stream frames, 1200-byte datagrams (the size report's configuration).
const PEERS: usize = 2;
const SLOT: usize = 1200 + 1024 + 2048;
type Storage = NodeStorage<PEERS, SLOT>;

/// Application messages in the channels: the test's are 64 bytes.
const MSG: usize = 128;
const DEPTH: usize = 4;
const MTU: usize = 1280;
const RX: usize = 1280;
const TX: usize = 1280;
const MESSAGES: u8 = 100;

// Field by field, not a struct literal: Config is #[non_exhaustive] outside the core.
#[allow(clippy::field_reassign_with_default)]
fn config() -> Config {
    let mut c = Config::default();
    c.max_frame = 1024;
    c.max_datagram = 1200;
    c.max_message = 1024;
    c.send_queue = 2048;
    // The budget is for XX: the initiator knows the key but must not take IK (without the
    // `ik` feature there is no IK to take).
    #[cfg(feature = "ik")]
    {
        c.ik_fast_path = false;
    }
    c
}

// Both nodes' storage and everything they use are statics, as on a board (all `.bss`:
// const, zero or uninitialised); only the runners' futures and the two small `MeshNode`s
// live on the stack.
static NODE_A: ConstStaticCell<Storage> = ConstStaticCell::new(Storage::new());
static NODE_B: ConstStaticCell<Storage> = ConstStaticCell::new(Storage::new());
static NODE_A_STATE: StaticCell<MeshNode> = StaticCell::new();
static NODE_B_STATE: StaticCell<MeshNode> = StaticCell::new();
static mut BUF_A: Buffers<RX, TX> = Buffers::new();
static mut BUF_B: Buffers<RX, TX> = Buffers::new();
static A_TO_B: Pipe<Cs, MTU, DEPTH> = Pipe::new();
static B_TO_A: Pipe<Cs, MTU, DEPTH> = Pipe::new();
/// One run per transport: the stream, and with `datagram` the datagram run.
const RUNS: usize = if cfg!(feature = "datagram") { 2 } else { 1 };
static CH_A: [Channels<Cs, MSG, DEPTH>; RUNS] = [const { Channels::new() }; RUNS];
static CH_B: [Channels<Cs, MSG, DEPTH>; RUNS] = [const { Channels::new() }; RUNS];

/// The test's key source (QEMU has no TRNG; a board uses its own): the ChaCha20 keystream
/// of the `chacha20` crate the core's AEAD and CSPRNG already link, so the test adds no
/// second ChaCha (rand_chacha's costs 2.7 KB of flash). Deterministic, for a test only.
struct TestRng(chacha20::ChaCha20);

impl TestRng {
    fn new(seed: [u8; 32]) -> Self {
        use chacha20::cipher::KeyIvInit;
        TestRng(chacha20::ChaCha20::new(&seed.into(), &[0u8; 12].into()))
    }
}

impl rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        use chacha20::cipher::StreamCipher;
        dest.fill(0);
        // A test draws a few hundred bytes of the 256 GiB the cipher allows.
        let _ = self.0.try_apply_keystream(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for TestRng {}

const PAINT: u32 = 0x5aa5_c33c;

extern "C" {
    static mut _stack_end: u32; // lowest stack address (end of .uninit)
    static mut _stack_start: u32; // initial stack pointer (top of RAM)
}

/// Fills the unused stack, from its lowest address up to a little below the current
/// stack pointer, with a pattern; `stack_peak` later finds the lowest overwritten word.
fn paint_stack() {
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = addr_of_mut!(_stack_end) as usize;
    while p + 256 < sp {
        // SAFETY: [_stack_end, sp - 256) is RAM below the live stack that nothing uses.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

fn stack_peak() -> usize {
    let top = addr_of!(_stack_start) as usize;
    let mut p = addr_of!(_stack_end) as usize;
    // SAFETY: reads RAM between the stack's limits.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

/// Builds a node over its static storage (the slot table is written in place there) and
/// keeps the small node value in a static too. Out of line, so that what construction
/// puts on the stack is measured apart from the run.
#[inline(never)]
fn build(
    storage: &'static mut Storage,
    state: &'static StaticCell<MeshNode>,
    cfg: Config,
    rng: &mut TestRng,
) -> &'static mut MeshNode {
    match MeshNode::new(cfg, storage, rng) {
        Ok(n) => state.init(n),
        Err(_) => panic!("a node refused its config"),
    }
}

fn check(ok: bool, what: &str) {
    if ok {
        hprintln!("RESULT {} ok", what);
    } else {
        hprintln!("RESULT {} FAILED", what);
        debug::exit(debug::EXIT_FAILURE);
        #[allow(clippy::empty_loop)]
        loop {}
    }
}

fn message(from: u8, i: u8) -> [u8; 64] {
    let mut m = [0u8; 64];
    for (k, b) in m.iter_mut().enumerate() {
        *b = from.wrapping_mul(31).wrapping_add(i).wrapping_add(k as u8);
    }
    m[0] = from;
    m[1] = i;
    m
}

/// One side's application: waits for the session, sends 100 messages, expects the
/// peer's 100 in order. Returns how many arrived intact.
async fn exchange(ch: &Channels<Cs, MSG, DEPTH>, me: u8, other: u8, peer: PeerId) -> u32 {
    if within(ch.wait_for(|s| s.peer.is_some())).await.is_none() {
        return 0;
    }
    let send = async {
        for i in 0..MESSAGES {
            if ch.send(peer, &message(me, i)).await.is_err() {
                return;
            }
        }
    };
    let recv = async {
        let mut good = 0;
        for i in 0..MESSAGES {
            let Some(m) = within(ch.recv()).await else { break };
            good += u32::from(m.peer == peer && m.data[..] == message(other, i));
        }
        good
    };
    join(send, recv).await.1
}

/// `f`, or `None` after 60 s of virtual time: a check that fails reports, not hangs.
async fn within<T>(f: impl core::future::Future<Output = T>) -> Option<T> {
    match select(f, Timer::after_secs(60)).await {
        Either::First(v) => Some(v),
        Either::Second(()) => None,
    }
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 7000))
}

#[entry]
fn main() -> ! {
    paint_stack();
    // main's own frame (the runners' futures and the test's state live in it): part of
    // both stack figures below, whatever a firmware's main holds instead.
    let main_frame = addr_of!(_stack_start) as usize - cortex_m::register::msp::read() as usize;
    hprintln!("FIGURE stack_main_frame_bytes={}", main_frame);
    let mut rng = TestRng::new(*b"meshlink qemu proof, no TRNG :-("); // QEMU has no TRNG
    let cfg = config();
    check(meshlink_embedded::slot_len(&cfg) == SLOT, "slot size matches config");
    // SAFETY: each static is initialised once here and then only used through the one
    // &mut taken below; nothing else (no interrupt) touches them.
    let (a, b, buf_a, buf_b) = unsafe {
        (
            build(NODE_A.take(), &NODE_A_STATE, cfg.clone(), &mut rng),
            build(NODE_B.take(), &NODE_B_STATE, cfg, &mut rng),
            &mut *addr_of_mut!(BUF_A),
            &mut *addr_of_mut!(BUF_B),
        )
    };
    let (ida, idb) = (a.peer_id(), b.peer_id());
    // What building the two nodes took from the stack, measured apart from the run.
    hprintln!("FIGURE stack_peak_node_new_bytes={}", stack_peak());
    paint_stack();
    let latency = Duration::from_millis(5);

    // The budget node (no core feature) has streams only; `datagram` adds the second run.
    #[cfg(feature = "datagram")]
    let kinds = [TransportKind::Stream, TransportKind::Datagram];
    #[cfg(not(feature = "datagram"))]
    let kinds = [TransportKind::Stream];
    for (phase, kind) in kinds.into_iter().enumerate() {
        let name = if kind == TransportKind::Stream { "stream" } else { "datagram" };
        let (cha, chb) = (&CH_A[phase], &CH_B[phase]);
        let (tamper_a, tamper_b) = (Cell::new(0), Cell::new(0));
        let la = MemLink::new(kind, addr(1), latency, &A_TO_B, &B_TO_A, &tamper_a);
        let lb = MemLink::new(kind, addr(2), latency, &B_TO_A, &A_TO_B, &tamper_b);
        let ra = run(&mut *a, &la, Mode::Connect { addr: addr(2), expected: Some(idb) }, cha, &mut *buf_a);
        let rb = run(&mut *b, &lb, Mode::Accept { addr: addr(1) }, chb, &mut *buf_b);
        let app = async {
            let (ga, gb) = join(exchange(cha, 1, 2, idb), exchange(chb, 2, 1, ida)).await;
            let (sa, sb) = (cha.status(), chb.status());
            hprintln!("{}: handshake a.connects={} b.connects={}", name, sa.connects, sb.connects);
            check(sa.peer == Some(idb) && sb.peer == Some(ida), "handshake");
            // A message larger than the channel's MSG is refused at once, never cut.
            let big = [0u8; MSG + 1];
            check(
                matches!(cha.send(idb, &big).await, Err(meshlink_core::Error::TooLarge { size, max }) if size == MSG + 1 && max == MSG),
                "oversized message refused",
            );
            hprintln!("{}: delivered a<-b {}/{} b<-a {}/{}", name, ga, MESSAGES, gb, MESSAGES);
            check(ga == u32::from(MESSAGES) && gb == u32::from(MESSAGES), "messages");
            // Pings run on the node's own timer (every 5 s of virtual time).
            let s = within(cha.wait_for(|s| s.quality.is_some_and(|q| q.pongs_received >= 3)))
                .await
                .unwrap_or_else(|| cha.status());
            let q = s.quality.unwrap_or_default();
            hprintln!(
                "{}: quality rtt_us={} rtt_min_us={} loss_ppm={} pings={} pongs={}",
                name,
                q.rtt_us.unwrap_or(0),
                q.rtt_min_us.unwrap_or(0),
                // Integers only: formatting an f32 links core's float printing (~14 KB with
                // its tables), which a firmware showing figures would not need either.
                (q.loss * 1e6) as u32,
                q.pings_sent,
                q.pongs_received
            );
            #[cfg(feature = "quality-extras")]
            hprintln!("{}: quality extras jitter_us={} score_ppm={}", name, q.jitter_us, (q.score * 1e6) as u32);
            // Two link latencies, 10 ms; the core measures it from its own timestamps.
            check(q.rtt_us.is_some_and(|r| (9_000..=12_000).contains(&r)) && q.loss == 0.0, "quality");
            // A forged copy of the next frame A sends (last byte of the AEAD tag flipped), sent
            // before the genuine one. Pings and pongs are well under 100 bytes, so the
            // message is the one forged.
            tamper_a.set(100);
            let after = [0x42u8; 120];
            let _ = cha.send(idb, &after).await;
            if kind == TransportKind::Datagram {
                // The forgery is dropped; the session survives, and the genuine datagram
                // with the same counter is still accepted.
                let m = within(chb.recv()).await.unwrap_or(Msg { peer: ida, data: heapless::Vec::new() });
                let s = within(chb.wait_for(|s| s.rejected >= 1)).await.unwrap_or_else(|| chb.status());
                hprintln!("{}: forged datagram rejected={} session kept={}", name, s.rejected, s.peer.is_some());
                check(s.rejected == 1 && s.peer.is_some() && m.data[..] == after[..], "bad frame");
            } else {
                // On a stream, a frame that fails authentication ends the session, and
                // nothing after it is delivered.
                let s = within(chb.wait_for(|s| s.rejected >= 1 && s.ended_by_error >= 1))
                    .await
                    .unwrap_or_else(|| chb.status());
                hprintln!(
                    "{}: forged frame rejected={} session closed by error={}",
                    name,
                    s.rejected,
                    s.ended_by_error
                );
                check(s.peer.is_none() && s.ended_by_error == 1 && chb.try_recv().is_none(), "bad frame");
            }
        };
        let test = select(app, join(ra, rb));
        hprintln!(
            "FIGURE {}_futures_bytes={} (two runners and the test's two applications)",
            name,
            core::mem::size_of_val(&test)
        );
        let ended = vclock::block_on(test);
        hprintln!("FIGURE {}_polls={}", name, vclock::polls());
        // The runners return only when a link fails or a stream session ends; here the
        // test must finish first.
        check(matches!(ended, Either::First(())), "runners kept running");
        let now = embassy_time::Instant::now().as_micros();
        a.shutdown(now, &mut buf_a.tx);
        b.shutdown(now, &mut buf_b.tx);
        // The pipes may hold the last frames of a dead session: empty them.
        while A_TO_B.try_receive().is_ok() || B_TO_A.try_receive().is_ok() {}
        let st = b.stats();
        hprintln!("{}: b.stats handshakes={} records_dropped={}", name, st.handshakes_completed, st.records_dropped);
    }

    hprintln!("FIGURE node_static_bytes={}", core::mem::size_of::<Storage>() + core::mem::size_of::<MeshNode>());
    hprintln!(
        "FIGURE storage_bytes={} node_state_bytes={}",
        core::mem::size_of::<Storage>(),
        core::mem::size_of::<MeshNode>()
    );
    hprintln!("FIGURE stack_peak_run_bytes={}", stack_peak());
    hprintln!("RESULT all ok");
    debug::exit(debug::EXIT_SUCCESS);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("PANIC {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
