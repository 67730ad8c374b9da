//! Checks that the current code reproduces the golden vectors in `tests/vectors/` byte for
//! byte (written by `core/examples/gen_vectors.rs`; see each file's "description"):
//! - `handshake.json`: two nodes with the recorded keys and seeds emit exactly the recorded
//!   records over datagrams and over streams (each transport has its own list: message 1
//!   is zero-padded on datagrams); an independent replay through
//!   `HandshakeState::with_ephemeral` gives the same Noise messages, payloads and handshake
//!   hash; the recorded transport keys open every transport record; the padding constants
//!   match their definitions.
//! - `records.json`: headers and packets built from the decoded fields encode to the
//!   recorded bytes, and the recorded bytes parse back to those fields.
//! - `malformed.json`: every input gives exactly the recorded error (Debug and Display).
//! - A datagram Init ends with its `macs` tail (PROTOCOL.md §5.12), checked here with
//!   mac2 zeros; `core/tests/cookie.rs` checks `cookie.json` and the cookie exchange.

use std::collections::HashSet;
use std::net::SocketAddr;

use meshlink_core::cookie::{check_mac1, mac1_key, MACS_LEN};
use meshlink_core::noise::symmetric::hash;
use meshlink_core::noise::{CipherState, HandshakeParams, HandshakeState, NoiseError, Pattern, Role, TAG_LEN};
use meshlink_core::session::{AMPLIFICATION_FACTOR, HANDSHAKE_RECORD_MAX, INIT_MIN_DATAGRAM};
use meshlink_core::wire::frame::{FrameDecoder, FrameProgress};
use meshlink_core::wire::record::INIT_HEADER_LEN;
use meshlink_core::wire::{
    CloseReason, ErrorCode, Header, Hello, Packet, RejectCode, WireError, HELLO_MAX_LEN, WIRE_VERSION,
};
use meshlink_core::{Config, ConnId, Error, Event, HeapNode, Instant, Keypair, TransportKind};
use serde_json::Value;

fn load(file: &str) -> Value {
    let path = format!("{}/../tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"))).unwrap()
}

fn b32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().expect("32 bytes")
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn frame(record: &[u8]) -> Vec<u8> {
    [&(record.len() as u16).to_be_bytes()[..], record].concat()
}

fn config(c: &Value) -> Config {
    let mut hello = Hello::named(c["hello_name"].as_str().unwrap()).unwrap();
    for e in c["hello_extensions"].as_array().unwrap() {
        hello = hello.with_extension(num(&e[0]) as u8, &bytes(&e[1])).unwrap();
    }
    Config::default()
        .with(|cfg| {
            cfg.hello = hello;
            cfg.network_key = (!c["network_key"].is_null()).then(|| b32(&c["network_key"]));
            cfg.max_frame = num(&c["max_frame"]) as usize;
            cfg.max_datagram = num(&c["max_datagram"]) as usize;
            cfg.max_message = num(&c["max_message"]) as usize;
            cfg.send_queue = num(&c["send_queue"]) as usize;
            cfg.ik_fast_path = c["ik_fast_path"].as_bool().unwrap();
        })
        .with_network_id(&bytes(&c["network_id"]))
        .unwrap()
}

/// A header from its decoded JSON fields (the inverse of what the generator wrote).
fn header_from(h: &Value) -> Header {
    let n = |k: &str| num(&h[k]);
    match h["type"].as_str().unwrap() {
        "Init" => Header::Init {
            version: n("version") as u8,
            min_version: n("min_version") as u8,
            pattern: n("pattern") as u8,
            sender: n("sender") as u32,
            network_tag: n("network_tag") as u32,
        },
        "Resp" => Header::Resp { sender: n("sender") as u32, receiver: n("receiver") as u32 },
        "Final" => Header::Final { receiver: n("receiver") as u32 },
        "Transport0" | "Transport1" => {
            Header::Transport { phase: n("phase") as u8, receiver: n("receiver") as u32, counter: n("counter") }
        }
        "Reject" => {
            let code = RejectCode::from_u8(n("code") as u8);
            assert_eq!(format!("{code:?}"), h["code_name"].as_str().unwrap());
            Header::Reject {
                code,
                version: n("version") as u8,
                min_version: n("min_version") as u8,
                receiver: n("receiver") as u32,
            }
        }
        "Cookie" => Header::Cookie {
            receiver: n("receiver") as u32,
            nonce: bytes(&h["nonce"]).try_into().unwrap(),
            sealed: bytes(&h["sealed"]).try_into().unwrap(),
        },
        t => panic!("unknown record type {t}"),
    }
}

