//! Cookies for datagram Inits (PROTOCOL.md §5.12), after WireGuard (whitepaper §5.4.4 and
//! §5.4.7): a responder under load answers an Init with a small stateless Cookie reply
//! instead of doing any Diffie-Hellman, and admits only an Init whose `mac2` proves that
//! its sender receives at its source address.
//!
//! - Every datagram Init ends with `mac1 || mac2` ([`MACS_LEN`] bytes). `mac1` is keyed
//!   with [`mac1_key`] (from the network id: an XX initiator does not know the responder's
//!   key, which WireGuard uses) and covers the Init; `mac2` is keyed with a cookie and
//!   covers the Init and `mac1`, or is zeros without a fresh cookie.
//! - The responder's [`Checker`] derives a cookie from a random secret, rotated every
//!   [`COOKIE_SECRET_MAX_AGE`], and the Init's source address: nothing is stored per
//!   initiator.
//! - The Cookie reply ([`COOKIE_REPLY_LEN`] bytes) carries the cookie encrypted with
//!   XChaCha20-Poly1305 under [`reply_key`], with the Init's `mac1` as associated data, so
//!   only the sender of that Init can use it.
//! - The initiator keeps the cookie in a [`Jar`] for [`COOKIE_SECRET_MAX_AGE`] minus
//!   [`COOKIE_LATENCY`].
//!
//! ```
//! use meshlink_core::cookie::{self, Checker, Jar, Mac2};
//! use meshlink_core::Instant;
//! use rand_core::SeedableRng;
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let (k1, kr) = (cookie::mac1_key(b"meshlink"), cookie::reply_key(b"meshlink"));
//! let from = "192.0.2.1:7000".parse().unwrap();
//! let now = Instant::ZERO;
//! // The initiator's Init, with room for the macs (no cookie yet: mac2 is zeros).
//! let mut init = [7u8; 311];
//! cookie::seal_init(&k1, None, &mut init);
//! assert!(cookie::check_mac1(&k1, &init));
//! // The responder, under load, has no valid mac2: it answers with a Cookie reply.
//! let mut checker = Checker::new();
//! let (verdict, c) = checker.check_mac2(&mut rng, now, &from, &init);
//! assert_eq!(verdict, Mac2::Missing);
//! let mut reply = [0u8; cookie::COOKIE_REPLY_LEN];
//! cookie::seal_reply(&kr, 0x5a3d_0001, &[9; 24], &c, cookie::mac1_of(&init), &mut reply);
//! // The initiator opens it with the mac1 it sent, and sends its Init again with mac2.
//! let c = cookie::open_reply(&kr, &reply, cookie::mac1_of(&init)).unwrap();
//! let jar = Jar::new(c, now);
//! cookie::seal_init(&k1, jar.fresh(now), &mut init);
//! assert_eq!(checker.check_mac2(&mut rng, now, &from, &init).0, Mac2::Valid);
//! ```

use core::net::SocketAddr;
use core::time::Duration;

use blake2::digest::consts::U16;
use blake2::digest::Mac;
use blake2::Blake2sMac;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand_core::RngCore;
use zeroize::Zeroize;

use crate::time::Instant;
use crate::wire::record::RecordType;

/// One MAC: keyed BLAKE2s with a 16-byte output (WireGuard's `Mac`).
pub const MAC_LEN: usize = 16;
/// The tail of a datagram Init: `mac1 || mac2`.
pub const MACS_LEN: usize = 2 * MAC_LEN;
/// A cookie: a MAC of the source address.
pub const COOKIE_LEN: usize = 16;
/// The XChaCha20-Poly1305 nonce of a Cookie reply.
pub const NONCE_LEN: usize = 24;
/// A Cookie reply record: type, 3 reserved, receiver, nonce, encrypted cookie and tag.
pub const COOKIE_REPLY_LEN: usize = 8 + NONCE_LEN + COOKIE_LEN + 16;
/// How long a responder keeps one cookie secret (WireGuard's COOKIE_SECRET_MAX_AGE).
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);
/// The initiator drops its cookie this long before the secret can have rotated
/// (WireGuard's COOKIE_SECRET_LATENCY).
pub const COOKIE_LATENCY: Duration = Duration::from_secs(5);

