//! Generates the golden vectors in `tests/vectors/`: `handshake.json`, `records.json`,
//! `malformed.json`, `spec_examples.json` and `cookie.json` (not `noise-cacophony.json`,
//! which is imported).
//!
//! ```text
//! cargo run -p meshlink-core --example gen_vectors            # writes tests/vectors/
//! cargo run -p meshlink-core --example gen_vectors -- OUT_DIR # writes elsewhere
//! ```
//! `core/tests/golden_vectors.rs` checks that the code still reproduces every vector, so
//! regenerate only on a deliberate wire change, and say so in the commit.
//!
//! Everything is fixed (keys, node seeds, time), so two runs write identical files. Before
//! writing, the generator cross-checks the transcripts against two other derivations:
//! a small transcript hasher here (Noise's h and ck from the recorded messages and the known
//! secrets, giving the handshake hash and the transport keys) and `snow`.

use std::net::SocketAddr;
use std::path::PathBuf;

use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Mac, SimpleHmac};
use meshlink_core::cookie::{self, MACS_LEN};
use meshlink_core::noise::{CipherState, TAG_LEN};
use meshlink_core::session::{AMPLIFICATION_FACTOR, HANDSHAKE_RECORD_MAX, INIT_MIN_DATAGRAM};
use meshlink_core::wire::frame::{FrameDecoder, FrameProgress};
use meshlink_core::wire::record::INIT_HEADER_LEN;
use meshlink_core::wire::{CloseReason, ErrorCode, Header, Hello, Packet, RejectCode, HELLO_MAX_LEN, WIRE_VERSION};
use meshlink_core::{Config, Error, Event, HeapNode, Instant, Keypair, TransportKind};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{json, Value};
use x25519_dalek::{PublicKey, StaticSecret};

fn hx(b: &[u8]) -> String {
    hex::encode(b)
}

// =========================================================================== shared helpers

/// The node limits every vector uses (everything else is `Config::default()`).
fn base_config(name: &str, network_id: &[u8], network_key: Option<[u8; 32]>, ik: bool) -> Config {
    Config::default()
        .with(|c| {
            c.hello = Hello::named(name).unwrap();
            c.network_key = network_key;
            c.max_frame = 2048;
            c.max_datagram = 1200;
            c.max_message = 4096;
            c.send_queue = 16384;
            c.ik_fast_path = ik;
        })
        .with_network_id(network_id)
        .unwrap()
}

fn config_json(c: &Config) -> Value {
    json!({
        "hello_name": c.hello.name.as_str(),
        "network_id": hx(&c.network_id),
        "network_key": c.network_key.map(|k| hx(&k)),
        "max_frame": c.max_frame,
        "max_datagram": c.max_datagram,
        "max_message": c.max_message,
        "send_queue": c.send_queue,
        "ik_fast_path": c.ik_fast_path,
        "hello_extensions": c.hello.extensions.iter().map(|(t, v)| json!([t, hx(v)])).collect::<Vec<_>>(),
    })
}

/// The Hello the node sends: the configured one with version and limits filled in.
fn hello_bytes(c: &Config) -> Vec<u8> {
    let mut h = c.hello.clone();
    h.version = WIRE_VERSION;
    h.max_frame = c.max_frame as u32;
    h.max_datagram = c.max_datagram as u32;
    h.max_message = c.max_message as u32;
    // The datagram window extension (PROTOCOL.md §8.8): type 0x02, a postcard varint.
    if c.datagram_window > 0 && h.extensions.get(0x02).is_none() {
        let mut v = Vec::new();
        let mut w = c.datagram_window;
        loop {
            let b = (w & 0x7f) as u8;
            w >>= 7;
            v.push(if w > 0 { b | 0x80 } else { b });
            if w == 0 {
                break;
            }
        }
        h = h.with_extension(0x02, &v).unwrap();
    }
    // Batching (PROTOCOL.md §9.2): type 0x03, one byte, the most packets per record.
    if c.max_batch > 1 && h.extensions.get(0x03).is_none() {
        h = h.with_extension(0x03, &[c.max_batch as u8]).unwrap();
    }
    let mut out = [0u8; 1024];
    let n = h.encode(&mut out).unwrap();
    out[..n].to_vec()
}

fn header_json(h: &Header) -> Value {
    match *h {
        Header::Init { version, min_version, pattern, sender, network_tag } => {
            let name = ["XX", "XXpsk3", "IK"].get(usize::from(pattern)).copied().unwrap_or("unknown");
            json!({"type": "Init", "type_byte": 1, "version": version, "min_version": min_version, "pattern": pattern,
                "pattern_name": name, "sender": sender, "network_tag": network_tag})
        }
        Header::Resp { sender, receiver } => {
            json!({"type": "Resp", "type_byte": 2, "sender": sender, "receiver": receiver})
        }
        Header::Final { receiver } => json!({"type": "Final", "type_byte": 3, "receiver": receiver}),
        Header::Transport { phase, receiver, counter } => {
            json!({"type": format!("Transport{phase}"), "type_byte": 4 + phase,
            "phase": phase, "receiver": receiver, "counter": counter})
        }
        Header::Reject { code, version, min_version, receiver } => json!({"type": "Reject", "type_byte": 6,
            "code": code as u8, "code_name": format!("{code:?}"), "version": version, "min_version": min_version,
            "receiver": receiver}),
        Header::Cookie { receiver, nonce, sealed } => json!({"type": "Cookie", "type_byte": 7,
            "receiver": receiver, "nonce": hx(&nonce), "sealed": hx(&sealed)}),
        // `Header` is `#[non_exhaustive]`: a new record type needs its vector shape here.
        other => panic!("no vector form for {other:?}"),
    }
}

fn packet_json(p: &Packet<'_>) -> Value {
    match *p {
        Packet::Ping { seq } => json!({"kind": "Ping", "kind_byte": 1, "seq": seq}),
        Packet::Pong { seq } => json!({"kind": "Pong", "kind_byte": 2, "seq": seq}),
        Packet::Data { kind, msg_id, total, offset, bytes } => {
            json!({"kind": "Data", "kind_byte": kind, "msg_id": msg_id,
            "total": total, "offset": offset, "bytes": hx(bytes)})
        }
        Packet::Error { code, detail } => json!({"kind": "Error", "kind_byte": 4, "code": code.to_u16(),
            "code_name": format!("{code:?}"), "detail": detail}),
        Packet::Close { reason } => json!({"kind": "Close", "kind_byte": 5, "reason": reason.to_u8(),
            "reason_name": format!("{reason:?}")}),
        Packet::Unknown { kind, body } => json!({"kind": "Unknown", "kind_byte": kind, "body": hx(body)}),
        Packet::Credit { limit } => json!({"kind": "Credit", "kind_byte": 7, "limit": limit}),
        Packet::Blocked { at } => json!({"kind": "Blocked", "kind_byte": 8, "at": at}),
        other => panic!("no vector form for {other:?}"),
    }
}

fn frame(record: &[u8]) -> Vec<u8> {
    [&(record.len() as u16).to_be_bytes()[..], record].concat()
}

// =========================================================================== node transcripts

type VNode = HeapNode;
const ROLES: [&str; 2] = ["initiator", "responder"];
const NOW: Instant = Instant::from_millis(1_000);
const ADDR_I: &str = "192.0.2.1:1000";
const ADDR_R: &str = "192.0.2.2:2000";

fn node(c: &Config, secret: [u8; 32], seed: [u8; 32]) -> VNode {
    VNode::with_capacity(c.clone(), Keypair::from_secret(secret), seed, 2).unwrap()
}

/// Splits a transmit into records (a stream transmit holds several frames).
fn records_of(kind: TransportKind, bytes: &[u8]) -> Vec<Vec<u8>> {
    if kind == TransportKind::Datagram {
        return vec![bytes.to_vec()];
    }
    let (mut dec, mut buf, mut at, mut out) = (FrameDecoder::new(), vec![0u8; 65537], 0, Vec::new());
    while at < bytes.len() {
        match dec.push(&mut buf, &bytes[at..], 65535).unwrap() {
            FrameProgress::Frame { consumed, len } => {
                out.push(buf[2..2 + len].to_vec());
                at += consumed;
            }
            FrameProgress::NeedMore { .. } => panic!("a transmit ended mid-frame"),
        }
    }
    out
}

/// Two nodes joined back to back, run in rounds: the initiator's whole output is
/// delivered, then the responder's, until both are quiet. Records every record sent.
struct Pair {
    n: [VNode; 2],
    kind: TransportKind,
    conns: [Option<meshlink_core::ConnId>; 2],
    connected: [bool; 2],
    got: Vec<(usize, Vec<u8>)>,
    /// Every record in order: (0 = initiator / 1 = responder, bytes).
    out: Vec<(usize, Vec<u8>)>,
}

impl Pair {
    #[allow(clippy::needless_range_loop)] // `side` indexes three parallel arrays
    fn round(&mut self) -> bool {
        let addr: [SocketAddr; 2] = [ADDR_I.parse().unwrap(), ADDR_R.parse().unwrap()];
        let mut moved = false;
        for side in 0..2 {
            let mut buf = vec![0u8; 8192];
            while let Some(t) = self.n[side].poll_transmit(NOW, &mut buf) {
                moved = true;
                let bytes = buf[..t.len].to_vec();
                self.out.extend(records_of(self.kind, &bytes).into_iter().map(|r| (side, r)));
                let to = 1 - side;
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let used = match self.kind {
                        TransportKind::Datagram => {
                            self.n[to].handle_datagram(NOW, addr[side], rest).map(|_| rest.len())
                        }
                        TransportKind::Stream => self.n[to].handle_stream(self.conns[to].unwrap(), NOW, rest),
                    };
                    while let Some(e) = self.n[to].poll_event() {
                        match e {
                            Event::Connected { .. } => self.connected[to] = true,
                            Event::Message { data, .. } => self.got.push((to, data.to_vec())),
                            Event::QualityUpdate { .. } => {}
                            e => panic!("unexpected event {e:?}"),
                        }
                    }
                    rest = &rest[used.unwrap()..];
                }
            }
        }
        moved
    }
}

/// Runs the handshake, then sends `messages` (sender 0 = initiator), in rounds.
fn transcript(
    kind: TransportKind,
    cfg: [&Config; 2],
    secrets: [[u8; 32]; 2],
    seeds: [[u8; 32]; 2],
    expect_key: bool,
    messages: &[(usize, &[u8])],
) -> Vec<(usize, Vec<u8>)> {
    let mut n = [node(cfg[0], secrets[0], seeds[0]), node(cfg[1], secrets[1], seeds[1])];
    let ids = [n[0].peer_id(), n[1].peer_id()];
    let c0 = n[0].connect(NOW, kind, ADDR_R.parse().unwrap(), expect_key.then_some(ids[1])).unwrap();
    let c1 = (kind == TransportKind::Stream).then(|| n[1].accept(NOW, ADDR_I.parse().unwrap()).unwrap());
    let mut p = Pair { n, kind, conns: [Some(c0), c1], connected: [false; 2], got: Vec::new(), out: Vec::new() };
    while p.round() {}
    assert_eq!(p.connected, [true, true], "the handshake did not complete");
    for (from, m) in messages {
        p.n[*from].send(NOW, &ids[1 - from], m).unwrap();
        while p.round() {}
    }
    let want: Vec<(usize, Vec<u8>)> = messages.iter().map(|(f, m)| (1 - f, m.to_vec())).collect();
    assert_eq!(p.got, want, "messages did not arrive");
    p.out
}