/// Checks a decoded packet against its JSON fields, and that the fields encode to `plaintext`.
fn check_packet(p: &Value, plaintext: &[u8], what: &str) {
    let decoded = Packet::decode(plaintext).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (data, unknown) = (body_or_empty(p, "bytes"), body_or_empty(p, "body"));
    let n = |k: &str| num(&p[k]);
    let want = match p["kind"].as_str().unwrap() {
        "Ping" => Packet::Ping { seq: n("seq") as u32 },
        "Pong" => Packet::Pong { seq: n("seq") as u32 },
        "Data" => Packet::Data {
            kind: n("kind_byte") as u8,
            msg_id: n("msg_id") as u32,
            total: n("total") as u32,
            offset: n("offset") as u32,
            bytes: &data,
        },
        "Error" => {
            let code = ErrorCode::from_u16(n("code") as u16);
            assert_eq!(format!("{code:?}"), p["code_name"].as_str().unwrap(), "{what}");
            Packet::Error { code, detail: p["detail"].as_str().unwrap() }
        }
        "Close" => {
            let reason = CloseReason::from_u8(n("reason") as u8);
            assert_eq!(format!("{reason:?}"), p["reason_name"].as_str().unwrap(), "{what}");
            Packet::Close { reason }
        }
        "Unknown" => Packet::Unknown { kind: n("kind_byte") as u8, body: &unknown },
        "Credit" => Packet::Credit { limit: n("limit") },
        "Blocked" => Packet::Blocked { at: n("at") },
        k => panic!("{what}: unknown packet kind {k}"),
    };
    assert_eq!(decoded, want, "{what}: decoded packet");
    assert_eq!(decoded.kind() as u64, n("kind_byte"), "{what}: kind byte");
    let mut out = vec![0u8; plaintext.len() + 16];
    let len = want.encode(&mut out).unwrap();
    assert_eq!(&out[..len], plaintext, "{what}: packet encoding");
}

fn body_or_empty(p: &Value, k: &str) -> Vec<u8> {
    p.get(k).map(bytes).unwrap_or_default()
}

fn check_documented(file: &str) -> Value {
    let f = load(file);
    assert!(f["description"].as_str().is_some_and(|d| d.len() > 100), "{file}: needs a description");
    let mut names = HashSet::new();
    for v in f["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        assert!(names.insert(name.to_owned()), "{file}: duplicate name {name}");
        assert!(v["section"].as_str().is_some_and(|s| s.starts_with("PROTOCOL.md §")), "{file}/{name}: section");
    }
    assert!(!names.is_empty());
    f
}

// =========================================================================== handshake.json

type VNode = HeapNode;

