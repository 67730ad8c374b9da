//! Hostile input to our Noise handshake and `CipherState`. Every failure is asserted as a
//! typed `NoiseError`, and every failed handshake is checked to be poisoned afterwards.
//!
//! Covered:
//! - low-order X25519 keys (the seven points of the libsodium blocklist, the all-zero key,
//!   and the same seven with bit 255 set, which X25519 masks off) as `e` of message 1,
//!   `e` of message 2, and `s` in every position it can occur:
//!   * `e`, by overwriting the first 32 bytes of a genuine message (cheap path), and by a
//!     malicious `snow` peer that really writes the low-order `e` with valid MACs;
//!   * `s`, by a malicious `snow` peer whose static key "is" the low-order point: a custom
//!     snow `CryptoResolver` whose `Dh` reports the point as its public key and returns the
//!     all-zero DH output an honest peer would compute with it. This yields fully
//!     authenticated messages carrying a low-order `s` (XX msg 2 -> our `es`, XX msg 3 ->
//!     our `se`, IK msg 1 -> our `ss`), which no real key pair could produce;
//!   * the IK initiator configured with a low-order `remote_static` (our `es` on write).
//!
//!   Where the low-order key is not used by a DH in the same message (XX/XXpsk3 message 1
//!   has no DH), the failure is at our next DH, i.e. when we write message 2.
//! - every message size 0..=200 for every handshake message, as random junk, as a prefix of a
//!   genuine message and as a genuine message of exactly that size;
//! - bit flips of every bit of every authenticated handshake message (and of XX message 1,
//!   whose tampering is caught one message later);
//! - out-of-order reads/writes, `into_transport` before the end, messages after the end;
//! - transport: bit-flipped, truncated, extended, replayed ciphertexts and wrong AD, nonce
//!   exhaustion at 2^64-1 for encrypt and decrypt;
//! - wrong prologue (network id), wrong / missing psk, wrong IK responder key, missing IK key;
//! - too-small output buffers never panic.

use meshlink_core::noise::{
    CipherState, HandshakeParams, HandshakeState, NoiseError, Pattern, Role, Transport, DH_LEN, TAG_LEN,
};
use rand_core::{OsRng, RngCore};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

const PATTERNS: [Pattern; 3] = [Pattern::Xx, Pattern::XxPsk3, Pattern::Ik];
const PROLOGUE: &[u8] = b"meshlink/network-id/hostile-tests";
const PSK: [u8; 32] = [0x5a; 32];