type Blake2sMac128 = Blake2sMac<U16>;

fn mac_state(key: &[u8], parts: &[&[u8]]) -> Blake2sMac128 {
    // Our keys are 16 or 32 bytes, and BLAKE2s takes keys of 1..=32 bytes: never fails.
    let mut m = <Blake2sMac128 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        Mac::update(&mut m, p);
    }
    m
}

/// `MAC(key, parts...)`: keyed BLAKE2s-128 of the concatenation (`key` of 1..=32 bytes).
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    mac_state(key, parts).finalize().into_bytes().into()
}

/// Compares `MAC(key, msg)` with `tag` in constant time.
fn mac_ok(key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    mac_state(key, &[msg]).verify_slice(tag).is_ok()
}

/// The key of `mac1`: BLAKE2s-256("meshlink mac1" || network_id).
pub fn mac1_key(network_id: &[u8]) -> [u8; 32] {
    crate::noise::symmetric::hash(&[b"meshlink mac1", network_id])
}

/// The key that encrypts a cookie in its reply: BLAKE2s-256("meshlink cookie" || network_id).
pub fn reply_key(network_id: &[u8]) -> [u8; 32] {
    crate::noise::symmetric::hash(&[b"meshlink cookie", network_id])
}

/// The `mac1` of a whole datagram Init (its bytes `len-32..len-16`); zeros if it is
/// shorter than the tail.
pub fn mac1_of(init: &[u8]) -> &[u8; MAC_LEN] {
    const ZERO: [u8; MAC_LEN] = [0; MAC_LEN];
    let at = init.len().saturating_sub(MACS_LEN);
    init.get(at..at + MAC_LEN).and_then(|s| s.try_into().ok()).unwrap_or(&ZERO)
}

/// Writes `mac1` and `mac2` into the last [`MACS_LEN`] bytes of `init` (the record before
/// them is what they cover): `mac2` under `cookie`, or zeros without one. Does nothing to
/// a buffer shorter than the tail.
pub fn seal_init(mac1_key: &[u8; 32], cookie: Option<&[u8; COOKIE_LEN]>, init: &mut [u8]) {
    let Some(at) = init.len().checked_sub(MACS_LEN) else { return };
    let m1 = mac(mac1_key, &[&init[..at]]);
    init[at..at + MAC_LEN].copy_from_slice(&m1);
    set_mac2(cookie, init);
}

/// Rewrites only `mac2` (the last 16 bytes), e.g. when a cookie arrives or expires.
pub fn set_mac2(cookie: Option<&[u8; COOKIE_LEN]>, init: &mut [u8]) {
    let Some(at) = init.len().checked_sub(MAC_LEN) else { return };
    let m2 = cookie.map_or([0; MAC_LEN], |c| mac(c, &[&init[..at]]));
    init[at..].copy_from_slice(&m2);
}

/// Whether a whole datagram Init carries the right `mac1` (constant-time compare).
pub fn check_mac1(mac1_key: &[u8; 32], init: &[u8]) -> bool {
    let Some(at) = init.len().checked_sub(MACS_LEN) else { return false };
    mac_ok(mac1_key, &init[..at], &init[at..at + MAC_LEN])
}

/// `MAC(secret, ip || port)`: the IP as its 4 (IPv4) or 16 (IPv6) octets, the port as
/// two big-endian bytes. [`Checker::cookie`] with a given secret.
pub fn address_cookie(secret: &[u8; 32], addr: &SocketAddr) -> [u8; COOKIE_LEN] {
    let port = addr.port().to_be_bytes();
    match addr.ip() {
        core::net::IpAddr::V4(ip) => mac(secret, &[&ip.octets(), &port]),
        core::net::IpAddr::V6(ip) => mac(secret, &[&ip.octets(), &port]),
    }
}

