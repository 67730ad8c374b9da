//! The official cacophony vectors for every XX, XXpsk3 and IK handshake with ChaChaPoly
//! and BLAKE2s: both roles, every handshake message, the handshake hash and the transport
//! messages that follow.

use meshlink_core::noise::{CipherState, HandshakeParams, HandshakeState, Pattern, Role};
use serde_json::Value;

fn hx(v: &Value, k: &str) -> Option<Vec<u8>> {
    v.get(k).and_then(|s| s.as_str()).map(|s| hex::decode(s).expect("hex"))
}
fn key(v: &Value, k: &str) -> Option<[u8; 32]> {
    hx(v, k).map(|b| b.try_into().expect("32 bytes"))
}

fn pattern_of(name: &str) -> Pattern {
    match name.split('_').nth(1) {
        Some("XX") => Pattern::Xx,
        Some("XXpsk3") => Pattern::XxPsk3,
        Some("IK") => Pattern::Ik,
        other => panic!("unexpected pattern {other:?}"),
    }
}

fn vectors() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/noise-cacophony.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).expect("json");
    doc["vectors"].as_array().expect("array").clone()
}

#[test]
fn every_xx_xxpsk3_ik_blake2s_vector_passes() {
    let vs = vectors();
    let mut seen = std::collections::BTreeSet::new();
    for v in &vs {
        let name = v["protocol_name"].as_str().unwrap();
        let pattern = pattern_of(name);
        seen.insert(name.to_string());
        let psk = |side: &str| {
            v.get(format!("{side}_psks")).and_then(|a| a.as_array()).and_then(|a| a.first()).map(|p| {
                let b: [u8; 32] = hex::decode(p.as_str().unwrap()).unwrap().try_into().unwrap();
                b
            })
        };
        let init_prologue = hx(v, "init_prologue").unwrap();
        let resp_prologue = hx(v, "resp_prologue").unwrap();
        let mut init = HandshakeState::with_ephemeral(
            HandshakeParams {
                pattern,
                role: Role::Initiator,
                prologue: &init_prologue,
                local_static: key(v, "init_static").unwrap(),
                remote_static: key(v, "init_remote_static"),
                psk: psk("init"),
            },
            key(v, "init_ephemeral").unwrap(),
        )
        .unwrap();
        let mut resp = HandshakeState::with_ephemeral(
            HandshakeParams {
                pattern,
                role: Role::Responder,
                prologue: &resp_prologue,
                local_static: key(v, "resp_static").unwrap(),
                remote_static: None,
                psk: psk("resp"),
            },
            key(v, "resp_ephemeral").unwrap(),
        )
        .unwrap();
        let msgs = v["messages"].as_array().unwrap();
        let hs_len = pattern.len();
        let mut buf = [0u8; 1024];
        let mut out = [0u8; 1024];
        for (i, m) in msgs.iter().take(hs_len).enumerate() {
            let payload = hx(m, "payload").unwrap();
            let ct = hx(m, "ciphertext").unwrap();
            let (w, r) = if i % 2 == 0 { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
            let n = w.write_message(&payload, &mut buf).unwrap();
            assert_eq!(hex::encode(&buf[..n]), hex::encode(&ct), "{name} message {i}");
            let p = r.read_message(&ct, &mut out).unwrap();
            assert_eq!(&out[..p], &payload[..], "{name} payload {i}");
        }
        let hh = hx(v, "handshake_hash").unwrap();
        assert_eq!(init.handshake_hash().to_vec(), hh, "{name} initiator h");
        assert_eq!(resp.handshake_hash().to_vec(), hh, "{name} responder h");
        let mut ti = init.into_transport().unwrap();
        let mut tr = resp.into_transport().unwrap();
        assert_eq!(ti.remote_static, x25519_pub(key(v, "resp_static").unwrap()));
        assert_eq!(tr.remote_static, x25519_pub(key(v, "init_static").unwrap()));
        // After the handshake the roles keep alternating, as cacophony writes them.
        for (i, m) in msgs.iter().enumerate().skip(hs_len) {
            let payload = hx(m, "payload").unwrap();
            let ct = hx(m, "ciphertext").unwrap();
            let (send, recv): (&mut CipherState, &mut CipherState) =
                if i % 2 == 0 { (&mut ti.send, &mut tr.recv) } else { (&mut tr.send, &mut ti.recv) };
            buf[..payload.len()].copy_from_slice(&payload);
            let n = send.encrypt(&[], &mut buf, payload.len()).unwrap();
            assert_eq!(hex::encode(&buf[..n]), hex::encode(&ct), "{name} transport {i}");
            let p = recv.decrypt(&[], &mut buf, n).unwrap();
            assert_eq!(&buf[..p], &payload[..]);
        }
    }
    for want in [
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s",
        "Noise_IK_25519_ChaChaPoly_BLAKE2s",
    ] {
        assert!(seen.contains(want), "no vector for {want}");
    }
}

fn x25519_pub(secret: [u8; 32]) -> [u8; 32] {
    meshlink_core::identity::Keypair::from_secret(secret).peer_id().0
}
