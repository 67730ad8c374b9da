//! The three decoders of untrusted bytes: `Packet::decode`, `Header::parse` and
//! `Hello::decode`. Anything that decodes must re-encode and decode to an equal value, and
//! encoding into a too-small buffer must fail cleanly, never panic or write past the end.

use meshlink_core::wire::{Header, Hello, Packet, HELLO_MAX_LEN};

pub fn run(data: &[u8]) {
    // The first byte picks a short output buffer for the "too small" checks; the rest is
    // the input for every decoder (cheap, and each sees every corpus entry).
    let Some((&small, input)) = data.split_first() else { return };
    packet(input, usize::from(small));
    header(input);
    hello(input, usize::from(small));
}

fn packet(input: &[u8], small: usize) {
    let Ok(p) = Packet::decode(input) else { return };
    let mut out = vec![0u8; input.len() + 64];
    let n = p.encode(&mut out).expect("a decoded packet must re-encode");
    let again = Packet::decode(&out[..n]).expect("a re-encoded packet must decode");
    assert_eq!(p, again, "packet round trip changed the value");
    assert_eq!(p.kind(), input[0]);
    // Too small (or just big enough) buffers: an error or the same bytes, never a panic.
    let mut short = vec![0u8; small.min(n)];
    if let Ok(m) = p.encode(&mut short) {
        assert_eq!(&short[..m], &out[..n]);
    }
}

fn header(input: &[u8]) {
    let Ok(h) = Header::parse(input) else { return };
    assert!(h.len() <= input.len(), "header longer than its input");
    // The longest header is the 64-byte Cookie record (PROTOCOL.md §5.12).
    let mut out = [0u8; 128];
    let n = h.encode(&mut out).expect("a parsed header must re-encode");
    assert_eq!(n, h.len());
    assert_eq!(Header::parse(&out[..n]), Ok(h), "header round trip changed the value");
    // The type byte and every field byte must survive; reserved bytes are encoded as zero.
    assert_eq!(out[0], input[0]);
    assert_eq!(&out[4..n], &input[4..n]);
    let mut short = [0u8; 127];
    for len in 0..n {
        assert!(h.encode(&mut short[..len]).is_err(), "header encoded into {len} < {n} bytes");
    }
}

fn hello(input: &[u8], small: usize) {
    let Ok(h) = Hello::decode(input) else { return };
    // HELLO_MAX_LEN is the documented bound of any Hello: whatever decodes must fit it.
    let mut out = [0u8; HELLO_MAX_LEN];
    let n = h.encode(&mut out).expect("a decoded Hello must re-encode within HELLO_MAX_LEN");
    assert!(n <= input.len(), "re-encoding grew the Hello: postcard is canonical-or-shorter");
    assert_eq!(Hello::decode(&out[..n]).as_ref(), Ok(&h), "Hello round trip changed the value");
    let mut short = vec![0u8; small.min(n.saturating_sub(1))];
    assert!(h.encode(&mut short).is_err(), "Hello encoded into fewer bytes than its encoding");
}