/// The responder's verdict on a `mac2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mac2 {
    /// `mac2` is the MAC of the Init under this source's current cookie.
    Valid,
    /// `mac2` is all zeros: the initiator holds no cookie.
    Missing,
    /// `mac2` is neither: a cookie from a rotated secret, another address, or forged.
    Bad,
}

/// The responder's side: the rotating secret and the cookie of an address.
pub struct Checker {
    secret: [u8; 32],
    /// When the secret was drawn; `None` until the first cookie is needed, so a node that
    /// is never under load draws nothing from its RNG for cookies.
    born: Option<Instant>,
}

impl core::fmt::Debug for Checker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Checker").field("born", &self.born).finish_non_exhaustive()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new()
    }
}

impl Checker {
    /// A checker without a secret yet (drawn at the first use).
    pub const fn new() -> Self {
        Checker { secret: [0; 32], born: None }
    }

    /// The cookie of `addr` now: `MAC(secret, ip || port)`, the IP as its 4 or 16 octets
    /// and the port big-endian. A secret older than [`COOKIE_SECRET_MAX_AGE`] is replaced
    /// by a fresh one from `rng` first (so cookies given out before no longer verify).
    pub fn cookie(&mut self, rng: &mut impl RngCore, now: Instant, addr: &SocketAddr) -> [u8; COOKIE_LEN] {
        if self.born.map_or(true, |t| now.saturating_since(t) >= COOKIE_SECRET_MAX_AGE) {
            rng.fill_bytes(&mut self.secret);
            self.born = Some(now);
        }
        address_cookie(&self.secret, addr)
    }

    /// Checks the `mac2` of a whole datagram Init from `from`; also returns the source's
    /// current cookie, for the reply.
    pub fn check_mac2(
        &mut self,
        rng: &mut impl RngCore,
        now: Instant,
        from: &SocketAddr,
        init: &[u8],
    ) -> (Mac2, [u8; COOKIE_LEN]) {
        let cookie = self.cookie(rng, now, from);
        let Some(at) = init.len().checked_sub(MAC_LEN) else { return (Mac2::Bad, cookie) };
        let got = &init[at..];
        let verdict = if mac_ok(&cookie, &init[..at], got) {
            Mac2::Valid
        } else if got.iter().all(|b| *b == 0) {
            Mac2::Missing
        } else {
            Mac2::Bad
        };
        (verdict, cookie)
    }
}

/// Writes a Cookie reply record (PROTOCOL.md §5.12): `0x07`, 3 zero bytes, `receiver`
/// (the Init's `sender`, u32le), `nonce`, then `cookie` encrypted with XChaCha20-Poly1305
/// under `key` with `mac1` (the Init's) as associated data, and its tag.
pub fn seal_reply(
    key: &[u8; 32],
    receiver: u32,
    nonce: &[u8; NONCE_LEN],
    cookie: &[u8; COOKIE_LEN],
    mac1: &[u8; MAC_LEN],
    out: &mut [u8; COOKIE_REPLY_LEN],
) {
    out.fill(0);
    out[0] = RecordType::Cookie as u8;
    out[4..8].copy_from_slice(&receiver.to_le_bytes());
    out[8..32].copy_from_slice(nonce);
    let (ct, tag) = out[32..].split_at_mut(COOKIE_LEN);
    ct.copy_from_slice(cookie);
    let aead = XChaCha20Poly1305::new(key.into());
    // Encryption fails only for plaintexts beyond ChaCha20's 256 GiB: never for 16 bytes.
    let t = aead.encrypt_in_place_detached(XNonce::from_slice(nonce), mac1, ct).unwrap_or_else(|_| unreachable!());
    tag.copy_from_slice(&t);
}