/// Runs the recorded scenario on fresh nodes; every record as (0 initiator / 1 responder, bytes).
fn run(v: &Value, kind: TransportKind) -> Vec<(usize, Vec<u8>)> {
    let sides = [&v["initiator"], &v["responder"]];
    let now = Instant::from_micros(num(&v["now_us"]));
    let addr: [SocketAddr; 2] = [
        v["initiator_addr"].as_str().unwrap().parse().unwrap(),
        v["responder_addr"].as_str().unwrap().parse().unwrap(),
    ];
    let mut n = sides.map(|s| {
        let c = config(&s["config"]);
        VNode::with_capacity(c, Keypair::from_secret(b32(&s["static_secret"])), b32(&s["seed"]), 2).unwrap()
    });
    let ids = [n[0].peer_id(), n[1].peer_id()];
    let expected = v["connect_with_expected_key"].as_bool().unwrap().then_some(ids[1]);
    let c0 = n[0].connect(now, kind, addr[1], expected).unwrap();
    let conns: [Option<ConnId>; 2] =
        [Some(c0), (kind == TransportKind::Stream).then(|| n[1].accept(now, addr[0]).unwrap())];
    let (mut out, mut connected, mut got) = (Vec::new(), [false; 2], Vec::new());
    let rounds = |n: &mut [VNode; 2],
                  out: &mut Vec<(usize, Vec<u8>)>,
                  connected: &mut [bool; 2],
                  got: &mut Vec<(usize, Vec<u8>)>| loop {
        let mut moved = false;
        for side in 0..2 {
            let mut buf = vec![0u8; 8192];
            while let Some(t) = n[side].poll_transmit(now, &mut buf) {
                moved = true;
                let sent = buf[..t.len].to_vec();
                // Split into records: one per datagram, possibly several frames per stream transmit.
                if kind == TransportKind::Datagram {
                    out.push((side, sent.clone()));
                } else {
                    let (mut dec, mut fb, mut at) = (FrameDecoder::new(), vec![0u8; 65537], 0);
                    while at < sent.len() {
                        match dec.push(&mut fb, &sent[at..], 65535).unwrap() {
                            FrameProgress::Frame { consumed, len } => {
                                out.push((side, fb[2..2 + len].to_vec()));
                                at += consumed;
                            }
                            FrameProgress::NeedMore { .. } => panic!("a stream transmit ends mid-frame"),
                        }
                    }
                }
                let to = 1 - side;
                let mut rest = &sent[..];
                while !rest.is_empty() {
                    let used = match kind {
                        TransportKind::Datagram => n[to].handle_datagram(now, addr[side], rest).map(|_| rest.len()),
                        TransportKind::Stream => n[to].handle_stream(conns[to].unwrap(), now, rest),
                    };
                    while let Some(e) = n[to].poll_event() {
                        match e {
                            Event::Connected { .. } => connected[to] = true,
                            Event::Message { data, .. } => got.push((to, data.to_vec())),
                            Event::QualityUpdate { .. } => {}
                            e => panic!("unexpected event {e:?}"),
                        }
                    }
                    rest = &rest[used.expect("a genuine record is accepted")..];
                }
            }
        }
        if !moved {
            break;
        }
    };
    rounds(&mut n, &mut out, &mut connected, &mut got);
    assert_eq!(connected, [true, true]);
    let mut want = Vec::new();
    for m in v["messages"].as_array().unwrap() {
        let from = usize::from(m["from"] == "responder");
        let data = bytes(&m["data"]);
        n[from].send(now, &ids[1 - from], &data).unwrap();
        want.push((1 - from, data));
        rounds(&mut n, &mut out, &mut connected, &mut got);
    }
    assert_eq!(got, want, "application messages");
    out
}

