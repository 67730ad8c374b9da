//! Writes the seed corpus: `cargo run --release --example seeds -- <corpus dir>` (from
//! core/fuzz). Seeds are real records captured from real sessions between the same
//! deterministic nodes the targets build, wrapped in the byte encoding the targets decode
//! with `arbitrary` 1.4 (ints little-endian, `int_in_range` big-endian modulo the range,
//! enum variant = u32 * count >> 32). Each structured seed is run once and must reach the
//! depth it was written for (a completed handshake, delivered messages), so a change in
//! the encoding or the targets shows up here rather than as a silently shallow corpus.

use std::path::Path;

use meshlink_core::wire::Packet;
use meshlink_core::{CloseReason, ErrorCode, Hello, Instant, TransportKind};
use meshlink_fuzz::{
    addr, config, datagram_replay as dr, drain_events, message, node, node_ops as no, peer_id, TX_BUF,
};

/// Builds inputs in the byte encoding `arbitrary` 1.4 reads.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    /// `int_in_range(0..=hi)` for `hi` < 65536 returning `v`.
    fn range(&mut self, v: u16, hi: u16) -> &mut Self {
        if hi > 0xff {
            self.bytes(&v.to_be_bytes())
        } else {
            self.u8(v as u8)
        }
    }
    /// `ratio(1, d)` returning `v`.
    fn ratio(&mut self, v: bool, _d: u8) -> &mut Self {
        self.u8(if v { 0 } else { 1 })
    }
    /// An enum variant `k` of `count`.
    fn variant(&mut self, k: u32, count: u32) -> &mut Self {
        let x = ((2 * u64::from(k) + 1) << 32) / (2 * u64::from(count));
        self.bytes(&(x as u32).to_le_bytes())
    }
}

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), data).unwrap();
}

/// A real session between node 1 (initiator) and node 2 (responder), as the targets'
/// nodes would run it from time 0: returns what node 1 sent (stream bytes, or datagrams).
/// Node 1 sends `message(1, 0, msg_len)` once connected.
fn capture(kind: TransportKind, msg_len: usize) -> Vec<Vec<u8>> {
    let (mut a, mut b) = (node(1, config()), node(2, config()));
    let now = Instant::ZERO;
    let ca = a.connect(now, kind, addr(2), None).unwrap();
    let cb = (kind == TransportKind::Stream).then(|| b.accept(now, addr(1)).unwrap());
    let mut sent = Vec::new();
    let mut buf = vec![0u8; TX_BUF];
    let mut queued = false;
    for _ in 0..10 {
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            sent.push(buf[..t.len].to_vec());
            match cb {
                Some(cb) => assert_eq!(b.handle_stream(cb, now, &buf[..t.len]), Ok(t.len)),
                None => b.handle_datagram(now, addr(1), &buf[..t.len]).unwrap(),
            }
            drain_events(&mut b);
        }
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            match kind {
                TransportKind::Stream => {
                    let _ = a.handle_stream(ca, now, &buf[..t.len]).unwrap();
                }
                TransportKind::Datagram => a.handle_datagram(now, addr(2), &buf[..t.len]).unwrap(),
            }
        }
        if !drain_events(&mut a).connected.is_empty() && !queued {
            a.send(now, &peer_id(2), &message(1, 0, msg_len)).unwrap();
            queued = true;
        }
    }
    assert!(queued, "capture handshake failed");
    sent
}