// =========================================================================== transcript hasher

type HmacBlake2s = SimpleHmac<Blake2s256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacBlake2s as Mac>::new_from_slice(key).unwrap();
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().into()
}

fn hkdf(ck: &[u8; 32], ikm: &[u8]) -> [[u8; 32]; 3] {
    let t = hmac(ck, &[ikm]);
    let o1 = hmac(&t, &[&[1]]);
    let o2 = hmac(&t, &[&o1, &[2]]);
    let o3 = hmac(&t, &[&o2, &[3]]);
    [o1, o2, o3]
}

fn blake2s(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    parts.iter().for_each(|p| h.update(p));
    h.finalize().into()
}

fn dh(secret: [u8; 32], public: &[u8]) -> [u8; 32] {
    let p: [u8; 32] = public.try_into().unwrap();
    *StaticSecret::from(secret).diffie_hellman(&PublicKey::from(p)).as_bytes()
}

fn public(secret: [u8; 32]) -> [u8; 32] {
    *PublicKey::from(&StaticSecret::from(secret)).as_bytes()
}

/// Noise's (h, ck) over recorded handshake messages, knowing every secret: returns the
/// handshake hash and the split keys (initiator-to-responder, responder-to-initiator).
/// Nothing is decrypted: h absorbs ciphertexts, ck only needs the DH results.
fn transcript_hash(
    pattern: &str,
    prologue: &[u8],
    s: [[u8; 32]; 2],
    e: [[u8; 32]; 2],
    psk: Option<[u8; 32]>,
    msgs: &[&[u8]],
) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let name = format!("Noise_{pattern}_25519_ChaChaPoly_BLAKE2s");
    let mut h = if name.len() <= 32 {
        let mut h = [0u8; 32];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h
    } else {
        blake2s(&[name.as_bytes()])
    };
    let mut ck = h;
    let mut has_key = false;
    let mix_hash = |h: &mut [u8; 32], d: &[u8]| *h = blake2s(&[&h[..], d]);
    mix_hash(&mut h, prologue);
    let tokens: &[&[&str]] = match pattern {
        "XX" => &[&["e"], &["e", "ee", "s", "es"], &["s", "se"]],
        "XXpsk3" => &[&["e"], &["e", "ee", "s", "es"], &["s", "se", "psk"]],
        _ => {
            mix_hash(&mut h, &public(s[1]));
            &[&["e", "es", "s", "ss"], &["e", "ee", "se"]]
        }
    };
    for (m, toks) in msgs.iter().zip(tokens) {
        let mut at = 0;
        for t in *toks {
            let k = match *t {
                "e" => {
                    mix_hash(&mut h, &m[at..at + 32]);
                    at += 32;
                    psk.is_some().then(|| m[at - 32..at].to_vec())
                }
                "s" => {
                    let len = 32 + if has_key { TAG_LEN } else { 0 };
                    mix_hash(&mut h, &m[at..at + len]);
                    at += len;
                    None
                }
                "ee" => Some(dh(e[0], &public(e[1])).to_vec()),
                "es" => Some(dh(e[0], &public(s[1])).to_vec()),
                "se" => Some(dh(s[0], &public(e[1])).to_vec()),
                "ss" => Some(dh(s[0], &public(s[1])).to_vec()),
                _ => {
                    // psk: MixKeyAndHash
                    let [c, th, _] = hkdf(&ck, &psk.unwrap());
                    ck = c;
                    mix_hash(&mut h, &th);
                    has_key = true;
                    None
                }
            };
            if let Some(ikm) = k {
                ck = hkdf(&ck, &ikm)[0];
                has_key = true;
            }
        }
        mix_hash(&mut h, &m[at..]);
    }
    let [k1, k2, _] = hkdf(&ck, &[]);
    (h, k1, k2)
}

/// The same handshake through snow: its messages and handshake hash.
fn snow_transcript(
    pattern: &str,
    prologue: &[u8],
    s: [[u8; 32]; 2],
    e: [[u8; 32]; 2],
    psk: Option<[u8; 32]>,
    payloads: &[&[u8]],
) -> (Vec<Vec<u8>>, Vec<u8>) {
    let params: snow::params::NoiseParams = format!("Noise_{pattern}_25519_ChaChaPoly_BLAKE2s").parse().unwrap();
    let rs = public(s[1]);
    let build = |i: usize| {
        let mut b = snow::Builder::new(params.clone())
            .local_private_key(&s[i])
            .prologue(prologue)
            .fixed_ephemeral_key_for_testing_only(&e[i]);
        if let Some(k) = &psk {
            b = b.psk(3, k);
        }
        if i == 0 && pattern == "IK" {
            b = b.remote_public_key(&rs);
        }
        if i == 0 {
            b.build_initiator().unwrap()
        } else {
            b.build_responder().unwrap()
        }
    };
    let mut hs = [build(0), build(1)];
    let mut msgs = Vec::new();
    for (k, p) in payloads.iter().enumerate() {
        let (w, r) = (k % 2, 1 - k % 2);
        let mut m = vec![0u8; 2048];
        let n = hs[w].write_message(p, &mut m).unwrap();
        let mut pl = vec![0u8; 2048];
        hs[r].read_message(&m[..n], &mut pl).unwrap();
        msgs.push(m[..n].to_vec());
    }
    assert_eq!(hs[0].get_handshake_hash(), hs[1].get_handshake_hash());
    (msgs, hs[0].get_handshake_hash().to_vec())
}

// =========================================================================== handshake.json

struct Spec {
    name: &'static str,
    pattern: &'static str,
    network_id: &'static [u8],
    network_key: Option<[u8; 32]>,
    expect_key: bool,
    seeds: [[u8; 32]; 2],
}

/// What a fresh node draws from ChaCha20Rng(seed) for its first session (slot 0): the
/// session index (next_u32, high half kept, low half = slot), then the
/// ephemeral secret (32 bytes). Stated in the vector and checked against the records.
fn first_draws(seed: [u8; 32]) -> (u32, [u8; 32]) {
    let mut rng = ChaCha20Rng::from_seed(seed);
    let index = rng.next_u32() & 0xffff_0000;
    let mut e = [0u8; 32];
    rng.fill_bytes(&mut e);
    (index, e)
}

/// The length of Noise message 1 for `pattern` with an empty payload: e, plus the
/// encrypted s for IK, plus the payload's tag once a key exists (XXpsk3 mixes e into the
/// key; IK has es).
fn init_overhead(pattern: &str) -> usize {
    match pattern {
        "XX" => 32,
        "XXpsk3" => 32 + TAG_LEN,
        _ => 32 + (32 + TAG_LEN) + TAG_LEN,
    }
}

/// The plaintext payload of Noise message 1 for `pattern` over `kind` (PROTOCOL.md
/// §Handshake): IK carries the initiator's Hello, XX and XXpsk3 nothing; on datagrams it
/// is then zero-padded so that the Init record reaches INIT_MIN_DATAGRAM bytes (never
/// truncated). Restated here from the constants, not read back from the node, so the two
/// can disagree.
fn init_payload(pattern: &str, kind: TransportKind, initiator_hello: &[u8]) -> Vec<u8> {
    let mut p = if pattern == "IK" { initiator_hello.to_vec() } else { Vec::new() };
    if kind == TransportKind::Datagram {
        let min = INIT_MIN_DATAGRAM - INIT_HEADER_LEN - init_overhead(pattern);
        p.resize(p.len().max(min), 0);
    }
    p
}

/// What both transports of one vector share: the secrets and the derived inputs.
struct Shared<'a> {
    sp: &'a Spec,
    prologue: &'a [u8],
    secrets: [[u8; 32]; 2],
    eph: [[u8; 32]; 2],
    psk: Option<[u8; 32]>,
    hellos: &'a [Vec<u8>; 2],
}

/// One transport's record list for a vector, cross-checked against the transcript hasher
/// and snow. Returns the JSON and the derived [handshake hash, i2r key, r2i key].
fn transport_json(sh: &Shared<'_>, kind: TransportKind, list: &[(usize, Vec<u8>)]) -> (Value, [[u8; 32]; 3]) {
    let Shared { sp, prologue, secrets, eph, psk, hellos } = *sh;
    let what = format!("{} over {kind:?}", sp.name);
    let hs_count = if sp.pattern == "IK" { 2 } else { 3 };
    // A datagram Init ends with its mac tail (§5.12), which is not part of the Noise message.
    let tail = |i: usize| if i == 0 && kind == TransportKind::Datagram { MACS_LEN } else { 0 };
    let bodies: Vec<&[u8]> = list[..hs_count]
        .iter()
        .enumerate()
        .map(|(i, (_, r))| &r[Header::parse(r).unwrap().len()..r.len() - tail(i)])
        .collect();
    let payloads: Vec<Vec<u8>> = match sp.pattern {
        "IK" => vec![init_payload(sp.pattern, kind, &hellos[0]), hellos[1].clone()],
        _ => vec![init_payload(sp.pattern, kind, &hellos[0]), hellos[1].clone(), hellos[0].clone()],
    };
    let pl: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    let (hash, k_i2r, k_r2i) = transcript_hash(sp.pattern, prologue, secrets, eph, psk, &bodies);
    let (snow_msgs, snow_hash) = snow_transcript(sp.pattern, prologue, secrets, eph, psk, &pl);
    assert_eq!(snow_hash, hash.to_vec(), "{what}: snow disagrees on the handshake hash");
    let ours: Vec<Vec<u8>> = bodies.iter().map(|b| b.to_vec()).collect();
    assert_eq!(snow_msgs, ours, "{what}: snow disagrees on the messages");
    for i in 0..2 {
        assert_eq!(&bodies[i][..32], &public(eph[i])[..], "{what}: ephemeral draw order changed");
    }
    let keys = [CipherState::new(k_i2r), CipherState::new(k_r2i)];
    let records: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, (from, rec))| {
            let header = Header::parse(rec).unwrap();
            let body = &rec[header.len()..];
            let mut v = json!({"from": ROLES[*from], "header": header_json(&header), "record": hx(rec)});
            if kind == TransportKind::Stream {
                v["frame"] = hx(&frame(rec)).into();
            }
            if let Header::Transport { counter, .. } = header {
                let mut pt = body.to_vec();
                let n = keys[*from].decrypt_at(counter, &rec[..16], &mut pt, body.len()).expect("derived key opens it");
                v["plaintext"] = hx(&pt[..n]).into();
                v["packet"] = packet_json(&Packet::decode(&pt[..n]).unwrap());
            } else {
                assert!(i < hs_count);
                v["noise_message"] = hx(&body[..body.len() - tail(i)]).into();
                v["payload"] = hx(&payloads[i]).into();
                if tail(i) > 0 {
                    let macs = &rec[rec.len() - MACS_LEN..];
                    check_macs(&rec[..rec.len() - MACS_LEN], macs, sp.network_id);
                    v["macs"] = hx(macs).into();
                }
            }
            v
        })
        .collect();
    (json!({"handshake_hash": hx(&hash), "records": records}), [hash, k_i2r, k_r2i])
}