/// Replays one transport's handshake through our Noise state machine with the recorded
/// ephemerals; `t` is the vector's `datagram` or `stream` object.
fn replay_noise(v: &Value, t: &Value, what: &str) {
    let pattern = match v["pattern"].as_str().unwrap() {
        "XX" => Pattern::Xx,
        "XXpsk3" => Pattern::XxPsk3,
        _ => Pattern::Ik,
    };
    assert_eq!(pattern.protocol_name(), v["protocol_name"].as_str().unwrap());
    let prologue = bytes(&v["prologue"]);
    let psk = (!v["psk"].is_null()).then(|| b32(&v["psk"]));
    let sides = [&v["initiator"], &v["responder"]];
    let responder_public = b32(&sides[1]["static_public"]);
    let mut hs = [Role::Initiator, Role::Responder].map(|role| {
        let s = sides[usize::from(role == Role::Responder)];
        let params = HandshakeParams {
            pattern,
            role,
            prologue: &prologue,
            local_static: b32(&s["static_secret"]),
            remote_static: (role == Role::Initiator && pattern == Pattern::Ik).then_some(responder_public),
            psk,
        };
        HandshakeState::with_ephemeral(params, b32(&s["ephemeral_secret"])).unwrap()
    });
    let records = t["records"].as_array().unwrap();
    let mut transport = None;
    for (i, r) in records.iter().enumerate() {
        let from = usize::from(r["from"] == "responder");
        if r.get("noise_message").is_none() {
            // Transport records: sealed by the replayed transport keys, exactly.
            let t = transport.get_or_insert_with(|| {
                let [a, b] = std::mem::replace(&mut hs, [dummy(), dummy()]);
                assert_eq!(hex::encode(a.handshake_hash()), t["handshake_hash"].as_str().unwrap(), "{what}: hash");
                assert_eq!(a.handshake_hash(), b.handshake_hash(), "{what}");
                [a.into_transport().unwrap(), b.into_transport().unwrap()]
            });
            let rec = bytes(&r["record"]);
            let pt = bytes(&r["plaintext"]);
            let mut out = [&rec[..16], &pt[..], &[0u8; 16]].concat();
            let (hdr, body) = out.split_at_mut(16);
            t[from].send.encrypt_at(num(&r["header"]["counter"]), hdr, body, pt.len()).unwrap();
            assert_eq!(out, rec, "{what} record {i}: sealing under the replayed keys");
            continue;
        }
        let (msg, payload) = (bytes(&r["noise_message"]), bytes(&r["payload"]));
        let mut out = vec![0u8; 2048];
        let n = hs[from].write_message(&payload, &mut out).unwrap();
        assert_eq!(hex::encode(&out[..n]), hex::encode(&msg), "{what} record {i}: Noise message");
        let mut pl = vec![0u8; 2048];
        let n = hs[1 - from].read_message(&msg, &mut pl).unwrap();
        assert_eq!(pl[..n], payload[..], "{what} record {i}: payload");
        let rec = bytes(&r["record"]);
        // A datagram Init's mac tail follows the Noise message (§5.12): mac1 over the rest.
        let macs = r.get("macs").map(bytes).unwrap_or_default();
        assert!(macs.is_empty() || (i == 0 && macs.len() == MACS_LEN && macs[16..] == [0; 16]), "{what}: macs");
        if !macs.is_empty() {
            // handshake.json names each side's config; spec_examples.json uses "meshlink".
            let c = &v["initiator"]["config"];
            let key = if c.is_null() { mac1_key(b"meshlink") } else { mac1_key(&config(c).network_id) };
            assert!(check_mac1(&key, &rec), "{what}: mac1");
        }
        let body = &rec[Header::parse(&rec).unwrap().len()..rec.len() - macs.len()];
        assert_eq!(body, &msg[..], "{what} record {i}: body is the Noise message");
        assert_eq!(rec[rec.len() - macs.len()..], macs[..], "{what} record {i}: the tail is `macs`");
    }
    assert!(transport.is_some(), "{what}: no transport records");
}

/// A placeholder state, only to move the real ones out of the array.
fn dummy() -> HandshakeState {
    let p = HandshakeParams {
        pattern: Pattern::Xx,
        role: Role::Initiator,
        prologue: b"",
        local_static: [1; 32],
        remote_static: None,
        psk: None,
    };
    HandshakeState::with_ephemeral(p, [2; 32]).unwrap()
}

/// The constants the description states, against the node's and against their definitions.
fn check_constants(c: &Value) {
    let record_max = INIT_HEADER_LEN + 32 + (32 + TAG_LEN) + HELLO_MAX_LEN + TAG_LEN;
    assert_eq!(num(&c["hello_max_len"]) as usize, HELLO_MAX_LEN);
    assert_eq!(num(&c["handshake_record_max"]) as usize, HANDSHAKE_RECORD_MAX);
    assert_eq!(HANDSHAKE_RECORD_MAX, record_max);
    assert_eq!(num(&c["amplification_factor"]) as usize, AMPLIFICATION_FACTOR);
    assert_eq!(num(&c["init_min_datagram"]) as usize, INIT_MIN_DATAGRAM);
    // The largest Resp fits the budget one padded Init buys, and one byte less would not do.
    const _: () = assert!(AMPLIFICATION_FACTOR * INIT_MIN_DATAGRAM >= HANDSHAKE_RECORD_MAX);
    const _: () = assert!(AMPLIFICATION_FACTOR * (INIT_MIN_DATAGRAM - 1) < HANDSHAKE_RECORD_MAX);
}