// ---------------------------------------------------------------------------------------
// Keys and helpers
// ---------------------------------------------------------------------------------------

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The seven low-order X25519 u-coordinates of the libsodium blocklist, as 32 LE bytes.
fn blocklist() -> [(&'static str, [u8; 32]); 7] {
    [
        ("0", [0u8; 32]),
        ("1", {
            let mut k = [0u8; 32];
            k[0] = 1;
            k
        }),
        (
            "325606250916557431795983626356110631294008115727848805560023387167927233504 (order 8)",
            h32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        ),
        (
            "39382357235489614581723060781553021112529911719440698176882885853963445705823 (order 8)",
            h32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        ),
        ("p-1", h32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
        ("p", h32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
        ("p+1", h32("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
    ]
}

/// Blocklist, the all-zero key (the same bytes as point 0, listed on its own as the
/// brief asks), and the blocklist with bit 255 set (X25519 ignores that bit, so these are
/// the same points in a non-canonical encoding).
fn hostile_keys() -> Vec<(String, [u8; 32])> {
    let mut v: Vec<(String, [u8; 32])> = blocklist().iter().map(|(n, k)| (n.to_string(), *k)).collect();
    v.push(("all-zero key".into(), [0u8; 32]));
    for (n, k) in blocklist() {
        let mut k = k;
        k[31] |= 0x80;
        v.push((format!("{n} with bit 255 set"), k));
    }
    v
}

/// X25519 public key of `secret`, computed by snow's (independent) implementation.
fn x25519_pub(secret: &[u8; 32]) -> [u8; 32] {
    let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
    dh.set(secret);
    dh.pubkey().try_into().unwrap()
}

struct Party {
    secret: [u8; 32],
    public: [u8; 32],
}

fn party() -> Party {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    Party { secret, public: x25519_pub(&secret) }
}

fn fixed_party(byte: u8) -> Party {
    let secret = [byte; 32];
    Party { secret, public: x25519_pub(&secret) }
}

struct Cfg<'a> {
    prologue: &'a [u8],
    psk: Option<[u8; 32]>,
    /// Overrides the IK initiator's `remote_static` (default: the real responder key).
    ik_remote: Option<Option<[u8; 32]>>,
}

const DEFAULT: Cfg<'static> = Cfg { prologue: PROLOGUE, psk: Some(PSK), ik_remote: None };

fn params_for<'a>(p: Pattern, role: Role, me: &Party, peer: &Party, cfg: &Cfg<'a>) -> HandshakeParams<'a> {
    let remote_static = match (p, role) {
        (Pattern::Ik, Role::Initiator) => cfg.ik_remote.unwrap_or(Some(peer.public)),
        _ => None,
    };
    HandshakeParams {
        pattern: p,
        role,
        prologue: cfg.prologue,
        local_static: me.secret,
        remote_static,
        psk: if p == Pattern::XxPsk3 { cfg.psk } else { None },
    }
}

fn hs(p: Pattern, role: Role, me: &Party, peer: &Party, cfg: &Cfg<'_>) -> Result<HandshakeState, NoiseError> {
    HandshakeState::new(params_for(p, role, me, peer, cfg), &mut OsRng)
}

/// Two of our handshake states with fresh random keys.
fn pair_with(p: Pattern, icfg: &Cfg<'_>, rcfg: &Cfg<'_>) -> (HandshakeState, HandshakeState) {
    let (a, b) = (party(), party());
    (hs(p, Role::Initiator, &a, &b, icfg).unwrap(), hs(p, Role::Responder, &b, &a, rcfg).unwrap())
}

fn pair(p: Pattern) -> (HandshakeState, HandshakeState) {
    pair_with(p, &DEFAULT, &DEFAULT)
}

/// Two of our handshake states with fixed static and ephemeral keys: every call yields
/// states that produce byte-identical messages (for replaying tampered messages).
fn fixed_pair(p: Pattern) -> (HandshakeState, HandshakeState) {
    let (a, b) = (fixed_party(0x11), fixed_party(0x22));
    let mk = |role, me: &Party, peer: &Party, eph| {
        HandshakeState::with_ephemeral(params_for(p, role, me, peer, &DEFAULT), eph).unwrap()
    };
    (mk(Role::Initiator, &a, &b, [0x33; 32]), mk(Role::Responder, &b, &a, [0x44; 32]))
}

fn write(hs: &mut HandshakeState, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
    let mut out = vec![0u8; payload.len() + 256];
    let n = hs.write_message(payload, &mut out)?;
    out.truncate(n);
    Ok(out)
}

fn read(hs: &mut HandshakeState, msg: &[u8]) -> Result<Vec<u8>, NoiseError> {
    let mut out = vec![0u8; msg.len() + 64];
    let n = hs.read_message(msg, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// The state refuses everything after an error, and never turns into a transport.
fn assert_poisoned(mut hs: HandshakeState, ctx: &str) {
    assert!(!hs.is_finished(), "{ctx}: poisoned state reports finished");
    assert_eq!(read(&mut hs, &[0u8; 200]), Err(NoiseError::Poisoned), "{ctx}: read after error");
    assert_eq!(write(&mut hs, b"x"), Err(NoiseError::Poisoned), "{ctx}: write after error");
    assert_eq!(hs.into_transport().err(), Some(NoiseError::Poisoned), "{ctx}: into_transport after error");
}

/// Runs a fresh handshake up to (not including) message `idx`; returns (writer, reader)
/// of message `idx`.
fn advance(
    p: Pattern,
    (mut i, mut r): (HandshakeState, HandshakeState),
    idx: usize,
) -> (HandshakeState, HandshakeState) {
    for k in 0..idx {
        let (w, rd) = if k % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
        let m = write(w, format!("{p:?} message {k}").as_bytes()).unwrap();
        read(rd, &m).unwrap();
    }
    if idx % 2 == 0 {
        (i, r)
    } else {
        (r, i)
    }
}

/// Per-message overhead of each handshake message (the size of a message with an empty
/// payload).
fn overheads(p: Pattern) -> Vec<usize> {
    let e = DH_LEN;
    let s = DH_LEN + TAG_LEN;
    match p {
        Pattern::Xx => vec![e, e + s + TAG_LEN, s + TAG_LEN],
        Pattern::XxPsk3 => vec![e + TAG_LEN, e + s + TAG_LEN, s + TAG_LEN],
        Pattern::Ik => vec![e + s + TAG_LEN, e + TAG_LEN],
        other => panic!("pattern {other:?} is not covered by this test"),
    }
}

/// Whether message `idx` starts with an `e` token.
fn starts_with_e(p: Pattern, idx: usize) -> bool {
    idx < 2 || p == Pattern::Ik
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    OsRng.fill_bytes(&mut v);
    v
}

// ---------------------------------------------------------------------------------------
// A malicious snow peer: its `Dh` claims a low-order point as public key.
// ---------------------------------------------------------------------------------------

/// Setting this private key (as static or fixed ephemeral) turns a key malicious.
const EVIL: [u8; 32] = [0xEE; 32];

struct EvilResolver {
    low: [u8; 32],
}

struct EvilDh {
    inner: Box<dyn Dh>,
    low: [u8; 32],
    evil: bool,
}

impl Dh for EvilDh {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn pub_len(&self) -> usize {
        self.inner.pub_len()
    }
    fn priv_len(&self) -> usize {
        self.inner.priv_len()
    }
    fn set(&mut self, privkey: &[u8]) {
        self.evil = privkey == EVIL;
        self.inner.set(privkey);
    }
    fn generate(&mut self, rng: &mut dyn Random) {
        self.evil = false;
        self.inner.generate(rng);
    }
    fn pubkey(&self) -> &[u8] {
        if self.evil {
            &self.low
        } else {
            self.inner.pubkey()
        }
    }
    fn privkey(&self) -> &[u8] {
        self.inner.privkey()
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        if self.evil {
            // X25519(any clamped scalar, low-order point) = 0: exactly what the honest peer
            // computes (before refusing it).
            out[..32].fill(0);
            Ok(())
        } else {
            self.inner.dh(pubkey, out)
        }
    }
}

impl CryptoResolver for EvilResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        Some(Box::new(EvilDh { inner: DefaultResolver.resolve_dh(choice)?, low: self.low, evil: false }))
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Evil {
    None,
    Static,
    Ephemeral,
}

/// A snow handshake state, malicious as requested, talking to `ours` (our public key).
fn evil_snow(p: Pattern, role: Role, low: [u8; 32], evil: Evil, me: &Party, ours: &Party) -> snow::HandshakeState {
    let params = p.protocol_name().parse().unwrap();
    let mut b = snow::Builder::with_resolver(params, Box::new(EvilResolver { low })).prologue(PROLOGUE);
    b = if evil == Evil::Static { b.local_private_key(&EVIL) } else { b.local_private_key(&me.secret) };
    if evil == Evil::Ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(&EVIL);
    }
    if p == Pattern::XxPsk3 {
        b = b.psk(3, &PSK);
    }
    if p == Pattern::Ik && role == Role::Initiator {
        b = b.remote_public_key(&ours.public);
    }
    match role {
        Role::Initiator => b.build_initiator().unwrap(),
        Role::Responder => b.build_responder().unwrap(),
    }
}

fn snow_write(s: &mut snow::HandshakeState, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 1024];
    let n = s.write_message(payload, &mut out).unwrap();
    out.truncate(n);
    out
}

fn snow_read(s: &mut snow::HandshakeState, msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 1024];
    let n = s.read_message(msg, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Our state (in `our_role`) against an evil snow peer, run up to message `idx`.
/// Returns our state and snow's; message `idx` is then snow's to write.
fn against_evil(
    p: Pattern,
    our_role: Role,
    low: [u8; 32],
    evil: Evil,
    idx: usize,
) -> (HandshakeState, snow::HandshakeState) {
    let (me, them) = (party(), party());
    let their_role = if our_role == Role::Initiator { Role::Responder } else { Role::Initiator };
    let mut o = hs(p, our_role, &me, &them, &DEFAULT).unwrap();
    let mut s = evil_snow(p, their_role, low, evil, &them, &me);
    for k in 0..idx {
        let initiator_writes = k % 2 == 0;
        if initiator_writes == (our_role == Role::Initiator) {
            let m = write(&mut o, b"ours").unwrap();
            assert_eq!(snow_read(&mut s, &m), b"ours");
        } else {
            let m = snow_write(&mut s, b"snow");
            assert_eq!(read(&mut o, &m).unwrap(), b"snow");
        }
    }
    (o, s)
}

/// Control: the evil resolver without the marker key is an honest snow.
#[test]
fn evil_snow_harness_is_honest_without_the_marker() {
    let low = blocklist()[2].1;
    for p in PATTERNS {
        for our_role in [Role::Initiator, Role::Responder] {
            let (o, s) = against_evil(p, our_role, low, Evil::None, p.len());
            assert!(o.is_finished() && s.is_handshake_finished(), "{p:?} {our_role:?}");
            assert_eq!(&o.handshake_hash()[..], s.get_handshake_hash());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Low-order keys
// ---------------------------------------------------------------------------------------

#[test]
fn low_order_e_in_message_1() {
    for (name, low) in hostile_keys() {
        for p in PATTERNS {
            let ctx = format!("{p:?} msg1 e = {name}");

            // Cheap path: overwrite the `e` bytes of a genuine message 1.
            let (mut i, mut r) = pair(p);
            let mut m = write(&mut i, b"hello").unwrap();
            m[..DH_LEN].copy_from_slice(&low);
            match p {
                // `es` right after `e`: refused before anything is decrypted.
                Pattern::Ik => assert_eq!(read(&mut r, &m), Err(NoiseError::LowOrderKey), "{ctx}"),
                // No DH in XX message 1 and the payload is plaintext: the read succeeds,
                // and our `ee` when writing message 2 refuses the key.
                Pattern::Xx => {
                    assert_eq!(read(&mut r, &m).as_deref(), Ok(&b"hello"[..]), "{ctx}");
                    assert_eq!(write(&mut r, b"reply"), Err(NoiseError::LowOrderKey), "{ctx}");
                }
                // psk modifier: `e` keys the payload's encryption, so the tampered message
                // fails authentication first.
                Pattern::XxPsk3 => assert_eq!(read(&mut r, &m), Err(NoiseError::Decrypt), "{ctx}"),
                other => panic!("pattern {other:?} is not covered by this test"),
            }
            assert_poisoned(r, &ctx);

            // Authenticated path: a snow initiator that really sends the low-order `e`.
            let (mut o, mut s) = against_evil(p, Role::Responder, low, Evil::Ephemeral, 0);
            let m = snow_write(&mut s, b"evil");
            assert_eq!(&m[..DH_LEN], &low[..], "{ctx}: snow sent the low-order e");
            match p {
                Pattern::Ik => assert_eq!(read(&mut o, &m), Err(NoiseError::LowOrderKey), "{ctx} (snow)"),
                Pattern::Xx | Pattern::XxPsk3 => {
                    assert_eq!(read(&mut o, &m).as_deref(), Ok(&b"evil"[..]), "{ctx} (snow)");
                    assert_eq!(write(&mut o, b"reply"), Err(NoiseError::LowOrderKey), "{ctx} (snow)");
                }
                other => panic!("pattern {other:?} is not covered by this test"),
            }
            assert_poisoned(o, &ctx);
        }
    }
}

#[test]
fn low_order_e_in_message_2() {
    for (name, low) in hostile_keys() {
        for p in PATTERNS {
            let ctx = format!("{p:?} msg2 e = {name}");
            // Cheap path: `ee` follows `e` in message 2 of every pattern.
            let (mut w, mut i) = advance(p, pair(p), 1);
            let mut m = write(&mut w, b"hello").unwrap();
            m[..DH_LEN].copy_from_slice(&low);
            assert_eq!(read(&mut i, &m), Err(NoiseError::LowOrderKey), "{ctx}");
            assert_poisoned(i, &ctx);

            // Authenticated path: a snow responder that really sends the low-order `e`.
            let (mut o, mut s) = against_evil(p, Role::Initiator, low, Evil::Ephemeral, 1);
            let m = snow_write(&mut s, b"evil");
            assert_eq!(&m[..DH_LEN], &low[..]);
            assert_eq!(read(&mut o, &m), Err(NoiseError::LowOrderKey), "{ctx} (snow)");
            assert_poisoned(o, &ctx);
        }
    }
}

#[test]
fn low_order_s_from_the_peer() {
    for (name, low) in hostile_keys() {
        // XX / XXpsk3 message 2: the responder's `s`, refused by our `es`.
        for p in [Pattern::Xx, Pattern::XxPsk3] {
            let ctx = format!("{p:?} msg2 s = {name}");
            let (mut o, mut s) = against_evil(p, Role::Initiator, low, Evil::Static, 1);
            let m = snow_write(&mut s, b"evil");
            assert_eq!(read(&mut o, &m), Err(NoiseError::LowOrderKey), "{ctx}");
            assert_poisoned(o, &ctx);

            // XX / XXpsk3 message 3: the initiator's `s`, refused by our `se`.
            let ctx = format!("{p:?} msg3 s = {name}");
            let (mut o, mut s) = against_evil(p, Role::Responder, low, Evil::Static, 2);
            let m = snow_write(&mut s, b"evil");
            assert_eq!(read(&mut o, &m), Err(NoiseError::LowOrderKey), "{ctx}");
            assert_poisoned(o, &ctx);
        }
        // IK message 1: the initiator's `s`, refused by our `ss` (after `es` succeeded).
        let ctx = format!("Ik msg1 s = {name}");
        let (mut o, mut s) = against_evil(Pattern::Ik, Role::Responder, low, Evil::Static, 0);
        let m = snow_write(&mut s, b"evil");
        assert_eq!(read(&mut o, &m), Err(NoiseError::LowOrderKey), "{ctx}");
        assert_poisoned(o, &ctx);
    }
}

#[test]
fn ik_initiator_with_low_order_remote_static() {
    for (name, low) in hostile_keys() {
        let ctx = format!("Ik remote_static = {name}");
        let (a, b) = (party(), party());
        let cfg = Cfg { ik_remote: Some(Some(low)), ..DEFAULT };
        let mut i = hs(Pattern::Ik, Role::Initiator, &a, &b, &cfg).expect("construction does no DH");
        assert_eq!(i.remote_static(), Some(low));
        // `es` is the first token after `e` in message 1.
        assert_eq!(write(&mut i, b"hello"), Err(NoiseError::LowOrderKey), "{ctx}");
        assert_poisoned(i, &ctx);
    }
}

// ---------------------------------------------------------------------------------------
// Every message size
// ---------------------------------------------------------------------------------------

fn allowed_failure(e: NoiseError) -> bool {
    matches!(e, NoiseError::Truncated | NoiseError::Decrypt | NoiseError::LowOrderKey)
}

/// Feeds every size 0..=200 to the reader of message `idx`: random junk, a prefix of a
/// genuine message, and a genuine message of exactly that size.
fn every_size(p: Pattern, idx: usize) {
    let min = overheads(p)[idx];
    // XX message 1 is `e` followed by a plaintext payload: any size >= 32 is legal and
    // nothing in it can be checked yet.
    let plaintext = p == Pattern::Xx && idx == 0;
    for len in 0..=200usize {
        let ctx = format!("{p:?} message {} of {len} bytes", idx + 1);

        // Random junk.
        let (_, mut r) = advance(p, pair(p), idx);
        let junk = random(len);
        match read(&mut r, &junk) {
            Ok(pl) => {
                assert!(plaintext && len >= DH_LEN, "{ctx}: junk accepted");
                assert_eq!(pl, &junk[DH_LEN..]);
            }
            Err(e) => {
                assert!(!(plaintext && len >= DH_LEN), "{ctx}: legal plaintext message refused: {e:?}");
                assert!(allowed_failure(e), "{ctx}: junk gave {e:?}");
                if len < min.min(DH_LEN) || (len < DH_LEN && starts_with_e(p, idx)) {
                    assert_eq!(e, NoiseError::Truncated, "{ctx}: junk");
                }
                assert_poisoned(r, &ctx);
            }
        }

        // Prefix of a genuine message with a 300-byte payload.
        let (mut w, mut r) = advance(p, pair(p), idx);
        let payload = random(300);
        let genuine = write(&mut w, &payload).unwrap();
        assert_eq!(genuine.len(), min + 300);
        match read(&mut r, &genuine[..len]) {
            Ok(pl) => {
                assert!(plaintext && len >= DH_LEN, "{ctx}: truncated message accepted");
                assert_eq!(pl, &payload[..len - DH_LEN]);
            }
            Err(e) => {
                assert!(!(plaintext && len >= DH_LEN), "{ctx}: legal prefix refused: {e:?}");
                let want = if len < min { NoiseError::Truncated } else { NoiseError::Decrypt };
                assert_eq!(e, want, "{ctx}: prefix of a genuine message");
                assert_poisoned(r, &ctx);
            }
        }

        // A genuine message of exactly `len` bytes.
        if len >= min {
            let (mut w, mut r) = advance(p, pair(p), idx);
            let payload = random(len - min);
            let m = write(&mut w, &payload).unwrap();
            assert_eq!(m.len(), len);
            assert_eq!(read(&mut r, &m), Ok(payload), "{ctx}: genuine");
        }
    }
}

#[test]
fn every_size_of_message_1_to_a_fresh_responder() {
    for p in PATTERNS {
        every_size(p, 0);
    }
}

#[test]
fn every_size_of_message_2_to_an_initiator() {
    for p in PATTERNS {
        every_size(p, 1);
    }
}

#[test]
fn every_size_of_message_3_to_a_responder() {
    for p in [Pattern::Xx, Pattern::XxPsk3] {
        every_size(p, 2);
    }
}

// ---------------------------------------------------------------------------------------
// Bit flips
// ---------------------------------------------------------------------------------------

/// Flips every bit of message `idx` and feeds it to an otherwise identical reader.
fn flip_every_bit(p: Pattern, idx: usize) {
    let (mut w, _) = advance(p, fixed_pair(p), idx);
    let genuine = write(&mut w, b"a handshake payload of some length").unwrap();
    // Control: the deterministic replay accepts the untouched message.
    let (_, mut r) = advance(p, fixed_pair(p), idx);
    assert!(read(&mut r, &genuine).is_ok(), "{p:?} message {}: control", idx + 1);
    let e_bytes = if starts_with_e(p, idx) { DH_LEN } else { 0 };
    for bit in 0..genuine.len() * 8 {
        let ctx = format!("{p:?} message {} bit {bit}", idx + 1);
        let mut m = genuine.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        let (_, mut r) = advance(p, fixed_pair(p), idx);
        let got = read(&mut r, &m);
        if bit / 8 < e_bytes {
            assert!(matches!(got, Err(NoiseError::Decrypt | NoiseError::LowOrderKey)), "{ctx}: {got:?}");
        } else {
            assert_eq!(got, Err(NoiseError::Decrypt), "{ctx}");
        }
        assert_poisoned(r, &ctx);
    }
}

#[test]
fn bit_flips_in_message_2() {
    for p in PATTERNS {
        flip_every_bit(p, 1);
    }
}

#[test]
fn bit_flips_in_message_3() {
    for p in [Pattern::Xx, Pattern::XxPsk3] {
        flip_every_bit(p, 2);
    }
}

#[test]
fn bit_flips_in_authenticated_message_1() {
    // XXpsk3 (payload keyed by e) and IK (encrypted s, es/ss) authenticate message 1.
    for p in [Pattern::XxPsk3, Pattern::Ik] {
        flip_every_bit(p, 0);
    }
}

/// XX message 1 is unauthenticated when it arrives; tampering with it is caught when the
/// initiator reads message 2 (the transcripts differ).
#[test]
fn bit_flips_in_xx_message_1_are_caught_at_message_2() {
    let p = Pattern::Xx;
    let (mut i0, _) = fixed_pair(p);
    let genuine = write(&mut i0, b"payload 1").unwrap();
    for bit in 0..genuine.len() * 8 {
        let ctx = format!("Xx message 1 bit {bit}");
        let mut m = genuine.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        let (mut i, mut r) = fixed_pair(p);
        write(&mut i, b"payload 1").unwrap();
        read(&mut r, &m).unwrap();
        let m2 = match write(&mut r, b"payload 2") {
            Ok(m2) => m2,
            Err(e) => {
                assert_eq!(e, NoiseError::LowOrderKey, "{ctx}");
                continue;
            }
        };
        assert_eq!(read(&mut i, &m2), Err(NoiseError::Decrypt), "{ctx}");
        assert_poisoned(i, &ctx);
    }
}

// ---------------------------------------------------------------------------------------
// Order of operations
// ---------------------------------------------------------------------------------------

#[test]
fn reading_on_our_turn_or_writing_on_theirs_is_out_of_order() {
    for p in PATTERNS {
        for idx in 0..p.len() {
            let ctx = format!("{p:?} at message {}", idx + 1);
            // The writer of message idx tries to read it instead.
            let (mut w, _) = advance(p, pair(p), idx);
            assert!(w.is_my_turn());
            assert_eq!(read(&mut w, &[0u8; 128]), Err(NoiseError::OutOfOrder), "{ctx}: writer reads");
            // Every error poisons, misuse included.
            assert_poisoned(w, &ctx);
            // The reader of message idx tries to write it.
            let (_, mut r) = advance(p, pair(p), idx);
            assert!(!r.is_my_turn());
            assert_eq!(write(&mut r, b"x"), Err(NoiseError::OutOfOrder), "{ctx}: reader writes");
            assert_poisoned(r, &ctx);
        }
        // Writing twice in a row, and replaying a message to the same reader.
        let (mut i, mut r) = pair(p);
        let m1 = write(&mut i, b"one").unwrap();
        assert_eq!(write(&mut i, b"again"), Err(NoiseError::OutOfOrder), "{p:?}: double write");
        read(&mut r, &m1).unwrap();
        assert_eq!(read(&mut r, &m1), Err(NoiseError::OutOfOrder), "{p:?}: replayed message 1");
    }
}

#[test]
fn into_transport_before_the_end_fails() {
    for p in PATTERNS {
        for idx in 0..p.len() {
            let (w, r) = advance(p, pair(p), idx);
            assert_eq!(w.into_transport().err(), Some(NoiseError::OutOfOrder), "{p:?} writer at message {}", idx + 1);
            assert_eq!(r.into_transport().err(), Some(NoiseError::OutOfOrder), "{p:?} reader at message {}", idx + 1);
        }
        // The last writer is done before the last reader.
        let (mut w, r) = advance(p, pair(p), p.len() - 1);
        write(&mut w, b"last").unwrap();
        assert!(w.is_finished());
        assert!(!r.is_finished());
        assert!(w.into_transport().is_ok());
        assert_eq!(r.into_transport().err(), Some(NoiseError::OutOfOrder));
    }
}

#[test]
fn messages_after_the_end_fail() {
    for p in PATTERNS {
        for (side, op) in [(0, "write"), (0, "read"), (1, "write"), (1, "read")] {
            let (a, b) = advance(p, pair(p), p.len());
            let mut st = if side == 0 { a } else { b };
            assert!(st.is_finished());
            let got = if op == "write" { write(&mut st, b"late") } else { read(&mut st, &[0u8; 100]) };
            assert_eq!(got, Err(NoiseError::OutOfOrder), "{p:?} side {side} {op} after the end");
            // Like every error, this poisons the finished handshake.
            assert_poisoned(st, &format!("{p:?} after the end"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------

fn transports(p: Pattern) -> (Transport, Transport) {
    let (a, b) = advance(p, pair(p), p.len());
    let (i, r) = if p.len() % 2 == 0 { (a, b) } else { (b, a) };
    (i.into_transport().unwrap(), r.into_transport().unwrap())
}

fn seal(c: &mut CipherState, pt: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; pt.len() + TAG_LEN];
    buf[..pt.len()].copy_from_slice(pt);
    let n = c.encrypt(&[], &mut buf, pt.len()).unwrap();
    assert_eq!(n, buf.len());
    buf
}

#[test]
fn transport_bit_flips_are_rejected_without_moving_the_nonce() {
    for p in PATTERNS {
        let (mut a, mut b) = transports(p);
        for _ in 0..3 {
            let ct = seal(&mut a.send, b"warm-up");
            let mut c = ct.clone();
            b.recv.decrypt(&[], &mut c, ct.len()).unwrap();
        }
        let pt = random(100);
        let ct = seal(&mut a.send, &pt);
        let bits = ct.len() * 8;
        let n0 = b.recv.nonce();
        for k in 0..100 {
            // Spread over the whole ciphertext, tag included, hitting every bit index.
            let bit = (k * bits / 100 + k % 8) % bits;
            let mut m = ct.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            let before = m.clone();
            assert_eq!(b.recv.decrypt(&[], &mut m, ct.len()), Err(NoiseError::Decrypt), "{p:?} bit {bit}");
            assert_eq!(b.recv.nonce(), n0, "{p:?} bit {bit}: nonce moved");
            assert_eq!(m, before, "{p:?} bit {bit}: buffer changed by a failed decrypt");
            assert_eq!(b.recv.decrypt_at(n0, &[], &mut m, ct.len()), Err(NoiseError::Decrypt));
        }
        // Wrong AD, one byte short, one byte long, wrong nonce: all refused, nonce unmoved.
        let mut m = ct.clone();
        assert_eq!(b.recv.decrypt(b"ad", &mut m, ct.len()), Err(NoiseError::Decrypt));
        assert_eq!(b.recv.decrypt(&[], &mut m, ct.len() - 1), Err(NoiseError::Decrypt));
        let mut longer = ct.clone();
        longer.push(0);
        assert_eq!(b.recv.decrypt(&[], &mut longer, ct.len() + 1), Err(NoiseError::Decrypt));
        assert_eq!(b.recv.decrypt_at(n0 + 1, &[], &mut m, ct.len()), Err(NoiseError::Decrypt));
        assert_eq!(b.recv.nonce(), n0);
        // The genuine message still decrypts, then a replay is refused.
        let mut m = ct.clone();
        assert_eq!(b.recv.decrypt(&[], &mut m, ct.len()), Ok(pt.len()));
        assert_eq!(&m[..pt.len()], &pt[..]);
        assert_eq!(b.recv.nonce(), n0 + 1);
        let mut again = ct.clone();
        assert_eq!(b.recv.decrypt(&[], &mut again, ct.len()), Err(NoiseError::Decrypt), "{p:?}: replay");
        assert_eq!(b.recv.nonce(), n0 + 1);
        // The other direction is independent and still works.
        let ct = seal(&mut b.send, b"back");
        let mut m = ct.clone();
        assert_eq!(a.recv.decrypt(&[], &mut m, ct.len()), Ok(4));
    }
}

#[test]
fn nonce_exhaustion() {
    let (mut a, mut b) = transports(Pattern::Xx);
    a.send.set_nonce(u64::MAX - 1);
    b.recv.set_nonce(u64::MAX - 1);
    // 2^64-2 is the last usable nonce.
    let ct = seal(&mut a.send, b"last one");
    assert_eq!(a.send.nonce(), u64::MAX);
    let mut m = ct.clone();
    assert_eq!(b.recv.decrypt(&[], &mut m, ct.len()), Ok(8));
    assert_eq!(b.recv.nonce(), u64::MAX);
    // 2^64-1 is reserved: both directions refuse, repeatedly, without wrapping.
    for _ in 0..3 {
        let mut buf = [0u8; 64];
        assert_eq!(a.send.encrypt(&[], &mut buf, 10), Err(NoiseError::NonceExhausted));
        assert_eq!(buf, [0u8; 64], "nothing was encrypted");
        assert_eq!(a.send.nonce(), u64::MAX);
        let mut m = ct.clone();
        assert_eq!(b.recv.decrypt(&[], &mut m, ct.len()), Err(NoiseError::NonceExhausted));
        assert_eq!(b.recv.nonce(), u64::MAX);
    }
    // Set directly, too, and with an empty message and a too-short one.
    let mut c = CipherState::new([7u8; 32]);
    c.set_nonce(u64::MAX);
    assert_eq!(c.encrypt(&[], &mut [0u8; 16], 0), Err(NoiseError::NonceExhausted));
    assert_eq!(c.decrypt(&[], &mut [0u8; 16], 16), Err(NoiseError::NonceExhausted));
    assert_eq!(c.decrypt(&[], &mut [0u8; 4], 4), Err(NoiseError::NonceExhausted));
    // rekey is still possible (it uses 2^64-1 internally) and keeps the nonce.
    c.rekey();
    assert_eq!(c.nonce(), u64::MAX);
}

/// Noise §5.1 reserves nonce 2^64-1; snow's `StatelessTransportState` refuses it for both
/// read and write. Ours refuses it in `encrypt`/`decrypt` but not in `encrypt_at` /
/// `decrypt_at`, and ENCRYPT(k, 2^64-1, "", zeros) is exactly REKEY's computation: a peer
/// that encrypts 32 zero bytes at that nonce sends the next rekey key in the clear.
#[test]

fn explicit_nonce_u64_max_is_reserved() {
    let key = [9u8; 32];
    let c = CipherState::new(key);
    let mut buf = [0u8; 32 + TAG_LEN];
    if let Ok(n) = c.encrypt_at(u64::MAX, &[], &mut buf, 32) {
        let mut rekeyed = CipherState::new(key);
        rekeyed.rekey();
        let mut leaked = CipherState::new(buf[..32].try_into().unwrap());
        let (mut x, mut y) = ([1u8; 16 + TAG_LEN], [1u8; 16 + TAG_LEN]);
        rekeyed.encrypt(&[], &mut x, 16).unwrap();
        leaked.encrypt(&[], &mut y, 16).unwrap();
        panic!(
            "encrypt_at(2^64-1) succeeded ({n} bytes); its first 32 bytes {} the post-rekey key",
            if x == y { "ARE" } else { "are not" }
        );
    }
    assert_eq!(c.encrypt_at(u64::MAX, &[], &mut buf, 32), Err(NoiseError::NonceExhausted));
    assert_eq!(c.decrypt_at(u64::MAX, &[], &mut buf, 48), Err(NoiseError::NonceExhausted));
}

#[test]
fn truncated_ciphertexts() {
    let (_, mut b) = transports(Pattern::Ik);
    let n0 = b.recv.nonce();
    for len in 0..TAG_LEN {
        let mut m = vec![0xabu8; 64];
        assert_eq!(b.recv.decrypt(&[], &mut m, len), Err(NoiseError::Truncated), "{len} bytes");
        assert_eq!(b.recv.decrypt_at(3, &[], &mut m, len), Err(NoiseError::Truncated), "{len} bytes");
        assert_eq!(b.recv.nonce(), n0);
    }
    // A length beyond the buffer is refused, not a panic.
    assert_eq!(b.recv.decrypt(&[], &mut [0u8; 20], 21), Err(NoiseError::Truncated));
    assert_eq!(b.recv.nonce(), n0);
    // Exactly a tag of junk: authentication failure, not truncation.
    assert_eq!(b.recv.decrypt(&[], &mut [0u8; 16], 16), Err(NoiseError::Decrypt));
    // And an output buffer too small for the tag on encrypt.
    let mut c = CipherState::new([1u8; 32]);
    assert_eq!(c.encrypt(&[], &mut [0u8; 20], 10), Err(NoiseError::BufferTooSmall { required: 26 }));
    assert_eq!(c.nonce(), 0);
}

// ---------------------------------------------------------------------------------------
// Wrong configuration
// ---------------------------------------------------------------------------------------

/// The first message carrying an encrypted item, and so the first place a wrong prologue
/// can be noticed.
fn first_encrypted(p: Pattern) -> usize {
    match p {
        Pattern::Xx => 1,
        Pattern::XxPsk3 | Pattern::Ik => 0,
        other => panic!("pattern {other:?} is not covered by this test"),
    }
}

/// Runs our handshake; returns the index of the failing message, its reader and the error.
fn run(
    p: Pattern,
    mut i: HandshakeState,
    mut r: HandshakeState,
) -> Result<(), (usize, Box<HandshakeState>, NoiseError)> {
    for k in 0..p.len() {
        let (w, rd) = if k % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
        let m = write(w, b"payload").unwrap();
        if let Err(e) = read(rd, &m) {
            return Err((k, Box::new(if k % 2 == 0 { r } else { i }), e));
        }
    }
    Ok(())
}

#[test]
fn wrong_prologue_fails_at_the_first_encrypted_item() {
    for p in PATTERNS {
        let a = Cfg { prologue: b"meshlink/network-A", ..DEFAULT };
        let b = Cfg { prologue: b"meshlink/network-B", ..DEFAULT };
        let (i, r) = pair_with(p, &a, &b);
        let (k, reader, e) = run(p, i, r).expect_err("must fail");
        assert_eq!((k, e), (first_encrypted(p), NoiseError::Decrypt), "{p:?}");
        assert_poisoned(*reader, &format!("{p:?} wrong prologue"));
        // Control: equal prologues succeed.
        let (i, r) = pair_with(p, &a, &a);
        assert!(run(p, i, r).is_ok());
    }
}

#[test]
fn wrong_or_missing_psk() {
    let p = Pattern::XxPsk3;
    let a = Cfg { psk: Some([1u8; 32]), ..DEFAULT };
    let b = Cfg { psk: Some([2u8; 32]), ..DEFAULT };
    let (i, r) = pair_with(p, &a, &b);
    // psk3: mixed in at the end of message 3, whose payload is the first thing keyed by it.
    let (k, reader, e) = run(p, i, r).expect_err("must fail");
    assert_eq!((k, e), (2, NoiseError::Decrypt));
    assert_poisoned(*reader, "wrong psk");
    let none = Cfg { psk: None, ..DEFAULT };
    let (x, y) = (party(), party());
    for role in [Role::Initiator, Role::Responder] {
        assert_eq!(hs(p, role, &x, &y, &none).err(), Some(NoiseError::MissingPsk));
    }
    // Patterns without psk ignore one.
    assert!(hs(Pattern::Xx, Role::Initiator, &x, &y, &a).is_ok());
}

#[test]
fn ik_wrong_or_missing_responder_static() {
    let (a, b, c) = (party(), party(), party());
    // The initiator believes the responder is `c`, but `b` answers.
    let cfg = Cfg { ik_remote: Some(Some(c.public)), ..DEFAULT };
    let i = hs(Pattern::Ik, Role::Initiator, &a, &b, &cfg).unwrap();
    let r = hs(Pattern::Ik, Role::Responder, &b, &a, &DEFAULT).unwrap();
    let (k, reader, e) = run(Pattern::Ik, i, r).expect_err("must fail");
    assert_eq!((k, e), (0, NoiseError::Decrypt));
    assert_poisoned(*reader, "IK wrong responder key");
    let cfg = Cfg { ik_remote: Some(None), ..DEFAULT };
    assert_eq!(hs(Pattern::Ik, Role::Initiator, &a, &b, &cfg).err(), Some(NoiseError::MissingRemoteStatic));
}

// ---------------------------------------------------------------------------------------
// Buffers
// ---------------------------------------------------------------------------------------

#[test]
fn too_small_buffers_never_panic() {
    for p in PATTERNS {
        for idx in 0..p.len() {
            let payload = b"twenty bytes payload";
            let full = overheads(p)[idx] + payload.len();
            for size in 0..full {
                let (mut w, _) = advance(p, pair(p), idx);
                let mut out = vec![0u8; size];
                let required = match w.write_message(payload, &mut out) {
                    Err(NoiseError::BufferTooSmall { required }) => required,
                    other => panic!("{p:?} msg {} into {size} bytes: {other:?}", idx + 1),
                };
                // Refused up front without touching the state: a retry with the size it
                // asked for succeeds.
                let mut big = vec![0u8; required];
                assert_eq!(w.write_message(payload, &mut big), Ok(full), "{p:?} msg {} retry", idx + 1);
            }
            let (mut w, _) = advance(p, fixed_pair(p), idx);
            let mut out = vec![0u8; full];
            assert_eq!(w.write_message(payload, &mut out), Ok(full));
            let m = out;
            for size in 0..=full {
                let (_, mut r) = advance(p, fixed_pair(p), idx);
                let mut out = vec![0u8; size];
                match r.read_message(&m, &mut out) {
                    Ok(n) => assert_eq!(&out[..n], payload),
                    // The payload buffer must hold the ciphertext (payload + tag).
                    Err(NoiseError::BufferTooSmall { .. }) => {}
                    Err(e) => panic!("{p:?} msg {} payload buffer {size}: {e:?}", idx + 1),
                }
            }
        }
    }
}

/// `BufferTooSmall { required }` from `HandshakeState::write_message` reports the whole
/// message size, so a caller can resize to `required` and retry.
#[test]
fn handshake_buffer_too_small_reports_the_message_size() {
    let mut wrong = Vec::new();
    for p in PATTERNS {
        for idx in 0..p.len() {
            let payload = b"twenty bytes payload";
            let full = overheads(p)[idx] + payload.len();
            for size in 0..full {
                let (mut w, _) = advance(p, pair(p), idx);
                if let Err(NoiseError::BufferTooSmall { required }) = w.write_message(payload, &mut vec![0u8; size]) {
                    if required != full {
                        let short = if size + 1 == full { " (one short)" } else { "" };
                        wrong.push(format!(
                            "{p:?} msg {} into {size}{short}: required {required}, message is {full}",
                            idx + 1
                        ));
                    }
                }
            }
        }
    }
    let one_short: Vec<&String> = wrong.iter().filter(|w| w.contains("(one short)")).collect();
    assert!(
        wrong.is_empty(),
        "{} wrong `required` values; one byte short of each message:\n{one_short:#?}",
        wrong.len()
    );
}