fn handshake_vector(sp: &Spec) -> Value {
    let names = ["alice", "bob"];
    let secrets = [[0xa1u8; 32], [0xb0u8; 32]];
    let mut cfgs = names.map(|n| base_config(n, sp.network_id, sp.network_key, true));
    if sp.pattern == "IK" {
        // An extension in the IK Init's Hello, which the datagram padding then follows
        // (PROTOCOL.md §8.6): the tail ends where the zeros begin.
        cfgs[0].hello = cfgs[0].hello.clone().with_extension(0x80, b"ext").unwrap();
    }
    let messages: [(usize, &[u8]); 2] = [(0, b"hello, bob"), (1, b"hello, alice")];
    let run = |kind| transcript(kind, [&cfgs[0], &cfgs[1]], secrets, sp.seeds, sp.expect_key, &messages);
    let (dgram, strm) = (run(TransportKind::Datagram), run(TransportKind::Stream));

    let draws = sp.seeds.map(first_draws);
    let eph = [draws[0].1, draws[1].1];
    let hellos = [hello_bytes(&cfgs[0]), hello_bytes(&cfgs[1])];
    let mut prologue = b"meshlink".to_vec();
    prologue.extend_from_slice(&[WIRE_VERSION, WIRE_VERSION, sp.network_id.len() as u8]);
    prologue.extend_from_slice(sp.network_id);
    let psk = sp.network_key.map(|k| blake2s(&[b"meshlink psk", &k, sp.network_id]));
    let tag = u32::from_le_bytes(blake2s(&[b"meshlink network tag", sp.network_id])[..4].try_into().unwrap());

    // Only message 1's payload depends on the transport (datagram padding), and Noise's ck
    // never absorbs a payload: so the transport keys and transport records are the same on
    // both transports, while the handshake records and hash differ. Every vector's
    // initiator Hello is short enough that its datagram Init is padded (IK included), so
    // the padding is pinned for all three patterns.
    let hs_count = if sp.pattern == "IK" { 2 } else { 3 };
    assert_eq!(dgram[hs_count..], strm[hs_count..], "{}: transport records differ between transports", sp.name);
    let unpadded =
        INIT_HEADER_LEN + init_overhead(sp.pattern) + init_payload(sp.pattern, TransportKind::Stream, &hellos[0]).len();
    assert!(unpadded < INIT_MIN_DATAGRAM, "{}: this vector would not exercise the padding", sp.name);
    assert_eq!(dgram[0].1.len(), INIT_MIN_DATAGRAM + MACS_LEN, "{}: datagram Init not padded", sp.name);
    assert_eq!(strm[0].1.len(), unpadded, "{}: stream Init padded", sp.name);
    assert_ne!(dgram[..hs_count], strm[..hs_count], "{}: handshake records same on both transports", sp.name);
    let sh = Shared { sp, prologue: &prologue, secrets, eph, psk, hellos: &hellos };
    let (dj, dk) = transport_json(&sh, TransportKind::Datagram, &dgram);
    let (sj, sk) = transport_json(&sh, TransportKind::Stream, &strm);
    assert_eq!(dk[1..], sk[1..], "{}: transport keys differ between transports", sp.name);
    assert_ne!(dk[0], sk[0], "{}: handshake hashes same on both transports", sp.name);
    let (k_i2r, k_r2i) = (dk[1], dk[2]);

    let pattern_id = ["XX", "XXpsk3", "IK"].iter().position(|x| *x == sp.pattern).unwrap() as u8;
    assert_eq!(dgram[0].1[..4], [1, WIRE_VERSION, pattern_id, WIRE_VERSION], "{}: not the expected Init", sp.name);
    assert_eq!(dgram[0].1[8..12], tag.to_le_bytes(), "{}: network tag formula", sp.name);
    let side = |i: usize| {
        json!({"name": names[i], "config": config_json(&cfgs[i]), "seed": hx(&sp.seeds[i]), "static_secret": hx(&secrets[i]),
            "static_public": hx(&public(secrets[i])), "ephemeral_secret": hx(&eph[i]), "ephemeral_public": hx(&public(eph[i])),
            "index": draws[i].0, "hello": hx(&hellos[i])})
    };
    json!({
        "name": sp.name,
        "section": "PROTOCOL.md §Handshake",
        "pattern": sp.pattern,
        "protocol_name": format!("Noise_{}_25519_ChaChaPoly_BLAKE2s", sp.pattern),
        "connect_with_expected_key": sp.expect_key,
        "now_us": NOW.as_micros(),
        "initiator_addr": ADDR_I, "responder_addr": ADDR_R,
        "prologue": hx(&prologue),
        "network_tag": tag,
        "psk": psk.map(|k| hx(&k)),
        "initiator": side(0),
        "responder": side(1),
        "messages": messages.iter().map(|(f, m)| json!({"from": ROLES[*f], "data": hx(m)})).collect::<Vec<_>>(),
        "transport_keys": {"initiator_to_responder": hx(&k_i2r), "responder_to_initiator": hx(&k_r2i)},
        "datagram": dj,
        "stream": sj,
    })
}

fn handshake_file() -> Value {
    // The padding rule, restated from its definition and checked against the node's constants.
    let record_max = INIT_HEADER_LEN + 32 + (32 + TAG_LEN) + HELLO_MAX_LEN + TAG_LEN;
    assert_eq!(record_max, HANDSHAKE_RECORD_MAX);
    assert_eq!(INIT_MIN_DATAGRAM, record_max.div_ceil(AMPLIFICATION_FACTOR));
    let specs = [
        Spec {
            name: "xx",
            pattern: "XX",
            network_id: b"meshlink",
            network_key: None,
            expect_key: false,
            seeds: [[0x11; 32], [0x22; 32]],
        },
        Spec {
            name: "xxpsk3-network-key",
            pattern: "XXpsk3",
            network_id: b"meshlink-test",
            network_key: Some([0x6b; 32]),
            expect_key: false,
            seeds: [[0x33; 32], [0x44; 32]],
        },
        Spec {
            name: "ik-known-responder",
            pattern: "IK",
            network_id: b"meshlink",
            network_key: None,
            expect_key: true,
            seeds: [[0x55; 32], [0x66; 32]],
        },
    ];
    json!({
        "description": "meshlink handshake transcripts. Two fresh Node<_, 2>s (config: Config::default() plus the fields in `initiator.config`/`responder.config`, hello = Hello::named(hello_name) plus each [type, value] of hello_extensions via Hello::with_extension; the IK vector's initiator carries one, so its message-1 payload shows the extension tail, then on datagrams the zero padding that ends it), static keys Keypair::from_secret(static_secret), node seeds `seed`, time fixed at now_us. The initiator calls connect(now, kind, responder_addr, expected) with expected = the responder's key iff connect_with_expected_key (which selects IK); on a stream the responder calls accept(now, initiator_addr) first. Then rounds until both are quiet: all of the initiator's poll_transmit output is delivered (handle_datagram from initiator_addr, or handle_stream), events drained, then the same for the responder. After both report Connected, each entry of `messages` is sent with send() and rounds run again. Each vector is run once per transport: `datagram.records` and `stream.records` list every record in order, as sent over that transport; each entry has the record bytes `record` (one UDP datagram on datagrams) and, on streams, `frame` = its 2-byte big-endian length || record (several frames may share one stream transmit). The lists differ only in the handshake records, because message 1's payload depends on the transport (anti-amplification padding, see `constants`): on streams it is the initiator's encoded Hello in IK and empty in XX and XXpsk3; on datagrams the same followed by zero bytes, so that the payload is max(its length, init_min_datagram - 12 - overhead) bytes, where overhead = the Noise message 1 length with an empty payload (XX 32 = e; XXpsk3 32 + 16, its payload being encrypted; IK 32 + 48 + 16 = e, encrypted s, tag), so that the datagram Init record is at least init_min_datagram bytes (exactly, in every vector here, IK included). An IK responder decodes the Hello and requires every byte after it to be zero. Streams are never padded. A responder that has not verified a datagram peer's address sends it at most amplification_factor times the bytes received from it; init_min_datagram = ceil(handshake_record_max / amplification_factor) and handshake_record_max = 12 + 32 + 48 + hello_max_len + 16 (Init header, e, encrypted s, encrypted largest Hello). Each list has its own `handshake_hash` (h absorbs the payload); the transport keys (ck never absorbs a payload) and hence every transport record are the same on both transports. Deterministic ephemerals: a node's ChaCha20Rng(seed) gives, for its first session, next_u32 -> index = (x & 0xffff0000) | slot 0, then 32 bytes -> ephemeral_secret. prologue = 'meshlink' || max_version || min_version || len(network_id) || network_id (the initiator's version range, as in its Init bytes 1 and 3; both are 2 here); network_tag = first 4 bytes (LE u32) of BLAKE2s('meshlink network tag' || network_id); psk = BLAKE2s('meshlink psk' || network_key || network_id). A datagram Init ends with 32 more bytes after its Noise message, `macs` = mac1 || mac2 (PROTOCOL.md §5.12; see cookie.json): mac1 = keyed BLAKE2s-128 under BLAKE2s('meshlink mac1' || network_id) of the record before it, mac2 = 16 zero bytes (no cookie: no responder here is under load). Handshake records carry the Noise message (`noise_message`) whose plaintext payload is `payload` (message 1 as above; messages 2 and 3 carry the sender's encoded Hello). Transport records decrypt under transport_keys (ChaCha20-Poly1305, nonce = 4 zero bytes || counter LE, AD = the 16-byte header) to `plaintext`, decoded in `packet`. All byte strings are lowercase hex; numbers are plain JSON integers below 2^53.",
        "constants": {"hello_max_len": HELLO_MAX_LEN, "handshake_record_max": HANDSHAKE_RECORD_MAX,
            "amplification_factor": AMPLIFICATION_FACTOR, "init_min_datagram": INIT_MIN_DATAGRAM},
        "vectors": specs.iter().map(handshake_vector).collect::<Vec<_>>(),
    })
}

// =========================================================================== records.json

const KEY: [u8; 32] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12,
    0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
const RECEIVER: u32 = 0x9abc_0001;

/// Noise REKEY computed directly: the first 32 bytes of ENCRYPT(k, 2^64-1, "", 32 zeros).
fn rekeyed(k: [u8; 32]) -> [u8; 32] {
    let mut z = [0u8; 32];
    let mut nonce = [0xffu8; 12];
    nonce[..4].fill(0);
    let aead = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&k));
    aead.encrypt_in_place_detached(chacha20poly1305::Nonce::from_slice(&nonce), &[], &mut z).unwrap();
    z
}

fn sealed(name: &str, section: &str, phase: u8, counter: u64, pkt: Packet<'_>, extra: Value) -> Value {
    let phase_key = if phase == 1 { rekeyed(KEY) } else { KEY };
    let mut pt = [0u8; 4096];
    let n = pkt.encode(&mut pt).unwrap();
    let header = Header::Transport { phase, receiver: RECEIVER, counter };
    let mut rec = vec![0u8; 16 + n + TAG_LEN];
    header.encode(&mut rec).unwrap();
    rec[16..16 + n].copy_from_slice(&pt[..n]);
    let (hdr, body) = rec.split_at_mut(16);
    CipherState::new(phase_key).encrypt_at(counter, hdr, body, n).unwrap();
    let mut v = json!({"name": name, "section": section, "header": header_json(&header), "key": hx(&KEY), "rekeys": phase,
        "phase_key": hx(&phase_key), "packet": packet_json(&pkt), "plaintext": hx(&pt[..n]), "datagram": hx(&rec), "frame": hx(&frame(&rec))});
    if let Value::Object(m) = extra {
        v.as_object_mut().unwrap().extend(m);
    }
    v
}