/// The payload rule for Noise message 1 (see the description): what `payload` must be.
/// IK carries the initiator's Hello, XX and XXpsk3 nothing; on datagrams zeros follow, up
/// to what makes the Init record INIT_MIN_DATAGRAM bytes.
fn expected_init_payload(v: &Value, kind: TransportKind) -> Vec<u8> {
    let pattern = v["pattern"].as_str().unwrap();
    let mut payload = if pattern == "IK" { bytes(&v["initiator"]["hello"]) } else { Vec::new() };
    if kind == TransportKind::Datagram {
        // Message 1 with an empty payload: e, then (IK) the encrypted s, then the payload's
        // tag once there is a key (XXpsk3 mixes e into it, IK has es).
        let overhead = match pattern {
            "XX" => 32,
            "XXpsk3" => 32 + TAG_LEN,
            _ => 32 + (32 + TAG_LEN) + TAG_LEN,
        };
        let min = INIT_MIN_DATAGRAM - INIT_HEADER_LEN - overhead;
        payload.resize(payload.len().max(min), 0);
    }
    payload
}

#[test]
fn handshake_vectors() {
    let f = check_documented("handshake.json");
    check_constants(&f["constants"]);
    let vectors = f["vectors"].as_array().unwrap();
    let patterns: HashSet<&str> = vectors.iter().map(|v| v["pattern"].as_str().unwrap()).collect();
    assert_eq!(patterns, HashSet::from(["XX", "XXpsk3", "IK"]));
    let as_hex = |l: &[(usize, Vec<u8>)]| l.iter().map(|(f, r)| format!("{f}:{}", hex::encode(r))).collect::<Vec<_>>();
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let hs_count = if v["pattern"] == "IK" { 2 } else { 3 };
        let mut lists = Vec::new();
        for (key, kind) in [("datagram", TransportKind::Datagram), ("stream", TransportKind::Stream)] {
            let what = format!("{name} over {key}");
            let t = &v[key];
            let records = t["records"].as_array().unwrap();
            let want: Vec<(usize, Vec<u8>)> =
                records.iter().map(|r| (usize::from(r["from"] == "responder"), bytes(&r["record"]))).collect();
            assert_eq!(as_hex(&run(v, kind)), as_hex(&want), "{what}: records");
            for r in records {
                let rec = bytes(&r["record"]);
                assert_eq!(Header::parse(&rec).unwrap(), header_from(&r["header"]), "{what}: header fields");
                match kind {
                    TransportKind::Stream => assert_eq!(bytes(&r["frame"]), frame(&rec), "{what}: frame"),
                    TransportKind::Datagram => assert!(r.get("frame").is_none(), "{what}: a frame on datagrams"),
                }
            }
            assert_eq!(bytes(&records[0]["payload"]), expected_init_payload(v, kind), "{what}: message 1 payload");
            if kind == TransportKind::Datagram {
                // Every vector's initiator Hello is short, so its datagram Init is padded.
                assert_eq!(want[0].1.len(), INIT_MIN_DATAGRAM + MACS_LEN, "{what}: padded Init and mac tail");
            }
            replay_noise(v, t, &what);
            check_derived(v, records, &what);
            check_transport_records(v, records, &what);
            lists.push(want);
        }
        // What differs between the transports is message 1's payload (padded on datagrams,
        // in every pattern), and what follows from it: the handshake records and hash.
        assert_eq!(lists[0][hs_count..], lists[1][hs_count..], "{name}: transport records differ");
        assert_ne!(v["datagram"]["handshake_hash"], v["stream"]["handshake_hash"], "{name}: handshake hashes");
        assert_ne!(lists[0][..hs_count], lists[1][..hs_count], "{name}: handshake records");
    }
}