/// Why a Cookie reply was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyError {
    /// Shorter than [`COOKIE_REPLY_LEN`], or not a Cookie record.
    Malformed,
    /// The tag did not verify: another network, not for the Init we sent, or forged.
    Decrypt,
}

/// Opens a Cookie reply to the Init whose `mac1` we sent; returns the cookie. Bytes after
/// [`COOKIE_REPLY_LEN`] are ignored.
pub fn open_reply(key: &[u8; 32], record: &[u8], mac1: &[u8; MAC_LEN]) -> Result<[u8; COOKIE_LEN], ReplyError> {
    let r = record.get(..COOKIE_REPLY_LEN).ok_or(ReplyError::Malformed)?;
    if r[0] != RecordType::Cookie as u8 {
        return Err(ReplyError::Malformed);
    }
    let mut cookie = [0u8; COOKIE_LEN];
    cookie.copy_from_slice(&r[32..48]);
    let aead = XChaCha20Poly1305::new(key.into());
    aead.decrypt_in_place_detached(XNonce::from_slice(&r[8..32]), mac1, &mut cookie, Tag::from_slice(&r[48..64]))
        .map_err(|_| ReplyError::Decrypt)?;
    Ok(cookie)
}

/// The initiator's side: the last cookie a responder gave it, and when.
#[derive(Clone, Copy)]
pub struct Jar {
    cookie: [u8; COOKIE_LEN],
    received: Instant,
}

impl core::fmt::Debug for Jar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Jar").field("received", &self.received).finish_non_exhaustive()
    }
}

impl Jar {
    pub fn new(cookie: [u8; COOKIE_LEN], received: Instant) -> Self {
        Jar { cookie, received }
    }

    /// The cookie, while younger than [`COOKIE_SECRET_MAX_AGE`] − [`COOKIE_LATENCY`]
    /// (115 s): after that the responder may have rotated its secret, and an Init goes
    /// out with a zero `mac2` instead.
    pub fn fresh(&self, now: Instant) -> Option<&[u8; COOKIE_LEN]> {
        (now.saturating_since(self.received) < COOKIE_SECRET_MAX_AGE - COOKIE_LATENCY).then_some(&self.cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn init_with(k1: &[u8; 32], cookie: Option<&[u8; 16]>) -> [u8; 311] {
        let mut init = [0u8; 311];
        for (i, b) in init.iter_mut().enumerate() {
            *b = i as u8;
        }
        seal_init(k1, cookie, &mut init);
        init
    }

    #[test]
    fn mac1_binds_the_whole_init_and_the_network() {
        let k1 = mac1_key(b"meshlink");
        let init = init_with(&k1, None);
        assert!(check_mac1(&k1, &init));
        assert!(!check_mac1(&mac1_key(b"other"), &init));
        for i in [0, 12, 278, 279, 294] {
            let mut bad = init;
            bad[i] ^= 1;
            assert!(!check_mac1(&k1, &bad), "flip at {i}");
        }
        // mac2 is not covered by mac1.
        let mut m2 = init;
        m2[310] ^= 1;
        assert!(check_mac1(&k1, &m2));
        assert!(!check_mac1(&k1, &init[..31]));
        assert_eq!(&init[295..311], &[0u8; 16]);
    }

    #[test]
    fn mac2_verdicts() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let k1 = mac1_key(b"meshlink");
        let mut ck = Checker::new();
        let (a, b) = (addr("192.0.2.1:7000"), addr("192.0.2.1:7001"));
        let now = Instant::from_millis(1);
        let (v, c) = ck.check_mac2(&mut rng, now, &a, &init_with(&k1, None));
        assert_eq!(v, Mac2::Missing);
        assert_eq!(ck.check_mac2(&mut rng, now, &a, &init_with(&k1, Some(&c))).0, Mac2::Valid);
        // Another port is another address: the cookie does not transfer.
        assert_eq!(ck.check_mac2(&mut rng, now, &b, &init_with(&k1, Some(&c))).0, Mac2::Bad);
        assert_ne!(ck.cookie(&mut rng, now, &b), c);
        // IPv6 works the same.
        let v6 = addr("[2001:db8::1]:7000");
        let c6 = ck.cookie(&mut rng, now, &v6);
        assert_eq!(ck.check_mac2(&mut rng, now, &v6, &init_with(&k1, Some(&c6))).0, Mac2::Valid);
        assert_eq!(ck.check_mac2(&mut rng, now, &a, &[0u8; 8]).0, Mac2::Bad);
    }

    #[test]
    fn secret_rotates_after_its_max_age() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut ck = Checker::new();
        let a = addr("10.0.0.1:1");
        let t0 = Instant::from_millis(5);
        let c0 = ck.cookie(&mut rng, t0, &a);
        assert_eq!(ck.cookie(&mut rng, t0 + Duration::from_millis(119_999), &a), c0);
        let c1 = ck.cookie(&mut rng, t0 + COOKIE_SECRET_MAX_AGE, &a);
        assert_ne!(c1, c0);
        let k1 = mac1_key(b"x");
        let later = t0 + COOKIE_SECRET_MAX_AGE + Duration::from_secs(1);
        assert_eq!(ck.check_mac2(&mut rng, later, &a, &init_with(&k1, Some(&c0))).0, Mac2::Bad);
        assert_eq!(ck.check_mac2(&mut rng, later, &a, &init_with(&k1, Some(&c1))).0, Mac2::Valid);
    }