fn plain(name: &str, header: Header, body: &[u8]) -> Value {
    let mut rec = vec![0u8; header.len()];
    header.encode(&mut rec).unwrap();
    rec.extend_from_slice(body);
    json!({"name": name, "section": "PROTOCOL.md §Records", "header": header_json(&header), "body": hx(body), "datagram": hx(&rec), "frame": hx(&frame(&rec))})
}

/// A batched record (PROTOCOL.md §9.2, §13.8): kind 0x09, then each packet behind its
/// varint length, sealed as one transport record.
fn batching_file() -> Value {
    let pkts = [
        Packet::Pong { seq: 5 },
        Packet::Data { kind: 3, msg_id: 0, total: 2, offset: 0, bytes: b"hi" },
        Packet::Data { kind: 3, msg_id: 1, total: 2, offset: 0, bytes: b"yo" },
    ];
    let mut pt = vec![meshlink_core::wire::kind::BATCH];
    let mut inner = vec![];
    for p in &pkts {
        let mut b = [0u8; 64];
        let n = p.encode(&mut b).unwrap();
        assert!(n < 128, "one-byte lengths in this example");
        pt.push(n as u8);
        pt.extend_from_slice(&b[..n]);
        inner.push(json!({"packet": packet_json(p), "bytes": hx(&b[..n])}));
    }
    let counter = 4;
    let header = Header::Transport { phase: 0, receiver: RECEIVER, counter };
    let mut rec = vec![0u8; 16 + pt.len() + TAG_LEN];
    header.encode(&mut rec).unwrap();
    rec[16..16 + pt.len()].copy_from_slice(&pt);
    let (hdr, body) = rec.split_at_mut(16);
    CipherState::new(KEY).encrypt_at(counter, hdr, body, pt.len()).unwrap();
    json!({
        "description": "A batched transport record (PROTOCOL.md §9.2, printed in §13.8): plaintext = 0x09 || for each packet: its length (postcard varint) || the packet. Sealed as records.json's sealed vectors: ChaCha20-Poly1305 under `key`, nonce = 4 zero bytes || counter LE, AD = the 16-byte Transport header.",
        "vectors": [{"name": "pong-and-two-messages", "section": "PROTOCOL.md §9.2", "key": hx(&KEY),
            "header": header_json(&header), "packets": inner, "plaintext": hx(&pt), "datagram": hx(&rec),
            "frame": hx(&frame(&rec))}]
    })
}

fn records_file() -> Value {
    let body = |n: usize, b: u8| (0..n).map(|i| b.wrapping_add(i as u8)).collect::<Vec<u8>>();
    let msg: Vec<u8> = (0..2500u32).map(|i| (i * 31 % 251) as u8).collect();
    let pk = "PROTOCOL.md §Packets";
    let mut v = vec![
        plain(
            "init-xx",
            Header::Init {
                version: WIRE_VERSION,
                min_version: WIRE_VERSION,
                pattern: 0,
                sender: 0x1234_0001,
                network_tag: 0xdead_beef,
            },
            &body(32, 0x40),
        ),
        // The same Init as sent on datagrams: zero padding up to INIT_MIN_DATAGRAM bytes.
        plain(
            "init-xx-datagram-padded",
            Header::Init {
                version: WIRE_VERSION,
                min_version: WIRE_VERSION,
                pattern: 0,
                sender: 0x1234_0001,
                network_tag: 0xdead_beef,
            },
            &{
                // Then its mac tail (§5.12): mac1 under network id "meshlink", mac2 zeros.
                let mut r = [
                    &[1u8, WIRE_VERSION, 0, WIRE_VERSION, 0x01, 0x00, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde][..],
                    &body(32, 0x40),
                    &vec![0; INIT_MIN_DATAGRAM - INIT_HEADER_LEN - 32 + MACS_LEN],
                ]
                .concat();
                cookie::seal_init(&cookie::mac1_key(b"meshlink"), None, &mut r);
                r[INIT_HEADER_LEN..].to_vec()
            },
        ),
        // A Cookie reply (§5.12): its whole 64 bytes are the header, no body.
        plain(
            "cookie",
            Header::Cookie {
                receiver: 0x1234_0001,
                nonce: core::array::from_fn(|i| 0xa0 + i as u8),
                sealed: [0x5c; 32],
            },
            b"",
        ),
        plain(
            "init-ik",
            Header::Init {
                version: WIRE_VERSION,
                min_version: WIRE_VERSION,
                pattern: 2,
                sender: 0x1234_0002,
                network_tag: 0x0102_0304,
            },
            &body(96, 0x50),
        ),
        // An initiator that speaks versions 2 to 5 (bytes 1 and 3), and a responder's refusal
        // carrying its own range 3..=4 (bytes 2 and 3), PROTOCOL.md §3.
        plain(
            "init-xx-version-range",
            Header::Init { version: 5, min_version: 2, pattern: 0, sender: 0x1234_0006, network_tag: 0xdead_beef },
            &body(32, 0x40),
        ),
        plain(
            "reject-version-range",
            Header::Reject { code: RejectCode::Version, version: 4, min_version: 3, receiver: 0x1234_0006 },
            b"",
        ),
        plain("resp", Header::Resp { sender: 0x5678_0003, receiver: 0x1234_0001 }, &body(96, 0x60)),
        plain("final", Header::Final { receiver: 0x5678_0003 }, &body(64, 0x70)),
        plain(
            "reject-busy",
            Header::Reject {
                code: RejectCode::Busy,
                version: WIRE_VERSION,
                min_version: WIRE_VERSION,
                receiver: 0x1234_0001,
            },
            b"",
        ),
        plain(
            "reject-version",
            Header::Reject {
                code: RejectCode::Version,
                version: WIRE_VERSION,
                min_version: WIRE_VERSION,
                receiver: 0x1234_0004,
            },
            b"",
        ),
        plain(
            "reject-auth",
            Header::Reject {
                code: RejectCode::Auth,
                version: WIRE_VERSION,
                min_version: WIRE_VERSION,
                receiver: 0x1234_0005,
            },
            b"",
        ),
        sealed("ping", pk, 0, 0, Packet::Ping { seq: 0 }, json!({})),
        sealed("pong", pk, 0, 1, Packet::Pong { seq: 300 }, json!({})),
        sealed("ping-large-seq-and-counter", pk, 0, (1 << 40) + 17, Packet::Ping { seq: u32::MAX }, json!({})),
        sealed(
            "data-empty-message",
            pk,
            0,
            2,
            Packet::Data { kind: 3, msg_id: 0, total: 0, offset: 0, bytes: b"" },
            json!({}),
        ),
        sealed(
            "data-single-chunk",
            pk,
            0,
            3,
            Packet::Data { kind: 3, msg_id: 1, total: 11, offset: 0, bytes: b"hello world" },
            json!({}),
        ),
        sealed(
            "error-too-large",
            pk,
            0,
            7,
            Packet::Error { code: ErrorCode::TooLarge, detail: "message of 5000 bytes exceeds 4096" },
            json!({}),
        ),
        sealed("error-unknown-code", pk, 0, 8, Packet::Error { code: ErrorCode::Other(0x1234), detail: "" }, json!({})),
        sealed("close-normal", pk, 0, 9, Packet::Close { reason: CloseReason::Normal }, json!({})),
        sealed("close-threat", pk, 0, 10, Packet::Close { reason: CloseReason::Threat }, json!({})),
        sealed("close-unknown-reason", pk, 0, 11, Packet::Close { reason: CloseReason::Other(200) }, json!({})),
        sealed(
            "application-kind-0x40",
            "PROTOCOL.md §8.2",
            0,
            12,
            Packet::Data { kind: 0x40, msg_id: 2, total: 11, offset: 0, bytes: b"app-defined" },
            json!({}),
        ),
        sealed("unknown-kind-reserved", pk, 0, 13, Packet::Unknown { kind: 0xff, body: b"" }, json!({})),
        sealed(
            "unknown-kind-messaging",
            "PROTOCOL.md §8.2",
            0,
            15,
            // 0x17: kept unimplemented in the request/response block (0x10..=0x13 are
            // implemented with the `messaging` feature).
            Packet::Unknown { kind: 0x17, body: b"" },
            json!({}),
        ),
        sealed("ping-key-phase-1", "PROTOCOL.md §Rekey", 1, 14, Packet::Ping { seq: 5 }, json!({})),
        sealed("credit-1000", "PROTOCOL.md §8.8", 0, 16, Packet::Credit { limit: 1000 }, json!({})),
        sealed("blocked-64", "PROTOCOL.md §8.8", 0, 17, Packet::Blocked { at: 64 }, json!({})),
    ];
    // A 2500-byte message in three chunks, as a 1200-byte datagram path would carry it.
    for (i, (off, len)) in [(0usize, 1000usize), (1000, 1000), (2000, 500)].into_iter().enumerate() {
        let pkt = Packet::Data { kind: 3, msg_id: 7, total: 2500, offset: off as u32, bytes: &msg[off..off + len] };
        v.push(sealed(
            &format!("data-multi-chunk-{}-of-3", i + 1),
            pk,
            0,
            4 + i as u64,
            pkt,
            json!({"message": hx(&msg)}),
        ));
    }
    json!({
        "description": "meshlink records of every type and packets of every kind. Handshake and Reject records: `header` decoded, `body` the bytes after the header. Transport records: plaintext = the packet (kind byte + postcard body), sealed with ChaCha20-Poly1305 under phase_key with nonce = 4 zero bytes || counter (u64 LE) and AD = the 16-byte header; phase_key = `key` after `rekeys` Noise REKEYs (k' = first 32 bytes of ENCRYPT(k, 2^64-1, '', 32 zero bytes)). `datagram` is the record as one UDP datagram; `frame` the same with a 2-byte big-endian length prefix for streams. Multi-chunk Data vectors also give the whole `message`. `init-xx` is an XX Init as sent on streams; `init-xx-datagram-padded` the same as sent on datagrams, its Noise payload zero-padded so that the record is init_min_datagram (279) bytes (see handshake.json), then its 32-byte mac1 || mac2 tail (PROTOCOL.md §5.12: mac1 under network id 'meshlink', mac2 zeros; the body holds noise message, padding and tail). `cookie` is a Cookie reply record (type 0x07, 64 bytes, all header; see cookie.json for a genuine one). `init-ik` shows an IK Init's layout with a stand-in body; on datagrams an IK Init is padded to 279 bytes too, but inside its encrypted payload, so the zeros are not visible (see handshake.json). Byte strings are lowercase hex; numbers are plain JSON integers below 2^53.",
        "vectors": v,
    })
}

// =========================================================================== malformed.json

fn malformed_node_config() -> Config {
    base_config("victim", b"meshlink", None, true)
}
const VICTIM_SECRET: [u8; 32] = [0x77; 32];
const VICTIM_SEED: [u8; 32] = [0x88; 32];
const HOSTILE_ADDR: &str = "198.51.100.7:6000";