/// The derived values the description states, on one transport's records.
fn check_derived(v: &Value, records: &[Value], what: &str) {
    let (init, resp) = (bytes(&records[0]["record"]), bytes(&records[1]["record"]));
    for (s, e_at) in [(&v["initiator"], &init[12..44]), (&v["responder"], &resp[12..44])] {
        let c = config(&s["config"]);
        assert_eq!(Keypair::from_secret(b32(&s["static_secret"])).peer_id().0, b32(&s["static_public"]), "{what}");
        let e = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(b32(&s["ephemeral_secret"])));
        assert_eq!(e.as_bytes(), &b32(&s["ephemeral_public"]), "{what}: ephemeral public");
        assert_eq!(&e.as_bytes()[..], e_at, "{what}: ephemeral in the record");
        let hello = Hello::decode(&bytes(&s["hello"])).unwrap();
        // The node appends its datagram window (PROTOCOL.md §8.8) to the configured ones.
        let mut ext = c.hello.extensions.clone();
        if c.datagram_window > 0 {
            let mut v = [0u8; 5];
            let n = meshlink_core::session::window_ext(c.datagram_window, &mut v);
            ext.insert(meshlink_core::session::EXT_DATAGRAM_WINDOW, &v[..n]).unwrap();
        }
        // And its batching limit (PROTOCOL.md §9.2).
        if c.max_batch > 1 {
            ext.insert(meshlink_core::session::EXT_BATCH, &[c.max_batch as u8]).unwrap();
        }
        assert_eq!(
            (hello.name.as_str(), hello.version, hello.max_message as usize, &hello.extensions),
            (c.hello.name.as_str(), WIRE_VERSION, c.max_message, &ext)
        );
        let id = &c.network_id;
        assert_eq!(
            bytes(&v["prologue"]),
            [&b"meshlink"[..], &[WIRE_VERSION, WIRE_VERSION, id.len() as u8], id].concat(),
            "{what}: prologue"
        );
        let tag = hash(&[b"meshlink network tag", id]);
        assert_eq!(num(&v["network_tag"]), u64::from(u32::from_le_bytes(tag[..4].try_into().unwrap())), "{what}: tag");
        assert_eq!(
            v["psk"].as_str().map(|p| p.to_owned()),
            c.network_key.map(|k| hex::encode(hash(&[b"meshlink psk", &k, id])))
        );
    }
    assert_eq!(
        header_from(&records[0]["header"]),
        Header::Init {
            version: WIRE_VERSION,
            min_version: WIRE_VERSION,
            pattern: init[2],
            sender: num(&v["initiator"]["index"]) as u32,
            network_tag: num(&v["network_tag"]) as u32
        },
        "{what}"
    );
    let sender = |h| matches!(h, Header::Resp { sender, .. } if u64::from(sender) == num(&v["responder"]["index"]));
    assert!(sender(Header::parse(&resp).unwrap()), "{what}: responder index");
}

/// The recorded transport keys open every transport record to the recorded packet.
fn check_transport_records(v: &Value, records: &[Value], what: &str) {
    let keys = [&v["transport_keys"]["initiator_to_responder"], &v["transport_keys"]["responder_to_initiator"]]
        .map(|k| CipherState::new(b32(k)));
    for r in records.iter().filter(|r| r.get("packet").is_some()) {
        let rec = bytes(&r["record"]);
        let mut body = rec[16..].to_vec();
        let n = body.len();
        let from = usize::from(r["from"] == "responder");
        let len = keys[from].decrypt_at(num(&r["header"]["counter"]), &rec[..16], &mut body, n).unwrap();
        assert_eq!(body[..len], bytes(&r["plaintext"])[..], "{what}: plaintext");
        check_packet(&r["packet"], &body[..len], what);
    }
}

// =========================================================================== records.json