fn byte_seeds(dir: &Path) {
    let stream: Vec<u8> = capture(TransportKind::Stream, 3000).concat();
    // frame_decoder: buffer/limit choices, then real stream bytes; a last byte for the
    // chunk-size list length (arbitrary takes lengths from the end).
    let mut e = Enc::default();
    e.ratio(false, 16).range(600, 600).range(1, 3).u16(2048).bytes(&[7, 1, 200, 3]).bytes(&stream).u8(4);
    write(dir, "frame_decoder", "real-stream", &e.0);
    let mut e = Enc::default();
    e.ratio(true, 16).range(70, 0xffff).range(0, 3).bytes(&[0, 0, 0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xff]).u8(1);
    write(dir, "frame_decoder", "empty-and-oversized", &e.0);

    // packet_decoder: first byte = short buffer length, then one encoding.
    let mut bufs: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut out = [0u8; 512];
    let hello = Hello::named("sensor-7").unwrap().with_capability("relay").unwrap();
    let n = hello.encode(&mut out).unwrap();
    bufs.push(("hello", out[..n].to_vec()));
    for (name, p) in [
        ("ping", Packet::Ping { seq: 300 }),
        ("data", Packet::Data { kind: 3, msg_id: 7, total: 10, offset: 4, bytes: b"abcdef" }),
        ("error", Packet::Error { code: ErrorCode::TooLarge, detail: "too big" }),
        ("close", Packet::Close { reason: CloseReason::Duplicate }),
        ("app", Packet::Data { kind: 0x40, msg_id: 8, total: 3, offset: 0, bytes: b"app" }),
    ] {
        let n = p.encode(&mut out).unwrap();
        bufs.push((name, out[..n].to_vec()));
    }
    let dgrams = capture(TransportKind::Datagram, 40);
    bufs.push(("record-init", dgrams[0].clone()));
    bufs.push(("record-final", dgrams[1].clone()));
    bufs.push(("record-transport", dgrams[dgrams.len() - 1].clone()));
    bufs.push(("record-reject", vec![0x06, 0x03, 0, 0, 1, 0, 1, 0]));
    for (name, b) in bufs {
        write(dir, "packet_decoder", name, &[&[8u8][..], &b].concat());
    }
}

fn responder_seeds(dir: &Path) {
    use meshlink_fuzz::handshake_responder::run;
    // Raw stream mode with a whole real exchange: must connect and deliver.
    let stream: Vec<u8> = capture(TransportKind::Stream, 100).concat();
    let mut e = Enc::default();
    e.range(0, 3).ratio(false, 2);
    for chunk in stream.chunks(500) {
        e.range(chunk.len() as u16, 600).bytes(chunk).ratio(false, 4);
    }
    let o = run(&e.0);
    assert!(o.handshakes == 1 && o.messages == 1, "stream seed too shallow: {o:?}");
    write(dir, "handshake_responder", "stream-real-session", &e.0);
    // Datagram mode: the target's genuine XX Init, then the real Final and transports.
    let dgrams = capture(TransportKind::Datagram, 100);
    let mut e = Enc::default();
    e.range(2, 3).ratio(true, 2).range(0, 1).ratio(false, 4).range(0, 2);
    for d in &dgrams[1..] {
        e.range(0, 2).range(d.len() as u16, 1300).bytes(d).ratio(false, 2).ratio(false, 4);
    }
    let o = run(&e.0);
    assert!(o.handshakes == 1 && o.messages == 1, "datagram seed too shallow: {o:?}");
    write(dir, "handshake_responder", "datagram-real-session", &e.0);
    // Genuine IK Init on a stream, then junk frames.
    let mut e = Enc::default();
    e.range(1, 3).ratio(true, 2).range(1, 1).ratio(false, 4).range(0, 2);
    e.range(12, 600).bytes(&[0, 10, 3, 0, 0, 0, 1, 0, 1, 0, 0xaa, 0xbb]).ratio(true, 4).range(3000, 6000);
    write(dir, "handshake_responder", "stream-ik-junk", &e.0);
}

fn replay_op(e: &mut Enc, op: &dr::Op) {
    let count = 7;
    match *op {
        dr::Op::Deliver(i) => e.variant(0, count).u16(i),
        dr::Op::Mutated { idx, pos, xor } => e.variant(1, count).u16(idx).u16(pos).u8(xor),
        dr::Op::Truncated { idx, keep } => e.variant(2, count).u16(idx).u16(keep),
        dr::Op::Spoofed(i) => e.variant(3, count).u16(i),
        dr::Op::DeliverAll => e.variant(4, count),
        dr::Op::Send { from_b, len } => e.variant(5, count).bool(from_b).u16(len),
        dr::Op::Advance(ms) => e.variant(6, count).u16(ms),
    };
}