/// Runs one malformed input at its layer; the error's Debug and Display strings.
fn run_malformed(layer: &str, input: &[u8], extra: &Value) -> (String, String) {
    fn s<E: std::fmt::Debug + std::fmt::Display>(e: E) -> (String, String) {
        (format!("{e:?}"), e.to_string())
    }
    match layer {
        "record_header" => s(Header::parse(input).unwrap_err()),
        "frame" => {
            let max = extra["max_frame"].as_u64().unwrap() as usize;
            let mut buf = vec![0u8; 2 + max];
            s(FrameDecoder::new().push(&mut buf, input, max).unwrap_err())
        }
        "packet" => s(Packet::decode(input).unwrap_err()),
        "hello" => s(Hello::decode(input).unwrap_err()),
        "transport_open" => {
            let key: [u8; 32] = hex::decode(extra["key"].as_str().unwrap()).unwrap().try_into().unwrap();
            let Header::Transport { counter, .. } = Header::parse(input).unwrap() else {
                panic!("not a transport record")
            };
            let mut body = input[16..].to_vec();
            let n = body.len();
            s(CipherState::new(key).decrypt_at(counter, &input[..16], &mut body, n).unwrap_err())
        }
        "node_datagram" | "node_stream" => {
            let mut n = node(&malformed_node_config(), VICTIM_SECRET, VICTIM_SEED);
            let from: SocketAddr = HOSTILE_ADDR.parse().unwrap();
            let r: Result<(), Error> = if layer == "node_datagram" {
                n.handle_datagram(NOW, from, input)
            } else {
                let c = n.accept(NOW, from).unwrap();
                n.handle_stream(c, NOW, input).map(|_| ())
            };
            s(r.unwrap_err())
        }
        l => panic!("unknown layer {l}"),
    }
}

fn malformed_file() -> Value {
    let id = b"meshlink";
    let tag = blake2s(&[b"meshlink network tag", id])[..4].to_vec();
    let init = |version: u8, pattern: u8, tag: &[u8], body: &[u8]| {
        [&[1, version, pattern, 0, 4, 3, 2, 1][..], tag, body].concat()
    };
    // The same, zero-padded to INIT_MIN_DATAGRAM as every datagram Init must be (§5.1),
    // then its mac tail (§5.12: a valid mac1, mac2 zeros).
    let dinit = |version: u8, pattern: u8, tag: &[u8], body: &[u8]| {
        let mut r = init(version, pattern, tag, body);
        r.resize(r.len().max(INIT_MIN_DATAGRAM) + MACS_LEN, 0);
        cookie::seal_init(&cookie::mac1_key(id), None, &mut r);
        r
    };
    let v = WIRE_VERSION;
    let good_e = public([0x42; 32]);
    let low = [
        ("zero", [0u8; 32]),
        ("one", {
            let mut k = [0u8; 32];
            k[0] = 1;
            k
        }),
        (
            "order-8-a",
            hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
                .unwrap()
                .try_into()
                .unwrap(),
        ),
        (
            "order-8-b",
            hex::decode("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157")
                .unwrap()
                .try_into()
                .unwrap(),
        ),
        (
            "p-minus-1",
            hex::decode("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
                .unwrap()
                .try_into()
                .unwrap(),
        ),
        (
            "p",
            hex::decode("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
                .unwrap()
                .try_into()
                .unwrap(),
        ),
        (
            "p-plus-1",
            hex::decode("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
                .unwrap()
                .try_into()
                .unwrap(),
        ),
    ];
    // A genuine transport record under KEY, then tampered copies.
    let ping = {
        let mut rec = vec![0u8; 16 + 2 + TAG_LEN];
        Header::Transport { phase: 0, receiver: RECEIVER, counter: 5 }.encode(&mut rec).unwrap();
        let n = Packet::Ping { seq: 9 }.encode(&mut rec[16..]).unwrap();
        let (h, b) = rec.split_at_mut(16);
        CipherState::new(KEY).encrypt_at(5, h, b, n).unwrap();
        rec
    };
    let flip = |at: usize| {
        let mut r = ping.clone();
        let at = if at == usize::MAX { r.len() - 1 } else { at };
        r[at] ^= 0x01;
        r
    };
    let name33 = [&[0x01u8, 33][..], &[b'a'; 33]].concat();
    // The smallest Hello (every field empty or zero) followed by `tail`.
    let hx9 = |tail: &[u8]| [&[WIRE_VERSION, 0, 0, 0, 0, 0, 0, 0, 0][..], tail].concat();
    assert!(Hello::decode(&hx9(&[0x10, 1, b'a', 0, 0, 0])).is_ok() && Hello::decode(&hx9(&[0x10, 1, b'a'])).is_ok());
    // Each malformed Hello is one change away from a valid one: it fails for the stated reason.
    let name32 = [&[0x01u8, 32][..], &[b'a'; 32], &[0, 0, 0, 0, 0, 0, 0]].concat();
    assert!(Hello::decode(&name32).is_ok() && Hello::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0]).is_ok());
    assert!(Hello::decode(&[&[1u8, 0, 8][..], &[1, b'c'].repeat(8), &[0, 0, 0, 0, 0, 0]].concat()).is_ok());
    assert!(Packet::decode(&[3, 1, 4, 1, 3, 9, 9, 9]).is_ok() && Packet::decode(&[1, 5]).is_ok());
    let key = json!({"key": hx(&KEY)});
    let mf = json!({"max_frame": 2048});
    let none = json!({});
    let rh = "PROTOCOL.md §Records";
    let pk = "PROTOCOL.md §Packets";
    let hs = "PROTOCOL.md §Handshake";
    let mut cases: Vec<(String, &str, &str, Vec<u8>, &Value)> = vec![
        ("header-empty".into(), rh, "record_header", vec![], &none),
        ("header-init-truncated".into(), rh, "record_header", vec![1, 1, 0, 0, 1, 2, 3], &none),
        ("header-resp-truncated".into(), rh, "record_header", vec![2; 11], &none),
        ("header-final-truncated".into(), rh, "record_header", vec![3, 0, 0, 0, 1], &none),
        ("header-transport-truncated".into(), rh, "record_header", vec![4; 15], &none),
        ("header-reject-truncated".into(), rh, "record_header", vec![6, 3, 1, 0, 0, 0, 0], &none),
        ("header-type-0x00".into(), rh, "record_header", vec![0; 16], &none),
        ("header-cookie-truncated".into(), rh, "record_header", vec![7; 63], &none),
        ("header-type-0x08".into(), rh, "record_header", vec![8; 16], &none),
        ("header-type-0xff".into(), rh, "record_header", vec![0xff; 16], &none),
        ("frame-length-zero".into(), "PROTOCOL.md §Framing", "frame", vec![0, 0, 1], &mf),
        ("frame-length-max-frame-plus-1".into(), "PROTOCOL.md §Framing", "frame", vec![0x08, 0x01], &mf),
        ("frame-length-65535".into(), "PROTOCOL.md §Framing", "frame", vec![0xff, 0xff], &mf),
        ("packet-empty".into(), pk, "packet", vec![], &none),
        ("ping-no-body".into(), pk, "packet", vec![1], &none),
        ("ping-overlong-varint".into(), pk, "packet", vec![1, 0x80, 0x80, 0x80, 0x80, 0x10], &none),
        ("ping-trailing-byte".into(), pk, "packet", vec![1, 5, 0], &none),
        ("pong-truncated-varint".into(), pk, "packet", vec![2, 0x80], &none),
        ("data-bytes-past-end".into(), pk, "packet", vec![3, 1, 10, 0, 10, 1, 2, 3], &none),
        ("data-offset-plus-len-over-total".into(), pk, "packet", vec![3, 1, 4, 2, 3, 9, 9, 9], &none),
        ("error-detail-not-utf8".into(), pk, "packet", vec![4, 2, 2, 0xff, 0xfe], &none),
        ("error-detail-129-bytes".into(), pk, "packet", [&[4u8, 2, 129, 1][..], &[b'x'; 129]].concat(), &none),
        ("close-no-body".into(), pk, "packet", vec![5], &none),
        ("hello-truncated".into(), "PROTOCOL.md §Hello", "hello", vec![1, 5, b'a'], &none),
        (
            "hello-name-33-bytes".into(),
            "PROTOCOL.md §Hello",
            "hello",
            [&name33[..], &[0, 0, 0, 0, 0, 0, 0]].concat(),
            &none,
        ),
        (
            "hello-9-capabilities".into(),
            "PROTOCOL.md §Hello",
            "hello",
            [&[1u8, 0, 9][..], &[1, b'c'].repeat(9), &[0, 0, 0, 0, 0, 0]].concat(),
            &none,
        ),
        // After the fields comes the extension tail (§8.6): a lone byte is a TLV without its length.
        ("hello-trailing-byte".into(), "PROTOCOL.md §Hello", "hello", vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa], &none),
        (
            "hello-extension-duplicate".into(),
            "PROTOCOL.md §Hello",
            "hello",
            hx9(&[0x10, 1, b'a', 0x10, 1, b'b']),
            &none,
        ),
        (
            "hello-9-extensions".into(),
            "PROTOCOL.md §Hello",
            "hello",
            hx9(&(1u8..=9).flat_map(|t| [t, 0]).collect::<Vec<u8>>()),
            &none,
        ),
        ("hello-extension-value-truncated".into(), "PROTOCOL.md §Hello", "hello", hx9(&[0x10, 5, 1, 2]), &none),
        (
            "hello-extension-tail-129-bytes".into(),
            "PROTOCOL.md §Hello",
            "hello",
            hx9(&[&[0x10u8, 127][..], &[7; 127]].concat()),
            &none,
        ),
        ("hello-nonzero-after-end".into(), "PROTOCOL.md §Hello", "hello", hx9(&[0x10, 1, b'a', 0, 0, 1]), &none),
        ("transport-tag-bit-flip".into(), pk, "transport_open", flip(usize::MAX), &key),
        ("transport-ciphertext-bit-flip".into(), pk, "transport_open", flip(16), &key),
        ("transport-ad-bit-flip".into(), pk, "transport_open", flip(1), &key),
        ("transport-shorter-than-tag".into(), pk, "transport_open", ping[..16 + 15].to_vec(), &key),
        ("transport-counter-max".into(), pk, "transport_open", [&ping[..8], &[0xff; 8], &ping[16..]].concat(), &key),
        // A version-1 Init (byte 3 reserved, 0: the range 1..=1) and one of version 3 only.
        ("datagram-init-version-1".into(), hs, "node_datagram", dinit(1, 0, &tag, &good_e), &none),
        (
            "datagram-init-version-3-only".into(),
            hs,
            "node_datagram",
            [&[1u8, 3, 0, 3, 4, 3, 2, 1][..], &tag, &good_e, &[0; 235 + MACS_LEN]].concat(),
            &none,
        ),
        // Shorter than INIT_MIN_DATAGRAM: dropped unanswered, before any other check (§5.1).
        ("datagram-init-short-44-bytes".into(), hs, "node_datagram", init(v, 0, &tag, &good_e), &none),
        (
            "datagram-init-310-bytes".into(),
            hs,
            "node_datagram",
            dinit(v, 0, &tag, &good_e)[..INIT_MIN_DATAGRAM + MACS_LEN - 1].to_vec(),
            &none,
        ),
        // A version-2 Init padded to 279 bytes but without its mac tail (§5.12).
        (
            "datagram-init-279-bytes-without-macs".into(),
            hs,
            "node_datagram",
            dinit(v, 0, &tag, &good_e)[..INIT_MIN_DATAGRAM].to_vec(),
            &none,
        ),
        (
            "datagram-init-bad-mac1".into(),
            "PROTOCOL.md §5.12",
            "node_datagram",
            {
                let mut d = dinit(v, 0, &tag, &good_e);
                d[INIT_MIN_DATAGRAM] ^= 1;
                d
            },
            &none,
        ),
        (
            "datagram-init-mac1-of-another-network".into(),
            "PROTOCOL.md §5.12",
            "node_datagram",
            {
                let mut d = dinit(v, 0, &tag, &good_e);
                cookie::seal_init(&cookie::mac1_key(b"other"), None, &mut d);
                d
            },
            &none,
        ),
        (
            "datagram-cookie-unknown-receiver".into(),
            "PROTOCOL.md §5.12",
            "node_datagram",
            [&[7u8, 0, 0, 0, 0, 0, 1, 0][..], &[0x33; 56]].concat(),
            &none,
        ),
        ("datagram-init-wrong-network".into(), hs, "node_datagram", dinit(v, 0, &[0, 0, 0, 0], &good_e), &none),
        ("datagram-init-unknown-pattern".into(), hs, "node_datagram", dinit(v, 3, &tag, &good_e), &none),
        (
            "datagram-init-psk-pattern-without-key".into(),
            hs,
            "node_datagram",
            dinit(v, 1, &tag, &[&good_e[..], &[0; 16]].concat()),
            &none,
        ),
        ("stream-init-truncated-e".into(), hs, "node_stream", frame(&init(v, 0, &tag, &good_e[..20])), &none),
        (
            "datagram-init-ik-garbage".into(),
            hs,
            "node_datagram",
            dinit(v, 2, &tag, &[&good_e[..], &[0x5a; 64]].concat()),
            &none,
        ),
        ("datagram-transport-unknown-receiver".into(), rh, "node_datagram", ping.clone(), &none),
        (
            "datagram-final-without-init".into(),
            hs,
            "node_datagram",
            [&[3u8, 0, 0, 0, 0, 0, 1, 0][..], &[0; 64]].concat(),
            &none,
        ),
        (
            // One byte over max_datagram: refused by size before the header is looked at.
            "datagram-larger-than-max-datagram".into(),
            rh,
            "node_datagram",
            init(v, 0, &tag, &[&good_e[..], &vec![0; malformed_node_config().max_datagram + 1 - 44]].concat()),
            &none,
        ),
        ("stream-frame-length-zero".into(), "PROTOCOL.md §Framing", "node_stream", vec![0, 0], &none),
        ("stream-frame-too-large".into(), "PROTOCOL.md §Framing", "node_stream", vec![0x08, 0x01], &none),
        ("stream-unknown-record-type".into(), rh, "node_stream", frame(&[9; 16]), &none),
        (
            "stream-resp-to-responder".into(),
            hs,
            "node_stream",
            frame(&[&[2u8, 0, 0, 0, 1, 0, 1, 0, 2, 0, 2, 0][..], &[0; 96]].concat()),
            &none,
        ),
        ("stream-transport-before-handshake".into(), hs, "node_stream", frame(&ping), &none),
    ];
    for (n, k) in &low {
        cases.push((format!("datagram-init-low-order-e-{n}"), hs, "node_datagram", dinit(v, 0, &tag, k), &none));
        cases.push((format!("stream-init-low-order-e-{n}"), hs, "node_stream", frame(&init(v, 0, &tag, k)), &none));
    }
    let vectors: Vec<Value> = cases
        .into_iter()
        .map(|(name, section, layer, input, extra)| {
            let (debug, display) = run_malformed(layer, &input, extra);
            let mut v = json!({"name": name, "section": section, "layer": layer, "input": hx(&input), "error": debug, "display": display});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        })
        .collect();
    json!({
        "description": "Malformed meshlink inputs and the exact error each gives: `error` is the Rust Debug form, `display` the Display form. Layers: record_header = Header::parse(input); frame = a fresh stream frame decoder with max_frame fed `input`; packet = Packet::decode(input) (decrypted transport plaintext); hello = Hello::decode(input); transport_open = ChaCha20-Poly1305 open of a transport record under `key` (nonce = 4 zero bytes || counter LE, AD = 16-byte header); node_datagram = a fresh node (see `node`) given handle_datagram(now, hostile_addr, input); node_stream = a fresh node that accept()ed a stream from hostile_addr, given handle_stream(conn, now, input). Byte strings are lowercase hex.",
        "node": {"config": config_json(&malformed_node_config()), "static_secret": hx(&VICTIM_SECRET), "seed": hx(&VICTIM_SEED),
            "now_us": NOW.as_micros(), "hostile_addr": HOSTILE_ADDR},
        "vectors": vectors,
    })
}