#[test]
fn record_vectors() {
    let f = check_documented("records.json");
    let mut kinds = HashSet::new();
    let mut types = HashSet::new();
    let mut chunks: Vec<(Vec<u8>, usize, Vec<u8>)> = Vec::new();
    for v in f["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let rec = bytes(&v["datagram"]);
        let header = header_from(&v["header"]);
        types.insert(v["header"]["type"].as_str().unwrap().to_owned());
        assert_eq!(Header::parse(&rec), Ok(header), "{name}: parse");
        let mut h = vec![0u8; header.len()];
        header.encode(&mut h).unwrap();
        assert_eq!(rec[..h.len()], h[..], "{name}: header encoding");
        assert_eq!(num(&v["header"]["type_byte"]), u64::from(rec[0]), "{name}");
        // The frame decodes back to the record.
        let fr = bytes(&v["frame"]);
        assert_eq!(fr, frame(&rec), "{name}: frame");
        let mut buf = vec![0u8; 65537];
        assert_eq!(
            FrameDecoder::new().push(&mut buf, &fr, 65535),
            Ok(FrameProgress::Frame { consumed: fr.len(), len: rec.len() })
        );
        let Header::Transport { counter, .. } = header else {
            assert_eq!(rec[h.len()..], bytes(&v["body"])[..], "{name}: body");
            continue;
        };
        let pt = bytes(&v["plaintext"]);
        kinds.insert(v["packet"]["kind"].as_str().unwrap().to_owned());
        check_packet(&v["packet"], &pt, name);
        // Sealing: `rekeys` REKEYs of `key` give `phase_key`, and both seal to the record.
        let mut k = CipherState::new(b32(&v["key"]));
        (0..num(&v["rekeys"])).for_each(|_| k.rekey());
        for c in [k, CipherState::new(b32(&v["phase_key"]))] {
            let mut out = [&rec[..16], &pt[..], &[0u8; 16]].concat();
            let (hdr, body) = out.split_at_mut(16);
            c.encrypt_at(counter, hdr, body, pt.len()).unwrap();
            assert_eq!(hex::encode(&out), hex::encode(&rec), "{name}: sealed record");
            let mut body = rec[16..].to_vec();
            let n = body.len();
            assert_eq!(c.decrypt_at(counter, &rec[..16], &mut body, n), Ok(pt.len()), "{name}: open");
        }
        if let Some(m) = v.get("message") {
            chunks.push((bytes(m), num(&v["packet"]["offset"]) as usize, bytes(&v["packet"]["bytes"])));
        }
    }
    let want: HashSet<String> =
        ["Init", "Resp", "Final", "Transport0", "Transport1", "Reject", "Cookie"].map(String::from).into();
    assert_eq!(types, want, "every record type");
    let want: HashSet<String> =
        ["Ping", "Pong", "Data", "Error", "Close", "Credit", "Blocked", "Unknown"].map(String::from).into();
    assert_eq!(kinds, want, "every packet kind");
    // The multi-chunk Data vectors reassemble to their message.
    let message = chunks.first().map(|c| c.0.clone()).expect("multi-chunk vectors");
    let mut whole = vec![None; message.len()];
    for (m, off, b) in &chunks {
        assert_eq!(m, &message);
        b.iter().enumerate().for_each(|(i, x)| whole[off + i] = Some(*x));
    }
    assert!(chunks.len() > 1);
    assert_eq!(whole.into_iter().collect::<Option<Vec<u8>>>(), Some(message));
}

// =========================================================================== malformed.json

fn debug_display<E: std::fmt::Debug + std::fmt::Display>(e: E) -> (String, String) {
    (format!("{e:?}"), e.to_string())
}