    #[test]
    fn reply_round_trip_and_binding() {
        let kr = reply_key(b"meshlink");
        let (cookie, mac1, nonce) = ([0xc0; 16], [0x11; 16], [0x24; 24]);
        let mut r = [0u8; COOKIE_REPLY_LEN];
        seal_reply(&kr, 0x5a3d_0001, &nonce, &cookie, &mac1, &mut r);
        assert_eq!(&r[..8], &[0x07, 0, 0, 0, 0x01, 0x00, 0x3d, 0x5a]);
        assert_eq!(&r[8..32], &nonce);
        assert_eq!(open_reply(&kr, &r, &mac1), Ok(cookie));
        // Another Init (mac1), another network, a flipped bit, a short or retyped record.
        assert_eq!(open_reply(&kr, &r, &[0x12; 16]), Err(ReplyError::Decrypt));
        assert_eq!(open_reply(&reply_key(b"other"), &r, &mac1), Err(ReplyError::Decrypt));
        for i in [8, 31, 32, 47, 48, 63] {
            let mut bad = r;
            bad[i] ^= 0x80;
            assert_eq!(open_reply(&kr, &bad, &mac1), Err(ReplyError::Decrypt), "flip at {i}");
        }
        assert_eq!(open_reply(&kr, &r[..63], &mac1), Err(ReplyError::Malformed));
        let mut retyped = r;
        retyped[0] = 0x06;
        assert_eq!(open_reply(&kr, &retyped, &mac1), Err(ReplyError::Malformed));
    }

    #[test]
    fn jar_expires_before_the_secret() {
        let t = Instant::from_millis(10);
        let jar = Jar::new([1; 16], t);
        assert!(jar.fresh(t + Duration::from_millis(114_999)).is_some());
        assert!(jar.fresh(t + Duration::from_secs(115)).is_none());
    }

    #[test]
    fn short_inputs_never_panic() {
        let k1 = mac1_key(b"");
        for n in 0..40 {
            let mut b = [0u8; 40];
            seal_init(&k1, Some(&[1; 16]), &mut b[..n]);
            let _ = check_mac1(&k1, &b[..n]);
            let _ = mac1_of(&b[..n]);
            let _ = open_reply(&reply_key(b""), &b[..n], &[0; 16]);
        }
    }
}