// =========================================================================== spec_examples.json

/// `start, start + 1, ..., start + 31`.
fn counting(start: u8) -> [u8; 32] {
    core::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// One transcript of PROTOCOL.md §13 (§13.5 XX, §13.6 XXpsk3, §13.7 IK): the handshake
/// records written by our Noise state machine with fixed inputs, then the first Ping each
/// way. Laid out as a handshake.json vector, so the test replays it the same way.
fn spec_example(name: &str, pattern: &str) -> Value {
    let p = match pattern {
        "XX" => meshlink_core::noise::Pattern::Xx,
        "XXpsk3" => meshlink_core::noise::Pattern::XxPsk3,
        _ => meshlink_core::noise::Pattern::Ik,
    };
    let (secrets, eph) = ([counting(0x01), counting(0x41)], [counting(0x21), counting(0x61)]);
    let index = [0x5a3d_0001u32, 0xc0df_0003];
    let id = b"meshlink";
    let psk = (pattern == "XXpsk3").then(|| blake2s(&[b"meshlink psk", &KEY, id]));
    let prologue = [&b"meshlink"[..], &[WIRE_VERSION, WIRE_VERSION, id.len() as u8], id].concat();
    let tag = u32::from_le_bytes(blake2s(&[b"meshlink network tag", id])[..4].try_into().unwrap());
    let hello = hello_bytes(&Config::default());
    let pattern_id = ["XX", "XXpsk3", "IK"].iter().position(|x| *x == pattern).unwrap() as u8;
    let transcript = |kind: TransportKind| {
        use meshlink_core::noise::{HandshakeParams, HandshakeState, Role};
        let mut hs = [Role::Initiator, Role::Responder].map(|role| {
            let i = usize::from(role == Role::Responder);
            let params = HandshakeParams {
                pattern: p,
                role,
                prologue: &prologue,
                local_static: secrets[i],
                remote_static: (i == 0 && pattern == "IK").then(|| public(secrets[1])),
                psk,
            };
            HandshakeState::with_ephemeral(params, eph[i]).unwrap()
        });
        let headers = [
            Header::Init {
                version: WIRE_VERSION,
                min_version: WIRE_VERSION,
                pattern: pattern_id,
                sender: index[0],
                network_tag: tag,
            },
            Header::Resp { sender: index[1], receiver: index[0] },
            Header::Final { receiver: index[1] },
        ];
        let payloads = [init_payload(pattern, kind, &hello), hello.clone(), hello.clone()];
        let mut records = Vec::new();
        for step in 0..if pattern == "IK" { 2 } else { 3 } {
            let from = step % 2;
            let mut rec = vec![0u8; 2048];
            let h = headers[step].encode(&mut rec).unwrap();
            let n = hs[from].write_message(&payloads[step], &mut rec[h..]).unwrap();
            rec.truncate(h + n);
            let mut pl = vec![0u8; 2048];
            let got = hs[1 - from].read_message(&rec[h..], &mut pl).unwrap();
            assert_eq!(pl[..got], payloads[step][..]);
            let noise = rec[h..].to_vec();
            let dgram_init = step == 0 && kind == TransportKind::Datagram;
            if dgram_init {
                // The mac tail of a datagram Init (§5.12), after the Noise message.
                rec.resize(h + n + MACS_LEN, 0);
                cookie::seal_init(&cookie::mac1_key(id), None, &mut rec);
                check_macs(&rec[..h + n], &rec[h + n..], id);
            }
            let mut v = json!({"from": ROLES[from], "header": header_json(&headers[step]), "record": hx(&rec),
                "noise_message": hx(&noise), "payload": hx(&payloads[step])});
            if dgram_init {
                v["macs"] = hx(&rec[h + n..]).into();
            }
            if kind == TransportKind::Stream {
                v["frame"] = hx(&frame(&rec)).into();
            }
            records.push(v);
        }
        let hash = hs[0].handshake_hash();
        assert_eq!(hash, hs[1].handshake_hash());
        let steps = if pattern == "IK" { 2 } else { 3 };
        let pl: Vec<&[u8]> = payloads[..steps].iter().map(|p| &p[..]).collect();
        let (snow_msgs, snow_hash) = snow_transcript(pattern, &prologue, secrets, eph, psk, &pl);
        assert_eq!(snow_hash, hash.to_vec(), "{name}: snow disagrees on the handshake hash");
        for (m, r) in snow_msgs.iter().zip(&records) {
            assert_eq!(hx(m), r["noise_message"].as_str().unwrap(), "{name}: snow disagrees on a message");
        }
        let [a, b] = hs;
        let t = [a.into_transport().unwrap(), b.into_transport().unwrap()];
        // Who pings first (§5.4): the XX responder at establishment; the IK initiator.
        let order = if pattern == "IK" { [0, 1] } else { [1, 0] };
        for from in order {
            let header = Header::Transport { phase: 0, receiver: index[1 - from], counter: 0 };
            let mut rec = vec![0u8; 16 + 2 + TAG_LEN];
            header.encode(&mut rec).unwrap();
            let n = Packet::Ping { seq: 0 }.encode(&mut rec[16..]).unwrap();
            let (hdr, body) = rec.split_at_mut(16);
            t[from].send.encrypt_at(0, hdr, body, n).unwrap();
            let mut v = json!({"from": ROLES[from], "header": header_json(&header), "record": hx(&rec),
                "plaintext": "0100", "packet": packet_json(&Packet::Ping { seq: 0 })});
            if kind == TransportKind::Stream {
                v["frame"] = hx(&frame(&rec)).into();
            }
            records.push(v);
        }
        json!({"handshake_hash": hx(&hash), "records": records})
    };
    let side = |i: usize| {
        json!({"static_secret": hx(&secrets[i]), "static_public": hx(&public(secrets[i])),
            "ephemeral_secret": hx(&eph[i]), "ephemeral_public": hx(&public(eph[i])), "index": index[i], "hello": hx(&hello)})
    };
    json!({
        "name": name,
        "section": "PROTOCOL.md §Worked examples",
        "pattern": pattern,
        "protocol_name": format!("Noise_{pattern}_25519_ChaChaPoly_BLAKE2s"),
        "prologue": hx(&prologue),
        "network_tag": tag,
        "network_key": psk.map(|_| hx(&KEY)),
        "psk": psk.map(|k| hx(&k)),
        "initiator": side(0),
        "responder": side(1),
        "stream": transcript(TransportKind::Stream),
        "datagram": transcript(TransportKind::Datagram),
    })
}

fn spec_examples_file() -> Value {
    json!({
        "description": "The handshake transcripts printed in PROTOCOL.md §13.5 (XX), §13.6 (XXpsk3) and §13.7 (IK). Unlike handshake.json they do not come from two nodes: HandshakeState::with_ephemeral is driven directly with the stated static and ephemeral secrets, the indexes are fixed example values, network id 'meshlink', and for XXpsk3 the network key 000102..1f. Each side's Hello is the default node Hello (Config::default(), empty hello). Message 1's payload follows the rule of handshake.json (empty for XX and XXpsk3, the Hello for IK; on datagrams zero-padded so that the Init is init_min_datagram bytes, and the datagram Init `record` then ends with its 32-byte `macs` tail, PROTOCOL.md §5.12: mac1 under network id 'meshlink', mac2 zeros). After the handshake, the first Ping (seq 0, counter 0) each way, in the order the node sends them (§5.4). Fields as in handshake.json; the test also checks that every stream record and every handshake hash appears in PROTOCOL.md.",
        "vectors": [spec_example("spec-xx", "XX"), spec_example("spec-xxpsk3", "XXpsk3"), spec_example("spec-ik", "IK")],
    })
}

// =========================================================================== main

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors")));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, v) in [
        ("handshake.json", handshake_file()),
        ("records.json", records_file()),
        ("malformed.json", malformed_file()),
        ("spec_examples.json", spec_examples_file()),
        ("messaging.json", messaging_file()),
        ("cookie.json", cookie_file()),
        ("pubsub.json", pubsub_file()),
        ("rpc.json", rpc_file()),
        ("batching.json", batching_file()),
        ("stream.json", stream_file()),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
        println!("wrote {}", path.display());
    }
}