fn replay_seeds(dir: &Path) {
    use dr::Op::*;
    let seeds: [(&str, bool, Vec<dr::Op>, usize); 3] = [
        ("all-then-replay", false, vec![DeliverAll, Deliver(5), Deliver(9), DeliverAll], 5),
        ("ik-reorder-spoof", true, vec![Deliver(12), Spoofed(11), Mutated { idx: 10, pos: 20, xor: 1 }, DeliverAll], 3),
        (
            "rekey",
            false,
            vec![
                DeliverAll,
                Advance(12_000),
                Send { from_b: false, len: 2000 },
                DeliverAll,
                Truncated { idx: 3, keep: 20 },
            ],
            6,
        ),
    ];
    for (name, ik, ops, want) in seeds {
        let mut e = Enc::default();
        e.bool(ik);
        ops.iter().for_each(|op| replay_op(&mut e, op));
        let o = dr::run(&e.0);
        assert!(o.messages >= want, "{name}: {o:?}");
        write(dir, "datagram_replay", name, &e.0);
    }
}

fn ops_op(e: &mut Enc, op: &no::Op) {
    let count = 12;
    match *op {
        no::Op::Connect { from_b, stream, ik } => e.variant(0, count).bool(from_b).bool(stream).bool(ik),
        no::Op::Send { from_b, len } => e.variant(1, count).bool(from_b).u16(len),
        no::Op::Disconnect { from_b } => e.variant(2, count).bool(from_b),
        no::Op::Threat { on_b, score } => e.variant(3, count).bool(on_b).u8(score),
        no::Op::Deliver(k) => e.variant(4, count).u8(k),
        no::Op::Drop(k) => e.variant(5, count).u8(k),
        no::Op::Duplicate(k) => e.variant(6, count).u8(k),
        no::Op::Stream { link, to_b, max } => e.variant(7, count).u8(link).bool(to_b).u16(max),
        no::Op::CloseStream(l) => e.variant(8, count).u8(l),
        no::Op::Advance(ms) => e.variant(9, count).u16(ms),
        no::Op::TimeoutDue => e.variant(10, count),
        no::Op::SendWith { from_b, len, kind, prio } => e.variant(11, count).bool(from_b).u16(len).u8(kind).u8(prio),
    };
}

fn ops_seeds(dir: &Path) {
    use no::Op::*;
    let pump_dgrams = || vec![Deliver(0); 6];
    let pump_stream = |link| {
        (0..4).flat_map(move |_| [Stream { link, to_b: true, max: 4096 }, Stream { link, to_b: false, max: 4096 }])
    };
    let mut dgram = vec![Connect { from_b: false, stream: false, ik: false }];
    dgram.extend(pump_dgrams());
    dgram.extend([Send { from_b: false, len: 3000 }, Send { from_b: true, len: 50 }]);
    dgram.extend(pump_dgrams());
    dgram.extend([Duplicate(0), Threat { on_b: true, score: 250 }, TimeoutDue]);
    let mut stream = vec![Connect { from_b: true, stream: true, ik: true }];
    stream.extend(pump_stream(0));
    stream.extend([Send { from_b: true, len: 4000 }, Send { from_b: false, len: 10 }]);
    // A low message then a high one: the high one overtakes between chunks.
    stream.extend([
        SendWith { from_b: true, len: 4000, kind: 0x45, prio: 2 },
        SendWith { from_b: true, len: 20, kind: 0x40, prio: 0 },
    ]);
    stream.extend(pump_stream(0));
    stream.extend([Connect { from_b: false, stream: true, ik: false }]);
    stream.extend(pump_stream(1));
    stream.extend([Disconnect { from_b: false }, Advance(25_000), CloseStream(0)]);
    for (name, ops) in [("datagram-session", dgram), ("stream-sessions", stream)] {
        let mut e = Enc::default();
        ops.iter().for_each(|op| ops_op(&mut e, op));
        let o = no::run(&e.0);
        assert!(o.handshakes >= 2 && o.messages >= 2, "{name}: {o:?}");
        write(dir, "node_ops", name, &e.0);
    }
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);
    byte_seeds(dir);
    responder_seeds(dir);
    replay_seeds(dir);
    ops_seeds(dir);
    println!("seed corpus written to {}", dir.display());
}