fn malformed_error(f: &Value, v: &Value) -> (String, String) {
    let input = bytes(&v["input"]);
    match v["layer"].as_str().unwrap() {
        "record_header" => debug_display::<WireError>(Header::parse(&input).unwrap_err()),
        "frame" => {
            let max = num(&v["max_frame"]) as usize;
            let mut buf = vec![0u8; 2 + max];
            debug_display(FrameDecoder::new().push(&mut buf, &input, max).unwrap_err())
        }
        "packet" => debug_display(Packet::decode(&input).unwrap_err()),
        "hello" => debug_display(Hello::decode(&input).unwrap_err()),
        "transport_open" => {
            let Ok(Header::Transport { counter, .. }) = Header::parse(&input) else { panic!("not a transport record") };
            let mut body = input[16..].to_vec();
            let n = body.len();
            debug_display::<NoiseError>(
                CipherState::new(b32(&v["key"])).decrypt_at(counter, &input[..16], &mut body, n).unwrap_err(),
            )
        }
        layer => {
            let nd = &f["node"];
            let c = config(&nd["config"]);
            let mut n =
                VNode::with_capacity(c, Keypair::from_secret(b32(&nd["static_secret"])), b32(&nd["seed"]), 2).unwrap();
            let now = Instant::from_micros(num(&nd["now_us"]));
            let from: SocketAddr = nd["hostile_addr"].as_str().unwrap().parse().unwrap();
            let r: Result<(), Error> = match layer {
                "node_datagram" => n.handle_datagram(now, from, &input),
                "node_stream" => {
                    let c = n.accept(now, from).unwrap();
                    n.handle_stream(c, now, &input).map(|_| ())
                }
                l => panic!("unknown layer {l}"),
            };
            // Nothing survives a refused input on a fresh node.
            let e = r.expect_err("malformed input accepted");
            while n.poll_event().is_some() {}
            assert_eq!(n.stats().half_open, 0, "{}", v["name"]);
            debug_display(e)
        }
    }
}

#[test]
fn malformed_vectors() {
    let f = check_documented("malformed.json");
    let mut layers = HashSet::new();
    for v in f["vectors"].as_array().unwrap() {
        layers.insert(v["layer"].as_str().unwrap().to_owned());
        let got = malformed_error(&f, v);
        let want = (v["error"].as_str().unwrap().to_owned(), v["display"].as_str().unwrap().to_owned());
        assert_eq!(got, want, "{}", v["name"]);
    }
    assert_eq!(layers.len(), 7, "{layers:?}");
}

// =========================================================================== spec_examples.json

/// The §13 transcripts: replayed through our Noise state machine like handshake.json, and
/// printed in PROTOCOL.md byte for byte (every stream record and every handshake hash).
#[test]
fn spec_examples() {
    let f = check_documented("spec_examples.json");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md")).unwrap();
    let doc: String = doc.chars().filter(|c| !c.is_whitespace()).collect();
    let vectors = f["vectors"].as_array().unwrap();
    let patterns: HashSet<&str> = vectors.iter().map(|v| v["pattern"].as_str().unwrap()).collect();
    assert_eq!(patterns, HashSet::from(["XX", "XXpsk3", "IK"]));
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let id = b"meshlink";
        assert_eq!(bytes(&v["prologue"]), [&b"meshlink"[..], &[WIRE_VERSION, WIRE_VERSION, 8], id].concat());
        assert_eq!(
            v["psk"].as_str().map(|p| p.to_owned()),
            v["network_key"].as_str().map(|k| hex::encode(hash(&[b"meshlink psk", &bytes(&Value::from(k)), id])))
        );
        for key in ["stream", "datagram"] {
            let t = &v[key];
            replay_noise(v, t, &format!("{name} over {key}"));
            let h = t["handshake_hash"].as_str().unwrap();
            assert!(doc.contains(h), "{name}: the {key} handshake hash {h} is not in PROTOCOL.md");
        }
        for r in v["stream"]["records"].as_array().unwrap() {
            let rec = r["record"].as_str().unwrap();
            assert!(doc.contains(rec), "{name}: record {rec} is not in PROTOCOL.md");
        }
        let hello = Hello::decode(&bytes(&v["initiator"]["hello"])).unwrap();
        assert_eq!(hello.version, WIRE_VERSION, "{name}: the default Hello");
    }
}