// ---------------------------------------------------------------- messaging (PROTOCOL.md §15)

/// The request/response packets (fields, message body, and the whole plaintext packet as
/// one single-chunk message with `msg_id` 0) and the subject tables.
fn messaging_file() -> Value {
    use meshlink_core::messaging::request::{
        CancelPacket, Packet as MPacket, RefusalPacket, RequestPacket, ResponsePacket,
    };
    use meshlink_core::messaging::subject::{self, MAX_SUBJECT_LEN, MAX_TOKENS};
    let pkts = [
        (
            "request",
            MPacket::Request(RequestPacket {
                id: 0x1_0003,
                parent: Some(42),
                timeout_ms: 10_000,
                version: "1.2",
                subject: "svc.echo",
                body: b"hi",
            }),
        ),
        (
            "request_no_parent_no_version",
            MPacket::Request(RequestPacket {
                id: 0x2_0000,
                parent: None,
                timeout_ms: 250,
                version: "",
                subject: "a",
                body: b"",
            }),
        ),
        ("response", MPacket::Response(ResponsePacket { id: 0x1_0003, body: b"hi" })),
        ("refusal_no_responders", MPacket::Refusal(RefusalPacket { id: 0x1_0003, code: 1, message: "" })),
        ("refusal_handler_error", MPacket::Refusal(RefusalPacket { id: 0x1_0003, code: 0x100, message: "disk full" })),
        ("cancel", MPacket::Cancel(CancelPacket { id: 0x1_0003 })),
    ];
    let packets: Vec<Value> = pkts
        .iter()
        .map(|(name, p)| {
            let mut body = [0u8; 512];
            let n = p.encode(&mut body).unwrap();
            let body = &body[..n];
            let mut pkt = [0u8; 600];
            let m = Packet::Data { kind: p.kind(), msg_id: 0, total: n as u32, offset: 0, bytes: body }
                .encode(&mut pkt)
                .unwrap();
            let fields = match p {
                MPacket::Request(r) => json!({"id": r.id, "parent": r.parent, "timeout_ms": r.timeout_ms,
                    "version": r.version, "subject": r.subject, "body": hx(r.body)}),
                MPacket::Response(r) => json!({"id": r.id, "body": hx(r.body)}),
                MPacket::Refusal(r) => json!({"id": r.id, "code": r.code, "message": r.message}),
                MPacket::Cancel(c) => json!({"id": c.id}),
                _ => unreachable!(),
            };
            json!({"name": name, "kind_byte": p.kind(), "fields": fields, "body": hx(body), "packet": hx(&pkt[..m])})
        })
        .collect();
    let wildcard: Vec<Value> = [
        ("foo.*", "foo.bar"),
        ("foo.*", "foo"),
        ("foo.*", "foo.bar.baz"),
        ("stats.*.*", "stats.test.22"),
        ("stats.*.*", "stats.test"),
        ("foo.>", "foo.bar"),
        ("foo.>", "foo.bar.baz"),
        ("foo.>", "foo"),
        (">", "foo"),
        (">", "foo.bar.baz"),
        ("*", "foo"),
        ("*", "foo.bar"),
        ("foo*", "foo*"),
        ("foo*", "foobar"),
        ("Foo.*", "foo.bar"),
    ]
    .iter()
    .map(|(p, s)| json!([p, s, subject::matches(p, s)]))
    .collect();
    let show = |r: Result<(), subject::SubjectError>| match r {
        Ok(()) => Value::Null,
        Err(e) => Value::String(format!("{e:?}")),
    };
    let validity: Vec<Value> = [
        "",
        ".foo",
        "foo.",
        "foo..bar",
        "foo bar",
        "foo\tbar",
        "foo.>.bar",
        ">.bar",
        "foo*",
        "*bar",
        "foo>",
        "foo.>>",
        "foo.*",
        "foo.>",
        ">",
        "*",
        "$SRV.PING",
    ]
    .iter()
    .map(|t| {
        json!({"text": t, "pattern": show(subject::validate_pattern(t).map(|_| ())),
            "subject": show(subject::validate_subject(t))})
    })
    .collect();
    json!({
        "description": "Messaging (PROTOCOL.md §15): each request/response packet from its fields, as its message \
            body (postcard) and as the whole plaintext packet of a single-chunk message (kind byte, msg_id 0, \
            total, offset 0, body); the NATS wildcard table (pattern, subject, matches) and subject validity \
            (null = valid, else the SubjectError). Checked by core/tests/messaging_vectors.rs.",
        "limits": {"max_subject_len": MAX_SUBJECT_LEN, "max_tokens": MAX_TOKENS,
            "version_max": meshlink_core::messaging::request::VERSION_MAX,
            "message_max": meshlink_core::messaging::request::MESSAGE_MAX,
            "app_code_min": meshlink_core::messaging::request::APP_CODE_MIN},
        "packets": packets,
        "wildcard": wildcard,
        "validity": validity,
    })
}

// =========================================================================== cookie.json

/// Keyed BLAKE2s-128, computed here straight from the blake2 crate (not through the core).
fn mac16(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    use blake2::digest::{consts::U16, Mac as _};
    let mut m = <blake2::Blake2sMac<U16> as blake2::digest::Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// A datagram Init's tail as §5.12 defines it, restated: mac1 under the network's key over
/// the record, and mac2 zeros (no cookie).
fn check_macs(record: &[u8], macs: &[u8], network_id: &[u8]) {
    let k1 = blake2s(&[b"meshlink mac1", network_id]);
    assert_eq!(macs[..16], mac16(&k1, &[record]), "mac1 formula");
    assert_eq!(macs[16..], [0u8; 16], "mac2 without a cookie");
}

fn cookie_file() -> Value {
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    let id = b"meshlink";
    let (k1, kr) = (blake2s(&[b"meshlink mac1", id]), blake2s(&[b"meshlink cookie", id]));
    assert_eq!((k1, kr), (cookie::mac1_key(id), cookie::reply_key(id)));
    // The datagram XX Init of §13.5 (header, e, 235 zero bytes of padding), then its tail.
    let tag = blake2s(&[b"meshlink network tag", id]);
    let e = public(counting(0x21));
    let sender = 0x5a3d_0001u32;
    let record = [&[1u8, WIRE_VERSION, 0, WIRE_VERSION][..], &sender.to_le_bytes(), &tag[..4], &e, &[0; 235]].concat();
    assert_eq!(record.len(), INIT_MIN_DATAGRAM);
    let mac1 = mac16(&k1, &[&record]);
    let first = [&record[..], &mac1, &[0; 16]].concat();
    let mut ours = [&record[..], &[0; MACS_LEN]].concat();
    cookie::seal_init(&k1, None, &mut ours);
    assert_eq!(ours, first, "the core's mac tail");
    // The responder's secret and the cookie of the initiator's address.
    let secret = counting(0x81);
    let (addr4, addr6): (SocketAddr, SocketAddr) =
        ("192.0.2.1:1000".parse().unwrap(), "[2001:db8::1]:1000".parse().unwrap());
    let c4 = mac16(&secret, &[&[192, 0, 2, 1], &1000u16.to_be_bytes()]);
    let ip6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let c6 = mac16(&secret, &[&ip6.octets(), &1000u16.to_be_bytes()]);
    assert_eq!((c4, c6), (cookie::address_cookie(&secret, &addr4), cookie::address_cookie(&secret, &addr6)));
    // The Cookie reply, sealed with a fixed nonce (a node draws it from its RNG).
    let nonce: [u8; 24] = core::array::from_fn(|i| 0xa1 + i as u8);
    let mut sealed = c4.to_vec();
    let t = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&kr))
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &mac1, &mut sealed)
        .unwrap();
    let reply = [&[7u8, 0, 0, 0][..], &sender.to_le_bytes(), &nonce, &sealed, &t].concat();
    let mut r = [0u8; cookie::COOKIE_REPLY_LEN];
    cookie::seal_reply(&kr, sender, &nonce, &c4, &mac1, &mut r);
    assert_eq!(r[..], reply[..], "the core's Cookie reply");
    assert_eq!(cookie::open_reply(&kr, &reply, &mac1), Ok(c4));
    // The Init sent again with the cookie: mac1 unchanged, mac2 over the record and mac1.
    let mac2 = mac16(&c4, &[&record, &mac1]);
    let second = [&record[..], &mac1, &mac2].concat();
    cookie::seal_init(&k1, Some(&c4), &mut ours);
    assert_eq!(ours, second, "the core's mac2");
    let v = json!({
        "name": "cookie-xx-datagram-init",
        "section": "PROTOCOL.md §5.12",
        "network_id": hx(id),
        "mac1_key": hx(&k1),
        "reply_key": hx(&kr),
        "init_record": hx(&record),
        "mac1": hx(&mac1),
        "init_first": hx(&first),
        "secret": hx(&secret),
        "initiator_addr": addr4.to_string(),
        "cookie": hx(&c4),
        "initiator_addr_v6": addr6.to_string(),
        "cookie_v6": hx(&c6),
        "nonce": hx(&nonce),
        "reply": hx(&reply),
        "mac2": hx(&mac2),
        "init_second": hx(&second),
    });
    json!({
        "description": "meshlink cookies (PROTOCOL.md §5.12, after WireGuard's mac1/mac2 and cookie reply). MAC(key, m) = keyed BLAKE2s with a 16-byte output (key = 32-byte keys, or the 16-byte cookie). mac1_key = BLAKE2s-256('meshlink mac1' || network_id); reply_key = BLAKE2s-256('meshlink cookie' || network_id). `init_record` is a datagram XX Init record (PROTOCOL.md §13.5's, padded to 279 bytes); mac1 = MAC(mac1_key, init_record); `init_first` = init_record || mac1 || 16 zero bytes (no cookie yet). The responder's cookie for a source address is MAC(secret, ip || port), the IP as its 4 or 16 octets and the port as 2 big-endian bytes (`secret` is random and rotated every 120 s in a node; fixed here). `reply` is the Cookie record: 0x07, 3 zero bytes, the Init's sender index (u32 LE), `nonce` (24 bytes, random in a node), then XChaCha20-Poly1305(reply_key, nonce, AD = mac1) of `cookie` and its 16-byte tag. The initiator then sends `init_second` = init_record || mac1 || mac2, mac2 = MAC(cookie, init_record || mac1). Byte strings are lowercase hex.",
        "vectors": [v],
    })
}

// ---------------------------------------------------------------- pub/sub (PROTOCOL.md §15.3)

/// The pub/sub packets: fields, message body, and the whole plaintext packet of a one-chunk
/// message with msg_id 0. Checked by core/tests/pubsub_vectors.rs.
fn pubsub_file() -> Value {
    use meshlink_core::messaging::pubsub::packet::{
        InterestAckPacket, InterestPacket, PubSubPacket, PublicationPacket, SlowConsumerPacket, ACK_LIMIT,
    };
    let (a, b) = ([0xaa; 32], [0xbb; 32]);
    let pkts: [(&str, PubSubPacket<'_>); 5] = [
        (
            "publication",
            PubSubPacket::Publication(PublicationPacket {
                hops: 1,
                origin: a,
                seq: 300,
                subject: "news.eu",
                body: b"hi",
            }),
        ),
        (
            "interest",
            PubSubPacket::Interest(InterestPacket { hops: 0, origin: b, ver: 2, entries: b"\x00news.*\x20\x02logs.>" }),
        ),
        ("interest_empty", PubSubPacket::Interest(InterestPacket { hops: 3, origin: b, ver: 3, entries: b"" })),
        (
            "interest_ack_limit",
            PubSubPacket::InterestAck(InterestAckPacket { origin: b, ver: 2, status: ACK_LIMIT, accepted: 1 }),
        ),
        (
            "slow_consumer",
            PubSubPacket::SlowConsumer(SlowConsumerPacket {
                hops: 0,
                origin: a,
                seq: 300,
                subscriber: b,
                dropped: 6,
                subject: "news.eu",
            }),
        ),
    ];
    let packets: Vec<Value> = pkts
        .iter()
        .map(|(name, p)| {
            let mut body = [0u8; 512];
            let n = p.encode(&mut body).unwrap();
            let body = &body[..n];
            let mut pkt = [0u8; 600];
            let m = Packet::Data { kind: p.kind(), msg_id: 0, total: n as u32, offset: 0, bytes: body }
                .encode(&mut pkt)
                .unwrap();
            let fields = match p {
                PubSubPacket::Publication(x) => json!({"hops": x.hops, "origin": hx(&x.origin), "seq": x.seq,
                    "subject": x.subject, "body": hx(x.body)}),
                PubSubPacket::Interest(x) => json!({"hops": x.hops, "origin": hx(&x.origin), "ver": x.ver,
                    "entries": hx(x.entries)}),
                PubSubPacket::InterestAck(x) => json!({"origin": hx(&x.origin), "ver": x.ver, "status": x.status,
                    "accepted": x.accepted}),
                PubSubPacket::SlowConsumer(x) => json!({"hops": x.hops, "origin": hx(&x.origin), "seq": x.seq,
                    "subscriber": hx(&x.subscriber), "dropped": x.dropped, "subject": x.subject}),
                _ => unreachable!(),
            };
            json!({"name": name, "kind_byte": p.kind(), "fields": fields, "body": hx(body), "packet": hx(&pkt[..m])})
        })
        .collect();
    let d = meshlink_core::messaging::MessagingConfig::default();
    json!({
        "description": "meshlink pub/sub packets (PROTOCOL.md §15.3): each is a message of its kind whose bytes \
            `body` are the postcard encoding of `fields` (hops u8 raw, ids 32 raw bytes, integers varints, \
            str/bytes a varint length then the bytes); `packet` is the plaintext packet of a one-chunk message \
            with msg_id 0. Interest `entries`: entries separated by 0x20, each a priority byte (0 High, 1 Normal, \
            2 Low) then a pattern. Checked by core/tests/pubsub_vectors.rs.",
        "packets": packets,
        "limits": {"max_hops": d.max_hops, "max_subs": d.max_subs,
            "max_interest_per_origin": d.max_interest_per_origin,
            "seen_ways": meshlink_core::messaging::pubsub::seen::WAYS},
    })
}

// ---------------------------------------------------------------- RPC values (PROTOCOL.md §15.5)

/// Every value kind, a nested value, and invalid encodings with their typed error.
fn rpc_file() -> Value {
    use meshlink_core::messaging::rpc::{OwnedValue as O, Value as V, MAX_DEPTH, MAX_LEN};
    use std::collections::BTreeMap;
    let map = |e: &[(&str, O)]| O::Map(e.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>());
    let valid = [
        ("null", O::Null),
        ("bool_true", O::Bool(true)),
        ("bool_false", O::Bool(false)),
        ("int_zero", O::Int(0)),
        ("int_minus_two", O::Int(-2)),
        ("int_300", O::Int(300)),
        ("int_max", O::Int(i64::MAX)),
        ("int_min", O::Int(i64::MIN)),
        ("float_one", O::Float(1.0)),
        ("float_minus_1_5", O::Float(-1.5)),
        ("string_empty", O::Str(String::new())),
        ("string_utf8", O::Str("h\u{e9}".into())),
        ("bytes", O::Bytes(vec![0xde, 0xad, 0xbe, 0xef])),
        ("list_empty", O::List(vec![])),
        ("list", O::List(vec![O::Int(1), O::Str("a".into()), O::Null])),
        ("map_empty", map(&[])),
        ("map", map(&[("a", O::Int(1)), ("b", O::Bool(false))])),
        ("map_dollar_key", map(&[("$bytes", O::Str("x".into()))])),
        (
            "nested",
            map(&[
                ("args", O::List(vec![O::Float(0.25), O::Bytes(vec![1, 2, 3]), map(&[("k", O::List(vec![O::Null]))])])),
                ("name", O::Str("math.add".into())),
            ]),
        ),
    ];
    let valid: Vec<Value> = valid
        .iter()
        .map(|(name, v)| {
            let bytes = v.to_vec().unwrap();
            assert_eq!(&O::decode(&bytes).unwrap(), v);
            json!({ "name": name, "hex": hx(&bytes), "json": rpc_json(v) })
        })
        .collect();
    let nest = |d: usize| {
        let mut b = vec![];
        for _ in 0..d {
            b.extend_from_slice(&[6, 1]);
        }
        b.push(0);
        b
    };
    let mut many = vec![6u8];
    many.extend_from_slice(&[0x81, 0x08]); // 1025 as a varint
    many.extend(std::iter::repeat_n(0u8, MAX_LEN + 1));
    let invalid: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("unknown_tag", vec![8]),
        ("bool_two", vec![1, 2]),
        ("int_overlong_varint", vec![2, 0x80, 0x00]),
        ("float_nan", vec![3, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f]),
        ("string_bad_utf8", vec![4, 1, 0xff]),
        ("string_truncated", vec![4, 5, b'a']),
        ("list_truncated", vec![6, 2, 0]),
        ("map_keys_out_of_order", vec![7, 2, 1, b'b', 0, 1, b'a', 0]),
        ("map_duplicate_key", vec![7, 2, 1, b'a', 0, 1, b'a', 0]),
        ("trailing_byte", vec![0, 0]),
        ("depth_at_limit_ok", nest(MAX_DEPTH)),
        ("too_deep", nest(MAX_DEPTH + 1)),
        ("too_many_elements", many),
    ];
    let invalid: Vec<Value> = invalid
        .iter()
        .map(|(name, b)| {
            let error = match V::decode(b) {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            };
            json!({ "name": name, "hex": hx(b), "error": error })
        })
        .collect();
    json!({
        "note": "RPC values (PROTOCOL.md §15.5.1): hex is the postcard encoding, json its JSON form; invalid cases give the decoder's error (\"ok\" for the edge that is still valid)",
        "limits": { "max_depth": MAX_DEPTH, "max_len": MAX_LEN, "max_total": meshlink_core::messaging::rpc::MAX_TOTAL, "max_size": meshlink_core::messaging::rpc::MAX_SIZE },
        "valid": valid,
        "invalid": invalid,
    })
}

/// The JSON form of a value (PROTOCOL.md §15.5.1): bytes as `{"$bytes": base64}`, a map
/// key starting with `$` gets one more `$`, a float always has a fraction or exponent.
fn rpc_json(v: &meshlink_core::messaging::rpc::OwnedValue) -> Value {
    use meshlink_core::messaging::rpc::OwnedValue as O;
    match v {
        O::Null => Value::Null,
        O::Bool(b) => json!(b),
        O::Int(i) => json!(i),
        O::Float(f) => json!(f),
        O::Str(s) => json!(s),
        O::Bytes(b) => json!({ "$bytes": rpc_base64(b) }),
        O::List(l) => Value::Array(l.iter().map(rpc_json).collect()),
        O::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (if k.starts_with('$') { format!("${k}") } else { k.clone() }, rpc_json(v)))
                .collect(),
        ),
    }
}

/// RFC 4648 base64, standard alphabet, padded.
fn rpc_base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// RPC streaming packets (PROTOCOL.md §15.5.3): message bodies of kinds 0x20-0x22, and
/// malformed ones (checked by core/tests/stream_vectors.rs).
fn stream_file() -> Value {
    use meshlink_core::messaging::rpc::stream::{Reason, Role, StreamPacket as P};
    let item = [0x07, 0x01, 0x01, 0x6e, 0x02, 0x0e];
    let valid = [
        ("chunk_first", P::Chunk { call_id: 0x1_0003, seq: 0, last: false, item: &item }),
        ("chunk_last_null", P::Chunk { call_id: 0x1_0003, seq: 300, last: true, item: &[0x00] }),
        ("chunk_end_without_item", P::Chunk { call_id: 0x1_0003, seq: 5, last: true, item: &[] }),
        ("credit_16", P::Credit { call_id: 0x1_0003, credits: 16 }),
        ("cancel_reader_overrun", P::Cancel { call_id: 0x1_0003, role: Role::Reader, reason: Reason::Overrun }),
        ("cancel_writer_cancelled", P::Cancel { call_id: 7, role: Role::Writer, reason: Reason::Cancelled }),
    ];
    let valid: Vec<Value> = valid
        .iter()
        .map(|(name, p)| {
            let mut buf = [0u8; 64];
            let n = p.encode(&mut buf).unwrap();
            json!({ "name": name, "kind": p.kind(), "message": hx(&buf[..n]), "packet": format!("{p:?}") })
        })
        .collect();
    let invalid = [
        ("chunk_last_byte_2", 0x20, "01000200"),
        ("chunk_no_item_not_last", 0x20, "010000"),
        ("credit_zero", 0x21, "0100"),
        ("credit_trailing", 0x21, "010100"),
        ("cancel_role_2", 0x22, "010200"),
        ("cancel_short", 0x22, "0100"),
    ];
    let invalid: Vec<Value> =
        invalid.iter().map(|(name, k, h)| json!({ "name": name, "kind": k, "message": h })).collect();
    json!({ "valid": valid, "invalid": invalid })
}
